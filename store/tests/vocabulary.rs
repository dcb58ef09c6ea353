//! The stored codes are documented in one place (`store::vocabulary`) and ARCHITECTURE.md
//! carries the same tables. This test regenerates the tables from the enums and fails when the
//! document differs, printing the section to paste.

use store::{EndReason, EventKind};

fn table(rows: impl Iterator<Item = (String, &'static str)>) -> String {
    let mut out = String::from("| code | meaning |\n|---|---|\n");
    for (code, meaning) in rows {
        out.push_str(&format!("| `{code}` | {meaning} |\n"));
    }
    out
}

fn section(doc: &str, name: &str) -> Option<String> {
    let begin = format!("<!-- {name}: generated from store/src/vocabulary.rs -->\n");
    let end = format!("<!-- end {name} -->");
    let start = doc.find(&begin)? + begin.len();
    let stop = doc[start..].find(&end)? + start;
    Some(doc[start..stop].to_owned())
}

#[test]
fn architecture_md_lists_every_stored_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ARCHITECTURE.md");
    let doc = std::fs::read_to_string(path).expect("ARCHITECTURE.md");
    let ends = table(
        EndReason::ALL
            .iter()
            .map(|r| (r.as_str().to_owned(), r.meaning())),
    );
    let events = table(
        EventKind::ALL
            .iter()
            .map(|k| (k.as_str().to_owned(), k.meaning())),
    );
    for (name, expected) in [("end reasons", ends), ("event kinds", events)] {
        assert_eq!(
            section(&doc, name).as_deref(),
            Some(expected.as_str()),
            "ARCHITECTURE.md's {name} differ from store::vocabulary; the section should read:\n\
             <!-- {name}: generated from store/src/vocabulary.rs -->\n{expected}<!-- end {name} -->"
        );
    }
}

#[test]
fn codes_round_trip_and_unknown_codes_are_kept() {
    for r in EndReason::ALL {
        assert_eq!(&EndReason::from_code(r.as_str()), r);
        assert!(!r.meaning().is_empty());
    }
    for k in EventKind::ALL {
        assert_eq!(&EventKind::from_code(k.as_str()), k);
    }
    let mut codes: Vec<_> = EventKind::ALL.iter().map(EventKind::as_str).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), EventKind::ALL.len(), "a code is used twice");
    assert_eq!(
        EndReason::from_code("wrong_person"),
        EndReason::Flow("wrong_person".to_owned())
    );
    assert_eq!(
        serde_json::to_string(&EndReason::CallerHangup).unwrap(),
        "\"caller_hangup\""
    );
    let kind: EventKind = serde_json::from_str("\"from_the_future\"").unwrap();
    assert_eq!(kind, EventKind::Other("from_the_future".to_owned()));
    assert_eq!(kind, "from_the_future");
}
