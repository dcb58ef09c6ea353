//! Listening to a LiveKit room call from the fake's side: what the agent published, as a
//! recording, and waiting for it to say something.

use std::time::{Duration, Instant};

use testkit::livekit::CallHandle;

use super::speech::Recording;

/// What the agent published so far, as a recording (16 kHz).
pub fn heard(handle: &CallHandle) -> Recording {
    Recording {
        rate: 16_000,
        samples: handle.recorded_audio(),
    }
}

/// Length of what the agent published so far, in ms.
pub fn heard_ms(handle: &CallHandle) -> u64 {
    handle.recorded_audio().len() as u64 / 16
}

/// Waits until the agent has said something after `from_ms` and then gone quiet for 1.2 s;
/// returns (onset, end) in ms of the recording.
pub fn wait_utterance(handle: &CallHandle, from_ms: u64, within: Duration) -> (u64, u64) {
    let deadline = Instant::now() + within;
    loop {
        let rec = heard(handle);
        let len_ms = rec.samples.len() as u64 / 16;
        if let Some(onset) = rec.onset_after(from_ms, -40.0, 100) {
            let end = rec.silence_after(onset, -45.0, 1_200);
            if end + 1_200 <= len_ms {
                return (onset, end);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the agent said nothing after {from_ms} ms (recorded {len_ms} ms)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
