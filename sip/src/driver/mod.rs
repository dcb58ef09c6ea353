//! The tokio driver: owns the SIP UDP socket, the core's timers and one RTP socket per call,
//! and turns the sans-IO [`Endpoint`](crate::Endpoint) into async handles for the application.
//!
//! - [`start`] binds the SIP socket and spawns the signalling task; it returns a [`SipHandle`]
//!   and a bounded stream of [`InboundCall`]s.
//! - [`InboundCall::answer`] binds an RTP port, answers with SDP and spawns the call's media
//!   task, returning its [`MediaSession`]: encoded frames in and out, paced every ptime.
//! - Per-call [`CallSignal`]s (established, ended, SIP INFO DTMF) arrive on the call's own
//!   bounded channel.
//!
//! This is the only part of the crate that reads the clock and touches sockets. It does not
//! decode audio: frames are codec payloads.

mod media;
mod ports;
mod signalling;

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

pub use media::{FrameSender, MediaEvent, MediaSession, MediaStats, OutFrame, RtpAudio};

use crate::message::{NameAddr, Uri};
use crate::sdp::{AnswerParams, NegotiatedMedia, SessionDescription};
use crate::{CallError, CallId, EndReason, Stats};

/// How to run the driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// UDP address for SIP.
    pub listen: SocketAddr,
    /// Address to announce in Via/Contact/SDP when behind NAT. `None`: the bound address, or
    /// for a wildcard bind the local address that routes towards each peer.
    pub external_ip: Option<IpAddr>,
    /// RTP ports (even ports are used; RTCP would take the odd one above).
    pub rtp_ports: RangeInclusive<u16>,
    /// Core settings (codecs, user agent, timers). `local_addr`/`advertised_addr` are filled in.
    pub endpoint: crate::Config,
    /// Inbound calls waiting for the application before new ones get 503.
    pub inbound_queue: usize,
}

/// Errors of the driver's async API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    #[error("cannot bind SIP socket {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no free RTP port in {first}..={last}")]
    NoRtpPort { first: u16, last: u16 },
    #[error("the call's offer cannot be answered: {0}")]
    Sdp(#[from] crate::sdp::SdpError),
    #[error("call command refused: {0}")]
    Call(#[from] CallError),
    #[error("the SIP driver has stopped")]
    Stopped,
}

/// What happens to a call after it was offered (per-call, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallSignal {
    /// The ACK arrived: media may flow both ways (with the SDP answer for an offerless INVITE).
    Established {
        remote_sdp: Option<Box<SessionDescription>>,
    },
    /// The call is over; the last signal.
    Ended(EndReason),
    /// A DTMF digit sent by SIP INFO (application/dtmf-relay or application/dtmf).
    InfoDtmf {
        digit: char,
        duration_ms: Option<u32>,
    },
}

/// A handle on the running driver. Cheap to clone.
#[derive(Clone)]
pub struct SipHandle {
    commands: mpsc::Sender<signalling::Command>,
    shared: Arc<Shared>,
}

struct Shared {
    local_addr: SocketAddr,
    external_ip: Option<IpAddr>,
    ports: ports::PortAllocator,
    codecs: Vec<crate::sdp::Codec>,
    stats: watch::Receiver<Stats>,
}

/// Binds `config.listen` and starts the signalling task.
pub async fn start(
    config: DriverConfig,
) -> Result<(SipHandle, mpsc::Receiver<InboundCall>), DriverError> {
    let socket = tokio::net::UdpSocket::bind(config.listen)
        .await
        .map_err(|source| DriverError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = socket.local_addr().map_err(|source| DriverError::Bind {
        addr: config.listen,
        source,
    })?;
    let mut endpoint_config = config.endpoint.clone();
    endpoint_config.local_addr = local_addr;
    let advertised_ip = config.external_ip.unwrap_or_else(|| {
        if local_addr.ip().is_unspecified() {
            ports::default_route_ip()
        } else {
            local_addr.ip()
        }
    });
    endpoint_config.advertised_addr = Some(SocketAddr::new(advertised_ip, local_addr.port()));
    if endpoint_config.seed == 0 {
        endpoint_config.seed = rand::random();
    }
    let (stats_tx, stats_rx) = watch::channel(Stats::default());
    let (commands_tx, commands_rx) = mpsc::channel(256);
    let (inbound_tx, inbound_rx) = mpsc::channel(config.inbound_queue.max(1));
    let shared = Arc::new(Shared {
        local_addr,
        external_ip: config.external_ip,
        ports: ports::PortAllocator::new(config.rtp_ports.clone()),
        codecs: endpoint_config.codecs.clone(),
        stats: stats_rx,
    });
    let handle = SipHandle {
        commands: commands_tx,
        shared,
    };
    let task = signalling::Signalling::new(
        socket,
        crate::Endpoint::new(endpoint_config),
        commands_rx,
        inbound_tx,
        stats_tx,
        handle.clone(),
    );
    tokio::spawn(task.run());
    Ok((handle, inbound_rx))
}

impl SipHandle {
    /// The bound SIP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The core's counters, as of the last signalling event.
    pub fn stats(&self) -> Stats {
        *self.shared.stats.borrow()
    }

    /// New INVITEs get 503 from now on; calls in progress continue.
    pub async fn stop_accepting(&self) {
        let _ = self.commands.send(signalling::Command::StopAccepting).await;
    }

    /// Stops the signalling task after sending what is queued. Hang up calls first.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(signalling::Command::Shutdown { done: tx })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, CallError>>) -> signalling::Command,
    ) -> Result<T, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| DriverError::Stopped)?;
        Ok(rx.await.map_err(|_| DriverError::Stopped)??)
    }

    /// The IP to announce for media towards `peer`.
    fn media_ip_towards(&self, peer: SocketAddr) -> IpAddr {
        if let Some(ip) = self.shared.external_ip {
            return ip;
        }
        let bound = self.shared.local_addr.ip();
        if !bound.is_unspecified() {
            return bound;
        }
        ports::local_ip_towards(peer).unwrap_or_else(ports::default_route_ip)
    }
}

/// Controls one call (answer, reject, hang up). Cheap to clone.
#[derive(Clone)]
pub struct CallControl {
    call: CallId,
    handle: SipHandle,
}

impl CallControl {
    pub fn call(&self) -> CallId {
        self.call
    }

    /// Ends the call: BYE when established, a final response before that, CANCEL outbound.
    /// The call's [`CallSignal::Ended`] follows.
    pub async fn hangup(&self) -> Result<(), DriverError> {
        let call = self.call;
        self.handle
            .request(|reply| signalling::Command::Hangup { call, reply })
            .await
    }
}

/// An inbound INVITE, already answered with 100 Trying and 180 Ringing.
pub struct InboundCall {
    pub call: CallId,
    pub sip_call_id: String,
    pub from: NameAddr,
    pub to: NameAddr,
    pub request_uri: Uri,
    pub source: SocketAddr,
    pub offer: Option<SessionDescription>,
    /// The call's signals; [`CallSignal::Ended`] is the last.
    pub signals: mpsc::Receiver<CallSignal>,
    control: CallControl,
}

impl InboundCall {
    pub fn control(&self) -> CallControl {
        self.control.clone()
    }

    /// Answers with 200 OK: binds an RTP port, negotiates the codec and starts media.
    pub async fn answer(&self) -> Result<MediaSession, DriverError> {
        let handle = &self.control.handle;
        let media_ip = handle.media_ip_towards(self.source);
        let socket = handle.shared.ports.bind(media_ip).await?;
        let port = socket
            .local_addr()
            .map_err(|_| DriverError::Stopped)?
            .port();
        let params = AnswerParams {
            codecs: &handle.shared.codecs,
            address: media_ip,
            port,
            session_id: rand::random::<u32>().into(),
            username: "agent",
        };
        let (sdp, negotiated) = match &self.offer {
            Some(offer) => crate::sdp::build_answer(offer, &params)?,
            None => offerless_offer(&params),
        };
        let call = self.call;
        handle
            .request(|reply| signalling::Command::Answer {
                call,
                sdp: Box::new(sdp),
                reply,
            })
            .await?;
        Ok(MediaSession::start(socket, negotiated))
    }

    /// Rejects with a final status (e.g. 486 busy, 503 overloaded).
    pub async fn reject(&self, status: u16) -> Result<(), DriverError> {
        let call = self.call;
        self.control
            .handle
            .request(|reply| signalling::Command::Reject {
                call,
                status,
                reply,
            })
            .await
    }
}

/// For an INVITE without SDP our 200 carries the offer; the peer answers in the ACK, and the
/// media task learns the remote address when [`CallSignal::Established`] arrives.
fn offerless_offer(params: &AnswerParams<'_>) -> (SessionDescription, NegotiatedMedia) {
    let offer = crate::sdp::build_offer(&crate::sdp::OfferParams {
        codecs: params.codecs,
        address: params.address,
        port: params.port,
        session_id: params.session_id,
        username: params.username,
        telephone_event: Some(101),
        ptime_ms: 20,
        direction: crate::sdp::Direction::SendRecv,
    });
    let codec = params
        .codecs
        .first()
        .cloned()
        .unwrap_or_else(crate::sdp::Codec::pcmu);
    let negotiated = NegotiatedMedia {
        codec,
        telephone_event: Some(101),
        ptime_ms: 20,
        remote_rtp: None,
        direction: crate::sdp::Direction::SendRecv,
    };
    (offer, negotiated)
}
