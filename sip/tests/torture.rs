//! The 49 RFC 4475 torture messages (tests/torture/msgs, byte-exact), row by row against
//! tests/torture/manifest.tsv: each goes through the parser and, as a UDP datagram, through the
//! endpoint core; the responses it sends must be what the row asks for. Prints a table.
//!
//! Where our behaviour is one of several the RFC allows, or differs because we are a UA and not
//! a registrar or proxy, the row's `why` says so.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{addr, config};
use sip::message::{Contact, Method, ParseErrorKind, SipMessage, parse_datagram};
use sip::{Endpoint, Event};

include!("torture/expected.rs");

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/torture")
}

fn manifest() -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(dir().join("manifest.tsv")).expect("manifest");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((
                f.first()?.to_string(),
                (f.get(2)?.to_string(), f.get(3)?.to_string()),
            ))
        })
        .collect()
}

/// Feeds a datagram to a fresh endpoint, plays the application (rings every incoming call),
/// and returns the statuses sent plus the endpoint.
fn through_endpoint(bytes: &[u8]) -> (Vec<u16>, Vec<Vec<u8>>, Endpoint) {
    let mut ep = Endpoint::new(config("192.0.2.20:5060", 7));
    let now = common::epoch();
    ep.handle_datagram(now, addr("192.0.2.99:5060"), bytes);
    while let Some(e) = ep.poll_event() {
        if let Event::IncomingCall(ic) = e {
            ep.ringing(now, ic.call).expect("ringing");
        }
    }
    let mut statuses = Vec::new();
    let mut raw = Vec::new();
    while let Some(t) = ep.poll_transmit() {
        assert_eq!(
            t.destination,
            addr("192.0.2.99:5060"),
            "responses go to the source"
        );
        // Read the status from the start line: a response to a broken request copies its
        // broken headers verbatim, so it need not parse as a whole.
        let text = String::from_utf8_lossy(&t.payload);
        let status = text
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("core sent something that is not a response: {text}"));
        statuses.push(status);
        raw.push(t.payload);
    }
    (statuses, raw, ep)
}

#[test]
fn every_torture_message_is_handled_as_the_manifest_says() {
    let manifest = manifest();
    assert_eq!(manifest.len(), 49);
    assert_eq!(EXPECTED.len(), 49);
    let mut failures = Vec::new();
    println!("message         verdict                   parses  endpoint               why");
    for (file, parses, behaviour, why) in EXPECTED {
        let (verdict, _) = manifest
            .get(*file)
            .unwrap_or_else(|| panic!("{file} not in manifest"));
        let bytes = std::fs::read(dir().join("msgs").join(file)).expect("message file");
        let parsed = parse_datagram(&bytes);
        let (statuses, raw, ep) = through_endpoint(&bytes);
        let stats = ep.stats();
        let outcome = match (
            statuses.is_empty(),
            stats.dropped_malformed,
            stats.stray_responses,
        ) {
            (true, 1.., _) => "dropped".to_owned(),
            (true, _, 1..) => "absorbed".to_owned(),
            (true, _, _) => "nothing".to_owned(),
            _ => format!("{statuses:?}"),
        };
        println!(
            "{:<15} {:<25} {:<7} {:<22} {}",
            file,
            verdict,
            parsed.is_ok(),
            outcome,
            why
        );
        if parsed.is_ok() != *parses {
            failures.push(format!("{file}: parse {:?}", parsed.as_ref().err()));
        }
        let ok = match behaviour {
            Respond(want) => statuses == *want,
            Absorb => statuses.is_empty() && stats.stray_responses == 1,
            Drop => statuses.is_empty() && stats.dropped_malformed == 1,
        };
        if !ok {
            failures.push(format!("{file}: expected {behaviour:?}, got {outcome}"));
        }
        // Responses to well-formed requests must themselves parse.
        if *parses {
            for r in &raw {
                assert!(
                    parse_datagram(r).is_ok(),
                    "{file}: our response does not parse"
                );
            }
        }
    }
    println!(
        "{} passed, {} failed",
        EXPECTED.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

fn request(file: &str) -> sip::message::Request {
    let bytes = std::fs::read(dir().join("msgs").join(file)).expect("message file");
    match parse_datagram(&bytes) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("{file}: {other:?}"),
    }
}

fn response_headers(file: &str) -> Vec<sip::message::Response> {
    let bytes = std::fs::read(dir().join("msgs").join(file)).expect("message file");
    let (_, raw, _) = through_endpoint(&bytes);
    raw.iter()
        .filter_map(|r| match parse_datagram(r) {
            Ok(SipMessage::Response(r)) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn parser_details_the_rfc_calls_out() {
    // wsinv: folding, odd LWS, compact forms, leading zeros.
    let r = request("wsinv.dat");
    assert_eq!(r.headers.to().unwrap().tag(), Some("1918181833n"));
    assert_eq!(
        r.headers.from().unwrap().display_name.as_deref(),
        Some("J Rosenberg \\\"")
    );
    assert_eq!(r.headers.max_forwards().unwrap(), Some(68));
    assert_eq!(r.headers.cseq().unwrap().seq, 9);
    let vias = r.headers.via().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].host.to_string(), "192.168.255.111");
    let Some(Contact::List(c)) = r.headers.contact().unwrap() else {
        panic!()
    };
    assert_eq!(c[0].display_name.as_deref(), Some("Quoted string \"\""));
    assert_eq!(c[0].params.get("newparam"), Some(Some("newvalue")));
    assert_eq!(c[0].params.get("q"), Some(Some("0.33")));
    assert_eq!(r.headers.get("Subject"), Some(""));
    assert_eq!(
        r.headers.get("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(r.body.len(), 150);

    // intmeth: exotic tokens, quoted NUL, UTF-8.
    let r = request("intmeth.dat");
    assert_eq!(
        r.method,
        Method::Extension("!interesting-Method0123456789_*+`.%indeed'~".into())
    );
    let uri = r.uri.as_sip().unwrap();
    assert_eq!(
        uri.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        uri.password.as_deref(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert!(r.headers.to().unwrap().display_name.unwrap().contains('\0'));
    assert_eq!(r.headers.from().unwrap().tag(), Some("_token~1'+`*%!-."));

    // esc01 / escnull / esc02: escapes are decoded once, NUL is kept, unknown header names.
    let r = request("esc01.dat");
    assert_eq!(
        r.uri.as_sip().unwrap().user_decoded().unwrap(),
        b"sips:user@example.com"
    );
    assert_eq!(
        r.headers
            .to()
            .unwrap()
            .uri
            .as_sip()
            .unwrap()
            .user_decoded()
            .unwrap(),
        b"user"
    );
    let r = request("escnull.dat");
    assert_eq!(
        r.headers
            .to()
            .unwrap()
            .uri
            .as_sip()
            .unwrap()
            .user_decoded()
            .unwrap(),
        b"null-\0-null"
    );
    let Some(Contact::List(c)) = r.headers.contact().unwrap() else {
        panic!()
    };
    assert_eq!(c.len(), 2);
    assert_ne!(c[0].uri, c[1].uri);
    let r = request("esc02.dat");
    assert_eq!(
        r.headers.contact().unwrap().map(|c| match c {
            Contact::List(v) => v.len(),
            Contact::Any => 0,
        }),
        Some(2)
    );

    // Dotted users, ;-in-user, transports, rfc2543, contact/URI param placement.
    assert_eq!(
        request("dblreq.dat").headers.to().unwrap().uri.user(),
        Some("j.user")
    );
    assert_eq!(request("dblreq.dat").body.len(), 0);
    assert_eq!(
        request("semiuri.dat").uri.as_sip().unwrap().user.as_deref(),
        Some("user;par=u%40example.net")
    );
    assert_eq!(request("semiuri.dat").headers.get_all("Accept").count(), 6);
    let t = request("transports.dat").headers.via().unwrap();
    assert_eq!(
        t[3].transport,
        sip::message::Transport::Other("UNKNOWN".into())
    );
    let r = request("inv2543.dat");
    assert!(r.headers.top_via().unwrap().branch().is_none());
    assert_eq!(r.headers.max_forwards().unwrap(), None);
    assert_eq!(r.body.len(), 105);
    let c1 = request("cparam01.dat").headers.contact().unwrap().unwrap();
    assert!(c1.first().unwrap().params.contains("unknownparam"));
    assert!(c1.first().unwrap().uri.as_sip().unwrap().params.is_empty());
    let c2 = request("cparam02.dat").headers.contact().unwrap().unwrap();
    assert!(c2.first().unwrap().params.is_empty());
    assert!(
        c2.first()
            .unwrap()
            .uri
            .as_sip()
            .unwrap()
            .params
            .contains("unknownparam")
    );
    let c3 = request("regescrt.dat").headers.contact().unwrap().unwrap();
    let h = c3.first().unwrap().uri.as_sip().unwrap().header_pairs();
    assert_eq!(
        h,
        vec![("Route".to_owned(), "<sip:sip.example.com>".to_owned())]
    );
    assert_eq!(
        request("unksm2.dat").headers.to().unwrap().uri.scheme(),
        "isbn"
    );
    assert_eq!(request("mpart01.dat").body.len(), 553);
    assert_eq!(request("badvers.dat").version.major, 7);
    assert_eq!(
        request("zeromf.dat").headers.max_forwards().unwrap(),
        Some(0)
    );

    // Error kinds and reply context.
    let err =
        |f: &str| parse_datagram(&std::fs::read(dir().join("msgs").join(f)).unwrap()).unwrap_err();
    assert_eq!(
        err("mcl01.dat").kind(),
        &ParseErrorKind::ConflictingContentLength
    );
    assert_eq!(err("ncl.dat").kind(), &ParseErrorKind::InvalidContentLength);
    assert!(matches!(
        err("clerr.dat").kind(),
        ParseErrorKind::TruncatedBody { expected: 9999, .. }
    ));
    assert_eq!(
        err("multi01.dat").kind(),
        &ParseErrorKind::DuplicateHeader("From")
    );
    assert_eq!(
        err("mismatch01.dat").kind(),
        &ParseErrorKind::CSeqMethodMismatch
    );
    assert_eq!(
        err("baddn.dat").kind(),
        &ParseErrorKind::UnterminatedHeaders
    );
    assert!(err("bigcode.dat").reply_context().is_none());
    assert_eq!(
        err("scalar02.dat").reply_context().unwrap().cseq.as_deref(),
        Some("36893488147419103232 REGISTER")
    );
}

#[test]
fn responses_carry_what_the_rfc_asks_for() {
    let r = &response_headers("bext01.dat")[0];
    assert_eq!(
        r.headers.tokens("Unsupported"),
        vec!["nothingSupportsThis", "nothingSupportsThisEither"]
    );
    let r = &response_headers("intmeth.dat")[0];
    assert!(r.headers.contains("Allow"));
    let r = &response_headers("invut.dat")[0];
    assert_eq!(r.headers.get("Accept"), Some("application/sdp"));
    let r = &response_headers("sdp01.dat")[0];
    assert!(r.headers.get("Warning").unwrap().starts_with("399 "));
    let r = &response_headers("regaut01.dat")[0];
    assert!(r.headers.contains("Allow"));
    let r = &response_headers("esc01.dat");
    assert!(
        r[0].headers.to().unwrap().tag().is_none(),
        "100 Trying has no To tag"
    );
    assert!(r[1].headers.to().unwrap().tag().is_some());
    assert!(r[1].headers.contains("Contact"));
    // The 400 to scalar02 copies its overlong CSeq verbatim (so the sender can match it) and
    // adds a To tag.
    let bytes = std::fs::read(dir().join("msgs").join("scalar02.dat")).unwrap();
    let (_, raw, _) = through_endpoint(&bytes);
    let text = String::from_utf8_lossy(&raw[0]).into_owned();
    assert!(text.starts_with("SIP/2.0 400 Bad Request\r\n"));
    assert!(text.contains("CSeq: 36893488147419103232 REGISTER\r\n"));
    assert!(text.contains("To: <sip:user@example.com>;tag="));
    assert!(text.contains("Warning: 399 "));
}
