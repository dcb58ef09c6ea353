//! Campaign contacts from a CSV or from the customer cache, and do-not-call CSVs.
//!
//! Contacts CSV: a header row, then one contact per row. Columns:
//!
//! | column | |
//! |---|---|
//! | `phone` | required; any shape [`PhoneNormalizer`] reads (national numbers in the default region) |
//! | `name` | optional |
//! | `time_zone` | optional IANA name(s), space separated; default: from the number's country, else the campaign's `default_time_zone` |
//! | `customer_id` | optional: the store's customer id |
//! | anything else | a flow variable of that name (empty cells are left out) |
//!
//! Parsing checks every row and reports every bad one with its line (the header is line 1);
//! callers create nothing unless the whole file is good. Errors never contain phone numbers.
//!
//! Do-not-call CSV: a header with a `phone` column (and optionally `reason`).

use std::collections::HashMap;
use std::fmt;
use std::io::Read;

use serde_json::{Map, Value};
use store::{DncSource, NewContact, NewDnc, Store, TenantId};

use super::zones::{parse_zones, zones_for_number};
use crate::phone::PhoneNormalizer;

/// Most rows a contacts or do-not-call CSV may have.
pub const MAX_ROWS: usize = 1_000_000;

/// Why one row was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RowProblem {
    #[error("malformed row: {0}")]
    Malformed(String),
    #[error("phone is required")]
    MissingPhone,
    #[error("phone: {0}")]
    BadPhone(#[from] crate::phone::PhoneError),
    #[error("time_zone: {0}")]
    BadZone(#[from] super::zones::UnknownZone),
    #[error(
        "no time zone: the number's country gives none; add a time_zone column or set the \
         campaign's default_time_zone"
    )]
    NoZone,
    #[error("the same number as line {0}")]
    Duplicate(u64),
}

/// A refused row and its line (1-based; the header is line 1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BadRow {
    pub line: u64,
    #[serde(serialize_with = "as_text")]
    pub problem: RowProblem,
}

fn as_text<S: serde::Serializer>(p: &RowProblem, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(p)
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

/// Why a CSV gave no contacts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    #[error("cannot read the CSV: {0}")]
    Read(#[source] csv::Error),
    #[error("the header has no \"phone\" column")]
    NoPhoneColumn,
    #[error("the CSV has no rows")]
    Empty,
    #[error("more than {MAX_ROWS} rows")]
    TooLarge,
    /// Some rows are bad: every one of them, in file order.
    #[error("{} invalid rows, first: {}", .0.len(), .0[0])]
    BadRows(Vec<BadRow>),
}

/// Reads a contacts CSV (see the module docs). `default_zone` is the campaign's
/// `default_time_zone`.
pub fn parse_contacts_csv(
    input: impl Read,
    phones: &PhoneNormalizer,
    default_zone: Option<&str>,
) -> Result<Vec<NewContact>, CsvError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader.headers().map_err(CsvError::Read)?.clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let phone_col = column("phone").ok_or(CsvError::NoPhoneColumn)?;
    let (name_col, zone_col, customer_col) =
        (column("name"), column("time_zone"), column("customer_id"));
    let reserved = [Some(phone_col), name_col, zone_col, customer_col];
    let variable_cols: Vec<(usize, String)> = headers
        .iter()
        .enumerate()
        .filter(|(i, _)| !reserved.contains(&Some(*i)))
        .map(|(i, h)| (i, h.to_owned()))
        .collect();

    let mut contacts = Vec::new();
    let mut bad = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        if contacts.len() + bad.len() >= MAX_ROWS {
            return Err(CsvError::TooLarge);
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                match e.kind() {
                    csv::ErrorKind::Io(_) => return Err(CsvError::Read(e)),
                    _ => {
                        bad.push(BadRow {
                            line,
                            problem: RowProblem::Malformed(short(&e)),
                        });
                        continue;
                    }
                }
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let cell = |i: Option<usize>| {
            i.and_then(|i| record.get(i))
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let result = (|| {
            let raw = cell(Some(phone_col)).ok_or(RowProblem::MissingPhone)?;
            let phone = phones.normalize(&raw)?.into_string();
            let time_zone = zone_for(&phone, cell(zone_col).as_deref(), default_zone)?;
            if let Some(&first) = seen.get(&phone) {
                return Err(RowProblem::Duplicate(first));
            }
            let mut variables = Map::new();
            for (i, name) in &variable_cols {
                if let Some(v) = record.get(*i).filter(|v| !v.is_empty()) {
                    variables.insert(name.clone(), Value::String(v.to_owned()));
                }
            }
            Ok(NewContact {
                line: i64::try_from(line).ok(),
                phone,
                name: cell(name_col),
                time_zone,
                variables,
                customer_id: cell(customer_col),
                callback_id: None,
                not_before: None,
            })
        })();
        match result {
            Ok(contact) => {
                seen.insert(contact.phone.clone(), line);
                contacts.push(contact);
            }
            Err(problem) => bad.push(BadRow { line, problem }),
        }
    }
    if !bad.is_empty() {
        return Err(CsvError::BadRows(bad));
    }
    if contacts.is_empty() {
        return Err(CsvError::Empty);
    }
    Ok(contacts)
}

/// The zones to store for a number: those given, else its country's, else the default.
pub fn zone_for(
    e164: &str,
    given: Option<&str>,
    default_zone: Option<&str>,
) -> Result<String, RowProblem> {
    if let Some(given) = given {
        parse_zones(given)?;
        return Ok(given
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" "));
    }
    if let Some(zones) = zones_for_number(e164) {
        return Ok(zones);
    }
    match default_zone {
        Some(zone) => {
            parse_zones(zone)?;
            Ok(zone.to_owned())
        }
        None => Err(RowProblem::NoZone),
    }
}

/// Reads a do-not-call CSV (`phone`, optional `reason`); every bad row is reported.
pub fn parse_dnc_csv(input: impl Read, phones: &PhoneNormalizer) -> Result<Vec<NewDnc>, CsvError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader.headers().map_err(CsvError::Read)?.clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let phone_col = column("phone").ok_or(CsvError::NoPhoneColumn)?;
    let reason_col = column("reason");
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for record in reader.records() {
        if out.len() + bad.len() >= MAX_ROWS {
            return Err(CsvError::TooLarge);
        }
        let record = match record {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => return Err(CsvError::Read(e)),
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                bad.push(BadRow {
                    line,
                    problem: RowProblem::Malformed(short(&e)),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let raw = record.get(phone_col).unwrap_or("");
        if raw.is_empty() {
            bad.push(BadRow {
                line,
                problem: RowProblem::MissingPhone,
            });
            continue;
        }
        match phones.normalize(raw) {
            Ok(phone) => out.push(NewDnc {
                phone: phone.into_string(),
                source: DncSource::Csv,
                reason: reason_col
                    .and_then(|i| record.get(i))
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                call_id: None,
            }),
            Err(e) => bad.push(BadRow {
                line,
                problem: e.into(),
            }),
        }
    }
    if !bad.is_empty() {
        return Err(CsvError::BadRows(bad));
    }
    if out.is_empty() {
        return Err(CsvError::Empty);
    }
    Ok(out)
}

/// Which customers of the cache a campaign calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerFilter {
    /// Only customers owing at least this much (minor units); default: any balance above 0.
    #[serde(default)]
    pub min_balance_minor: Option<i64>,
    /// Only balances in this currency (ISO 4217).
    #[serde(default)]
    pub currency: Option<String>,
}

/// Contacts for the customers `filter` selects, one per customer (mobile number first, then
/// work, home, other), with flow variables `caller_name` and `balance`. Customers whose number
/// gives no zone get `default_zone`, or are skipped (counted in the second value).
pub async fn contacts_from_customers(
    store: &Store,
    tenant_id: &TenantId,
    filter: &CustomerFilter,
    default_zone: Option<&str>,
) -> Result<(Vec<NewContact>, u64), store::StoreError> {
    let min = filter.min_balance_minor.unwrap_or(1);
    let rows = store
        .customers_to_call(tenant_id, min, filter.currency.as_deref())
        .await?;
    let mut contacts = Vec::with_capacity(rows.len());
    let mut skipped = 0;
    for c in rows {
        let Ok(time_zone) = zone_for(&c.phone, None, default_zone) else {
            skipped += 1;
            continue;
        };
        let mut variables = Map::new();
        variables.insert("caller_name".into(), Value::String(c.name.clone()));
        variables.insert(
            "balance".into(),
            Value::String(dialogs::tools::format_money(c.balance_minor, &c.currency)),
        );
        contacts.push(NewContact {
            line: None,
            phone: c.phone,
            name: Some(c.name),
            time_zone,
            variables,
            customer_id: Some(c.customer_id),
            callback_id: None,
            not_before: None,
        });
    }
    Ok((contacts, skipped))
}

fn short(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8".to_owned(),
        _ => "unreadable".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(csv: &str, default: Option<&str>) -> Result<Vec<NewContact>, CsvError> {
        parse_contacts_csv(csv.as_bytes(), &PhoneNormalizer::default(), default)
    }

    #[test]
    fn rows_become_contacts_with_variables_and_zones() {
        let csv = "phone,name,time_zone,amount,note\n\
                   (212) 555-0100,Ann,,12.50,\n\
                   +442079460000,Bob,Europe/London,,call late\n\
                   +74951234567,Ivan,,3,\n";
        let c = parse(csv, Some("Europe/Moscow")).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].phone, "+12125550100");
        assert_eq!(c[0].line, Some(2));
        assert!(c[0].time_zone.contains("America/Chicago"));
        assert_eq!(c[0].variables["amount"], "12.50");
        assert!(
            !c[0].variables.contains_key("note"),
            "empty cells are left out"
        );
        assert_eq!(c[1].time_zone, "Europe/London");
        assert_eq!(c[1].variables["note"], "call late");
        assert_eq!(c[2].time_zone, "Europe/Moscow", "default for Russia");
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let csv = "phone,name,time_zone\n\
                   +12125550100,Ann,\n\
                   anonymous,Bad,\n\
                   ,Empty,\n\
                   +12125550101,Zone,Mars/Base\n\
                   212-555-0100,Dup,\n\
                   +74951234567,NoZone,\n\
                   +12125550102,Short\n";
        let Err(CsvError::BadRows(rows)) = parse(csv, None) else {
            panic!("expected bad rows");
        };
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8]);
        assert!(matches!(rows[0].problem, RowProblem::BadPhone(_)));
        assert_eq!(rows[1].problem, RowProblem::MissingPhone);
        assert!(matches!(rows[2].problem, RowProblem::BadZone(_)));
        assert_eq!(rows[3].problem, RowProblem::Duplicate(2));
        assert_eq!(rows[4].problem, RowProblem::NoZone);
        assert!(matches!(rows[5].problem, RowProblem::Malformed(_)));
        // No number leaks into the messages.
        for r in &rows {
            assert!(!r.to_string().contains("555"), "{r}");
        }
    }

    #[test]
    fn header_problems() {
        assert!(matches!(
            parse("name\nAnn\n", None),
            Err(CsvError::NoPhoneColumn)
        ));
        assert!(matches!(parse("phone\n", None), Err(CsvError::Empty)));
    }

    #[test]
    fn dnc_csv() {
        let phones = PhoneNormalizer::default();
        let list = parse_dnc_csv("phone,reason\n2125550100,asked\n".as_bytes(), &phones).unwrap();
        assert_eq!(list[0].phone, "+12125550100");
        assert_eq!(list[0].reason.as_deref(), Some("asked"));
        let Err(CsvError::BadRows(rows)) =
            parse_dnc_csv("phone\n2125550100\nnope\n".as_bytes(), &phones)
        else {
            panic!()
        };
        assert_eq!(rows[0].line, 3);
    }
}
