//! The driver side of one call's RTCP, run inside the call's media task: the odd-port socket,
//! the randomised report timer, where reports go, and publishing [`MediaQuality`]. The protocol
//! itself is the sans-IO [`RtcpSession`].
//!
//! Where reports go: the address the peer's RTCP comes from once one arrived (symmetric RTCP,
//! as for RTP behind NAT), else the SDP's `a=rtcp`, else the RTP destination's port plus one.
//! RTCP is taken only from the IPs the call's media uses, so a stranger cannot feed the quality
//! record. RTCP multiplexed on the RTP port (RFC 5761) is read too, though we never agree to it.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::rtp::{MediaQuality, RtcpSession, SenderInfo, ntp_timestamp, report_interval};
use crate::sdp::NegotiatedMedia;

/// What we sent on the wire, for the SR's sender info.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sent {
    pub(super) packets: u64,
    pub(super) octets: u64,
    /// The RTP timestamp of the last packet sent and when it went: the SR's RTP timestamp is
    /// extrapolated from it to the SR's wallclock time.
    pub(super) last: Option<(Instant, u32)>,
}

pub(super) struct RtcpLink {
    /// `None` when the peer asked for `a=rtcp-mux`: we do not multiplex, so we send nothing.
    socket: Option<UdpSocket>,
    session: RtcpSession,
    clock_rate: u32,
    sdp_remote: Option<SocketAddr>,
    /// The source of the peer's RTCP, once one valid packet came from an expected IP.
    latched: Option<SocketAddr>,
    next_report: Instant,
    packets_at_last_report: u64,
    quality: watch::Sender<MediaQuality>,
}

#[allow(clippy::disallowed_methods)] // the driver is where the clock is read
fn now() -> Instant {
    Instant::now()
}

#[allow(clippy::disallowed_methods)] // the NTP wallclock of sender reports
fn ntp_now() -> u64 {
    ntp_timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

impl RtcpLink {
    /// `ssrc`/`first_sequence`: our RTP sender's. Returns the link and the receiving end of its
    /// quality snapshots.
    pub(super) fn new(
        socket: UdpSocket,
        neg: &NegotiatedMedia,
        ssrc: u32,
        first_sequence: u16,
    ) -> (Self, watch::Receiver<MediaQuality>) {
        // A random CNAME (RFC 7022): nothing about the host or the caller leaks through it.
        let cname = format!("{:016x}@agent", rand::random::<u64>());
        let clock_rate = neg.codec.clock_rate.max(1);
        let (quality, rx) = watch::channel(MediaQuality::default());
        let link = Self {
            socket: (!neg.rtcp_mux).then_some(socket),
            session: RtcpSession::new(ssrc, first_sequence, clock_rate, cname),
            clock_rate,
            sdp_remote: neg.remote_rtcp,
            latched: None,
            next_report: now() + report_interval(true, rand::random::<f64>()),
            packets_at_last_report: 0,
            quality,
        };
        (link, rx)
    }

    /// Waits for a datagram on the RTCP socket; never completes without one.
    pub(super) async fn recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        match &self.socket {
            Some(s) => s.recv_from(buf).await,
            None => std::future::pending().await,
        }
    }

    /// When the next report is due; `None` when we send no RTCP.
    pub(super) fn next_report(&self) -> Option<tokio::time::Instant> {
        self.socket
            .as_ref()
            .map(|_| tokio::time::Instant::from_std(self.next_report))
    }

    /// Accounts one packet of the incoming RTP stream.
    pub(super) fn on_rtp(
        &mut self,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        arrived: Instant,
        with_jitter: bool,
    ) {
        self.session
            .on_rtp(ssrc, sequence, timestamp, arrived, with_jitter);
    }

    /// Reads an RTCP datagram from `from`. `media_ips`: the IPs the call's RTP uses (latched
    /// and from SDP); RTCP from anywhere else is dropped. `latch`: the datagram came to our
    /// RTCP port, so its source is where reports should go.
    pub(super) fn on_rtcp(
        &mut self,
        from: SocketAddr,
        data: &[u8],
        media_ips: &[IpAddr],
        latch: bool,
    ) {
        let expected = self.latched.map(|l| l.ip()).into_iter();
        let expected: Vec<IpAddr> = expected
            .chain(self.sdp_remote.map(|a| a.ip()))
            .chain(media_ips.iter().copied())
            .collect();
        if !expected.is_empty() && !expected.contains(&from.ip()) {
            tracing::debug!(%from, "RTCP from an unexpected source dropped");
            return;
        }
        match self.session.on_rtcp(data, now()) {
            Ok(()) => {
                if latch && self.latched.is_none() {
                    self.latched = Some(from);
                }
            }
            Err(e) => tracing::debug!(%from, error = %e, "malformed RTCP dropped"),
        }
        self.publish();
    }

    /// Sends a report (with BYE when `bye`) if we know where to; schedules the next one.
    /// `rtp_destination`: where our RTP goes.
    pub(super) async fn send_report(
        &mut self,
        sent: &Sent,
        rtp_destination: Option<SocketAddr>,
        bye: bool,
    ) {
        let at = now();
        self.next_report = at + report_interval(false, rand::random::<f64>());
        let Some(socket) = &self.socket else {
            return;
        };
        let destination = self
            .latched
            .or(self.sdp_remote)
            .or_else(|| rtp_destination.map(|d| SocketAddr::new(d.ip(), d.port().wrapping_add(1))));
        let Some(destination) = destination else {
            return;
        };
        // RFC 3550 §6.4: an SR while we have sent RTP since the last report.
        let sender = (sent.packets > self.packets_at_last_report).then(|| SenderInfo {
            rtp_timestamp: self.rtp_timestamp_at(sent, at),
            packets: sent.packets,
            octets: sent.octets,
        });
        self.packets_at_last_report = sent.packets;
        let ntp = ntp_now();
        let packet = if bye {
            self.session.bye(at, ntp, sender)
        } else {
            self.session.report(at, ntp, sender)
        };
        if let Err(e) = socket.send_to(&packet, destination).await {
            tracing::debug!(%destination, error = %e, "RTCP send failed");
        }
        self.publish();
    }

    fn rtp_timestamp_at(&self, sent: &Sent, at: Instant) -> u32 {
        let Some((when, ts)) = sent.last else {
            return 0;
        };
        let elapsed = at.saturating_duration_since(when);
        let ticks = elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000;
        ts.wrapping_add(ticks as u32)
    }

    /// Publishes the current quality to the session handle.
    pub(super) fn publish(&self) {
        self.quality.send_replace(self.session.quality());
    }
}

/// How long after the media task's end a BYE may still take to go out.
pub(super) const BYE_SEND_TIMEOUT: Duration = Duration::from_millis(200);
