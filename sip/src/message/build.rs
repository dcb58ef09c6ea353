//! Building responses from requests (RFC 3261 §8.2.6.2): copy Via, From, Call-ID and CSeq,
//! copy To and add our tag, and the same from the [`ReplyContext`] of a request that failed to
//! parse.

use super::error::ReplyContext;
use super::{Request, Response, reason_phrase};

/// A response to `req` with the standard reason phrase. `to_tag` is added to To when To has
/// no tag yet and the status is not 100.
pub fn response_to(req: &Request, status: u16, to_tag: Option<&str>) -> Response {
    let mut resp = Response::new(status, reason_phrase(status));
    for v in req.headers.get_all("Via") {
        resp.headers.push("Via", v);
    }
    if let Some(v) = req.headers.get("From") {
        resp.headers.push("From", v);
    }
    if let Some(v) = req.headers.get("To") {
        let has_tag = req.headers.to().is_ok_and(|t| t.tag().is_some());
        resp.headers
            .push("To", with_tag(v, has_tag, status, to_tag));
    }
    if let Some(v) = req.headers.get("Call-ID") {
        resp.headers.push("Call-ID", v);
    }
    if let Some(v) = req.headers.get("CSeq") {
        resp.headers.push("CSeq", v);
    }
    resp
}

/// A response built from the raw headers of an unparseable request.
pub fn error_response(ctx: &ReplyContext, status: u16, to_tag: Option<&str>) -> Response {
    let mut resp = Response::new(status, reason_phrase(status));
    for v in &ctx.via {
        resp.headers.push("Via", v.as_str());
    }
    if let Some(v) = &ctx.from {
        resp.headers.push("From", v.as_str());
    }
    if let Some(v) = &ctx.to {
        let has_tag = v.to_ascii_lowercase().contains(";tag=") || v.contains("tag =");
        resp.headers
            .push("To", with_tag(v, has_tag, status, to_tag));
    }
    if let Some(v) = &ctx.call_id {
        resp.headers.push("Call-ID", v.as_str());
    }
    if let Some(v) = &ctx.cseq {
        resp.headers.push("CSeq", v.as_str());
    }
    resp
}

fn with_tag(to: &str, has_tag: bool, status: u16, to_tag: Option<&str>) -> String {
    match to_tag {
        Some(tag) if !has_tag && status != 100 => format!("{to};tag={tag}"),
        _ => to.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{SipMessage, parse_datagram};

    #[test]
    fn copies_and_tags() {
        let raw = b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP p\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 2 BYE\r\n\r\n";
        let Ok(SipMessage::Request(req)) = parse_datagram(raw) else {
            panic!()
        };
        let r = response_to(&req, 200, Some("abc"));
        assert_eq!(r.headers.count("Via"), 2);
        assert_eq!(r.headers.to().unwrap().tag(), Some("abc"));
        let again = response_to(&req, 100, Some("abc"));
        assert_eq!(again.headers.to().unwrap().tag(), None);
        assert!(parse_datagram(&r.to_bytes()).is_ok());
    }
}
