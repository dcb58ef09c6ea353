//! How a placed call counts for a campaign: `run_outbound`'s result → an attempt result, and
//! whether the trunk is to blame (backoff, failure pause).

use store::{AttemptResult, EndReason};

use super::scheduler::CallEnd;
use crate::calls::{OutboundError, OutboundResult};
use crate::trunks::DestinationError;

/// Classifies a call placed by a campaign. `outcome` is the flow's last recorded outcome
/// (call event `outcome`), if any.
pub fn classify(
    seq: i64,
    result: &Result<OutboundResult, OutboundError>,
    outcome: Option<String>,
) -> CallEnd {
    let mut end = CallEnd {
        seq: Some(seq),
        result: AttemptResult::Failed,
        trunk_failure: false,
        permanent: false,
        campaign_fault: None,
        call_id: None,
        end_reason: None,
        detail: None,
        outcome: None,
    };
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            end.detail = Some(e.to_string());
            match e {
                OutboundError::Destination(DestinationError::NotAllowed { trunk, .. }) => {
                    end.permanent = true;
                    end.detail = Some(format!("not in trunks.{trunk}.allowed_destinations"));
                }
                OutboundError::Destination(DestinationError::NotAllowedLiveKit {
                    trunk, ..
                }) => {
                    end.permanent = true;
                    end.detail = Some(format!(
                        "not in livekit.outbound_trunks.{trunk}.allowed_destinations"
                    ));
                }
                OutboundError::Destination(DestinationError::UnknownTrunk(t)) => {
                    end.result = AttemptResult::Interrupted;
                    end.campaign_fault = Some(format!("trunk {t:?} is not configured"));
                }
                OutboundError::UnknownFlow(f) => {
                    end.result = AttemptResult::Interrupted;
                    end.campaign_fault = Some(format!("flow {f:?} is not loaded"));
                }
                _ => {}
            }
            return end;
        }
    };
    end.call_id = Some(r.call_id.clone());
    end.end_reason = Some(r.end_reason.as_str().to_owned());
    end.detail = r.detail.clone();
    if r.answered {
        end.result = if r.end_reason == EndReason::Voicemail {
            AttemptResult::Voicemail
        } else if outcome.is_some() {
            AttemptResult::Completed
        } else {
            AttemptResult::Answered
        };
        end.outcome = outcome;
        return end;
    }
    end.result = match r.end_reason {
        EndReason::Busy => AttemptResult::Busy,
        EndReason::NoAnswer | EndReason::RingTimeout => AttemptResult::NoAnswer,
        EndReason::DaemonShutdown | EndReason::LocalCancel => AttemptResult::Interrupted,
        _ => AttemptResult::Failed,
    };
    end.trunk_failure = match r.end_reason {
        EndReason::Unreachable
        | EndReason::DialFailed
        | EndReason::Timeout
        | EndReason::TransportError
        | EndReason::AuthFailed => true,
        // The trunk's own refusals (credentials, policy, overload) as opposed to the callee's
        // (404, 486, 603): by the status in the detail, e.g. "403 Forbidden".
        EndReason::Rejected | EndReason::RemoteRejected => r
            .detail
            .as_deref()
            .and_then(|d| d.split([' ', ':']).next())
            .and_then(|s| s.parse::<u16>().ok())
            .is_some_and(|s| matches!(s, 401 | 403 | 407 | 500..=599)),
        _ => false,
    };
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_connected(reason: EndReason, detail: &str) -> Result<OutboundResult, OutboundError> {
        Ok(OutboundResult {
            call_id: store::CallId::new("c"),
            end_reason: reason,
            answered: false,
            detail: Some(detail.to_owned()),
        })
    }

    #[test]
    fn results_and_trunk_blame() {
        let c = |r| classify(1, &r, None);
        let busy = c(not_connected(EndReason::Busy, "486 Busy Here"));
        assert_eq!(
            (busy.result, busy.trunk_failure),
            (AttemptResult::Busy, false)
        );
        let none = c(not_connected(EndReason::NoAnswer, "not answered"));
        assert_eq!(none.result, AttemptResult::NoAnswer);
        let gone = c(not_connected(
            EndReason::Unreachable,
            "503 Service Unavailable",
        ));
        assert_eq!(
            (gone.result, gone.trunk_failure),
            (AttemptResult::Failed, true)
        );
        let forbidden = c(not_connected(EndReason::Rejected, "403 Forbidden"));
        assert!(forbidden.trunk_failure);
        let declined = c(not_connected(EndReason::Rejected, "603 Decline"));
        assert_eq!(
            (declined.result, declined.trunk_failure),
            (AttemptResult::Failed, false)
        );
        let creds = c(not_connected(
            EndReason::Rejected,
            "407: the trunk refused our credentials",
        ));
        assert!(creds.trunk_failure);
        let stopped = c(not_connected(EndReason::DaemonShutdown, "local cancel"));
        assert_eq!(stopped.result, AttemptResult::Interrupted);
    }

    #[test]
    fn answered_calls_carry_the_flow_outcome_or_the_machine() {
        let answered = |reason| {
            Ok(OutboundResult {
                call_id: store::CallId::new("c"),
                end_reason: reason,
                answered: true,
                detail: None,
            })
        };
        let done = classify(
            1,
            &answered(EndReason::FlowCompleted),
            Some("callback".into()),
        );
        assert_eq!(done.result, AttemptResult::Completed);
        assert_eq!(done.outcome.as_deref(), Some("callback"));
        let hung_up = classify(1, &answered(EndReason::CallerHangup), None);
        assert_eq!(hung_up.result, AttemptResult::Answered);
        let machine = classify(1, &answered(EndReason::Voicemail), Some("x".into()));
        assert_eq!(machine.result, AttemptResult::Voicemail);
    }

    #[test]
    fn refusals_before_dialling() {
        let not_allowed = classify(
            1,
            &Err(OutboundError::Destination(DestinationError::NotAllowed {
                trunk: "kam".into(),
                number: "+15550000000".into(),
            })),
            None,
        );
        assert!(not_allowed.permanent);
        assert!(
            !not_allowed.detail.unwrap().contains("555"),
            "no number in the detail"
        );
        let flow = classify(1, &Err(OutboundError::UnknownFlow("x".into())), None);
        assert_eq!(flow.result, AttemptResult::Interrupted);
        assert!(flow.campaign_fault.unwrap().contains("flow"));
    }
}
