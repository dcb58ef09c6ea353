//! `[business_hours]`: when the business answers transfers in person. Weekly opening ranges in
//! the flow's own IANA time zone, plus holidays (closed all day).
//!
//! Times are compared on the local wall clock of the flow's time zone, so daylight-saving
//! changes need no special cases: "09:00-17:00" means nine to five local time in winter and in
//! summer, and on the changeover day a wall-clock time that does not exist (02:30 in a
//! spring-forward gap) is simply never reached.
//!
//! The time zone database is jiff's: the system copy (`/usr/share/zoneinfo`) when the machine
//! has one, the copy bundled into the binary otherwise.

use std::collections::BTreeSet;
use std::time::SystemTime;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Deserialize;

/// `[business_hours]` as written in the flow file.
///
/// ```toml
/// [business_hours]
/// timezone = "America/New_York"
/// mon = "09:00-17:00"
/// fri = "09:00-12:00, 13:00-16:00"
/// holidays = ["2025-12-25"]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BusinessHoursSpec {
    /// IANA time zone name, e.g. `America/New_York` or `Europe/Berlin`.
    pub timezone: String,
    /// Opening ranges per weekday: `"HH:MM-HH:MM"`, several separated by commas; a missing
    /// day, `""` or `"closed"` is closed. `24:00` may end a range.
    #[serde(default)]
    pub mon: Option<String>,
    #[serde(default)]
    pub tue: Option<String>,
    #[serde(default)]
    pub wed: Option<String>,
    #[serde(default)]
    pub thu: Option<String>,
    #[serde(default)]
    pub fri: Option<String>,
    #[serde(default)]
    pub sat: Option<String>,
    #[serde(default)]
    pub sun: Option<String>,
    /// Local dates (`YYYY-MM-DD`) on which the business is closed all day.
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// Validated business hours, ready to answer "open now?".
#[derive(Debug, Clone)]
pub struct BusinessHours {
    tz_name: String,
    tz: TimeZone,
    /// Monday first; minutes since local midnight, `[start, end)`, sorted, not overlapping.
    week: [Vec<(u16, u16)>; 7],
    holidays: BTreeSet<Date>,
}

/// Day keys in the file, Monday first (the order of [`BusinessHours::week`]).
pub(crate) const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl BusinessHours {
    /// Whether the business is open at `now` (converted to the flow's time zone).
    pub fn is_open(&self, now: SystemTime) -> bool {
        let Ok(ts) = jiff::Timestamp::try_from(now) else {
            // Outside jiff's range (year ±9999): no business is open then.
            return false;
        };
        let local = ts.to_zoned(self.tz.clone());
        if self.holidays.contains(&local.date()) {
            return false;
        }
        let day = usize::try_from(local.weekday().to_monday_zero_offset()).unwrap_or(0);
        let minute = u16::try_from(local.hour()).unwrap_or(0) * 60
            + u16::try_from(local.minute()).unwrap_or(0);
        self.week[day % 7]
            .iter()
            .any(|&(start, end)| start <= minute && minute < end)
    }

    /// The IANA time zone name the hours are in.
    pub fn timezone(&self) -> &str {
        &self.tz_name
    }

    /// Opening ranges of one weekday (0 = Monday) as minutes since local midnight.
    pub fn ranges(&self, weekday_from_monday: usize) -> &[(u16, u16)] {
        self.week
            .get(weekday_from_monday)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// One problem found in `[business_hours]`: the key under it and what is wrong.
pub(crate) type HoursProblem = (String, String);

/// Validates the spec and builds [`BusinessHours`]; every problem is reported.
pub(crate) fn compile(spec: &BusinessHoursSpec) -> Result<BusinessHours, Vec<HoursProblem>> {
    let mut problems = Vec::new();
    let tz = match TimeZone::get(&spec.timezone) {
        Ok(tz) => Some(tz),
        Err(_) => {
            problems.push((
                "timezone".to_string(),
                format!(
                    "unknown time zone {:?} (use an IANA name such as \"America/New_York\")",
                    spec.timezone
                ),
            ));
            None
        }
    };
    let days = [
        &spec.mon, &spec.tue, &spec.wed, &spec.thu, &spec.fri, &spec.sat, &spec.sun,
    ];
    let mut week: [Vec<(u16, u16)>; 7] = Default::default();
    for (i, value) in days.iter().enumerate() {
        let Some(value) = value else { continue };
        match parse_day(value) {
            Ok(ranges) => week[i] = ranges,
            Err(msg) => problems.push((DAYS[i].to_string(), msg)),
        }
    }
    let mut holidays = BTreeSet::new();
    for (i, h) in spec.holidays.iter().enumerate() {
        match parse_date(h) {
            Some(d) => {
                holidays.insert(d);
            }
            None => problems.push((
                format!("holidays[{i}]"),
                format!("{h:?} is not a YYYY-MM-DD date"),
            )),
        }
    }
    match tz {
        Some(tz) if problems.is_empty() => Ok(BusinessHours {
            tz_name: spec.timezone.clone(),
            tz,
            week,
            holidays,
        }),
        _ => Err(problems),
    }
}

/// `"09:00-12:00, 13:00-17:00"` → sorted ranges in minutes; `""`/`"closed"` → none.
fn parse_day(value: &str) -> Result<Vec<(u16, u16)>, String> {
    let v = value.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("closed") {
        return Ok(Vec::new());
    }
    let mut ranges = Vec::new();
    for part in v.split(',') {
        let part = part.trim();
        let bad = || format!("{part:?} is not a range like \"09:00-17:00\"");
        let (a, b) = part.split_once('-').ok_or_else(bad)?;
        let start = parse_time(a.trim()).ok_or_else(bad)?;
        let end = parse_time(b.trim()).ok_or_else(bad)?;
        if start >= 24 * 60 {
            return Err(format!("{part:?}: 24:00 can only end a range"));
        }
        if end <= start {
            return Err(format!(
                "{part:?}: the range must end after it starts (split hours past midnight across two days)"
            ));
        }
        ranges.push((start, end));
    }
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(format!("{value:?}: ranges overlap"));
        }
    }
    Ok(ranges)
}

/// `H:MM` or `HH:MM`, `00:00`..=`24:00`, as minutes.
fn parse_time(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let digits = |x: &str| !x.is_empty() && x.len() <= 2 && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || m.len() != 2 || !digits(m) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

fn parse_date(s: &str) -> Option<Date> {
    let s = s.trim();
    // jiff accepts more ISO 8601 forms; the file format promises exactly YYYY-MM-DD.
    let shape_ok = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shape_ok {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_ranges() {
        assert_eq!(parse_day("09:00-17:00"), Ok(vec![(540, 1020)]));
        assert_eq!(
            parse_day("13:00-17:00, 9:00-12:30"),
            Ok(vec![(540, 750), (780, 1020)])
        );
        assert_eq!(parse_day("closed"), Ok(vec![]));
        assert_eq!(parse_day("00:00-24:00"), Ok(vec![(0, 1440)]));
        for bad in [
            "9-17",
            "09:00",
            "17:00-09:00",
            "09:00-09:00",
            "25:00-26:00",
            "09:60-10:00",
            "24:00-24:00",
            "09:00-12:00,11:00-13:00",
            "09:00 to 17:00",
        ] {
            assert!(parse_day(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates() {
        assert!(parse_date("2025-12-25").is_some());
        assert!(parse_date("2025-02-30").is_none());
        assert!(parse_date("20251225").is_none());
        assert!(parse_date("2025-1-5").is_none());
    }
}
