//! Campaign claim throughput and latency at scale, on PostgreSQL: one running campaign of N
//! contacts (default 100,000), K "daemons" (tasks with their own node names and pool
//! connections) claiming, starting and finishing attempts as fast as the store lets them —
//! calls that end at once, none failing. Prints attempts per second and the latency of the
//! claim transaction (FOR UPDATE SKIP LOCKED on the campaign row and the contacts, number locks,
//! pacing slots), so it measures the claim protocol, not SIP.
//!
//! ```text
//! cargo run --release -p store --example campaign_bench
//! cargo run --release -p store --example campaign_bench -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! options: --contacts N (100000)  --nodes K (4)  --batch N (10 per claim)  --sqlite (one node, a file)
//! ```
//!
//! PostgreSQL: a scratch database is created on the server and dropped afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use store::{
    AttemptEnd, AttemptResult, CampaignKind, CampaignSettings, CampaignStatus, ClaimDecision,
    ClaimRequest, ContactNext, Disposition, NewCampaign, NewContact, Store, StoreOptions,
};

struct Args {
    contacts: u64,
    nodes: u64,
    batch: u32,
    postgres: String,
    sqlite: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        contacts: 100_000,
        nodes: 4,
        batch: 10,
        postgres: std::env::var("AGENT_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        sqlite: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--contacts" => args.contacts = value()?.parse().map_err(|_| "--contacts: N")?,
            "--nodes" => args.nodes = value()?.parse().map_err(|_| "--nodes: N")?,
            "--batch" => args.batch = value()?.parse().map_err(|_| "--batch: N")?,
            "--postgres" => args.postgres = value()?,
            "--sqlite" => args.sqlite = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let name = format!("agent_campaign_bench_{}", std::process::id());
    let url = if args.sqlite {
        format!("sqlite://{}/bench.db", dir.path().display())
    } else {
        admin_exec(&args.postgres, &format!("CREATE DATABASE {name}")).await;
        let (base, _) = args.postgres.rsplit_once('/').expect("url with a database");
        format!("{base}/{name}")
    };
    let nodes = if args.sqlite { 1 } else { args.nodes };
    let options = StoreOptions {
        max_connections: (nodes as u32 * 2).max(4),
        ..StoreOptions::default()
    };
    let store = Store::connect(&url, &options).await.expect("connect");
    store.migrate().await.expect("migrate");
    let tenant = store.create_tenant("bench", 1).await.expect("tenant").id;

    let contacts: Vec<NewContact> = (0..args.contacts)
        .map(|i| NewContact {
            phone: format!("+1{:010}", 2_000_000_000 + i),
            time_zone: "America/New_York".to_owned(),
            ..NewContact::default()
        })
        .collect();
    let started = Instant::now();
    let campaign = store
        .create_campaign(
            NewCampaign {
                tenant_id: tenant,
                name: "bench".into(),
                kind: CampaignKind::List,
                flow: "f".into(),
                trunk: "t".into(),
                settings: CampaignSettings {
                    max_concurrent: 1000,
                    calls_per_second: 100.0,
                    ..CampaignSettings::default()
                },
                status: CampaignStatus::Running,
                created_at: 1,
            },
            &contacts,
        )
        .await
        .expect("create campaign");
    println!(
        "engine: {}; {} contacts created in one transaction in {:.1} s",
        if args.sqlite { "sqlite" } else { "postgres" },
        args.contacts,
        started.elapsed().as_secs_f64()
    );

    let attempts = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..nodes {
        let store = store.clone();
        let id = campaign.id.clone();
        let attempts = attempts.clone();
        let batch = args.batch;
        tasks.push(tokio::spawn(async move {
            let node = format!("node{n}");
            let mut claim_us = Vec::new();
            let mut attempt_us = Vec::new();
            let mut contended = 0u64;
            // Simulated wall clock: advances so leases and pacing slots never hold work back.
            let mut now = 10_000i64;
            loop {
                now += 1;
                let t = Instant::now();
                let report = store
                    .claim_contacts(
                        &ClaimRequest {
                            campaign_id: &id,
                            node: &node,
                            now,
                            lease_ms: 600_000,
                            max: batch,
                            number_busy_retry_ms: 30_000,
                        },
                        |_| ClaimDecision::Claim,
                    )
                    .await
                    .expect("claim");
                let us = t.elapsed().as_micros() as u64;
                if report.not_running {
                    break;
                }
                if report.contended {
                    // The daemon's scheduler waits 200 ms; a short pause keeps the bench busy
                    // without spinning on the lock.
                    contended += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    continue;
                }
                claim_us.push(us);
                for claimed in report.claimed {
                    let t = Instant::now();
                    let contact = claimed.contact.id;
                    let seq = store
                        .start_attempt(&contact, &node, now)
                        .await
                        .expect("start");
                    store
                        .finish_attempt(&AttemptEnd {
                            contact_id: &contact,
                            node: &node,
                            seq,
                            now,
                            result: AttemptResult::Answered,
                            call_id: None,
                            end_reason: Some("flow_completed"),
                            detail: None,
                            outcome: None,
                            next: ContactNext::Done(Disposition::Answered),
                        })
                        .await
                        .expect("finish");
                    attempt_us.push(t.elapsed().as_micros() as u64);
                    attempts.fetch_add(1, Ordering::Relaxed);
                }
            }
            (claim_us, attempt_us, contended)
        }));
    }
    let mut claim_us = Vec::new();
    let mut attempt_us = Vec::new();
    let mut contended = 0;
    for t in tasks {
        let (c, a, n) = t.await.expect("task");
        claim_us.extend(c);
        attempt_us.extend(a);
        contended += n;
    }
    let took = started.elapsed();
    let done = attempts.load(Ordering::Relaxed);
    let progress = store
        .campaign_progress(&campaign.id)
        .await
        .expect("progress");
    assert_eq!(progress.done as u64, args.contacts, "every contact done");
    assert_eq!(progress.attempts as u64, args.contacts, "one attempt each");
    println!(
        "{nodes} nodes, {} per claim: {done} attempts in {:.1} s = {:.0} attempts/s (0 failures)",
        args.batch,
        took.as_secs_f64(),
        done as f64 / took.as_secs_f64()
    );
    println!(
        "claim transaction (claims that ran; {contended} more found the campaign locked by \
         another node and returned at once): {} claims, p50 {}, p95 {}, p99 {}, max {}",
        claim_us.len(),
        ms(pct(&mut claim_us, 50.0)),
        ms(pct(&mut claim_us, 95.0)),
        ms(pct(&mut claim_us, 99.0)),
        ms(claim_us.iter().max().copied().unwrap_or(0))
    );
    println!(
        "start + finish of one attempt: p50 {}, p99 {}",
        ms(pct(&mut attempt_us, 50.0)),
        ms(pct(&mut attempt_us, 99.0))
    );
    store.close().await;
    if !args.sqlite {
        admin_exec(
            &args.postgres,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await;
    }
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    if v.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

async fn admin_exec(admin_url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::Executor::execute(&mut conn, sql).await.expect(sql);
}
