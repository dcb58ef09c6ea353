//! A call in a LiveKit room: the SIP participant's Opus track in, our published track out
//! (the `livekit` crate's room session), DTMF as `SipDTMF` data packets, transfer through the
//! server's `TransferSIPParticipant`, and hang-up by deleting the room (LiveKit's documented
//! way for an agent to end a phone call: the SIP bridge hangs up when the room goes).

use std::sync::Arc;

use ::livekit::room::{EndReason as RoomEnd, RoomEvent, RoomSession};
use ::livekit::sip_api::{ApiError, ServerApi, Transfer};
use ::sip::driver::{MediaQuality, MediaStats};
use store::EndReason;
use tokio::task::JoinHandle;

use super::{TransferError, TransportEvent};
use crate::calls::core::TransferProgress;

/// What a LiveKit leg needs: the joined room, the server API (same credentials as the
/// worker), and who the caller is in the room.
pub(in crate::calls) struct LiveKitRoom {
    pub session: RoomSession,
    pub api: Arc<ServerApi>,
    pub room_name: String,
    /// The SIP participant's identity.
    pub participant: String,
}

pub(in crate::calls) struct LiveKitTransport {
    room: LiveKitRoom,
    /// `TransferSIPParticipant` in flight (it returns once the transfer completed or failed).
    transfer: Option<JoinHandle<Result<(), ApiError>>>,
    /// The room ended while a transfer was completing (the SIP participant leaves the room
    /// when it is transferred): reported after the transfer's outcome.
    held_end: Option<EndReason>,
    ended: bool,
}

impl LiveKitTransport {
    pub fn new(room: LiveKitRoom) -> Self {
        Self {
            room,
            transfer: None,
            held_end: None,
            ended: false,
        }
    }

    /// Cancel-safe: the room's receive and the transfer's join handle are polled by reference.
    pub async fn recv(&mut self) -> TransportEvent {
        if self.ended {
            if let Some(reason) = self.held_end.take().filter(|_| self.transfer.is_none()) {
                return TransportEvent::Ended(reason);
            }
            if self.transfer.is_none() {
                return std::future::pending().await;
            }
        }
        tokio::select! {
            event = self.room.session.recv(), if !self.ended => self.on_room(event),
            result = join(&mut self.transfer) => {
                self.transfer = None;
                let progress = match result {
                    Ok(Ok(())) => TransferProgress::Accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "LiveKit transfer task failed");
                        TransferProgress::Failed { status: None }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "LiveKit transfer failed");
                        let status = match e {
                            ApiError::Twirp { status, .. } | ApiError::Status { status, .. } => {
                                Some(status)
                            }
                            _ => None,
                        };
                        TransferProgress::Failed { status }
                    }
                };
                TransportEvent::Transfer(progress)
            }
        }
    }

    fn on_room(&mut self, event: Option<RoomEvent>) -> TransportEvent {
        match event {
            Some(RoomEvent::Audio(rtp)) => TransportEvent::Audio {
                sequence: rtp.sequence,
                timestamp: rtp.timestamp,
                payload: rtp.payload,
                arrived: rtp.arrived,
            },
            Some(RoomEvent::Dtmf { digit, .. }) => TransportEvent::Dtmf(digit),
            Some(RoomEvent::FrameSent { mark, at }) => TransportEvent::MarkSent { mark, at },
            Some(RoomEvent::Ended(end)) => {
                self.ended = true;
                let reason = end_reason(&end);
                if self.transfer.is_some() {
                    self.held_end = Some(reason);
                    return TransportEvent::Nothing;
                }
                TransportEvent::Ended(reason)
            }
            Some(_) => TransportEvent::Nothing,
            None => {
                self.ended = true;
                TransportEvent::Ended(EndReason::TransportLost)
            }
        }
    }

    pub fn sender(&self) -> ::livekit::room::FrameSender {
        self.room.session.sender()
    }

    /// Sends `TransferSIPParticipant` in the background: a number goes as `tel:`, a SIP URI as
    /// it is (LiveKit SIP builds the REFER from it).
    pub fn transfer(&mut self, target: &str) -> Result<String, TransferError> {
        let to = if target.starts_with("sip:") || target.starts_with("tel:") {
            target.to_owned()
        } else {
            let number: String = target.chars().filter(|c| !c.is_whitespace()).collect();
            if number.is_empty() {
                return Err(TransferError::BadTarget {
                    target: target.to_owned(),
                });
            }
            format!("tel:{number}")
        };
        let api = self.room.api.clone();
        let request = Transfer::new(&self.room.room_name, &self.room.participant, &to);
        self.transfer = Some(tokio::spawn(async move {
            api.transfer_sip_participant(request).await.map(drop)
        }));
        Ok(to)
    }

    /// Deletes the room: the SIP bridge hangs up the phone call and our session ends.
    pub async fn hangup(&mut self) {
        if let Err(e) = self.room.api.delete_room(&self.room.room_name).await {
            tracing::warn!(error = %e, room = %self.room.room_name, "cannot delete the room to hang up");
        }
    }

    pub async fn send_dtmf(&self, digit: char) -> bool {
        self.room.session.send_dtmf(digit).await.is_ok()
    }

    /// The receiver's measurements, as the SIP driver reports them (no RTCP: the SFU
    /// terminates it, so there is no round trip and no view of our stream from the far end).
    pub fn media_stats(&self) -> MediaStats {
        let s = self.room.session.stats();
        let mut quality = MediaQuality::default();
        quality.packets_received = s.packets_received;
        quality.packets_expected = s.packets_received + s.packets_lost;
        quality.packets_lost = i64::try_from(s.packets_lost).unwrap_or(i64::MAX);
        quality.loss_pct = if quality.packets_expected == 0 {
            0.0
        } else {
            s.packets_lost as f64 * 100.0 / quality.packets_expected as f64
        };
        quality.jitter_ms = s.jitter_ms;
        let mut stats = MediaStats::default();
        stats.packets_received = s.packets_received;
        stats.packets_dropped_backlog = s.packets_dropped_backlog;
        stats.frames_sent = s.frames_sent;
        stats.frames_discarded = s.frames_discarded;
        stats.silence_frames_sent = s.silence_frames_sent;
        stats.quality = quality;
        stats
    }
}

async fn join(
    job: &mut Option<JoinHandle<Result<(), ApiError>>>,
) -> Result<Result<(), ApiError>, tokio::task::JoinError> {
    match job {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

/// The stored end reason for the end of a LiveKit session.
fn end_reason(end: &RoomEnd) -> EndReason {
    match end {
        // The SIP participant leaving is the phone call ending on the caller's side.
        RoomEnd::ParticipantLeft { .. } => EndReason::CallerHangup,
        RoomEnd::Left => EndReason::AgentHangup,
        RoomEnd::MediaFailed => EndReason::MediaLost,
        // The room deleted (by us: our hang-up's reason is kept), or the server sent us away,
        // or the signal connection broke.
        _ => EndReason::TransportLost,
    }
}
