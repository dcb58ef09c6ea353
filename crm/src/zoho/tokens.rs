//! Access tokens per tenant.
//!
//! Zoho's rules (wave2-facts.md §2, accounts doc "Token limits"): an access token lives 3600 s;
//! a refresh token mints at most 10 access tokens per 10 minutes. So:
//!
//! - a token is reused until `refresh_margin` before it expires, first from memory, then from
//!   the store (another daemon or an earlier run may have minted it);
//! - one refresh per tenant at a time: the per-tenant async mutex is held across the refresh,
//!   so concurrent callers wait and then share its result (single flight);
//! - every mint is recorded in the store (`token_grants`), shared by all daemons; at 10 within
//!   10 minutes we refuse to ask Zoho and report when the next one is allowed;
//! - `invalid_code`/`invalid_grant` on refresh means the refresh token is dead: the tenant is
//!   marked disconnected (one log line, by whichever caller changed the state).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use store::{NewSecret, ZohoStatus};
use vault::{Owner, Plaintext, Sealed};

use super::oauth::{TOO_MANY_WAIT, TokenFailure};
use super::{ACCESS_TOKEN, REFRESH_TOKEN, Zoho, ZohoError};

/// Zoho's limit: this many access tokens …
pub const TOKEN_LIMIT: usize = 10;
/// … per this window, per refresh token.
pub const TOKEN_WINDOW_MS: i64 = 10 * 60 * 1000;

/// An access token ready to use, with where to use it.
pub struct AccessToken {
    token: Plaintext,
    pub api_domain: String,
    pub expires_at: i64,
}

impl AccessToken {
    /// The `Authorization` header value: `Zoho-oauthtoken <token>` (the scheme every Zoho API
    /// takes, wave2-facts.md §2).
    pub(crate) fn header(&self) -> String {
        format!("Zoho-oauthtoken {}", self.token.expose())
    }

    pub(crate) fn same_as(&self, other: &str) -> bool {
        self.token.expose() == other
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("api_domain", &self.api_domain)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Per-tenant slots; each holds the cached token behind an async mutex.
#[derive(Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<store::TenantId, Arc<tokio::sync::Mutex<Option<Cached>>>>>,
}

struct Cached {
    /// Wiped when replaced or dropped.
    token: Plaintext,
    api_domain: String,
    expires_at: i64,
}

impl TokenCache {
    fn slot(&self, tenant_id: &store::TenantId) -> Arc<tokio::sync::Mutex<Option<Cached>>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(tenant_id.clone()).or_default().clone()
    }

    /// Drops what is cached for a tenant (after a reconnect).
    pub(crate) fn forget(&self, tenant_id: &store::TenantId) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.remove(tenant_id);
    }
}

impl Zoho {
    /// A valid access token for the tenant, refreshing it if needed (see the module docs).
    pub async fn access_token(
        &self,
        tenant_id: &store::TenantId,
    ) -> Result<AccessToken, ZohoError> {
        let slot = self.inner.tokens.slot(tenant_id);
        let mut cached = slot.lock().await;
        let margin = self.inner.config.refresh_margin.as_millis() as i64;
        let now = self.now();
        if let Some(c) = cached.as_ref().filter(|c| c.expires_at - margin > now) {
            return Ok(AccessToken {
                token: self.plain(c.token.expose()),
                api_domain: c.api_domain.clone(),
                expires_at: c.expires_at,
            });
        }
        let store = &self.inner.store;
        let conn = store
            .zoho_connection(tenant_id)
            .await?
            .ok_or(ZohoError::NotConnected)?;
        match conn.status {
            ZohoStatus::Connected => {}
            ZohoStatus::Pending => return Err(ZohoError::NotConnected),
            ZohoStatus::Disconnected => {
                return Err(ZohoError::Disconnected {
                    reason: conn.status_reason.unwrap_or_default(),
                });
            }
        }
        let api_domain = conn.api_domain.clone().ok_or(ZohoError::NotConnected)?;
        let keyring = &self.inner.keyring;
        // Minted elsewhere (another daemon, an earlier process) and still good?
        if let Some(expires_at) = conn.access_expires_at.filter(|t| t - margin > now)
            && let Some(stored) = store.secret(tenant_id, ACCESS_TOKEN).await?
        {
            let plain = keyring.open(
                &sealed(&stored),
                Owner::new(tenant_id.as_str(), ACCESS_TOKEN),
            )?;
            *cached = Some(Cached {
                token: self.plain(plain.expose()),
                api_domain: api_domain.clone(),
                expires_at,
            });
            return Ok(AccessToken {
                token: plain,
                api_domain,
                expires_at,
            });
        }

        let mut grants: Vec<i64> = conn
            .token_grants
            .iter()
            .copied()
            .filter(|t| *t > now - TOKEN_WINDOW_MS)
            .collect();
        if grants.len() >= TOKEN_LIMIT {
            let oldest = grants.iter().min().copied().unwrap_or(now);
            let wait = (oldest + TOKEN_WINDOW_MS - now).max(1000);
            return Err(ZohoError::RefreshLimited {
                retry_after: Duration::from_millis(wait as u64),
            });
        }
        let refresh = store
            .secret(tenant_id, REFRESH_TOKEN)
            .await?
            .ok_or(ZohoError::NotConnected)?;
        let refresh = keyring.open(
            &sealed(&refresh),
            Owner::new(tenant_id.as_str(), REFRESH_TOKEN),
        )?;
        let cfg = &self.inner.config;
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", cfg.client_id.as_str()),
            ("client_secret", cfg.client_secret.expose()),
            ("refresh_token", refresh.expose()),
        ];
        let minted_at = self.now();
        let answer = self
            .token_request(conn.accounts_server.trim_end_matches('/'), &form)
            .await;
        let token = match answer {
            Ok(t) => t,
            Err(TokenFailure::Revoked(error)) => {
                let reason = format!("refresh token rejected by Zoho: {error}");
                if store
                    .mark_zoho_disconnected(tenant_id, &reason, self.now())
                    .await?
                {
                    tracing::error!(
                        tenant_id = %tenant_id,
                        error,
                        "zoho refresh token revoked or expired: integration disconnected; \
                         reconnect with `agent zoho connect`"
                    );
                }
                *cached = None;
                return Err(ZohoError::RefreshRevoked { error });
            }
            Err(TokenFailure::BadClient(error)) => return Err(ZohoError::BadClient { error }),
            Err(TokenFailure::TooMany(_)) => {
                // Zoho counts the refused request too; remember it so every daemon backs off.
                grants.push(minted_at);
                store
                    .set_zoho_token_grants(tenant_id, &grants, self.now())
                    .await?;
                return Err(ZohoError::RefreshLimited {
                    retry_after: TOO_MANY_WAIT,
                });
            }
            Err(TokenFailure::Other(e)) => return Err(e),
        };
        let Some(access) = token.access_token else {
            return Err(ZohoError::Protocol {
                what: "token response",
                detail: "no access_token".into(),
            });
        };
        let access = Plaintext::new(access);
        // A refresh answer may name the API domain again; the stored one stays authoritative
        // unless Zoho moved the account.
        let api_domain = token
            .api_domain
            .map(|d| d.trim_end_matches('/').to_owned())
            .unwrap_or(api_domain);
        let expires_at = minted_at + token.expires_in.unwrap_or(3600) * 1000;
        grants.push(minted_at);
        let sealed_access = keyring.seal(
            access.expose(),
            Owner::new(tenant_id.as_str(), ACCESS_TOKEN),
        );
        let saved = store
            .save_zoho_access_token(
                tenant_id,
                &NewSecret {
                    purpose: ACCESS_TOKEN.to_owned(),
                    key_id: sealed_access.key_id,
                    ciphertext: sealed_access.ciphertext,
                },
                expires_at,
                &grants,
                self.now(),
            )
            .await?;
        if !saved {
            return Err(ZohoError::NotConnected);
        }
        tracing::debug!(tenant_id = %tenant_id, expires_at, "zoho access token refreshed");
        *cached = Some(Cached {
            token: self.plain(access.expose()),
            api_domain: api_domain.clone(),
            expires_at,
        });
        Ok(AccessToken {
            token: self.plain(access.expose()),
            api_domain,
            expires_at,
        })
    }

    /// Forgets a token Zoho rejected (401 INVALID_TOKEN), unless a newer one replaced it
    /// meanwhile, so the next [`Zoho::access_token`] refreshes.
    pub async fn invalidate_access_token(
        &self,
        tenant_id: &store::TenantId,
        rejected: &AccessToken,
    ) -> Result<(), ZohoError> {
        let slot = self.inner.tokens.slot(tenant_id);
        let mut cached = slot.lock().await;
        if cached
            .as_ref()
            .is_some_and(|c| !rejected.same_as(c.token.expose()))
        {
            return Ok(());
        }
        *cached = None;
        // The stored copy is the same rejected token unless another daemon replaced it.
        if let Some(stored) = self.inner.store.secret(tenant_id, ACCESS_TOKEN).await?
            && let Ok(plain) = self.inner.keyring.open(
                &sealed(&stored),
                Owner::new(tenant_id.as_str(), ACCESS_TOKEN),
            )
            && rejected.same_as(plain.expose())
        {
            self.inner
                .store
                .delete_secret(tenant_id, ACCESS_TOKEN)
                .await?;
        }
        Ok(())
    }

    fn plain(&self, token: &str) -> Plaintext {
        Plaintext::new(token.to_owned())
    }
}

fn sealed(stored: &store::StoredSecret) -> Sealed {
    Sealed {
        key_id: stored.key_id.clone(),
        ciphertext: stored.ciphertext.clone(),
    }
}
