//! Recording a call in two channels: the leg hands over, once per playout tick, the caller's
//! decoded frame and the agent's frames that went out on the wire in that tick (both at the
//! codec's rate), so the two files stay aligned in time. A blocking task writes them as
//! 16-bit mono WAV files (`<dir>/<tenant>/<call>-caller.wav`, `-agent.wav`), fed through a
//! bounded channel — a full channel drops the frame and counts it, the media path never
//! waits. When the leg is gone the files are closed and stored as the call's recordings.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

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
    task: JoinHandle<io::Result<[Written; 2]>>,
    tenant_id: TenantId,
    call_id: CallId,
    rate: u32,
}

/// Opens the two files and starts the writer; the sender goes to the leg.
pub(super) fn start(
    dir: &Path,
    tenant_id: &TenantId,
    call_id: &CallId,
    rate: u32,
) -> io::Result<(mpsc::Sender<RecordedFrame>, Recording)> {
    let dir = dir.join(tenant_id.as_str());
    std::fs::create_dir_all(&dir)?;
    let path = |channel: &str| dir.join(format!("{}-{channel}.wav", call_id.as_str()));
    let mut caller = WavFile::create(path("caller"), rate)?;
    let mut agent = WavFile::create(path("agent"), rate)?;
    let (tx, mut rx) = mpsc::channel::<RecordedFrame>(QUEUE_FRAMES);
    let task = tokio::task::spawn_blocking(move || {
        while let Some(frame) = rx.blocking_recv() {
            caller.write(&frame.caller)?;
            agent.write(&frame.agent)?;
        }
        Ok([caller.finish()?, agent.finish()?])
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

/// A 16-bit mono PCM WAV written as it goes; the sizes in the header are filled in at the end.
struct WavFile {
    out: BufWriter<File>,
    path: PathBuf,
    samples: u64,
}

const HEADER_LEN: u64 = 44;

impl WavFile {
    fn create(path: PathBuf, rate: u32) -> io::Result<Self> {
        let mut out = BufWriter::new(File::create(&path)?);
        out.write_all(&header(rate, 0))?;
        Ok(Self {
            out,
            path,
            samples: 0,
        })
    }

    fn write(&mut self, pcm: &[i16]) -> io::Result<()> {
        for s in pcm {
            self.out.write_all(&s.to_le_bytes())?;
        }
        self.samples += pcm.len() as u64;
        Ok(())
    }

    fn finish(mut self) -> io::Result<Written> {
        let data = u32::try_from(self.samples * 2).unwrap_or(u32::MAX);
        self.out.flush()?;
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(4))?;
        file.write_all(&(data.saturating_add(36)).to_le_bytes())?;
        file.seek(SeekFrom::Start(40))?;
        file.write_all(&data.to_le_bytes())?;
        file.sync_all()?;
        Ok(Written {
            path: self.path,
            samples: self.samples,
            bytes: HEADER_LEN + u64::from(data),
        })
    }
}

/// The canonical 44-byte header of 16-bit mono PCM at `rate`, for `data` bytes of samples.
fn header(rate: u32, data: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
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
            match std::fs::remove_file(&r.path) {
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
            let (tap, rec) =
                start(dir.path(), &tenant, &CallId::new(format!("c{n}")), 8_000).unwrap();
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

    #[test]
    fn files_are_valid_wav_with_their_sizes_filled_in() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = WavFile::create(dir.path().join("x.wav"), 8_000).unwrap();
        let tone: Vec<i16> = (0..8_000)
            .map(|i| ((i % 40) * 500 - 10_000) as i16)
            .collect();
        f.write(&tone[..3_000]).unwrap();
        f.write(&tone[3_000..]).unwrap();
        let written = f.finish().unwrap();
        assert_eq!(written.samples, 8_000);
        assert_eq!(written.bytes, 44 + 16_000);
        let wav = audio::wav::read_wav(&written.path).unwrap();
        assert_eq!(wav.sample_rate, 8_000);
        assert_eq!(wav.samples, tone);
        assert_eq!(std::fs::metadata(&written.path).unwrap().len(), 16_044);
    }
}
