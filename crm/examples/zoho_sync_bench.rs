//! Zoho sync throughput and caller-lookup latency under a sync, against the in-repo fake Zoho.
//!
//! 1. A full sync of `--contacts` CRM contacts (default 100,000) into an empty cache: records/s.
//! 2. `--cached` synthetic customers (default 1,000,000; the generator of store's
//!    `customer_lookup_bench`) are loaded; caller-ID lookups (the directory's
//!    `lookup_caller`, as before answering a call) are timed alone, then while a second full
//!    sync rewrites the 100,000 contacts.
//!
//! ```text
//! cargo run --release -p crm --example zoho_sync_bench
//! cargo run --release -p crm --example zoho_sync_bench -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! options: --contacts N (100000)  --cached N (1000000)  --lookups N (20000)
//! ```
//!
//! The fake runs in this process on loopback, so the numbers are the daemon's side (HTTP
//! client, JSON, mapping, database writes), not Zoho's latency or rate limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crm::zoho::{ClientSecret, DataCenter, SyncOptions, Zoho, ZohoConfig};
use crm::{CallerMatch, CustomerDirectory, PhoneNormalizer};
use rand::Rng;
use store::{Store, StoreOptions};
use testkit::zoho::{FakeZoho, Person};

#[path = "../../store/examples/common/synthetic.rs"]
mod synthetic;

struct Args {
    contacts: u64,
    cached: u64,
    lookups: u64,
    postgres: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        contacts: 100_000,
        cached: 1_000_000,
        lookups: 20_000,
        postgres: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--contacts" => args.contacts = number()?.max(1),
            "--cached" => args.cached = number()?,
            "--lookups" => args.lookups = number()?.max(1),
            "--postgres" => args.postgres = Some(value),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(args)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1e6
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{what}: {} lookups, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        times.len(),
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        times.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
    );
}

async fn lookup_once(
    dir: &CustomerDirectory,
    tenant: &store::TenantId,
    cached: u64,
    rng: &mut impl Rng,
) -> Duration {
    let number = synthetic::phone(rng.random_range(0..cached.max(1)));
    let t = Instant::now();
    let found = dir.lookup_caller(tenant, &number, 0).await.expect("lookup");
    let took = t.elapsed();
    assert!(matches!(found, CallerMatch::Found(_)) || cached == 0);
    took
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("zoho_sync_bench: {e}");
            std::process::exit(2);
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, scratch) = match &args.postgres {
        Some(admin) => {
            let name = format!("agent_zoho_bench_{}", std::process::id());
            admin_exec(admin, &format!("CREATE DATABASE {name}")).await;
            let (base, _) = admin
                .rsplit_once('/')
                .expect("postgres url names a database");
            (format!("{base}/{name}"), Some((admin.clone(), name)))
        }
        None => (format!("sqlite://{}/bench.db", dir.path().display()), None),
    };
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let tenant = store.create_tenant("bench", 0).await.expect("tenant").id;
    println!(
        "engine: {:?}, contacts: {}, cached: {}",
        store.backend(),
        args.contacts,
        args.cached
    );

    let fake = FakeZoho::start("1000.BENCH", "secret").await;
    fake.record_requests(false);
    for i in 0..args.contacts {
        fake.add_contact(&Person {
            email: Some(format!("c{i}@example.com")),
            company: Some(format!("Company {}", i % 5_000)),
            mobile: (i % 3 == 0).then(|| format!("+1556{:07}", 1_000_000 + i)),
            ..Person::new(
                "Contact",
                &format!("No{i}"),
                &format!("+1555{:07}", 1_000_000 + i),
            )
        });
    }
    let mut cfg = ZohoConfig::new(
        "1000.BENCH",
        ClientSecret::new("secret"),
        "https://x.example/cb",
    );
    cfg.accounts_servers
        .insert(DataCenter::Us, fake.accounts_server("us"));
    let ring = vault::Keyring::new(
        vault::EncryptionKey::from_bytes(&[9; 32]).expect("key"),
        vec![],
    );
    let zoho = Zoho::new(store.clone(), ring, cfg, PhoneNormalizer::default()).expect("zoho");
    let code = fake.issue_code("us");
    zoho.complete_authorization(&tenant, &code, None, None, Some(DataCenter::Us))
        .await
        .expect("connect");
    let options = SyncOptions {
        full: true,
        trigger: "bench".into(),
        node: "bench".into(),
    };

    // 1. Throughput into an empty cache.
    let report1 = zoho.sync(&tenant, &options, &|_| {}).await.expect("sync");
    let secs = report1.elapsed_ms as f64 / 1000.0;
    println!(
        "full sync into an empty cache: {} records, {} pages in {:.1} s = {:.0} records/s",
        report1.records(),
        report1.pages(),
        secs,
        report1.records() as f64 / secs
    );

    // 2. Lookups at `cached` customers, alone and during a sync.
    let started = Instant::now();
    let mut next = 0;
    while next < args.cached {
        let end = (next + 10_000).min(args.cached);
        let batch: Vec<_> = (next..end).map(synthetic::customer).collect();
        store
            .upsert_customers(&tenant, &batch, 1)
            .await
            .expect("load");
        next = end;
    }
    store.analyze().await.expect("analyze");
    let total = store.count_customers(&tenant).await.expect("count");
    println!(
        "loaded {} synthetic customers in {:.1} s ({} in the tenant)",
        args.cached,
        started.elapsed().as_secs_f64(),
        total
    );
    let directory = CustomerDirectory::new(store.clone(), PhoneNormalizer::default());
    let mut rng = rand::rng();
    for _ in 0..1_000 {
        lookup_once(&directory, &tenant, args.cached, &mut rng).await;
    }
    let mut alone = Vec::with_capacity(args.lookups as usize);
    for _ in 0..args.lookups {
        alone.push(lookup_once(&directory, &tenant, args.cached, &mut rng).await);
    }
    report("lookups, no sync", alone);

    let syncing = Arc::new(AtomicBool::new(true));
    let flag = syncing.clone();
    let z = zoho.clone();
    let t = tenant.clone();
    let sync = tokio::spawn(async move {
        let r = z.sync(&t, &options, &|_| {}).await;
        flag.store(false, Ordering::SeqCst);
        r
    });
    let mut during = Vec::new();
    while syncing.load(Ordering::SeqCst) {
        during.push(lookup_once(&directory, &tenant, args.cached, &mut rng).await);
    }
    let report2 = sync.await.expect("join").expect("second sync");
    let secs = report2.elapsed_ms as f64 / 1000.0;
    println!(
        "full sync over {} cached customers: {} records in {:.1} s = {:.0} records/s",
        total,
        report2.records(),
        secs,
        report2.records() as f64 / secs
    );
    report("lookups during that sync", during);

    store.close().await;
    if let Some((admin, name)) = scratch {
        admin_exec(
            &admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await;
    }
}

async fn admin_exec(admin_url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::Executor::execute(&mut conn, sql).await.expect(sql);
}
