//! The room task: one owner for the signal connection, both peer connections, the SIP
//! participant's state and the keepalive. Everything it reacts to arrives on channels (signal
//! responses, peer-connection callbacks, the application's controls), so state changes happen
//! in one place, in order.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use livekit_protocol as proto;
use prost::Message as _;
use proto::{signal_request, signal_response};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};
use webrtc::data_channel::RTCDataChannel;
use webrtc::data_channel::data_channel_init::RTCDataChannelInit;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_remote::TrackRemote;

use super::media::{self, FRAMES_AHEAD, FrameSender, RtpAudio, Shared};
use super::participants::{Change, Tracker};
use super::peer::{self, PeerInput, Target, webrtc_err};
use super::signal::{self, SignalInput, SignalSender};
use super::{
    Control, EVENTS_QUEUE, EndReason, RoomError, RoomEvent, RoomInfo, RoomOptions, RoomSession,
    dtmf_code, dtmf_digit,
};

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn unix_millis() -> i64 {
    crate::token::unix_now() as i64 * 1000
}

pub(super) async fn start(
    url: &str,
    token: &str,
    options: RoomOptions,
) -> Result<RoomSession, RoomError> {
    let (join, signal, inputs) =
        signal::connect(url, token, options.auto_subscribe, options.join_timeout).await?;
    let room = join.room.clone().unwrap_or_default();
    let me = join.participant.clone().unwrap_or_default();
    let info = RoomInfo {
        name: room.name,
        sid: room.sid,
        identity: me.identity,
        participant_sid: me.sid,
    };

    let api = peer::api(options.ice)?;
    let configuration = peer::configuration(&join.ice_servers);
    let publisher = Arc::new(
        api.new_peer_connection(configuration.clone())
            .await
            .map_err(webrtc_err)?,
    );
    let subscriber = Arc::new(
        api.new_peer_connection(configuration)
            .await
            .map_err(webrtc_err)?,
    );
    let (peer_tx, peer_rx) = mpsc::channel(EVENTS_QUEUE);
    peer::wire(&publisher, Target::Publisher, peer_tx.clone());
    peer::wire(&subscriber, Target::Subscriber, peer_tx);

    // Our track: the cid is the track id in our SDP's msid, which is how the server pairs
    // the AddTrackRequest with the media section of our offer.
    let cid = format!("TR_local_{:016x}", rand::random::<u64>());
    let track = Arc::new(TrackLocalStaticRTP::new(
        peer::opus_capability(),
        cid.clone(),
        format!("{}|agent", info.participant_sid),
    ));
    let rtp_sender = publisher
        .add_track(Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>)
        .await
        .map_err(webrtc_err)?;
    // RTCP from the server must be read for the interceptors (NACK, reports) to work.
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while rtp_sender.read(&mut buf).await.is_ok() {}
    });
    let reliable = publisher
        .create_data_channel(
            "_reliable",
            Some(RTCDataChannelInit {
                ordered: Some(true),
                ..Default::default()
            }),
        )
        .await
        .map_err(webrtc_err)?;
    publisher
        .create_data_channel(
            "_lossy",
            Some(RTCDataChannelInit {
                ordered: Some(false),
                max_retransmits: Some(0),
                ..Default::default()
            }),
        )
        .await
        .map_err(webrtc_err)?;

    let add_track = proto::AddTrackRequest {
        cid: cid.clone(),
        name: options.track_name.clone(),
        r#type: proto::TrackType::Audio as i32,
        source: proto::TrackSource::Microphone as i32,
        ..Default::default()
    };
    if !signal
        .send(signal_request::Message::AddTrack(add_track))
        .await
    {
        return Err(RoomError::Connect("signal closed after join".into()));
    }

    let (events_tx, events_rx) = mpsc::channel(EVENTS_QUEUE);
    let (frames_tx, frames_rx) = mpsc::channel(FRAMES_AHEAD);
    let (control_tx, control_rx) = mpsc::channel(16);
    let (sip_tx, sip_rx) = watch::channel(None);
    let shared = Arc::new(Shared::default());
    let (room_open, room_open_rx) = watch::channel(());
    tokio::spawn(media::run_pacer(
        track,
        frames_rx,
        events_tx.clone(),
        shared.clone(),
        options.send_silence,
        room_open_rx,
    ));

    let ping_interval = Duration::from_secs(u64::try_from(join.ping_interval).unwrap_or(0));
    let ping_timeout = Duration::from_secs(u64::try_from(join.ping_timeout).unwrap_or(0));
    let mut task = RoomTask {
        signal,
        inputs,
        peers: peer_rx,
        control: control_rx,
        events: events_tx,
        sip: sip_tx,
        publisher,
        subscriber,
        reliable,
        cid,
        tracker: Tracker::default(),
        pending_candidates: [Vec::new(), Vec::new()],
        remote_set: [false, false],
        published: false,
        offer_sent: false,
        connected: [false, false],
        unmatched_tracks: Vec::new(),
        reading_sid: None,
        shared: shared.clone(),
        ping_interval,
        ping_timeout,
        last_pong: now(),
        rtt_ms: 0,
        _room_open: room_open,
    };
    for participant in &join.other_participants {
        task.on_participant(participant).await;
    }
    tokio::spawn(task.run());

    Ok(RoomSession {
        info,
        events: events_rx,
        control: control_tx,
        sender: FrameSender {
            frames: frames_tx,
            shared: shared.clone(),
        },
        sip: sip_rx,
        shared,
    })
}

struct RoomTask {
    signal: SignalSender,
    inputs: mpsc::Receiver<SignalInput>,
    peers: mpsc::Receiver<PeerInput>,
    control: mpsc::Receiver<Control>,
    events: mpsc::Sender<RoomEvent>,
    sip: watch::Sender<Option<super::SipParticipant>>,
    publisher: Arc<RTCPeerConnection>,
    subscriber: Arc<RTCPeerConnection>,
    reliable: Arc<RTCDataChannel>,
    cid: String,
    tracker: Tracker,
    /// Remote candidates that came before the remote description, per [`Target::index`].
    pending_candidates: [Vec<RTCIceCandidateInit>; 2],
    remote_set: [bool; 2],
    published: bool,
    offer_sent: bool,
    connected: [bool; 2],
    /// Subscribed tracks whose participant is not (yet) known as the SIP participant.
    unmatched_tracks: Vec<Arc<TrackRemote>>,
    /// The track sid being read.
    reading_sid: Option<String>,
    shared: Arc<Shared>,
    ping_interval: Duration,
    ping_timeout: Duration,
    last_pong: Instant,
    rtt_ms: i64,
    /// Dropped with the task: stops the pacer, so the events channel closes after `Ended`.
    _room_open: watch::Sender<()>,
}

impl RoomTask {
    async fn run(mut self) {
        let mut ping = tokio::time::interval(if self.ping_interval.is_zero() {
            Duration::from_secs(3600)
        } else {
            self.ping_interval
        });
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leave_done: Option<oneshot::Sender<()>> = None;
        let reason = loop {
            tokio::select! {
                input = self.inputs.recv() => match input {
                    Some(SignalInput::Message(message)) => {
                        if let Some(reason) = self.on_signal(*message).await {
                            break reason;
                        }
                    }
                    Some(SignalInput::Closed { malformed }) => {
                        if malformed {
                            warn!("livekit room: the server sent a malformed signal frame");
                        }
                        break EndReason::SignalLost;
                    }
                    None => break EndReason::SignalLost,
                },
                Some(input) = self.peers.recv() => {
                    if let Some(reason) = self.on_peer(input).await {
                        break reason;
                    }
                }
                control = self.control.recv() => match control {
                    Some(Control::Dtmf { digit, done }) => {
                        let _ = done.send(self.send_dtmf(digit).await);
                    }
                    Some(Control::Leave { done }) => {
                        leave_done = Some(done);
                        break EndReason::Left;
                    }
                    None => break EndReason::Left,
                },
                _ = ping.tick(), if !self.ping_interval.is_zero() => {
                    if !self.ping_timeout.is_zero()
                        && now().saturating_duration_since(self.last_pong) > self.ping_timeout
                    {
                        warn!("livekit room: no pong within the ping timeout");
                        break EndReason::SignalLost;
                    }
                    let ping = proto::Ping { timestamp: unix_millis(), rtt: self.rtt_ms };
                    self.signal.send(signal_request::Message::PingReq(ping)).await;
                }
            }
        };
        info!(?reason, "livekit room session ended");
        // We leave unless the server already ended the session or the signal is gone.
        let we_leave = !matches!(
            reason,
            EndReason::RoomClosed | EndReason::Disconnected { .. } | EndReason::SignalLost
        );
        if we_leave {
            let leave = proto::LeaveRequest {
                reason: proto::DisconnectReason::ClientInitiated as i32,
                action: proto::leave_request::Action::Disconnect as i32,
                ..Default::default()
            };
            self.signal
                .send(signal_request::Message::Leave(leave))
                .await;
        }
        let _ = self.publisher.close().await;
        let _ = self.subscriber.close().await;
        let _ = self.events.send(RoomEvent::Ended(reason)).await;
        if let Some(done) = leave_done {
            let _ = done.send(());
        }
        // Dropping `self` drops the signal sender (the writer closes the socket), the
        // events sender and `_room_open`, which stops the pacer.
    }

    async fn on_signal(&mut self, message: signal_response::Message) -> Option<EndReason> {
        match message {
            signal_response::Message::Offer(offer) => {
                if let Err(e) = self.answer_subscriber(offer).await {
                    warn!(error = %e, "livekit room: subscriber offer failed");
                    return Some(EndReason::MediaFailed);
                }
            }
            signal_response::Message::Answer(answer) => {
                if !self.offer_sent {
                    return Some(EndReason::ProtocolViolation("answer without an offer"));
                }
                let description = match RTCSessionDescription::answer(answer.sdp) {
                    Ok(d) => d,
                    Err(_) => return Some(EndReason::ProtocolViolation("unparsable answer")),
                };
                if let Err(e) = self.publisher.set_remote_description(description).await {
                    warn!(error = %e, "livekit room: publisher answer refused");
                    return Some(EndReason::MediaFailed);
                }
                self.remote_set[Target::Publisher.index()] = true;
                self.flush_candidates(Target::Publisher).await;
            }
            signal_response::Message::Trickle(trickle) => self.on_trickle(trickle).await,
            signal_response::Message::TrackPublished(published) => {
                if published.cid == self.cid && !self.published {
                    self.published = true;
                    if let Err(e) = self.offer_publisher().await {
                        warn!(error = %e, "livekit room: publisher offer failed");
                        return Some(EndReason::MediaFailed);
                    }
                }
            }
            signal_response::Message::Update(update) => {
                for participant in &update.participants {
                    if let Some(reason) = self.on_participant(participant).await {
                        return Some(reason);
                    }
                }
            }
            signal_response::Message::Leave(leave) => {
                let reason = proto::DisconnectReason::try_from(leave.reason)
                    .unwrap_or(proto::DisconnectReason::UnknownReason);
                return Some(match reason {
                    proto::DisconnectReason::RoomDeleted | proto::DisconnectReason::RoomClosed => {
                        EndReason::RoomClosed
                    }
                    reason => EndReason::Disconnected { reason },
                });
            }
            signal_response::Message::PongResp(pong) => {
                self.last_pong = now();
                self.rtt_ms = (unix_millis() - pong.last_ping_timestamp).max(0);
            }
            signal_response::Message::Pong(_) => self.last_pong = now(),
            other => {
                debug!(message = ?std::mem::discriminant(&other), "livekit room: signal message ignored")
            }
        }
        None
    }

    async fn answer_subscriber(
        &mut self,
        offer: proto::SessionDescription,
    ) -> Result<(), RoomError> {
        let description = RTCSessionDescription::offer(offer.sdp).map_err(webrtc_err)?;
        self.subscriber
            .set_remote_description(description)
            .await
            .map_err(webrtc_err)?;
        self.remote_set[Target::Subscriber.index()] = true;
        self.flush_candidates(Target::Subscriber).await;
        let answer = self
            .subscriber
            .create_answer(None)
            .await
            .map_err(webrtc_err)?;
        self.subscriber
            .set_local_description(answer.clone())
            .await
            .map_err(webrtc_err)?;
        let message = signal_request::Message::Answer(proto::SessionDescription {
            r#type: "answer".into(),
            sdp: answer.sdp,
            id: offer.id,
            ..Default::default()
        });
        self.signal.send(message).await;
        Ok(())
    }

    async fn offer_publisher(&mut self) -> Result<(), RoomError> {
        let offer = self
            .publisher
            .create_offer(None)
            .await
            .map_err(webrtc_err)?;
        self.publisher
            .set_local_description(offer.clone())
            .await
            .map_err(webrtc_err)?;
        let message = signal_request::Message::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp: offer.sdp,
            id: 1,
            ..Default::default()
        });
        self.offer_sent = true;
        self.signal.send(message).await;
        Ok(())
    }

    async fn on_trickle(&mut self, trickle: proto::TrickleRequest) {
        let Some(target) = Target::from_proto(trickle.target) else {
            return;
        };
        let Ok(candidate) = serde_json::from_str::<RTCIceCandidateInit>(&trickle.candidate_init)
        else {
            warn!("livekit room: unparsable trickle candidate");
            return;
        };
        if self.remote_set[target.index()] {
            self.add_candidate(target, candidate).await;
        } else {
            self.pending_candidates[target.index()].push(candidate);
        }
    }

    async fn flush_candidates(&mut self, target: Target) {
        for candidate in std::mem::take(&mut self.pending_candidates[target.index()]) {
            self.add_candidate(target, candidate).await;
        }
    }

    async fn add_candidate(&self, target: Target, candidate: RTCIceCandidateInit) {
        let pc = match target {
            Target::Publisher => &self.publisher,
            Target::Subscriber => &self.subscriber,
        };
        if let Err(e) = pc.add_ice_candidate(candidate).await {
            debug!(error = %e, ?target, "livekit room: remote candidate refused");
        }
    }

    async fn on_participant(&mut self, info: &proto::ParticipantInfo) -> Option<EndReason> {
        match self.tracker.apply(info)? {
            Change::Updated(sip) => {
                self.sip.send_replace(Some(sip.clone()));
                let _ = self.events.send(RoomEvent::SipParticipant(sip)).await;
                for track in std::mem::take(&mut self.unmatched_tracks) {
                    self.consider_track(track);
                }
                None
            }
            Change::Left(sip) => Some(EndReason::ParticipantLeft {
                identity: sip.identity,
            }),
        }
    }

    async fn on_peer(&mut self, input: PeerInput) -> Option<EndReason> {
        match input {
            PeerInput::Candidate(target, candidate) => {
                let Ok(candidate_init) = serde_json::to_string(&candidate) else {
                    return None;
                };
                let trickle = proto::TrickleRequest {
                    candidate_init,
                    target: target.to_proto(),
                    r#final: false,
                };
                self.signal
                    .send(signal_request::Message::Trickle(trickle))
                    .await;
            }
            PeerInput::Track(track) => self.consider_track(track),
            PeerInput::Data(data) => self.on_data(data).await,
            PeerInput::State(target, state) => {
                debug!(?target, ?state, "livekit room: peer connection state");
                match state {
                    RTCPeerConnectionState::Connected => {
                        let was = self.connected[0] && self.connected[1];
                        self.connected[target.index()] = true;
                        if !was && self.connected[0] && self.connected[1] {
                            let _ = self.events.send(RoomEvent::MediaConnected).await;
                        }
                    }
                    RTCPeerConnectionState::Failed => return Some(EndReason::MediaFailed),
                    _ => {}
                }
            }
        }
        None
    }

    /// Reads `track` if it is the SIP participant's audio; keeps it for later otherwise.
    fn consider_track(&mut self, track: Arc<TrackRemote>) {
        // LiveKit's stream id is "<participant sid>|<track sid>" (`PackStreamID` in
        // livekit/livekit pkg/rtc/utils.go); the track id is the track sid.
        let stream = track.stream_id();
        let participant_sid = stream.split('|').next().unwrap_or_default().to_owned();
        let track_sid = track.id();
        let is_sip = self.tracker.is_sip(&participant_sid)
            || self
                .tracker
                .current()
                .is_some_and(|p| p.audio_tracks.contains(&track_sid));
        if !is_sip {
            self.unmatched_tracks.push(track);
            return;
        }
        if self.reading_sid.as_deref() == Some(track_sid.as_str()) {
            return;
        }
        self.reading_sid = Some(track_sid.clone());
        info!(%track_sid, "livekit room: receiving the SIP participant's audio");
        tokio::spawn(read_track(track, self.events.clone(), self.shared.clone()));
    }

    async fn on_data(&mut self, data: Bytes) {
        let packet = match proto::DataPacket::decode(data.as_ref()) {
            Ok(p) => p,
            Err(_) => {
                self.shared
                    .data_packets_invalid
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        if let Some(proto::data_packet::Value::SipDtmf(dtmf)) = packet.value {
            match dtmf_digit(&dtmf) {
                Some(digit) => {
                    let event = RoomEvent::Dtmf {
                        digit,
                        arrived: now(),
                    };
                    let _ = self.events.send(event).await;
                }
                None => {
                    self.shared
                        .data_packets_invalid
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    async fn send_dtmf(&self, digit: char) -> Result<(), RoomError> {
        let code = dtmf_code(digit).ok_or(RoomError::InvalidDigit(digit))?;
        #[allow(deprecated)] // `kind` is still how servers route reliable packets
        let packet = proto::DataPacket {
            kind: proto::data_packet::Kind::Reliable as i32,
            destination_identities: self
                .tracker
                .current()
                .map(|p| vec![p.identity.clone()])
                .unwrap_or_default(),
            value: Some(proto::data_packet::Value::SipDtmf(proto::SipDtmf {
                code,
                digit: digit.to_ascii_uppercase().to_string(),
            })),
            ..Default::default()
        };
        self.reliable
            .send(&Bytes::from(packet.encode_to_vec()))
            .await
            .map(|_| ())
            .map_err(webrtc_err)
    }
}

/// Forwards the SIP participant's RTP to the application until the track ends.
async fn read_track(track: Arc<TrackRemote>, events: mpsc::Sender<RoomEvent>, shared: Arc<Shared>) {
    while let Ok((packet, _)) = track.read_rtp().await {
        let arrived = now();
        let h = &packet.header;
        if let Ok(mut stats) = shared.receive.lock() {
            stats.on_packet(h.sequence_number, h.timestamp, arrived);
        }
        let audio = RtpAudio {
            sequence: h.sequence_number,
            timestamp: h.timestamp,
            payload_type: h.payload_type,
            marker: h.marker,
            payload: packet.payload.to_vec(),
            arrived,
        };
        match events.try_send(RoomEvent::Audio(audio)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                shared
                    .packets_dropped_backlog
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}
