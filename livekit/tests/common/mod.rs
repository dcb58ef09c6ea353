//! Shared helpers for the tests against testkit's fake LiveKit.

#![allow(dead_code)]

use std::time::Duration;

use livekit::worker::{Job, Worker, WorkerHandle, WorkerOptions};
use testkit::livekit::FakeLiveKit;
use tokio::sync::mpsc;

pub const AGENT_NAME: &str = "receptionist";

/// A worker on the fake with fast reconnection.
pub async fn start_worker(
    fake: &FakeLiveKit,
    max_jobs: u32,
) -> (WorkerHandle, mpsc::Receiver<Job>) {
    let options = WorkerOptions::new(&fake.url(), fake.credentials(), AGENT_NAME)
        .with_max_jobs(max_jobs)
        .with_reconnect(Duration::from_millis(100), Duration::from_secs(1));
    let (mut worker, jobs) = Worker::start(options, |_| true).expect("start worker");
    tokio::time::timeout(Duration::from_secs(5), worker.registered())
        .await
        .expect("registered in time")
        .expect("worker running");
    (worker, jobs)
}

pub async fn next_job(jobs: &mut mpsc::Receiver<Job>) -> Job {
    tokio::time::timeout(Duration::from_secs(5), jobs.recv())
        .await
        .expect("job in time")
        .expect("worker running")
}

/// A clip from the audio crate's test data (16 kHz mono).
pub fn clip(name: &str) -> Vec<i16> {
    let path = format!("{}/../audio/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    audio::wav::read_wav(&path).expect("clip").samples
}

pub fn clip_path(name: &str) -> std::path::PathBuf {
    format!("{}/../audio/tests/data/{name}", env!("CARGO_MANIFEST_DIR")).into()
}

/// RMS per 20 ms (320 samples at 16 kHz).
pub fn envelope(samples: &[i16]) -> Vec<f64> {
    samples
        .chunks(320)
        .map(|c| (c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect()
}

/// The best Pearson correlation of `b` against `a` shifted by 0..=max_lag frames (b later).
pub fn best_correlation(a: &[f64], b: &[f64], max_lag: usize) -> (f64, usize) {
    let mut best = (f64::MIN, 0);
    for lag in 0..=max_lag {
        if lag >= b.len() {
            break;
        }
        let n = a.len().min(b.len() - lag);
        if n < 10 {
            break;
        }
        let (x, y) = (&a[..n], &b[lag..lag + n]);
        let mx = x.iter().sum::<f64>() / n as f64;
        let my = y.iter().sum::<f64>() / n as f64;
        let cov: f64 = x.iter().zip(y).map(|(p, q)| (p - mx) * (q - my)).sum();
        let vx: f64 = x.iter().map(|p| (p - mx).powi(2)).sum();
        let vy: f64 = y.iter().map(|q| (q - my).powi(2)).sum();
        let r = cov / (vx.sqrt() * vy.sqrt()).max(1e-9);
        if r > best.0 {
            best = (r, lag);
        }
    }
    best
}
