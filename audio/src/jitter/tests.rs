use super::*;

/// Seeded xorshift: the same seed gives the same network every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Network conditions for a simulated call leg.
#[derive(Clone, Copy)]
struct Net {
    base_ms: f64,
    jitter_ms: f64,
    loss: f64,
    duplicate: f64,
    seed: u64,
}

/// What the receiver's playout produced, frame by frame.
#[derive(Debug, Default)]
struct Outcome {
    played: Vec<u16>,
    lost: usize,
    underruns: usize,
    dropped_in_network: usize,
    stats: JitterStats,
}

/// Sends `frames` packets every 20 ms starting at seq `first_seq` through `net`, pops every
/// 20 ms, and records the playout. Simulated time: nothing sleeps.
fn simulate(net: Net, frames: u32, first_seq: u16, config: JitterConfig) -> Outcome {
    let t0 = Instant::now();
    let mut rng = Rng(net.seed);
    let mut arrivals: Vec<(f64, u16, u32)> = Vec::new();
    let mut dropped_in_network = 0;
    for i in 0..frames {
        if rng.unit() < net.loss {
            dropped_in_network += 1;
            continue;
        }
        let seq = first_seq.wrapping_add(i as u16);
        let ts = 1_000_000u32.wrapping_add(i * 160);
        let sent = f64::from(i) * 20.0;
        arrivals.push((sent + net.base_ms + rng.unit() * net.jitter_ms, seq, ts));
        if rng.unit() < net.duplicate {
            arrivals.push((sent + net.base_ms + rng.unit() * net.jitter_ms, seq, ts));
        }
    }
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut jb = JitterBuffer::new(config);
    let mut out = Outcome {
        dropped_in_network,
        ..Outcome::default()
    };
    let at = |ms: f64| t0 + Duration::from_micros((ms * 1000.0) as u64);
    let mut next_arrival = 0;
    // The playout clock ticks every 20 ms, offset from the send clock by 7 ms.
    let end_ms = f64::from(frames) * 20.0 + net.base_ms + net.jitter_ms + 1000.0;
    let mut tick = 7.0;
    while tick < end_ms {
        while next_arrival < arrivals.len() && arrivals[next_arrival].0 <= tick {
            let (t, seq, ts) = arrivals[next_arrival];
            jb.push(at(t), seq, ts, &seq.to_be_bytes());
            next_arrival += 1;
        }
        match jb.pop(at(tick)) {
            Playout::Packet { seq, payload } => {
                assert_eq!(payload, seq.to_be_bytes(), "payload belongs to its packet");
                out.played.push(seq);
            }
            Playout::Lost => out.lost += 1,
            Playout::Underrun => out.underruns += 1,
            Playout::Waiting => {}
        }
        tick += 20.0;
    }
    out.stats = jb.stats();
    out
}

fn in_order(played: &[u16]) -> bool {
    played
        .windows(2)
        .all(|w| w[1].wrapping_sub(w[0]) as i16 > 0)
}

const CLEAN: Net = Net {
    base_ms: 30.0,
    jitter_ms: 0.0,
    loss: 0.0,
    duplicate: 0.0,
    seed: 1,
};

#[test]
fn clean_network_plays_everything_in_order_at_min_delay() {
    let out = simulate(CLEAN, 500, 100, JitterConfig::new(8000));
    assert_eq!(out.played.len(), 500);
    assert!(in_order(&out.played));
    assert_eq!(out.lost, 0);
    assert_eq!(out.stats.skipped, 0);
    assert!(out.stats.jitter_ms < 0.5, "{:?}", out.stats);
    assert_eq!(out.stats.target_ms, 40);
}

#[test]
fn sequence_numbers_wrap() {
    let out = simulate(CLEAN, 300, 65_500, JitterConfig::new(8000));
    assert_eq!(out.played.len(), 300);
    assert!(in_order(&out.played));
    assert_eq!(out.played[36], 0);
}

#[test]
fn jitter_and_reordering_adapt_the_depth() {
    // Up to 100 ms of extra delay per packet reorders many of them.
    let net = Net {
        jitter_ms: 100.0,
        seed: 7,
        ..CLEAN
    };
    let out = simulate(net, 3000, 0, JitterConfig::new(8000));
    assert!(in_order(&out.played));
    assert!(out.stats.reordered > 100, "{:?}", out.stats);
    // Uniform 0-100 ms: RFC 3550 jitter is about a third of the spread.
    assert!(
        (25.0..45.0).contains(&out.stats.jitter_ms),
        "{:?}",
        out.stats
    );
    assert!(out.stats.target_ms >= 80, "{:?}", out.stats);
    // After adapting, almost every packet plays: under 2 % concealed.
    let concealed = out.lost as f64 / 3000.0;
    assert!(
        concealed < 0.02,
        "concealed {concealed:.3}: {:?}",
        out.stats
    );
    assert_eq!(
        out.played.len() + out.lost,
        3000,
        "every frame is played or concealed once"
    );
}

#[test]
fn loss_is_reported_and_concealed() {
    let net = Net {
        jitter_ms: 20.0,
        loss: 0.05,
        seed: 42,
        ..CLEAN
    };
    let out = simulate(net, 2000, 1000, JitterConfig::new(8000));
    assert!(in_order(&out.played));
    assert_eq!(
        out.played.len(),
        2000 - out.dropped_in_network - out.stats.late as usize
    );
    // Concealment covers the packets that never played (late ones included), except losses
    // at the very end of the stream, which show as underruns: nothing came after them.
    let never_played = out.dropped_in_network as u64 + out.stats.late;
    assert!(
        never_played - out.lost as u64 <= 2,
        "{never_played} vs {}",
        out.lost
    );
    assert!(out.stats.late < 20, "{:?}", out.stats);
    let jb_loss = out.lost as f64 / 2000.0;
    assert!((0.03..0.08).contains(&jb_loss), "{jb_loss}");
}

#[test]
fn duplicates_are_dropped() {
    let net = Net {
        jitter_ms: 30.0,
        duplicate: 0.1,
        seed: 3,
        ..CLEAN
    };
    let out = simulate(net, 1000, 0, JitterConfig::new(8000));
    assert!(in_order(&out.played));
    let unique: std::collections::HashSet<_> = out.played.iter().collect();
    assert_eq!(unique.len(), out.played.len(), "nothing played twice");
    assert!(
        out.stats.duplicates + out.stats.late > 50,
        "{:?}",
        out.stats
    );
}

#[test]
fn shrinks_after_a_jitter_burst() {
    // A 2 s spike of 200 ms jitter grows the buffer; calm afterwards lets it shrink again.
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::new(8000));
    let mut rng = Rng(9);
    let mut arrivals = Vec::new();
    for i in 0..1500u32 {
        let spread = if (100..200).contains(&i) { 200.0 } else { 2.0 };
        arrivals.push((
            f64::from(i) * 20.0 + 30.0 + rng.unit() * spread,
            i as u16,
            i * 160,
        ));
    }
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut max_depth = 0;
    let mut next = 0;
    let mut tick = 5.0;
    while tick < 30_500.0 {
        while next < arrivals.len() && arrivals[next].0 <= tick {
            let (t, seq, ts) = arrivals[next];
            jb.push(
                t0 + Duration::from_micros((t * 1000.0) as u64),
                seq,
                ts,
                &[0; 160],
            );
            next += 1;
        }
        jb.pop(t0 + Duration::from_micros((tick * 1000.0) as u64));
        max_depth = max_depth.max(jb.stats().depth_ms);
        tick += 20.0;
    }
    let s = jb.stats();
    assert!(max_depth >= 100, "grew to {max_depth} ms");
    assert!(s.skipped > 0, "{s:?}");
    assert!(
        s.depth_ms <= s.target_ms + 40,
        "still deep at the end: {s:?}"
    );
}

#[test]
fn sequence_jump_resyncs_and_bad_packets_are_ignored() {
    let t0 = Instant::now();
    let ms = |v: u64| t0 + Duration::from_millis(v);
    let mut jb = JitterBuffer::new(JitterConfig::new(8000));
    assert_eq!(jb.pop(ms(0)), Playout::Waiting);
    assert_eq!(jb.push(ms(0), 10, 0, &[]), PushOutcome::Invalid);
    assert_eq!(
        jb.push(ms(0), 10, 0, &vec![0; MAX_PAYLOAD + 1]),
        PushOutcome::Invalid
    );
    assert_eq!(jb.push(ms(0), 10, 0, &[1]), PushOutcome::Stored);
    assert_eq!(jb.push(ms(1), 10, 0, &[1]), PushOutcome::Duplicate);
    assert_eq!(jb.push(ms(20), 12, 320, &[3]), PushOutcome::Stored);
    assert_eq!(jb.push(ms(21), 11, 160, &[2]), PushOutcome::Reordered);
    assert_eq!(jb.pop(ms(30)), Playout::Waiting, "initial 40 ms delay");
    assert_eq!(
        jb.pop(ms(40)),
        Playout::Packet {
            seq: 10,
            payload: &[1]
        }
    );
    assert_eq!(jb.push(ms(41), 10, 0, &[1]), PushOutcome::Late);
    assert_eq!(
        jb.push(ms(60), 30_000, 9_999_999, &[9]),
        PushOutcome::Resynced
    );
    assert_eq!(jb.pop(ms(61)), Playout::Waiting);
    assert_eq!(
        jb.pop(ms(100)),
        Playout::Packet {
            seq: 30_000,
            payload: &[9]
        }
    );
    assert_eq!(jb.pop(ms(120)), Playout::Underrun);
    assert_eq!(
        jb.push(ms(125), 30_001, 10_000_159, &[8]),
        PushOutcome::Stored
    );
    assert_eq!(
        jb.pop(ms(140)),
        Playout::Packet {
            seq: 30_001,
            payload: &[8]
        }
    );
    let s = jb.stats();
    assert_eq!((s.resyncs, s.underruns, s.duplicates, s.late), (1, 1, 1, 1));
    assert_eq!(jb.loss_fraction(), 0.0);
}

#[test]
fn a_first_packet_overtaken_before_playout_is_still_played() {
    let t0 = Instant::now();
    let ms = |v: u64| t0 + Duration::from_millis(v);
    let mut jb = JitterBuffer::new(JitterConfig::new(8000));
    assert_eq!(jb.push(ms(0), 6, 960, &[6]), PushOutcome::Stored);
    assert_eq!(jb.push(ms(3), 5, 800, &[5]), PushOutcome::Reordered);
    assert_eq!(
        jb.pop(ms(40)),
        Playout::Packet {
            seq: 5,
            payload: &[5]
        }
    );
    assert_eq!(
        jb.pop(ms(60)),
        Playout::Packet {
            seq: 6,
            payload: &[6]
        }
    );
    // Once playing, an older packet is late.
    assert_eq!(jb.push(ms(61), 4, 640, &[4]), PushOutcome::Late);
}

#[test]
fn extend_seq_picks_the_nearest() {
    assert_eq!(extend_seq(1 << 16, 5), (1 << 16) + 5);
    assert_eq!(extend_seq((1 << 16) + 65_530, 3), (2 << 16) + 3);
    assert_eq!(extend_seq((2 << 16) + 3, 65_530), (1 << 16) + 65_530);
}
