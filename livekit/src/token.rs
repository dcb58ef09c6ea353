//! LiveKit access tokens: HS256 JWTs signed with the API secret.
//!
//! The claim set follows `livekit/protocol:auth/grants.go` (`ClaimGrants`, `VideoGrant`,
//! `SIPGrant`) and `auth/verifier.go`: `iss` is the API key, `sub` the participant identity,
//! `nbf`/`exp` unix seconds, grants under `video` and `sip` with camelCase names. The server
//! checks the signature with the secret it holds for `iss`, then `nbf`/`exp`.
//!
//! Minted by hand (HMAC-SHA256 over `base64url(header).base64url(claims)`) rather than with
//! `livekit-api`: the releases built on prost 0.14 are what the rest of the crate needs, and a
//! JWT is a few lines; the fake server uses [`verify`] from here too.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// An API key and its secret. The secret never appears in `Debug` output.
#[derive(Clone)]
pub struct Credentials {
    pub api_key: String,
    api_secret: String,
}

impl Credentials {
    pub fn new(api_key: impl Into<String>, api_secret: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
        }
    }

    /// The secret, for signing and verifying.
    pub fn api_secret(&self) -> &str {
        &self.api_secret
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &self.api_key)
            .field("api_secret", &"<redacted>")
            .finish()
    }
}

/// `video` grants (`VideoGrant` in grants.go). Only what this crate and its fake use are
/// typed; absent flags are omitted from the JSON, as the Go struct's `omitempty` does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGrants {
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_create: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_list: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_admin: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_join: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub room: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish_data: Option<bool>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
    /// Lets the bearer connect to `/agent` as a worker (`agentservice.go` refuses without it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub agent: bool,
}

/// `sip` grants (`SIPGrant` in grants.go).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipGrants {
    #[serde(default, skip_serializing_if = "is_false")]
    pub admin: bool,
    /// Needed by `CreateSIPParticipant` and `TransferSIPParticipant`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub call: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The JWT claims.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The API key.
    pub iss: String,
    /// The participant identity.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub: String,
    pub nbf: u64,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoGrants>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip: Option<SipGrants>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Claims {
    /// The `video` grants, or all-false ones when absent.
    pub fn video(&self) -> VideoGrants {
        self.video.clone().unwrap_or_default()
    }

    /// The `sip` grants, or all-false ones when absent.
    pub fn sip(&self) -> SipGrants {
        self.sip.clone().unwrap_or_default()
    }
}

/// Builds and signs a token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    claims: Claims,
    ttl: Duration,
}

/// Default validity of a minted token.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10 * 60);

impl AccessToken {
    /// A token issued by `api_key` for `identity` (may be empty for server API calls).
    pub fn new(api_key: &str, identity: &str) -> Self {
        Self {
            claims: Claims {
                iss: api_key.to_owned(),
                sub: identity.to_owned(),
                ..Claims::default()
            },
            ttl: DEFAULT_TTL,
        }
    }

    /// The worker token for `/agent`: `video.agent = true`.
    pub fn for_agent_worker(api_key: &str) -> Self {
        Self::new(api_key, "").with_video(VideoGrants {
            agent: true,
            ..VideoGrants::default()
        })
    }

    /// A token for the SIP API: `sip.call`, plus `roomJoin`/`roomAdmin` on `room` (transfer
    /// needs `roomAdmin` on the participant's room, `livekit/livekit:pkg/service/sip.go`).
    pub fn for_sip_call(api_key: &str, room: &str) -> Self {
        Self::new(api_key, "")
            .with_video(VideoGrants {
                room_join: true,
                room_admin: true,
                room: room.to_owned(),
                ..VideoGrants::default()
            })
            .with_sip(SipGrants {
                call: true,
                ..SipGrants::default()
            })
    }

    /// A token for a participant joining `room`.
    pub fn for_room_join(api_key: &str, identity: &str, room: &str) -> Self {
        Self::new(api_key, identity).with_video(VideoGrants {
            room_join: true,
            room: room.to_owned(),
            can_publish: Some(true),
            can_subscribe: Some(true),
            can_publish_data: Some(true),
            ..VideoGrants::default()
        })
    }

    pub fn with_video(mut self, video: VideoGrants) -> Self {
        self.claims.video = Some(video);
        self
    }

    pub fn with_sip(mut self, sip: SipGrants) -> Self {
        self.claims.sip = Some(sip);
        self
    }

    pub fn with_name(mut self, name: &str) -> Self {
        self.claims.name = name.to_owned();
        self
    }

    pub fn with_metadata(mut self, metadata: &str) -> Self {
        self.claims.metadata = metadata.to_owned();
        self
    }

    pub fn with_attributes(mut self, attributes: BTreeMap<String, String>) -> Self {
        self.claims.attributes = attributes;
        self
    }

    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Signs with `secret`, valid from now for the TTL.
    pub fn sign(&self, secret: &str) -> String {
        self.sign_at(secret, unix_now())
    }

    /// Signs with `secret`, valid from `now` (unix seconds) for the TTL.
    pub fn sign_at(&self, secret: &str, now: u64) -> String {
        let mut claims = self.claims.clone();
        claims.nbf = now;
        claims.exp = now.saturating_add(self.ttl.as_secs());
        encode(&claims, secret)
    }
}

/// Encodes and signs `claims` as-is (tests use this for expired or forged tokens).
pub fn encode(claims: &Claims, secret: &str) -> String {
    // serde_json cannot fail on these types (string keys, no floats).
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload);
    let signing_input = format!("{header}.{body}");
    let signature = URL_SAFE_NO_PAD.encode(
        mac(secret, signing_input.as_bytes())
            .finalize()
            .into_bytes(),
    );
    format!("{signing_input}.{signature}")
}

fn mac(secret: &str, data: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(data);
    mac
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("token is not three base64url parts")]
    Malformed,
    #[error("token header is not HS256 JWT")]
    UnsupportedAlgorithm,
    #[error("token claims are not valid JSON: {0}")]
    Claims(String),
    #[error("unknown API key")]
    UnknownKey,
    #[error("token signature does not match")]
    BadSignature,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("token expired")]
    Expired,
}

/// Leeway for clock differences when checking `nbf`/`exp`.
const CLOCK_LEEWAY_SECS: u64 = 10;

/// Verifies `token` against the secret `secret_for(iss)` returns and checks its validity at
/// `now` (unix seconds). Returns the claims.
pub fn verify(
    token: &str,
    secret_for: impl Fn(&str) -> Option<String>,
    now: u64,
) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(body), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header_json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    let header_value: serde_json::Value =
        serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
    if header_value.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    let body_json = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| TokenError::Malformed)?;
    let claims: Claims =
        serde_json::from_slice(&body_json).map_err(|e| TokenError::Claims(e.to_string()))?;
    let secret = secret_for(&claims.iss).ok_or(TokenError::UnknownKey)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let signing_input = &token[..header.len() + 1 + body.len()];
    mac(&secret, signing_input.as_bytes())
        .verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    if claims.nbf > now.saturating_add(CLOCK_LEEWAY_SECS) {
        return Err(TokenError::NotYetValid);
    }
    if claims.exp.saturating_add(CLOCK_LEEWAY_SECS) < now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// Seconds since the unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_for(key: &str) -> Option<String> {
        (key == "key").then(|| "secret".to_owned())
    }

    #[test]
    fn agent_token_round_trips_with_the_wire_claim_names() {
        let token = AccessToken::for_agent_worker("key").sign_at("secret", 1000);
        let claims = verify(&token, secret_for, 1000).expect("valid");
        assert!(claims.video().agent);
        assert_eq!(claims.iss, "key");
        assert_eq!(claims.exp, 1000 + DEFAULT_TTL.as_secs());
        let body = token.split('.').nth(1).expect("body");
        let json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).expect("b64")).expect("json");
        assert_eq!(json["video"], serde_json::json!({"agent": true}));
    }

    #[test]
    fn sip_token_carries_call_and_room_admin() {
        let token = AccessToken::for_sip_call("key", "room-1").sign_at("secret", 1000);
        let body = token.split('.').nth(1).expect("body");
        let json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).expect("b64")).expect("json");
        assert_eq!(json["sip"], serde_json::json!({"call": true}));
        assert_eq!(
            json["video"],
            serde_json::json!({"roomAdmin": true, "roomJoin": true, "room": "room-1"})
        );
    }

    #[test]
    fn bad_tokens_are_refused_with_the_reason() {
        let token = AccessToken::for_agent_worker("key").sign_at("secret", 1000);
        assert_eq!(
            verify(&token, |_| Some("other".into()), 1000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(&token, |_| None, 1000), Err(TokenError::UnknownKey));
        assert_eq!(verify(&token, secret_for, 5000), Err(TokenError::Expired));
        assert_eq!(
            verify(&token, secret_for, 500),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(verify("a.b", secret_for, 1000), Err(TokenError::Malformed));
        let mut tampered = token.clone();
        tampered.insert(token.find('.').expect("dot") + 3, 'x');
        assert!(verify(&tampered, secret_for, 1000).is_err());
    }
}
