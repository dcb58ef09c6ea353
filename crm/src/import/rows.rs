//! Reading CSV rows by header name and turning them into store upserts.

use std::collections::HashMap;
use std::io::Read;

use store::{CustomerPhone, CustomerUpsert, InvoiceUpsert, PhoneKind};

use super::{ImportError, RejectedRow, RowError};
use crate::money::{parse_currency, parse_minor};
use crate::phone::PhoneNormalizer;

/// The columns a file may have.
pub(super) struct Columns {
    required: &'static [&'static str],
    optional: &'static [&'static str],
    /// The column whose value names the row in rejections.
    key: &'static str,
}

impl Columns {
    pub(super) const CUSTOMERS: Columns = Columns {
        required: &["external_id", "name"],
        optional: &[
            "company",
            "email",
            "phone",
            "postal_code",
            "balance",
            "currency",
            "zoho_contact_id",
            "zoho_books_id",
        ],
        key: "external_id",
    };
    pub(super) const INVOICES: Columns = Columns {
        required: &[
            "customer_external_id",
            "number",
            "status",
            "total",
            "balance",
            "currency",
            "due_date",
        ],
        optional: &["issue_date", "zoho_invoice_id"],
        key: "number",
    };
}

/// One data row: its line and its fields by column name (trimmed; empty means absent).
pub(super) struct Row {
    pub(super) line: u64,
    fields: HashMap<&'static str, String>,
}

impl Row {
    fn get(&self, column: &'static str) -> Option<&str> {
        self.fields
            .get(column)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn require(&self, column: &'static str) -> Result<&str, RowError> {
        self.get(column)
            .ok_or(RowError::MissingField { field: column })
    }

    fn owned(&self, column: &'static str) -> Option<String> {
        self.get(column).map(str::to_owned)
    }

    fn reject(&self, key: &'static str, reason: RowError) -> RejectedRow {
        RejectedRow {
            line: self.line,
            key: self.owned(key),
            reason,
        }
    }
}

/// Reads rows of a CSV whose header must match `Columns`.
pub(super) struct RowReader<R> {
    csv: csv::Reader<R>,
    /// Position in the record → column name (None: unreachable since unknown columns fail).
    names: Vec<&'static str>,
    key: &'static str,
    record: csv::ByteRecord,
    failure: Option<csv::Error>,
}

impl<R: Read> RowReader<R> {
    pub(super) fn new(input: R, columns: &Columns) -> Result<RowReader<R>, ImportError> {
        // flexible: a row with the wrong number of fields is one rejected row, checked below,
        // not a reader error.
        let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(input);
        let header = csv
            .byte_headers()
            .map_err(|source| ImportError::Read { source })?
            .clone();
        let mut names = Vec::with_capacity(header.len());
        for raw in header.iter() {
            let text = String::from_utf8_lossy(raw);
            let name = text
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase();
            let known = columns
                .required
                .iter()
                .chain(columns.optional)
                .find(|c| **c == name);
            let Some(known) = known else {
                return Err(ImportError::UnknownColumn { column: name });
            };
            if names.contains(known) {
                return Err(ImportError::DuplicateColumn { column: name });
            }
            names.push(*known);
        }
        if let Some(missing) = columns.required.iter().find(|c| !names.contains(c)) {
            return Err(ImportError::MissingColumn { column: missing });
        }
        Ok(RowReader {
            csv,
            names,
            key: columns.key,
            record: csv::ByteRecord::new(),
            failure: None,
        })
    }

    /// The next row, a rejection, or None at the end (or on an I/O error: see `finish`).
    pub(super) fn next_row(&mut self) -> Option<Result<Row, RejectedRow>> {
        match self.csv.read_byte_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => Some(self.current()),
            Err(e) => {
                let line = e.position().map(|p| p.line());
                match (line, e.is_io_error()) {
                    (Some(line), false) => Some(Err(RejectedRow {
                        line,
                        key: None,
                        reason: RowError::Malformed {
                            detail: e.to_string(),
                        },
                    })),
                    _ => {
                        self.failure = Some(e);
                        None
                    }
                }
            }
        }
    }

    /// Fails with the I/O error that ended reading early, if any.
    pub(super) fn finish(self) -> Result<(), ImportError> {
        match self.failure {
            Some(source) => Err(ImportError::Read { source }),
            None => Ok(()),
        }
    }

    fn current(&self) -> Result<Row, RejectedRow> {
        let line = self.record.position().map_or(0, |p| p.line());
        let mut fields = HashMap::with_capacity(self.names.len());
        let mut bad_utf8 = None;
        for (name, raw) in self.names.iter().zip(self.record.iter()) {
            match std::str::from_utf8(raw) {
                Ok(text) => {
                    fields.insert(*name, text.trim().to_owned());
                }
                Err(_) => bad_utf8 = Some(*name),
            }
        }
        let row = Row { line, fields };
        if self.record.len() != self.names.len() {
            let detail = format!(
                "expected {} fields, found {}",
                self.names.len(),
                self.record.len()
            );
            return Err(row.reject(self.key, RowError::Malformed { detail }));
        }
        if let Some(column) = bad_utf8 {
            let detail = format!("{column} is not valid UTF-8");
            return Err(row.reject(self.key, RowError::Malformed { detail }));
        }
        Ok(row)
    }
}

/// A valid customers row.
pub(super) struct CustomerRow(pub(super) CustomerUpsert);

impl CustomerRow {
    pub(super) fn parse(row: &Row, phones: &PhoneNormalizer) -> Result<CustomerRow, RejectedRow> {
        Self::fields(row, phones).map_err(|reason| row.reject("external_id", reason))
    }

    fn fields(row: &Row, normalizer: &PhoneNormalizer) -> Result<CustomerRow, RowError> {
        let external_id = row.require("external_id")?.to_owned();
        let name = row.require("name")?.to_owned();
        let currency = currency(row)?;
        let balance_minor = match row.get("balance") {
            Some(text) => parse_minor(text, &currency).map_err(|source| RowError::BadMoney {
                field: "balance",
                source,
            })?,
            None => 0,
        };
        let email = row.owned("email");
        if let Some(e) = &email
            && !plausible_email(e)
        {
            return Err(RowError::BadEmail);
        }
        let mut phones = Vec::new();
        let entries = row.get("phone").unwrap_or("").split(';').map(str::trim);
        for (i, entry) in entries.filter(|e| !e.is_empty()).enumerate() {
            let position = i + 1;
            let (kind, number) = phone_kind(entry, position)?;
            let e164 = normalizer
                .normalize(number)
                .map_err(|source| RowError::BadPhone { position, source })?;
            phones.push(CustomerPhone {
                e164: e164.into_string(),
                kind,
            });
        }
        Ok(CustomerRow(CustomerUpsert {
            external_id,
            zoho_contact_id: row.owned("zoho_contact_id"),
            zoho_books_id: row.owned("zoho_books_id"),
            name,
            company: row.owned("company"),
            email,
            postal_code: row.owned("postal_code"),
            balance_minor,
            currency,
            phones,
        }))
    }
}

/// A valid invoices row, its customer still named by external id.
pub(super) struct InvoiceRow {
    pub(super) customer_external_id: String,
    /// `customer_id` is empty until [`InvoiceRow::into_upsert`].
    pub(super) invoice: InvoiceUpsert,
}

impl InvoiceRow {
    pub(super) fn parse(row: &Row) -> Result<InvoiceRow, RejectedRow> {
        Self::fields(row).map_err(|reason| row.reject("number", reason))
    }

    pub(super) fn into_upsert(mut self, customer_id: String) -> InvoiceUpsert {
        self.invoice.customer_id = customer_id;
        self.invoice
    }

    fn fields(row: &Row) -> Result<InvoiceRow, RowError> {
        let customer_external_id = row.require("customer_external_id")?.to_owned();
        let number = row.require("number")?.to_owned();
        let status = row.require("status")?.to_ascii_lowercase();
        if !status.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(RowError::BadStatus { value: status });
        }
        let currency = currency(row)?;
        let total_minor =
            parse_minor(row.require("total")?, &currency).map_err(|source| RowError::BadMoney {
                field: "total",
                source,
            })?;
        let balance_minor = parse_minor(row.require("balance")?, &currency).map_err(|source| {
            RowError::BadMoney {
                field: "balance",
                source,
            }
        })?;
        let due_date =
            date(row, "due_date")?.ok_or(RowError::MissingField { field: "due_date" })?;
        let issue_date = date(row, "issue_date")?;
        Ok(InvoiceRow {
            customer_external_id,
            invoice: InvoiceUpsert {
                customer_id: String::new(),
                number,
                zoho_invoice_id: row.owned("zoho_invoice_id"),
                status,
                total_minor,
                balance_minor,
                currency,
                issue_date,
                due_date,
            },
        })
    }
}

fn currency(row: &Row) -> Result<String, RowError> {
    let text = row.require("currency")?;
    parse_currency(text).map_err(|source| RowError::BadMoney {
        field: "currency",
        source,
    })
}

/// `mobile:+1555…` → (Mobile, "+1555…"); a bare number is `work`.
fn phone_kind(entry: &str, position: usize) -> Result<(PhoneKind, &str), RowError> {
    let Some((prefix, number)) = entry.split_once(':') else {
        return Ok((PhoneKind::Work, entry));
    };
    let kind = match prefix.trim().to_ascii_lowercase().as_str() {
        "work" => PhoneKind::Work,
        "mobile" | "cell" => PhoneKind::Mobile,
        "home" => PhoneKind::Home,
        "other" => PhoneKind::Other,
        // A URI (`tel:`, `sip:`) is a number, not a kind; the normaliser unwraps it.
        "tel" | "sip" | "sips" => return Ok((PhoneKind::Work, entry)),
        other => {
            return Err(RowError::BadPhoneKind {
                position,
                kind: other.to_owned(),
            });
        }
    };
    Ok((kind, number.trim()))
}

/// One `@` with something on both sides, a dot in the domain, no spaces. Deliberately loose:
/// the point is catching shifted columns, not validating RFC 5322.
fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace)
}

/// A real calendar date as `YYYY-MM-DD`, or None when the field is empty.
fn date(row: &Row, field: &'static str) -> Result<Option<String>, RowError> {
    let Some(text) = row.get(field) else {
        return Ok(None);
    };
    if is_iso_date(text) {
        Ok(Some(text.to_owned()))
    } else {
        Err(RowError::BadDate {
            field,
            value: text.to_owned(),
        })
    }
}

pub(super) fn is_iso_date(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = &text[r];
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (Some(year), Some(month), Some(day)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1900 && (1..=days).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_real_calendar_days() {
        for ok in ["2026-01-31", "2024-02-29", "2000-02-29", "1999-12-01"] {
            assert!(is_iso_date(ok), "{ok}");
        }
        for bad in [
            "2026-02-29",
            "1900-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-1-01",
            "26-01-01",
            "2026/01/01",
            "2026-01-32",
            "+026-01-01",
        ] {
            assert!(!is_iso_date(bad), "{bad}");
        }
    }

    #[test]
    fn phone_kinds_and_emails() {
        assert_eq!(
            phone_kind("mobile: +1555", 1).unwrap(),
            (PhoneKind::Mobile, "+1555")
        );
        assert_eq!(
            phone_kind("5551234567", 1).unwrap(),
            (PhoneKind::Work, "5551234567")
        );
        assert_eq!(
            phone_kind("tel:+1555", 1).unwrap(),
            (PhoneKind::Work, "tel:+1555")
        );
        assert!(matches!(
            phone_kind("fax:1", 2),
            Err(RowError::BadPhoneKind { position: 2, .. })
        ));
        assert!(plausible_email("jane@example.com"));
        for bad in [
            "jane",
            "@example.com",
            "jane@example",
            "ja ne@example.com",
            "a@b@c.d",
        ] {
            assert!(!plausible_email(bad), "{bad}");
        }
    }
}
