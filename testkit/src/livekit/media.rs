//! The fake's media: webrtc-rs peer connections on loopback, the caller's audio (16 kHz WAV →
//! 48 kHz → Opus, one packet per 20 ms) and the recorder of what the agent publishes (Opus →
//! 16 kHz PCM).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audio::Codec as _;
use bytes::Bytes;
use tokio::sync::mpsc;
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::interceptor::registry::Registry;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_remote::TrackRemote;

pub(crate) const OPUS_PT: u8 = 111;
const RATE_48K: u32 = 48_000;
const FRAME_48K: usize = 960;

pub(crate) fn opus_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: RATE_48K,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// A webrtc API like the server's for audio: Opus, default interceptors, loopback ICE only.
pub(crate) fn api() -> webrtc::api::API {
    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                capability: opus_capability(),
                payload_type: OPUS_PT,
                ..Default::default()
            },
            RTPCodecType::Audio,
        )
        .expect("register opus");
    let registry =
        register_default_interceptors(Registry::new(), &mut media).expect("interceptors");
    let mut settings = SettingEngine::default();
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip| ip.is_loopback()));
    APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build()
}

/// Reads a mono WAV and returns it at 16 kHz.
pub(crate) fn load_wav_16k(path: &Path) -> Result<Vec<i16>, String> {
    let wav = audio::wav::read_wav(path).map_err(|e| e.to_string())?;
    if wav.sample_rate == 16_000 {
        return Ok(wav.samples);
    }
    let mut resampler =
        audio::Resampler::new(wav.sample_rate, 16_000).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    resampler
        .process(&wav.samples, &mut out)
        .map_err(|e| e.to_string())?;
    resampler.flush(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The caller's voice: plays queued 16 kHz audio as Opus at 48 kHz, one packet per 20 ms,
/// and Opus-encoded silence when nothing is queued, until `stop` closes.
pub(crate) async fn play(
    track: Arc<TrackLocalStaticRTP>,
    mut more: mpsc::Receiver<Vec<i16>>,
    sent: Arc<AtomicU64>,
) {
    let Ok(mut encoder) =
        opus::Encoder::new(RATE_48K, opus::Channels::Mono, opus::Application::Voip)
    else {
        return;
    };
    let Ok(mut upsampler) = audio::Resampler::new(16_000, RATE_48K) else {
        return;
    };
    let mut queue: VecDeque<i16> = VecDeque::new();
    let mut sequence: u16 = 1000;
    let mut timestamp: u32 = 48_000;
    let mut first = true;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut encoded = vec![0u8; 1500];
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            chunk = more.recv() => match chunk {
                Some(samples) => {
                    let mut up: Vec<i16> = Vec::with_capacity(samples.len() * 3 + FRAME_48K);
                    let _ = upsampler.process(&samples, &mut up);
                    let _ = upsampler.flush(&mut up);
                    queue.extend(up);
                    continue;
                }
                None => return,
            },
        }
        let mut frame = [0i16; FRAME_48K];
        for sample in frame.iter_mut() {
            match queue.pop_front() {
                Some(s) => *sample = s,
                None => break,
            }
        }
        let Ok(len) = encoder.encode(&frame, &mut encoded) else {
            continue;
        };
        let packet = webrtc::rtp::packet::Packet {
            header: webrtc::rtp::header::Header {
                version: 2,
                marker: first,
                payload_type: OPUS_PT,
                sequence_number: sequence,
                timestamp,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(&encoded[..len]),
        };
        first = false;
        sequence = sequence.wrapping_add(1);
        timestamp = timestamp.wrapping_add(FRAME_48K as u32);
        if track.write_rtp(&packet).await.is_ok() {
            sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Decodes what the agent publishes into `recording` (16 kHz mono), counting packets.
pub(crate) async fn record(
    track: Arc<TrackRemote>,
    recording: Arc<Mutex<Vec<i16>>>,
    packets: Arc<AtomicU64>,
) {
    let Ok(mut decoder) = audio::OpusCodec::new(16_000, audio::OpusConfig::default()) else {
        return;
    };
    let mut pcm = vec![0i16; 16_000 * 120 / 1000];
    let mut last_sequence: Option<u16> = None;
    while let Ok((packet, _)) = track.read_rtp().await {
        packets.fetch_add(1, Ordering::Relaxed);
        let sequence = packet.header.sequence_number;
        // A lost packet becomes concealment, so the recording keeps its timing.
        if let Some(last) = last_sequence {
            let gap = sequence.wrapping_sub(last).wrapping_sub(1);
            for _ in 0..gap.min(50) {
                if let Ok(n) = decoder.conceal(None, &mut pcm) {
                    push(&recording, &pcm[..n]);
                }
            }
        }
        last_sequence = Some(sequence);
        if let Ok(n) = decoder.decode(&packet.payload, &mut pcm) {
            push(&recording, &pcm[..n]);
        }
    }
}

fn push(recording: &Mutex<Vec<i16>>, samples: &[i16]) {
    if let Ok(mut r) = recording.lock() {
        r.extend_from_slice(samples);
    }
}
