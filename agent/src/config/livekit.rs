//! `[livekit]`: taking calls from LiveKit rooms (LiveKit SIP bridges a trunk into a room and
//! dispatches this daemon, registered as an agent worker, to it).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::Secret;

/// The LiveKit agent worker run by `agent serve`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LiveKitConfig {
    /// The LiveKit server (`wss://…`, `https://…`; `ws://`/`http://` for a local one).
    /// Empty: no worker (direct SIP only).
    #[serde(deserialize_with = "server_url")]
    pub url: String,
    /// API key and secret of the project (the worker's JWT and the server API calls).
    pub api_key: String,
    pub api_secret: Secret,
    /// The name dispatch rules and `CreateDispatch` use to send jobs to this daemon (explicit
    /// dispatch: the SIP dispatch rule's `roomConfig.agents[].agentName`).
    pub agent_name: String,
    /// Rooms this daemon joins at once; further job offers are declined (the server offers
    /// them to another worker). Calls over SIP count too: `call.max_concurrent` holds for all.
    pub max_jobs: u32,
    /// How long to wait, after joining, for the SIP participant and media before giving the
    /// job up as failed.
    pub media_timeout_secs: u64,
    /// ICE candidates: `default` (host, server-reflexive via STUN from the server, relay) or
    /// `loopback` (127.0.0.1 host candidates only: a server on this machine, tests).
    #[serde(deserialize_with = "ice_policy")]
    pub ice: String,
    /// LiveKit SIP inbound trunk ids (`sip.trunkID`, e.g. `ST_…`) whose caller IDs are trusted,
    /// as a direct trunk's `trusted_caller_id`: flows with
    /// `verify = "postal_code_unless_trusted"` skip the postal code for their callers.
    pub trusted_trunks: Vec<String>,
    /// Outbound calls through LiveKit SIP (`CreateSIPParticipant`): each entry is a trunk name
    /// for `agent dial --trunk` and campaigns, like a `[[trunks]]` one, whose calls go out
    /// through a LiveKit SIP outbound trunk instead of this daemon's own SIP stack.
    #[serde(deserialize_with = "outbound_trunks")]
    pub outbound_trunks: Vec<LiveKitTrunk>,
}

/// `[[livekit.outbound_trunks]]`: a LiveKit SIP outbound trunk the daemon dials through.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LiveKitTrunk {
    /// The name calls and campaigns use (`agent dial --trunk NAME`); unique among
    /// `[[trunks]]` and these.
    pub name: String,
    /// The LiveKit outbound trunk id (`ST_…`, `CreateSIPParticipantRequest.sip_trunk_id`).
    pub trunk_id: String,
    /// Caller ID shown to the callee (`sip_number`); empty: the trunk's own number.
    #[serde(default)]
    pub from_number: String,
    /// Prefixes a dialled number must start with, as `[[trunks]]`: `["*"]` any, empty none.
    #[serde(default)]
    pub allowed_destinations: Vec<String>,
}

impl LiveKitTrunk {
    /// Whether `number` may be dialled through this trunk (`allowed_destinations`).
    pub fn allows_destination(&self, number: &str) -> bool {
        super::trunks::destination_allowed(&self.allowed_destinations, number)
    }
}

fn outbound_trunks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<LiveKitTrunk>, D::Error> {
    let trunks = Vec::<LiveKitTrunk>::deserialize(d)?;
    for (i, t) in trunks.iter().enumerate() {
        if t.name.trim().is_empty() {
            return Err(D::Error::custom(format!(
                "outbound_trunks[{i}].name must not be empty"
            )));
        }
        if !t.trunk_id.starts_with("ST_") {
            return Err(D::Error::custom(format!(
                "outbound_trunks[{i}].trunk_id = {:?} is not a LiveKit SIP trunk id (ST_…)",
                t.trunk_id
            )));
        }
        if let Some(j) = trunks[..i].iter().position(|o| o.name == t.name) {
            return Err(D::Error::custom(format!(
                "outbound_trunks[{i}].name = {:?} is already the name of outbound_trunks[{j}]",
                t.name
            )));
        }
    }
    Ok(trunks)
}

impl Default for LiveKitConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            api_key: String::new(),
            api_secret: Secret::default(),
            agent_name: "agent".to_owned(),
            max_jobs: 8,
            media_timeout_secs: 10,
            ice: "default".to_owned(),
            trusted_trunks: Vec::new(),
            outbound_trunks: Vec::new(),
        }
    }
}

impl LiveKitConfig {
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }
}

fn server_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let url = String::deserialize(d)?;
    let scheme_ok = ["wss://", "ws://", "https://", "http://"]
        .iter()
        .any(|s| url.starts_with(s));
    if !url.is_empty() && !scheme_ok {
        return Err(D::Error::custom(format!(
            "must be a ws(s):// or http(s):// URL, got {url:?}"
        )));
    }
    Ok(url)
}

fn ice_policy<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let ice = String::deserialize(d)?;
    match ice.as_str() {
        "default" | "loopback" => Ok(ice),
        _ => Err(D::Error::custom(format!(
            "must be \"default\" or \"loopback\", got {ice:?}"
        ))),
    }
}
