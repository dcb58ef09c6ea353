//! Zoho data centres: where a tenant's accounts server and API live.
//!
//! Sources (wave2-facts.md §2): https://zoho.com/accounts/protocol/oauth/multi-dc.html lists the
//! accounts servers (note CA is `accounts.zohocloud.ca`, not zoho.ca);
//! https://www.bigin.com/developer/docs/apis/multi-dc.html the `www.zohoapis.*` API domains.
//! The API domain is only a default here: the token response's `api_domain` is what calls use.

use std::fmt;
use std::str::FromStr;

/// A Zoho data centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataCenter {
    Us,
    Eu,
    In,
    Au,
    Jp,
    Ca,
    Sa,
    Uk,
    Cn,
}

/// The DC name is not one Zoho has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Zoho data centre {0:?} (expected us, eu, in, au, jp, ca, sa, uk or cn)")]
pub struct UnknownDataCenter(pub String);

impl DataCenter {
    /// Every DC, in the order the CLI lists them.
    pub const ALL: [DataCenter; 9] = [
        DataCenter::Us,
        DataCenter::Eu,
        DataCenter::In,
        DataCenter::Au,
        DataCenter::Jp,
        DataCenter::Ca,
        DataCenter::Sa,
        DataCenter::Uk,
        DataCenter::Cn,
    ];

    /// The short name used in config and on the command line (`us`, `eu`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DataCenter::Us => "us",
            DataCenter::Eu => "eu",
            DataCenter::In => "in",
            DataCenter::Au => "au",
            DataCenter::Jp => "jp",
            DataCenter::Ca => "ca",
            DataCenter::Sa => "sa",
            DataCenter::Uk => "uk",
            DataCenter::Cn => "cn",
        }
    }

    /// Zoho's accounts server for this DC (the OAuth endpoints).
    pub fn accounts_server(self) -> &'static str {
        match self {
            DataCenter::Us => "https://accounts.zoho.com",
            DataCenter::Eu => "https://accounts.zoho.eu",
            DataCenter::In => "https://accounts.zoho.in",
            DataCenter::Au => "https://accounts.zoho.com.au",
            DataCenter::Jp => "https://accounts.zoho.jp",
            DataCenter::Ca => "https://accounts.zohocloud.ca",
            DataCenter::Sa => "https://accounts.zoho.sa",
            DataCenter::Uk => "https://accounts.zoho.uk",
            DataCenter::Cn => "https://accounts.zoho.com.cn",
        }
    }

    /// The API domain Zoho documents for this DC.
    pub fn api_domain(self) -> &'static str {
        match self {
            DataCenter::Us => "https://www.zohoapis.com",
            DataCenter::Eu => "https://www.zohoapis.eu",
            DataCenter::In => "https://www.zohoapis.in",
            DataCenter::Au => "https://www.zohoapis.com.au",
            DataCenter::Jp => "https://www.zohoapis.jp",
            DataCenter::Ca => "https://www.zohoapis.ca",
            DataCenter::Sa => "https://www.zohoapis.sa",
            DataCenter::Uk => "https://www.zohoapis.uk",
            DataCenter::Cn => "https://www.zohoapis.com.cn",
        }
    }
}

impl fmt::Display for DataCenter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataCenter {
    type Err = UnknownDataCenter;
    fn from_str(s: &str) -> Result<Self, UnknownDataCenter> {
        let lower = s.trim().to_ascii_lowercase();
        DataCenter::ALL
            .into_iter()
            .find(|dc| dc.as_str() == lower)
            .ok_or_else(|| UnknownDataCenter(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_ca_is_zohocloud() {
        for dc in DataCenter::ALL {
            assert_eq!(dc.as_str().parse::<DataCenter>().unwrap(), dc);
            assert!(dc.accounts_server().starts_with("https://accounts.zoho"));
        }
        assert_eq!(
            DataCenter::Ca.accounts_server(),
            "https://accounts.zohocloud.ca"
        );
        assert_eq!("EU".parse::<DataCenter>().unwrap(), DataCenter::Eu);
        assert!("mars".parse::<DataCenter>().is_err());
    }
}
