//! The daemon's configuration: typed sections with documented defaults, loaded in layers
//! (built-in defaults < file < `AGENT__SECTION__KEY` environment < CLI flags).
//!
//! `config/agent.toml` documents every key; a test keeps it in step with these defaults.

mod billing;
mod campaigns;
mod integrations;
mod livekit;
mod load;
mod recording;
mod secret;
mod trunks;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use billing::{BillingConfig, DodoConfig, EmailConfig, OverageConfig, PlanConfig, PriceConfig};
pub use campaigns::{CampaignsConfig, TrunkLimit};
pub use integrations::{SecurityConfig, ZohoConfig};
pub use livekit::{LiveKitConfig, LiveKitTrunk};
pub use load::{ConfigError, Override, load};
pub use recording::RecordingConfig;
pub use secret::{DatabaseUrl, Secret};
pub use trunks::{Network, ProxyAddr, TrunkConfig, TrunkTransport};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeConfig,
    pub database: DatabaseConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub shutdown: ShutdownConfig,
    pub sip: SipConfig,
    pub call: CallConfig,
    pub turn: TurnConfig,
    pub vad: VadConfig,
    pub stt: SttConfig,
    pub tts: TtsConfig,
    pub llm: LlmConfig,
    pub flows: FlowsConfig,
    pub crm: CrmConfig,
    /// `[security]`: the key sealing secrets at rest.
    pub security: SecurityConfig,
    /// `[zoho]`: Zoho CRM and Books.
    pub zoho: ZohoConfig,
    pub billing: BillingConfig,
    pub dodo: DodoConfig,
    pub email: EmailConfig,
    pub campaigns: CampaignsConfig,
    /// `[livekit]`: calls from LiveKit rooms, as an agent worker.
    pub livekit: LiveKitConfig,
    /// `[recording]`: where recorded calls go and how long they stay.
    pub recording: RecordingConfig,
    /// `[[trunks]]`: SIP trunks to register with, take calls from and dial through.
    #[serde(
        deserialize_with = "trunks::unique_names",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub trunks: Vec<TrunkConfig>,
}

/// This daemon instance.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Name of this instance, stored with its calls; empty means the host name.
    pub id: String,
}

/// Storage.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path` (embedded, default) or `postgres://user:pass@host:port/db`.
    pub url: DatabaseUrl,
    /// Pool size.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: DatabaseUrl::new("sqlite://data/agent.db"),
            max_connections: 8,
        }
    }
}

/// The admin HTTP API.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `info,sip=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info,whisper_rs=warn".to_owned(),
        }
    }
}

/// Graceful shutdown.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// After SIGTERM/SIGINT, how long in-flight calls and requests may take to finish.
    pub grace_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { grace_secs: 10 }
    }
}

/// SIP signalling and RTP media.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// UDP address for SIP.
    pub listen: SocketAddr,
    /// Address put in Contact/Via and SDP when behind NAT; empty means the listen address
    /// (or, for 0.0.0.0, the address the request arrived on).
    pub external_address: String,
    /// RTP port range (inclusive), one even port per call.
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Codecs we accept, in preference order (`opus`, `PCMU`, `PCMA`). Our order decides
    /// among the offered ones: Opus (16 kHz wideband, better recognition) when the peer has it.
    pub codecs: Vec<String>,
    /// User-Agent / Server header value.
    pub user_agent: String,
    /// Also take SIP over TCP on the `listen` port, and use TCP when a request is too large
    /// for UDP or a trunk says `transport = "tcp"`.
    pub tcp: bool,
    /// Per-source-IP request rate limit (requests per second; 0: off). Trunk sources
    /// (`trunks[].allowed_sources`) are exempt; excess requests are dropped and counted.
    pub rate_limit_per_sec: u32,
    /// Requests a source may send in a burst above the rate.
    pub rate_limit_burst: u32,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            external_address: String::new(),
            rtp_port_min: 20000,
            rtp_port_max: 30000,
            codecs: vec!["opus".to_owned(), "PCMU".to_owned(), "PCMA".to_owned()],
            user_agent: concat!("agent/", env!("CARGO_PKG_VERSION")).to_owned(),
            tcp: true,
            rate_limit_per_sec: 0,
            rate_limit_burst: 50,
        }
    }
}

/// Per-call limits.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CallConfig {
    /// A call is ended politely after this long.
    pub max_duration_secs: u64,
    /// With no caller speech for this long the caller is reprompted once, then the call ends.
    pub silence_timeout_secs: u64,
    /// Calls beyond this many at once are refused (503 with Retry-After).
    pub max_concurrent: u32,
    /// Tenant that owns calls to numbers not mapped in `phone_numbers`.
    pub default_tenant: String,
    /// How long an inbound call rings (180) before it is answered.
    pub answer_delay_ms: u64,
    /// Outbound calls not answered within this many seconds are cancelled (`no_answer`); 0: no limit.
    pub ringing_timeout_secs: u64,
    /// Outbound calls: screen the answer for an answering machine (at most 3 s) before the
    /// flow speaks; a machine gets the flow's `messages.voicemail` after its beep and the call
    /// ends as `voicemail`.
    pub answering_machine_detection: bool,
    /// How a flow's transfer is made: `blind` (the caller's side is told to call the target:
    /// SIP REFER, LiveKit TransferSIPParticipant) or `warm` (the daemon calls the target through
    /// `transfer_trunk`, tells them who is calling, then bridges the caller; no answer or a
    /// decline returns the caller to the flow).
    #[serde(deserialize_with = "transfer_mode")]
    pub transfer_mode: String,
    /// The `[[trunks]]` entry warm transfers dial through (required with `warm`).
    pub transfer_trunk: String,
}

fn transfer_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let mode = String::deserialize(d)?;
    match mode.as_str() {
        "blind" | "warm" => Ok(mode),
        _ => Err(serde::de::Error::custom(format!(
            "must be \"blind\" or \"warm\", got {mode:?}"
        ))),
    }
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            max_duration_secs: 1800,
            silence_timeout_secs: 10,
            max_concurrent: 100,
            default_tenant: "default".to_owned(),
            answer_delay_ms: 0,
            ringing_timeout_secs: 30,
            answering_machine_detection: true,
            transfer_mode: "blind".to_owned(),
            transfer_trunk: String::new(),
        }
    }
}

/// Turn detection: when has the caller finished? The wait after the caller's last voiced
/// frame depends on what they said so far (an interim transcript taken at the first pause).
/// These are the free-speech waits; yes/no and digits nodes use shorter and longer ones.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TurnConfig {
    /// Voiced audio needed before it counts as speech (filters clicks and coughs).
    pub min_speech_ms: u32,
    /// Silence that counts as a pause: the turn so far is transcribed then.
    pub pause_ms: u32,
    /// Wait after a complete-sounding transcript ("I'd like my balance.").
    pub complete_wait_ms: u32,
    /// Wait after an open-ended transcript, and when there is none.
    pub end_silence_ms: u32,
    /// Wait after an unfinished-sounding transcript ("I'm calling about…", "… and").
    pub incomplete_wait_ms: u32,
    /// Longest wait in any case.
    pub max_wait_ms: u32,
    /// Caller speech over the agent for this long pauses the agent (barge-in); the words then
    /// decide between stopping (a request), resuming (noise, "mm-hm").
    pub barge_in_min_ms: u32,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            min_speech_ms: 100,
            pause_ms: 200,
            complete_wait_ms: 200,
            end_silence_ms: 700,
            incomplete_wait_ms: 1600,
            max_wait_ms: 3000,
            barge_in_min_ms: 100,
        }
    }
}

/// Voice activity detection.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VadConfig {
    /// `earshot`, `webrtc` or `silero`.
    pub kind: String,
    /// Silero: the `silero_vad.onnx` model (scripts/vad-models.sh fetches it).
    pub silero_model: PathBuf,
    /// Silero: ONNX Runtime's shared library (`libonnxruntime.so`).
    pub onnxruntime_library: PathBuf,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            kind: "earshot".to_owned(),
            silero_model: PathBuf::new(),
            onnxruntime_library: PathBuf::new(),
        }
    }
}

/// Which speech-to-text engine runs.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SttProvider {
    /// whisper.cpp in-process (`stt.model`).
    Whisper,
    /// An OpenAI-compatible `POST {base_url}/audio/transcriptions`.
    Openai,
}

/// Speech to text.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SttConfig {
    pub provider: SttProvider,
    /// whisper.cpp ggml model file (provider `whisper`).
    pub model: PathBuf,
    /// Threads per transcription (provider `whisper`).
    pub threads: u32,
    /// Transcriptions that may run at once (each holds `threads` threads).
    pub workers: u32,
    /// API root for provider `openai`, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Bearer key for `base_url`.
    pub api_key: Secret,
    /// Model name the remote API knows, e.g. `whisper-1`.
    pub remote_model: String,
    /// Language hint sent to the remote API (ISO-639-1); empty: let it detect.
    pub language: String,
    /// A remote transcription that takes longer fails (the caller is asked to repeat).
    pub timeout_ms: u64,
}

impl Default for SttConfig {
    fn default() -> Self {
        Self {
            provider: SttProvider::Whisper,
            model: PathBuf::from("models/ggml-tiny.en.bin"),
            threads: 2,
            workers: 1,
            base_url: String::new(),
            api_key: Secret::default(),
            remote_model: "whisper-1".to_owned(),
            language: "en".to_owned(),
            timeout_ms: 3000,
        }
    }
}

/// Which text-to-speech engine runs.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TtsProvider {
    /// espeak-ng in-process.
    Espeak,
    /// An OpenAI-compatible `POST {base_url}/audio/speech` (`pcm`, 24 kHz).
    Openai,
}

/// Text to speech.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TtsConfig {
    pub provider: TtsProvider,
    /// Voice name: an espeak-ng voice (`en-us`) or the remote API's (`alloy`).
    pub voice: String,
    /// Words per minute (provider `espeak`).
    pub rate: u32,
    /// API root for provider `openai`.
    pub base_url: String,
    /// Bearer key for `base_url`.
    pub api_key: Secret,
    /// Model name the remote API knows, e.g. `tts-1`.
    pub remote_model: String,
    /// A remote synthesis that takes longer fails.
    pub timeout_ms: u64,
    /// Synthesised sentences kept in memory (fixed prompts are synthesised once per process).
    pub cache_entries: usize,
}

impl Default for TtsConfig {
    fn default() -> Self {
        Self {
            provider: TtsProvider::Espeak,
            voice: "en-us".to_owned(),
            rate: 175,
            base_url: String::new(),
            api_key: Secret::default(),
            remote_model: "tts-1".to_owned(),
            timeout_ms: 3000,
            cache_entries: 256,
        }
    }
}

/// The language model; with no `base_url` flows run in scripted mode.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// OpenAI-compatible API root, e.g. `https://api.openai.com/v1`; empty = scripted mode.
    pub base_url: String,
    /// Bearer key for `base_url`.
    pub api_key: Secret,
    pub model: String,
    /// A reply not started (or stalled) this long gets a spoken fallback; keep it under 2 s so
    /// a caller never waits longer than that in silence.
    pub timeout_ms: u64,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            api_key: Secret::default(),
            model: "gpt-4o-mini".to_owned(),
            timeout_ms: 1800,
        }
    }
}

/// Dialog flows.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsConfig {
    /// Folder of `*.toml` flow files.
    pub dir: PathBuf,
    /// Flow for calls to numbers without their own.
    pub default: String,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("config/flows"),
            default: "receptionist".to_owned(),
        }
    }
}

/// The customer cache.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CrmConfig {
    /// ISO 3166 region for reading national-format phone numbers (caller IDs, CSV imports).
    pub default_region: String,
}

impl Default for CrmConfig {
    fn default() -> Self {
        Self {
            default_region: "US".to_owned(),
        }
    }
}

impl Config {
    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    /// The node id, falling back to the host name.
    pub fn node_id(&self) -> String {
        if !self.node.id.is_empty() {
            return self.node.id.clone();
        }
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "agent".to_owned())
    }
}
