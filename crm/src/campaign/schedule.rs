//! Calling windows evaluated in the callee's time zone(s).
//!
//! A window is a set of weekdays and a local time range `start ≤ t < end`. A contact may have
//! several zones (derived from a country that spans several): a call may start only when every
//! one of them is inside a window. Daylight-saving changes follow the tz database: a window
//! starting inside a skipped hour opens when the clock resumes (jiff's "compatible" rule), and
//! in a repeated hour both instants count as inside.

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use store::CallingWindow;

use super::SettingsError;

/// How far ahead [`Schedule::next_open`] looks for an opening.
const LOOKAHEAD_DAYS: i32 = 15;

/// Parsed calling windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    windows: Vec<Window>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// Monday = 0.
    days: [bool; 7],
    start_min: u16,
    end_min: u16,
}

impl Schedule {
    /// Parses windows (`days`: `mon` … `sun`; `start`/`end`: `HH:MM`, start before end, both
    /// on the same day). Errors name the key, e.g. `windows[1].end`.
    pub fn parse(windows: &[CallingWindow]) -> Result<Schedule, SettingsError> {
        if windows.is_empty() {
            return Err(SettingsError::new(
                "windows",
                "give at least one calling window",
            ));
        }
        let mut out = Vec::with_capacity(windows.len());
        for (i, w) in windows.iter().enumerate() {
            let key = |k: &str| format!("windows[{i}].{k}");
            let mut days = [false; 7];
            if w.days.is_empty() {
                return Err(SettingsError::new(key("days"), "give at least one day"));
            }
            for d in &w.days {
                let Some(n) = day_index(d) else {
                    return Err(SettingsError::new(
                        key("days"),
                        format!("{d:?} is not a day (mon, tue, wed, thu, fri, sat, sun)"),
                    ));
                };
                days[n] = true;
            }
            let start_min = minutes(&w.start).ok_or_else(|| {
                SettingsError::new(key("start"), format!("{:?} is not HH:MM", w.start))
            })?;
            let end_min = minutes(&w.end).ok_or_else(|| {
                SettingsError::new(key("end"), format!("{:?} is not HH:MM", w.end))
            })?;
            if end_min <= start_min {
                return Err(SettingsError::new(
                    key("end"),
                    "must be after start (a window cannot cross midnight: split it in two)",
                ));
            }
            out.push(Window {
                days,
                start_min,
                end_min,
            });
        }
        Ok(Schedule { windows: out })
    }

    /// Whether `at_ms` (unix ms) is inside a window in zone `tz`.
    pub fn is_open_in(&self, tz: &TimeZone, at_ms: i64) -> bool {
        let Ok(ts) = Timestamp::from_millisecond(at_ms) else {
            return false;
        };
        let local = ts.to_zoned(tz.clone());
        let day = weekday_index(local.weekday());
        let minute = u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute()))
            .unwrap_or(u16::MAX);
        self.windows
            .iter()
            .any(|w| w.days[day] && w.start_min <= minute && minute < w.end_min)
    }

    /// Whether `at_ms` is inside a window in every zone of `zones`.
    pub fn is_open(&self, zones: &[TimeZone], at_ms: i64) -> bool {
        !zones.is_empty() && zones.iter().all(|tz| self.is_open_in(tz, at_ms))
    }

    /// The first instant at or after `at_ms` (unix ms) that is inside a window in every zone;
    /// `None` when there is none within two weeks (windows that never overlap across the
    /// zones).
    pub fn next_open(&self, zones: &[TimeZone], at_ms: i64) -> Option<i64> {
        if self.is_open(zones, at_ms) {
            return Some(at_ms);
        }
        // The intersection of the zones' open periods starts at one zone's window start, so
        // those starts are the only candidates.
        let at = Timestamp::from_millisecond(at_ms).ok()?;
        let mut candidates = Vec::new();
        for tz in zones {
            let today = at.to_zoned(tz.clone()).date();
            for offset in -1..=LOOKAHEAD_DAYS {
                let Ok(date) = today.checked_add(jiff::Span::new().days(offset)) else {
                    continue;
                };
                for w in &self.windows {
                    if !w.days[weekday_index(date.weekday())] {
                        continue;
                    }
                    if let Some(ms) = local_instant(tz, date, w.start_min)
                        && ms > at_ms
                    {
                        candidates.push(ms);
                    }
                }
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates.into_iter().find(|&ms| self.is_open(zones, ms))
    }
}

/// The instant of local time `minute` on `date` in `tz` (a time in a DST gap resolves to the
/// moment the clock resumes).
fn local_instant(tz: &TimeZone, date: Date, minute: u16) -> Option<i64> {
    let hour = i8::try_from(minute / 60).ok()?;
    let min = i8::try_from(minute % 60).ok()?;
    let zoned = date.at(hour, min, 0, 0).to_zoned(tz.clone()).ok()?;
    Some(zoned.timestamp().as_millisecond())
}

fn day_index(day: &str) -> Option<usize> {
    let d = day.trim().to_ascii_lowercase();
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .position(|&n| d == n || (d.len() > 3 && d.starts_with(n)))
}

fn weekday_index(day: Weekday) -> usize {
    usize::try_from(day.to_monday_zero_offset()).unwrap_or(0)
}

fn minutes(hhmm: &str) -> Option<u16> {
    let (h, m) = hhmm.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    // 24:00 is allowed as an end ("until midnight").
    (h < 24 && m < 60 || h == 24 && m == 0).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn schedule(days: &[&str], start: &str, end: &str) -> Schedule {
        Schedule::parse(&[CallingWindow {
            days: days.iter().map(|d| (*d).to_owned()).collect(),
            start: start.into(),
            end: end.into(),
        }])
        .unwrap()
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    #[test]
    fn windows_are_evaluated_in_the_callees_zone() {
        let s = schedule(&["mon", "tue", "wed", "thu", "fri"], "09:00", "20:00");
        let ny = [tz("America/New_York")];
        let tokyo = [tz("Asia/Tokyo")];
        // Tue 2026-03-03 14:00 UTC = 09:00 in New York (EST), 23:00 in Tokyo.
        let t = ms("2026-03-03T14:00:00Z");
        assert!(s.is_open(&ny, t));
        assert!(!s.is_open(&tokyo, t));
        assert!(!s.is_open(&ny, t - 1), "08:59:59.999 is before the window");
        // Tokyo opens the next morning at 09:00 JST = 00:00 UTC Wednesday.
        assert_eq!(s.next_open(&tokyo, t), Some(ms("2026-03-04T00:00:00Z")));
        // Friday 20:00 in New York: next is Monday 09:00.
        let fri_evening = ms("2026-03-07T01:00:00Z");
        assert_eq!(
            s.next_open(&ny, fri_evening),
            Some(ms("2026-03-09T13:00:00Z"))
        );
    }

    #[test]
    fn daylight_saving_moves_the_window_in_utc() {
        let s = schedule(&["sun", "mon"], "09:00", "17:00");
        let ny = [tz("America/New_York")];
        // US DST starts Sun 2026-03-08 02:00. Saturday evening → Sunday 09:00 EDT = 13:00 UTC,
        // an hour earlier in UTC than the 14:00 UTC of a winter Sunday.
        let sat = ms("2026-03-07T23:00:00Z");
        assert_eq!(s.next_open(&ny, sat), Some(ms("2026-03-08T13:00:00Z")));
        // And back: Sun 2026-11-01 (DST ends 02:00) 09:00 EST = 14:00 UTC.
        let sat = ms("2026-10-31T23:00:00Z");
        assert_eq!(s.next_open(&ny, sat), Some(ms("2026-11-01T14:00:00Z")));
    }

    #[test]
    fn a_window_starting_in_the_skipped_hour_opens_when_the_clock_resumes() {
        let s = schedule(&["sun"], "02:30", "04:00");
        let ny = [tz("America/New_York")];
        // 02:30 does not exist on 2026-03-08; the clock jumps from 02:00 EST to 03:00 EDT.
        let before = ms("2026-03-08T06:00:00Z"); // 01:00 EST
        let open = s.next_open(&ny, before).unwrap();
        assert_eq!(open, ms("2026-03-08T07:30:00Z"), "03:30 EDT");
        assert!(s.is_open(&ny, open));
    }

    #[test]
    fn several_zones_must_all_be_inside() {
        let s = schedule(&["mon", "tue", "wed", "thu", "fri"], "09:00", "20:00");
        let us = [tz("America/New_York"), tz("America/Los_Angeles")];
        // Mon 2026-06-01 13:00 UTC = 09:00 New York (EDT) but 06:00 Los Angeles.
        let t = ms("2026-06-01T13:00:00Z");
        assert!(!s.is_open(&us, t));
        // Opens at 09:00 in Los Angeles = 16:00 UTC.
        assert_eq!(s.next_open(&us, t), Some(ms("2026-06-01T16:00:00Z")));
        // Closes at 20:00 New York = 00:00 UTC.
        assert!(s.is_open(&us, ms("2026-06-01T23:59:00Z")));
        assert!(!s.is_open(&us, ms("2026-06-02T00:00:00Z")));
        // Zones whose windows never overlap have no opening.
        let apart = [tz("America/New_York"), tz("Asia/Tokyo")];
        let short = schedule(&["mon"], "09:00", "10:00");
        assert_eq!(short.next_open(&apart, t), None);
    }

    #[test]
    fn bad_windows_name_their_key() {
        let bad = |days: &[&str], start: &str, end: &str| {
            Schedule::parse(&[
                CallingWindow {
                    days: vec!["mon".into()],
                    start: "09:00".into(),
                    end: "10:00".into(),
                },
                CallingWindow {
                    days: days.iter().map(|d| (*d).to_owned()).collect(),
                    start: start.into(),
                    end: end.into(),
                },
            ])
            .unwrap_err()
            .to_string()
        };
        assert!(bad(&["funday"], "09:00", "10:00").starts_with("windows[1].days"));
        assert!(bad(&["mon"], "9am", "10:00").starts_with("windows[1].start"));
        assert!(bad(&["mon"], "10:00", "09:00").starts_with("windows[1].end"));
        assert!(bad(&[], "10:00", "11:00").starts_with("windows[1].days"));
        assert!(Schedule::parse(&[]).is_err());
        assert_eq!(minutes("24:00"), Some(1440));
        assert_eq!(minutes("24:01"), None);
        assert_eq!(day_index("Monday"), Some(0));
    }
}
