//! Loading configuration in layers and reporting errors that name the key and where it came
//! from: `file:line: key: reason` for the file, the variable or flag name for overrides.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Config;

/// A value from the environment or the command line that replaces one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// Where it came from, as the user wrote it: `AGENT__ADMIN__LISTEN` or `--admin-listen`.
    pub origin: String,
    /// Dotted key path, e.g. `["admin", "listen"]`.
    pub path: Vec<String>,
    pub value: String,
}

impl Override {
    /// Every `AGENT__SECTION__KEY` variable in `vars`, in the order given.
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
        vars.into_iter()
            .filter_map(|(name, value)| {
                let rest = name.strip_prefix("AGENT__")?;
                let path = rest.split("__").map(str::to_ascii_lowercase).collect();
                Some(Override {
                    origin: name,
                    path,
                    value,
                })
            })
            .collect()
    }

    /// A command-line flag that sets `dotted_key`.
    pub fn flag(flag: &str, dotted_key: &str, value: String) -> Override {
        Override {
            origin: flag.to_owned(),
            path: dotted_key.split('.').map(str::to_owned).collect(),
            value,
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{}: cannot read config file: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}{}: key `{key}`: {reason}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    File {
        file: PathBuf,
        line: Option<usize>,
        key: String,
        reason: String,
    },
    #[error("{origin}: key `{key}`: {reason}")]
    Override {
        origin: String,
        key: String,
        reason: String,
    },
}

impl ConfigError {
    /// The offending key, for callers that want to report it on its own.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::File { key, .. } | ConfigError::Override { key, .. } => Some(key),
        }
    }
}

/// Loads the configuration: defaults, then `file` (a missing file is an error only when
/// `file_required`), then `overrides` in order (environment first, then flags).
pub fn load(
    file: &Path,
    file_required: bool,
    overrides: &[Override],
) -> Result<Config, ConfigError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !file_required => String::new(),
        Err(source) => {
            return Err(ConfigError::Read {
                file: file.to_owned(),
                source,
            });
        }
    };
    // Check the file on its own first: this is where spans, and so line numbers, exist.
    let from_file = parse_file(file, &text)?;
    if overrides.is_empty() {
        return cross_checked(from_file, file);
    }
    let mut merged: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_error(file, &text, "", e))?;
    let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
    for o in overrides {
        let value = typed_value(o, &defaults)?;
        set_path(&mut merged, o, value)?;
    }
    let de = toml::Value::Table(merged);
    let merged = serde_path_to_error::deserialize::<_, Config>(de).map_err(|e| {
        let key = e.path().to_string();
        let reason = e.inner().message().to_owned();
        // Blame the last override touching that key (later layers win); else the file.
        match overrides
            .iter()
            .rev()
            .find(|o| key.starts_with(&o.path.join(".")))
        {
            Some(o) => ConfigError::Override {
                origin: o.origin.clone(),
                key,
                reason,
            },
            None => ConfigError::File {
                file: file.to_owned(),
                line: None,
                key,
                reason,
            },
        }
    })?;
    cross_checked(merged, file)
}

/// Rules that span sections: a trunk name means one trunk, whether it is a `[[trunks]]` or a
/// `[[livekit.outbound_trunks]]` entry.
fn cross_checked(cfg: Config, file: &Path) -> Result<Config, ConfigError> {
    let call = &cfg.call;
    if call.transfer_mode == "warm" && !cfg.trunks.iter().any(|t| t.name == call.transfer_trunk) {
        return Err(ConfigError::File {
            file: file.to_owned(),
            line: None,
            key: "call.transfer_trunk".to_owned(),
            reason: format!(
                "warm transfers dial through a [[trunks]] entry; {:?} is not one",
                call.transfer_trunk
            ),
        });
    }
    for (i, t) in cfg.livekit.outbound_trunks.iter().enumerate() {
        if cfg.trunks.iter().any(|s| s.name == t.name) {
            return Err(ConfigError::File {
                file: file.to_owned(),
                line: None,
                key: format!("livekit.outbound_trunks[{i}].name"),
                reason: format!("{:?} is already the name of a [[trunks]] entry", t.name),
            });
        }
    }
    Ok(cfg)
}

fn parse_file(file: &Path, text: &str) -> Result<Config, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| file_error(file, text, "", e))?;
    serde_path_to_error::deserialize::<_, Config>(de).map_err(|e| {
        let key = e.path().to_string();
        file_error(file, text, &key, e.into_inner())
    })
}

fn file_error(file: &Path, text: &str, key: &str, e: toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    let key = if key.is_empty() || key == "." {
        "(file)".to_owned()
    } else {
        key.to_owned()
    };
    ConfigError::File {
        file: file.to_owned(),
        line,
        key,
        reason: e.message().trim().to_owned(),
    }
}

/// Turns an override's text into a TOML value of the type the key expects, so
/// `AGENT__SHUTDOWN__GRACE_SECS=5` is an integer and `AGENT__LLM__API_KEY=123` stays a string.
fn typed_value(o: &Override, defaults: &toml::Table) -> Result<toml::Value, ConfigError> {
    let bad = |reason: String| ConfigError::Override {
        origin: o.origin.clone(),
        key: o.path.join("."),
        reason,
    };
    let expected = lookup(defaults, &o.path);
    let raw = o.value.trim();
    Ok(match expected {
        Some(toml::Value::String(_)) => toml::Value::String(o.value.clone()),
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            raw.parse()
                .map_err(|_| bad(format!("expected an integer, got {raw:?}")))?,
        ),
        Some(toml::Value::Float(_)) => toml::Value::Float(
            raw.parse()
                .map_err(|_| bad(format!("expected a number, got {raw:?}")))?,
        ),
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
            raw.parse()
                .map_err(|_| bad(format!("expected true or false, got {raw:?}")))?,
        ),
        Some(toml::Value::Array(_)) => {
            if raw.starts_with('[') {
                parse_literal(raw)
                    .ok_or_else(|| bad(format!("expected a TOML array, got {raw:?}")))?
            } else {
                // `PCMU,PCMA` is friendlier in a shell than `["PCMU","PCMA"]`.
                toml::Value::Array(
                    raw.split(',')
                        .map(|s| toml::Value::String(s.trim().to_owned()))
                        .filter(|v| v.as_str() != Some(""))
                        .collect(),
                )
            }
        }
        _ => parse_literal(raw).unwrap_or_else(|| toml::Value::String(o.value.clone())),
    })
}

fn parse_literal(raw: &str) -> Option<toml::Value> {
    #[derive(Deserialize)]
    struct Wrapper {
        v: toml::Value,
    }
    toml::from_str::<Wrapper>(&format!("v = {raw}"))
        .ok()
        .map(|w| w.v)
}

fn lookup<'a>(table: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let (last, parents) = path.split_last()?;
    let mut t = table;
    for p in parents {
        t = t.get(p)?.as_table()?;
    }
    t.get(last)
}

fn set_path(root: &mut toml::Table, o: &Override, value: toml::Value) -> Result<(), ConfigError> {
    let Some((last, parents)) = o.path.split_last() else {
        return Err(ConfigError::Override {
            origin: o.origin.clone(),
            key: String::new(),
            reason: "names no key".to_owned(),
        });
    };
    let mut t = root;
    for p in parents {
        let entry = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry.as_table_mut().ok_or_else(|| ConfigError::Override {
            origin: o.origin.clone(),
            key: o.path.join("."),
            reason: format!("`{p}` is not a section"),
        })?;
    }
    t.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_with(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn misspelled_key_names_key_file_and_line() {
        let f = file_with("[admin]\nlisten = \"127.0.0.1:9000\"\n\n[database]\nulr = \"x\"\n");
        let err = load(f.path(), true, &[]).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.key(), Some("database.ulr"), "{msg}");
        assert!(msg.contains(&format!("{}:5:", f.path().display())), "{msg}");
        assert!(msg.contains("unknown field `ulr`"), "{msg}");
    }

    #[test]
    fn bad_value_names_key_and_line() {
        let f = file_with("[admin]\nlisten = \"not an address\"\n");
        let err = load(f.path(), true, &[]).unwrap_err();
        assert_eq!(err.key(), Some("admin.listen"));
        assert!(err.to_string().contains(":2:"), "{err}");
    }

    #[test]
    fn unknown_section_is_an_error() {
        let f = file_with("[databse]\nurl = \"x\"\n");
        let err = load(f.path(), true, &[]).unwrap_err();
        assert!(err.to_string().contains("databse"), "{err}");
        assert!(err.to_string().contains(":1:"), "{err}");
    }

    #[test]
    fn layers_apply_in_order() {
        let f = file_with("[admin]\nlisten = \"127.0.0.1:9000\"\n[shutdown]\ngrace_secs = 3\n");
        let cfg = load(f.path(), true, &[]).unwrap();
        assert_eq!(cfg.admin.listen.port(), 9000);
        assert_eq!(cfg.shutdown.grace_secs, 3);
        assert_eq!(cfg.sip.listen.port(), 5060, "default kept");

        let env = Override::from_env([
            (
                "AGENT__ADMIN__LISTEN".to_owned(),
                "127.0.0.1:9100".to_owned(),
            ),
            ("AGENT__SHUTDOWN__GRACE_SECS".to_owned(), "7".to_owned()),
            ("AGENT__LLM__API_KEY".to_owned(), "12345".to_owned()),
            ("AGENT__SIP__CODECS".to_owned(), "PCMA, PCMU".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ]);
        let mut all = env.clone();
        all.push(Override::flag(
            "--admin-listen",
            "admin.listen",
            "127.0.0.1:9200".to_owned(),
        ));
        let cfg = load(f.path(), true, &all).unwrap();
        assert_eq!(cfg.admin.listen.port(), 9200, "flag beats env");
        assert_eq!(cfg.shutdown.grace_secs, 7, "env beats file");
        assert_eq!(
            cfg.llm.api_key.expose(),
            "12345",
            "typed as the key expects"
        );
        assert_eq!(cfg.sip.codecs, ["PCMA", "PCMU"]);
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let f = file_with("");
        let env =
            Override::from_env([("AGENT__SHUTDOWN__GRACE_SECS".to_owned(), "soon".to_owned())]);
        let err = load(f.path(), true, &env).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("AGENT__SHUTDOWN__GRACE_SECS: key `shutdown.grace_secs`"),
            "{err}"
        );
        let env = Override::from_env([("AGENT__ADMIN__LISTEN".to_owned(), "nowhere".to_owned())]);
        let err = load(f.path(), true, &env).unwrap_err();
        assert!(err.to_string().starts_with("AGENT__ADMIN__LISTEN"), "{err}");
        let env = Override::from_env([("AGENT__ADMIN__LISTN".to_owned(), "x".to_owned())]);
        let err = load(f.path(), true, &env).unwrap_err();
        assert!(err.to_string().contains("AGENT__ADMIN__LISTN"), "{err}");
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn missing_default_file_is_fine_but_named_file_is_not() {
        let missing = Path::new("/nonexistent/agent.toml");
        assert_eq!(load(missing, false, &[]).unwrap(), Config::default());
        let err = load(missing, true, &[]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/agent.toml"), "{err}");
    }

    #[test]
    fn redacted_print_hides_secrets() {
        let f = file_with(
            "[llm]\napi_key = \"sk-secret\"\n[database]\nurl = \"postgres://u:pw@h/db\"\n",
        );
        let cfg = load(f.path(), true, &[]).unwrap();
        let printed = cfg.to_redacted_toml();
        assert!(
            !printed.contains("sk-secret") && !printed.contains(":pw@"),
            "{printed}"
        );
        assert!(printed.contains("<redacted>"));
    }

    #[test]
    fn shipped_config_file_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agent.toml");
        let cfg = load(&path, true, &[]).unwrap();
        assert_eq!(
            cfg,
            Config::default(),
            "config/agent.toml must document the defaults"
        );
        // And it documents every key: each default key appears in the file.
        let text = std::fs::read_to_string(&path).unwrap();
        let shipped: toml::Table = text.parse().unwrap();
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        for (section, keys) in &defaults {
            let keys = keys.as_table().unwrap();
            for key in keys.keys() {
                assert!(
                    lookup(&shipped, &[section.clone(), key.clone()]).is_some(),
                    "config/agent.toml does not document {section}.{key}"
                );
            }
        }
    }
}
