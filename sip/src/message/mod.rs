//! SIP messages: our own types, parser and serialiser (RFC 3261 §7, §25; robust against the
//! RFC 4475 torture messages).
//!
//! - [`parse_datagram`] parses one UDP datagram: the body is framed by Content-Length (a short
//!   body is an error, extra octets are ignored per RFC 3261 §18.3, no Content-Length means the
//!   rest of the datagram), bare-LF line ends are accepted and folded lines unfolded.
//! - [`StreamFramer`] cuts messages out of a TCP byte stream.
//! - A parsed message has passed structural validation: it has a top Via, exactly one From,
//!   To, Call-ID and CSeq, all parseable, the CSeq method equals a request's method, Contact
//!   (if any) parses and Content-Length is consistent. The typed accessors on [`Headers`] can
//!   therefore be expected to succeed for those headers, though they still return `Result`.
//! - A parse failure is a [`ParseError`]; for requests it may carry a [`ReplyContext`] from
//!   which [`ReplyContext`]-based responses are built (see [`build::error_response`]).
//!
//! This module does not decide what to answer; the endpoint does.

pub mod build;
mod error;
mod headers;
mod method;
mod params;
mod parse;
pub(crate) mod scan;
mod stream;
mod typed;
mod uri;

use std::fmt;

pub use error::{ParseError, ParseErrorKind, ReplyContext};
pub use headers::{Header, Headers, canonical_name};
pub use method::Method;
pub use params::{Param, Params};
pub use parse::parse_datagram;
pub use stream::{StreamError, StreamFramer};
pub use typed::{AuthHeader, BRANCH_MAGIC, CSeq, Contact, MediaType, NameAddr, Transport, Via};
pub use uri::{Host, SipUri, TelUri, Uri};

/// `SIP/major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl Version {
    pub const SIP_2_0: Version = Version { major: 2, minor: 0 };
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/{}.{}", self.major, self.minor)
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub version: Version,
    /// 100..=699.
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipMessage {
    Request(Request),
    Response(Response),
}

impl Request {
    pub fn new(method: Method, uri: Uri) -> Self {
        Self {
            method,
            uri,
            version: Version::SIP_2_0,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// Serialises the request. Content-Length is always written last, computed from the body,
    /// whatever the headers said.
    pub fn to_bytes(&self) -> Vec<u8> {
        let start = format!("{} {} {}\r\n", self.method, self.uri, self.version);
        serialize(start, &self.headers, &self.body)
    }
}

impl Response {
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            version: Version::SIP_2_0,
            status,
            reason: reason.into(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// Serialises the response (Content-Length computed from the body, as for requests).
    pub fn to_bytes(&self) -> Vec<u8> {
        let start = format!("{} {} {}\r\n", self.version, self.status, self.reason);
        serialize(start, &self.headers, &self.body)
    }

    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl SipMessage {
    pub fn headers(&self) -> &Headers {
        match self {
            SipMessage::Request(r) => &r.headers,
            SipMessage::Response(r) => &r.headers,
        }
    }

    pub fn body(&self) -> &[u8] {
        match self {
            SipMessage::Request(r) => &r.body,
            SipMessage::Response(r) => &r.body,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            SipMessage::Request(r) => r.to_bytes(),
            SipMessage::Response(r) => r.to_bytes(),
        }
    }
}

fn serialize(start: String, headers: &Headers, body: &[u8]) -> Vec<u8> {
    let mut out = start.into_bytes();
    for h in headers.iter() {
        if h.name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// The standard reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match status / 100 {
            1 => "Progress",
            2 => "OK",
            3 => "Redirect",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}
