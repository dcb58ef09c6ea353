//! OAuth 2.0 with Zoho Accounts (wave2-facts.md §2; https://www.zoho.com/accounts/protocol/oauth/web-apps/authorization.html,
//! https://www.zoho.com/crm/developer/docs/api/v8/multi-dc.html):
//!
//! - authorize: `GET {accounts}/oauth/v2/auth?scope=…&client_id=…&response_type=code&
//!   access_type=offline&prompt=consent&redirect_uri=…&state=…` (`prompt=consent` so Zoho
//!   issues a refresh token even when the user consented before);
//! - the redirect carries `code`, `location` and `accounts-server`;
//! - token: `POST {accounts-server}/oauth/v2/token` with `grant_type=authorization_code|
//!   refresh_token`, `client_id`, `client_secret`, `redirect_uri`, `code`/`refresh_token`, answered
//!   with `access_token`, `refresh_token` (first exchange only), `api_domain`, `token_type`,
//!   `expires_in` (3600). Zoho reports failures as HTTP 200 with `{"error": "invalid_code"}`,
//!   so the body decides, not the status.

use std::time::Duration;

use serde::Deserialize;
use store::{NewSecret, ZohoConnect};
use vault::Owner;

use super::{ACCESS_TOKEN, DataCenter, REFRESH_TOKEN, Zoho, ZohoError};

/// A started authorization: send the user to `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub url: String,
    /// Must come back with the code (checked by [`Zoho::complete_authorization`] when given).
    pub state: String,
    pub dc: DataCenter,
    pub expires_at: i64,
}

/// A completed connection (no tokens: they are stored encrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    pub dc: DataCenter,
    pub accounts_server: String,
    pub api_domain: String,
    pub access_expires_at: i64,
}

/// What the token endpoint answered.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub api_domain: Option<String>,
    pub expires_in: Option<i64>,
    pub error: Option<String>,
}

/// How a token request failed.
pub(crate) enum TokenFailure {
    /// `invalid_code` / `invalid_grant`: the code or refresh token is dead.
    Revoked(String),
    /// `invalid_client` and friends.
    BadClient(String),
    /// Zoho's "too many requests" answer (`Access Denied`).
    TooMany(String),
    Other(ZohoError),
}

impl Zoho {
    /// Starts connecting `tenant_id` to Zoho in `dc`: records a fresh `state` and returns the
    /// URL to open. The tenant keeps any working connection until the new one completes.
    pub async fn start_authorization(
        &self,
        tenant_id: &store::TenantId,
        dc: DataCenter,
    ) -> Result<Authorization, ZohoError> {
        let cfg = &self.inner.config;
        let accounts = cfg.accounts_server(dc).trim_end_matches('/').to_owned();
        let state = random_state();
        let now = self.now();
        let expires_at = now + cfg.authorization_ttl.as_millis() as i64;
        let mut url = url::Url::parse(&format!("{accounts}/oauth/v2/auth")).map_err(|e| {
            ZohoError::Protocol {
                what: "accounts server url",
                detail: e.to_string(),
            }
        })?;
        url.query_pairs_mut()
            .append_pair("scope", &cfg.scopes.join(","))
            .append_pair("client_id", &cfg.client_id)
            .append_pair("response_type", "code")
            .append_pair("access_type", "offline")
            .append_pair("prompt", "consent")
            .append_pair("redirect_uri", &cfg.redirect_uri)
            .append_pair("state", &state);
        self.inner
            .store
            .start_zoho_authorization(tenant_id, dc.as_str(), &accounts, &state, expires_at, now)
            .await?;
        Ok(Authorization {
            url: url.into(),
            state,
            dc,
            expires_at,
        })
    }

    /// Exchanges an authorization code. `accounts_server` is the redirect's `accounts-server`
    /// (it must be a Zoho accounts server, or a configured override); without it the server of
    /// the started authorization's DC is used, or `dc`. `state`, when given, must be the one
    /// [`Zoho::start_authorization`] issued and not expired (the admin API always gives it; the
    /// operator's CLI may not).
    pub async fn complete_authorization(
        &self,
        tenant_id: &store::TenantId,
        code: &str,
        state: Option<&str>,
        accounts_server: Option<&str>,
        dc: Option<DataCenter>,
    ) -> Result<Connected, ZohoError> {
        let cfg = &self.inner.config;
        let now = self.now();
        let pending = self.inner.store.zoho_connection(tenant_id).await?;
        if let Some(state) = state {
            let ok = pending.as_ref().is_some_and(|c| {
                c.pending_state.as_deref() == Some(state)
                    && c.pending_expires_at.is_some_and(|t| t >= now)
            });
            if !ok {
                return Err(ZohoError::BadState);
            }
        }
        let dc = match accounts_server {
            Some(url) => {
                cfg.dc_of_accounts_server(url)
                    .ok_or_else(|| ZohoError::UnknownAccountsServer {
                        url: url.to_owned(),
                    })?
            }
            None => match (dc, pending.as_ref().and_then(|c| c.dc.parse().ok())) {
                (Some(dc), _) | (None, Some(dc)) => dc,
                (None, None) => DataCenter::Us,
            },
        };
        let accounts = cfg.accounts_server(dc).trim_end_matches('/').to_owned();
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", cfg.client_id.as_str()),
            ("client_secret", cfg.client_secret.expose()),
            ("redirect_uri", cfg.redirect_uri.as_str()),
            ("code", code.trim()),
        ];
        let granted_at = self.now();
        let token = match self.token_request(&accounts, &form).await {
            Ok(t) => t,
            Err(TokenFailure::Revoked(e)) | Err(TokenFailure::TooMany(e)) => {
                return Err(ZohoError::CodeRejected { error: e });
            }
            Err(TokenFailure::BadClient(e)) => return Err(ZohoError::BadClient { error: e }),
            Err(TokenFailure::Other(e)) => return Err(e),
        };
        let (Some(access), Some(refresh)) = (token.access_token, token.refresh_token) else {
            return Err(ZohoError::Protocol {
                what: "token response",
                detail: "no access_token or refresh_token (was prompt=consent lost?)".into(),
            });
        };
        let api_domain = token
            .api_domain
            .map(|d| d.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| dc.api_domain().to_owned());
        url::Url::parse(&api_domain).map_err(|e| ZohoError::Protocol {
            what: "api_domain",
            detail: e.to_string(),
        })?;
        let expires_at = granted_at + token.expires_in.unwrap_or(3600) * 1000;
        let keyring = &self.inner.keyring;
        let seal = |purpose: &str, text: &str| {
            let sealed = keyring.seal(text, Owner::new(tenant_id.as_str(), purpose));
            NewSecret {
                purpose: purpose.to_owned(),
                key_id: sealed.key_id,
                ciphertext: sealed.ciphertext,
            }
        };
        let connect = ZohoConnect {
            dc: dc.as_str().to_owned(),
            accounts_server: accounts.clone(),
            api_domain: api_domain.clone(),
            access_expires_at: expires_at,
            granted_at,
            secrets: vec![seal(REFRESH_TOKEN, &refresh), seal(ACCESS_TOKEN, &access)],
        };
        self.inner
            .store
            .save_zoho_connection(tenant_id, &connect, now)
            .await?;
        self.inner.tokens.forget(tenant_id);
        tracing::info!(tenant_id = %tenant_id, dc = %dc, api_domain, "zoho connected");
        Ok(Connected {
            dc,
            accounts_server: accounts,
            api_domain,
            access_expires_at: expires_at,
        })
    }

    /// One call to the token endpoint; the body decides success (see the module docs).
    pub(crate) async fn token_request(
        &self,
        accounts: &str,
        form: &[(&str, &str)],
    ) -> Result<TokenResponse, TokenFailure> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .inner
            .http
            .post(format!("{accounts}/oauth/v2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|source| TokenFailure::Other(ZohoError::Network { source }))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| TokenFailure::Other(ZohoError::Network { source }))?;
        let parsed: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| {
            TokenFailure::Other(if status == 429 || status >= 500 {
                ZohoError::Api {
                    status,
                    code: "token_endpoint".into(),
                    message: "the accounts server is unavailable".into(),
                }
            } else {
                ZohoError::Protocol {
                    what: "token response",
                    detail: format!("HTTP {status}, not JSON"),
                }
            })
        })?;
        if let Some(error) = parsed.error.clone() {
            return Err(match error.as_str() {
                "invalid_code" | "invalid_grant" | "invalid_refresh_token" => {
                    TokenFailure::Revoked(error)
                }
                "invalid_client"
                | "invalid_client_secret"
                | "invalid_redirect_uri"
                | "unauthorized_client" => TokenFailure::BadClient(error),
                // Zoho's answer to too many token requests: {"error": "Access Denied",
                // "error_description": "You have made too many requests continuously…"}.
                "Access Denied" => TokenFailure::TooMany(error),
                _ => TokenFailure::Other(ZohoError::Api {
                    status,
                    code: error,
                    message: "token endpoint error".into(),
                }),
            });
        }
        if status == 429 || status >= 500 {
            return Err(TokenFailure::Other(ZohoError::Api {
                status,
                code: "token_endpoint".into(),
                message: "the accounts server is unavailable".into(),
            }));
        }
        if parsed.access_token.is_none() {
            return Err(TokenFailure::Other(ZohoError::Protocol {
                what: "token response",
                detail: format!("HTTP {status} without access_token"),
            }));
        }
        Ok(parsed)
    }
}

/// 128 random bits, hex: the OAuth `state`.
fn random_state() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How long to wait after Zoho refused a token for the rate limit.
pub(crate) const TOO_MANY_WAIT: Duration = Duration::from_secs(60);
