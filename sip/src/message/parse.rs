//! Parsing of a complete message: start line, header section (bare LF accepted, folded lines
//! unfolded, compact names expanded), structural validation, and body framing by
//! Content-Length. Everything here returns errors; nothing indexes past a slice end.

use std::borrow::Cow;

use super::error::{ParseError, ParseErrorKind, ReplyContext};
use super::headers::Headers;
use super::scan::{is_token, parse_decimal};
use super::{Method, Request, Response, SipMessage, Uri, Version};

/// Parses one UDP datagram (RFC 3261 §18.3 framing: body by Content-Length, extra octets
/// ignored, a body shorter than Content-Length is an error, no Content-Length means the rest
/// of the datagram). Leading CR/LF (keepalives) are skipped; an all-whitespace datagram is
/// [`ParseErrorKind::Empty`].
pub fn parse_datagram(bytes: &[u8]) -> Result<SipMessage, ParseError> {
    let start = bytes
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .ok_or(ParseErrorKind::Empty)?;
    let bytes = &bytes[start..];
    let head = split_head(bytes);
    let mut lines = head.lines.into_iter();
    let start_line = lines.next().map(decode).unwrap_or_default();
    let (headers, header_err) = parse_header_lines(lines);

    if start_line.starts_with("SIP/") || start_line.starts_with("sip/") {
        let response = parse_response(&start_line, headers, header_err, head.body_start, bytes)
            .map_err(ParseError::from)?;
        return Ok(SipMessage::Response(response));
    }
    parse_request(&start_line, headers, header_err, head.body_start, bytes).map(SipMessage::Request)
}

/// The header section split into lines, and where the body starts (`None`: no empty line).
struct Head<'a> {
    lines: Vec<&'a [u8]>,
    body_start: Option<usize>,
}

fn split_head(bytes: &[u8]) -> Head<'_> {
    let mut lines = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let (line, next) = match bytes[pos..].iter().position(|b| *b == b'\n') {
            Some(i) => (&bytes[pos..pos + i], pos + i + 1),
            None => (&bytes[pos..], bytes.len()),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() && next <= bytes.len() && bytes.get(next - 1) == Some(&b'\n') {
            return Head {
                lines,
                body_start: Some(next),
            };
        }
        lines.push(line);
        pos = next;
    }
    Head {
        lines,
        body_start: None,
    }
}

/// UTF-8 when valid, otherwise Latin-1 (old gateways send ISO-8859-1 display names).
fn decode(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(b.iter().map(|&c| c as char).collect()),
    }
}

/// Unfolds and parses header lines. Returns what parsed, plus the first line error.
fn parse_header_lines<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
) -> (Headers, Option<ParseErrorKind>) {
    let mut unfolded: Vec<String> = Vec::new();
    let mut err = None;
    for line in lines {
        let text = decode(line);
        if text.contains('\r') {
            err.get_or_insert(ParseErrorKind::HeaderLine);
            continue;
        }
        if text.starts_with([' ', '\t']) {
            match unfolded.last_mut() {
                Some(prev) => {
                    prev.push(' ');
                    prev.push_str(text.trim_start_matches([' ', '\t']));
                }
                None => {
                    err.get_or_insert(ParseErrorKind::HeaderLine);
                }
            }
        } else {
            unfolded.push(text.into_owned());
        }
    }
    let mut headers = Headers::new();
    for line in &unfolded {
        let Some((name, value)) = line.split_once(':') else {
            err.get_or_insert(ParseErrorKind::HeaderLine);
            continue;
        };
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) {
            err.get_or_insert(ParseErrorKind::HeaderLine);
            continue;
        }
        headers.push_parsed(name, value.trim_matches([' ', '\t']));
    }
    (headers, err)
}

fn parse_version(s: &str) -> Result<Version, ParseErrorKind> {
    let rest = s
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("SIP/"))
        .and_then(|_| s.get(4..))
        .ok_or(ParseErrorKind::InvalidVersion)?;
    let (maj, min) = rest.split_once('.').ok_or(ParseErrorKind::InvalidVersion)?;
    let num = |d: &str| {
        parse_decimal(d, 9999)
            .map(|n| n as u32)
            .ok_or(ParseErrorKind::InvalidVersion)
    };
    Ok(Version {
        major: num(maj)?,
        minor: num(min)?,
    })
}

fn parse_request(
    start_line: &str,
    headers: Headers,
    header_err: Option<ParseErrorKind>,
    body_start: Option<usize>,
    bytes: &[u8],
) -> Result<Request, ParseError> {
    // Liberal about runs of SP/HT between and after the parts (RFC 4475 §3.1.2.9/10 allow it);
    // LWS inside the Request-URI gives a fourth part and fails (§3.1.2.8).
    let parts: Vec<&str> = start_line
        .split([' ', '\t'])
        .filter(|p| !p.is_empty())
        .collect();
    let method = parts.first().and_then(|m| Method::parse(m).ok());
    let version = parts.last().map(|v| parse_version(v));
    let ctx = reply_context(&headers, method.clone(), version.as_ref());
    let fail = |kind| ParseError::new(kind, ctx.clone());

    let [m, u, v] = parts[..] else {
        return Err(fail(ParseErrorKind::StartLine));
    };
    let method = Method::parse(m).map_err(fail)?;
    let version = parse_version(v).map_err(fail)?;
    let uri = Uri::parse(u).map_err(fail)?;
    if let Some(e) = header_err {
        return Err(fail(e));
    }
    let Some(body_start) = body_start else {
        return Err(fail(ParseErrorKind::UnterminatedHeaders));
    };
    validate_common(&headers).map_err(fail)?;
    let cseq = headers.cseq().map_err(fail)?;
    if cseq.method != method {
        return Err(fail(ParseErrorKind::CSeqMethodMismatch));
    }
    let body = frame_body(&headers, body_start, bytes).map_err(fail)?;
    Ok(Request {
        method,
        uri,
        version,
        headers,
        body,
    })
}

fn parse_response(
    start_line: &str,
    headers: Headers,
    header_err: Option<ParseErrorKind>,
    body_start: Option<usize>,
    bytes: &[u8],
) -> Result<Response, ParseErrorKind> {
    let (v, rest) = start_line
        .split_once(' ')
        .ok_or(ParseErrorKind::StartLine)?;
    let version = parse_version(v)?;
    let rest = rest.trim_start_matches(' ');
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 {
        return Err(ParseErrorKind::InvalidStatusCode);
    }
    let status = parse_decimal(code, 699)
        .filter(|c| *c >= 100)
        .ok_or(ParseErrorKind::InvalidStatusCode)? as u16;
    if let Some(e) = header_err {
        return Err(e);
    }
    let body_start = body_start.ok_or(ParseErrorKind::UnterminatedHeaders)?;
    validate_common(&headers)?;
    headers.cseq()?;
    let body = frame_body(&headers, body_start, bytes)?;
    Ok(Response {
        version,
        status,
        reason: reason.to_owned(),
        headers,
        body,
    })
}

/// The structural checks shared by requests and responses (see the module docs).
fn validate_common(h: &Headers) -> Result<(), ParseErrorKind> {
    h.via()?;
    h.from()?;
    h.to()?;
    h.call_id()?;
    h.cseq()?;
    h.max_forwards()?;
    h.contact()?;
    h.content_length()?;
    Ok(())
}

fn frame_body(h: &Headers, body_start: usize, bytes: &[u8]) -> Result<Vec<u8>, ParseErrorKind> {
    let available = bytes.len().saturating_sub(body_start);
    let rest = bytes.get(body_start..).unwrap_or(&[]);
    match h.content_length()? {
        Some(n) if n > available => Err(ParseErrorKind::TruncatedBody {
            expected: n,
            available,
        }),
        Some(n) => Ok(rest.get(..n).unwrap_or(rest).to_vec()),
        None => Ok(rest.to_vec()),
    }
}

/// Collects what a response to a broken request must copy; `None` without a Via and a CSeq
/// (a response could not be matched by the peer).
fn reply_context(
    h: &Headers,
    method: Option<Method>,
    version: Option<&Result<Version, ParseErrorKind>>,
) -> Option<ReplyContext> {
    let via: Vec<String> = h.get_all("Via").map(str::to_owned).collect();
    let cseq = h.get("CSeq").map(str::to_owned);
    if via.is_empty() || cseq.is_none() {
        return None;
    }
    Some(ReplyContext {
        method,
        version_supported: !matches!(version, Some(Ok(v)) if *v != Version::SIP_2_0),
        via,
        from: h.get("From").map(str::to_owned),
        to: h.get("To").map(str::to_owned),
        call_id: h.get("Call-ID").map(str::to_owned),
        cseq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nTo: <sip:user@example.com>\nFrom: <sip:c@example.com>;tag=1\nCall-ID: x\nCSeq: 1 OPTIONS\nContent-Length: 4\n\nbodyEXTRA";

    #[test]
    fn bare_lf_and_extra_octets() {
        let Ok(SipMessage::Request(r)) = parse_datagram(OPTIONS) else {
            panic!("parse failed");
        };
        assert_eq!(r.method, Method::Options);
        assert_eq!(r.body, b"body");
        let again = parse_datagram(&r.to_bytes()).unwrap();
        assert_eq!(again, SipMessage::Request(r));
    }

    #[test]
    fn truncated_body_is_answerable() {
        let msg = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 99\r\n\r\nv=0\r\n";
        let e = parse_datagram(msg).unwrap_err();
        assert!(matches!(
            e.kind(),
            ParseErrorKind::TruncatedBody { expected: 99, .. }
        ));
        let ctx = e.reply_context().expect("answerable");
        assert_eq!(ctx.cseq.as_deref(), Some("1 INVITE"));
        assert_eq!(ctx.suggested_status(|_| true), 400);
    }

    #[test]
    fn keepalive_and_garbage() {
        assert_eq!(
            parse_datagram(b"\r\n\r\n").unwrap_err().kind(),
            &ParseErrorKind::Empty
        );
        assert!(parse_datagram(b"hello").is_err());
        assert!(parse_datagram(b"SIP/2.0 4294967301 x\r\n\r\n").is_err());
    }
}
