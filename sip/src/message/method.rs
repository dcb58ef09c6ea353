//! SIP request methods. The set is open: any RFC 3261 `token` is a method, so an unknown one
//! parses as [`Method::Extension`] and the core can answer it with 501 instead of dropping it.

use std::fmt;

use super::error::ParseErrorKind;
use super::scan::is_token;

/// A SIP method. Methods are case-sensitive (RFC 3261 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Prack,
    Subscribe,
    Notify,
    Publish,
    Info,
    Refer,
    Message,
    Update,
    /// Any other token.
    Extension(String),
}

impl Method {
    /// Parses a method token.
    pub fn parse(s: &str) -> Result<Self, ParseErrorKind> {
        Ok(match s {
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "OPTIONS" => Self::Options,
            "REGISTER" => Self::Register,
            "PRACK" => Self::Prack,
            "SUBSCRIBE" => Self::Subscribe,
            "NOTIFY" => Self::Notify,
            "PUBLISH" => Self::Publish,
            "INFO" => Self::Info,
            "REFER" => Self::Refer,
            "MESSAGE" => Self::Message,
            "UPDATE" => Self::Update,
            other if is_token(other) => Self::Extension(other.to_owned()),
            _ => return Err(ParseErrorKind::InvalidMethod),
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Register => "REGISTER",
            Self::Prack => "PRACK",
            Self::Subscribe => "SUBSCRIBE",
            Self::Notify => "NOTIFY",
            Self::Publish => "PUBLISH",
            Self::Info => "INFO",
            Self::Refer => "REFER",
            Self::Message => "MESSAGE",
            Self::Update => "UPDATE",
            Self::Extension(s) => s,
        }
    }

    /// True for methods defined by an RFC this crate knows (i.e. not [`Method::Extension`]).
    pub fn is_standard(&self) -> bool {
        !matches!(self, Self::Extension(_))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Method {
    type Err = ParseErrorKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_roundtrip_and_extensions() {
        assert_eq!(Method::parse("INVITE"), Ok(Method::Invite));
        assert_eq!(
            Method::parse("invite"),
            Ok(Method::Extension("invite".into()))
        );
        let odd = "!interesting-Method0123456789_*+`.%indeed'~";
        assert_eq!(
            Method::parse(odd).map(|m| m.to_string()),
            Ok(odd.to_owned())
        );
        assert!(Method::parse("BAD METHOD").is_err());
        assert!(Method::parse("").is_err());
    }
}
