//! `;name=value` parameter lists, used by URIs and by header values (Via, From/To, Contact…).
//! Names compare case-insensitively; values are kept as received (escaped or quoted), so a
//! message re-serialises byte-compatible with what the peer sent.

use std::fmt;

use super::error::ParseErrorKind;
use super::scan::{Cursor, is_token_char, unquote};

/// One parameter. `value` is `None` for a flag parameter such as `;lr` or `;rport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: Option<String>,
}

/// An ordered parameter list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<Param>);

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// The raw value of `name` (`Some(None)` for a flag parameter, `None` when absent).
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_deref())
    }

    /// The value of `name` with surrounding quotes removed; `None` if absent or a flag.
    pub fn value(&self, name: &str) -> Option<String> {
        self.get(name).flatten().map(|v| {
            if v.starts_with('"') {
                unquote(v)
            } else {
                v.to_owned()
            }
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets (replacing) `name`.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        if let Some(p) = self
            .0
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            p.value = value;
        } else {
            self.0.push(Param {
                name: name.to_owned(),
                value,
            });
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|p| !p.name.eq_ignore_ascii_case(name));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.0.iter()
    }
}

impl fmt::Display for Params {
    /// Writes `;name=value` for each parameter (nothing when empty).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            write!(f, ";{}", p.name)?;
            if let Some(v) = &p.value {
                write!(f, "={v}")?;
            }
        }
        Ok(())
    }
}

/// Characters allowed in an unquoted header `gen-value`: token, plus what a `host` can hold
/// (IPv6 references use `[ ] :`).
fn is_gen_value_char(b: u8) -> bool {
    is_token_char(b) || matches!(b, b':' | b'[' | b']')
}

/// Parses `*( SEMI generic-param )` at the cursor (header parameters, RFC 3261 §25.1), allowing
/// LWS around `;` and `=`. Stops before anything that is not `;` (e.g. a `,` or end).
pub(crate) fn parse_header_params(
    c: &mut Cursor<'_>,
    header: &'static str,
) -> Result<Params, ParseErrorKind> {
    let mut params = Params::new();
    while c.eat_sep(b';') {
        let Some(name) = c.token() else {
            return Err(ParseErrorKind::header(header, "empty parameter"));
        };
        let value = if c.eat_sep(b'=') {
            if c.peek() == Some(b'"') {
                let Some(q) = c.quoted_raw() else {
                    return Err(ParseErrorKind::header(
                        header,
                        "unterminated quoted parameter",
                    ));
                };
                Some(q.to_owned())
            } else {
                let v = c.take_while(is_gen_value_char);
                if v.is_empty() {
                    return Err(ParseErrorKind::header(header, "empty parameter value"));
                }
                Some(v.to_owned())
            }
        } else {
            None
        };
        params.0.push(Param {
            name: name.to_owned(),
            value,
        });
    }
    Ok(params)
}
