//! Exact money parsing: decimal text such as `142.50` to integer minor units, with the number
//! of decimals the currency has (ISO 4217). No floating point anywhere: `0.1 + 0.2` must stay
//! 30 cents.

/// Why a currency code or an amount was refused. Carries the offending text (amounts and
/// codes are not personal data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// Not three ASCII letters.
    #[error("currency {0:?} is not a three-letter ISO 4217 code")]
    BadCurrency(String),
    /// Not a plain decimal number (`-1,234.50`, `12`, `0.5` are fine; `1e3`, `$5`, `1.2.3` not).
    #[error("amount {0:?} is not a decimal number")]
    NotANumber(String),
    /// More decimals than the currency has (`1.005` USD).
    #[error("amount {amount:?} has more than {decimals} decimals for {currency}")]
    TooManyDecimals {
        amount: String,
        currency: String,
        decimals: u32,
    },
    /// Does not fit in 64-bit minor units.
    #[error("amount {0:?} is out of range")]
    OutOfRange(String),
}

/// Upper-cases and checks an ISO 4217 code (three ASCII letters; not checked against the list,
/// so new codes work).
pub fn parse_currency(text: &str) -> Result<String, MoneyError> {
    let code = text.trim();
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(code.to_ascii_uppercase())
    } else {
        Err(MoneyError::BadCurrency(text.to_owned()))
    }
}

/// How many decimals (minor-unit digits) an ISO 4217 currency has. Two unless listed.
pub fn currency_decimals(currency: &str) -> u32 {
    match currency {
        // ISO 4217 exponent 0.
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        // ISO 4217 exponent 3.
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        // CLF and UYW have 4.
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// Parses a decimal amount into minor units of `currency` (already upper-case): `142.50` USD →
/// `14250`, `142.5` → `14250`, `1,234` → `123400`, `-3` → `-300`, `500` JPY → `500`.
///
/// Accepted: optional sign, digits with optional `,` thousands grouping (groups of three), an
/// optional `.` and at most the currency's number of decimals. Surrounding spaces are ignored.
pub fn parse_minor(amount: &str, currency: &str) -> Result<i64, MoneyError> {
    let text = amount.trim();
    let not_a_number = || MoneyError::NotANumber(amount.to_owned());
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let int_digits = ungroup(int_part).ok_or_else(not_a_number)?;
    let frac = frac_part.unwrap_or("");
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_number());
    }
    // "5." and ".5" are accepted, "." is not.
    if int_digits.is_empty() && frac.is_empty() {
        return Err(not_a_number());
    }
    let decimals = currency_decimals(currency);
    // Trailing zeros beyond the currency's decimals are harmless ("12.500" USD).
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > decimals as usize {
        return Err(MoneyError::TooManyDecimals {
            amount: amount.to_owned(),
            currency: currency.to_owned(),
            decimals,
        });
    }
    let out_of_range = || MoneyError::OutOfRange(amount.to_owned());
    let scale = 10_i64.checked_pow(decimals).ok_or_else(out_of_range)?;
    let units: i64 = if int_digits.is_empty() {
        0
    } else {
        int_digits.parse().map_err(|_| out_of_range())?
    };
    let mut minor_frac: i64 = 0;
    for (i, b) in frac_trimmed.bytes().enumerate() {
        let digit = i64::from(b - b'0');
        minor_frac += digit * 10_i64.pow(decimals - 1 - i as u32);
    }
    let magnitude = units
        .checked_mul(scale)
        .and_then(|m| m.checked_add(minor_frac))
        .ok_or_else(out_of_range)?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// Digits of an integer part with optional `,` grouping removed; None when malformed.
fn ungroup(int_part: &str) -> Option<String> {
    if !int_part.contains(',') {
        return int_part
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| int_part.to_owned());
    }
    let mut groups = int_part.split(',');
    let first = groups.next()?;
    if first.is_empty() || first.len() > 3 || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits = first.to_owned();
    for g in groups {
        if g.len() != 3 || !g.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.push_str(g);
    }
    Some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_become_exact_minor_units() {
        for (text, currency, minor) in [
            ("142.50", "USD", 14250),
            ("142.5", "USD", 14250),
            ("0.1", "USD", 10),
            ("0.30", "USD", 30),
            ("12.500", "USD", 1250),
            ("1,234,567.89", "USD", 123456789),
            ("-3", "EUR", -300),
            ("+7.01", "GBP", 701),
            (".5", "USD", 50),
            ("5.", "USD", 500),
            (" 42 ", "USD", 4200),
            ("500", "JPY", 500),
            ("1.234", "KWD", 1234),
            ("92233720368547758.07", "USD", i64::MAX),
        ] {
            assert_eq!(parse_minor(text, currency), Ok(minor), "{text} {currency}");
        }
    }

    #[test]
    fn malformed_amounts_are_refused() {
        for text in [
            "", ".", "-", "abc", "1e3", "$5", "1.2.3", "1,23", "12,3456", ",123", "1 000",
        ] {
            assert!(
                matches!(parse_minor(text, "USD"), Err(MoneyError::NotANumber(_))),
                "{text:?}"
            );
        }
        assert!(matches!(
            parse_minor("1.005", "USD"),
            Err(MoneyError::TooManyDecimals { .. })
        ));
        assert!(matches!(
            parse_minor("1.5", "JPY"),
            Err(MoneyError::TooManyDecimals { .. })
        ));
        assert!(matches!(
            parse_minor("92233720368547758.08", "USD"),
            Err(MoneyError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_minor("99999999999999999999", "USD"),
            Err(MoneyError::OutOfRange(_))
        ));
    }

    #[test]
    fn currencies_are_three_letters() {
        assert_eq!(parse_currency(" usd ").unwrap(), "USD");
        for bad in ["", "US", "USDX", "U$D", "€"] {
            assert!(parse_currency(bad).is_err(), "{bad:?}");
        }
        assert_eq!((currency_decimals("JPY"), currency_decimals("KWD")), (0, 3));
    }
}
