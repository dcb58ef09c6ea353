//! Typed parse errors. A request that failed to parse may still be answerable: when the parser
//! saw a request line and the Via and CSeq headers, the error carries a [`ReplyContext`] with the
//! raw header values a response must copy (RFC 3261 §8.2.6.2), so the core can send 400/505/501
//! instead of silently dropping the request.

use thiserror::Error;

use super::Method;

/// What was wrong with a message. Stable enough to count in metrics and to show in a `Warning`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    #[error("empty message")]
    Empty,
    #[error("malformed start line")]
    StartLine,
    #[error("invalid method")]
    InvalidMethod,
    #[error("invalid SIP version")]
    InvalidVersion,
    #[error("invalid status code")]
    InvalidStatusCode,
    #[error("invalid URI: {0}")]
    InvalidUri(&'static str),
    #[error("malformed header line")]
    HeaderLine,
    #[error("header section not terminated by an empty line")]
    UnterminatedHeaders,
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("more than one {0} header")]
    DuplicateHeader(&'static str),
    #[error("invalid {header} header: {reason}")]
    InvalidHeader {
        header: &'static str,
        reason: &'static str,
    },
    #[error("invalid Content-Length")]
    InvalidContentLength,
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
    #[error("body shorter than Content-Length ({expected} expected, {available} present)")]
    TruncatedBody { expected: usize, available: usize },
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    #[error("message larger than {limit} bytes")]
    TooLarge { limit: usize },
}

impl ParseErrorKind {
    pub(crate) fn header(header: &'static str, reason: &'static str) -> Self {
        Self::InvalidHeader { header, reason }
    }
}

/// A failed parse: what went wrong, and, for requests, what is needed to answer it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind}")]
pub struct ParseError {
    kind: ParseErrorKind,
    reply: Option<Box<ReplyContext>>,
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind, reply: Option<ReplyContext>) -> Self {
        Self {
            kind,
            reply: reply.map(Box::new),
        }
    }

    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// Present when the message was a request and enough of it parsed to send a response.
    pub fn reply_context(&self) -> Option<&ReplyContext> {
        self.reply.as_deref()
    }
}

impl From<ParseErrorKind> for ParseError {
    fn from(kind: ParseErrorKind) -> Self {
        Self::new(kind, None)
    }
}

/// The raw pieces of an unparseable request that a response copies verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyContext {
    /// The request-line method, when it was a valid token.
    pub method: Option<Method>,
    /// False when the request line named a SIP version other than 2.0 (answer 505).
    pub version_supported: bool,
    /// Every Via value, in order.
    pub via: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub call_id: Option<String>,
    pub cseq: Option<String>,
}

impl ReplyContext {
    /// The status RFC 3261 suggests for this broken request: 501 when the method is not one
    /// we implement (method inspection comes first, §8.2.1), 505 for a foreign SIP version,
    /// otherwise 400.
    pub fn suggested_status(&self, implemented: impl Fn(&Method) -> bool) -> u16 {
        match &self.method {
            Some(m) if !implemented(m) && !m.is_standard() => 501,
            _ if !self.version_supported => 505,
            _ => 400,
        }
    }
}
