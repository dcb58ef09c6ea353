//! The tokio driver: owns the SIP UDP socket, the core's timers and one RTP socket per call,
//! and turns the sans-IO [`Endpoint`](crate::Endpoint) into async handles for the application.
//!
//! - [`start`] binds the SIP socket and spawns the signalling task; it returns a [`SipHandle`]
//!   and a bounded stream of [`InboundCall`]s.
//! - [`InboundCall::answer`] binds an RTP/RTCP port pair, answers with SDP and spawns the
//!   call's media task, returning its [`MediaSession`]: encoded frames in and out, paced every
//!   ptime, RTCP reports every ~5 s and the call's [`MediaQuality`].
//! - [`SipHandle::dial`] places an outbound call (through a trunk or to a SIP URI); see
//!   [`OutboundCall`].
//! - Per-call [`CallSignal`]s (progress, established, hold/resume, transfer results, SIP INFO
//!   DTMF, ended) arrive on the call's own bounded channel; [`CallControl`] hangs up and
//!   transfers.
//! - Trunks ([`TrunkConfig`]) are registered and probed as configured; [`SipHandle::trunks`]
//!   reports their state, [`SipHandle::unregister_all`] removes the bindings on shutdown.
//! - Transports: UDP, and with [`DriverConfig::tcp`] TCP on the same port (a listener, and
//!   outgoing connections pooled per peer and reused).
//!
//! This is the only part of the crate that reads the clock and touches sockets. It does not
//! decode audio: frames are codec payloads.

mod media;
mod outbound;
mod ports;
mod rtcp;
#[cfg(test)]
mod rtcp_tests;
mod signalling;
#[cfg(test)]
mod tests;
mod transport;
mod trunks;

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

pub use crate::rtp::MediaQuality;
pub use media::{FrameSender, MediaEvent, MediaSession, MediaStats, OutFrame, RtpAudio};
pub use outbound::{DialEvent, DialRequest, OutboundCall};
pub use transport::TcpStats;
pub use trunks::{TrunkConfig, TrunkHealthStatus, TrunkStatus};

use crate::message::{NameAddr, Uri};
use crate::sdp::{AnswerParams, Direction, NegotiatedMedia, SessionDescription};
use crate::{CallError, CallId, EndReason, Stats, TransferOutcome};

/// How to run the driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// UDP address for SIP.
    pub listen: SocketAddr,
    /// Address to announce in Via/Contact/SDP when behind NAT. `None`: the bound address, or
    /// for a wildcard bind the local address that routes towards each peer.
    pub external_ip: Option<IpAddr>,
    /// RTP ports (even ports are used; RTCP takes the odd one above).
    pub rtp_ports: RangeInclusive<u16>,
    /// Core settings (codecs, user agent, timers). `local_addr`/`advertised_addr` are filled in.
    pub endpoint: crate::Config,
    /// Inbound calls waiting for the application before new ones get 503.
    pub inbound_queue: usize,
    /// Also take SIP over TCP on the `listen` port, and open TCP connections when a request
    /// or trunk needs it (sets the core's `tcp_enabled`).
    pub tcp: bool,
    /// Trunks to register with, probe and dial through.
    pub trunks: Vec<TrunkConfig>,
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
    #[error("no trunk named {0:?}")]
    UnknownTrunk(String),
    #[error("cannot dial {0:?}: not a number, user or sip: URI usable here")]
    InvalidTarget(String),
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
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
    /// Outbound: a provisional response (180, 183…), with SDP when it brings early media.
    Progress {
        status: u16,
        remote_sdp: Option<Box<SessionDescription>>,
    },
    /// The peer changed the session (re-INVITE/UPDATE, answered by the core). `direction` is
    /// ours: `RecvOnly`/`Inactive` = on hold, stop sending ([`MediaSession::set_paused`]);
    /// `SendRecv` = resume.
    MediaUpdated {
        direction: Direction,
        remote_sdp: Box<SessionDescription>,
    },
    /// The outcome of [`CallControl::transfer`]. After `Accepted` the core hangs up our leg
    /// ([`EndReason::Transferred`] follows); otherwise the call goes on.
    TransferResult(TransferOutcome),
}

/// A handle on the running driver. Cheap to clone.
#[derive(Clone)]
pub struct SipHandle {
    commands: mpsc::Sender<signalling::Command>,
    shared: Arc<Shared>,
}

struct Shared {
    local_addr: SocketAddr,
    /// What goes into Via/Contact (NAT: the external address).
    advertised: SocketAddr,
    external_ip: Option<IpAddr>,
    ports: ports::PortAllocator,
    codecs: Vec<crate::sdp::Codec>,
    trunks: Vec<TrunkConfig>,
    stats: watch::Receiver<Stats>,
    tcp: watch::Receiver<TcpStats>,
    trunk_status: watch::Receiver<Vec<TrunkStatus>>,
}

/// Binds `config.listen` (UDP, and TCP on the same port when `config.tcp`), adds the
/// trunks (registering those that register) and starts the signalling task.
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
    let listener = if config.tcp {
        // The same port as UDP, so Via/Contact name one address for both.
        let listener = tokio::net::TcpListener::bind(local_addr)
            .await
            .map_err(|source| DriverError::Bind {
                addr: local_addr,
                source,
            })?;
        Some(listener)
    } else {
        None
    };
    let mut endpoint_config = config.endpoint.clone();
    endpoint_config.local_addr = local_addr;
    endpoint_config.tcp_enabled = config.tcp;
    let advertised_ip = config.external_ip.unwrap_or_else(|| {
        if local_addr.ip().is_unspecified() {
            ports::default_route_ip()
        } else {
            local_addr.ip()
        }
    });
    let advertised = SocketAddr::new(advertised_ip, local_addr.port());
    endpoint_config.advertised_addr = Some(advertised);
    if endpoint_config.seed == 0 {
        endpoint_config.seed = rand::random();
    }
    let (stats_tx, stats_rx) = watch::channel(Stats::default());
    let (tcp_tx, tcp_rx) = watch::channel(TcpStats::default());
    let tracker = trunks::TrunkTracker::new(&config.trunks);
    let (trunks_tx, trunks_rx) = watch::channel(tracker.snapshot());
    let (commands_tx, commands_rx) = mpsc::channel(256);
    let (inbound_tx, inbound_rx) = mpsc::channel(config.inbound_queue.max(1));
    let shared = Arc::new(Shared {
        local_addr,
        advertised,
        external_ip: config.external_ip,
        ports: ports::PortAllocator::new(config.rtp_ports.clone()),
        codecs: endpoint_config.codecs.clone(),
        trunks: config.trunks.clone(),
        stats: stats_rx,
        tcp: tcp_rx,
        trunk_status: trunks_rx,
    });
    let handle = SipHandle {
        commands: commands_tx,
        shared,
    };
    let mut task = signalling::Signalling::new(
        socket,
        config.tcp.then(|| transport::TcpTransport::start(listener)),
        crate::Endpoint::new(endpoint_config),
        commands_rx,
        inbound_tx,
        signalling::Published {
            stats: stats_tx,
            tcp: tcp_tx,
            trunks: trunks_tx,
        },
        tracker,
        handle.clone(),
    );
    for trunk in &config.trunks {
        match trunks::resolve(&trunk.proxy_host, trunk.proxy_port).await {
            Ok(proxy) => task.add_trunk(trunk.core_trunk(proxy)),
            Err(e) => {
                tracing::warn!(trunk = %trunk.name, host = %trunk.proxy_host, error = %e, "cannot resolve the trunk's proxy; retrying every 30 s");
                task.trunk_error(
                    &trunk.name,
                    format!("cannot resolve {}: {e}", trunk.proxy_host),
                );
                tokio::spawn(resolve_later(trunk.clone(), handle.commands.clone()));
            }
        }
    }
    tokio::spawn(task.run());
    Ok((handle, inbound_rx))
}

/// Retries a trunk's proxy name until it resolves, then adds the trunk.
async fn resolve_later(trunk: TrunkConfig, commands: mpsc::Sender<signalling::Command>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        if commands.is_closed() {
            return;
        }
        if let Ok(proxy) = trunks::resolve(&trunk.proxy_host, trunk.proxy_port).await {
            let core = trunk.core_trunk(proxy);
            let _ = commands
                .send(signalling::Command::AddTrunk(Box::new(core)))
                .await;
            return;
        }
    }
}

impl SipHandle {
    /// The bound SIP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The address announced in Via/Contact (the external address behind NAT).
    pub fn advertised(&self) -> SocketAddr {
        self.shared.advertised
    }

    /// The core's counters, as of the last signalling event.
    pub fn stats(&self) -> Stats {
        *self.shared.stats.borrow()
    }

    /// TCP transport counters (zero when TCP is off).
    pub fn tcp_stats(&self) -> TcpStats {
        *self.shared.tcp.borrow()
    }

    /// Every configured trunk's registration and health, in configuration order.
    pub fn trunks(&self) -> Vec<TrunkStatus> {
        self.shared.trunk_status.borrow().clone()
    }

    /// Waits until a trunk's status satisfies `check` (or the driver stops); for start-up
    /// checks and tests.
    pub async fn wait_trunk(&self, name: &str, check: impl Fn(&TrunkStatus) -> bool) -> bool {
        let mut rx = self.shared.trunk_status.clone();
        rx.wait_for(|all| all.iter().any(|t| t.name == name && check(t)))
            .await
            .is_ok()
    }

    /// Removes our registrations (REGISTER with Expires: 0) and waits for the registrars'
    /// answers, at most `within`. Returns false when some did not answer in time.
    pub async fn unregister_all(&self, within: std::time::Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(signalling::Command::UnregisterAll { done: tx })
            .await
            .is_err()
        {
            return false;
        }
        matches!(tokio::time::timeout(within, rx).await, Ok(Ok(())))
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

    /// Blind transfer of an established call to `target` (REFER). Which targets are allowed
    /// is the application's decision. The outcome arrives as [`CallSignal::TransferResult`].
    pub async fn transfer(&self, target: Uri) -> Result<(), DriverError> {
        let call = self.call;
        self.handle
            .request(|reply| signalling::Command::Transfer {
                call,
                target: Box::new(target),
                reply,
            })
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
    /// The trunk whose allowed sources admitted the call, if any.
    pub trunk: Option<String>,
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
        let sockets = handle.shared.ports.bind(media_ip).await?;
        let port = sockets
            .local_addr()
            .map_err(|_| DriverError::Stopped)?
            .port();
        let codecs = self
            .trunk
            .as_ref()
            .and_then(|name| handle.shared.trunks.iter().find(|t| &t.name == name))
            .map(|t| &t.codecs)
            .filter(|c| !c.is_empty())
            .unwrap_or(&handle.shared.codecs);
        let params = AnswerParams {
            codecs,
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
        Ok(MediaSession::start(sockets, negotiated))
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
        remote_rtcp: None,
        rtcp_mux: false,
        direction: crate::sdp::Direction::SendRecv,
    };
    (offer, negotiated)
}
