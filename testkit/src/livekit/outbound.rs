//! `CreateSIPParticipant` as LiveKit SIP serves it: the callee is dialled through the named
//! outbound trunk and put in the room as a SIP participant (identity `sip_<sip_call_to>` unless
//! the request names one, `sip.phoneNumber` = the callee, `sip.trunkID` = the trunk). With
//! `wait_until_answered` the request returns once the callee answered, or fails with the SIP
//! status in the twirp error's meta (`sip_status_code`, `sip_status`), as the SDKs read it;
//! without it the participant is in the room at once with `sip.callStatus = dialing`, becomes
//! `active` on answer, or leaves with `hangup`.
//!
//! How each number answers is set by the test ([`super::FakeLiveKit::set_callee`]); a number
//! not set answers at once and says nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use livekit::proto;

use super::rtc::{Command, RoomState};
use super::{Shared, SipCall, media};

/// How a number dialled with `CreateSIPParticipant` responds.
#[derive(Debug, Clone)]
pub enum Callee {
    /// Picks up after `after` (it rings meanwhile); plays `wav` (16 or 8 kHz mono) once
    /// media is up, silence after it.
    Answers {
        after: Duration,
        wav: Option<PathBuf>,
    },
    /// The call fails after `after` with this final SIP status (486 busy, 480 no answer, 404).
    Fails { after: Duration, status: u16 },
}

impl Default for Callee {
    fn default() -> Self {
        Self::Answers {
            after: Duration::ZERO,
            wav: None,
        }
    }
}

/// Why a dial failed, for the twirp error.
pub(crate) struct DialFailure {
    pub(crate) status: u16,
}

impl DialFailure {
    /// `SIPStatusCode` enum name as the server puts it in `sip_status`.
    pub(crate) fn status_name(&self) -> &'static str {
        match self.status {
            400 => "SIP_STATUS_BAD_REQUEST",
            403 => "SIP_STATUS_FORBIDDEN",
            404 => "SIP_STATUS_NOTFOUND",
            408 => "SIP_STATUS_REQUEST_TIMEOUT",
            480 => "SIP_STATUS_TEMPORARILY_UNAVAILABLE",
            486 => "SIP_STATUS_BUSY_HERE",
            487 => "SIP_STATUS_REQUEST_TERMINATED",
            503 => "SIP_STATUS_SERVICE_UNAVAILABLE",
            600 => "SIP_STATUS_GLOBAL_BUSY_EVERYWHERE",
            603 => "SIP_STATUS_GLOBAL_DECLINE",
            _ => "SIP_STATUS_UNKNOWN",
        }
    }
}

/// Dials `req.sip_call_to`; returns the participant once it is in the room (and answered, with
/// `wait_until_answered`).
pub(crate) async fn create_sip_participant(
    shared: &Arc<Shared>,
    req: &proto::CreateSipParticipantRequest,
) -> Result<proto::SipParticipantInfo, DialFailure> {
    let callee = shared
        .lock()
        .callees
        .get(&req.sip_call_to)
        .cloned()
        .unwrap_or_default();
    let n = shared.next_id();
    let (after, wav, failure) = match callee {
        Callee::Answers { after, wav } => (after, wav, None),
        Callee::Fails { after, status } => (after, None, Some(status)),
    };
    let info = proto::SipParticipantInfo {
        participant_id: format!("PA_out{n}"),
        participant_identity: if req.participant_identity.is_empty() {
            format!("sip_{}", req.sip_call_to)
        } else {
            req.participant_identity.clone()
        },
        room_name: req.room_name.clone(),
        sip_call_id: format!("SCL_out{n}"),
    };
    if req.wait_until_answered {
        tokio::time::sleep(after).await;
        if let Some(status) = failure {
            return Err(DialFailure { status });
        }
        put_in_room(shared, req, &info, n, wav, "active");
        return Ok(info);
    }
    put_in_room(shared, req, &info, n, wav, "dialing");
    let shared = shared.clone();
    let room = req.room_name.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let command = match failure {
            Some(_) => Command::SipLeave,
            None => Command::Attributes(HashMap::from([(
                "sip.callStatus".to_owned(),
                "active".to_owned(),
            )])),
        };
        let tx = shared
            .lock()
            .rooms
            .get(&room)
            .and_then(|r| r.commands.clone());
        if let Some(tx) = tx {
            let _ = tx.try_send(command);
        }
    });
    Ok(info)
}

fn put_in_room(
    shared: &Shared,
    req: &proto::CreateSipParticipantRequest,
    info: &proto::SipParticipantInfo,
    n: u64,
    wav: Option<PathBuf>,
    status: &str,
) {
    let audio = wav
        .and_then(|path| media::load_wav_16k(&path).ok())
        .unwrap_or_default();
    let call = SipCall {
        caller: req.sip_call_to.clone(),
        dialled: req.sip_number.clone(),
        wav: None,
        attributes: HashMap::from([("sip.trunkID".to_owned(), req.sip_trunk_id.clone())]),
    };
    let mut room = RoomState::new(&req.room_name, n, &call, audio);
    room.sip.identity = info.participant_identity.clone();
    room.sip
        .attributes
        .insert("sip.callID".into(), info.sip_call_id.clone());
    room.sip
        .attributes
        .insert("sip.callStatus".into(), status.to_owned());
    shared.lock().rooms.insert(req.room_name.clone(), room);
    shared.changed.notify_waiters();
}
