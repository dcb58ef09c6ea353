//! URIs as SIP carries them: `sip:`/`sips:` (RFC 3261 §19.1) parsed into parts, `tel:`
//! (RFC 3966) into number and parameters, anything else kept opaque so the core can answer 416
//! rather than fail the parse.
//!
//! The user part is kept escaped as received (`user_decoded` unescapes once, RFC 4475 §3.1.1.3);
//! it may hold `;`, `?`, `/` and dots (`sip:user;par=u%40example.net@example.com`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::error::ParseErrorKind;
use super::params::{Param, Params};
use super::scan::{escapes_valid, parse_decimal, percent_decode};

/// A parsed URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Sip(SipUri),
    Tel(TelUri),
    /// Any other scheme (`http:`, `isbn:`, `soap.beep:`…): scheme and the opaque remainder.
    Other {
        scheme: String,
        rest: String,
    },
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub secure: bool,
    /// Escaped as received.
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
    /// The raw `?headers` part, without the `?`.
    pub headers: Option<String>,
}

/// A `tel:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    pub number: String,
    pub params: Params,
}

/// The host of a SIP URI or Via sent-by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Domain(String),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
}

impl Uri {
    /// Parses a URI (no surrounding `<>`, no whitespace).
    pub fn parse(s: &str) -> Result<Self, ParseErrorKind> {
        let Some((scheme, rest)) = s.split_once(':') else {
            return Err(ParseErrorKind::InvalidUri("missing scheme"));
        };
        let mut sc = scheme.bytes();
        if !sc.next().is_some_and(|b| b.is_ascii_alphabetic())
            || !sc.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(ParseErrorKind::InvalidUri("invalid scheme"));
        }
        if rest.is_empty() {
            return Err(ParseErrorKind::InvalidUri("empty"));
        }
        if rest
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || matches!(b, b'<' | b'>' | b'"'))
        {
            return Err(ParseErrorKind::InvalidUri("forbidden character"));
        }
        if scheme.eq_ignore_ascii_case("sip") {
            SipUri::parse_rest(rest, false).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse_rest(rest, true).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            TelUri::parse_rest(rest).map(Uri::Tel)
        } else {
            Ok(Uri::Other {
                scheme: scheme.to_owned(),
                rest: rest.to_owned(),
            })
        }
    }

    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel(_) => "tel",
            Uri::Other { scheme, .. } => scheme,
        }
    }

    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user part (SIP) or number (tel), escaped as received.
    pub fn user(&self) -> Option<&str> {
        match self {
            Uri::Sip(u) => u.user.as_deref(),
            Uri::Tel(t) => Some(&t.number),
            Uri::Other { .. } => None,
        }
    }
}

impl SipUri {
    /// A plain `sip:user@host[:port]` URI.
    pub fn new(user: Option<&str>, host: Host, port: Option<u16>) -> Self {
        Self {
            secure: false,
            user: user.map(str::to_owned),
            password: None,
            host,
            port,
            params: Params::new(),
            headers: None,
        }
    }

    fn parse_rest(rest: &str, secure: bool) -> Result<Self, ParseErrorKind> {
        // `@` cannot appear unescaped in uri-parameters or headers (RFC 3261 §25.1), so the first
        // one ends the userinfo even when the user part holds `;` or `?`.
        let (userinfo, hostpart) = match rest.split_once('@') {
            Some((ui, hp)) => (Some(ui), hp),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return Err(ParseErrorKind::InvalidUri("empty user"));
                }
                if !escapes_valid(u) || p.is_some_and(|p| !escapes_valid(p)) {
                    return Err(ParseErrorKind::InvalidUri("bad escape in userinfo"));
                }
                (Some(u.to_owned()), p.map(str::to_owned))
            }
        };
        let (hostport, headers) = match hostpart.split_once('?') {
            Some((hp, h)) => (hp, Some(h)),
            None => (hostpart, None),
        };
        let (hostport, params_str) = match hostport.split_once(';') {
            Some((hp, p)) => (hp, Some(p)),
            None => (hostport, None),
        };
        let (host, port) = parse_hostport(hostport).map_err(ParseErrorKind::InvalidUri)?;
        let mut params = Params::new();
        if let Some(ps) = params_str {
            for p in ps.split(';') {
                let (name, value) = match p.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (p, None),
                };
                if name.is_empty() || value.is_some_and(str::is_empty) {
                    return Err(ParseErrorKind::InvalidUri("empty parameter"));
                }
                if !escapes_valid(p) {
                    return Err(ParseErrorKind::InvalidUri("bad escape in parameter"));
                }
                params.0.push(Param {
                    name: name.to_owned(),
                    value: value.map(str::to_owned),
                });
            }
        }
        if let Some(h) = headers
            && (h.is_empty() || !escapes_valid(h))
        {
            return Err(ParseErrorKind::InvalidUri("bad headers"));
        }
        Ok(Self {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers: headers.map(str::to_owned),
        })
    }

    /// The user part with `%HH` escapes decoded once (may contain NUL or non-UTF-8 bytes).
    pub fn user_decoded(&self) -> Option<Vec<u8>> {
        self.user.as_deref().map(percent_decode)
    }

    /// `?headers` split into decoded `(name, value)` pairs.
    pub fn header_pairs(&self) -> Vec<(String, String)> {
        let Some(h) = &self.headers else {
            return Vec::new();
        };
        h.split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                let dec = |s: &str| String::from_utf8_lossy(&percent_decode(s)).into_owned();
                (dec(k), dec(v))
            })
            .collect()
    }

    /// The socket address when the host is an IP literal; the port defaults to 5060 (5061 for
    /// sips). Names need DNS, which the sans-IO core does not do.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let default = if self.secure { 5061 } else { 5060 };
        let ip = self.host.ip()?;
        Some(SocketAddr::new(ip, self.port.unwrap_or(default)))
    }
}

impl TelUri {
    fn parse_rest(rest: &str) -> Result<Self, ParseErrorKind> {
        let mut parts = rest.split(';');
        let number = parts.next().unwrap_or("");
        if number.is_empty() {
            return Err(ParseErrorKind::InvalidUri("empty telephone number"));
        }
        let mut params = Params::new();
        for p in parts {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            };
            if name.is_empty() {
                return Err(ParseErrorKind::InvalidUri("empty parameter"));
            }
            params.0.push(Param {
                name: name.to_owned(),
                value: value.map(str::to_owned),
            });
        }
        Ok(Self {
            number: number.to_owned(),
            params,
        })
    }
}

impl Host {
    /// Parses a host: `[IPv6]`, dotted IPv4, or a domain name.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or("unterminated IPv6 reference")?;
            return inner
                .parse::<Ipv6Addr>()
                .map(Host::Ipv6)
                .map_err(|_| "invalid IPv6 address");
        }
        if s.is_empty() {
            return Err("empty host");
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err("invalid host character");
        }
        if let Ok(v4) = s.parse::<Ipv4Addr>() {
            return Ok(Host::Ipv4(v4));
        }
        Ok(Host::Domain(s.to_owned()))
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ipv4(a) => Some(IpAddr::V4(*a)),
            Host::Ipv6(a) => Some(IpAddr::V6(*a)),
            Host::Domain(_) => None,
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Host::Ipv4(a),
            IpAddr::V6(a) => Host::Ipv6(a),
        }
    }
}

/// Parses `host[:port]`.
pub(crate) fn parse_hostport(s: &str) -> Result<(Host, Option<u16>), &'static str> {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(i) => {
                let (h, after) = s.split_at(i + 1);
                match after.strip_prefix(':') {
                    Some(p) => (h, Some(p)),
                    None if after.is_empty() => (h, None),
                    None => return Err("garbage after IPv6 reference"),
                }
            }
            None => return Err("unterminated IPv6 reference"),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let host = Host::parse(host)?;
    let port = match port {
        None => None,
        Some(p) => Some(parse_decimal(p, 65535).ok_or("invalid port")? as u16),
    };
    Ok((host, port))
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => write!(f, "{u}"),
            Uri::Tel(t) => write!(f, "tel:{}{}", t.number, t.params),
            Uri::Other { scheme, rest } => write!(f, "{scheme}:{rest}"),
        }
    }
}

impl std::str::FromStr for Uri {
    type Err = ParseErrorKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        match Uri::parse(s) {
            Ok(Uri::Sip(u)) => u,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn dotted_user_and_params() {
        let u = sip("sip:j.user@example.com:5070;transport=udp;lr");
        assert_eq!(u.user.as_deref(), Some("j.user"));
        assert_eq!(u.host, Host::Domain("example.com".into()));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.params.get("transport"), Some(Some("udp")));
        assert!(u.params.contains("LR"));
        assert_eq!(
            u.to_string(),
            "sip:j.user@example.com:5070;transport=udp;lr"
        );
    }

    #[test]
    fn semicolon_in_user_and_escapes() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(
            u.user_decoded().as_deref(),
            Some(&b"user;par=u@example.net"[..])
        );
        assert!(u.params.is_empty());
        let e = sip("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(
            e.user_decoded().as_deref(),
            Some(&b"sips:user@example.com"[..])
        );
    }

    #[test]
    fn intmeth_userinfo_with_password() {
        let s = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com";
        let u = sip(s);
        assert_eq!(
            u.user.as_deref(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password.as_deref(),
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        assert_eq!(u.to_string(), s);
    }

    #[test]
    fn ipv6_and_headers_and_other_schemes() {
        let u = sip("sips:[2001:db8::10]:5061;maddr=x?Route=%3Csip:a%3E");
        assert!(u.secure);
        assert_eq!(u.host, Host::Ipv6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.header_pairs(), vec![("Route".into(), "<sip:a>".into())]);
        assert_eq!(
            u.to_string(),
            "sips:[2001:db8::10]:5061;maddr=x?Route=%3Csip:a%3E"
        );
        match Uri::parse("tel:+1-201-555-0123;phone-context=x") {
            Ok(Uri::Tel(t)) => assert_eq!(t.number, "+1-201-555-0123"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Uri::parse("soap.beep://192.0.2.103:3002").map(|u| u.scheme().to_owned()),
            Ok("soap.beep".into())
        );
        assert!(Uri::parse("<sip:a@b>").is_err());
        assert!(Uri::parse("sip:a@b c").is_err());
        assert!(Uri::parse("sip:user@example.com;").is_err());
        assert!(Uri::parse("sip:host:99999").is_err());
    }
}
