//! The stable codes stored with calls: why a call ended ([`EndReason`], `calls.end_reason`)
//! and what happened during it ([`EventKind`], `call_events.kind`).
//!
//! This is the one place they are defined and documented. Dashboards, analytics queries and
//! other daemons sharing the database read these strings, so a code never changes meaning and
//! is never reused; new codes are added. ARCHITECTURE.md carries the same tables, and a test
//! (`store/tests/vocabulary.rs`) fails when the two disagree.
//!
//! Codes written by a newer daemon (or named by a flow file) are kept as they are:
//! [`EndReason::Flow`] and [`EventKind::Other`] hold them, so reading never fails on them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! vocabulary {
    (
        $(#[$doc:meta])*
        $name:ident, open: $open:ident = $odoc:literal,
        $( $(#[$vdoc:meta])* $variant:ident => $code:literal : $meaning:literal, )+
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vdoc])* $variant, )+
            #[doc = $odoc]
            $open(String),
        }

        impl $name {
            /// Every fixed code, in documentation order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored code.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $code, )+
                    $name::$open(code) => code,
                }
            }

            /// What the code means, as documented in ARCHITECTURE.md.
            pub fn meaning(&self) -> &'static str {
                match self {
                    $( $name::$variant => $meaning, )+
                    $name::$open(_) => "",
                }
            }

            /// The value for a stored code; unknown codes are kept as they are.
            pub fn from_code(code: &str) -> Self {
                match code {
                    $( $code => $name::$variant, )+
                    other => $name::$open(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Compares the stored code (`kind == "dtmf"`).
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let code = String::deserialize(d)?;
                Ok($name::from_code(&code))
            }
        }
    };
}

vocabulary! {
    /// Why a call ended (`calls.end_reason`).
    EndReason, open: Flow = "A reason named by a flow file (`end_call = \"wrong_person\"`), or a code from a newer daemon.",
    /// The caller hung up (BYE), or gave up before the answer (CANCEL).
    CallerHangup => "caller_hangup": "the caller hung up (BYE), or gave up before the answer (CANCEL)",
    /// We hung up without a more specific reason.
    AgentHangup => "agent_hangup": "the agent hung up without a more specific reason",
    /// The flow reached its end (`end_call = "flow_completed"`).
    FlowCompleted => "flow_completed": "the flow reached its end",
    /// The caller stayed silent through the flow's reprompts.
    SilenceTimeout => "silence_timeout": "the caller stayed silent through the flow's reprompts",
    /// `call.max_duration_secs` was reached; the caller heard why.
    MaxDuration => "max_duration": "`call.max_duration_secs` was reached; the caller heard why",
    /// A blind transfer was accepted and the call left us.
    Transferred => "transferred": "a blind transfer was accepted and the call left us",
    /// Answered without speech recognition (no model): the caller heard an apology.
    SttUnavailable => "stt_unavailable": "no speech recognition (model missing): the caller heard an apology",
    /// No speech synthesis: the call was refused (503) or not dialled.
    TtsUnavailable => "tts_unavailable": "no speech synthesis: refused with 503, or not dialled",
    /// Refused before answer: the tenant's plan has no minutes left (`[billing]`).
    QuotaExceeded => "quota_exceeded": "refused before answer: the plan's included minutes are used",
    /// Refused before answer: the tenant's plan allows no more concurrent calls.
    PlanConcurrency => "plan_concurrency": "refused before answer: the plan's concurrent calls are in use",
    /// The dialog engine stopped answering.
    DialogFailed => "dialog_failed": "the dialog engine stopped answering",
    /// The daemon shut down and the grace period ran out.
    DaemonShutdown => "daemon_shutdown": "the daemon shut down and the grace period ran out",
    /// Found unfinished when the daemon started (it had died mid-call).
    DaemonRestart => "daemon_restart": "found unfinished at start (the daemon had died mid-call)",
    /// The call could not be answered (the SIP layer refused the answer).
    AnswerFailed => "answer_failed": "the call could not be answered",
    /// The call's media could not run (codec, VAD).
    MediaFailed => "media_failed": "the call's media could not run (codec, VAD)",
    /// The media task stopped under the call.
    MediaLost => "media_lost": "the media task stopped under the call",
    /// The signalling of the call went away (driver stopped).
    TransportLost => "transport_lost": "the call's signalling went away (driver stopped)",
    /// We answered but no ACK came.
    AckTimeout => "ack_timeout": "we answered but no ACK came",
    /// The SIP session timer ran out (RFC 4028).
    SessionExpired => "session_expired": "the SIP session timer ran out (RFC 4028)",
    /// Outbound: the callee was busy.
    Busy => "busy": "outbound: the callee was busy",
    /// Outbound: nobody answered within `call.ringing_timeout_secs`.
    NoAnswer => "no_answer": "outbound: nobody answered in time",
    /// Outbound: the callee or the network refused the call.
    Rejected => "rejected": "outbound: the callee or the network refused the call",
    /// Outbound: the trunk could not be reached.
    Unreachable => "unreachable": "outbound: the trunk could not be reached",
    /// Outbound: the INVITE could not be sent.
    DialFailed => "dial_failed": "outbound: the INVITE could not be sent",
    /// Outbound: we cancelled the INVITE.
    LocalCancel => "local_cancel": "outbound: we cancelled the INVITE",
    /// We rejected the call with a final response.
    LocalRejected => "local_rejected": "we rejected the call with a final response",
    /// The peer rejected our request with a final response.
    RemoteRejected => "remote_rejected": "the peer rejected our request",
    /// No response to our INVITE (Timer B).
    Timeout => "timeout": "no response to our INVITE (Timer B)",
    /// Our INVITE rang too long and the SIP core cancelled it.
    RingTimeout => "ring_timeout": "our INVITE rang too long and was cancelled",
    /// A challenge we could not answer.
    AuthFailed => "auth_failed": "a digest challenge we could not answer",
    /// The peer became unreachable (ICMP, TCP failure).
    TransportError => "transport_error": "the peer became unreachable (ICMP, TCP failure)",
    /// Outbound: an answering machine took the call (answering-machine detection).
    Voicemail => "voicemail": "outbound: an answering machine answered (after the message, if the flow left one)",
}

vocabulary! {
    /// What happened during a call (`call_events.kind`); the event's `detail` (JSON) carries
    /// the specifics.
    EventKind, open: Other = "A kind written by a newer daemon.",
    /// The call was answered: `{codec}`.
    Answered => "answered": "answered: `{codec}`",
    /// The caller was found in the customer cache by caller ID.
    CallerIdentified => "caller_identified": "the caller was found by caller ID",
    /// A DTMF key: `{digit}`.
    Dtmf => "dtmf": "a DTMF key: `{digit}`",
    /// The caller talked over the agent; playback paused: `{position}`.
    BargeIn => "barge_in": "the caller talked over the agent; playback paused",
    /// Words over the agent were a backchannel; playback resumed: `{text, resumed_after_ms}`.
    Backchannel => "backchannel": "words over the agent were a backchannel; playback resumed",
    /// Sound without words (noise); playback resumed if paused: `{text, resumed_after_ms}`.
    NoSpeech => "no_speech": "sound without words; playback resumed if it was paused",
    /// The caller was silent for `call.silence_timeout_secs`: `{secs}`.
    Silence => "silence": "the caller was silent for `call.silence_timeout_secs`",
    /// The flow moved between nodes: `{from, to}`.
    Node => "node": "the flow moved between nodes: `{from, to}`",
    /// The flow asked to end the call: `{reason}`.
    FlowEnd => "flow_end": "the flow asked to end the call: `{reason}`",
    /// The flow recorded an outcome: `{outcome, note}`.
    Outcome => "outcome": "the flow recorded an outcome: `{outcome, note}`",
    /// A guardrail refused: `{tool, reason}`.
    Refused => "refused": "a guardrail refused: `{tool, reason}`",
    /// A tool ran: `{tool, status}`.
    ToolCalled => "tool_called": "a tool ran: `{tool, status}`",
    /// A tool did not answer in time: `{tool}`.
    ToolTimedOut => "tool_timed_out": "a tool did not answer in time: `{tool}`",
    /// The LLM asked for more tool rounds than allowed: `{rounds}`.
    ToolRoundLimit => "tool_round_limit": "the LLM asked for more tool rounds than allowed",
    /// The LLM failed or stalled and the flow's fallback was spoken: `{reason}`.
    LlmFallback => "llm_fallback": "the LLM failed or stalled; the flow's fallback was used",
    /// A payment link was asked for (written by daemons before links were sent).
    PaymentLinkRequested => "payment_link_requested": "a payment link was asked for (older daemons)",
    /// A checkout link for the customer's invoice was e-mailed: `{customer_id, invoice}`.
    PaymentLinkSent => "payment_link_sent": "a checkout link for the invoice was e-mailed: `{customer_id, invoice}`",
    /// The link was created and its e-mail queued for retry: `{customer_id, invoice}`.
    PaymentLinkQueued => "payment_link_queued": "the link was created and its e-mail queued for retry",
    /// No link was sent: `{customer_id, reason: no_email|nothing_due}`.
    PaymentLinkNotSent => "payment_link_not_sent": "no link was sent: `{reason: no_email|nothing_due}`",
    /// Creating or sending the link failed: `{customer_id, error}`.
    PaymentLinkFailed => "payment_link_failed": "creating or sending the link failed: `{error}`",
    /// A transcription failed: `{error}`.
    SttError => "stt_error": "a transcription failed: `{error}`",
    /// Answered without speech recognition: `{error}`.
    SttUnavailable => "stt_unavailable": "answered without speech recognition: `{error}`",
    /// A synthesis failed: `{error}`.
    TtsError => "tts_error": "a synthesis failed: `{error}`",
    /// `call.max_duration_secs` was reached: `{secs}`.
    MaxDuration => "max_duration": "`call.max_duration_secs` was reached",
    /// A blind transfer: `{to, name, uri, state: requested|accepted, after_ms}`.
    Transfer => "transfer": "a blind transfer: `{to, name, state: requested|accepted}`",
    /// A blind transfer failed; the flow took the call back: `{to, name, reason, status}`.
    TransferFailed => "transfer_failed": "a blind transfer failed; the flow took the call back",
    /// The call's media at its end: codec, packets, loss, jitter, echo path.
    Media => "media": "the call's media at its end: codec, packets, loss, jitter, echo path",
    /// Outbound: the INVITE went out: `{trunk, target, sip_call_id}`.
    Dialling => "dialling": "outbound: the INVITE went out",
    /// Outbound: 180 Ringing: `{status}`.
    Ringing => "ringing": "outbound: 180 ringing",
    /// Outbound: 183 with early media: `{status}`.
    EarlyMedia => "early_media": "outbound: 183 with early media",
    /// Outbound: another provisional response: `{status}`.
    Progress => "progress": "outbound: another provisional response",
    /// Outbound: the call did not connect: `{sip, detail}`.
    NotConnected => "not_connected": "outbound: the call did not connect: `{sip, detail}`",
    /// Outbound: the INVITE could not be sent: `{error}`.
    DialFailed => "dial_failed": "outbound: the INVITE could not be sent",
    /// Answering-machine detection decided: `{verdict: human|machine|unknown, after_ms}`.
    Amd => "amd": "answering-machine detection decided: `{verdict, after_ms}`",
    /// The answering machine's beep was heard: `{at_ms}` after the answer.
    AmdBeep => "amd_beep": "the answering machine's beep: `{at_ms}` after the answer",
    /// The call was placed by a campaign: `{campaign_id, contact_id, attempt}`.
    CampaignAttempt => "campaign_attempt": "placed by a campaign: `{campaign_id, contact_id, attempt}`",
    /// The callee asked not to be called again; the number went on the do-not-call list.
    DncAdded => "dnc_added": "the callee asked not to be called again: `{phone}` is on the do-not-call list",
}
