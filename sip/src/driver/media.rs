//! One call's RTP: a task owning the RTP socket that receives (symmetric latching, RFC 4733
//! events) and sends one frame per ptime, and the [`MediaSession`] handle the application uses.
//! The same task runs the call's RTCP on the odd port ([`super::rtcp`]) and publishes the
//! call's [`MediaQuality`].
//!
//! Sending is paced by the task, not the application: the application queues encoded frames
//! ahead on a small bounded channel and the task sends one per tick (a silence frame when none
//! is queued, so NATs and the peer's jitter buffer see a steady stream). A flush bumps an epoch
//! so frames queued before it are discarded without draining the channel from outside.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, watch};

use super::ports::MediaSockets;
use super::rtcp::{BYE_SEND_TIMEOUT, RtcpLink, Sent};
use crate::rtp::{Ignored, MediaQuality, Received, RtpPacket, RtpReceiver, RtpSender};
use crate::sdp::NegotiatedMedia;

/// Encoded frames the application may queue ahead of the pacer. Small on purpose: a barge-in
/// flush must not leave much audio in flight (4 × 20 ms = 80 ms).
const FRAMES_AHEAD: usize = 4;
/// Received packets waiting for the application before new ones are dropped (≈ 1.3 s).
const EVENTS_QUEUE: usize = 64;

/// One received audio packet from the latched source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpAudio {
    pub sequence: u16,
    pub timestamp: u32,
    pub payload_type: u8,
    pub marker: bool,
    pub payload: Vec<u8>,
    /// When the datagram was read from the socket.
    pub arrived: Instant,
}

/// What the media task reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    Audio(RtpAudio),
    /// An RFC 4733 telephone-event (reported once, on its first packet).
    Dtmf {
        digit: char,
        arrived: Instant,
    },
    /// A frame queued with a mark went out on the wire.
    FrameSent {
        mark: u64,
        at: Instant,
    },
}

/// A frame to send. Build it with [`FrameSender::frame`] so it carries the current epoch.
#[derive(Debug, Clone)]
pub struct OutFrame {
    payload: Vec<u8>,
    mark: Option<u64>,
    /// The application's number for this frame, published once it is on the wire
    /// ([`FrameSender::last_sent_tag`]): lets the application know exactly what was played
    /// even across flushes and re-queues.
    tag: u64,
    epoch: u32,
}

/// Counters of one call's media.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct MediaStats {
    pub packets_received: u64,
    pub packets_from_other_sources: u64,
    pub packets_invalid: u64,
    /// Received packets dropped because the application was not reading.
    pub packets_dropped_backlog: u64,
    pub frames_sent: u64,
    pub frames_discarded: u64,
    pub silence_frames_sent: u64,
    /// Loss, jitter and round trip, as of the last 20 ms tick ([`MediaSession::quality`]).
    pub quality: MediaQuality,
}

struct Shared {
    epoch: AtomicU32,
    /// Tag of the last frame sent, plus one (0: none yet).
    sent_tag: AtomicU64,
    frames_sent: AtomicU64,
    frames_discarded: AtomicU64,
    packets_received: AtomicU64,
    packets_other_source: AtomicU64,
    packets_invalid: AtomicU64,
    packets_dropped_backlog: AtomicU64,
    silence_sent: AtomicU64,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            epoch: AtomicU32::new(0),
            sent_tag: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            frames_discarded: AtomicU64::new(0),
            packets_received: AtomicU64::new(0),
            packets_other_source: AtomicU64::new(0),
            packets_invalid: AtomicU64::new(0),
            packets_dropped_backlog: AtomicU64::new(0),
            silence_sent: AtomicU64::new(0),
        }
    }
}

enum Control {
    Dtmf {
        digit: char,
        duration_ms: u32,
    },
    Remote(SocketAddr),
    /// Stop sending audio (hold: the peer said sendonly/inactive); receiving continues.
    Paused(bool),
}

/// The application's side of one call's media. Dropping it (and every [`FrameSender`]) stops
/// the media task.
pub struct MediaSession {
    negotiated: NegotiatedMedia,
    local: SocketAddr,
    events: mpsc::Receiver<MediaEvent>,
    control: mpsc::Sender<Control>,
    sender: FrameSender,
    quality: watch::Receiver<MediaQuality>,
}

/// Queues frames for the pacer. Cheap to clone; separate from [`MediaSession`] so one task can
/// await room to send while it also awaits received media.
#[derive(Clone)]
pub struct FrameSender {
    frames: mpsc::Sender<OutFrame>,
    shared: Arc<Shared>,
}

impl MediaSession {
    pub(super) fn start(sockets: MediaSockets, negotiated: NegotiatedMedia) -> Self {
        let local = sockets
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (events_tx, events_rx) = mpsc::channel(EVENTS_QUEUE);
        let (frames_tx, frames_rx) = mpsc::channel(FRAMES_AHEAD);
        let (control_tx, control_rx) = mpsc::channel(16);
        let shared = Arc::new(Shared::default());
        let (task, quality) = MediaTask::new(
            sockets,
            &negotiated,
            events_tx,
            frames_rx,
            control_rx,
            shared.clone(),
        );
        tokio::spawn(task.run());
        let sender = FrameSender {
            frames: frames_tx,
            shared,
        };
        Self {
            negotiated,
            local,
            events: events_rx,
            control: control_tx,
            sender,
            quality,
        }
    }

    /// The call's media quality so far: the incoming stream's loss and jitter as measured
    /// here, and from the peer's RTCP reports the round trip and its view of our stream.
    /// Updated every 20 ms tick and on every RTCP packet.
    pub fn quality(&self) -> MediaQuality {
        *self.quality.borrow()
    }

    /// The negotiated codec, telephone-event type, ptime and remote address.
    pub fn negotiated(&self) -> &NegotiatedMedia {
        &self.negotiated
    }

    /// Our RTP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next media event. Cancel-safe. `None` once the task has stopped.
    pub async fn recv(&mut self) -> Option<MediaEvent> {
        self.events.recv().await
    }

    /// A handle for queuing frames.
    pub fn sender(&self) -> FrameSender {
        self.sender.clone()
    }

    /// Sends an RFC 4733 digit in place of audio frames.
    pub async fn send_dtmf(&self, digit: char, duration_ms: u32) -> bool {
        self.control
            .send(Control::Dtmf { digit, duration_ms })
            .await
            .is_ok()
    }

    /// Where to send before the first packet latches (e.g. learned from an SDP answer in ACK).
    /// False if the control queue is full or the task has stopped.
    pub fn set_remote(&self, addr: SocketAddr) -> bool {
        self.control.try_send(Control::Remote(addr)).is_ok()
    }

    /// Stops or resumes sending (hold). False if the control queue is full or the task stopped.
    pub fn set_paused(&self, paused: bool) -> bool {
        self.control.try_send(Control::Paused(paused)).is_ok()
    }

    pub fn stats(&self) -> MediaStats {
        let s = &self.sender.shared;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MediaStats {
            packets_received: get(&s.packets_received),
            packets_from_other_sources: get(&s.packets_other_source),
            packets_invalid: get(&s.packets_invalid),
            packets_dropped_backlog: get(&s.packets_dropped_backlog),
            frames_sent: get(&s.frames_sent),
            frames_discarded: get(&s.frames_discarded),
            silence_frames_sent: get(&s.silence_sent),
            quality: self.quality(),
        }
    }
}

impl FrameSender {
    /// A frame for [`FrameSender::send`], stamped with the current epoch; `tag` is the
    /// application's number for it (see [`FrameSender::last_sent_tag`]).
    pub fn frame(&self, payload: Vec<u8>, mark: Option<u64>, tag: u64) -> OutFrame {
        OutFrame {
            payload,
            mark,
            tag,
            epoch: self.shared.epoch.load(Ordering::Acquire),
        }
    }

    /// The tag of the last frame put on the wire, if any.
    pub fn last_sent_tag(&self) -> Option<u64> {
        self.shared.sent_tag.load(Ordering::Acquire).checked_sub(1)
    }

    /// Waits for room and queues a frame. Cancel-safe (nothing is queued if cancelled).
    /// False when the media task has stopped.
    pub async fn send(&self, frame: OutFrame) -> bool {
        match self.frames.reserve().await {
            Ok(permit) => {
                permit.send(frame);
                true
            }
            Err(_) => false,
        }
    }

    /// Discards every frame queued so far (barge-in). Takes effect on the next tick.
    pub fn flush(&self) {
        self.shared.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Frames sent on the wire so far (silence fill excluded).
    pub fn frames_sent(&self) -> u64 {
        self.shared.frames_sent.load(Ordering::Acquire)
    }

    /// Frames discarded by [`FrameSender::flush`] so far.
    pub fn frames_discarded(&self) -> u64 {
        self.shared.frames_discarded.load(Ordering::Acquire)
    }
}

struct MediaTask {
    socket: UdpSocket,
    rtcp: RtcpLink,
    /// What actually went on the wire (not counting ticks on hold), for sender reports.
    sent: Sent,
    receiver: RtpReceiver,
    sender: RtpSender,
    remote: Option<SocketAddr>,
    ptime: Duration,
    silence: Vec<u8>,
    events: mpsc::Sender<MediaEvent>,
    frames: mpsc::Receiver<OutFrame>,
    control: mpsc::Receiver<Control>,
    shared: Arc<Shared>,
    dtmf: VecDeque<Vec<u8>>,
    paused: bool,
}

#[allow(clippy::disallowed_methods)] // the driver is where the clock is read
fn now() -> Instant {
    Instant::now()
}

impl MediaTask {
    fn new(
        sockets: MediaSockets,
        neg: &NegotiatedMedia,
        events: mpsc::Sender<MediaEvent>,
        frames: mpsc::Receiver<OutFrame>,
        control: mpsc::Receiver<Control>,
        shared: Arc<Shared>,
    ) -> (Self, watch::Receiver<MediaQuality>) {
        let ptime_ms = neg.ptime_ms.clamp(10, 60);
        let samples = neg.codec.clock_rate / 1000 * ptime_ms;
        let (ssrc, first_sequence) = (rand::random(), rand::random());
        let sender = RtpSender::new(
            ssrc,
            neg.codec.payload_type,
            samples,
            first_sequence,
            rand::random(),
        )
        .with_telephone_event(neg.telephone_event);
        let (rtcp, quality) = RtcpLink::new(sockets.rtcp, neg, ssrc, first_sequence);
        let task = Self {
            socket: sockets.rtp,
            rtcp,
            sent: Sent::default(),
            receiver: RtpReceiver::new(neg.telephone_event),
            sender,
            remote: neg.remote_rtp,
            ptime: Duration::from_millis(u64::from(ptime_ms)),
            silence: silence_payload(&neg.codec.name, samples as usize),
            events,
            frames,
            control,
            shared,
            dtmf: VecDeque::new(),
            paused: false,
        };
        (task, quality)
    }

    async fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        let mut rtcp_buf = vec![0u8; 1500];
        let mut tick = tokio::time::interval(self.ptime);
        loop {
            let report_due = self.rtcp.next_report();
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    if let Ok((n, from)) = received {
                        self.on_datagram(from, n, &buf);
                    }
                }
                received = self.rtcp.recv(&mut rtcp_buf) => {
                    if let Ok((n, from)) = received {
                        let ips = self.media_ips();
                        self.rtcp.on_rtcp(from, &rtcp_buf[..n], &ips, true);
                    }
                }
                _ = tick.tick() => {
                    if !self.on_tick().await {
                        break;
                    }
                }
                _ = tokio::time::sleep_until(report_due.unwrap_or_else(tokio::time::Instant::now)),
                    if report_due.is_some() => {
                    let destination = self.destination();
                    self.rtcp.send_report(&self.sent, destination, false).await;
                }
                control = self.control.recv() => match control {
                    Some(Control::Dtmf { digit, duration_ms }) => {
                        if let Ok(packets) = self.sender.dtmf(digit, duration_ms, 10) {
                            self.dtmf.extend(packets);
                        }
                    }
                    Some(Control::Remote(addr)) => self.remote = Some(addr),
                    Some(Control::Paused(p)) => self.paused = p,
                    None => break,
                },
            }
        }
        // The application is gone: the call's media ends here, so say BYE (RFC 3550 §6.6).
        let destination = self.destination();
        let bye = self.rtcp.send_report(&self.sent, destination, true);
        let _ = tokio::time::timeout(BYE_SEND_TIMEOUT, bye).await;
    }

    /// Where our RTP goes: the latched source, else the address from SDP.
    fn destination(&self) -> Option<SocketAddr> {
        self.receiver.latched().or(self.remote)
    }

    /// The peer's media IPs, from which RTCP is accepted.
    fn media_ips(&self) -> Vec<std::net::IpAddr> {
        self.receiver
            .latched()
            .into_iter()
            .chain(self.remote)
            .map(|a| a.ip())
            .collect()
    }

    fn on_datagram(&mut self, from: SocketAddr, n: usize, buf: &[u8]) {
        let arrived = now();
        let data = &buf[..n];
        if data.get(1).is_some_and(|pt| (192..=223).contains(pt)) {
            // RTCP multiplexed on the RTP port (RFC 5761 §4: told apart by the packet type).
            let ips = self.media_ips();
            self.rtcp.on_rtcp(from, data, &ips, false);
            return;
        }
        let event = match self.receiver.handle_packet(from, data) {
            Received::Media(pkt) => {
                self.shared.packets_received.fetch_add(1, Ordering::Relaxed);
                let h = &pkt.header;
                self.rtcp
                    .on_rtp(h.ssrc, h.sequence, h.timestamp, arrived, true);
                MediaEvent::Audio(RtpAudio {
                    sequence: pkt.header.sequence,
                    timestamp: pkt.header.timestamp,
                    payload_type: pkt.header.payload_type,
                    marker: pkt.header.marker,
                    payload: pkt.payload.to_vec(),
                    arrived,
                })
            }
            Received::Dtmf(d) => {
                self.event_packet(data, arrived);
                MediaEvent::Dtmf {
                    digit: d.digit,
                    arrived,
                }
            }
            Received::DtmfContinuation => {
                self.event_packet(data, arrived);
                return;
            }
            Received::Ignored(Ignored::OtherSource(_)) => {
                self.shared
                    .packets_other_source
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            Received::Ignored(_) => {
                self.shared.packets_invalid.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        if self.events.try_send(event).is_err() {
            self.shared
                .packets_dropped_backlog
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Accounts a telephone-event packet for loss; its timestamp stays at the event's start,
    /// so it is left out of the jitter.
    fn event_packet(&mut self, data: &[u8], arrived: Instant) {
        if let Ok(p) = RtpPacket::parse(data) {
            let h = &p.header;
            self.rtcp
                .on_rtp(h.ssrc, h.sequence, h.timestamp, arrived, false);
        }
    }

    /// Sends one packet: a DTMF packet, else the next current-epoch frame, else silence.
    /// Returns false when the application is gone.
    async fn on_tick(&mut self) -> bool {
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        let mut packet = self.dtmf.pop_front();
        let mut sent_mark = None;
        let mut sent_tag = None;
        let mut real_frame = false;
        if packet.is_none() {
            loop {
                match self.frames.try_recv() {
                    Ok(frame) if frame.epoch != epoch => {
                        self.shared.frames_discarded.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(frame) => {
                        packet = Some(self.sender.audio(&frame.payload));
                        sent_mark = frame.mark;
                        sent_tag = Some(frame.tag);
                        real_frame = true;
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return false,
                }
            }
        }
        let packet = match packet {
            Some(p) => p,
            None => {
                self.shared.silence_sent.fetch_add(1, Ordering::Relaxed);
                self.sender.audio(&self.silence)
            }
        };
        if let (Some(dest), false) = (self.destination(), self.paused)
            && self.socket.send_to(&packet, dest).await.is_ok()
        {
            self.sent.packets += 1;
            // Our packets carry the 12-octet fixed header only.
            self.sent.octets += packet.len().saturating_sub(12) as u64;
            if let Ok(p) = RtpPacket::parse(&packet) {
                self.sent.last = Some((now(), p.header.timestamp));
            }
        }
        self.rtcp.publish();
        if real_frame {
            self.shared.frames_sent.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(tag) = sent_tag {
            self.shared
                .sent_tag
                .store(tag.saturating_add(1), Ordering::Release);
        }
        if let Some(mark) = sent_mark {
            let _ = self
                .events
                .try_send(MediaEvent::FrameSent { mark, at: now() });
        }
        true
    }
}

/// One frame of digital silence in the codec (G.711 silence is not zero bytes).
fn silence_payload(codec: &str, samples: usize) -> Vec<u8> {
    match codec.to_ascii_uppercase().as_str() {
        "PCMU" => vec![0xFF; samples],
        "PCMA" => vec![0xD5; samples],
        // Other codecs: the application should keep its queue fed; an empty payload is skipped
        // by most receivers.
        _ => Vec::new(),
    }
}
