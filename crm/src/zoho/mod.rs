//! Zoho CRM and Zoho Books: per-tenant OAuth with encrypted tokens, incremental sync into the
//! customer cache, and the call write-back through a durable outbox.
//!
//! Wire formats follow Zoho's documentation as collected in `wave2-facts.md` §2 (each module
//! cites its pages). Everything remote is configured: the accounts servers per data centre
//! (overridable for tests and private deployments) and, for every API call, the `api_domain`
//! the token response named.
//!
//! - [`oauth`]: the authorization URL and the token endpoint (code exchange, refresh).
//! - [`tokens`]: access tokens per tenant, refreshed before expiry, one refresh at a time per
//!   tenant, within Zoho's 10 tokens per 10 minutes; a revoked refresh token disconnects.
//! - [`api`]: authenticated calls with retries (429, 5xx, network) honouring `Retry-After`.
//! - [`records`] / [`books`]: CRM v8 records and Books v3 contacts/invoices.
//! - [`sync`]: the sync engine (runs, watermarks, deletions, progress).
//! - [`writeback`]: [`enqueue_call_log`] and the outbox worker that creates CRM Calls records.
//!
//! Invariants: tokens are decrypted only to be sent, never logged, never returned by any
//! function here except [`Zoho::access_token`] (used by the API layer); `Debug` output of every
//! type here redacts them. Zoho being down never affects calls: lookups read the local cache.

pub mod api;
pub mod books;
pub mod dc;
pub mod oauth;
pub mod records;
pub mod sync;
pub mod time;
pub mod tokens;
pub mod writeback;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use store::{Store, StoreError};
use vault::{Keyring, VaultError};

pub use dc::{DataCenter, UnknownDataCenter};
pub use oauth::{Authorization, Connected};
pub use sync::{StreamCounts, SyncOptions, SyncProgress, SyncReport};
pub use writeback::{EnqueueOutcome, OutboxPass, WriteBackError, enqueue_call_log, spawn_call_log};

use crate::phone::PhoneNormalizer;

/// Secret purposes in the `secrets` table.
pub const REFRESH_TOKEN: &str = "zoho.refresh_token";
/// See [`REFRESH_TOKEN`].
pub const ACCESS_TOKEN: &str = "zoho.access_token";

/// The default OAuth scopes: CRM Contacts, Leads and Calls read and write (sync and the call
/// log), Books contacts and invoices read. Zoho scope names:
/// https://www.zoho.com/crm/developer/docs/api/v8/scopes.html and
/// https://www.zoho.com/books/api/v3/oauth/#scopes.
pub const DEFAULT_SCOPES: [&str; 8] = [
    "ZohoCRM.modules.contacts.READ",
    "ZohoCRM.modules.contacts.WRITE",
    "ZohoCRM.modules.leads.READ",
    "ZohoCRM.modules.leads.WRITE",
    "ZohoCRM.modules.calls.READ",
    "ZohoCRM.modules.calls.WRITE",
    "ZohoBooks.contacts.READ",
    "ZohoBooks.invoices.READ",
];

/// The OAuth client secret; `Debug` prints `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn new(secret: impl Into<String>) -> ClientSecret {
        ClientSecret(secret.into())
    }
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

/// Retries of one API request (429, 5xx, network errors): exponential backoff from `base`,
/// capped at `max`, or the server's `Retry-After` when it sent one (also capped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1: no retries).
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)));
        retry_after.unwrap_or(exp).min(self.max)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// What the integration needs from configuration.
#[derive(Debug, Clone)]
pub struct ZohoConfig {
    pub client_id: String,
    pub client_secret: ClientSecret,
    /// Registered with the client in Zoho's API console; the redirect after consent.
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    /// Zoho Books organization; empty: Books is not synced.
    pub books_organization_id: String,
    /// Currency of customers that exist only in CRM (no Books balance).
    pub default_currency: String,
    /// Replacement accounts servers per DC (tests, private deployments). A code exchange is
    /// only sent to a DC's official server or its replacement here, never to an arbitrary URL.
    pub accounts_servers: BTreeMap<DataCenter, String>,
    /// Timeout of one HTTP request. Keep it well under [`ZohoConfig::outbox_lease`].
    pub http_timeout: Duration,
    pub retry: RetryPolicy,
    /// How long a claimed outbox row is ours.
    pub outbox_lease: Duration,
    /// Backoff between outbox attempts (base doubles per attempt, capped at max).
    pub outbox_backoff: RetryPolicy,
    /// Access tokens are refreshed when less than this is left (they live 3600 s).
    pub refresh_margin: Duration,
    /// How long a started authorization's `state` is accepted.
    pub authorization_ttl: Duration,
}

impl ZohoConfig {
    /// A config with the defaults for everything but the client credentials.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: ClientSecret,
        redirect_uri: impl Into<String>,
    ) -> ZohoConfig {
        ZohoConfig {
            client_id: client_id.into(),
            client_secret,
            redirect_uri: redirect_uri.into(),
            scopes: DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            books_organization_id: String::new(),
            default_currency: "USD".to_owned(),
            accounts_servers: BTreeMap::new(),
            http_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            outbox_lease: Duration::from_secs(120),
            outbox_backoff: RetryPolicy {
                attempts: u32::MAX,
                base: Duration::from_secs(30),
                max: Duration::from_secs(3600),
            },
            refresh_margin: Duration::from_secs(300),
            authorization_ttl: Duration::from_secs(1800),
        }
    }

    /// The accounts server of `dc` (the override if configured).
    pub fn accounts_server(&self, dc: DataCenter) -> &str {
        self.accounts_servers
            .get(&dc)
            .map(String::as_str)
            .unwrap_or_else(|| dc.accounts_server())
    }

    /// The DC whose accounts server (official or override) is `url`, if any.
    pub fn dc_of_accounts_server(&self, url: &str) -> Option<DataCenter> {
        let url = url.trim_end_matches('/');
        DataCenter::ALL.into_iter().find(|dc| {
            self.accounts_server(*dc).trim_end_matches('/') == url || dc.accounts_server() == url
        })
    }
}

/// Why a Zoho operation failed. Never carries a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZohoError {
    /// A required setting is empty.
    #[error("zoho is not configured: {key} is empty")]
    NotConfigured { key: &'static str },
    /// The tenant never connected.
    #[error("this tenant has no Zoho connection (run `agent zoho connect`)")]
    NotConnected,
    /// The connection stopped working; reconnect.
    #[error("the Zoho connection is disconnected ({reason}); reconnect with `agent zoho connect`")]
    Disconnected { reason: String },
    /// The `state` of a code exchange is not the one we issued (or it expired).
    #[error("the authorization state does not match a started connection (start again)")]
    BadState,
    /// An accounts server that is not Zoho's (nor a configured override).
    #[error("{url} is not a Zoho accounts server (expected one of the data centres' servers)")]
    UnknownAccountsServer { url: String },
    /// The token endpoint refused the authorization code.
    #[error("Zoho refused the authorization code: {error}")]
    CodeRejected { error: String },
    /// The refresh token no longer works; the tenant was marked disconnected.
    #[error(
        "the Zoho refresh token was revoked or has expired ({error}); reconnect with `agent zoho connect`"
    )]
    RefreshRevoked { error: String },
    /// Zoho's limit of 10 access tokens per 10 minutes per refresh token is reached.
    #[error("Zoho's token limit (10 per 10 minutes) is reached; next refresh in {} s", retry_after.as_secs())]
    RefreshLimited { retry_after: Duration },
    /// The client id or secret is wrong.
    #[error(
        "Zoho rejected the client credentials ({error}); check zoho.client_id and zoho.client_secret"
    )]
    BadClient { error: String },
    /// Zoho answered with an error.
    #[error("Zoho API error: HTTP {status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// Zoho could not be reached (after retries).
    #[error("Zoho unreachable: {source}")]
    Network {
        #[source]
        source: reqwest_013::Error,
    },
    /// A response we cannot read.
    #[error("unexpected response from Zoho ({what}): {detail}")]
    Protocol { what: &'static str, detail: String },
    /// Another sync of this tenant holds the lease.
    #[error("a sync of this tenant is already running (held by {holder})")]
    SyncBusy { holder: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored Zoho token unreadable: {0}")]
    Vault(#[from] VaultError),
}

impl ZohoError {
    /// Whether trying again later may succeed (Zoho down, rate limits), as opposed to needing
    /// an operator (revoked tokens, bad configuration).
    pub fn is_transient(&self) -> bool {
        match self {
            ZohoError::Network { .. } | ZohoError::RefreshLimited { .. } => true,
            ZohoError::Api { status, .. } => *status == 429 || *status >= 500,
            ZohoError::Store(StoreError::Connect { .. }) => true,
            _ => false,
        }
    }
}

/// Unix milliseconds; injectable for tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The integration: cheap to clone, shared by the CLI, the admin API, the periodic sync and
/// the outbox worker.
#[derive(Clone)]
pub struct Zoho {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    keyring: Keyring,
    config: ZohoConfig,
    http: reqwest_013::Client,
    tokens: tokens::TokenCache,
    phones: PhoneNormalizer,
    clock: Clock,
}

impl fmt::Debug for Zoho {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Zoho")
            .field("client_id", &self.inner.config.client_id)
            .field("key_id", &self.inner.keyring.current_id())
            .finish_non_exhaustive()
    }
}

impl Zoho {
    /// The integration over `store`, sealing tokens with `keyring`, reading phone numbers with
    /// `phones`. Fails when the client credentials are not configured.
    pub fn new(
        store: Store,
        keyring: Keyring,
        config: ZohoConfig,
        phones: PhoneNormalizer,
    ) -> Result<Zoho, ZohoError> {
        Zoho::with_clock(store, keyring, config, phones, Arc::new(unix_ms_now))
    }

    /// [`Zoho::new`] with a clock.
    pub fn with_clock(
        store: Store,
        keyring: Keyring,
        config: ZohoConfig,
        phones: PhoneNormalizer,
        clock: Clock,
    ) -> Result<Zoho, ZohoError> {
        if config.client_id.trim().is_empty() {
            return Err(ZohoError::NotConfigured {
                key: "zoho.client_id",
            });
        }
        if config.client_secret.is_empty() {
            return Err(ZohoError::NotConfigured {
                key: "zoho.client_secret",
            });
        }
        if config.redirect_uri.trim().is_empty() {
            return Err(ZohoError::NotConfigured {
                key: "zoho.redirect_uri",
            });
        }
        // As in speech and dialogs: ring is the process's rustls provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest_013::Client::builder()
            .timeout(config.http_timeout)
            .connect_timeout(config.http_timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|source| ZohoError::Network { source })?;
        Ok(Zoho {
            inner: Arc::new(Inner {
                store,
                keyring,
                config,
                http,
                tokens: tokens::TokenCache::default(),
                phones,
                clock,
            }),
        })
    }

    /// The store this integration writes to.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The configuration in use.
    pub fn config(&self) -> &ZohoConfig {
        &self.inner.config
    }

    pub(crate) fn now(&self) -> i64 {
        (self.inner.clock)()
    }
}

pub(crate) fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
