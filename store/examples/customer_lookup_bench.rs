//! Caller-ID lookup latency at scale: loads N synthetic customers (default 1,000,000) with
//! multi-row INSERTs in batched transactions, then times random lookups by phone number
//! through [`Store::customers_by_phone`] (the query the directory runs before answering).
//!
//! ```text
//! cargo run --release -p store --example customer_lookup_bench
//! cargo run --release -p store --example customer_lookup_bench -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! options: --customers N (1000000)  --lookups N (20000)  --batch N (10000 rows per transaction)
//! ```
//!
//! SQLite runs on a file in a temporary folder. With `--postgres ADMIN_URL` a scratch
//! database is created on that server and dropped afterwards. The target: p99 ≤ 1 ms.

use std::time::{Duration, Instant};

use rand::Rng;
use store::{CustomerUpsert, Store, StoreOptions};

// The synthetic customers, shared with crm's zoho_sync_bench.
#[path = "common/synthetic.rs"]
mod synthetic;
use synthetic::{customer, phone};

struct Args {
    customers: u64,
    lookups: u64,
    batch: u64,
    postgres: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        customers: 1_000_000,
        lookups: 20_000,
        batch: 10_000,
        postgres: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--customers" => args.customers = number(value()?)?.max(1),
            "--lookups" => args.lookups = number(value()?)?.max(1),
            "--batch" => args.batch = number(value()?)?.max(1),
            "--postgres" => args.postgres = Some(value()?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(args)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("customer_lookup_bench: {e}");
            std::process::exit(2);
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, scratch) = match &args.postgres {
        Some(admin) => {
            let name = format!("agent_bench_{}", std::process::id());
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
        "engine: {:?}, customers: {}, lookups: {}",
        store.backend(),
        args.customers,
        args.lookups
    );

    let started = Instant::now();
    let mut next = 0;
    while next < args.customers {
        let end = (next + args.batch).min(args.customers);
        let batch: Vec<CustomerUpsert> = (next..end).map(customer).collect();
        store
            .upsert_customers(&tenant, &batch, 1)
            .await
            .expect("bulk upsert");
        next = end;
    }
    let load = started.elapsed();
    store.analyze().await.expect("analyze");
    println!(
        "loaded {} customers in {:.1} s ({:.0} rows/s)",
        args.customers,
        load.as_secs_f64(),
        args.customers as f64 / load.as_secs_f64()
    );
    let plan = store
        .customer_lookup_plan(&tenant, &phone(args.customers / 2))
        .await
        .expect("plan");
    println!("lookup plan:\n  {}", plan.join("\n  "));
    let uses_index = plan.iter().any(|l| {
        l.contains("USING PRIMARY KEY")
            || l.contains("USING INDEX")
            || l.contains("USING COVERING INDEX")
            || l.contains("Index Scan")
            || l.contains("Index Only Scan")
    });
    assert!(
        uses_index,
        "the caller-ID lookup must use the customer_phones index"
    );

    let mut rng = rand::rng();
    // Warm-up: fill the page cache and the statement cache.
    for _ in 0..1_000 {
        let i = rng.random_range(0..args.customers);
        store
            .customers_by_phone(&tenant, &phone(i), 2)
            .await
            .expect("lookup");
    }
    let mut times = Vec::with_capacity(args.lookups as usize);
    let mut misses = 0;
    for n in 0..args.lookups {
        // One lookup in ten is an unknown caller.
        let number = if n % 10 == 9 {
            format!("+1{}", 9_000_000_000 + rng.random_range(0..args.customers))
        } else {
            phone(rng.random_range(0..args.customers))
        };
        let t = Instant::now();
        let found = store
            .customers_by_phone(&tenant, &number, 2)
            .await
            .expect("lookup");
        times.push(t.elapsed());
        if found.is_empty() {
            misses += 1;
        }
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "lookup by phone over {} calls ({misses} unknown numbers): p50 {:.0} µs, p99 {:.0} µs, \
         mean {:.0} µs, max {:.0} µs",
        times.len(),
        micros(percentile(&times, 0.50)),
        micros(percentile(&times, 0.99)),
        micros(mean),
        micros(*times.last().unwrap_or(&Duration::ZERO)),
    );
    store.close().await;
    if let Some((admin, name)) = scratch {
        admin_exec(
            &admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await;
    }
}

/// Runs one statement on the PostgreSQL server's admin database (scratch database setup).
async fn admin_exec(admin_url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::Executor::execute(&mut conn, sql).await.expect(sql);
}
