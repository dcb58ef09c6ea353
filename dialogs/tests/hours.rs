//! `[business_hours]`: open/closed at the boundaries, across daylight-saving changes and on
//! holidays; bad time zones, ranges and dates are located errors; the engine's transfer tool
//! follows the result.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use common::*;
use dialogs::flow::{FlowErrorKind, parse_flow};
use dialogs::testing::MemoryServices;
use dialogs::{CallAction, CallSetup, CallerInput, Engine, Flow};

const HEAD: &str = "[flow]\nname = \"t\"\ninitial_node = \"a\"\n[nodes.a]\n";

fn flow_with(hours: &str) -> Flow {
    parse_flow(Path::new("t.toml"), &format!("{HEAD}{hours}")).expect("flow parses")
}

fn at(rfc3339: &str) -> SystemTime {
    rfc3339
        .parse::<jiff::Timestamp>()
        .expect("valid timestamp")
        .into()
}

fn new_york() -> Flow {
    flow_with(
        "[business_hours]\ntimezone = \"America/New_York\"\n\
         mon = \"09:00-17:00\"\ntue = \"09:00-17:00\"\nwed = \"09:00-17:00\"\n\
         thu = \"09:00-17:00\"\nfri = \"09:00-12:00, 13:00-17:00\"\n\
         sun = \"01:00-04:00\"\nholidays = [\"2025-12-25\"]\n",
    )
}

#[test]
fn without_business_hours_the_business_is_always_open() {
    let f = flow_with("");
    assert!(f.business_hours().is_none());
    assert!(f.business_open(at("2025-06-07T03:00:00Z")));
}

#[test]
fn opening_and_closing_minutes() {
    let f = new_york();
    assert_eq!(
        f.business_hours().map(|h| h.timezone()),
        Some("America/New_York")
    );
    // Monday 2 June 2025, EDT (UTC-4): 09:00 local is 13:00Z, 17:00 local is 21:00Z.
    assert!(!f.business_open(at("2025-06-02T12:59:59Z")), "08:59:59");
    assert!(f.business_open(at("2025-06-02T13:00:00Z")), "09:00 opens");
    assert!(f.business_open(at("2025-06-02T20:59:59Z")), "16:59:59");
    assert!(!f.business_open(at("2025-06-02T21:00:00Z")), "17:00 closes");
    // Friday has a lunch break.
    assert!(f.business_open(at("2025-06-06T15:59:00Z")), "Fri 11:59");
    assert!(!f.business_open(at("2025-06-06T16:00:00Z")), "Fri 12:00");
    assert!(!f.business_open(at("2025-06-06T16:59:00Z")), "Fri 12:59");
    assert!(f.business_open(at("2025-06-06T17:00:00Z")), "Fri 13:00");
    // Saturday has no hours at all.
    assert!(!f.business_open(at("2025-06-07T15:00:00Z")), "Sat 11:00");
}

#[test]
fn the_local_day_decides_not_the_utc_day() {
    let f = new_york();
    // Tuesday 02:00Z is still Monday 22:00 in New York: closed, though Tuesday in UTC.
    assert!(!f.business_open(at("2025-06-03T02:00:00Z")));
    // Saturday 00:30Z is Friday 20:30 local: closed.
    assert!(!f.business_open(at("2025-06-07T00:30:00Z")));
}

#[test]
fn daylight_saving_changes_keep_local_opening_times() {
    let f = new_york();
    // Friday 7 March 2025 is EST (UTC-5): 09:00 local = 14:00Z.
    assert!(!f.business_open(at("2025-03-07T13:59:00Z")));
    assert!(f.business_open(at("2025-03-07T14:00:00Z")));
    // Monday 10 March 2025, after the spring change, EDT (UTC-4): 09:00 local = 13:00Z.
    assert!(!f.business_open(at("2025-03-10T12:59:00Z")));
    assert!(f.business_open(at("2025-03-10T13:00:00Z")));
    assert!(!f.business_open(at("2025-03-10T21:00:00Z")), "17:00 EDT");
    // Monday 3 November 2025, after the autumn change, EST again: 17:00 local = 22:00Z.
    assert!(f.business_open(at("2025-11-03T21:30:00Z")), "16:30 EST");
    assert!(!f.business_open(at("2025-11-03T22:00:00Z")), "17:00 EST");
}

#[test]
fn on_the_changeover_night_the_wall_clock_decides() {
    let f = new_york();
    // Sunday 9 March 2025, 01:00-04:00 local; at 02:00 EST clocks jump to 03:00 EDT.
    assert!(!f.business_open(at("2025-03-09T05:59:00Z")), "00:59 EST");
    assert!(f.business_open(at("2025-03-09T06:00:00Z")), "01:00 EST");
    assert!(f.business_open(at("2025-03-09T06:59:00Z")), "01:59 EST");
    assert!(f.business_open(at("2025-03-09T07:00:00Z")), "03:00 EDT");
    assert!(f.business_open(at("2025-03-09T07:59:00Z")), "03:59 EDT");
    assert!(!f.business_open(at("2025-03-09T08:00:00Z")), "04:00 EDT");
    // Sunday 2 November 2025: 01:00-02:00 EDT happens, then 01:00-02:00 EST again.
    assert!(f.business_open(at("2025-11-02T05:00:00Z")), "01:00 EDT");
    assert!(
        f.business_open(at("2025-11-02T06:30:00Z")),
        "01:30 EST (second time)"
    );
    assert!(f.business_open(at("2025-11-02T08:59:00Z")), "03:59 EST");
    assert!(!f.business_open(at("2025-11-02T09:00:00Z")), "04:00 EST");
}

#[test]
fn holidays_close_the_whole_local_day() {
    let f = new_york();
    // Thursday 25 December 2025, 10:00 EST.
    assert!(!f.business_open(at("2025-12-25T15:00:00Z")));
    // Friday 26 December is a normal day.
    assert!(f.business_open(at("2025-12-26T15:00:00Z")));
    // 24 December 23:30 local is 25 December 04:30Z: the local date decides (and it is
    // outside hours anyway); 25 December 23:30 local is 26 December 04:30Z, still closed.
    assert!(!f.business_open(at("2025-12-26T04:30:00Z")));
}

#[test]
fn other_zones_work_too() {
    let f = flow_with("[business_hours]\ntimezone = \"Europe/Berlin\"\nmon = \"08:00-18:00\"\n");
    // Monday 27 October 2025, CET (UTC+1) after the European change on 26 October.
    assert!(!f.business_open(at("2025-10-27T06:59:00Z")));
    assert!(f.business_open(at("2025-10-27T07:00:00Z")));
    // Monday 20 October 2025, CEST (UTC+2).
    assert!(f.business_open(at("2025-10-20T06:00:00Z")));
    let utc = flow_with("[business_hours]\ntimezone = \"UTC\"\nmon = \"00:00-24:00\"\n");
    assert!(utc.business_open(at("2025-06-02T23:59:59Z")));
    assert!(!utc.business_open(at("2025-06-03T00:00:00Z")));
}

fn errors(hours: &str) -> Vec<(usize, String, FlowErrorKind)> {
    match parse_flow(Path::new("t.toml"), &format!("{HEAD}{hours}")) {
        Ok(_) => panic!("expected errors for {hours}"),
        Err(e) => e.0.into_iter().map(|e| (e.line, e.key, e.kind)).collect(),
    }
}

#[test]
fn bad_time_zone_ranges_and_dates_are_located_errors() {
    // HEAD is 4 lines, so [business_hours] is line 5.
    let errs = errors(
        "[business_hours]\ntimezone = \"America/New_Yrok\"\nmon = \"9-17\"\n\
         tue = \"17:00-09:00\"\nholidays = [\"2025-12-25\", \"Christmas\"]\n",
    );
    assert_eq!(errs.len(), 4, "{errs:?}");
    let (line, key, kind) = &errs[0];
    assert_eq!((*line, key.as_str()), (6, "business_hours.timezone"));
    assert!(
        matches!(kind, FlowErrorKind::UnknownTimeZone(m) if m.contains("America/New_Yrok")),
        "{kind:?}"
    );
    assert_eq!((errs[1].0, errs[1].1.as_str()), (7, "business_hours.mon"));
    assert!(matches!(errs[1].2, FlowErrorKind::BadBusinessHours(_)));
    assert_eq!((errs[2].0, errs[2].1.as_str()), (8, "business_hours.tue"));
    assert_eq!(
        (errs[3].0, errs[3].1.as_str()),
        (9, "business_hours.holidays[1]")
    );
    // Unknown keys (a misspelt day) are caught by the loader's structure check.
    let errs = errors("[business_hours]\ntimezone = \"UTC\"\nmonday = \"09:00-17:00\"\n");
    assert_eq!(errs[0].1, "business_hours.monday");
    assert!(matches!(errs[0].2, FlowErrorKind::UnknownKey(_)));
    // The time zone is required.
    let errs = errors("[business_hours]\nmon = \"09:00-17:00\"\n");
    assert_eq!(errs[0].1, "business_hours");
}

#[tokio::test]
async fn the_transfer_tool_follows_the_hours_the_call_set_up_computed() {
    let flow = flow("receptionist");
    assert!(flow.business_hours().is_some(), "receptionist has hours");
    for (when, open) in [
        ("2025-06-02T14:00:00Z", true),  // Monday 10:00 EDT
        ("2025-06-07T14:00:00Z", false), // Saturday
    ] {
        let host = Arc::new(MemoryServices::demo());
        let customer = host.customer_by_phone(JANE);
        let setup = CallSetup::new(Some(JANE))
            .with_customer(customer)
            .with_business_open(flow.business_open(at(when)));
        let mut e = Engine::new(flow.clone(), host, None, setup);
        collect(e.start()).await;
        let r = collect(e.turn(CallerInput::Speech("Put me through to a person".into()))).await;
        let transferred = r
            .actions
            .iter()
            .any(|a| matches!(a, CallAction::Transfer { name, .. } if name == "front_desk"));
        assert_eq!(transferred, open, "{when}: {}", r.text());
        assert_eq!(e.node(), if open { "transferring" } else { "after_hours" });
    }
}
