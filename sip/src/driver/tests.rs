//! Driver tests over loopback sockets: two drivers calling each other over UDP and TCP,
//! call failures mapped to classes, transfer plumbing, and a trunk registering with (and
//! unregistering from) a scripted registrar.

#![allow(clippy::disallowed_methods)] // the driver (and its tests) read the clock

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::*;
use crate::FailureClass;
use crate::message::{SipMessage, parse_datagram};
use crate::transmit::TransportKind;

const WITHIN: Duration = Duration::from_secs(10);

async fn driver(tcp: bool, trunks: Vec<TrunkConfig>) -> (SipHandle, mpsc::Receiver<InboundCall>) {
    let mut endpoint = crate::Config::new("127.0.0.1:0".parse().unwrap());
    endpoint.timers.t1 = Duration::from_millis(100);
    start(DriverConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        external_ip: None,
        rtp_ports: 41000..=41999,
        endpoint,
        inbound_queue: 4,
        tcp,
        trunks,
    })
    .await
    .unwrap()
}

async fn next_inbound(rx: &mut mpsc::Receiver<InboundCall>) -> InboundCall {
    tokio::time::timeout(WITHIN, rx.recv())
        .await
        .expect("an inbound call in time")
        .expect("driver running")
}

async fn next_event(call: &mut OutboundCall) -> DialEvent {
    tokio::time::timeout(WITHIN, call.next())
        .await
        .expect("a dial event in time")
}

async fn next_signal(rx: &mut mpsc::Receiver<CallSignal>) -> CallSignal {
    tokio::time::timeout(WITHIN, rx.recv())
        .await
        .expect("a signal in time")
        .expect("signal channel open")
}

/// Dials until answered; returns the media session and the progress statuses seen.
async fn answered(call: &mut OutboundCall) -> (MediaSession, Vec<u16>) {
    let mut progress = Vec::new();
    loop {
        match next_event(call).await {
            DialEvent::Progress { status, .. } => progress.push(status),
            DialEvent::Answered(media) => return (media, progress),
            DialEvent::Ended(reason) => panic!("call ended: {reason:?}"),
        }
    }
}

async fn ended(call: &mut OutboundCall) -> EndReason {
    loop {
        if let DialEvent::Ended(reason) = next_event(call).await {
            return reason;
        }
    }
}

fn bob_at(handle: &SipHandle) -> String {
    format!("sip:bob@{}", handle.local_addr())
}

#[tokio::test]
async fn udp_call_is_answered_media_flows_and_bye_ends_both_sides() {
    let (a, _) = driver(false, Vec::new()).await;
    let (b, mut b_in) = driver(false, Vec::new()).await;
    let mut call = a
        .dial(DialRequest {
            target: bob_at(&b),
            from_user: Some("alice".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!call.sip_call_id.is_empty());
    let mut inbound = next_inbound(&mut b_in).await;
    assert_eq!(inbound.sip_call_id, call.sip_call_id);
    assert_eq!(inbound.from.uri.user(), Some("alice"));
    assert_eq!(inbound.trunk, None);
    let b_media = inbound.answer().await.unwrap();
    let (mut a_media, progress) = answered(&mut call).await;
    assert_eq!(
        progress,
        [180],
        "the driver rings before the application answers"
    );
    assert_eq!(
        a_media.negotiated().remote_rtp,
        Some(b_media.local_addr()).map(|a| SocketAddr::new("127.0.0.1".parse().unwrap(), a.port()))
    );
    // The answering side sends (silence) every 20 ms: the caller hears it.
    let heard = tokio::time::timeout(WITHIN, a_media.recv()).await.unwrap();
    assert!(matches!(heard, Some(MediaEvent::Audio(_))), "{heard:?}");
    call.cancel().await.unwrap();
    let mut a_signals = call.into_signals();
    assert_eq!(
        next_signal(&mut a_signals).await,
        CallSignal::Ended(EndReason::LocalBye)
    );
    loop {
        if let CallSignal::Ended(reason) = next_signal(&mut inbound.signals).await {
            assert_eq!(reason, EndReason::RemoteBye);
            break;
        }
    }
}

#[tokio::test]
async fn failures_map_to_busy_no_answer_and_unreachable() {
    let (a, _) = driver(true, Vec::new()).await;
    let (b, mut b_in) = driver(false, Vec::new()).await;

    // Busy: the callee rejects with 486.
    let mut call = a
        .dial(DialRequest {
            target: bob_at(&b),
            ..Default::default()
        })
        .await
        .unwrap();
    let inbound = next_inbound(&mut b_in).await;
    inbound.reject(486).await.unwrap();
    let reason = ended(&mut call).await;
    assert_eq!(
        reason.failure_class(),
        Some(FailureClass::Busy),
        "{reason:?}"
    );

    // No answer: it rings past the ringing timeout; the core CANCELs.
    let mut call = a
        .dial(DialRequest {
            target: bob_at(&b),
            ringing_timeout: Some(Duration::from_millis(500)),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut inbound = next_inbound(&mut b_in).await;
    assert_eq!(ended(&mut call).await, EndReason::RingTimeout);
    assert_eq!(
        EndReason::RingTimeout.failure_class(),
        Some(FailureClass::NoAnswer)
    );
    loop {
        if let CallSignal::Ended(reason) = next_signal(&mut inbound.signals).await {
            assert_eq!(reason, EndReason::RemoteCancel);
            break;
        }
    }

    // Unreachable: nothing listens on the TCP port; the connect failure ends the call at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let started = std::time::Instant::now();
    let mut trunk = TrunkConfig::new("dead", "127.0.0.1", port);
    trunk.transport = Some(TransportKind::Tcp);
    let (c, _) = driver(true, vec![trunk]).await;
    let mut call = c
        .dial(DialRequest {
            trunk: Some("dead".into()),
            target: "+15550100".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let reason = ended(&mut call).await;
    assert_eq!(reason, EndReason::TransportError);
    assert_eq!(reason.failure_class(), Some(FailureClass::Unreachable));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no Timer B wait"
    );
    assert!(c.tcp_stats().connect_failures >= 1);
}

#[tokio::test]
async fn tcp_trunk_call_reuses_one_connection_and_reports_transfer_results() {
    let (b, mut b_in) = driver(true, Vec::new()).await;
    let mut trunk = TrunkConfig::new("b", "127.0.0.1", b.local_addr().port());
    trunk.transport = Some(TransportKind::Tcp);
    trunk.from_user = Some("+15550001".into());
    let (a, _) = driver(true, vec![trunk]).await;
    let mut call = a
        .dial(DialRequest {
            trunk: Some("b".into()),
            target: "+15550002".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(call.target.user(), Some("+15550002"));
    let mut inbound = next_inbound(&mut b_in).await;
    assert_eq!(inbound.from.uri.user(), Some("+15550001"));
    assert_eq!(inbound.request_uri.user(), Some("+15550002"));
    let _b_media = inbound.answer().await.unwrap();
    let (_a_media, _) = answered(&mut call).await;
    loop {
        if let CallSignal::Established { .. } = next_signal(&mut inbound.signals).await {
            break;
        }
    }
    // One connection each way at most: requests and responses share it.
    assert_eq!(a.tcp_stats().connections_opened, 1);
    assert_eq!(a.tcp_stats().open, 1);
    assert_eq!(b.tcp_stats().connections_accepted, 1);
    assert_eq!(b.tcp_stats().connections_opened, 0);
    assert!(
        b.stats().stream_messages_received >= 2,
        "INVITE and ACK over TCP"
    );

    // The core refuses inbound REFER (403): the transferring side hears it failed.
    let target = crate::message::Uri::parse("sip:carol@127.0.0.1:5999").unwrap();
    inbound.control().transfer(target).await.unwrap();
    loop {
        if let CallSignal::TransferResult(outcome) = next_signal(&mut inbound.signals).await {
            assert_eq!(outcome, crate::TransferOutcome::Failed { status: 403 });
            break;
        }
    }
    inbound.control().hangup().await.unwrap();
    assert_eq!(ended(&mut call).await, EndReason::RemoteBye);
}

/// A registrar played by the test: answers REGISTER with 200 granting `grant` seconds.
async fn registrar_answers(sock: &UdpSocket, grant: u32) -> crate::message::Request {
    let mut buf = vec![0u8; 4096];
    let (n, from) = tokio::time::timeout(WITHIN, sock.recv_from(&mut buf))
        .await
        .expect("a REGISTER in time")
        .unwrap();
    let Ok(SipMessage::Request(req)) = parse_datagram(&buf[..n]) else {
        panic!("not a request");
    };
    assert_eq!(req.method, crate::message::Method::Register);
    let mut ok = crate::message::build::response_to(&req, 200, Some("reg"));
    if let Some(c) = req.headers.get("Contact") {
        ok.headers.push("Contact", format!("{c};expires={grant}"));
    }
    sock.send_to(&ok.to_bytes(), from).await.unwrap();
    req
}

#[tokio::test]
async fn trunk_registers_reports_status_and_unregisters() {
    let registrar = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = registrar.local_addr().unwrap().port();
    let mut trunk = TrunkConfig::new("reg", "localhost", port);
    trunk.domain = "example.test".into();
    trunk.register = true;
    trunk.credentials = Some(crate::Credentials::new("agent", "secret"));
    let (a, _) = driver(false, vec![trunk]).await;
    let req = registrar_answers(&registrar, 120).await;
    assert_eq!(req.uri.to_string(), "sip:example.test");
    assert!(
        req.headers
            .get("To")
            .unwrap()
            .contains("sip:agent@example.test")
    );
    assert!(a.wait_trunk("reg", TrunkStatus::registered).await);
    let status = &a.trunks()[0];
    assert_eq!(status.proxy, Some(SocketAddr::from(([127, 0, 0, 1], port))));
    let left = status
        .expires_at
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(100), "{left:?}");
    let unregister = tokio::spawn({
        let a = a.clone();
        async move { a.unregister_all(WITHIN).await }
    });
    let req = registrar_answers(&registrar, 0).await;
    assert!(req.headers.get("Contact").unwrap().ends_with(";expires=0"));
    assert!(unregister.await.unwrap(), "unregistered in time");
    assert_eq!(a.trunks()[0].state, "unregistered");
}
