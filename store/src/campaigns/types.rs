//! The campaign vocabulary (kinds, statuses, contact states, dispositions, attempt results) and
//! the settings stored as JSON with each campaign.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::StoreError;

macro_rules! codes {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident => $code:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in documentation order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored code.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $code,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($code => Ok($name::$variant),)+
                    _ => Err(StoreError::Corrupt { what: $what, value: s.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

codes! {
    /// What a campaign calls.
    CampaignKind, "campaign kind" {
        /// A list of numbers (CSV or a customer filter).
        List => "list",
        /// The tenant's scheduled callbacks (one such campaign per tenant).
        Callbacks => "callbacks",
    }
}

codes! {
    /// Where a campaign stands.
    CampaignStatus, "campaign status" {
        /// Created, not started.
        Draft => "draft",
        /// Daemons claim and call its contacts.
        Running => "running",
        /// No new calls (by request, or on its own after too many failures); calls in
        /// progress finish.
        Paused => "paused",
        /// Every contact is done.
        Completed => "completed",
    }
}

codes! {
    /// Where a contact stands.
    ContactState, "contact state" {
        /// Waiting for its next attempt time.
        Pending => "pending",
        /// Held by a daemon (until its lease runs out).
        Claimed => "claimed",
        /// Finished; see its disposition.
        Done => "done",
    }
}

codes! {
    /// How a contact ended up (or, while pending, how its last attempt went).
    Disposition, "contact disposition" {
        /// Someone answered; the flow recorded no outcome.
        Answered => "answered",
        /// Someone answered and the flow recorded an outcome (`outcome`).
        Completed => "completed",
        /// An answering machine took the call.
        Voicemail => "voicemail",
        /// The line was busy.
        Busy => "busy",
        /// Nobody answered.
        NoAnswer => "no_answer",
        /// The number is on the do-not-call list; it was not dialled.
        Dnc => "dnc",
        /// The call could not be placed or was refused.
        Failed => "failed",
    }
}

codes! {
    /// How one attempt (call) went.
    AttemptResult, "attempt result" {
        Answered => "answered",
        Completed => "completed",
        Voicemail => "voicemail",
        Busy => "busy",
        NoAnswer => "no_answer",
        Failed => "failed",
        /// Our side stopped it (daemon shutdown before the callee answered); it does not
        /// count against the retry policy.
        Interrupted => "interrupted",
        /// The daemon placing it died; found when its lease ran out.
        Lost => "lost",
    }
}

impl AttemptResult {
    /// The contact disposition this result gives, if it is one.
    pub fn disposition(self) -> Option<Disposition> {
        Some(match self {
            AttemptResult::Answered => Disposition::Answered,
            AttemptResult::Completed => Disposition::Completed,
            AttemptResult::Voicemail => Disposition::Voicemail,
            AttemptResult::Busy => Disposition::Busy,
            AttemptResult::NoAnswer => Disposition::NoAnswer,
            AttemptResult::Failed => Disposition::Failed,
            AttemptResult::Interrupted | AttemptResult::Lost => return None,
        })
    }
}

/// A campaign's settings, stored as JSON with it. Every field has a default, so a request may
/// give only what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignSettings {
    /// When calls may start, in the callee's local time. A call starts only inside one.
    pub windows: Vec<CallingWindow>,
    /// Zone for numbers whose country gives none (and no `time_zone` column); IANA name.
    pub default_time_zone: Option<String>,
    /// Calls of this campaign at once, across all daemons.
    pub max_concurrent: u32,
    /// Call starts per second, across all daemons (0.5 = one every two seconds).
    pub calls_per_second: f64,
    /// What to do after each kind of unsuccessful attempt.
    pub retry: RetryPolicy,
    /// Pause on its own when the trunk refuses too many calls.
    pub pause_on_failures: FailurePause,
}

impl Default for CampaignSettings {
    fn default() -> Self {
        Self {
            windows: vec![CallingWindow {
                days: ["mon", "tue", "wed", "thu", "fri", "sat"]
                    .map(str::to_owned)
                    .to_vec(),
                start: "09:00".to_owned(),
                end: "20:00".to_owned(),
            }],
            default_time_zone: None,
            max_concurrent: 5,
            calls_per_second: 1.0,
            retry: RetryPolicy::default(),
            pause_on_failures: FailurePause::default(),
        }
    }
}

/// Days (`mon` … `sun`) and a local time range `start` ≤ t < `end` (`HH:MM`, 24 h).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallingWindow {
    pub days: Vec<String>,
    pub start: String,
    pub end: String,
}

/// Retry rules by how the last attempt went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    pub busy: RetryRule,
    pub no_answer: RetryRule,
    pub voicemail: RetryRule,
    pub failed: RetryRule,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            busy: RetryRule::new(3, 600),
            no_answer: RetryRule::new(3, 3600),
            // One message on the machine is enough.
            voicemail: RetryRule::new(1, 0),
            failed: RetryRule::new(3, 1800),
        }
    }
}

/// After an attempt of this kind, the contact is called again `spacing_secs` later while it
/// has had fewer than `max_attempts` attempts in all; otherwise it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRule {
    pub max_attempts: u32,
    pub spacing_secs: u64,
}

impl RetryRule {
    pub const fn new(max_attempts: u32, spacing_secs: u64) -> Self {
        Self {
            max_attempts,
            spacing_secs,
        }
    }
}

/// Pause the campaign when at least `ratio` of the last `window` attempts failed (the trunk
/// refused them or could not be reached). `ratio = 0` turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailurePause {
    pub ratio: f64,
    pub window: u32,
}

impl Default for FailurePause {
    fn default() -> Self {
        Self {
            ratio: 0.5,
            window: 20,
        }
    }
}
