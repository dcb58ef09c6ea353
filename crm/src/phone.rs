//! Phone numbers to E.164 with the `phonenumber` crate (libphonenumber's metadata).
//!
//! Caller IDs arrive in many shapes: `+15551234567`, `5551234567`, `15551234567`,
//! `(555) 123-4567`, `sip:+15551234567@pbx.example;user=phone`, `"Jane" <sip:5551234567@host>`,
//! `tel:+1-555-123-4567`. Numbers without a country code are read in the configured default
//! region. Anything that is not a number (`anonymous`, `sip:alice@host`, `*67`) is a typed
//! [`PhoneError`], never a panic.
//!
//! Errors never contain the number itself: phone numbers are personal data and errors end up in
//! logs.

use std::fmt;
use std::str::FromStr;

use phonenumber::country;
use phonenumber::metadata::DATABASE;

/// A phone number in E.164 form (`+` and 8 to 15 digits), as stored in the customers cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

impl E164 {
    /// The number as text, e.g. `+15551234567`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number as text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for E164 {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why a string is not a usable phone number. Carries no part of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PhoneError {
    /// Nothing to parse (empty or only spaces).
    #[error("empty phone number")]
    Empty,
    /// Letters or symbols where digits belong (`anonymous`, `sip:alice@host`, `*67`).
    #[error("not a phone number")]
    NotANumber,
    /// libphonenumber could not read it (too short, too long, bad country code…).
    #[error("unparseable phone number: {reason}")]
    Unparseable { reason: String },
    /// The country calling code is not assigned.
    #[error("unknown country calling code +{code}")]
    UnknownCountryCode { code: u16 },
    /// The national number has a length no number of that country has.
    #[error("impossible length ({digits} digits) for country code +{code}")]
    ImpossibleLength { code: u16, digits: usize },
    /// The default region is not an ISO 3166-1 alpha-2 code libphonenumber knows.
    #[error("unknown region {region:?} (expected an ISO 3166-1 alpha-2 code such as \"US\")")]
    UnknownRegion { region: String },
}

/// Normalises phone numbers to E.164, reading national numbers in a default region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneNormalizer {
    region: country::Id,
}

impl PhoneNormalizer {
    /// A normaliser for `region`, an ISO 3166-1 alpha-2 code (`"US"`, `"GB"`, `"de"`).
    pub fn new(region: &str) -> Result<PhoneNormalizer, PhoneError> {
        let upper = region.trim().to_ascii_uppercase();
        let region_id = country::Id::from_str(&upper).map_err(|_| PhoneError::UnknownRegion {
            region: region.to_owned(),
        })?;
        Ok(PhoneNormalizer { region: region_id })
    }

    /// The default region's code, e.g. `"US"`.
    pub fn region(&self) -> &str {
        self.region.as_ref()
    }

    /// Normalises a phone number or caller ID (see the module docs for accepted shapes).
    pub fn normalize(&self, raw: &str) -> Result<E164, PhoneError> {
        let candidate = extract_number(raw)?;
        let parsed = phonenumber::parse(Some(self.region), candidate).map_err(|e| {
            PhoneError::Unparseable {
                reason: e.to_string(),
            }
        })?;
        let code = parsed.code().value();
        let national = parsed.national().to_string();
        // Only the length is checked against the country's metadata, not libphonenumber's full
        // validity (assigned ranges): a caller ID must still match when the range is newer
        // than our metadata, and fictional 555 numbers are what tests and demos use.
        let Some(meta) = DATABASE.by_code(&code).and_then(|m| m.into_iter().next()) else {
            return Err(PhoneError::UnknownCountryCode { code });
        };
        let possible = possible_lengths(meta);
        if !possible.is_empty() && !possible.iter().any(|&l| usize::from(l) == national.len()) {
            return Err(PhoneError::ImpossibleLength {
                code,
                digits: national.len(),
            });
        }
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        Ok(E164(e164))
    }
}

impl Default for PhoneNormalizer {
    /// Region `US`.
    fn default() -> Self {
        PhoneNormalizer {
            region: country::Id::US,
        }
    }
}

/// Every full-number length of the country's number types. The compiled metadata leaves the
/// general descriptor's lengths empty for many countries, so take the union over the types.
/// Local-only lengths (a US number without its area code) are deliberately not included.
fn possible_lengths(meta: &phonenumber::Metadata) -> Vec<u16> {
    let d = meta.descriptors();
    let mut lengths: Vec<u16> = std::iter::once(Some(d.general()))
        .chain([
            d.fixed_line(),
            d.mobile(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.personal_number(),
            d.voip(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ])
        .flatten()
        .flat_map(|desc| desc.possible_length().iter().copied())
        .collect();
    lengths.sort_unstable();
    lengths.dedup();
    lengths
}

/// Pulls the number out of a SIP/tel URI or a display form, and rejects what is clearly not a
/// number before libphonenumber sees it (its "natural" parser is generous with letters).
fn extract_number(raw: &str) -> Result<&str, PhoneError> {
    let mut s = raw.trim();
    if s.is_empty() {
        return Err(PhoneError::Empty);
    }
    // `"Display Name" <sip:…>`: keep what is inside the angle brackets.
    if let (Some(open), Some(close)) = (s.find('<'), s.rfind('>'))
        && open < close
    {
        s = s[open + 1..close].trim();
    }
    let lower = s.get(..5).map(str::to_ascii_lowercase).unwrap_or_default();
    if lower.starts_with("sips:") || lower.starts_with("sip:") {
        let rest = &s[s.find(':').map_or(0, |i| i + 1)..];
        // The user part: before `@`, without user parameters (`;phone-context=…`, `;isub=…`).
        let user = rest.split('@').next().unwrap_or_default();
        s = user.split(';').next().unwrap_or_default();
    } else if lower.starts_with("tel:") {
        s = s[4..].split(';').next().unwrap_or_default();
    }
    let s = s.trim();
    if s.is_empty() {
        return Err(PhoneError::Empty);
    }
    let mut digits = 0;
    for (i, c) in s.char_indices() {
        match c {
            '0'..='9' => digits += 1,
            '+' if i == 0 => {}
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            _ => return Err(PhoneError::NotANumber),
        }
    }
    if digits < 3 {
        return Err(PhoneError::NotANumber);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_shapes_are_unwrapped() {
        assert_eq!(
            extract_number("sip:+15551234567@pbx;user=phone").unwrap(),
            "+15551234567"
        );
        assert_eq!(
            extract_number("SIPS:5551234567;isub=1@host").unwrap(),
            "5551234567"
        );
        assert_eq!(extract_number("\"Jane\" <sip:+1555@h>").unwrap(), "+1555");
        assert_eq!(
            extract_number("tel:+1-555-123-4567;ext=2").unwrap(),
            "+1-555-123-4567"
        );
        assert_eq!(extract_number("  "), Err(PhoneError::Empty));
        assert_eq!(extract_number("sip:@host"), Err(PhoneError::Empty));
        assert_eq!(
            extract_number("sip:alice@host"),
            Err(PhoneError::NotANumber)
        );
        assert_eq!(extract_number("12"), Err(PhoneError::NotANumber));
    }

    #[test]
    fn region_name_round_trips() {
        assert_eq!(PhoneNormalizer::new("gb").unwrap().region(), "GB");
        assert_eq!(PhoneNormalizer::default().region(), "US");
    }
}
