//! Media cost per call for the non-model path: jitter buffer → G.711 decode → 8→16 kHz
//! resample → VAD → endpointer on the way in, and 22.05→8 kHz resample → G.711 encode on the
//! way out, for N simultaneous calls (default 100) each fed 20 ms frames of a real caller clip.
//! Prints CPU as % of one core per call (process CPU time / audio time / calls) and the heap a
//! call's state holds (a counting allocator: live bytes after building one call's state and
//! running it warm).
//!
//! Run: `cargo run --release -p audio --example media_cost [CALLS] [SECONDS] [VAD]`
//! (VAD: earshot (default), webrtc).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use audio::Resampler;
use audio::codec::{Codec, CodecKind};
use audio::endpoint::{EndpointConfig, Endpointer, TurnMode};
use audio::jitter::{JitterBuffer, JitterConfig, Playout};
use audio::vad::{Vad, VadKind};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only tracks live bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One call's media state, as the daemon's leg and listener hold it.
struct CallMedia {
    jitter: JitterBuffer,
    codec: Box<dyn Codec>,
    up: Resampler,
    down: Resampler,
    vad: Box<dyn Vad>,
    endpointer: Endpointer,
    pcm8: Vec<i16>,
    pcm16: Vec<i16>,
    out8: Vec<i16>,
    payload: Vec<u8>,
    seq: u16,
    ts: u32,
}

impl CallMedia {
    fn new(vad: VadKind) -> CallMedia {
        CallMedia {
            jitter: JitterBuffer::new(JitterConfig::new(8000)),
            codec: CodecKind::Pcmu.build(8000).expect("codec"),
            up: Resampler::new(8000, 16000).expect("resampler"),
            down: Resampler::new(22050, 8000).expect("resampler"),
            vad: vad.build(16000).expect("vad"),
            endpointer: Endpointer::new(EndpointConfig::default(), TurnMode::FreeSpeech),
            pcm8: vec![0; 160],
            pcm16: Vec::with_capacity(640),
            out8: Vec::with_capacity(640),
            payload: vec![0; 512],
            seq: 0,
            ts: 0,
        }
    }

    /// One 20 ms tick: a packet in (already µ-law), a frame of TTS out.
    fn tick(&mut self, now: Instant, ulaw_in: &[u8], tts_22k: &[i16]) {
        self.jitter.push(now, self.seq, self.ts, ulaw_in);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        let n = match self.jitter.pop(now) {
            Playout::Packet { payload, .. } => {
                let payload: &[u8] = payload;
                self.codec.decode(payload, &mut self.pcm8).unwrap_or(0)
            }
            Playout::Lost | Playout::Underrun => {
                self.codec.conceal(None, &mut self.pcm8).unwrap_or(0)
            }
            _ => 0,
        };
        if n > 0 {
            self.pcm16.clear();
            self.up
                .process(&self.pcm8[..n], &mut self.pcm16)
                .expect("resample");
            for frame in self.pcm16.chunks_exact(320) {
                let voiced = self.vad.is_speech(frame).unwrap_or(false);
                self.endpointer.handle_frame(voiced, 20);
                while self.endpointer.poll_event().is_some() {}
            }
        }
        self.out8.clear();
        self.down
            .process(tts_22k, &mut self.out8)
            .expect("resample");
        if self.out8.len() >= 160 {
            let len = self
                .codec
                .encode(&self.out8[..160], &mut self.payload)
                .expect("encode");
            std::hint::black_box(&self.payload[..len]);
        }
    }
}

fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<RUsage>::zeroed();
    // SAFETY: getrusage writes a struct rusage into the pointer we own.
    let rc = unsafe { getrusage(0, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage");
    // SAFETY: initialised by the successful call above.
    let u = unsafe { usage.assume_init() };
    let tv = |t: [i64; 2]| Duration::from_secs(t[0] as u64) + Duration::from_micros(t[1] as u64);
    tv(u.utime) + tv(u.stime)
}

/// The start of Linux's `struct rusage` (x86_64/aarch64: two `struct timeval`s, then longs).
#[repr(C)]
struct RUsage {
    utime: [i64; 2],
    stime: [i64; 2],
    rest: [i64; 14],
}

unsafe extern "C" {
    fn getrusage(who: i32, usage: *mut RUsage) -> i32;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let calls: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let seconds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20);
    let vad: VadKind = args
        .get(3)
        .map(|v| v.parse().expect("vad: earshot or webrtc"))
        .unwrap_or(VadKind::Earshot);
    let clip = audio::wav::read_wav(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/balance_question_8k.wav"),
    )
    .expect("fixture clip")
    .samples;
    let mut law = CodecKind::Pcmu.build(8000).expect("codec");
    let ulaw: Vec<Vec<u8>> = clip
        .chunks_exact(160)
        .map(|f| {
            let mut out = vec![0u8; 160];
            let n = law.encode(f, &mut out).expect("encode");
            out.truncate(n);
            out
        })
        .collect();
    // 20 ms of "TTS" at espeak-ng's 22.05 kHz: the clip, upsampled once.
    let mut tts = Vec::new();
    let mut rs = Resampler::new(8000, 22050).expect("resampler");
    rs.process(&clip, &mut tts).expect("resample");
    let tts_frames: Vec<&[i16]> = tts.chunks_exact(441).collect();

    // Heap held by one call: build it, warm it up for a second, measure what stays live.
    let before = LIVE.load(Ordering::Relaxed);
    let mut one = CallMedia::new(vad);
    let start = Instant::now();
    for i in 0..50 {
        let now = start + Duration::from_millis(20 * i as u64);
        one.tick(now, &ulaw[i % ulaw.len()], tts_frames[i % tts_frames.len()]);
    }
    let per_call_bytes = LIVE.load(Ordering::Relaxed) - before;
    drop(one);

    let mut all: Vec<CallMedia> = (0..calls).map(|_| CallMedia::new(vad)).collect();
    let frames = seconds * 50;
    let t0 = Instant::now();
    let cpu0 = cpu_time();
    for i in 0..frames {
        // Simulated time: the buffer sees packets 20 ms apart; we run as fast as we can.
        let now = t0 + Duration::from_millis(20 * i as u64);
        for (c, call) in all.iter_mut().enumerate() {
            let k = (i + c * 7) % ulaw.len();
            call.tick(now, &ulaw[k], tts_frames[(i + c) % tts_frames.len()]);
        }
    }
    let cpu = cpu_time() - cpu0;
    let wall = t0.elapsed();
    let audio_secs = seconds as f64;
    let per_call_pct = cpu.as_secs_f64() / audio_secs / calls as f64 * 100.0;
    println!(
        "{calls} calls × {seconds} s of audio ({vad}): CPU {:.3} s (wall {:.3} s) → {:.4} % of one core per call, {:.1} % for all; per-frame per call {:.2} µs",
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        per_call_pct,
        per_call_pct * calls as f64,
        cpu.as_secs_f64() * 1e6 / (frames * calls) as f64
    );
    println!(
        "heap per call (jitter, codec, 2 resamplers, VAD, endpointer, buffers): {} bytes ({:.1} KiB)",
        per_call_bytes,
        per_call_bytes as f64 / 1024.0
    );
    std::hint::black_box(&all);
}
