//! The fake's `/rtc` signal endpoint and the room it serves. Order of the real server
//! (`livekit/livekit` `pkg/service/rtcservice.go`, `pkg/rtc/participant.go`,
//! `pkg/rtc/transportmanager.go`): JoinResponse first; the server then negotiates the
//! subscriber connection (it offers: the SIP participant's track and its `_reliable`/`_lossy`
//! data channels); `add_track` is answered with `track_published`; the client's publisher
//! offer is answered; trickle candidates are taken for the connection `target` names;
//! `ping_req` gets `pong_resp`.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use livekit::proto;
use livekit::token;
use prost::Message as _;
use proto::{signal_request, signal_response};
use tokio::sync::mpsc;
use webrtc::data_channel::RTCDataChannel;
use webrtc::data_channel::data_channel_init::RTCDataChannelInit;
use webrtc::ice_transport::ice_candidate::{RTCIceCandidate, RTCIceCandidateInit};
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;

use super::agent::{bearer, unauthorized};
use super::{Shared, SipCall, media};

/// LiveKit's defaults (`config.go`: `PingInterval` 5 s, `PingTimeout` 15 s).
const PING_INTERVAL_SECS: i32 = 5;
const PING_TIMEOUT_SECS: i32 = 15;

/// What a test asks the room to do.
#[derive(Debug)]
pub(crate) enum Command {
    Play(Vec<i16>),
    Dtmf(char),
    Attributes(HashMap<String, String>),
    SipLeave,
    CloseRoom,
    /// Close the signal websocket without a leave (a server crash or network loss).
    DropSignal,
}

pub(crate) struct RoomState {
    pub(crate) sid: String,
    pub(crate) sip: proto::ParticipantInfo,
    audio: Vec<i16>,
    pub(crate) commands: Option<mpsc::Sender<Command>>,
    commands_rx: Option<mpsc::Receiver<Command>>,
    pub(crate) recording: Arc<Mutex<Vec<i16>>>,
    pub(crate) packets_from_agent: Arc<AtomicU64>,
    pub(crate) data_from_agent: Vec<proto::DataPacket>,
    pub(crate) signal_log: Vec<String>,
    pub(crate) agent_left: bool,
    connected: [bool; 2],
}

impl RoomState {
    pub(crate) fn new(name: &str, n: u64, call: &SipCall, audio: Vec<i16>) -> Self {
        // Identity and name as LiveKit SIP sets them for inbound calls
        // (`livekit/protocol:sip/sip.go`: `sip_<from>`, `Phone <from>`).
        let mut attributes: HashMap<String, String> = call.attributes.clone();
        attributes.insert("sip.phoneNumber".into(), call.caller.clone());
        attributes.insert("sip.trunkPhoneNumber".into(), call.dialled.clone());
        attributes.insert("sip.callID".into(), format!("SCL_fake{n}"));
        attributes.insert("sip.callStatus".into(), "active".into());
        // A call may name its own inbound trunk (trusted trunks, trunk routes).
        attributes
            .entry("sip.trunkID".into())
            .or_insert_with(|| "ST_fake".into());
        let sip = proto::ParticipantInfo {
            sid: format!("PA_sip{n}"),
            identity: format!("sip_{}", call.caller),
            name: format!("Phone {}", call.caller),
            state: proto::participant_info::State::Active as i32,
            kind: proto::participant_info::Kind::Sip as i32,
            is_publisher: true,
            attributes,
            tracks: vec![proto::TrackInfo {
                sid: format!("TR_sip{n}"),
                r#type: proto::TrackType::Audio as i32,
                name: "phone".into(),
                mime_type: "audio/opus".into(),
                source: proto::TrackSource::Microphone as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        let (tx, rx) = mpsc::channel(32);
        let _ = name;
        Self {
            sid: format!("RM_fake{n}"),
            sip,
            audio,
            commands: Some(tx),
            commands_rx: Some(rx),
            recording: Arc::default(),
            packets_from_agent: Arc::default(),
            data_from_agent: Vec::new(),
            signal_log: Vec::new(),
            agent_left: false,
            connected: [false, false],
        }
    }

    pub(crate) fn media_connected(&self) -> bool {
        self.connected[0] && self.connected[1]
    }
}

pub(crate) async fn handler(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(token) = bearer(&headers, &query) else {
        return unauthorized("no token");
    };
    let Ok(claims) = token::verify(&token, Shared::secret_for, token::unix_now()) else {
        return unauthorized("invalid token");
    };
    let video = claims.video();
    if !video.room_join {
        return unauthorized("permission denied: no roomJoin grant");
    }
    if query
        .get("protocol")
        .and_then(|p| p.parse::<u32>().ok())
        .is_none()
    {
        return (StatusCode::BAD_REQUEST, "protocol missing").into_response();
    }
    let room = video.room.clone();
    let commands = {
        let mut s = shared.lock();
        match s.rooms.get_mut(&room) {
            Some(r) => r.commands_rx.take(),
            None => return (StatusCode::NOT_FOUND, "room not found").into_response(),
        }
    };
    let Some(commands) = commands else {
        return (StatusCode::CONFLICT, "agent already joined this room").into_response();
    };
    ws.on_upgrade(move |socket| async move {
        let session = Session::new(shared, room, claims, commands).await;
        if let Some(session) = session {
            session.run(socket).await;
        }
    })
}

enum Internal {
    Candidate(usize, RTCIceCandidateInit),
    State(usize, RTCPeerConnectionState),
}

const UP: usize = 0; // the agent's publisher connection (agent offers)
const DOWN: usize = 1; // the agent's subscriber connection (we offer)

struct Session {
    shared: Arc<Shared>,
    room: String,
    claims: token::Claims,
    commands: mpsc::Receiver<Command>,
    pcs: [Arc<RTCPeerConnection>; 2],
    internal_rx: mpsc::Receiver<Internal>,
    down_reliable: Arc<RTCDataChannel>,
    sip_track: Arc<TrackLocalStaticRTP>,
    play_tx: Option<mpsc::Sender<Vec<i16>>>,
    /// cids announced with add_track.
    announced: Vec<String>,
    down_offer_pending: bool,
    up_negotiated: bool,
    down_negotiated: bool,
    pending: [Vec<RTCIceCandidateInit>; 2],
}

impl Session {
    async fn new(
        shared: Arc<Shared>,
        room: String,
        claims: token::Claims,
        commands: mpsc::Receiver<Command>,
    ) -> Option<Self> {
        let api = media::api();
        let up = Arc::new(
            api.new_peer_connection(RTCConfiguration::default())
                .await
                .ok()?,
        );
        let down = Arc::new(
            api.new_peer_connection(RTCConfiguration::default())
                .await
                .ok()?,
        );
        let (internal_tx, internal_rx) = mpsc::channel(64);
        for (index, pc) in [(UP, &up), (DOWN, &down)] {
            let tx = internal_tx.clone();
            pc.on_ice_candidate(Box::new(move |c: Option<RTCIceCandidate>| {
                let tx = tx.clone();
                Box::pin(async move {
                    if let Some(init) = c.and_then(|c| c.to_json().ok()) {
                        let _ = tx.send(Internal::Candidate(index, init)).await;
                    }
                })
            }));
            let tx = internal_tx.clone();
            pc.on_peer_connection_state_change(Box::new(move |state| {
                let tx = tx.clone();
                Box::pin(async move {
                    let _ = tx.send(Internal::State(index, state)).await;
                })
            }));
        }
        let (recording, packets) = {
            let s = shared.lock();
            let r = s.rooms.get(&room)?;
            (r.recording.clone(), r.packets_from_agent.clone())
        };
        up.on_track(Box::new(move |track, _, _| {
            let (recording, packets) = (recording.clone(), packets.clone());
            Box::pin(async move {
                tokio::spawn(media::record(track, recording, packets));
            })
        }));
        let data_shared = shared.clone();
        let data_room = room.clone();
        up.on_data_channel(Box::new(move |channel| {
            let (shared, room) = (data_shared.clone(), data_room.clone());
            Box::pin(async move {
                channel.on_message(Box::new(move |message| {
                    let (shared, room) = (shared.clone(), room.clone());
                    Box::pin(async move {
                        match proto::DataPacket::decode(message.data.as_ref()) {
                            Ok(packet) => {
                                if let Some(r) = shared.lock().rooms.get_mut(&room) {
                                    r.data_from_agent.push(packet);
                                }
                                shared.changed.notify_waiters();
                            }
                            Err(_) => shared.violation("malformed DataPacket from the agent"),
                        }
                    })
                }));
            })
        }));

        let (sip_sid, track_sid) = {
            let s = shared.lock();
            let r = s.rooms.get(&room)?;
            (r.sip.sid.clone(), r.sip.tracks.first()?.sid.clone())
        };
        // LiveKit's downtrack: track id = track sid, stream id = "<participant sid>|<track sid>".
        let sip_track = Arc::new(TrackLocalStaticRTP::new(
            media::opus_capability(),
            track_sid.clone(),
            format!("{sip_sid}|{track_sid}"),
        ));
        let sender = down
            .add_track(Arc::clone(&sip_track) as Arc<dyn TrackLocal + Send + Sync>)
            .await
            .ok()?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            while sender.read(&mut buf).await.is_ok() {}
        });
        let down_reliable = down
            .create_data_channel(
                "_reliable",
                Some(RTCDataChannelInit {
                    ordered: Some(true),
                    ..Default::default()
                }),
            )
            .await
            .ok()?;
        down.create_data_channel(
            "_lossy",
            Some(RTCDataChannelInit {
                ordered: Some(false),
                max_retransmits: Some(0),
                ..Default::default()
            }),
        )
        .await
        .ok()?;
        Some(Self {
            shared,
            room,
            claims,
            commands,
            pcs: [up, down],
            internal_rx,
            down_reliable,
            sip_track,
            play_tx: None,
            announced: Vec::new(),
            down_offer_pending: false,
            up_negotiated: false,
            down_negotiated: false,
            pending: [Vec::new(), Vec::new()],
        })
    }

    fn log(&self, what: &str) {
        if let Some(r) = self.shared.lock().rooms.get_mut(&self.room) {
            r.signal_log.push(what.to_owned());
        }
        self.shared.changed.notify_waiters();
    }

    async fn run(mut self, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        let (out_tx, mut out_rx) = mpsc::channel::<signal_response::Message>(64);
        let writer = tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                let bytes = proto::SignalResponse {
                    message: Some(message),
                }
                .encode_to_vec();
                if sink.send(Message::Binary(bytes.into())).await.is_err() {
                    break;
                }
            }
            let _ = sink.send(Message::Close(None)).await;
        });

        let (room_sid, sip) = {
            let s = self.shared.lock();
            let Some(r) = s.rooms.get(&self.room) else {
                return;
            };
            (r.sid.clone(), r.sip.clone())
        };
        let agent_info = proto::ParticipantInfo {
            sid: format!("PA_agent{}", self.shared.next_id()),
            identity: self.claims.sub.clone(),
            name: self.claims.name.clone(),
            state: proto::participant_info::State::Joined as i32,
            kind: proto::participant_info::Kind::Agent as i32,
            attributes: self.claims.attributes.clone().into_iter().collect(),
            ..Default::default()
        };
        let join = proto::JoinResponse {
            room: Some(proto::Room {
                sid: room_sid,
                name: self.room.clone(),
                num_participants: 2,
                ..Default::default()
            }),
            participant: Some(agent_info),
            other_participants: vec![sip.clone()],
            subscriber_primary: true,
            ping_interval: PING_INTERVAL_SECS,
            ping_timeout: PING_TIMEOUT_SECS,
            server_info: Some(proto::ServerInfo {
                version: "fake".into(),
                protocol: 16,
                ..Default::default()
            }),
            ..Default::default()
        };
        let _ = out_tx.send(signal_response::Message::Join(join)).await;
        // The subscriber connection is negotiated right after join (data channels + tracks).
        if let Err(e) = self.offer_down(&out_tx).await {
            self.shared.violation(format!("fake could not offer: {e}"));
            return;
        }

        loop {
            tokio::select! {
                frame = stream.next() => {
                    let bytes = match frame {
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Text(_))) => {
                            self.shared.violation("text frame on /rtc");
                            break;
                        }
                        _ => break,
                    };
                    let Ok(proto::SignalRequest { message: Some(message) }) =
                        proto::SignalRequest::decode(bytes.as_ref())
                    else {
                        self.shared.violation("malformed SignalRequest");
                        break;
                    };
                    if !self.on_request(message, &out_tx).await {
                        break;
                    }
                }
                Some(internal) = self.internal_rx.recv() => match internal {
                    Internal::Candidate(index, init) => {
                        let Ok(candidate_init) = serde_json::to_string(&init) else { continue };
                        let target = if index == UP { proto::SignalTarget::Publisher } else { proto::SignalTarget::Subscriber };
                        let trickle = proto::TrickleRequest { candidate_init, target: target as i32, r#final: false };
                        let _ = out_tx.send(signal_response::Message::Trickle(trickle)).await;
                    }
                    Internal::State(index, state) => {
                        if state == RTCPeerConnectionState::Connected {
                            let start_player = index == DOWN && self.play_tx.is_none();
                            if let Some(r) = self.shared.lock().rooms.get_mut(&self.room) {
                                r.connected[index] = true;
                            }
                            self.shared.changed.notify_waiters();
                            if start_player {
                                self.start_player();
                            }
                        }
                    }
                },
                command = self.commands.recv() => {
                    let Some(command) = command else { break };
                    if !self.on_command(command, &out_tx).await {
                        break;
                    }
                }
            }
        }
        self.play_tx = None;
        for pc in &self.pcs {
            let _ = pc.close().await;
        }
        drop(out_tx);
        let _ = writer.await;
    }

    fn start_player(&mut self) {
        let audio = self
            .shared
            .lock()
            .rooms
            .get_mut(&self.room)
            .map(|r| std::mem::take(&mut r.audio))
            .unwrap_or_default();
        let (tx, rx) = mpsc::channel(8);
        if !audio.is_empty() {
            let _ = tx.try_send(audio);
        }
        self.play_tx = Some(tx);
        tokio::spawn(media::play(self.sip_track.clone(), rx, Arc::default()));
    }

    async fn offer_down(
        &mut self,
        out: &mpsc::Sender<signal_response::Message>,
    ) -> Result<(), webrtc::Error> {
        let down = &self.pcs[DOWN];
        let offer = down.create_offer(None).await?;
        down.set_local_description(offer.clone()).await?;
        self.down_offer_pending = true;
        let _ = out
            .send(signal_response::Message::Offer(proto::SessionDescription {
                r#type: "offer".into(),
                sdp: offer.sdp,
                id: 1,
                ..Default::default()
            }))
            .await;
        Ok(())
    }

    /// Handles one request; false ends the session.
    async fn on_request(
        &mut self,
        message: signal_request::Message,
        out: &mpsc::Sender<signal_response::Message>,
    ) -> bool {
        match message {
            signal_request::Message::AddTrack(add) => {
                self.log("add_track");
                if add.r#type != proto::TrackType::Audio as i32 || add.cid.is_empty() {
                    self.shared
                        .violation("add_track for something other than an audio track with a cid");
                    return false;
                }
                if self.announced.contains(&add.cid) {
                    self.shared.violation("add_track twice for one cid");
                    return false;
                }
                self.announced.push(add.cid.clone());
                let published = proto::TrackPublishedResponse {
                    cid: add.cid.clone(),
                    track: Some(proto::TrackInfo {
                        sid: format!("TR_agent{}", self.shared.next_id()),
                        r#type: add.r#type,
                        name: add.name,
                        source: add.source,
                        mime_type: "audio/opus".into(),
                        ..Default::default()
                    }),
                };
                let _ = out
                    .send(signal_response::Message::TrackPublished(published))
                    .await;
            }
            signal_request::Message::Offer(offer) => {
                self.log("offer");
                // Every audio section of the publisher offer must carry a track announced
                // with add_track (msid "<stream> <track id = cid>").
                for line in offer.sdp.lines().filter(|l| l.starts_with("a=msid:")) {
                    let track_id = line.split_whitespace().nth(1).unwrap_or_default();
                    if !self.announced.iter().any(|c| c == track_id) {
                        self.shared.violation(format!(
                            "publisher offer carries track {track_id} without add_track"
                        ));
                        return false;
                    }
                }
                let up = &self.pcs[UP];
                let answer = async {
                    up.set_remote_description(RTCSessionDescription::offer(offer.sdp)?)
                        .await?;
                    let answer = up.create_answer(None).await?;
                    up.set_local_description(answer.clone()).await?;
                    Ok::<_, webrtc::Error>(answer)
                }
                .await;
                let Ok(answer) = answer else {
                    self.shared
                        .violation("publisher offer could not be answered");
                    return false;
                };
                self.up_negotiated = true;
                self.flush_pending(UP).await;
                let _ = out
                    .send(signal_response::Message::Answer(
                        proto::SessionDescription {
                            r#type: "answer".into(),
                            sdp: answer.sdp,
                            id: offer.id,
                            ..Default::default()
                        },
                    ))
                    .await;
            }
            signal_request::Message::Answer(answer) => {
                self.log("answer");
                if !self.down_offer_pending {
                    self.shared.violation("answer without a subscriber offer");
                    return false;
                }
                self.down_offer_pending = false;
                let ok = match RTCSessionDescription::answer(answer.sdp) {
                    Ok(d) => self.pcs[DOWN].set_remote_description(d).await.is_ok(),
                    Err(_) => false,
                };
                if !ok {
                    self.shared.violation("subscriber answer refused");
                    return false;
                }
                self.down_negotiated = true;
                self.flush_pending(DOWN).await;
            }
            signal_request::Message::Trickle(trickle) => {
                self.log("trickle");
                let index = if trickle.target == proto::SignalTarget::Publisher as i32 {
                    UP
                } else {
                    DOWN
                };
                // A client gathers candidates only after setting its local description: a
                // publisher candidate before its offer, or a subscriber one before our
                // offer, is out of order.
                if index == UP && !self.up_negotiated {
                    self.shared
                        .violation("publisher trickle before the publisher offer");
                    return false;
                }
                if index == DOWN && !self.down_offer_pending && !self.down_negotiated {
                    self.shared
                        .violation("subscriber trickle before the subscriber offer");
                    return false;
                }
                let Ok(candidate) =
                    serde_json::from_str::<RTCIceCandidateInit>(&trickle.candidate_init)
                else {
                    self.shared
                        .violation("trickle candidateInit is not RTCIceCandidateInit JSON");
                    return false;
                };
                let ready = if index == UP {
                    self.up_negotiated
                } else {
                    self.down_negotiated
                };
                if ready {
                    let _ = self.pcs[index].add_ice_candidate(candidate).await;
                } else {
                    self.pending[index].push(candidate);
                }
            }
            signal_request::Message::PingReq(ping) => {
                let pong = proto::Pong {
                    last_ping_timestamp: ping.timestamp,
                    timestamp: token::unix_now() as i64 * 1000,
                };
                let _ = out.send(signal_response::Message::PongResp(pong)).await;
            }
            signal_request::Message::Ping(ts) => {
                let _ = out.send(signal_response::Message::Pong(ts)).await;
            }
            signal_request::Message::Leave(_) => {
                self.log("leave");
                if let Some(r) = self.shared.lock().rooms.get_mut(&self.room) {
                    r.agent_left = true;
                }
                self.shared.changed.notify_waiters();
                return false;
            }
            _ => self.log("other"),
        }
        true
    }

    async fn flush_pending(&mut self, index: usize) {
        for candidate in std::mem::take(&mut self.pending[index]) {
            let _ = self.pcs[index].add_ice_candidate(candidate).await;
        }
    }

    async fn on_command(
        &mut self,
        command: Command,
        out: &mpsc::Sender<signal_response::Message>,
    ) -> bool {
        match command {
            Command::Play(samples) => {
                if let Some(tx) = &self.play_tx {
                    let _ = tx.send(samples).await;
                }
            }
            Command::Dtmf(digit) => {
                let (identity, sid) = self.sip_identity();
                let packet = proto::DataPacket {
                    participant_identity: identity,
                    participant_sid: sid,
                    value: Some(proto::data_packet::Value::SipDtmf(proto::SipDtmf {
                        code: livekit::room::dtmf_code(digit).unwrap_or(0),
                        digit: digit.to_string(),
                    })),
                    ..Default::default()
                };
                let _ = self
                    .down_reliable
                    .send(&Bytes::from(packet.encode_to_vec()))
                    .await;
            }
            Command::Attributes(attributes) => {
                let info = {
                    let mut s = self.shared.lock();
                    let Some(r) = s.rooms.get_mut(&self.room) else {
                        return false;
                    };
                    r.sip.attributes.extend(attributes);
                    r.sip.version += 1;
                    r.sip.clone()
                };
                let update = proto::ParticipantUpdate {
                    participants: vec![info],
                };
                let _ = out.send(signal_response::Message::Update(update)).await;
            }
            Command::SipLeave => {
                self.play_tx = None;
                let info = {
                    let mut s = self.shared.lock();
                    let Some(r) = s.rooms.get_mut(&self.room) else {
                        return false;
                    };
                    r.sip.state = proto::participant_info::State::Disconnected as i32;
                    r.sip
                        .attributes
                        .insert("sip.callStatus".into(), "hangup".into());
                    r.sip.disconnect_reason = proto::DisconnectReason::ClientInitiated as i32;
                    r.sip.version += 1;
                    r.sip.clone()
                };
                let update = proto::ParticipantUpdate {
                    participants: vec![info],
                };
                let _ = out.send(signal_response::Message::Update(update)).await;
            }
            Command::DropSignal => return false,
            Command::CloseRoom => {
                let leave = proto::LeaveRequest {
                    reason: proto::DisconnectReason::RoomDeleted as i32,
                    action: proto::leave_request::Action::Disconnect as i32,
                    ..Default::default()
                };
                let _ = out.send(signal_response::Message::Leave(leave)).await;
                return false;
            }
        }
        true
    }

    fn sip_identity(&self) -> (String, String) {
        self.shared
            .lock()
            .rooms
            .get(&self.room)
            .map(|r| (r.sip.identity.clone(), r.sip.sid.clone()))
            .unwrap_or_default()
    }
}
