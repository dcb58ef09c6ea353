//! What a campaign needs from customer data before it can run: its contacts (a CSV, or a
//! filter over the customer cache), each with a time zone (given, or derived from the number's
//! country), validated settings and calling windows ([`Schedule`]), and do-not-call CSVs.
//!
//! Shared by the admin API and `agent campaigns`/`agent dnc`, so both accept and refuse the
//! same input. Scheduling (who to call when) is the agent's `campaigns` module; it evaluates
//! windows with [`Schedule`].

mod contacts;
mod create;
mod schedule;
mod zones;

pub use contacts::{
    BadRow, CsvError, CustomerFilter, MAX_ROWS, RowProblem, contacts_from_customers,
    parse_contacts_csv, parse_dnc_csv, zone_for,
};
pub use create::{CampaignRequest, Checks, ContactSource, CreateError, create_campaign};
pub use schedule::Schedule;
pub use zones::{UnknownZone, parse_zones, zones_for_number};

use store::{CampaignSettings, RetryRule};

/// A setting that cannot be used, named by its key (`windows[0].start`, `retry.busy`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SettingsError {
    pub key: String,
    pub message: String,
}

impl SettingsError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Most calls at once a campaign may ask for.
pub const MAX_CONCURRENT: u32 = 1000;
/// Most call starts per second a campaign may ask for.
pub const MAX_CALLS_PER_SECOND: f64 = 100.0;
/// Longest retry spacing (30 days).
pub const MAX_SPACING_SECS: u64 = 30 * 24 * 3600;

/// Checks settings and parses their windows.
pub fn validate_settings(s: &CampaignSettings) -> Result<Schedule, SettingsError> {
    let schedule = Schedule::parse(&s.windows)?;
    if let Some(zone) = &s.default_time_zone {
        parse_zones(zone).map_err(|e| SettingsError::new("default_time_zone", e.to_string()))?;
    }
    if s.max_concurrent == 0 || s.max_concurrent > MAX_CONCURRENT {
        return Err(SettingsError::new(
            "max_concurrent",
            format!("must be 1 to {MAX_CONCURRENT}"),
        ));
    }
    if !(s.calls_per_second > 0.0 && s.calls_per_second <= MAX_CALLS_PER_SECOND) {
        return Err(SettingsError::new(
            "calls_per_second",
            format!("must be above 0 and at most {MAX_CALLS_PER_SECOND}"),
        ));
    }
    let rules = [
        ("retry.busy", s.retry.busy),
        ("retry.no_answer", s.retry.no_answer),
        ("retry.voicemail", s.retry.voicemail),
        ("retry.failed", s.retry.failed),
    ];
    for (
        key,
        RetryRule {
            max_attempts,
            spacing_secs,
        },
    ) in rules
    {
        if !(1..=20).contains(&max_attempts) {
            return Err(SettingsError::new(
                format!("{key}.max_attempts"),
                "must be 1 to 20",
            ));
        }
        if spacing_secs > MAX_SPACING_SECS {
            return Err(SettingsError::new(
                format!("{key}.spacing_secs"),
                "must be at most 30 days",
            ));
        }
    }
    let pause = s.pause_on_failures;
    if !(0.0..=1.0).contains(&pause.ratio) {
        return Err(SettingsError::new(
            "pause_on_failures.ratio",
            "must be 0 (off) to 1",
        ));
    }
    if pause.ratio > 0.0 && pause.window == 0 {
        return Err(SettingsError::new(
            "pause_on_failures.window",
            "must be at least 1",
        ));
    }
    Ok(schedule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        validate_settings(&CampaignSettings::default()).unwrap();
        let s = CampaignSettings {
            calls_per_second: 0.0,
            ..CampaignSettings::default()
        };
        assert_eq!(validate_settings(&s).unwrap_err().key, "calls_per_second");
        let mut s = CampaignSettings::default();
        s.retry.no_answer.max_attempts = 0;
        assert_eq!(
            validate_settings(&s).unwrap_err().key,
            "retry.no_answer.max_attempts"
        );
        let s = CampaignSettings {
            default_time_zone: Some("Nowhere/Town".into()),
            ..CampaignSettings::default()
        };
        assert_eq!(validate_settings(&s).unwrap_err().key, "default_time_zone");
        let mut s = CampaignSettings::default();
        s.windows[0].start = "25:00".into();
        assert_eq!(validate_settings(&s).unwrap_err().key, "windows[0].start");
    }
}
