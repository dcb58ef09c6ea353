//! Caller IDs and CSV phone fields to E.164.

use crm::{PhoneError, PhoneNormalizer};

fn us() -> PhoneNormalizer {
    PhoneNormalizer::new("US").unwrap()
}

#[test]
fn us_caller_id_shapes_normalise_to_the_same_number() {
    let n = us();
    for raw in [
        "+15551234567",
        "5551234567",
        "15551234567",
        "1-555-123-4567",
        "(555) 123-4567",
        "555.123.4567",
        " +1 555 123 4567 ",
        "sip:+15551234567@pbx.example.com",
        "sip:+15551234567@pbx.example.com;user=phone",
        "sip:5551234567@10.0.0.1:5060",
        "sips:15551234567;isub=12@host",
        "SIP:+15551234567@HOST",
        "\"Jane Doe\" <sip:+15551234567@host>;tag=abc",
        "<sip:15551234567@host>",
        "tel:+1-555-123-4567",
        "011 1 555 123 4567",
    ] {
        assert_eq!(
            n.normalize(raw).map(|e| e.into_string()),
            Ok("+15551234567".to_owned()),
            "{raw:?}"
        );
    }
}

#[test]
fn numbers_with_a_country_code_ignore_the_default_region() {
    let n = us();
    assert_eq!(
        n.normalize("+44 20 7946 0958").unwrap().as_str(),
        "+442079460958"
    );
    assert_eq!(
        n.normalize("sip:+4930123456@h").unwrap().as_str(),
        "+4930123456"
    );
    let gb = PhoneNormalizer::new("gb").unwrap();
    assert_eq!(gb.region(), "GB");
    // National format with the trunk prefix 0, read in the UK.
    assert_eq!(
        gb.normalize("020 7946 0958").unwrap().as_str(),
        "+442079460958"
    );
    assert_eq!(
        gb.normalize("+1 555 123 4567").unwrap().as_str(),
        "+15551234567"
    );
}

#[test]
fn garbage_is_a_typed_error_not_a_panic() {
    let n = us();
    assert_eq!(n.normalize(""), Err(PhoneError::Empty));
    assert_eq!(n.normalize("   "), Err(PhoneError::Empty));
    for raw in [
        "anonymous",
        "Restricted",
        "sip:anonymous@anonymous.invalid",
        "sip:alice@example.com",
        "*67",
        "12",
        "555-CALL-NOW",
        "+1555123456x",
        "++15551234567",
        "1+5551234567",
    ] {
        assert_eq!(n.normalize(raw), Err(PhoneError::NotANumber), "{raw:?}");
    }
    for raw in ["555123", "+1555123456789", "+999 123 456 789"] {
        let res = n.normalize(raw);
        assert!(
            matches!(
                res,
                Err(PhoneError::ImpossibleLength { .. }
                    | PhoneError::Unparseable { .. }
                    | PhoneError::UnknownCountryCode { .. })
            ),
            "{raw:?}: {res:?}"
        );
    }
}

#[test]
fn errors_do_not_leak_the_number() {
    let n = us();
    for raw in ["555123", "+1555123456789", "sip:bob@h", "+999 123 456 789"] {
        let text = n.normalize(raw).unwrap_err().to_string();
        assert!(
            !text.contains("555123") && !text.contains("bob") && !text.contains("123 456"),
            "{text}"
        );
    }
}

#[test]
fn unknown_regions_are_refused() {
    assert!(matches!(
        PhoneNormalizer::new("XX"),
        Err(PhoneError::UnknownRegion { .. })
    ));
    assert!(matches!(
        PhoneNormalizer::new("USA"),
        Err(PhoneError::UnknownRegion { .. })
    ));
    assert!(matches!(
        PhoneNormalizer::new(""),
        Err(PhoneError::UnknownRegion { .. })
    ));
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic fuzz: every short string over a hostile alphabet.
    let alphabet: Vec<char> = "+0159 -()@:;<>\"sipté#*x\u{0}\u{feff}".chars().collect();
    let n = us();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 24) as usize;
        let s: String = (0..len)
            .map(|i| alphabet[((state >> (i % 8 * 8)) as usize + i) % alphabet.len()])
            .collect();
        let _ = n.normalize(&s);
    }
}
