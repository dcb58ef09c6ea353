//! `[[trunks]]`: the SIP trunks (a carrier, or a proxy in front of one) the daemon registers
//! with, takes calls from and dials through. Values are checked while the file is read, so a
//! bad one is reported with its key (`trunks[1].proxy`), file and line.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::Secret;

/// One trunk. See `config/agent.toml` for a commented example.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(try_from = "RawTrunk")]
pub struct TrunkConfig {
    /// Unique name: `agent dial --trunk NAME`, metrics labels, GET /v1/trunks.
    pub name: String,
    /// Registrar / outbound proxy: `sip:host[:port][;transport=tcp]` or `host[:port]`.
    pub proxy: ProxyAddr,
    /// `udp` or `tcp` (a `;transport=` in `proxy` sets it too).
    pub transport: TrunkTransport,
    /// SIP domain of the account: AOR `sip:username@domain`, dialled numbers
    /// `sip:number@domain`. Empty: the proxy's `host[:port]`.
    pub domain: String,
    /// Digest username (and the AOR user when registering).
    pub username: String,
    /// Digest password (secret: never printed or logged).
    pub password: Secret,
    /// Name of an environment variable holding the password instead (keeps it out of files).
    pub password_env: String,
    /// Only answer challenges for this realm; empty: any realm.
    pub realm: String,
    /// REGISTER with the trunk (refreshed before expiry, retried with backoff, removed on
    /// shutdown).
    pub register: bool,
    /// Registration expiry asked for, seconds (the registrar may grant less).
    pub register_expires: u32,
    /// OPTIONS keepalive interval for health tracking, seconds; 0: none.
    pub keepalive_secs: u64,
    /// Outbound caller ID: the From user of calls placed through this trunk. Empty: username.
    pub from_number: String,
    /// From host of outbound calls. Empty: `domain`.
    pub from_domain: String,
    /// Display name in From of outbound calls.
    pub caller_id_name: String,
    /// Inbound: source networks (CIDR) this trunk's INVITEs come from. When any trunk lists
    /// some, requests from every other source get 403 (counted).
    pub allowed_sources: Vec<Network>,
    /// Inbound: this trunk's caller IDs are trusted (the carrier attests them, or it is a
    /// private line), so flows with `verify = "postal_code_unless_trusted"` read account data
    /// to a caller identified by caller ID alone. Only for calls admitted by
    /// `allowed_sources` (without them no call is known to come from this trunk).
    pub trusted_caller_id: bool,
    /// Outbound: prefixes a dialled number (or user) must start with, e.g. `["+1555"]`;
    /// `["*"]` allows any; empty: nothing may be dialled through this trunk.
    pub allowed_destinations: Vec<String>,
    /// Codecs for calls through this trunk (opus, PCMU, PCMA), preferred first; empty: `sip.codecs`.
    pub codecs: Vec<String>,
}

/// How SIP reaches the trunk.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TrunkTransport {
    #[default]
    Udp,
    Tcp,
}

/// A proxy address as written: host (name or IP literal), optional port and transport.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProxyAddr {
    pub host: String,
    pub port: Option<u16>,
    pub transport: Option<TrunkTransport>,
    text: String,
}

impl ProxyAddr {
    /// `host[:port]` as it goes into a SIP URI (the default domain).
    pub fn hostport(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

impl TryFrom<String> for ProxyAddr {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "{text:?} is not a SIP proxy address ({why}); expected sip:host[:port][;transport=tcp] or host[:port]"
            )
        };
        let t = text.trim();
        let rest = match t.get(..4) {
            Some(s) if s.eq_ignore_ascii_case("sip:") => &t[4..],
            _ if t.contains(':') && t.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("sips:")) => {
                return Err(bad("TLS is not supported"));
            }
            _ => t,
        };
        let mut parts = rest.split(';');
        let hostport = parts.next().unwrap_or("");
        if hostport.contains('@') {
            return Err(bad("no user part"));
        }
        let uri =
            sip::message::Uri::parse(&format!("sip:{hostport}")).map_err(|_| bad("bad host"))?;
        let sip = uri.as_sip().ok_or_else(|| bad("bad host"))?;
        if sip.port == Some(0) {
            return Err(bad("port 0"));
        }
        let mut transport = None;
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match (
                k.trim().to_ascii_lowercase().as_str(),
                v.trim().to_ascii_lowercase().as_str(),
            ) {
                ("transport", "udp") => transport = Some(TrunkTransport::Udp),
                ("transport", "tcp") => transport = Some(TrunkTransport::Tcp),
                ("transport", _) => return Err(bad("transport must be udp or tcp")),
                ("lr", _) => {}
                _ => return Err(bad("unknown parameter")),
            }
        }
        Ok(Self {
            host: sip.host.to_string(),
            port: sip.port,
            transport,
            text: t.to_owned(),
        })
    }
}

impl From<ProxyAddr> for String {
    fn from(p: ProxyAddr) -> String {
        p.text
    }
}

/// A source network (`203.0.113.0/24`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Network(pub sip::Cidr);

impl TryFrom<String> for Network {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
            .map(Network)
            .map_err(|e| format!("{s:?}: {e} (expected e.g. \"203.0.113.0/24\")"))
    }
}

impl From<Network> for String {
    fn from(n: Network) -> String {
        n.0.to_string()
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The file's shape; [`TrunkConfig`] is this, checked as a whole.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrunk {
    name: String,
    proxy: ProxyAddr,
    #[serde(default)]
    transport: Option<TrunkTransport>,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: Secret,
    #[serde(default)]
    password_env: String,
    #[serde(default)]
    realm: String,
    #[serde(default)]
    register: bool,
    #[serde(default = "default_expires")]
    register_expires: u32,
    #[serde(default = "default_keepalive")]
    keepalive_secs: u64,
    #[serde(default)]
    from_number: String,
    #[serde(default)]
    from_domain: String,
    #[serde(default)]
    caller_id_name: String,
    #[serde(default)]
    allowed_sources: Vec<Network>,
    #[serde(default)]
    trusted_caller_id: bool,
    #[serde(default)]
    allowed_destinations: Vec<String>,
    #[serde(default)]
    codecs: Vec<String>,
}

fn default_expires() -> u32 {
    3600
}

fn default_keepalive() -> u64 {
    30
}

/// Characters allowed in names, numbers and prefixes we put into URIs and labels.
fn plain(s: &str, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

impl TryFrom<RawTrunk> for TrunkConfig {
    type Error = String;
    fn try_from(r: RawTrunk) -> Result<Self, String> {
        if !plain(&r.name, b"-_.") || r.name.len() > 64 {
            return Err(format!(
                "name {:?}: use 1-64 letters, digits, '-', '_' or '.'",
                r.name
            ));
        }
        let transport = match (r.transport, r.proxy.transport) {
            (Some(a), Some(b)) if a != b => {
                return Err("transport disagrees with the proxy's ;transport=".to_owned());
            }
            (a, b) => a.or(b).unwrap_or_default(),
        };
        if r.register && r.username.is_empty() {
            return Err("register = true needs a username".to_owned());
        }
        if !r.password.is_empty() && !r.password_env.is_empty() {
            return Err("set password or password_env, not both".to_owned());
        }
        if r.register && !(30..=86_400).contains(&r.register_expires) {
            return Err(format!(
                "register_expires = {}: use 30..=86400 seconds",
                r.register_expires
            ));
        }
        for n in [&r.from_number, &r.username]
            .into_iter()
            .filter(|n| !n.is_empty())
        {
            if !plain(n, b"+*._-") {
                return Err(format!(
                    "{n:?} cannot be a SIP user part (use letters, digits, +*._-)"
                ));
            }
        }
        for d in [&r.domain, &r.from_domain]
            .into_iter()
            .filter(|d| !d.is_empty())
        {
            if sip::message::Uri::parse(&format!("sip:{d}")).is_err() || d.contains('@') {
                return Err(format!("{d:?} is not a SIP domain (host[:port])"));
            }
        }
        for p in &r.allowed_destinations {
            if p != "*" && !plain(p, b"+*._-") {
                return Err(format!(
                    "allowed_destinations: {p:?} is not a number prefix (or \"*\")"
                ));
            }
        }
        if r.trusted_caller_id && r.allowed_sources.is_empty() {
            return Err(
                "trusted_caller_id = true needs allowed_sources (the networks its calls come from)"
                    .to_owned(),
            );
        }
        for c in &r.codecs {
            if !matches!(c.to_ascii_uppercase().as_str(), "PCMU" | "PCMA" | "OPUS") {
                return Err(format!("codecs: {c:?} is not supported (opus, PCMU, PCMA)"));
            }
        }
        Ok(Self {
            domain: if r.domain.is_empty() {
                r.proxy.hostport()
            } else {
                r.domain
            },
            name: r.name,
            proxy: r.proxy,
            transport,
            username: r.username,
            password: r.password,
            password_env: r.password_env,
            realm: r.realm,
            register: r.register,
            register_expires: r.register_expires,
            keepalive_secs: r.keepalive_secs,
            from_number: r.from_number,
            from_domain: r.from_domain,
            caller_id_name: r.caller_id_name,
            allowed_sources: r.allowed_sources,
            trusted_caller_id: r.trusted_caller_id,
            allowed_destinations: r.allowed_destinations,
            codecs: r.codecs,
        })
    }
}

impl TrunkConfig {
    /// Whether `number` may be dialled through this trunk (`allowed_destinations`). Spaces,
    /// dashes, dots and parentheses in `number` are ignored.
    pub fn allows_destination(&self, number: &str) -> bool {
        destination_allowed(&self.allowed_destinations, number)
    }
}

/// Whether `number` matches an allow-list of prefixes (`"*"`: any; empty list: none). Spaces,
/// dashes, dots and parentheses in `number` are ignored.
pub fn destination_allowed(allowed: &[String], number: &str) -> bool {
    let n: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    !n.is_empty()
        && allowed
            .iter()
            .any(|p| p == "*" || n.starts_with(p.as_str()))
}

/// `deserialize_with` for `Config::trunks`: names must be unique.
pub fn unique_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TrunkConfig>, D::Error> {
    let trunks = Vec::<TrunkConfig>::deserialize(d)?;
    for (i, t) in trunks.iter().enumerate() {
        if let Some(j) = trunks[..i].iter().position(|o| o.name == t.name) {
            return Err(D::Error::custom(format!(
                "trunks[{i}].name = {:?} is already the name of trunks[{j}]",
                t.name
            )));
        }
    }
    Ok(trunks)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use crate::config::load;

    #[allow(
        clippy::unwrap_in_result,
        reason = "a temp file that cannot be written is a broken test host, not a config error"
    )]
    fn load_text(text: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        load(f.path(), true, &[])
    }

    const GOOD: &str = r#"
[[trunks]]
name = "carrier"
proxy = "sip:sip.example.com;transport=tcp"
username = "agent"
password = "s3cret"
register = true
allowed_sources = ["203.0.113.0/24", "198.51.100.7"]
allowed_destinations = ["+1555", "+44"]
from_number = "+15550100"

[[trunks]]
name = "pbx"
proxy = "192.0.2.10:5070"
"#;

    #[test]
    fn trunks_parse_with_defaults() {
        let cfg = load_text(GOOD).unwrap();
        let t = &cfg.trunks[0];
        assert_eq!(t.proxy.host, "sip.example.com");
        assert_eq!(t.proxy.port, None);
        assert_eq!(t.transport, super::TrunkTransport::Tcp);
        assert_eq!(t.domain, "sip.example.com");
        assert_eq!(t.register_expires, 3600);
        assert_eq!(t.keepalive_secs, 30);
        assert_eq!(t.allowed_sources.len(), 2);
        assert!(
            !t.trusted_caller_id,
            "caller IDs are not trusted unless said so"
        );
        assert!(t.allows_destination("+1 555-0100"));
        assert!(!t.allows_destination("+1666"));
        let pbx = &cfg.trunks[1];
        assert_eq!(pbx.domain, "192.0.2.10:5070");
        assert_eq!(pbx.transport, super::TrunkTransport::Udp);
        assert!(!pbx.register);
        assert!(!pbx.allows_destination("100"), "empty allow-list: nothing");
        // Printing keeps the shape and hides the password.
        let printed = cfg.to_redacted_toml();
        assert!(printed.contains("[[trunks]]"), "{printed}");
        assert!(!printed.contains("s3cret"), "{printed}");
        let again: crate::config::Config = toml::from_str(&printed).unwrap();
        assert_eq!(again.trunks[1], cfg.trunks[1]);
    }

    #[test]
    fn bad_values_name_the_trunk_key_and_line() {
        let cases = [
            (
                "[[trunks]]\nname = \"a\"\nproxy = \"sip:a@b\"\n",
                "trunks[0].proxy",
                3,
            ),
            (
                "[[trunks]]\nname = \"a\"\nproxy = \"a.example\"\n[[trunks]]\nname = \"b\"\nproxy = \"b.example\"\nallowed_sources = [\"10.0.0.0/33\"]\n",
                "trunks[1].allowed_sources[0]",
                7,
            ),
            (
                "[[trunks]]\nname = \"a\"\nproxy = \"a.example\"\ntransport = \"tls\"\n",
                "trunks[0].transport",
                4,
            ),
            (
                "[[trunks]]\nname = \"a\"\nproxy = \"a.example\"\nprox = 1\n",
                "trunks[0].prox",
                4,
            ),
        ];
        for (text, key, line) in cases {
            let err = load_text(text).unwrap_err();
            assert_eq!(err.key(), Some(key), "{err}");
            assert!(err.to_string().contains(&format!(":{line}:")), "{err}");
        }
        let err = load_text("[[trunks]]\nname = \"a\"\nproxy = \"a.example\"\nregister = true\n")
            .unwrap_err();
        assert_eq!(err.key(), Some("trunks[0]"), "{err}");
        assert!(err.to_string().contains("needs a username"), "{err}");
        let err = load_text(
            "[[trunks]]\nname = \"a\"\nproxy = \"a.example\"\ntrusted_caller_id = true\n",
        )
        .unwrap_err();
        assert_eq!(err.key(), Some("trunks[0]"), "{err}");
        assert!(err.to_string().contains("needs allowed_sources"), "{err}");
        let err = load_text(
            "[[trunks]]\nname = \"a\"\nproxy = \"a.example\"\n[[trunks]]\nname = \"a\"\nproxy = \"b.example\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("trunks[1].name"), "{err}");
        let err = load_text(
            "[[trunks]]\nname = \"a\"\nproxy = \"a.example\"\nallowed_destinations = [\"sip:x@y\"]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("allowed_destinations"), "{err}");
    }
}
