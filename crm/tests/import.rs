//! CSV import into the customers cache, on SQLite and PostgreSQL.

// Shared with the store's own tests; formatted by its owners, not by `cargo fmt -p crm`.
#[path = "../../store/tests/common/mod.rs"]
#[rustfmt::skip]
#[macro_use]
mod common;

use common::{Engine, TestDb};
use crm::{
    CallerMatch, CustomerDirectory, ImportError, ImportOptions, ImportReport, MoneyError,
    PhoneError, PhoneNormalizer, RowError, import_customers, import_invoices,
};
use store::{PhoneKind, Store, TenantId};

both_engines!(
    good_rows_are_imported_with_exact_money_and_e164_phones,
    bad_rows_are_rejected_with_line_and_reason_and_the_rest_imports,
    reimport_and_repeated_ids_update,
    header_problems_stop_the_import_before_writing,
    invoices_import_after_customers,
    files_on_disk_import_through_the_path_api,
);

fn options() -> ImportOptions {
    ImportOptions::new(PhoneNormalizer::new("US").unwrap())
        .with_now_ms(1_000)
        .with_batch_size(2)
}

async fn customers(store: &Store, tenant: &TenantId, csv: &str) -> ImportReport {
    import_customers(store, tenant, csv.as_bytes(), &options())
        .await
        .unwrap()
}

const GOOD: &str = "\
external_id,name,company,email,phone,postal_code,balance,currency
C-1001,Jane Doe,Doe Bakery,jane@example.com,+15551234567;mobile:(555) 765-4321,94107,142.50,USD
C-1002,Bob Roe,,bob@example.com,5559876543,,\"1,234.5\",usd
C-1003,Ann Lee,Lee Ltd,,,SW1A 1AA,0.1,GBP
C-1004,Ken Sato,,,+81 3-1234-5678,,500,JPY
";

async fn good_rows_are_imported_with_exact_money_and_e164_phones(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap();
    let report = customers(store, &t.id, GOOD).await;
    assert_eq!(
        (report.inserted, report.updated, report.rejected_count),
        (4, 0, 0),
        "{report:?}"
    );
    assert!(report.rejected.is_empty());
    assert_eq!(report.to_string(), "4 inserted, 0 updated, 0 rejected");

    let jane = store
        .customer_by_external_id(&t.id, "C-1001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (jane.balance_minor, jane.currency.as_str()),
        (14_250, "USD")
    );
    assert_eq!(jane.company.as_deref(), Some("Doe Bakery"));
    assert_eq!(jane.postal_code.as_deref(), Some("94107"));
    assert_eq!(jane.updated_at, 1_000);
    let phones = store.customer_phones(&t.id, &jane.id).await.unwrap();
    let phones: Vec<_> = phones.iter().map(|p| (p.e164.as_str(), p.kind)).collect();
    assert_eq!(
        phones,
        [
            ("+15551234567", PhoneKind::Work),
            ("+15557654321", PhoneKind::Mobile)
        ]
    );

    let bob = store
        .customer_by_external_id(&t.id, "C-1002")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (bob.balance_minor, bob.currency.as_str(), bob.company),
        (123_450, "USD", None)
    );
    let ann = store
        .customer_by_external_id(&t.id, "C-1003")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ann.balance_minor, 10, "0.1 is exactly ten pence");
    assert!(
        store
            .customer_phones(&t.id, &ann.id)
            .await
            .unwrap()
            .is_empty()
    );
    let ken = store
        .customer_by_external_id(&t.id, "C-1004")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ken.balance_minor, 500, "yen have no minor unit");

    let dir = CustomerDirectory::new(store.clone(), PhoneNormalizer::new("US").unwrap());
    for caller in ["sip:+15559876543@trunk", "5559876543", "1 (555) 987-6543"] {
        let CallerMatch::Found(found) = dir.lookup_caller(&t.id, caller, 5).await.unwrap() else {
            panic!("{caller} not found");
        };
        assert_eq!(found.customer.name, "Bob Roe");
    }
}

const BAD: &str = "\
external_id,name,phone,balance,currency
C-1,Good One,+15550000001,10.00,USD
C-2,Too Precise,+15550000002,12.345,USD
C-3,Not Money,+15550000003,$12,USD
C-4,Bad Phone,+15550000004;call me maybe,1,USD
,No Id,+15550000005,1,USD
C-6,\"Multi
Line Name\",+15550000006,1,USD
C-7,Bad Currency,+15550000007,1,dollars
C-8,Short Row
C-9,Good Two,,,EUR
C-10,Bad Kind,fax:+15550000010,1,USD
C-11,No Currency,+15550000011,5,
C-12,Short Number,555123,1,USD
";

async fn bad_rows_are_rejected_with_line_and_reason_and_the_rest_imports(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap();
    let report = customers(store, &t.id, BAD).await;
    assert_eq!((report.inserted, report.updated), (3, 0), "{report:#?}");
    let got: Vec<(u64, Option<&str>)> = report
        .rejected
        .iter()
        .map(|r| (r.line, r.key.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (3, Some("C-2")),
            (4, Some("C-3")),
            (5, Some("C-4")),
            (6, None),
            (9, Some("C-7")),
            (10, Some("C-8")),
            (12, Some("C-10")),
            (13, Some("C-11")),
            (14, Some("C-12")),
        ],
        "line numbers count the multi-line field of C-6 (lines 7-8)"
    );
    assert_eq!(report.rejected_count, 9);
    let reasons: Vec<&RowError> = report.rejected.iter().map(|r| &r.reason).collect();
    assert!(matches!(
        reasons[0],
        RowError::BadMoney {
            field: "balance",
            source: MoneyError::TooManyDecimals { .. }
        }
    ));
    assert!(matches!(
        reasons[1],
        RowError::BadMoney {
            source: MoneyError::NotANumber(_),
            ..
        }
    ));
    assert!(matches!(
        reasons[2],
        RowError::BadPhone {
            position: 2,
            source: PhoneError::NotANumber
        }
    ));
    assert!(matches!(
        reasons[3],
        RowError::MissingField {
            field: "external_id"
        }
    ));
    assert!(matches!(
        reasons[4],
        RowError::BadMoney {
            field: "currency",
            ..
        }
    ));
    assert!(matches!(reasons[5], RowError::Malformed { .. }));
    assert!(matches!(
        reasons[6],
        RowError::BadPhoneKind { position: 1, .. }
    ));
    assert!(matches!(
        reasons[7],
        RowError::MissingField { field: "currency" }
    ));
    assert!(matches!(reasons[8], RowError::BadPhone { position: 1, .. }));
    assert_eq!(
        report.rejected[0].to_string(),
        "line 3 (C-2): balance: amount \"12.345\" has more than 2 decimals for USD"
    );

    let multi = store
        .customer_by_external_id(&t.id, "C-6")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(multi.name, "Multi\nLine Name");
    let two = store
        .customer_by_external_id(&t.id, "C-9")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (two.balance_minor, two.currency.as_str()),
        (0, "EUR"),
        "empty balance is zero"
    );
    assert!(
        store
            .customer_by_external_id(&t.id, "C-4")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.count_customers(&t.id).await.unwrap(), 3);

    // Invalid UTF-8 is one rejected row too.
    let mut bytes = b"external_id,name,currency\nC-20,Ok,USD\nC-21,Bad \xff name,USD\n".to_vec();
    bytes.extend_from_slice(b"C-22,Fine,USD\n");
    let report = import_customers(store, &t.id, &bytes[..], &options())
        .await
        .unwrap();
    assert_eq!((report.inserted, report.rejected_count), (2, 1));
    assert_eq!(report.rejected[0].line, 3);
    assert!(matches!(
        report.rejected[0].reason,
        RowError::Malformed { .. }
    ));
}

async fn reimport_and_repeated_ids_update(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap();
    customers(store, &t.id, GOOD).await;
    let changed = "\
external_id,name,phone,balance,currency
C-1001,Jane Smith,+15550001111,0,USD
C-2000,New Person,+15550002222,1,USD
C-2000,New Person Renamed,+15550003333,2,USD
";
    let report = customers(store, &t.id, changed).await;
    assert_eq!(
        (report.inserted, report.updated, report.rejected_count),
        (1, 2, 0),
        "{report:?}"
    );
    let jane = store
        .customer_by_external_id(&t.id, "C-1001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((jane.name.as_str(), jane.balance_minor), ("Jane Smith", 0));
    assert_eq!(
        jane.company, None,
        "a re-import replaces the record, empty columns included"
    );
    let phones = store.customer_phones(&t.id, &jane.id).await.unwrap();
    assert_eq!(phones.len(), 1, "phones are replaced, not merged");
    let renamed = store
        .customer_by_external_id(&t.id, "C-2000")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.balance_minor),
        ("New Person Renamed", 200)
    );
    assert_eq!(store.count_customers(&t.id).await.unwrap(), 5);
    // Another tenant importing the same file gets its own customers.
    let other = store.create_tenant("globex", 1).await.unwrap();
    let report = customers(store, &other.id, GOOD).await;
    assert_eq!(report.inserted, 4);
}

async fn header_problems_stop_the_import_before_writing(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap();
    let opts = options();
    type Check = fn(&ImportError) -> bool;
    let cases: [(&str, Check); 4] = [
        (
            "external_id,name,phnoe,currency\nC-1,A,1,USD\n",
            |e| matches!(e, ImportError::UnknownColumn { column } if column == "phnoe"),
        ),
        ("name,currency\nA,USD\n", |e| {
            matches!(
                e,
                ImportError::MissingColumn {
                    column: "external_id"
                }
            )
        }),
        ("external_id,name,Name\nC-1,A,B\n", |e| {
            matches!(e, ImportError::DuplicateColumn { .. })
        }),
        ("", |e| matches!(e, ImportError::MissingColumn { .. })),
    ];
    for (csv, expected) in cases {
        let err = import_customers(store, &t.id, csv.as_bytes(), &opts)
            .await
            .unwrap_err();
        assert!(expected(&err), "{csv:?}: {err:?}");
    }
    // A BOM and odd header case/spacing are fine.
    let report = customers(
        store,
        &t.id,
        "\u{feff}External_ID , NAME,Currency\nC-1,A,USD\n",
    )
    .await;
    assert_eq!(report.inserted, 1);
    assert_eq!(store.count_customers(&t.id).await.unwrap(), 1);
}

async fn invoices_import_after_customers(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap();
    customers(store, &t.id, GOOD).await;
    let invoices = "\
customer_external_id,number,status,total,balance,currency,due_date,issue_date
C-1001,INV-2041,overdue,92.50,92.50,USD,2025-05-01,2025-04-01
C-1001,INV-1987,Open,50,50.00,USD,2025-06-15,
C-9999,INV-0001,open,1,1,USD,2025-01-01,
C-1002,INV-3001,open,1,1,USD,2025-02-30,
C-1002,INV-3002,in progress,1,1,USD,2025-02-01,
C-1002,INV-3003,paid,10.001,0,USD,2025-02-01,
C-1002,INV-3004,paid,10,0,USD,,
C-1002,INV-3005,paid,99.99,0,USD,2025-03-01,2025-02-01
";
    let report = import_invoices(store, &t.id, invoices.as_bytes(), &options())
        .await
        .unwrap();
    assert_eq!((report.inserted, report.updated), (3, 0), "{report:#?}");
    let got: Vec<(u64, &str)> = report
        .rejected
        .iter()
        .map(|r| (r.line, r.key.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        got,
        [
            (4, "INV-0001"),
            (5, "INV-3001"),
            (6, "INV-3002"),
            (7, "INV-3003"),
            (8, "INV-3004")
        ]
    );
    assert!(
        matches!(&report.rejected[0].reason, RowError::UnknownCustomer { external_id } if external_id == "C-9999")
    );
    assert!(matches!(
        report.rejected[1].reason,
        RowError::BadDate {
            field: "due_date",
            ..
        }
    ));
    assert!(matches!(
        report.rejected[2].reason,
        RowError::BadStatus { .. }
    ));
    assert!(matches!(
        report.rejected[3].reason,
        RowError::BadMoney { field: "total", .. }
    ));
    assert!(matches!(
        report.rejected[4].reason,
        RowError::MissingField { field: "due_date" }
    ));

    let dir = CustomerDirectory::new(store.clone(), PhoneNormalizer::new("US").unwrap());
    let CallerMatch::Found(jane) = dir.lookup_caller(&t.id, "+15551234567", 10).await.unwrap()
    else {
        panic!("jane not found");
    };
    let numbers: Vec<_> = jane.invoices.iter().map(|i| i.number.as_str()).collect();
    assert_eq!(numbers, ["INV-1987", "INV-2041"], "latest due date first");
    assert_eq!(jane.invoices[1].total_minor, 9_250);
    assert_eq!(jane.invoices[0].status, "open", "status is lower-cased");
    assert_eq!(jane.invoices[1].issue_date.as_deref(), Some("2025-04-01"));

    let paid = "\
customer_external_id,number,status,total,balance,currency,due_date
C-1001,INV-2041,paid,92.50,0,USD,2025-05-01
";
    let report = import_invoices(store, &t.id, paid.as_bytes(), &options())
        .await
        .unwrap();
    assert_eq!((report.inserted, report.updated), (0, 1));
    let list = store
        .invoices_for_customer(&t.id, &jane.customer.id, 10)
        .await
        .unwrap();
    assert_eq!(
        (list[1].status.as_str(), list[1].balance_minor),
        ("paid", 0)
    );
}

async fn files_on_disk_import_through_the_path_api(store: &Store) {
    let t = store.create_tenant("acme", 1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("customers.csv");
    std::fs::write(&path, GOOD).unwrap();
    let report = crm::import_csv(store, &t.id, &path, "US").await.unwrap();
    assert_eq!(report.inserted, 4);
    let inv = dir.path().join("invoices.csv");
    std::fs::write(
        &inv,
        "customer_external_id,number,status,total,balance,currency,due_date\n\
         C-1003,A-1,open,1.50,1.50,GBP,2026-01-01\n",
    )
    .unwrap();
    let report = crm::import_invoices_csv(store, &t.id, &inv).await.unwrap();
    assert_eq!(report.inserted, 1);

    let missing = crm::import_csv(store, &t.id, &dir.path().join("nope.csv"), "US").await;
    assert!(
        matches!(missing, Err(ImportError::Open { .. })),
        "{missing:?}"
    );
    let region = crm::import_csv(store, &t.id, &path, "Narnia").await;
    assert!(matches!(
        region,
        Err(ImportError::Region(PhoneError::UnknownRegion { .. }))
    ));
}
