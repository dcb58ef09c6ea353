//! HTTP Digest authentication, client side, as SIP uses it (RFC 3261 §22, RFC 2617, RFC 7616,
//! RFC 8760): MD5, SHA-256 and SHA-512/256, each also as `-sess`; `qop=auth` and `auth-int`
//! with cnonce and nonce-count, or no qop (RFC 2069 compatibility).
//!
//! [`DigestClient`] keeps the challenges a server sent and answers them; it tells a fresh
//! challenge (new nonce, or `stale=true`) from a repeated one, which means the credentials were
//! refused. It is sans-IO: the caller supplies the cnonce.
//!
//! Not supported: `userhash=true` (the username is sent in clear), `auth-int` is answered only
//! when `auth` is not offered.

use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};
use thiserror::Error;

use crate::message::{AuthHeader, Method, Response};

/// A username and password for one realm (or any realm when `realm` is `None`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Only answer challenges for this realm.
    pub realm: Option<String>,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            realm: None,
        }
    }

    fn accepts(&self, realm: &str) -> bool {
        self.realm.as_deref().is_none_or(|r| r == realm)
    }
}

impl fmt::Debug for Credentials {
    /// The password never appears in Debug output (and so never in logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("realm", &self.realm)
            .finish()
    }
}

/// Digest hash algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
    Sha512_256,
    Sha512_256Sess,
}

impl DigestAlgorithm {
    /// Parses the `algorithm` parameter (absent means MD5).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "MD5" => Self::Md5,
            "MD5-SESS" => Self::Md5Sess,
            "SHA-256" => Self::Sha256,
            "SHA-256-SESS" => Self::Sha256Sess,
            "SHA-512-256" => Self::Sha512_256,
            "SHA-512-256-SESS" => Self::Sha512_256Sess,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
            Self::Sha512_256 => "SHA-512-256",
            Self::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    fn is_sess(self) -> bool {
        matches!(
            self,
            Self::Md5Sess | Self::Sha256Sess | Self::Sha512_256Sess
        )
    }

    /// Lowercase hex of the hash of `data`.
    fn hex(self, data: &[u8]) -> String {
        fn to_hex(bytes: &[u8]) -> String {
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
        match self {
            Self::Md5 | Self::Md5Sess => to_hex(&Md5::digest(data)),
            Self::Sha256 | Self::Sha256Sess => to_hex(&Sha256::digest(data)),
            Self::Sha512_256 | Self::Sha512_256Sess => to_hex(&Sha512_256::digest(data)),
        }
    }
}

/// Quality of protection chosen for a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    Auth,
    AuthInt,
}

/// One Digest challenge (a WWW-Authenticate or Proxy-Authenticate value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// From Proxy-Authenticate (answered with Proxy-Authorization).
    pub proxy: bool,
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: DigestAlgorithm,
    /// The qop we will use; `None` when the server offered none (RFC 2069 style).
    pub qop: Option<Qop>,
    pub stale: bool,
}

/// Why a challenge could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("no Digest challenge we can answer (scheme, algorithm or qop unsupported)")]
    NoUsableChallenge,
    #[error("no credentials for realm {realm:?}")]
    NoCredentials { realm: String },
    #[error("credentials refused for realm {realm:?} (challenged again with the same nonce)")]
    Rejected { realm: String },
    #[error("too many consecutive challenges")]
    TooManyChallenges,
}

impl Challenge {
    /// Reads a challenge header; `None` for other schemes, unknown algorithms or qop values.
    pub fn from_header(h: &AuthHeader, proxy: bool) -> Option<Self> {
        if !h.scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let algorithm = match h.param("algorithm") {
            None => DigestAlgorithm::Md5,
            Some(a) => DigestAlgorithm::parse(a)?,
        };
        let qop = match h.param("qop") {
            None => None,
            Some(list) => {
                let opts: Vec<String> = list
                    .split(',')
                    .map(|q| q.trim().to_ascii_lowercase())
                    .collect();
                if opts.iter().any(|q| q == "auth") {
                    Some(Qop::Auth)
                } else if opts.iter().any(|q| q == "auth-int") {
                    Some(Qop::AuthInt)
                } else {
                    return None;
                }
            }
        };
        Some(Self {
            proxy,
            realm: h.param("realm")?.to_owned(),
            nonce: h.param("nonce")?.to_owned(),
            opaque: h.param("opaque").map(str::to_owned),
            algorithm,
            qop,
            stale: h
                .param("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The challenges of a 401/407 we can answer, in the server's order of preference.
    pub fn all_in(resp: &Response) -> Vec<Self> {
        let www = resp.headers.www_authenticate().unwrap_or_default();
        let proxy = resp.headers.proxy_authenticate().unwrap_or_default();
        www.iter()
            .filter_map(|h| Self::from_header(h, false))
            .chain(proxy.iter().filter_map(|h| Self::from_header(h, true)))
            .collect()
    }
}

/// The inputs of one Digest response computation.
#[derive(Debug, Clone, Copy)]
pub struct DigestInput<'a> {
    pub method: &'a str,
    /// The digest-uri (the Request-URI as sent).
    pub uri: &'a str,
    pub body: &'a [u8],
    pub cnonce: &'a str,
    /// Nonce count (1 for the first use of a nonce).
    pub nc: u32,
}

/// The `response` value (RFC 7616 §3.4.1; RFC 2617 §3.2.2 for MD5).
pub fn digest_response(ch: &Challenge, creds: &Credentials, input: &DigestInput<'_>) -> String {
    let alg = ch.algorithm;
    let mut ha1 = alg.hex(format!("{}:{}:{}", creds.username, ch.realm, creds.password).as_bytes());
    if alg.is_sess() {
        ha1 = alg.hex(format!("{ha1}:{}:{}", ch.nonce, input.cnonce).as_bytes());
    }
    let ha2 = match ch.qop {
        Some(Qop::AuthInt) => {
            alg.hex(format!("{}:{}:{}", input.method, input.uri, alg.hex(input.body)).as_bytes())
        }
        _ => alg.hex(format!("{}:{}", input.method, input.uri).as_bytes()),
    };
    match ch.qop {
        None => alg.hex(format!("{ha1}:{}:{ha2}", ch.nonce).as_bytes()),
        Some(q) => alg.hex(
            format!(
                "{ha1}:{}:{:08x}:{}:{}:{ha2}",
                ch.nonce,
                input.nc,
                input.cnonce,
                qop_str(q)
            )
            .as_bytes(),
        ),
    }
}

fn qop_str(q: Qop) -> &'static str {
    match q {
        Qop::Auth => "auth",
        Qop::AuthInt => "auth-int",
    }
}

/// The Authorization / Proxy-Authorization value answering `ch`.
pub fn authorization_value(ch: &Challenge, creds: &Credentials, input: &DigestInput<'_>) -> String {
    let response = digest_response(ch, creds, input);
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut v = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
        esc(&creds.username),
        esc(&ch.realm),
        esc(&ch.nonce),
        esc(input.uri),
        ch.algorithm.as_str()
    );
    if let Some(q) = ch.qop {
        v.push_str(&format!(
            ", qop={}, nc={:08x}, cnonce=\"{}\"",
            qop_str(q),
            input.nc,
            esc(input.cnonce)
        ));
    }
    if let Some(o) = &ch.opaque {
        v.push_str(&format!(", opaque=\"{}\"", esc(o)));
    }
    v
}

/// Challenge state for one client (a registration, or one call's INVITEs).
#[derive(Debug, Clone, Default)]
pub struct DigestClient {
    /// Challenges answered on every request, with their nonce counts.
    entries: Vec<(Challenge, u32)>,
    /// Challenges since the last success.
    rounds: u8,
}

/// Consecutive challenges tolerated before giving up (new nonces each time would loop).
const MAX_ROUNDS: u8 = 4;

impl DigestClient {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the challenges of a 401/407 response. `Ok` means: resend the request with
    /// [`DigestClient::authorize`]'s headers.
    pub fn on_challenge(
        &mut self,
        resp: &Response,
        creds: Option<&Credentials>,
    ) -> Result<(), AuthError> {
        let challenges = Challenge::all_in(resp);
        if challenges.is_empty() {
            return Err(AuthError::NoUsableChallenge);
        }
        let Some(creds) = creds else {
            return Err(AuthError::NoCredentials {
                realm: challenges[0].realm.clone(),
            });
        };
        self.rounds += 1;
        if self.rounds > MAX_ROUNDS {
            return Err(AuthError::TooManyChallenges);
        }
        // One challenge per (proxy/www, realm): the first one we support (RFC 7616 §3.7).
        let mut taken: Vec<Challenge> = Vec::new();
        for ch in challenges {
            if taken
                .iter()
                .any(|t| t.proxy == ch.proxy && t.realm == ch.realm)
            {
                continue;
            }
            taken.push(ch);
        }
        let usable: Vec<Challenge> = taken
            .into_iter()
            .filter(|c| creds.accepts(&c.realm))
            .collect();
        if usable.is_empty() {
            return Err(AuthError::NoCredentials {
                realm: Challenge::all_in(resp)
                    .first()
                    .map(|c| c.realm.clone())
                    .unwrap_or_default(),
            });
        }
        for ch in &usable {
            let previous = self
                .entries
                .iter()
                .find(|(e, _)| e.proxy == ch.proxy && e.realm == ch.realm);
            // The same nonce again, not marked stale: the server did not like our answer.
            if previous.is_some_and(|(e, _)| e.nonce == ch.nonce) && !ch.stale {
                return Err(AuthError::Rejected {
                    realm: ch.realm.clone(),
                });
            }
        }
        for ch in usable {
            self.entries
                .retain(|(e, _)| !(e.proxy == ch.proxy && e.realm == ch.realm));
            self.entries.push((ch, 0));
        }
        Ok(())
    }

    /// A final non-challenge response arrived: the credentials worked (or were not needed).
    pub fn on_success(&mut self) {
        self.rounds = 0;
    }

    /// Whether any challenge is held (so requests can carry credentials pre-emptively).
    pub fn has_challenges(&self) -> bool {
        !self.entries.is_empty()
    }

    /// `(header name, value)` pairs answering every held challenge for this request; each
    /// use of a nonce increments its count.
    pub fn authorize(
        &mut self,
        creds: &Credentials,
        method: &Method,
        uri: &str,
        body: &[u8],
        cnonce: &str,
    ) -> Vec<(&'static str, String)> {
        let method = method.as_str();
        self.entries
            .iter_mut()
            .map(|(ch, nc)| {
                *nc = nc.wrapping_add(1);
                let name = if ch.proxy {
                    "Proxy-Authorization"
                } else {
                    "Authorization"
                };
                let input = DigestInput {
                    method,
                    uri,
                    body,
                    cnonce,
                    nc: *nc,
                };
                (name, authorization_value(ch, creds, &input))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{SipMessage, parse_datagram};

    fn challenge(value: &str, proxy: bool) -> Challenge {
        let h = AuthHeader::parse(value, "WWW-Authenticate").unwrap();
        Challenge::from_header(&h, proxy).unwrap()
    }

    fn mufasa() -> Credentials {
        Credentials::new("Mufasa", "Circle of Life")
    }

    #[test]
    fn rfc7616_examples_sha256_and_md5() {
        // RFC 7616 §3.9.1 (the MD5 value is the RFC's too).
        let input = DigestInput {
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            nc: 1,
        };
        let base = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let sha = challenge(&format!("{base}, algorithm=SHA-256"), false);
        assert_eq!(sha.qop, Some(Qop::Auth));
        assert_eq!(
            digest_response(&sha, &mufasa(), &input),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let md5 = challenge(&format!("{base}, algorithm=MD5"), false);
        assert_eq!(
            digest_response(&md5, &mufasa(), &input),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn rfc2617_example_and_no_qop() {
        // RFC 2617 §3.5.
        let ch = challenge(
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
            false,
        );
        let input = DigestInput {
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
            cnonce: "0a4f113b",
            nc: 1,
        };
        // RFC 2617's password differs from RFC 7616's by one capital letter.
        let creds = Credentials::new("Mufasa", "Circle Of Life");
        assert_eq!(
            digest_response(&ch, &creds, &input),
            "6629fae49393a05397450978507c4ef1"
        );
        // Without qop: MD5(HA1:nonce:HA2), checked against an independent computation.
        let plain = challenge(r#"Digest realm="r", nonce="n""#, false);
        let ha1 = DigestAlgorithm::Md5.hex(b"Mufasa:r:Circle of Life");
        let ha2 = DigestAlgorithm::Md5.hex(b"REGISTER:sip:example.com");
        let want = DigestAlgorithm::Md5.hex(format!("{ha1}:n:{ha2}").as_bytes());
        let got = digest_response(
            &plain,
            &mufasa(),
            &DigestInput {
                method: "REGISTER",
                uri: "sip:example.com",
                body: b"",
                cnonce: "x",
                nc: 1,
            },
        );
        assert_eq!(got, want);
        let v = authorization_value(
            &plain,
            &mufasa(),
            &DigestInput {
                method: "REGISTER",
                uri: "sip:example.com",
                body: b"",
                cnonce: "x",
                nc: 1,
            },
        );
        assert!(!v.contains("qop") && !v.contains("nc="));
    }

    #[test]
    fn sess_and_auth_int_and_unknown_algorithms() {
        let ch = challenge(
            r#"Digest realm="r", nonce="n", algorithm=SHA-256-sess, qop="auth-int""#,
            true,
        );
        assert_eq!(ch.qop, Some(Qop::AuthInt));
        let creds = mufasa();
        let input = DigestInput {
            method: "INVITE",
            uri: "sip:bob@b",
            body: b"v=0\r\n",
            cnonce: "c",
            nc: 2,
        };
        let a = DigestAlgorithm::Sha256;
        let ha1 = a.hex(format!("{}:n:c", a.hex(b"Mufasa:r:Circle of Life")).as_bytes());
        let ha2 = a.hex(format!("INVITE:sip:bob@b:{}", a.hex(b"v=0\r\n")).as_bytes());
        let want = a.hex(format!("{ha1}:n:00000002:c:auth-int:{ha2}").as_bytes());
        assert_eq!(digest_response(&ch, &creds, &input), want);
        assert!(
            Challenge::from_header(
                &AuthHeader::parse(r#"Digest realm="r", nonce="n", algorithm=SHA-1"#, "x").unwrap(),
                false
            )
            .is_none()
        );
        assert!(
            Challenge::from_header(
                &AuthHeader::parse(r#"Basic realm="r""#, "x").unwrap(),
                false
            )
            .is_none()
        );
    }

    fn resp(status: u16, header: &str, value: &str) -> Response {
        let raw = format!(
            "SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n{header}: {value}\r\nContent-Length: 0\r\n\r\n"
        );
        match parse_datagram(raw.as_bytes()) {
            Ok(SipMessage::Response(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn client_counts_nonces_and_detects_refusal_and_stale() {
        let creds = Credentials {
            realm: Some("example.com".into()),
            ..mufasa()
        };
        let mut c = DigestClient::new();
        let r401 = resp(
            401,
            "WWW-Authenticate",
            r#"Digest realm="example.com", nonce="abc", qop="auth", algorithm=MD5"#,
        );
        c.on_challenge(&r401, Some(&creds)).unwrap();
        let h = c.authorize(&creds, &Method::Register, "sip:example.com", b"", "cn");
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].0, "Authorization");
        assert!(h[0].1.contains("nc=00000001"));
        let h = c.authorize(&creds, &Method::Register, "sip:example.com", b"", "cn");
        assert!(h[0].1.contains("nc=00000002"), "{}", h[0].1);
        // Same nonce, not stale: refused.
        assert_eq!(
            c.on_challenge(&r401, Some(&creds)),
            Err(AuthError::Rejected {
                realm: "example.com".into()
            })
        );
        // Same nonce marked stale: retry with the new nonce count reset.
        let stale = resp(
            401,
            "WWW-Authenticate",
            r#"Digest realm="example.com", nonce="abc", qop="auth", stale=true"#,
        );
        let mut c2 = DigestClient::new();
        c2.on_challenge(&r401, Some(&creds)).unwrap();
        c2.on_challenge(&stale, Some(&creds)).unwrap();
        let h = c2.authorize(&creds, &Method::Register, "sip:example.com", b"", "cn");
        assert!(h[0].1.contains("nc=00000001"));
        // Realm mismatch and missing credentials.
        let other = resp(
            407,
            "Proxy-Authenticate",
            r#"Digest realm="elsewhere", nonce="z""#,
        );
        assert!(matches!(
            DigestClient::new().on_challenge(&other, Some(&creds)),
            Err(AuthError::NoCredentials { .. })
        ));
        assert!(matches!(
            DigestClient::new().on_challenge(&other, None),
            Err(AuthError::NoCredentials { .. })
        ));
        let mut p = DigestClient::new();
        p.on_challenge(&other, Some(&mufasa())).unwrap();
        let h = p.authorize(&mufasa(), &Method::Invite, "sip:x@y", b"", "c");
        assert_eq!(h[0].0, "Proxy-Authorization");
        // New nonces forever: bounded.
        let mut n = DigestClient::new();
        for i in 0..MAX_ROUNDS {
            let r = resp(
                401,
                "WWW-Authenticate",
                &format!(r#"Digest realm="r", nonce="n{i}""#),
            );
            n.on_challenge(&r, Some(&mufasa())).unwrap();
        }
        let r = resp(401, "WWW-Authenticate", r#"Digest realm="r", nonce="last""#);
        assert_eq!(
            n.on_challenge(&r, Some(&mufasa())),
            Err(AuthError::TooManyChallenges)
        );
    }

    #[test]
    fn debug_never_shows_the_password() {
        let s = format!("{:?}", Credentials::new("alice", "s3cret-pw"));
        assert!(s.contains("alice") && !s.contains("s3cret-pw"));
    }
}
