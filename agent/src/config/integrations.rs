//! `[security]` (the key that encrypts secrets at rest) and `[zoho]` (Zoho CRM and Books).
//! Values are checked while the file is read, so a bad key or DC name is reported with its
//! key, file and line.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::Secret;

/// Secrets at rest.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Base64 of 32 random bytes (`openssl rand -base64 32`): the AES-256-GCM key that seals
    /// stored secrets (Zoho tokens). Empty: no integration can store tokens.
    #[serde(deserialize_with = "encryption_key")]
    pub encryption_key: Secret,
    /// Keys that sealed older secrets: still accepted for reading until `agent keys
    /// rotate-encryption` has re-sealed everything under `encryption_key`.
    #[serde(deserialize_with = "encryption_keys")]
    pub previous_encryption_keys: Vec<Secret>,
}

fn check_key<E: serde::de::Error>(text: &str) -> Result<(), E> {
    vault::EncryptionKey::from_base64(text)
        .map(|_| ())
        .map_err(|e| E::custom(e.to_string()))
}

fn encryption_key<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    let text = String::deserialize(d)?;
    if !text.is_empty() {
        check_key(&text)?;
    }
    Ok(Secret::new(text))
}

fn encryption_keys<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    let keys = Vec::<String>::deserialize(d)?;
    for k in &keys {
        check_key(k)?;
    }
    Ok(keys.into_iter().map(Secret::new).collect())
}

/// Zoho CRM and Zoho Books.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ZohoConfig {
    /// OAuth client from https://api-console.zoho.com (a "server-based application").
    /// Empty: the integration is off.
    pub client_id: String,
    pub client_secret: Secret,
    /// The redirect URI registered with the client; Zoho sends the user back there with
    /// `code`, `location` and `accounts-server`.
    pub redirect_uri: String,
    /// OAuth scopes asked for.
    pub scopes: Vec<String>,
    /// Zoho Books organization to read contacts and invoices from; empty: CRM only.
    pub books_organization_id: String,
    /// ISO 4217 currency of customers that exist only in CRM (no Books balance).
    pub default_currency: String,
    /// Seconds between incremental syncs of each connected tenant inside `serve` (0: no
    /// periodic sync).
    pub sync_interval_secs: u64,
    /// A periodic sync is a full one (deletions found by absence) when the last successful
    /// full one is older than this.
    pub full_sync_interval_secs: u64,
    /// How often the write-back worker looks for due call logs when idle.
    pub outbox_poll_ms: u64,
    /// Timeout of one request to Zoho (keep it well under the outbox lease, 120 s).
    pub http_timeout_secs: u64,
    /// Replacement accounts servers per data centre, e.g. `{ us = "http://127.0.0.1:9000/x" }`
    /// (tests, private deployments). Codes are only ever exchanged at a DC's official server
    /// or the one named here.
    #[serde(deserialize_with = "accounts_servers")]
    pub accounts_servers: BTreeMap<String, String>,
}

impl Default for ZohoConfig {
    fn default() -> Self {
        Self {
            client_id: String::new(),
            client_secret: Secret::default(),
            redirect_uri: String::new(),
            scopes: crm::zoho::DEFAULT_SCOPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            books_organization_id: String::new(),
            default_currency: "USD".to_owned(),
            sync_interval_secs: 900,
            full_sync_interval_secs: 86_400,
            outbox_poll_ms: 2_000,
            http_timeout_secs: 30,
            accounts_servers: BTreeMap::new(),
        }
    }
}

fn accounts_servers<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = BTreeMap::<String, String>::deserialize(d)?;
    for (dc, url) in &map {
        dc.parse::<crm::zoho::DataCenter>()
            .map_err(|e| D::Error::custom(e.to_string()))?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(D::Error::custom(format!(
                "accounts server for {dc} must be an http(s) URL, got {url:?}"
            )));
        }
    }
    Ok(map)
}
