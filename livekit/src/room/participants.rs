//! Which participant is the phone caller, and what changed about it. Pure logic over
//! `ParticipantInfo` snapshots (JoinResponse `other_participants`, ParticipantUpdate).
//!
//! A SIP participant has `kind = SIP` (livekit_models.proto `ParticipantInfo.Kind.SIP = 3`) or,
//! from older servers, `sip.*` attributes (`livekit/protocol:livekit/attrs.go`).

use std::collections::BTreeMap;

use livekit_protocol as proto;
use proto::participant_info::{Kind, State};

/// `sip.callStatus` values (`livekit/sip:pkg/sip/participant.go` `CallStatus.Attribute()`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallStatus {
    Dialing,
    Ringing,
    /// Answered by an automation (IVR) — LiveKit's own value.
    Automation,
    /// The call is up: "SIP participant is ready when it reaches `active`".
    Active,
    Hangup,
    /// A value this crate does not know, kept verbatim.
    Other(String),
}

impl CallStatus {
    pub fn parse(value: &str) -> Self {
        match value {
            "dialing" => Self::Dialing,
            "ringing" => Self::Ringing,
            "automation" => Self::Automation,
            "active" => Self::Active,
            "hangup" => Self::Hangup,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// The phone caller as a room participant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SipParticipant {
    pub sid: String,
    pub identity: String,
    pub name: String,
    /// `sip.phoneNumber`: the caller for inbound calls, the callee for outbound ones.
    pub phone_number: Option<String>,
    /// `sip.trunkPhoneNumber`: the number that was dialled (inbound).
    pub trunk_phone_number: Option<String>,
    /// `sip.callID`.
    pub call_id: Option<String>,
    /// `sip.callStatus`, if the server reports it.
    pub call_status: Option<CallStatus>,
    /// All attributes (including `sip.h.*` mapped headers).
    pub attributes: BTreeMap<String, String>,
    /// Track sids of its published audio tracks.
    pub audio_tracks: Vec<String>,
}

impl SipParticipant {
    /// The SIP participant described by `info`, if it is one.
    pub fn from_info(info: &proto::ParticipantInfo) -> Option<Self> {
        let by_kind = info.kind == Kind::Sip as i32;
        let by_attributes = info.attributes.keys().any(|k| k.starts_with("sip."));
        if !by_kind && !by_attributes {
            return None;
        }
        let attributes: BTreeMap<String, String> = info
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let get = |key: &str| attributes.get(key).filter(|v| !v.is_empty()).cloned();
        Some(Self {
            sid: info.sid.clone(),
            identity: info.identity.clone(),
            name: info.name.clone(),
            phone_number: get("sip.phoneNumber"),
            trunk_phone_number: get("sip.trunkPhoneNumber"),
            call_id: get("sip.callID"),
            call_status: get("sip.callStatus").map(|s| CallStatus::parse(&s)),
            audio_tracks: info
                .tracks
                .iter()
                .filter(|t| t.r#type == proto::TrackType::Audio as i32)
                .map(|t| t.sid.clone())
                .collect(),
            attributes,
        })
    }
}

/// What a participant snapshot meant for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// First sight of the SIP participant, or its attributes / tracks changed.
    Updated(SipParticipant),
    /// The SIP participant disconnected.
    Left(SipParticipant),
}

/// Follows the SIP participant across snapshots. The first SIP participant seen is the one
/// the call is about; others are ignored.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    current: Option<SipParticipant>,
    left: bool,
}

impl Tracker {
    pub(crate) fn current(&self) -> Option<&SipParticipant> {
        self.current.as_ref()
    }

    /// Applies one snapshot.
    pub(crate) fn apply(&mut self, info: &proto::ParticipantInfo) -> Option<Change> {
        if self.left {
            return None;
        }
        if let Some(current) = &self.current
            && current.sid != info.sid
            && current.identity != info.identity
        {
            return None;
        }
        let sip = SipParticipant::from_info(info)?;
        if info.state == State::Disconnected as i32 {
            self.left = true;
            return Some(Change::Left(sip));
        }
        if self.current.as_ref() == Some(&sip) {
            return None;
        }
        self.current = Some(sip.clone());
        Some(Change::Updated(sip))
    }

    /// True if `participant_sid` is the SIP participant.
    pub(crate) fn is_sip(&self, participant_sid: &str) -> bool {
        self.current
            .as_ref()
            .is_some_and(|p| p.sid == participant_sid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip_info(status: &str, state: State) -> proto::ParticipantInfo {
        let mut info = proto::ParticipantInfo {
            sid: "PA_sip".into(),
            identity: "sip_+15551230000".into(),
            kind: Kind::Sip as i32,
            state: state as i32,
            ..Default::default()
        };
        for (k, v) in [
            ("sip.phoneNumber", "+15551230000"),
            ("sip.trunkPhoneNumber", "+15559870000"),
            ("sip.callID", "SCL_1"),
            ("sip.callStatus", status),
        ] {
            info.attributes.insert(k.into(), v.into());
        }
        info
    }

    #[test]
    fn sip_participant_is_found_by_kind_or_attributes_and_followed() {
        let mut tracker = Tracker::default();
        let standard = proto::ParticipantInfo {
            sid: "PA_x".into(),
            identity: "someone".into(),
            ..Default::default()
        };
        assert_eq!(tracker.apply(&standard), None);
        let Some(Change::Updated(p)) = tracker.apply(&sip_info("ringing", State::Active)) else {
            panic!("expected the SIP participant");
        };
        assert_eq!(p.phone_number.as_deref(), Some("+15551230000"));
        assert_eq!(p.trunk_phone_number.as_deref(), Some("+15559870000"));
        assert_eq!(p.call_id.as_deref(), Some("SCL_1"));
        assert_eq!(p.call_status, Some(CallStatus::Ringing));
        // The same snapshot again changes nothing; a new status does.
        assert_eq!(tracker.apply(&sip_info("ringing", State::Active)), None);
        assert!(matches!(
            tracker.apply(&sip_info("active", State::Active)),
            Some(Change::Updated(p)) if p.call_status == Some(CallStatus::Active)
        ));
        assert!(tracker.is_sip("PA_sip"));
        assert!(matches!(
            tracker.apply(&sip_info("hangup", State::Disconnected)),
            Some(Change::Left(_))
        ));
        assert_eq!(tracker.apply(&sip_info("active", State::Active)), None);

        // Attributes alone (no kind) are enough.
        let mut by_attr = sip_info("active", State::Active);
        by_attr.kind = Kind::Standard as i32;
        assert!(SipParticipant::from_info(&by_attr).is_some());
    }
}
