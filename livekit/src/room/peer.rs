//! The two WebRTC peer connections of a LiveKit participant (webrtc-rs): the subscriber (the
//! server offers, we answer; it carries the tracks we receive and the server's data channels)
//! and the publisher (we offer; our audio track and our `_reliable`/`_lossy` data channels).

use std::sync::Arc;

use livekit_protocol as proto;
use tokio::sync::mpsc;
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice_transport::ice_candidate::{RTCIceCandidate, RTCIceCandidateInit};
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::track::track_remote::TrackRemote;

use super::RoomError;
use super::media::OPUS_PAYLOAD_TYPE;

/// Which peer connection (the protocol's `SignalTarget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Publisher,
    Subscriber,
}

impl Target {
    pub(crate) fn to_proto(self) -> i32 {
        match self {
            Target::Publisher => proto::SignalTarget::Publisher as i32,
            Target::Subscriber => proto::SignalTarget::Subscriber as i32,
        }
    }

    pub(crate) fn from_proto(value: i32) -> Option<Self> {
        match proto::SignalTarget::try_from(value).ok()? {
            proto::SignalTarget::Publisher => Some(Target::Publisher),
            proto::SignalTarget::Subscriber => Some(Target::Subscriber),
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Target::Publisher => 0,
            Target::Subscriber => 1,
        }
    }
}

/// What the peer connections' callbacks report to the room task.
pub(crate) enum PeerInput {
    Candidate(Target, RTCIceCandidateInit),
    Track(Arc<TrackRemote>),
    Data(bytes::Bytes),
    State(Target, RTCPeerConnectionState),
}

/// Opus as LiveKit and browsers offer it: 48 kHz, 2 channels in SDP (RFC 7587 §7), in-band FEC.
pub(crate) fn opus_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// ICE options for the peer connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IcePolicy {
    /// Host candidates on every interface except loopback, plus the servers' STUN/TURN.
    #[default]
    Default,
    /// Loopback candidates only: a server on the same host (tests, a local LiveKit).
    LoopbackOnly,
}

/// A webrtc API with Opus only, the default interceptors (NACK, RTCP reports) and mDNS off.
pub(crate) fn api(ice: IcePolicy) -> Result<webrtc::api::API, RoomError> {
    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                capability: opus_capability(),
                payload_type: OPUS_PAYLOAD_TYPE,
                ..Default::default()
            },
            RTPCodecType::Audio,
        )
        .map_err(webrtc_err)?;
    let registry =
        register_default_interceptors(Registry::new(), &mut media).map_err(webrtc_err)?;
    let mut settings = SettingEngine::default();
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    if ice == IcePolicy::LoopbackOnly {
        settings.set_include_loopback_candidate(true);
        settings.set_ip_filter(Box::new(|ip| ip.is_loopback()));
    }
    Ok(APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build())
}

/// The peer connection configuration from the JoinResponse's ICE servers.
pub(crate) fn configuration(servers: &[proto::IceServer]) -> RTCConfiguration {
    RTCConfiguration {
        ice_servers: servers
            .iter()
            .map(|s| RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone(),
                credential: s.credential.clone(),
            })
            .collect(),
        ..Default::default()
    }
}

/// Routes a peer connection's callbacks to the room task.
pub(crate) fn wire(pc: &RTCPeerConnection, target: Target, tx: mpsc::Sender<PeerInput>) {
    let candidates = tx.clone();
    pc.on_ice_candidate(Box::new(move |candidate: Option<RTCIceCandidate>| {
        let tx = candidates.clone();
        Box::pin(async move {
            let Some(candidate) = candidate else { return };
            if let Ok(init) = candidate.to_json() {
                let _ = tx.send(PeerInput::Candidate(target, init)).await;
            }
        })
    }));
    let states = tx.clone();
    pc.on_peer_connection_state_change(Box::new(move |state| {
        let tx = states.clone();
        Box::pin(async move {
            let _ = tx.send(PeerInput::State(target, state)).await;
        })
    }));
    if target == Target::Subscriber {
        let tracks = tx.clone();
        pc.on_track(Box::new(move |track, _receiver, _transceiver| {
            let tx = tracks.clone();
            Box::pin(async move {
                let _ = tx.send(PeerInput::Track(track)).await;
            })
        }));
        // Data from other participants arrives on the channels the server opens on the
        // subscriber connection.
        pc.on_data_channel(Box::new(move |channel| {
            let tx = tx.clone();
            Box::pin(async move {
                channel.on_message(Box::new(move |message| {
                    let tx = tx.clone();
                    Box::pin(async move {
                        let _ = tx.send(PeerInput::Data(message.data)).await;
                    })
                }));
            })
        }));
    }
}

pub(crate) fn webrtc_err(e: webrtc::Error) -> RoomError {
    RoomError::WebRtc(e.to_string())
}
