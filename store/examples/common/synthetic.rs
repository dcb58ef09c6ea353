//! Synthetic customers for the benchmarks (`customer_lookup_bench`, crm's `zoho_sync_bench`):
//! distinct numbers, every tenth customer with a second one.

use store::{CustomerPhone, CustomerUpsert, PhoneKind};

/// Customer `i`'s number: distinct for every i below 10^9 (`+1` + 10 digits).
pub fn phone(i: u64) -> String {
    format!("+1{}", 2_000_000_000 + i)
}

pub fn customer(i: u64) -> CustomerUpsert {
    let mut phones = vec![CustomerPhone {
        e164: phone(i),
        kind: PhoneKind::Work,
    }];
    if i.is_multiple_of(10) {
        // Every tenth customer has a second (mobile) number, as real data does.
        phones.push(CustomerPhone {
            e164: format!("+1{}", 8_000_000_000 + i),
            kind: PhoneKind::Mobile,
        });
    }
    CustomerUpsert {
        external_id: format!("C-{i}"),
        zoho_contact_id: None,
        zoho_books_id: None,
        name: format!("Customer {i}"),
        company: Some(format!("Company {}", i % 5_000)),
        email: Some(format!("c{i}@example.com")),
        postal_code: Some(format!("{:05}", i % 100_000)),
        balance_minor: (i as i64 * 7_919) % 1_000_000,
        currency: "USD".to_owned(),
        phones,
    }
}
