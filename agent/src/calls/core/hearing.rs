//! Transcription bookkeeping: one transcription at a time per call (results stay in order and
//! a call cannot flood the shared worker pool), only the newest audio waiting behind it, the
//! newest interim transcript, and the turn waiting for its final words.

use std::collections::VecDeque;
use std::time::Instant;

use super::Output;

/// A caller turn that has ended and waits for (or has) its transcript.
#[derive(Debug, Clone, Copy)]
pub(super) struct FinalTurn {
    /// The audio revision whose transcript is the turn's words.
    pub revision: u64,
    /// Arrival of the caller's last voiced frame.
    pub last_voiced: Instant,
    /// When the end of the turn was decided.
    pub decided: Instant,
}

/// The newest transcript and when it became available.
#[derive(Debug, Clone)]
pub(super) struct Interim {
    pub revision: u64,
    pub text: String,
    pub at: Instant,
}

#[derive(Debug, Default)]
pub(super) struct Hearing {
    /// The revision being transcribed.
    running: Option<u64>,
    /// The newest audio waiting for the running job.
    queued: Option<(u64, Vec<i16>)>,
    /// The newest transcript.
    pub interim: Option<Interim>,
    /// A turn that has ended and waits for its transcript.
    pub awaiting: Option<FinalTurn>,
}

impl Hearing {
    /// Nothing heard is waiting to be dealt with.
    pub fn is_idle(&self) -> bool {
        self.running.is_none() && self.queued.is_none() && self.awaiting.is_none()
    }

    /// Asks for `pcm` (audio `revision`) to be transcribed, now or after the running job.
    pub fn transcribe(&mut self, revision: u64, pcm: Vec<i16>, out: &mut VecDeque<Output>) {
        if self.running.is_some() {
            self.queued = Some((revision, pcm));
            return;
        }
        self.running = Some(revision);
        out.push_back(Output::Transcribe { revision, pcm });
    }

    /// Whether `revision` is being (or will be) transcribed.
    pub fn covers(&self, revision: u64) -> bool {
        self.running == Some(revision) || self.queued.as_ref().is_some_and(|(r, _)| *r == revision)
    }

    /// A transcription finished: the next queued one starts.
    pub fn finished(&mut self, revision: u64, out: &mut VecDeque<Output>) {
        if self.running == Some(revision) {
            self.running = None;
        }
        if self.running.is_none()
            && let Some((revision, pcm)) = self.queued.take()
        {
            self.transcribe(revision, pcm, out);
        }
    }
}
