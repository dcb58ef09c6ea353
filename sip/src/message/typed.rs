//! Typed views of the headers a user agent needs: Via, name-addr headers (From, To, Contact,
//! Route, Record-Route), CSeq, media types and authentication headers. Each parses one header
//! value (already split from its list) and serialises back with `Display`.

use std::fmt;

use super::Method;
use super::error::ParseErrorKind;
use super::params::{Params, parse_header_params};
use super::scan::{Cursor, is_token_char, is_ws, parse_decimal, quote, unquote};
use super::uri::{Host, Uri, parse_hostport};

/// A Via transport. Unknown transports are kept (RFC 4475 §3.1.1.10).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Sctp,
    Ws,
    Wss,
    Other(String),
}

impl Transport {
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "UDP" => Self::Udp,
            "TCP" => Self::Tcp,
            "TLS" => Self::Tls,
            "SCTP" => Self::Sctp,
            "WS" => Self::Ws,
            "WSS" => Self::Wss,
            _ => Self::Other(s.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Sctp => "SCTP",
            Self::Ws => "WS",
            Self::Wss => "WSS",
            Self::Other(s) => s,
        }
    }
}

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `SIP/2.0` normally; kept as written (`SIP/7.0` is parsed so 505 can be sent).
    pub protocol: String,
    pub transport: Transport,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

/// The RFC 3261 branch magic cookie.
pub const BRANCH_MAGIC: &str = "z9hG4bK";

impl Via {
    pub fn parse(value: &str) -> Result<Self, ParseErrorKind> {
        const H: &str = "Via";
        let bad = |r| ParseErrorKind::header(H, r);
        let mut c = Cursor::new(value);
        c.skip_ws();
        let name = c.token().ok_or(bad("missing protocol name"))?;
        if !c.eat_sep(b'/') {
            return Err(bad("missing '/'"));
        }
        let version = c.token().ok_or(bad("missing protocol version"))?;
        if !c.eat_sep(b'/') {
            return Err(bad("missing '/'"));
        }
        let transport = c.token().ok_or(bad("missing transport"))?;
        c.skip_ws();
        let sent_by = c.take_while(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
        });
        let (host, port) = parse_hostport(sent_by).map_err(|_| bad("invalid sent-by"))?;
        let params = parse_header_params(&mut c, H)?;
        c.skip_ws();
        if !c.is_empty() {
            return Err(bad("unexpected characters"));
        }
        Ok(Self {
            protocol: format!("{name}/{version}"),
            transport: Transport::parse(transport),
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch").flatten()
    }

    /// True when the branch carries the RFC 3261 magic cookie followed by an id (a bare
    /// `z9hG4bK`, RFC 4475 §3.2.1, does not count).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > BRANCH_MAGIC.len() && b.starts_with(BRANCH_MAGIC))
    }

    pub fn received(&self) -> Option<&str> {
        self.params.get("received").flatten()
    }

    /// `None`: no rport; `Some(None)`: `;rport` without a value; `Some(Some(p))`: filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| parse_decimal(p, 65535).map(|n| n as u16)))
    }

    /// `host[:port]` as written, used as part of the transaction key.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} {}{}",
            self.protocol,
            self.transport.as_str(),
            self.sent_by(),
            self.params
        )
    }
}

/// `[display-name] <uri> *(;param)` or `uri *(;param)` — From, To, Contact, Route,
/// Record-Route, Refer-To…
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Unquoted display name.
    pub display_name: Option<String>,
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `q`, `lr` on a Route is a URI param, not here).
    pub params: Params,
}

impl NameAddr {
    pub fn new(uri: Uri) -> Self {
        Self {
            display_name: None,
            uri,
            params: Params::new(),
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag").flatten()
    }

    pub fn with_tag(mut self, tag: &str) -> Self {
        self.params.set("tag", Some(tag));
        self
    }

    pub fn parse(value: &str, header: &'static str) -> Result<Self, ParseErrorKind> {
        let bad = |r| ParseErrorKind::header(header, r);
        let mut c = Cursor::new(value);
        c.skip_ws();
        let mut display_name = None;
        let uri;
        if c.peek() == Some(b'"') {
            let q = c
                .quoted_raw()
                .ok_or(bad("unterminated quoted display name"))?;
            display_name = Some(unquote(q));
            c.skip_ws();
            uri = angle_uri(&mut c, header)?;
        } else if c.peek() == Some(b'<') {
            uri = angle_uri(&mut c, header)?;
        } else {
            // Either an addr-spec (a scheme is followed by ':') or a display name made of
            // tokens separated by LWS, followed by '<'.
            let save = c.clone();
            let first = c.take_while(is_token_char);
            if c.peek() == Some(b':') || first.is_empty() {
                c = save;
                // Without <>, the URI ends at ';' or whitespace; its own params would be header
                // params (RFC 3261 §20.10), and '?' or ',' is not allowed.
                let raw = c.take_while(|b| b != b';' && !is_ws(b));
                if raw.contains('?') || raw.contains(',') {
                    return Err(bad("URI with '?' or ',' must be enclosed in <>"));
                }
                uri = Uri::parse(raw)?;
            } else {
                let mut words = vec![first];
                loop {
                    c.skip_ws();
                    match c.peek() {
                        Some(b'<') => break,
                        Some(b) if is_token_char(b) => words.push(c.take_while(is_token_char)),
                        _ => return Err(bad("invalid display name")),
                    }
                }
                display_name = Some(words.join(" "));
                uri = angle_uri(&mut c, header)?;
            }
        }
        let params = parse_header_params(&mut c, header)?;
        c.skip_ws();
        if !c.is_empty() {
            return Err(bad("unexpected characters"));
        }
        Ok(Self {
            display_name,
            uri,
            params,
        })
    }
}

/// Parses `<uri>` at the cursor: no whitespace is allowed just inside the brackets.
fn angle_uri(c: &mut Cursor<'_>, header: &'static str) -> Result<Uri, ParseErrorKind> {
    if !c.eat(b'<') {
        return Err(ParseErrorKind::header(header, "expected '<'"));
    }
    let raw = c.take_while(|b| b != b'>');
    if !c.eat(b'>') {
        return Err(ParseErrorKind::header(header, "missing '>'"));
    }
    Uri::parse(raw)
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display_name {
            write!(f, "{} ", quote(d))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// The Contact header: `*` (REGISTER removal) or a list of addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    Any,
    List(Vec<NameAddr>),
}

impl Contact {
    /// The first address, if any.
    pub fn first(&self) -> Option<&NameAddr> {
        match self {
            Contact::List(v) => v.first(),
            Contact::Any => None,
        }
    }
}

/// CSeq: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(value: &str) -> Result<Self, ParseErrorKind> {
        let mut parts = value.split([' ', '\t']).filter(|s| !s.is_empty());
        let (Some(n), Some(m), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ParseErrorKind::header("CSeq", "expected number and method"));
        };
        let seq = parse_decimal(n, u64::from(u32::MAX))
            .ok_or(ParseErrorKind::header("CSeq", "number not below 2**32"))?
            as u32;
        let method = Method::parse(m).map_err(|_| ParseErrorKind::header("CSeq", "bad method"))?;
        Ok(Self { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// `type/subtype;params` (Content-Type, Accept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    pub kind: String,
    pub subtype: String,
    pub params: Params,
}

impl MediaType {
    pub fn new(kind: &str, subtype: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            subtype: subtype.to_owned(),
            params: Params::new(),
        }
    }

    pub fn parse(value: &str, header: &'static str) -> Result<Self, ParseErrorKind> {
        let bad = |r| ParseErrorKind::header(header, r);
        let mut c = Cursor::new(value);
        c.skip_ws();
        let kind = c.token().ok_or(bad("missing type"))?;
        if !c.eat_sep(b'/') {
            return Err(bad("missing '/'"));
        }
        let subtype = c.token().ok_or(bad("missing subtype"))?;
        let params = parse_header_params(&mut c, header)?;
        c.skip_ws();
        if !c.is_empty() {
            return Err(bad("unexpected characters"));
        }
        Ok(Self {
            kind: kind.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
            params,
        })
    }

    /// `application/sdp` exactly (ignoring case and parameters).
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.subtype.eq_ignore_ascii_case(subtype)
    }

    /// Whether this (Accept) range admits `kind/subtype`, wildcards included.
    pub fn admits(&self, kind: &str, subtype: &str) -> bool {
        (self.kind == "*" || self.kind.eq_ignore_ascii_case(kind))
            && (self.subtype == "*" || self.subtype.eq_ignore_ascii_case(subtype))
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}{}", self.kind, self.subtype, self.params)
    }
}

/// A challenge or credentials header: `scheme param=value, param="value", …`
/// (WWW-Authenticate, Proxy-Authenticate, Authorization, Proxy-Authorization).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    pub scheme: String,
    /// Parameters in order, values unquoted.
    pub params: Vec<(String, String)>,
}

impl AuthHeader {
    pub fn parse(value: &str, header: &'static str) -> Result<Self, ParseErrorKind> {
        let bad = |r| ParseErrorKind::header(header, r);
        let mut c = Cursor::new(value);
        c.skip_ws();
        let scheme = c.token().ok_or(bad("missing scheme"))?.to_owned();
        let mut params = Vec::new();
        loop {
            c.skip_ws();
            if c.is_empty() {
                break;
            }
            let name = c.token().ok_or(bad("invalid parameter name"))?;
            if !c.eat_sep(b'=') {
                return Err(bad("missing '='"));
            }
            let v = if c.peek() == Some(b'"') {
                unquote(c.quoted_raw().ok_or(bad("unterminated quoted value"))?)
            } else {
                c.take_while(|b| is_token_char(b) || b == b'/' || b == b':' || b == b'=')
                    .to_owned()
            };
            params.push((name.to_owned(), v));
            if !c.eat_sep(b',') {
                c.skip_ws();
                if !c.is_empty() {
                    return Err(bad("expected ','"));
                }
            }
        }
        Ok(Self { scheme, params })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_odd_lws() {
        let v =
            Via::parse("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8")
                .unwrap();
        assert_eq!(v.transport, Transport::Tcp);
        assert_eq!(v.host, Host::Domain("spindle.example.com".into()));
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        assert!(v.has_rfc3261_branch());
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9]:5070;received=[2001:db8::1];rport").unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP [2001:db8::9]:5070;received=[2001:db8::1];rport"
        );
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(
            !Via::parse("SIP/2.0/UDP h;branch=z9hG4bK")
                .unwrap()
                .has_rfc3261_branch()
        );
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
            "From",
        )
        .unwrap();
        assert_eq!(n.display_name.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323", "From").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("caller"));
        let n =
            NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam", "Contact").unwrap();
        assert!(n.params.contains("unknownparam"));
        assert!(n.uri.as_sip().unwrap().params.is_empty());
        assert!(NameAddr::parse("Bell, Alexander <sip:a@b>", "From").is_err());
        assert!(NameAddr::parse(r#""Watson" < sip:t@example.org >"#, "To").is_err());
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#, "To").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:x%3E", "Contact").is_err());
        assert!(NameAddr::parse(r#""Joe" <sip:joe@example.org>;;;;"#, "Contact").is_err());
    }

    #[test]
    fn cseq_and_media_and_auth() {
        assert_eq!(CSeq::parse("0009 INVITE").unwrap().seq, 9);
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        let m =
            MediaType::parse("multipart/mixed;boundary=7a9cbec02ceef655", "Content-Type").unwrap();
        assert!(m.is("Multipart", "mixed"));
        let a = AuthHeader::parse(
            r#"Digest realm="atlanta.com", nonce="84a4cc6f3082121f32b42a2187831a9e", qop="auth", algorithm=MD5, stale=FALSE"#,
            "WWW-Authenticate",
        )
        .unwrap();
        assert_eq!(a.scheme, "Digest");
        assert_eq!(a.param("qop"), Some("auth"));
        assert_eq!(a.param("algorithm"), Some("MD5"));
    }
}
