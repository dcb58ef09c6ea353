//! Recording a call in two channels: the leg hands over, once per playout tick, the caller's
//! decoded frame and the agent's frames that went out on the wire in that tick (both at the
//! codec's rate), so the two files stay aligned in time. A blocking task writes them as
//! 16-bit mono WAV files (`<dir>/<tenant>/<call>-caller.wav`, `-agent.wav`), fed through a
//! bounded channel — a full channel drops the frame and counts it, the media path never
//! waits. When the leg is gone the files are closed and stored as the call's recordings.

use std::io;
use std::path::{Path, PathBuf};

use audio::wav::{WavError, WavFileWriter};
use store::{CallId, Store, TenantId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// About 10 s of frames: the writer only falls behind if the disk stalls.
const QUEUE_FRAMES: usize = 500;

/// One playout tick of both channels (equal lengths, at the recording's rate).
#[derive(Debug)]
pub struct RecordedFrame {
    pub caller: Vec<i16>,
    pub agent: Vec<i16>,
}

/// A running recording: its writer task.
pub(super) struct Recording {
    task: JoinHandle<Result<[Written; 2], WavError>>,
    tenant_id: TenantId,
    call_id: CallId,
    rate: u32,
}

/// Opens the two files (on the blocking pool) and starts the writer; the sender goes to the
/// leg.
pub(super) async fn start(
    dir: &Path,
    tenant_id: &TenantId,
    call_id: &CallId,
    rate: u32,
) -> Result<(mpsc::Sender<RecordedFrame>, Recording), WavError> {
    let dir = dir.join(tenant_id.as_str());
    let stem = call_id.as_str().to_owned();
    let open = move || {
        std::fs::create_dir_all(&dir).map_err(|source| WavError::Open {
            path: dir.clone(),
            source,
        })?;
        let open = |channel: &str| {
            let path = dir.join(format!("{stem}-{channel}.wav"));
            WavFileWriter::create(&path, rate).map(|w| (w, path))
        };
        Ok::<_, WavError>((open("caller")?, open("agent")?))
    };
    let ((mut caller, caller_path), (mut agent, agent_path)) = tokio::task::spawn_blocking(open)
        .await
        .map_err(|e| WavError::Open {
            path: PathBuf::new(),
            source: io::Error::other(e),
        })??;
    let (tx, mut rx) = mpsc::channel::<RecordedFrame>(QUEUE_FRAMES);
    let task = tokio::task::spawn_blocking(move || {
        while let Some(frame) = rx.blocking_recv() {
            caller.write(&frame.caller)?;
            agent.write(&frame.agent)?;
        }
        Ok([
            Written::new(caller_path, caller.finish()?),
            Written::new(agent_path, agent.finish()?),
        ])
    });
    Ok((
        tx,
        Recording {
            task,
            tenant_id: tenant_id.clone(),
            call_id: call_id.clone(),
            rate,
        },
    ))
}

impl Recording {
    /// Waits for the files to be closed (the leg, and so the sender, must be gone) and stores
    /// them as the call's recordings.
    pub(super) async fn finish(self, store: &Store, now_ms: i64) {
        let written = match self.task.await {
            Ok(Ok(written)) => written,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the call's recording could not be written");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "the call's recording task failed");
                return;
            }
        };
        for (channel, file) in ["caller", "agent"].into_iter().zip(written) {
            let row = Self::row(
                &self.tenant_id,
                &self.call_id,
                channel,
                &file,
                self.rate,
                now_ms,
            );
            if let Err(e) = store.add_recording(&row).await {
                tracing::error!(error = %e, channel, "cannot store the recording");
            }
        }
    }

    fn row(
        tenant_id: &TenantId,
        call_id: &CallId,
        channel: &str,
        file: &Written,
        rate: u32,
        now_ms: i64,
    ) -> store::CallRecording {
        store::CallRecording {
            call_id: call_id.clone(),
            tenant_id: tenant_id.clone(),
            channel: channel.to_owned(),
            path: file.path.display().to_string(),
            format: "wav".to_owned(),
            sample_rate: i64::from(rate),
            duration_ms: i64::try_from(file.samples * 1_000 / u64::from(rate.max(1)))
                .unwrap_or(i64::MAX),
            bytes: i64::try_from(file.bytes).unwrap_or(i64::MAX),
            created_at: now_ms,
        }
    }
}

/// A closed file.
#[derive(Debug)]
struct Written {
    path: PathBuf,
    samples: u64,
    bytes: u64,
}

impl Written {
    fn new(path: PathBuf, samples: u64) -> Self {
        // The canonical 44-byte header, then 2 bytes a sample.
        Self {
            path,
            samples,
            bytes: 44 + samples * 2,
        }
    }
}

/// Deletes recordings older than `retention_days` (files, then rows), a batch at a time.
/// Returns how many were deleted.
pub async fn sweep(store: &Store, retention_days: u32, now_ms: i64) -> usize {
    if retention_days == 0 {
        return 0;
    }
    let cutoff = now_ms - i64::from(retention_days) * 86_400_000;
    let mut deleted = 0;
    loop {
        let due = match store.recordings_before(cutoff, 200).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list recordings to sweep");
                return deleted;
            }
        };
        if due.is_empty() {
            return deleted;
        }
        for r in &due {
            match tokio::fs::remove_file(&r.path).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Keep the row: the file is still there and must not be forgotten.
                    tracing::warn!(path = %r.path, error = %e, "cannot delete a recording");
                    return deleted;
                }
            }
            if let Err(e) = store.delete_recording(&r.call_id, &r.channel).await {
                tracing::warn!(error = %e, "cannot forget a deleted recording");
                return deleted;
            }
            deleted += 1;
        }
        metrics::counter!("agent_recordings_deleted_total").increment(due.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sweep_deletes_old_files_and_rows_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url, &store::StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let tenant = TenantId::new("t-1");
        let day = 86_400_000;
        let now = 100 * day;
        let mut paths = Vec::new();
        for (n, age_days) in [(1, 120), (2, 91), (3, 89), (4, 1)] {
            let (tap, rec) = start(dir.path(), &tenant, &CallId::new(format!("c{n}")), 8_000)
                .await
                .unwrap();
            tap.send(RecordedFrame {
                caller: vec![1; 160],
                agent: vec![2; 160],
            })
            .await
            .unwrap();
            drop(tap);
            rec.finish(&store, now - age_days * day).await;
            paths.push(dir.path().join(format!("t-1/c{n}-caller.wav")));
        }
        assert!(paths.iter().all(|p| p.exists()));
        assert_eq!(sweep(&store, 0, now).await, 0, "0 keeps everything");
        assert_eq!(
            sweep(&store, 90, now).await,
            4,
            "two calls, two channels each"
        );
        let exists: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
        assert_eq!(exists, [false, false, true, true]);
        for (n, kept) in [(1, 0), (2, 0), (3, 2), (4, 2)] {
            let left = store
                .list_recordings(&tenant, &CallId::new(format!("c{n}")))
                .await
                .unwrap();
            assert_eq!(left.len(), kept, "c{n}");
        }
        assert_eq!(sweep(&store, 90, now).await, 0);
        store.close().await;
    }

    #[tokio::test]
    async fn both_channels_are_valid_wav_of_the_same_length() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url, &store::StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let (tenant, call) = (TenantId::new("t-1"), CallId::new("c-1"));
        let (tap, rec) = start(dir.path(), &tenant, &call, 8_000).await.unwrap();
        let tone: Vec<i16> = (0..8_000)
            .map(|i| ((i % 40) * 500 - 10_000) as i16)
            .collect();
        for chunk in tone.chunks(160) {
            let frame = RecordedFrame {
                caller: chunk.to_vec(),
                agent: vec![0; 160],
            };
            tap.send(frame).await.unwrap();
        }
        drop(tap);
        rec.finish(&store, 1_000).await;
        let rows = store.list_recordings(&tenant, &call).await.unwrap();
        assert_eq!(rows.len(), 2);
        for row in &rows {
            assert_eq!((row.duration_ms, row.bytes), (1_000, 16_044), "{row:?}");
            let file_len = std::fs::metadata(&row.path).unwrap().len();
            assert_eq!(file_len, 16_044, "{row:?}");
        }
        let caller = rows.iter().find(|r| r.channel == "caller").unwrap();
        let wav = audio::wav::read_wav(&caller.path).unwrap();
        assert_eq!(wav.sample_rate, 8_000);
        assert_eq!(wav.samples, tone);
        store.close().await;
    }
}
