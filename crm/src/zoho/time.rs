//! Zoho's time formats.
//!
//! CRM writes ISO 8601 with a colon offset (`2019-07-25T15:26:49+05:30`, the form its
//! `If-Modified-Since` header and `Call_Start_Time` take too); Books writes the offset without
//! the colon (`2016-06-05T02:30:08-0700`). Both parse into a [`jiff::Timestamp`].

use jiff::Timestamp;
use jiff::tz::Offset;

/// Parses a CRM or Books time; `None` for anything else.
pub fn parse(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%z", text)
        .ok()?
        .to_timestamp()
        .ok()
}

/// Unix milliseconds of a Zoho time.
pub fn parse_ms(text: &str) -> Option<i64> {
    parse(text).map(|t| t.as_millisecond())
}

/// A time the way CRM wants it: `2026-12-05T10:15:00+00:00` (UTC, colon offset).
pub fn format(ts: Timestamp) -> String {
    ts.to_zoned(jiff::tz::TimeZone::fixed(Offset::UTC))
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// [`format`] for unix milliseconds (clamped into jiff's range).
pub fn format_ms(ms: i64) -> String {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    format(ts)
}

/// A call duration as CRM's `Call_Duration` wants it: `mm:ss`, minutes not capped at 59.
pub fn duration_mm_ss(ms: i64) -> String {
    let secs = (ms.max(0) + 500) / 1000;
    format!("{:02}:{:02}", secs / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crm_and_books_forms_parse_to_the_same_instant() {
        let crm = parse("2016-06-05T02:30:08-07:00").unwrap();
        let books = parse("2016-06-05T02:30:08-0700").unwrap();
        assert_eq!(crm, books);
        assert_eq!(format(crm), "2016-06-05T09:30:08+00:00");
        assert_eq!(
            parse_ms("2019-07-25T15:26:49+05:30"),
            Some(1_564_048_609_000)
        );
        assert!(parse("yesterday").is_none());
        assert!(parse("").is_none());
    }

    #[test]
    fn durations() {
        assert_eq!(duration_mm_ss(0), "00:00");
        assert_eq!(duration_mm_ss(65_400), "01:05");
        assert_eq!(duration_mm_ss(6_000_000), "100:00");
    }
}
