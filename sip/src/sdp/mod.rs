//! SDP (RFC 4566): parse and serialise session descriptions, and RFC 3264 offer/answer for
//! one audio stream ([`negotiate`], [`build_answer`], [`build_offer`], [`accept_answer`]).
//!
//! The parser is tolerant: unknown line types and attributes are kept in order so that a
//! description round-trips; lines it cannot read at all are an error. Only the fields the
//! offer/answer logic needs are typed.

mod negotiate;

use std::fmt;
use std::net::IpAddr;

use thiserror::Error;

pub use negotiate::{
    AnswerParams, Codec, Direction, NegotiatedMedia, OfferParams, accept_answer, build_answer,
    build_offer, negotiate,
};

/// Errors from SDP parsing and negotiation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SdpError {
    #[error("SDP is not UTF-8")]
    NotUtf8,
    #[error("malformed SDP line {line}")]
    MalformedLine { line: usize },
    #[error("invalid {0} line")]
    InvalidField(&'static str),
    #[error("missing {0} line")]
    Missing(&'static str),
    #[error("no audio stream offered")]
    NoAudio,
    #[error("no common codec")]
    NoCommonCodec,
    #[error("no connection address for the audio stream")]
    NoConnection,
}

/// `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: String,
    pub session_version: u64,
    pub net_type: String,
    pub addr_type: String,
    pub address: String,
}

/// `c=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub net_type: String,
    pub addr_type: String,
    /// Address, possibly with `/ttl` for multicast (kept raw).
    pub address: String,
}

impl Connection {
    pub fn ip(ip: IpAddr) -> Self {
        Self {
            net_type: "IN".into(),
            addr_type: if ip.is_ipv4() { "IP4" } else { "IP6" }.into(),
            address: ip.to_string(),
        }
    }

    /// The unicast IP, if the address is one.
    pub fn ip_addr(&self) -> Option<IpAddr> {
        self.address.split('/').next()?.parse().ok()
    }
}

/// `a=name[:value]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Attribute {
    pub fn new(name: &str, value: Option<String>) -> Self {
        Self {
            name: name.to_owned(),
            value,
        }
    }
}

/// An `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, …
    pub media: String,
    pub port: u16,
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/SAVP`, …
    pub proto: String,
    /// Payload types (or other format tokens), as listed.
    pub formats: Vec<String>,
    pub connection: Option<Connection>,
    pub attributes: Vec<Attribute>,
    /// Other lines (`i=`, `b=`, `k=`), in order, as `(type, value)`.
    pub other: Vec<(char, String)>,
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Origin,
    pub session_name: String,
    pub connection: Option<Connection>,
    /// `t=` values (normally one, `0 0`).
    pub times: Vec<String>,
    pub attributes: Vec<Attribute>,
    /// Other session-level lines (`i=`, `u=`, `e=`, `p=`, `b=`, `r=`, `z=`, `k=`).
    pub other: Vec<(char, String)>,
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// Parses SDP text; accepts CRLF or bare LF.
    pub fn parse(bytes: &[u8]) -> Result<Self, SdpError> {
        let text = std::str::from_utf8(bytes).map_err(|_| SdpError::NotUtf8)?;
        let mut origin = None;
        let mut session_name = None;
        let mut connection = None;
        let mut times = Vec::new();
        let mut attributes = Vec::new();
        let mut other = Vec::new();
        let mut media: Vec<MediaDescription> = Vec::new();
        let mut saw_version = false;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let bytes = line.as_bytes();
            if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
                return Err(SdpError::MalformedLine { line: i + 1 });
            }
            let kind = bytes[0] as char;
            let value = line.get(2..).unwrap_or("");
            match (kind, media.last_mut()) {
                ('v', _) => {
                    if value.trim() != "0" {
                        return Err(SdpError::InvalidField("v="));
                    }
                    saw_version = true;
                }
                ('o', None) => origin = Some(parse_origin(value)?),
                ('s', None) => session_name = Some(value.to_owned()),
                ('t', None) => times.push(value.to_owned()),
                ('c', None) => connection = Some(parse_connection(value)?),
                ('c', Some(m)) => m.connection = Some(parse_connection(value)?),
                ('a', None) => attributes.push(parse_attribute(value)),
                ('a', Some(m)) => m.attributes.push(parse_attribute(value)),
                ('m', _) => media.push(parse_media(value)?),
                (k, None) => other.push((k, value.to_owned())),
                (k, Some(m)) => m.other.push((k, value.to_owned())),
            }
        }
        if !saw_version {
            return Err(SdpError::Missing("v="));
        }
        Ok(Self {
            origin: origin.ok_or(SdpError::Missing("o="))?,
            session_name: session_name.unwrap_or_else(|| "-".into()),
            connection,
            times,
            attributes,
            other,
            media,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// The first `audio` stream with a non-zero port.
    pub fn audio(&self) -> Option<&MediaDescription> {
        self.media
            .iter()
            .find(|m| m.media == "audio" && m.port != 0)
    }
}

impl MediaDescription {
    /// Value of the first `a=name` attribute.
    pub fn attribute(&self, name: &str) -> Option<Option<&str>> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
            .map(|a| a.value.as_deref())
    }

    /// `a=rtpmap` for payload type `pt`: `(encoding name, clock rate, channels)`.
    pub fn rtpmap(&self, pt: u8) -> Option<(String, u32, Option<u8>)> {
        self.attributes
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case("rtpmap"))
            .filter_map(|a| a.value.as_deref())
            .find_map(|v| {
                let (p, enc) = v.split_once(' ')?;
                if p.trim().parse::<u8>().ok()? != pt {
                    return None;
                }
                let mut parts = enc.trim().split('/');
                let name = parts.next()?.to_owned();
                let rate = parts.next()?.parse().ok()?;
                let channels = parts.next().and_then(|c| c.parse().ok());
                Some((name, rate, channels))
            })
    }

    /// `a=ptime` in milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        self.attribute("ptime")
            .flatten()
            .and_then(|v| v.trim().parse().ok())
    }
}

fn parse_origin(v: &str) -> Result<Origin, SdpError> {
    let f: Vec<&str> = v.split_whitespace().collect();
    let [username, session_id, version, net_type, addr_type, address] = f[..] else {
        return Err(SdpError::InvalidField("o="));
    };
    Ok(Origin {
        username: username.into(),
        session_id: session_id.into(),
        session_version: version.parse().map_err(|_| SdpError::InvalidField("o="))?,
        net_type: net_type.into(),
        addr_type: addr_type.into(),
        address: address.into(),
    })
}

fn parse_connection(v: &str) -> Result<Connection, SdpError> {
    let f: Vec<&str> = v.split_whitespace().collect();
    let [net_type, addr_type, address] = f[..] else {
        return Err(SdpError::InvalidField("c="));
    };
    Ok(Connection {
        net_type: net_type.into(),
        addr_type: addr_type.into(),
        address: address.into(),
    })
}

fn parse_attribute(v: &str) -> Attribute {
    match v.split_once(':') {
        Some((n, val)) => Attribute::new(n, Some(val.to_owned())),
        None => Attribute::new(v, None),
    }
}

fn parse_media(v: &str) -> Result<MediaDescription, SdpError> {
    let f: Vec<&str> = v.split_whitespace().collect();
    let [media, port, proto, formats @ ..] = &f[..] else {
        return Err(SdpError::InvalidField("m="));
    };
    let (port, port_count) = match port.split_once('/') {
        Some((p, n)) => (
            p,
            Some(n.parse().map_err(|_| SdpError::InvalidField("m="))?),
        ),
        None => (*port, None),
    };
    Ok(MediaDescription {
        media: (*media).into(),
        port: port.parse().map_err(|_| SdpError::InvalidField("m="))?,
        port_count,
        proto: (*proto).into(),
        formats: formats.iter().map(|s| (*s).to_owned()).collect(),
        connection: None,
        attributes: Vec::new(),
        other: Vec::new(),
    })
}

fn write_attributes(f: &mut fmt::Formatter<'_>, attrs: &[Attribute]) -> fmt::Result {
    for a in attrs {
        match &a.value {
            Some(v) => write!(f, "a={}:{}\r\n", a.name, v)?,
            None => write!(f, "a={}\r\n", a.name)?,
        }
    }
    Ok(())
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.net_type, self.addr_type, self.address)
    }
}

impl fmt::Display for SessionDescription {
    /// RFC 4566 line order: v o s i u e p c b t r z k a, then media.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(
            f,
            "v=0\r\no={} {} {} {} {} {}\r\ns={}\r\n",
            o.username,
            o.session_id,
            o.session_version,
            o.net_type,
            o.addr_type,
            o.address,
            self.session_name
        )?;
        for (k, v) in self
            .other
            .iter()
            .filter(|(k, _)| matches!(k, 'i' | 'u' | 'e' | 'p'))
        {
            write!(f, "{k}={v}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for (k, v) in self.other.iter().filter(|(k, _)| *k == 'b') {
            write!(f, "{k}={v}\r\n")?;
        }
        if self.times.is_empty() {
            f.write_str("t=0 0\r\n")?;
        }
        for t in &self.times {
            write!(f, "t={t}\r\n")?;
        }
        for (k, v) in self
            .other
            .iter()
            .filter(|(k, _)| !matches!(k, 'i' | 'u' | 'e' | 'p' | 'b'))
        {
            write!(f, "{k}={v}\r\n")?;
        }
        write_attributes(f, &self.attributes)?;
        for m in &self.media {
            write!(f, "m={} {}", m.media, m.port)?;
            if let Some(n) = m.port_count {
                write!(f, "/{n}")?;
            }
            write!(f, " {}", m.proto)?;
            for fmt_ in &m.formats {
                write!(f, " {fmt_}")?;
            }
            f.write_str("\r\n")?;
            for (k, v) in m.other.iter().filter(|(k, _)| *k == 'i') {
                write!(f, "{k}={v}\r\n")?;
            }
            if let Some(c) = &m.connection {
                write!(f, "c={c}\r\n")?;
            }
            for (k, v) in m.other.iter().filter(|(k, _)| *k != 'i') {
                write!(f, "{k}={v}\r\n")?;
            }
            write_attributes(f, &m.attributes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TORTURE_SDP: &str = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n";

    #[test]
    fn parse_and_roundtrip() {
        let s = SessionDescription::parse(TORTURE_SDP.as_bytes()).unwrap();
        assert_eq!(s.origin.session_version, 7272939);
        assert_eq!(s.media.len(), 2);
        assert_eq!(s.media[0].formats, vec!["0", "12"]);
        // "a=rtpmap:31 LPC" lacks the mandatory clock rate: not a usable mapping.
        assert_eq!(s.media[1].rtpmap(31), None);
        assert_eq!(s.to_string(), TORTURE_SDP);
        let again =
            SessionDescription::parse(s.to_string().replace("\r\n", "\n").as_bytes()).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn rejects_garbage() {
        assert!(SessionDescription::parse(b"hello").is_err());
        assert!(SessionDescription::parse(b"v=0\r\n").is_err());
        assert!(
            SessionDescription::parse(b"v=0\r\no=a b c IN IP4 x\r\nm=audio x RTP/AVP 0\r\n")
                .is_err()
        );
        assert!(
            SessionDescription::parse(b"<audio>\r\n <pcmu port=\"443\"/>\r\n</audio>\r\n").is_err()
        );
    }
}
