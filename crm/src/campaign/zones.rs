//! Time zones for callees: given (an IANA name), or derived from the number's country.
//!
//! libphonenumber's own number → time-zone mapping is not part of the `phonenumber` crate, so
//! the country (which libphonenumber does give, for +1 even by area code: US, CA, PR, JM…)
//! maps to its zones here. A country spanning several zones maps to its main ones and the
//! scheduler requires **all** of them to be inside a calling window — conservative: nobody is
//! called before the window opens where they live. Countries too wide for that (Russia) and
//! countries not listed have no derived zone: the contact needs a `time_zone` or the campaign
//! a `default_time_zone`.

use jiff::tz::TimeZone;

/// Country (ISO 3166-1 alpha-2) → IANA zones.
const COUNTRY_ZONES: &[(&str, &[&str])] = &[
    // Contiguous US only: with Alaska and Hawaii a 09:00–20:00 window would leave no
    // time at which all are inside. A contact there needs its own `time_zone`.
    (
        "US",
        &[
            "America/New_York",
            "America/Chicago",
            "America/Denver",
            "America/Los_Angeles",
        ],
    ),
    (
        "CA",
        &[
            "America/Halifax",
            "America/Toronto",
            "America/Winnipeg",
            "America/Edmonton",
            "America/Vancouver",
        ],
    ),
    ("MX", &["America/Mexico_City", "America/Tijuana"]),
    ("BR", &["America/Sao_Paulo", "America/Manaus"]),
    (
        "AU",
        &["Australia/Sydney", "Australia/Adelaide", "Australia/Perth"],
    ),
    ("ID", &["Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"]),
    ("PR", &["America/Puerto_Rico"]),
    ("JM", &["America/Jamaica"]),
    ("DO", &["America/Santo_Domingo"]),
    ("GB", &["Europe/London"]),
    ("IE", &["Europe/Dublin"]),
    ("IS", &["Atlantic/Reykjavik"]),
    ("PT", &["Europe/Lisbon"]),
    ("ES", &["Europe/Madrid"]),
    ("FR", &["Europe/Paris"]),
    ("BE", &["Europe/Brussels"]),
    ("NL", &["Europe/Amsterdam"]),
    ("LU", &["Europe/Luxembourg"]),
    ("DE", &["Europe/Berlin"]),
    ("CH", &["Europe/Zurich"]),
    ("AT", &["Europe/Vienna"]),
    ("IT", &["Europe/Rome"]),
    ("MT", &["Europe/Malta"]),
    ("DK", &["Europe/Copenhagen"]),
    ("NO", &["Europe/Oslo"]),
    ("SE", &["Europe/Stockholm"]),
    ("FI", &["Europe/Helsinki"]),
    ("EE", &["Europe/Tallinn"]),
    ("LV", &["Europe/Riga"]),
    ("LT", &["Europe/Vilnius"]),
    ("PL", &["Europe/Warsaw"]),
    ("CZ", &["Europe/Prague"]),
    ("SK", &["Europe/Bratislava"]),
    ("HU", &["Europe/Budapest"]),
    ("SI", &["Europe/Ljubljana"]),
    ("HR", &["Europe/Zagreb"]),
    ("RS", &["Europe/Belgrade"]),
    ("RO", &["Europe/Bucharest"]),
    ("BG", &["Europe/Sofia"]),
    ("GR", &["Europe/Athens"]),
    ("CY", &["Asia/Nicosia"]),
    ("TR", &["Europe/Istanbul"]),
    ("UA", &["Europe/Kiev"]),
    ("IL", &["Asia/Jerusalem"]),
    ("AE", &["Asia/Dubai"]),
    ("SA", &["Asia/Riyadh"]),
    ("EG", &["Africa/Cairo"]),
    ("MA", &["Africa/Casablanca"]),
    ("NG", &["Africa/Lagos"]),
    ("KE", &["Africa/Nairobi"]),
    ("ZA", &["Africa/Johannesburg"]),
    ("IN", &["Asia/Kolkata"]),
    ("PK", &["Asia/Karachi"]),
    ("BD", &["Asia/Dhaka"]),
    ("TH", &["Asia/Bangkok"]),
    ("VN", &["Asia/Ho_Chi_Minh"]),
    ("MY", &["Asia/Kuala_Lumpur"]),
    ("SG", &["Asia/Singapore"]),
    ("PH", &["Asia/Manila"]),
    ("CN", &["Asia/Shanghai"]),
    ("HK", &["Asia/Hong_Kong"]),
    ("TW", &["Asia/Taipei"]),
    ("KR", &["Asia/Seoul"]),
    ("JP", &["Asia/Tokyo"]),
    ("NZ", &["Pacific/Auckland"]),
    ("AR", &["America/Argentina/Buenos_Aires"]),
    ("CL", &["America/Santiago"]),
    ("CO", &["America/Bogota"]),
    ("PE", &["America/Lima"]),
    ("VE", &["America/Caracas"]),
];

/// The zones of an E.164 number's country, space separated (the form stored with contacts);
/// `None` when the country is unknown or not in the table.
pub fn zones_for_number(e164: &str) -> Option<String> {
    let parsed = phonenumber::parse(None, e164).ok()?;
    let region = parsed.country().id()?;
    let code: &str = region.as_ref();
    COUNTRY_ZONES
        .iter()
        .find(|(country, _)| *country == code)
        .map(|(_, zones)| zones.join(" "))
}

/// Parses a space- or comma-separated list of IANA zone names.
pub fn parse_zones(names: &str) -> Result<Vec<TimeZone>, UnknownZone> {
    let zones: Vec<TimeZone> = names
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(|name| TimeZone::get(name).map_err(|_| UnknownZone(name.to_owned())))
        .collect::<Result<_, _>>()?;
    if zones.is_empty() {
        return Err(UnknownZone(String::new()));
    }
    Ok(zones)
}

/// A name the time zone database does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?} (expected an IANA name such as \"Europe/Berlin\")")]
pub struct UnknownZone(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_zone_exists() {
        for (country, zones) in COUNTRY_ZONES {
            for z in *zones {
                assert!(TimeZone::get(z).is_ok(), "{country}: {z}");
            }
        }
    }

    #[test]
    fn countries_come_from_the_number() {
        assert_eq!(
            zones_for_number("+442079460000").as_deref(),
            Some("Europe/London")
        );
        assert_eq!(
            zones_for_number("+4930123456").as_deref(),
            Some("Europe/Berlin")
        );
        assert!(
            zones_for_number("+12125550100")
                .unwrap()
                .contains("America/Los_Angeles")
        );
        // +1 416 is Toronto: Canada, not the US.
        assert!(
            zones_for_number("+14165550100")
                .unwrap()
                .starts_with("America/Halifax")
        );
        // Russia spans eleven zones: no derived zone.
        assert_eq!(zones_for_number("+74951234567"), None);
        assert_eq!(zones_for_number("not a number"), None);
    }

    #[test]
    fn zone_lists_parse() {
        assert_eq!(parse_zones("Europe/Berlin, Asia/Tokyo").unwrap().len(), 2);
        assert_eq!(
            parse_zones("Mars/Olympus").unwrap_err(),
            UnknownZone("Mars/Olympus".into())
        );
        assert!(parse_zones(" ").is_err());
    }
}
