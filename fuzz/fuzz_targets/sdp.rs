//! SDP: parse, serialise-and-reparse, and offer/answer against our codecs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::sdp::{AnswerParams, Codec, SessionDescription, accept_answer, build_answer, negotiate};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = SessionDescription::parse(data) else {
        return;
    };
    let text = s.to_bytes();
    let again = SessionDescription::parse(&text).expect("serialised SDP parses");
    assert_eq!(again.media.len(), s.media.len());
    let codecs = [Codec::pcmu(), Codec::pcma(), Codec::opus(111)];
    let _ = negotiate(&s, &codecs);
    if let Ok((answer, _)) = build_answer(
        &s,
        &AnswerParams {
            codecs: &codecs,
            address: "192.0.2.20".parse().unwrap(),
            port: 40000,
            session_id: 7,
            username: "agent",
        },
    ) {
        let _ = accept_answer(&s, &answer);
        assert!(SessionDescription::parse(&answer.to_bytes()).is_ok());
    }
    let _ = accept_answer(&s, &s);
});
