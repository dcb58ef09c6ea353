//! Framing SIP messages out of a byte stream (TCP, TLS): push bytes as they arrive, pop
//! complete messages. Content-Length is mandatory on streams (RFC 3261 §18.3; treated as 0 when
//! absent); CRLF keepalives between messages (RFC 5626 §4.4.1) are skipped. A framing error
//! (bad Content-Length, oversized message) is fatal for the connection: the caller should
//! close it, since the position of the next message is unknown.

use thiserror::Error;

use super::SipMessage;
use super::error::{ParseError, ParseErrorKind};
use super::headers::Headers;
use super::parse::parse_datagram;

/// Incremental framer for one connection.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    max_message: usize,
    failed: bool,
}

/// Why the framer gave up on the stream.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StreamError {
    /// Framing is lost; close the connection. A response may still be possible.
    #[error("stream framing lost: {0}")]
    Fatal(ParseError),
}

impl Default for StreamFramer {
    fn default() -> Self {
        Self::new(64 * 1024)
    }
}

impl StreamFramer {
    /// `max_message`: the largest header section plus body accepted.
    pub fn new(max_message: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_message,
            failed: false,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes buffered and not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message: `None` when more bytes are needed; `Some(Ok(Err(_)))` for a
    /// framed message that failed to parse (the stream stays usable); `Some(Err(_))` when
    /// framing is lost (every later call returns `None`).
    #[allow(clippy::type_complexity)]
    pub fn pop(&mut self) -> Option<Result<Result<SipMessage, ParseError>, StreamError>> {
        if self.failed {
            return None;
        }
        let skip = self
            .buf
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(self.buf.len());
        self.buf.drain(..skip);
        let Some(head_end) = find_head_end(&self.buf) else {
            if self.buf.len() > self.max_message {
                return Some(Err(self.fail(ParseErrorKind::TooLarge {
                    limit: self.max_message,
                })));
            }
            return None;
        };
        let content_length = match head_content_length(&self.buf[..head_end]) {
            Ok(n) => n.unwrap_or(0),
            Err(kind) => {
                // Parse what we have to give the caller a chance to answer 400.
                let reply = parse_datagram(&self.buf[..head_end])
                    .err()
                    .and_then(|e| e.reply_context().cloned());
                self.failed = true;
                self.buf.clear();
                return Some(Err(StreamError::Fatal(ParseError::new(kind, reply))));
            }
        };
        let total = head_end.saturating_add(content_length);
        if total > self.max_message {
            return Some(Err(self.fail(ParseErrorKind::TooLarge {
                limit: self.max_message,
            })));
        }
        if self.buf.len() < total {
            return None;
        }
        let msg: Vec<u8> = self.buf.drain(..total).collect();
        Some(Ok(parse_datagram(&msg)))
    }

    fn fail(&mut self, kind: ParseErrorKind) -> StreamError {
        self.failed = true;
        self.buf.clear();
        StreamError::Fatal(kind.into())
    }
}

/// Index just past the empty line ending the header section (CRLF or bare LF).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = buf.get(i..)?.iter().position(|b| *b == b'\n') {
        let nl = i + off;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

/// The Content-Length of a header section, found without full parsing.
fn head_content_length(head: &[u8]) -> Result<Option<usize>, ParseErrorKind> {
    let mut headers = Headers::new();
    let text = String::from_utf8_lossy(head);
    for line in text.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim_end();
            if name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l") {
                headers.push_parsed(name, value.trim());
            }
        }
    }
    headers.content_length()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 3\r\n\r\nabc";

    #[test]
    fn frames_split_and_joined_messages() {
        let mut f = StreamFramer::default();
        f.push(b"\r\n\r\n");
        f.push(&MSG[..20]);
        assert!(f.pop().is_none());
        f.push(&MSG[20..]);
        f.push(MSG);
        f.push(&MSG[..MSG.len() - 1]);
        let m = f.pop().unwrap().unwrap().unwrap();
        assert_eq!(m.body(), b"abc");
        assert!(f.pop().unwrap().unwrap().is_ok());
        assert!(f.pop().is_none());
        f.push(b"c");
        assert!(f.pop().unwrap().unwrap().is_ok());
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn bad_content_length_is_fatal() {
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nCSeq: 1 OPTIONS\r\nContent-Length: -1\r\n\r\n");
        let Some(Err(StreamError::Fatal(e))) = f.pop() else {
            panic!("expected fatal");
        };
        assert!(e.reply_context().is_some());
        assert!(f.pop().is_none());
    }

    #[test]
    fn oversized_is_fatal() {
        let mut f = StreamFramer::new(10);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\n");
        assert!(matches!(f.pop(), Some(Err(_))));
    }
}
