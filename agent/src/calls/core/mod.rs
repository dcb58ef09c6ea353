//! The call as a sans-IO state machine: everything a call decides, and nothing it does.
//!
//! [`CallCore`] owns one call's conversation state — whose turn it is, what the caller said so
//! far, what the agent is saying and what the caller has heard of it, barge-in, transfer,
//! silence and duration limits — and never touches a socket, a task or the clock. The driver
//! (`calls::driver`) feeds it:
//!
//! - [`CallCore::handle`]`(now, input)`: caller frames with their RTP arrival, transcripts,
//!   the dialog's sentences and actions, synthesised audio, playback reports, DTMF, transfer
//!   progress, hang-up and shutdown;
//! - [`CallCore::handle_timeout`]`(now)` when the deadline of [`CallCore::poll_timeout`] has
//!   passed (extra calls are harmless no-ops);
//!
//! and drains [`CallCore::poll_output`] after each: play/pause/resume/flush audio, transcribe,
//! synthesise, ask the dialog, record, transfer, hang up. The contract is the one of the SIP
//! core (and str0m, quinn-proto): mutate, drain outputs until `None`, wait for the next input
//! or the timeout, repeat. [`CallCore::end_reason`] turns `Some` once the call is over.
//!
//! The conversation's position is one [`Phase`] carrying its data; hearing (voice activity,
//! interim and final transcripts) runs beside it in every phase, because the caller can speak
//! at any time. Results of work the core asked for (a transcript, a sentence's audio) come back
//! as inputs tagged with the id they were asked for, so late results of abandoned work are
//! recognised and dropped.
//!
//! Metrics counters are the only side effect besides outputs: they are observability, not I/O,
//! and the tests do not depend on them.

#![deny(clippy::disallowed_methods)]

mod hearing;
mod replies;
mod screening;
mod speaking;
#[cfg(test)]
mod tests;
mod turns;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use audio::amd::AmdDetector;
use dialogs::TurnSettings;
use speech::Pcm;
use store::{CallId, EndReason, EventKind};

use self::hearing::Hearing;
use self::screening::Screening;
use self::speaking::Speaking;
use super::dialog::{DialogCommand, DialogOutput};
use super::exchange::Exchange;
use super::listen::Listener;
use super::recorder::Record;
use super::speech::SpeechError;

/// Said when speech recognition is unavailable (model missing): the call is answered, the
/// caller told, and the call ended.
pub const UNAVAILABLE: &str =
    "Sorry, I can't take requests right now. Please call back a little later. Goodbye.";
/// Said when `call.max_duration_secs` is reached.
pub const TIME_LIMIT: &str =
    "We have reached the time limit for this call. Thank you for calling. Goodbye.";

/// How long a hang-up may go unconfirmed before the call is considered over anyway. The SIP
/// layer always reports the end of a call (its BYE transaction times out after 32 s), so this
/// is a safety net that keeps a call's task from outliving its call.
pub const HANGUP_CONFIRM_TIMEOUT: Duration = Duration::from_secs(40);

/// Per-call settings.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Caller speech over the agent for this long pauses the agent (barge-in).
    pub barge_in_min_ms: u32,
    /// The caller silent this long (while it is their turn) asks the flow for a reprompt.
    pub silence_timeout: Duration,
    /// The call is ended (politely) after this long.
    pub max_duration: Duration,
}

/// What is known when the call is answered.
#[derive(Debug, Clone)]
pub struct CallStart {
    pub call_id: CallId,
    /// When the call was answered, and the same moment as unix milliseconds (stored times are
    /// unix ms; the core derives them from `now` without reading the clock).
    pub at: Instant,
    pub unix_ms: i64,
    /// The negotiated codec's name, for the `answered` event.
    pub codec: String,
    /// Why speech recognition cannot run, if it cannot: the caller hears [`UNAVAILABLE`].
    pub stt_unavailable: Option<String>,
    /// Answering-machine detection (outbound calls): the callee is screened before the flow
    /// speaks; a machine gets the flow's voicemail message after its beep.
    pub amd: Option<AmdDetector>,
}

/// A finished transcription.
#[derive(Debug, Clone)]
pub struct SttText {
    /// As the recogniser wrote it (markers like `[BLANK_AUDIO]` are removed by the core).
    pub text: String,
    /// Audio transcribed (for the usage ledger).
    pub audio: Duration,
    /// Time the recogniser took.
    pub took: Duration,
}

/// What the leg reports about playback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaybackReport {
    /// `played_ms` of item `item`'s `total_ms` have gone out on the wire.
    Progress {
        item: u64,
        played_ms: u64,
        total_ms: u64,
    },
    /// The first frame of the item that carried `mark` went out at `at`.
    MarkSent { mark: u64, at: Instant },
    /// Everything queued up to and including `item` has been played.
    Idle { item: u64 },
    /// Item `item` could not be queued (it will never play).
    Failed { item: u64 },
}

/// How a transfer the core asked for is going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferProgress {
    /// The transfer request went out (a SIP REFER to `uri`).
    Requested { uri: String },
    /// It could not be sent at all.
    CouldNotStart { reason: String },
    /// The target answered; the call leaves us (the transport ends it).
    Accepted,
    /// The target refused (`status`) or the transfer timed out (`status: None`).
    Failed { status: Option<u16> },
}

/// One input to the core.
#[derive(Debug)]
pub enum Input {
    /// One 20 ms frame of caller audio at 16 kHz. `arrived` is when its RTP packet arrived
    /// (latencies are measured from it); `echo` marks a frame the echo gate judged to be our
    /// own voice coming back.
    CallerFrame {
        pcm: Vec<i16>,
        arrived: Instant,
        echo: bool,
    },
    /// A DTMF key.
    Dtmf(char),
    /// The transcription asked for with `revision` finished.
    Transcript {
        revision: u64,
        result: Result<SttText, SpeechError>,
    },
    /// Something the dialog produced.
    Dialog(DialogOutput),
    /// The dialog's task is gone.
    DialogGone,
    /// The synthesis asked for with `item` finished.
    Synthesized {
        item: u64,
        result: Result<Pcm, SpeechError>,
    },
    Playback(PlaybackReport),
    Transfer(TransferProgress),
    /// The call is over at the transport (`reason`: the caller hung up, media was lost, …).
    Hangup {
        reason: EndReason,
    },
    /// The daemon's grace period is over: end the call now.
    Shutdown,
}

/// Something the driver must do.
#[derive(Debug)]
pub enum Output {
    /// Queue `pcm` for playback as item `item`; its first frame carries `mark` when set (the
    /// leg reports [`PlaybackReport::MarkSent`]).
    Play {
        item: u64,
        pcm: Pcm,
        mark: Option<u64>,
    },
    /// Pause playback where it is (barge-in): frames not yet sent are kept for `Resume`.
    Pause,
    Resume,
    /// Drop everything queued for playback.
    Flush,
    /// Transcribe the caller's turn so far (16 kHz PCM); one at a time.
    Transcribe {
        revision: u64,
        pcm: Vec<i16>,
    },
    /// Synthesise one sentence; one at a time.
    Synthesize {
        item: u64,
        text: String,
    },
    /// The running synthesis is no longer wanted.
    CancelSynthesis,
    /// Send a command to the dialog; its outputs will carry `reply`.
    AskDialog {
        reply: u64,
        command: DialogCommand,
    },
    /// Write to the store (through the call's recorder).
    Record(Record),
    /// Press these DTMF keys towards the other side (RFC 4733 events or SipDTMF packets).
    SendDtmf {
        digits: String,
    },
    /// Transfer the caller to `to` (a number or URI from the flow's allow-list): blind (a SIP
    /// REFER), or warm (the driver calls `to`, says `brief`, then bridges the caller).
    Transfer {
        to: String,
        name: String,
        /// What the person taking the call is told first (warm transfers).
        brief: String,
    },
    Hangup,
}

/// Why [`CallCore::poll_timeout`] wants to be woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerReason {
    /// The caller has been silent for `silence_timeout` while it is their turn.
    Silence,
    /// `max_duration` reached.
    MaxDuration,
    /// The hang-up was never confirmed (see [`HANGUP_CONFIRM_TIMEOUT`]).
    HangupUnconfirmed,
}

/// Where the conversation is.
#[derive(Debug)]
enum Phase {
    /// An outbound call was answered: the callee's first sound decides between a person (the
    /// flow's greeting follows) and an answering machine (its message after the beep).
    Screening(Box<Screening>),
    /// The flow's opener is being produced and played.
    Greeting(Reply),
    /// The agent has finished; the caller's turn. The silence timer runs while nothing is
    /// heard.
    Listening,
    /// The agent answers the caller's turn (or speaks after a failed transfer).
    Replying(Reply),
    /// The caller talked over the agent: playback is paused until their words decide between
    /// resuming (noise, a backchannel) and stopping (a real request).
    BargedIn(BargeIn),
    /// A blind transfer was asked for; waiting for its outcome.
    Transferring(Transfer),
    /// The call is ending: what is left to say plays, then the call is hung up.
    Ending(Ending),
    /// Over.
    Ended(EndReason),
}

/// A reply in progress: produced by the dialog as reply `id`, spoken sentence by sentence.
#[derive(Debug, Clone)]
struct Reply {
    id: u64,
    /// The dialog has finished producing it.
    produced: bool,
    /// What the flow asked for once it has been played.
    then: Then,
    /// DTMF keys the flow asked to press once it has been played (`send_dtmf`).
    dtmf: String,
}

/// What happens when a reply has been played.
#[derive(Debug, Clone, PartialEq)]
enum Then {
    /// The caller's turn.
    Listen,
    /// The flow ended the call.
    End(EndReason),
    /// The flow asked for a transfer.
    Transfer { to: String, name: String },
}

#[derive(Debug)]
struct BargeIn {
    reply: Reply,
    /// The paused reply is the greeting (resuming returns to [`Phase::Greeting`]).
    greeting: bool,
    paused_at: Instant,
}

#[derive(Debug)]
struct Transfer {
    to: String,
    name: String,
    since: Instant,
}

#[derive(Debug)]
struct Ending {
    reason: EndReason,
    /// When the hang-up was asked for (by us, or by a transfer that the transport completes).
    hangup_at: Option<Instant>,
}

/// One call's conversation. See the module docs for how to drive it.
pub struct CallCore {
    config: CoreConfig,
    call_id: CallId,
    started: Instant,
    started_unix_ms: i64,
    phase: Phase,
    listener: Listener,
    hearing: Hearing,
    speaking: Speaking,
    /// The node's settings (endpointing, barge-in) as of the last finished reply.
    settings: Option<TurnSettings>,
    /// The exchange being built (greeting or caller turn + reply), saved as a turn.
    exchange: Exchange,
    next_reply: u64,
    /// Since when neither side has spoken (for the silence timer).
    quiet_since: Instant,
    outputs: VecDeque<Output>,
}

impl CallCore {
    /// A core for a call just answered: records the answer and asks for the greeting (or, when
    /// speech recognition is unavailable, apologises and ends the call).
    pub fn new(config: CoreConfig, listener: Listener, start: CallStart) -> CallCore {
        let mut core = CallCore {
            config,
            call_id: start.call_id,
            started: start.at,
            started_unix_ms: start.unix_ms,
            phase: Phase::Listening,
            listener,
            hearing: Hearing::default(),
            speaking: Speaking::default(),
            settings: None,
            exchange: Exchange::new(0, start.unix_ms),
            next_reply: 1,
            quiet_since: start.at,
            outputs: VecDeque::new(),
        };
        let now = start.at;
        core.record(Record::Answered { at: start.unix_ms });
        core.event(
            now,
            EventKind::Answered,
            serde_json::json!({ "codec": start.codec }),
        );
        match start.stt_unavailable {
            Some(error) => {
                core.event(
                    now,
                    EventKind::SttUnavailable,
                    serde_json::json!({ "error": error }),
                );
                core.say_and_end(now, UNAVAILABLE, EndReason::SttUnavailable);
            }
            None => match start.amd {
                Some(detector) => core.phase = Phase::Screening(Box::new(Screening::new(detector))),
                None => core.greet(),
            },
        }
        core
    }

    /// Asks the flow for its opener.
    fn greet(&mut self) {
        let reply = self.ask_dialog(DialogCommand::Start);
        self.phase = Phase::Greeting(Reply::new(reply));
    }

    /// Applies one input.
    pub fn handle(&mut self, now: Instant, input: Input) {
        if matches!(self.phase, Phase::Ended(_)) {
            return;
        }
        match input {
            Input::CallerFrame { pcm, .. } if matches!(self.phase, Phase::Screening(_)) => {
                self.screen(now, &pcm)
            }
            Input::CallerFrame { pcm, arrived, echo } => self.on_frame(now, &pcm, arrived, echo),
            Input::Dtmf(digit) => self.on_dtmf(now, digit),
            Input::Transcript { revision, result } => self.on_transcript(now, revision, result),
            Input::Dialog(output) => self.on_dialog(now, output),
            Input::DialogGone => self.end(now, EndReason::DialogFailed),
            Input::Synthesized { item, result } => self.on_synthesized(now, item, result),
            Input::Playback(report) => self.on_playback(now, report),
            Input::Transfer(progress) => self.on_transfer(now, progress),
            Input::Hangup { reason } => self.on_hangup(now, reason),
            Input::Shutdown => self.end(now, EndReason::DaemonShutdown),
        }
        self.settle(now);
    }

    /// Acts on the deadline of [`CallCore::poll_timeout`] if it has passed; otherwise nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some((at, reason)) = self.poll_timeout() else {
            return;
        };
        if now < at {
            return;
        }
        match reason {
            TimerReason::Silence => self.on_silence(now),
            TimerReason::MaxDuration => self.on_time_limit(now),
            TimerReason::HangupUnconfirmed => {
                let reason = match &self.phase {
                    Phase::Ending(e) => e.reason.clone(),
                    _ => EndReason::AgentHangup,
                };
                tracing::warn!(%reason, "hang-up never confirmed; ending the call");
                self.finish(now, reason);
            }
        }
        self.settle(now);
    }

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call [`CallCore::handle_timeout`] next, and why.
    pub fn poll_timeout(&self) -> Option<(Instant, TimerReason)> {
        let limit = (
            self.started + self.config.max_duration,
            TimerReason::MaxDuration,
        );
        match &self.phase {
            Phase::Ended(_) => None,
            Phase::Ending(Ending {
                hangup_at: Some(at),
                ..
            }) => Some((*at + HANGUP_CONFIRM_TIMEOUT, TimerReason::HangupUnconfirmed)),
            Phase::Ending(_) => None,
            Phase::Listening if self.hearing.is_idle() && !self.listener.in_turn() => {
                let silence = (
                    self.quiet_since + self.config.silence_timeout,
                    TimerReason::Silence,
                );
                Some(if silence.0 < limit.0 { silence } else { limit })
            }
            _ => Some(limit),
        }
    }

    /// Why the call ended, once it has.
    pub fn end_reason(&self) -> Option<&EndReason> {
        match &self.phase {
            Phase::Ended(reason) => Some(reason),
            _ => None,
        }
    }

    /// Caller turns so far (0 while only the greeting was exchanged).
    pub fn turns(&self) -> i64 {
        self.exchange.seq
    }

    /// The phase's name, for logs and tests.
    pub fn phase_name(&self) -> &'static str {
        match &self.phase {
            Phase::Screening(_) => "screening",
            Phase::Greeting(_) => "greeting",
            Phase::Listening => "listening",
            Phase::Replying(_) => "replying",
            Phase::BargedIn(_) => "barged_in",
            Phase::Transferring(_) => "transferring",
            Phase::Ending(_) => "ending",
            Phase::Ended(_) => "ended",
        }
    }

    /// Stored timestamps: unix ms derived from `now`.
    fn unix_ms(&self, now: Instant) -> i64 {
        let since = now.saturating_duration_since(self.started).as_millis();
        self.started_unix_ms + i64::try_from(since).unwrap_or(i64::MAX / 2)
    }

    fn record(&mut self, record: Record) {
        self.outputs.push_back(Output::Record(record));
    }

    fn event(&mut self, now: Instant, kind: EventKind, detail: serde_json::Value) {
        let at = self.unix_ms(now);
        self.record(Record::Event { at, kind, detail });
    }

    fn ask_dialog(&mut self, command: DialogCommand) -> u64 {
        let reply = self.next_reply;
        self.next_reply += 1;
        self.outputs.push_back(Output::AskDialog { reply, command });
        reply
    }

    /// Saves the exchange as it stands (at each milestone; the store upserts by sequence).
    fn save_exchange(&mut self) {
        let turn = self.exchange.to_turn(&self.call_id);
        self.record(Record::Turn(turn));
    }

    /// The call is over: the last writes, and no more outputs after them.
    fn finish(&mut self, now: Instant, reason: EndReason) {
        self.save_exchange();
        let at = self.unix_ms(now);
        let call_ms = now.saturating_duration_since(self.started).as_millis();
        self.record(Record::Usage {
            kind: "call_ms",
            quantity: i64::try_from(call_ms).unwrap_or(i64::MAX),
            unit: "ms",
            at,
        });
        self.record(Record::Ended {
            at,
            reason: reason.clone(),
        });
        metrics::counter!("agent_calls_ended_total", "reason" => reason.as_str().to_owned())
            .increment(1);
        self.phase = Phase::Ended(reason);
    }
}

impl Reply {
    fn new(id: u64) -> Reply {
        Reply {
            id,
            produced: false,
            then: Then::Listen,
            dtmf: String::new(),
        }
    }
}
