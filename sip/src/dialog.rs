//! Dialog state (RFC 3261 §12): identifiers, CSeq spaces, remote target and route set, and
//! building requests inside the dialog (BYE now; re-INVITE, UPDATE, REFER, INFO later).

use std::net::SocketAddr;

use crate::message::{Method, NameAddr, ParseErrorKind, Request, Response, Uri};

/// The identity of a dialog as seen from our side.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogKey {
    pub call_id: String,
    pub local_tag: String,
    /// Empty for RFC 2543 peers that send no tag.
    pub remote_tag: String,
}

/// One dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// Last CSeq number we used.
    pub local_seq: u32,
    /// Highest CSeq number the peer used, once known.
    pub remote_seq: Option<u32>,
    /// Our address (From of our requests), with our tag.
    pub local_uri: NameAddr,
    /// The peer's address (To of our requests), with its tag.
    pub remote_uri: NameAddr,
    /// Where in-dialog requests are addressed (the peer's Contact).
    pub remote_target: Uri,
    /// Route set, in the order our requests must carry it.
    pub route_set: Vec<NameAddr>,
    /// The address the peer's messages came from (symmetric signalling).
    pub peer: SocketAddr,
}

impl Dialog {
    /// The UAS side of a dialog created by `invite` and our 2xx with `local_tag`.
    pub fn uas(
        invite: &Request,
        local_tag: &str,
        local_seq: u32,
        peer: SocketAddr,
    ) -> Result<Self, ParseErrorKind> {
        let from = invite.headers.from()?;
        let to = invite.headers.to()?;
        // RFC 2543 peers may omit Contact; fall back to the From URI (requests then go to the
        // source address anyway with symmetric signalling).
        let remote_target = match invite.headers.contact()?.and_then(|c| c.first().cloned()) {
            Some(c) => c.uri,
            None => from.uri.clone(),
        };
        Ok(Self {
            call_id: invite.headers.call_id()?.to_owned(),
            local_tag: local_tag.to_owned(),
            remote_tag: from.tag().unwrap_or_default().to_owned(),
            local_seq,
            remote_seq: Some(invite.headers.cseq()?.seq),
            local_uri: to.with_tag(local_tag),
            remote_uri: from,
            remote_target,
            route_set: invite.headers.record_route()?,
            peer,
        })
    }

    /// The UAC side of a dialog created by our `invite` and the peer's 2xx (or 1xx with a tag).
    pub fn uac(
        invite: &Request,
        resp: &Response,
        peer: SocketAddr,
    ) -> Result<Self, ParseErrorKind> {
        let from = invite.headers.from()?;
        let to = resp.headers.to()?;
        let remote_target = match resp.headers.contact()?.and_then(|c| c.first().cloned()) {
            Some(c) => c.uri,
            None => invite.uri.clone(),
        };
        let mut route_set = resp.headers.record_route()?;
        route_set.reverse();
        Ok(Self {
            call_id: invite.headers.call_id()?.to_owned(),
            local_tag: from.tag().unwrap_or_default().to_owned(),
            remote_tag: to.tag().unwrap_or_default().to_owned(),
            local_seq: invite.headers.cseq()?.seq,
            remote_seq: None,
            local_uri: from,
            remote_uri: to,
            remote_target,
            route_set,
            peer,
        })
    }

    pub fn key(&self) -> DialogKey {
        DialogKey {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone(),
        }
    }

    /// Checks and records the CSeq of an in-dialog request from the peer; `false` when it is
    /// lower than one already seen (answer 500, RFC 3261 §12.2.2).
    pub fn accept_remote_seq(&mut self, seq: u32) -> bool {
        match self.remote_seq {
            Some(r) if seq < r => false,
            _ => {
                self.remote_seq = Some(seq);
                true
            }
        }
    }

    /// A new in-dialog request (not ACK) with the next CSeq number and `via` as its only Via
    /// value. Route handling follows RFC 3261 §12.2.1.1 (loose routing; strict routing when
    /// the first route lacks `;lr`).
    pub fn request(&mut self, method: Method, via: &str) -> Request {
        self.local_seq = self.local_seq.wrapping_add(1);
        let seq = self.local_seq;
        self.build(method, seq, via)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq`.
    pub fn ack(&self, invite_seq: u32, via: &str) -> Request {
        self.build(Method::Ack, invite_seq, via)
    }

    fn build(&self, method: Method, seq: u32, via: &str) -> Request {
        let strict = self
            .route_set
            .first()
            .and_then(|r| r.uri.as_sip())
            .is_some_and(|u| !u.params.contains("lr"));
        let (uri, routes): (Uri, Vec<String>) = if strict {
            let mut routes: Vec<String> = self.route_set[1..]
                .iter()
                .map(ToString::to_string)
                .collect();
            routes.push(format!("<{}>", self.remote_target));
            (self.route_set[0].uri.clone(), routes)
        } else {
            (
                self.remote_target.clone(),
                self.route_set.iter().map(ToString::to_string).collect(),
            )
        };
        let mut req = Request::new(method.clone(), uri);
        req.headers.push("Via", via);
        req.headers.push("Max-Forwards", "70");
        req.headers.push("From", self.local_uri.to_string());
        req.headers.push("To", self.remote_uri.to_string());
        req.headers.push("Call-ID", self.call_id.as_str());
        req.headers.push("CSeq", format!("{seq} {method}"));
        for r in routes {
            req.headers.push("Route", r);
        }
        req
    }

    /// Where to send in-dialog requests: the first route's or the remote target's address when
    /// it is an IP literal and `symmetric` is off; otherwise the address the peer used.
    pub fn destination(&self, symmetric: bool) -> SocketAddr {
        let next_hop = match self.route_set.first() {
            Some(r) => r.uri.as_sip().and_then(|u| u.socket_addr()),
            None if symmetric => None,
            None => self.remote_target.as_sip().and_then(|u| u.socket_addr()),
        };
        next_hop.unwrap_or(self.peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{SipMessage, build::response_to, parse_datagram};

    fn invite() -> Request {
        let raw = b"INVITE sip:agent@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\nRecord-Route: <sip:p1@192.0.2.5;lr>, <sip:p2@192.0.2.6;lr>\r\nTo: <sip:agent@10.0.0.1>\r\nFrom: \"Alice\" <sip:alice@192.0.2.1>;tag=ft\r\nCall-ID: cid\r\nCSeq: 10 INVITE\r\nContact: <sip:alice@192.0.2.1:5072>\r\n\r\n";
        match parse_datagram(raw) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn uas_dialog_builds_bye_with_route_set() {
        let peer = "192.0.2.5:5060".parse().unwrap();
        let mut d = Dialog::uas(&invite(), "lt", 1, peer).unwrap();
        assert_eq!(d.key().remote_tag, "ft");
        assert!(!d.accept_remote_seq(9));
        assert!(d.accept_remote_seq(11));
        let bye = d.request(Method::Bye, "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKb");
        assert_eq!(bye.uri.to_string(), "sip:alice@192.0.2.1:5072");
        assert_eq!(bye.headers.cseq().unwrap().to_string(), "2 BYE");
        assert_eq!(bye.headers.from().unwrap().tag(), Some("lt"));
        assert_eq!(bye.headers.to().unwrap().tag(), Some("ft"));
        let routes: Vec<_> = bye.headers.get_all("Route").collect();
        assert_eq!(
            routes,
            vec!["<sip:p1@192.0.2.5;lr>", "<sip:p2@192.0.2.6;lr>"]
        );
        assert_eq!(d.destination(true), "192.0.2.5:5060".parse().unwrap());
    }

    #[test]
    fn uac_dialog_reverses_record_route_and_strict_routes() {
        let inv = invite();
        let mut ok = response_to(&inv, 200, Some("rt"));
        ok.headers.push("Record-Route", "<sip:p1@192.0.2.5;lr>");
        ok.headers.push("Record-Route", "<sip:p2@192.0.2.6>");
        ok.headers.push("Contact", "<sip:bob@192.0.2.9>");
        let peer = "192.0.2.6:5060".parse().unwrap();
        let mut d = Dialog::uac(&inv, &ok, peer).unwrap();
        assert_eq!(d.remote_tag, "rt");
        assert_eq!(d.local_tag, "ft");
        let ack = d.ack(10, "SIP/2.0/UDP h;branch=z9hG4bKc");
        assert_eq!(ack.headers.cseq().unwrap().to_string(), "10 ACK");
        let bye = d.request(Method::Bye, "SIP/2.0/UDP h;branch=z9hG4bKd");
        assert_eq!(bye.headers.cseq().unwrap().seq, 11);
        // The first route (p2) lacks ;lr: strict routing puts it in the Request-URI.
        assert_eq!(bye.uri.to_string(), "sip:p2@192.0.2.6");
        let routes: Vec<_> = bye.headers.get_all("Route").collect();
        assert_eq!(routes, vec!["<sip:p1@192.0.2.5;lr>", "<sip:bob@192.0.2.9>"]);
        assert_eq!(d.destination(false), "192.0.2.6:5060".parse().unwrap());
        d.route_set.clear();
        assert_eq!(d.destination(false), "192.0.2.9:5060".parse().unwrap());
        assert_eq!(d.destination(true), peer);
    }
}
