//! Standard Webhooks signature verification (what Dodo Payments sends).
//!
//! Spec: standard-webhooks/standard-webhooks `spec/standard-webhooks.md` — the signed content
//! is `msg_id.timestamp.payload` (line 143); the secret is 24–64 random bytes, serialised as
//! base64 after a `whsec_` prefix (lines 174-175); `webhook-signature` is a space-delimited
//! list of `v1,<base64 HMAC-SHA256>` entries, any of which may match (lines 194, 215-224).
//! Tolerance: the reference Rust library rejects `now − ts > 300 s` and `ts > now + 300 s`
//! (`libraries/rust/src/lib.rs:58`). Dodo: docs.dodopayments.com/developer-resources/webhooks.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Seconds a timestamp may differ from now, both ways.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// A webhook signing secret (the bytes behind `whsec_…`). `Debug` never shows it.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Why a delivery was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    #[error("the webhook secret is not `whsec_` followed by base64")]
    BadSecret,
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is more than {TOLERANCE_SECS} s old")]
    TooOld,
    #[error("webhook-timestamp is more than {TOLERANCE_SECS} s in the future")]
    TooNew,
    #[error("no signature matches")]
    NoMatch,
}

impl WebhookSecret {
    /// Parses `whsec_<base64>` (the prefix is optional, as in the reference libraries).
    pub fn parse(text: &str) -> Result<WebhookSecret, WebhookError> {
        let b64 = text.trim().strip_prefix("whsec_").unwrap_or(text.trim());
        let bytes = STANDARD.decode(b64).map_err(|_| WebhookError::BadSecret)?;
        if bytes.is_empty() {
            return Err(WebhookError::BadSecret);
        }
        Ok(WebhookSecret(bytes))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }

    /// The `v1,…` signature of a delivery (for tests and fakes of senders).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// Checks a delivery: the timestamp within [`TOLERANCE_SECS`] of `now_secs`, and one of
    /// the space-separated `v1` signatures matching (compared in constant time).
    pub fn verify(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signatures: Option<&str>,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), WebhookError> {
        let id = id.ok_or(WebhookError::MissingHeader("webhook-id"))?;
        let ts_text = timestamp.ok_or(WebhookError::MissingHeader("webhook-timestamp"))?;
        let signatures = signatures.ok_or(WebhookError::MissingHeader("webhook-signature"))?;
        let ts: i64 = ts_text
            .trim()
            .parse()
            .map_err(|_| WebhookError::BadTimestamp)?;
        if now_secs.saturating_sub(ts) > TOLERANCE_SECS {
            return Err(WebhookError::TooOld);
        }
        if ts > now_secs.saturating_add(TOLERANCE_SECS) {
            return Err(WebhookError::TooNew);
        }
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(ts_text.trim().as_bytes());
        mac.update(b".");
        mac.update(body);
        for entry in signatures.split(' ') {
            let Some((version, sig)) = entry.split_once(',') else {
                continue;
            };
            if version != "v1" {
                continue;
            }
            let Ok(sig) = STANDARD.decode(sig) else {
                continue;
            };
            // verify_slice compares in constant time.
            if mac.clone().verify_slice(&sig).is_ok() {
                return Ok(());
            }
        }
        Err(WebhookError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the spec's reference implementations (svix test vectors).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_reference_vector_verifies() {
        let s = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(s.sign(ID, TS, BODY), SIG);
        let ts = TS.to_string();
        assert_eq!(s.verify(Some(ID), Some(&ts), Some(SIG), BODY, TS), Ok(()));
        let several = format!("v1,bm9wZQ== v2,abc {SIG}");
        assert_eq!(
            s.verify(Some(ID), Some(&ts), Some(&several), BODY, TS + 299),
            Ok(())
        );
    }

    #[test]
    fn tampering_and_stale_timestamps_fail() {
        let s = WebhookSecret::parse(SECRET).unwrap();
        let ts = TS.to_string();
        let bad = |r| assert!(r != Ok(()));
        bad(s.verify(Some(ID), Some(&ts), Some(SIG), b"{}", TS));
        bad(s.verify(Some("msg_other"), Some(&ts), Some(SIG), BODY, TS));
        assert_eq!(
            s.verify(Some(ID), Some(&ts), Some(SIG), BODY, TS + 301),
            Err(WebhookError::TooOld)
        );
        assert_eq!(
            s.verify(Some(ID), Some(&ts), Some(SIG), BODY, TS - 301),
            Err(WebhookError::TooNew)
        );
        assert_eq!(
            s.verify(Some(ID), Some("soon"), Some(SIG), BODY, TS),
            Err(WebhookError::BadTimestamp)
        );
        assert_eq!(
            s.verify(None, Some(&ts), Some(SIG), BODY, TS),
            Err(WebhookError::MissingHeader("webhook-id"))
        );
        let other = WebhookSecret::parse("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0").unwrap();
        assert_eq!(
            other.verify(Some(ID), Some(&ts), Some(SIG), BODY, TS),
            Err(WebhookError::NoMatch)
        );
        assert!(WebhookSecret::parse("whsec_***").is_err());
        assert!(!format!("{s:?}").contains("MfKQ"));
    }
}
