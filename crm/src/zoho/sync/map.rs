//! Zoho records to cache rows: names, E.164 phones, exact money.

use store::{CrmCustomerUpsert, CustomerPhone, PhoneKind};

use crate::money::{parse_currency, parse_minor};
use crate::phone::PhoneNormalizer;
use crate::zoho::books::{Amount, BooksContact, BooksInvoice};
use crate::zoho::records::{CrmRecord, Module};

/// External id of a Books-only customer.
pub fn books_external_id(contact_id: &str) -> String {
    format!("zoho:books:{contact_id}")
}

/// External id of a CRM customer.
pub fn crm_external_id(module: Module, record_id: &str) -> String {
    format!("{}{record_id}", module.external_prefix())
}

/// `(module, record id)` of a CRM customer's external id.
pub fn parse_crm_external_id(external_id: &str) -> Option<(Module, &str)> {
    let rest = external_id.strip_prefix("zoho:crm:")?;
    let (module, id) = rest.split_once(':')?;
    if id.is_empty() {
        return None;
    }
    Some((Module::from_api_name(module)?, id))
}

/// Normalises each present number; unusable ones are dropped, duplicates kept once.
pub fn phones(
    normalizer: &PhoneNormalizer,
    raw: &[(Option<&str>, PhoneKind)],
) -> Vec<CustomerPhone> {
    let mut out: Vec<CustomerPhone> = Vec::new();
    for (text, kind) in raw {
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            continue;
        };
        let Ok(e164) = normalizer.normalize(text) else {
            continue;
        };
        if !out.iter().any(|p| p.e164 == e164.as_str()) {
            out.push(CustomerPhone {
                e164: e164.into_string(),
                kind: *kind,
            });
        }
    }
    out
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A CRM record as a cache row; `None` when it has no usable phone.
pub fn crm_customer(
    module: Module,
    record: &CrmRecord,
    normalizer: &PhoneNormalizer,
) -> Option<CrmCustomerUpsert> {
    let phones = phones(
        normalizer,
        &[
            (record.phone.as_deref(), PhoneKind::Work),
            (record.mobile.as_deref(), PhoneKind::Mobile),
            (record.home_phone.as_deref(), PhoneKind::Home),
            (record.other_phone.as_deref(), PhoneKind::Other),
            (record.asst_phone.as_deref(), PhoneKind::Other),
        ],
    );
    if phones.is_empty() {
        return None;
    }
    let joined = [non_empty(&record.first_name), non_empty(&record.last_name)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let name = non_empty(&record.full_name)
        .or_else(|| (!joined.is_empty()).then_some(joined))
        .or_else(|| non_empty(&record.email))
        .unwrap_or_else(|| "Unknown".to_owned());
    let company = match module {
        Module::Contacts => record
            .account_name
            .as_ref()
            .and_then(|a| non_empty(&a.name)),
        Module::Leads => non_empty(&record.company),
    };
    let postal_code = match module {
        Module::Contacts => non_empty(&record.mailing_zip),
        Module::Leads => non_empty(&record.zip_code),
    };
    Some(CrmCustomerUpsert {
        external_id: crm_external_id(module, &record.id),
        zoho_contact_id: record.id.clone(),
        name,
        company,
        email: non_empty(&record.email),
        postal_code,
        phones,
    })
}

/// A Books contact's numbers.
pub fn books_phones(contact: &BooksContact, normalizer: &PhoneNormalizer) -> Vec<CustomerPhone> {
    phones(
        normalizer,
        &[
            (contact.phone.as_deref(), PhoneKind::Work),
            (contact.mobile.as_deref(), PhoneKind::Mobile),
        ],
    )
}

/// A Books contact's display name.
pub fn books_name(contact: &BooksContact) -> String {
    non_empty(&contact.contact_name)
        .or_else(|| non_empty(&contact.company_name))
        .unwrap_or_else(|| "Unknown".to_owned())
}

/// Whether the contact is one of the business's customers (not only a vendor) and active.
pub fn books_is_active_customer(contact: &BooksContact) -> bool {
    let customer = !matches!(contact.contact_type.as_deref(), Some("vendor"));
    let active = !matches!(contact.status.as_deref(), Some("inactive"));
    customer && active
}

/// An amount in minor units of `currency`; an empty amount is zero.
pub fn minor(amount: Option<&Amount>, currency: &str) -> Option<i64> {
    match amount.map(|a| a.0.as_str()).filter(|a| !a.is_empty()) {
        None => Some(0),
        Some(text) => parse_minor(text, currency).ok(),
    }
}

/// The contact's receivable balance as `(minor units, currency)`.
pub fn books_balance(contact: &BooksContact, default_currency: &str) -> Option<(i64, String)> {
    let currency = contact
        .currency_code
        .as_deref()
        .and_then(|c| parse_currency(c).ok())
        .unwrap_or_else(|| default_currency.to_owned());
    let balance = minor(contact.outstanding_receivable_amount.as_ref(), &currency)?;
    Some((balance, currency))
}

/// Books invoice statuses in the cache's vocabulary: sent, viewed and unpaid are "open" (what
/// flows speak of); the rest keep Books' name (draft, overdue, partially_paid, paid, void).
pub fn invoice_status(status: Option<&str>) -> String {
    match status.unwrap_or("open") {
        "sent" | "viewed" | "unpaid" => "open".to_owned(),
        other => other.to_owned(),
    }
}

/// An invoice's cache fields: `(number, status, total, balance, currency, issue, due)`.
pub struct InvoiceFields {
    pub number: String,
    pub status: String,
    pub total_minor: i64,
    pub balance_minor: i64,
    pub currency: String,
    pub issue_date: Option<String>,
    pub due_date: String,
}

/// Reads an invoice; `None` when an amount or date is unusable.
pub fn invoice_fields(invoice: &BooksInvoice, default_currency: &str) -> Option<InvoiceFields> {
    let currency = invoice
        .currency_code
        .as_deref()
        .and_then(|c| parse_currency(c).ok())
        .unwrap_or_else(|| default_currency.to_owned());
    let date = |d: &Option<String>| {
        d.as_deref()
            .map(str::trim)
            .filter(|d| d.len() == 10 && d.as_bytes()[4] == b'-' && d.as_bytes()[7] == b'-')
            .map(str::to_owned)
    };
    let issue_date = date(&invoice.date);
    let due_date = date(&invoice.due_date).or_else(|| issue_date.clone())?;
    Some(InvoiceFields {
        number: non_empty(&invoice.invoice_number).unwrap_or_else(|| invoice.invoice_id.clone()),
        status: invoice_status(invoice.status.as_deref()),
        total_minor: minor(invoice.total.as_ref(), &currency)?,
        balance_minor: minor(invoice.balance.as_ref(), &currency)?,
        currency,
        issue_date,
        due_date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crm_records_map_to_customers() {
        let n = PhoneNormalizer::default();
        let rec = CrmRecord {
            id: "42".into(),
            first_name: Some("Jane".into()),
            last_name: Some("Doe".into()),
            phone: Some("(555) 014-2000".into()),
            mobile: Some("+1 555 014 2000".into()),
            home_phone: Some("not a number".into()),
            company: Some("Ignored for contacts".into()),
            ..CrmRecord::default()
        };
        let c = crm_customer(Module::Contacts, &rec, &n).unwrap();
        assert_eq!(c.external_id, "zoho:crm:Contacts:42");
        assert_eq!(c.name, "Jane Doe");
        assert_eq!(c.company, None);
        assert_eq!(c.phones.len(), 1, "same number once, junk dropped");
        assert_eq!(c.phones[0].e164, "+15550142000");
        let no_phone = CrmRecord {
            id: "43".into(),
            email: Some("x@example.com".into()),
            ..CrmRecord::default()
        };
        assert!(crm_customer(Module::Leads, &no_phone, &n).is_none());
        assert_eq!(
            parse_crm_external_id("zoho:crm:Leads:9"),
            Some((Module::Leads, "9"))
        );
        assert_eq!(parse_crm_external_id("zoho:books:9"), None);
        assert_eq!(parse_crm_external_id("zoho:crm:Deals:9"), None);
    }

    #[test]
    fn money_is_exact() {
        assert_eq!(minor(Some(&Amount("1369.66".into())), "USD"), Some(136_966));
        assert_eq!(minor(Some(&Amount("0.1".into())), "USD"), Some(10));
        assert_eq!(minor(Some(&Amount("500".into())), "JPY"), Some(500));
        assert_eq!(minor(None, "USD"), Some(0));
        assert_eq!(minor(Some(&Amount("1e3".into())), "USD"), None);
        assert_eq!(invoice_status(Some("sent")), "open");
        assert_eq!(invoice_status(Some("overdue")), "overdue");
    }
}
