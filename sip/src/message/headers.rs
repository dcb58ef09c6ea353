//! The header section: an ordered list of `(name, value)` entries. Names are matched
//! case-insensitively and stored in canonical spelling for known headers (compact forms such as
//! `v`, `i`, `m`, `l` expanded); values are stored unfolded and trimmed but otherwise raw. List
//! headers (Via, Contact, Route, Allow, …) are split into one entry per element at parse time,
//! so `headers.get_all("Via")` yields every Via value in order.
//!
//! Typed accessors (`via()`, `from()`, `cseq()`, …) parse on demand and return errors, never
//! panic.

use std::fmt;

use super::Method;
use super::error::ParseErrorKind;
use super::scan::split_list;
use super::typed::{AuthHeader, CSeq, Contact, MediaType, NameAddr, Via};

/// One header entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// An ordered header list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

/// Canonical spellings of the headers we know, and their compact forms (RFC 3261 §7.3.3 and
/// the IANA registry).
const KNOWN: &[(&str, Option<char>)] = &[
    ("Accept", None),
    ("Accept-Contact", Some('a')),
    ("Accept-Encoding", None),
    ("Accept-Language", None),
    ("Alert-Info", None),
    ("Allow", None),
    ("Allow-Events", Some('u')),
    ("Authorization", None),
    ("Call-ID", Some('i')),
    ("Call-Info", None),
    ("Contact", Some('m')),
    ("Content-Disposition", None),
    ("Content-Encoding", Some('e')),
    ("Content-Language", None),
    ("Content-Length", Some('l')),
    ("Content-Type", Some('c')),
    ("CSeq", None),
    ("Date", None),
    ("Error-Info", None),
    ("Event", Some('o')),
    ("Expires", None),
    ("From", Some('f')),
    ("Identity", Some('y')),
    ("Identity-Info", Some('n')),
    ("In-Reply-To", None),
    ("Max-Forwards", None),
    ("MIME-Version", None),
    ("Min-Expires", None),
    ("Min-SE", None),
    ("Organization", None),
    ("P-Asserted-Identity", None),
    ("Priority", None),
    ("Proxy-Authenticate", None),
    ("Proxy-Authorization", None),
    ("Proxy-Require", None),
    ("RAck", None),
    ("Reason", None),
    ("Record-Route", None),
    ("Refer-To", Some('r')),
    ("Referred-By", Some('b')),
    ("Reject-Contact", Some('j')),
    ("Reply-To", None),
    ("Request-Disposition", Some('d')),
    ("Require", None),
    ("Retry-After", None),
    ("Route", None),
    ("RSeq", None),
    ("Server", None),
    ("Session-Expires", Some('x')),
    ("Subject", Some('s')),
    ("Supported", Some('k')),
    ("Timestamp", None),
    ("To", Some('t')),
    ("Unsupported", None),
    ("User-Agent", None),
    ("Via", Some('v')),
    ("Warning", None),
    ("WWW-Authenticate", None),
];

/// Headers whose grammar is `value *(COMMA value)`; split into one entry per element.
const LIST_HEADERS: &[&str] = &[
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Allow",
    "Allow-Events",
    "Contact",
    "Content-Encoding",
    "Content-Language",
    "In-Reply-To",
    "Proxy-Require",
    "Record-Route",
    "Require",
    "Route",
    "Supported",
    "Unsupported",
    "Via",
];

/// The canonical spelling of `name` (compact forms expanded); unknown names are kept as given.
pub fn canonical_name(name: &str) -> String {
    if name.len() == 1 {
        let c = name.as_bytes()[0].to_ascii_lowercase() as char;
        if let Some((full, _)) = KNOWN.iter().find(|(_, compact)| *compact == Some(c)) {
            return (*full).to_owned();
        }
    }
    KNOWN
        .iter()
        .find(|(full, _)| full.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_owned(), |(full, _)| (*full).to_owned())
}

fn is_list_header(canonical: &str) -> bool {
    LIST_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(canonical))
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a header as received: canonicalises the name and splits list values.
    pub fn push_parsed(&mut self, name: &str, value: &str) {
        let name = canonical_name(name);
        if is_list_header(&name) && !(name == "Contact" && value.trim() == "*") {
            for v in split_list(value) {
                self.0.push(Header {
                    name: name.clone(),
                    value: v.to_owned(),
                });
            }
        } else {
            self.0.push(Header {
                name,
                value: value.to_owned(),
            });
        }
    }

    /// Appends a header verbatim (builders use canonical names already).
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push(Header {
            name: name.to_owned(),
            value: value.into(),
        });
    }

    /// Inserts before the first entry (for adding a Via on top).
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(
            0,
            Header {
                name: name.to_owned(),
                value: value.into(),
            },
        );
    }

    /// Replaces all entries named `name` with one entry (appended if none existed).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        if let Some(i) = self
            .0
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case(name))
        {
            self.0[i].value = value;
            let mut seen = 0;
            self.0.retain(|h| {
                if h.name.eq_ignore_ascii_case(name) {
                    seen += 1;
                    seen == 1
                } else {
                    true
                }
            });
        } else {
            self.push(name, value);
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    pub fn count(&self, name: &str) -> usize {
        self.0
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn single(&self, name: &'static str) -> Result<&str, ParseErrorKind> {
        let mut it = self.get_all(name);
        let v = it.next().ok_or(ParseErrorKind::MissingHeader(name))?;
        if it.next().is_some() {
            return Err(ParseErrorKind::DuplicateHeader(name));
        }
        Ok(v)
    }

    fn optional_single(&self, name: &'static str) -> Result<Option<&str>, ParseErrorKind> {
        match self.single(name) {
            Ok(v) => Ok(Some(v)),
            Err(ParseErrorKind::MissingHeader(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ---- typed accessors -------------------------------------------------------------

    /// Every Via value, topmost first.
    pub fn via(&self) -> Result<Vec<Via>, ParseErrorKind> {
        let v: Vec<Via> = self
            .get_all("Via")
            .map(Via::parse)
            .collect::<Result<_, _>>()?;
        if v.is_empty() {
            return Err(ParseErrorKind::MissingHeader("Via"));
        }
        Ok(v)
    }

    pub fn top_via(&self) -> Result<Via, ParseErrorKind> {
        Via::parse(
            self.get("Via")
                .ok_or(ParseErrorKind::MissingHeader("Via"))?,
        )
    }

    pub fn from(&self) -> Result<NameAddr, ParseErrorKind> {
        NameAddr::parse(self.single("From")?, "From")
    }

    pub fn to(&self) -> Result<NameAddr, ParseErrorKind> {
        NameAddr::parse(self.single("To")?, "To")
    }

    pub fn call_id(&self) -> Result<&str, ParseErrorKind> {
        let v = self.single("Call-ID")?;
        if v.is_empty() || v.bytes().any(|b| b <= b' ') {
            return Err(ParseErrorKind::header(
                "Call-ID",
                "empty or contains whitespace",
            ));
        }
        Ok(v)
    }

    pub fn cseq(&self) -> Result<CSeq, ParseErrorKind> {
        CSeq::parse(self.single("CSeq")?)
    }

    /// `None` when absent (RFC 2543 peers omit it).
    pub fn max_forwards(&self) -> Result<Option<u32>, ParseErrorKind> {
        self.optional_single("Max-Forwards")?
            .map(|v| {
                super::scan::parse_decimal(v, u64::from(u32::MAX))
                    .map(|n| n as u32)
                    .ok_or(ParseErrorKind::header(
                        "Max-Forwards",
                        "not a 32-bit number",
                    ))
            })
            .transpose()
    }

    /// The Contact header: `None` when absent.
    pub fn contact(&self) -> Result<Option<Contact>, ParseErrorKind> {
        let values: Vec<&str> = self.get_all("Contact").collect();
        if values.is_empty() {
            return Ok(None);
        }
        if values.len() == 1 && values[0] == "*" {
            return Ok(Some(Contact::Any));
        }
        values
            .into_iter()
            .map(|v| NameAddr::parse(v, "Contact"))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Some(Contact::List(v)))
    }

    /// The Content-Length value; several equal values are tolerated, different ones are not.
    pub fn content_length(&self) -> Result<Option<usize>, ParseErrorKind> {
        let mut result = None;
        for v in self.get_all("Content-Length") {
            let n = super::scan::parse_decimal(v, u64::from(u32::MAX))
                .ok_or(ParseErrorKind::InvalidContentLength)? as usize;
            match result {
                Some(prev) if prev != n => return Err(ParseErrorKind::ConflictingContentLength),
                _ => result = Some(n),
            }
        }
        Ok(result)
    }

    pub fn content_type(&self) -> Result<Option<MediaType>, ParseErrorKind> {
        self.optional_single("Content-Type")?
            .map(|v| MediaType::parse(v, "Content-Type"))
            .transpose()
    }

    /// The Expires header in seconds; absurdly large values clamp to `u32::MAX`.
    pub fn expires(&self) -> Result<Option<u32>, ParseErrorKind> {
        self.optional_single("Expires")?
            .map(|v| {
                let v = v.trim();
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseErrorKind::header("Expires", "not a number"));
                }
                Ok(super::scan::parse_decimal(v, u64::from(u32::MAX))
                    .map_or(u32::MAX, |n| n as u32))
            })
            .transpose()
    }

    pub fn route(&self) -> Result<Vec<NameAddr>, ParseErrorKind> {
        self.get_all("Route")
            .map(|v| NameAddr::parse(v, "Route"))
            .collect()
    }

    pub fn record_route(&self) -> Result<Vec<NameAddr>, ParseErrorKind> {
        self.get_all("Record-Route")
            .map(|v| NameAddr::parse(v, "Record-Route"))
            .collect()
    }

    /// Option tags of `Require`.
    pub fn require(&self) -> Vec<&str> {
        self.tokens("Require")
    }

    pub fn supported(&self) -> Vec<&str> {
        self.tokens("Supported")
    }

    pub fn allow(&self) -> Vec<Method> {
        self.tokens("Allow")
            .into_iter()
            .filter_map(|m| Method::parse(m).ok())
            .collect()
    }

    /// Every `Accept` media range (empty when the header is absent).
    pub fn accept(&self) -> Vec<MediaType> {
        self.get_all("Accept")
            .filter(|v| !v.is_empty())
            .filter_map(|v| MediaType::parse(v, "Accept").ok())
            .collect()
    }

    pub fn www_authenticate(&self) -> Result<Vec<AuthHeader>, ParseErrorKind> {
        self.auth_list("WWW-Authenticate")
    }

    pub fn proxy_authenticate(&self) -> Result<Vec<AuthHeader>, ParseErrorKind> {
        self.auth_list("Proxy-Authenticate")
    }

    pub fn authorization(&self) -> Result<Vec<AuthHeader>, ParseErrorKind> {
        self.auth_list("Authorization")
    }

    fn auth_list(&self, name: &'static str) -> Result<Vec<AuthHeader>, ParseErrorKind> {
        self.get_all(name)
            .map(|v| AuthHeader::parse(v, name))
            .collect()
    }

    /// Comma-split, trimmed, non-empty tokens of a list header.
    pub fn tokens<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect()
    }
}

impl fmt::Display for Headers {
    /// `Name: value\r\n` per entry.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for h in &self.0 {
            write!(f, "{}: {}\r\n", h.name, h.value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive() {
        let mut h = Headers::new();
        h.push_parsed("v", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b");
        h.push_parsed("VIA", "SIP/2.0/UDP c");
        h.push_parsed("i", "abc");
        h.push_parsed("m", "*");
        h.push_parsed("C%6Fntact", "<sip:x@y>");
        assert_eq!(h.count("via"), 3);
        assert_eq!(h.call_id(), Ok("abc"));
        assert_eq!(h.contact(), Ok(Some(Contact::Any)));
        assert_eq!(h.get("C%6Fntact"), Some("<sip:x@y>"));
        assert_eq!(canonical_name("cseq"), "CSeq");
        assert_eq!(canonical_name("X-Foo"), "X-Foo");
    }

    #[test]
    fn content_length_rules() {
        let mut h = Headers::new();
        h.push_parsed("Content-Length", "13");
        h.push_parsed("l", "13");
        assert_eq!(h.content_length(), Ok(Some(13)));
        h.push_parsed("Content-Length", "5");
        assert_eq!(
            h.content_length(),
            Err(ParseErrorKind::ConflictingContentLength)
        );
        let mut n = Headers::new();
        n.push_parsed("Content-Length", "-999");
        assert_eq!(
            n.content_length(),
            Err(ParseErrorKind::InvalidContentLength)
        );
    }

    #[test]
    fn set_replaces_all() {
        let mut h = Headers::new();
        h.push("A", "1");
        h.push("B", "2");
        h.push("a", "3");
        h.set("A", "9");
        assert_eq!(h.get_all("a").collect::<Vec<_>>(), vec!["9"]);
        assert_eq!(h.len(), 2);
    }
}
