//! Analytics at scale: generates N calls (default 1,000,000) over 90 days with their turns,
//! events, usage and quality, folds them into the rollups with the same `contribution` code
//! the daemon uses, then times each analytics query many times and prints p50/p95 and the
//! query plans. On SQLite and PostgreSQL.
//!
//! `cargo bench -p billing --bench analytics` (release). Knobs: `BENCH_CALLS`, `BENCH_ENGINES`
//! (`sqlite,postgres`), `BENCH_RUNS` (per query, default 200), `AGENT_TEST_POSTGRES_URL`.
//! Results are in `bench/README.md`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use billing::{Folder, Plan, Plans, Prices, analytics, contribution};
use store::rollup::Counter;
use store::{BulkCall, BulkFold, Call, CallDirection, CallFacts, CallStatus, Store, StoreOptions};

const DAY: i64 = 86_400_000;

/// xorshift64*: deterministic data without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn prices() -> Prices {
    Prices {
        currency: "USD".into(),
        inbound_per_minute: 10_000,
        outbound_per_minute: 15_000,
        stt_per_audio_minute: 6_000,
        llm_prompt_per_1k_tokens: 150,
        llm_completion_per_1k_tokens: 600,
        tts_per_1k_chars: 15_000,
    }
}

const NODES: [&str; 6] = [
    "greeting",
    "menu",
    "balance",
    "take_message",
    "transfer",
    "goodbye",
];

/// One generated call: what is stored, and the facts the folder would read back.
fn make_call(rng: &mut Rng, tenant: &store::TenantId, start: i64) -> (BulkCall, CallFacts) {
    let inbound = rng.chance(80);
    let answered = rng.chance(92);
    let duration = 20_000 + rng.below(380_000) as i64;
    let answered_at = answered.then_some(start + 2_000);
    let ended_at = start + 2_000 + if answered { duration } else { 25_000 };
    let transferred = answered && rng.chance(8);
    let end_reason = if !answered {
        if inbound {
            "caller_hangup"
        } else {
            "no_answer"
        }
    } else if transferred {
        "transferred"
    } else {
        [
            "caller_hangup",
            "caller_hangup",
            "flow_completed",
            "silence_timeout",
            "agent_hangup",
        ][rng.below(5) as usize]
    };
    let n_turns = if answered {
        2 + rng.below(6) as usize
    } else {
        0
    };
    let turns: Vec<(Option<i64>, Option<i64>)> = (0..n_turns)
        .map(|_| {
            let e2e = 450
                + rng.below(900) as i64
                + if rng.chance(7) {
                    rng.below(3000) as i64
                } else {
                    0
                };
            let eot = 150 + rng.below(700) as i64;
            (Some(e2e), Some(eot))
        })
        .collect();
    let mut events = vec![("answered".to_owned(), "{}".to_owned())];
    let mut last_node = None;
    if answered {
        for _ in 0..(1 + rng.below(3)) {
            let to = NODES[rng.below(6) as usize];
            events.push((
                "node".into(),
                format!(r#"{{"from":"greeting","to":"{to}"}}"#),
            ));
            last_node = Some(to.to_owned());
        }
    }
    let refused = answered && rng.chance(3);
    if refused {
        events.push((
            "refused".into(),
            r#"{"tool":"get_balance","reason":"not_verified"}"#.into(),
        ));
    }
    if transferred {
        events.push(("transfer".into(), r#"{"state":"accepted"}"#.into()));
    }
    let call_ms = if answered { duration } else { 0 };
    let usage: Vec<(String, i64, String)> = if answered {
        vec![
            ("call_ms".into(), call_ms, "ms".into()),
            ("stt_audio_ms".into(), duration / 2, "ms".into()),
            (
                "llm_prompt_tokens".into(),
                600 * n_turns as i64,
                "tokens".into(),
            ),
            (
                "llm_completion_tokens".into(),
                40 * n_turns as i64,
                "tokens".into(),
            ),
            ("tts_chars".into(), 120 * n_turns as i64, "chars".into()),
        ]
    } else {
        Vec::new()
    };
    let mos = (answered && rng.chance(90)).then(|| 300 + rng.below(141) as i64);
    let direction = if inbound {
        CallDirection::Inbound
    } else {
        CallDirection::Outbound
    };
    let id = store::new_id();
    let bulk = BulkCall {
        id: id.clone(),
        tenant_id: tenant.clone(),
        direction,
        from_number: format!("+1555{:07}", rng.below(10_000_000)),
        to_number: "+18005550100".into(),
        node: "bench".into(),
        flow: "receptionist".into(),
        status: CallStatus::Ended,
        started_at: start,
        answered_at,
        ended_at: Some(ended_at),
        end_reason: Some(end_reason.to_owned()),
        turns: turns.clone(),
        events,
        usage: usage.clone(),
        mos_x100: mos,
    };
    let facts = CallFacts {
        call: Call {
            id: store::CallId::new(id),
            tenant_id: tenant.clone(),
            direction,
            from_number: bulk.from_number.clone(),
            to_number: bulk.to_number.clone(),
            sip_call_id: None,
            flow: Some("receptionist".into()),
            flow_version: None,
            node: "bench".into(),
            status: CallStatus::Ended,
            started_at: start,
            answered_at,
            ended_at: Some(ended_at),
            end_reason: Some(store::EndReason::from_code(end_reason)),
            transport: store::CallTransport::Sip,
        },
        rev: 1,
        e2e_ms: turns.iter().filter_map(|t| t.0).collect(),
        eot_ms: turns.iter().filter_map(|t| t.1).collect(),
        turns: n_turns as i64,
        refusals: i64::from(refused),
        transferred,
        // No message or callback rows are generated (the check below re-reads the rows).
        followups: false,
        last_node,
        usage: usage.into_iter().map(|(k, q, _)| (k, q)).collect(),
        mos_x100: mos,
    };
    (bulk, facts)
}

fn pct(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5).as_secs_f64() * 1e3, at(0.95).as_secs_f64() * 1e3)
}

async fn open(engine: &str) -> (Store, Option<(String, String)>) {
    match engine {
        "sqlite" => {
            let dir = std::env::temp_dir().join(format!("agent-bench-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let url = format!("sqlite://{}/bench.db", dir.display());
            let store = Store::connect(&url, &StoreOptions::default())
                .await
                .unwrap();
            (store, None)
        }
        _ => {
            let admin = std::env::var("AGENT_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = format!("agent_bench_{}", std::process::id());
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::Executor::execute(
                &mut conn,
                format!("DROP DATABASE IF EXISTS {name}").as_str(),
            )
            .await
            .unwrap();
            sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap();
            let (base, _) = admin.rsplit_once('/').unwrap();
            let store = Store::connect(&format!("{base}/{name}"), &StoreOptions::default())
                .await
                .unwrap();
            (store, Some((admin, name)))
        }
    }
}

async fn run(engine: &str, n: usize, runs: usize) {
    println!("\n=== {engine}: {n} calls ===");
    let (store, cleanup) = open(engine).await;
    store.migrate().await.unwrap();
    let now = (billing::unix_ms_now() / DAY) * DAY;
    let from = now - 90 * DAY;
    let mut tenants = Vec::new();
    for i in 0..41 {
        tenants.push(
            store
                .create_tenant(&format!("tenant{i:02}"), now)
                .await
                .unwrap()
                .id,
        );
    }
    let big = tenants[0].clone();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let load = Instant::now();
    let batch = 10_000;
    let mut done = 0;
    while done < n {
        let k = batch.min(n - done);
        let mut calls = Vec::with_capacity(k);
        let mut folds = Vec::with_capacity(k);
        for _ in 0..k {
            // 60 % of the calls are the big tenant's; the rest spread over 40 others.
            let tenant = if rng.chance(60) {
                &big
            } else {
                &tenants[1 + rng.below(40) as usize]
            };
            // Busier by day: the hour of day follows a rough office curve.
            let day = rng.below(90) as i64;
            let hour = [
                8, 9, 9, 10, 10, 11, 11, 12, 13, 14, 14, 15, 15, 16, 16, 17, 18, 20, 2,
            ][rng.below(19) as usize];
            let start = from + day * DAY + hour * 3_600_000 + rng.below(3_600_000) as i64;
            let (bulk, facts) = make_call(&mut rng, tenant, start);
            let (c, ledger) = contribution(&facts, &prices());
            folds.push(BulkFold {
                tenant_id: tenant.clone(),
                call_id: store::CallId::new(bulk.id.clone()),
                contribution: c,
                ledger,
            });
            calls.push(bulk);
        }
        let t = Instant::now();
        store.bulk_insert(&calls).await.unwrap();
        let ins = t.elapsed();
        store.bulk_fold(&folds, now).await.unwrap();
        if done == 0 {
            println!(
                "  first batch: insert {:.1} s, fold {:.1} s",
                ins.as_secs_f64(),
                (t.elapsed() - ins).as_secs_f64()
            );
        }
        done += k;
        if done % 100_000 == 0 {
            println!(
                "  loaded {done} calls ({:.0} s)",
                load.elapsed().as_secs_f64()
            );
        }
    }
    store.analyze().await.unwrap();
    println!("loaded in {:.0} s", load.elapsed().as_secs_f64());

    // The bulk fold must equal what the incremental folder computes: re-fold 200 calls from
    // their stored rows and check that no rollup moved.
    let before = store.rollup_totals(&big, from, now + DAY).await.unwrap();
    let ids: Vec<store::CallId> = store
        .export_calls(
            &big,
            &store::ExportFilter {
                from,
                to: now + DAY,
                status: None,
                direction: None,
            },
            None,
            200,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.call.id)
        .collect::<Vec<store::CallId>>();
    for id in &ids {
        store.touch_call(id).await.unwrap();
    }
    let t = Instant::now();
    let refolded = Folder::new(store.clone(), prices())
        .fold_all(5, now)
        .await
        .unwrap();
    let per_call = t.elapsed().as_secs_f64() * 1e3 / refolded.max(1) as f64;
    let after = store.rollup_totals(&big, from, now + DAY).await.unwrap();
    assert_eq!(before, after, "incremental re-fold changed the rollups");
    println!(
        "re-folded {refolded} calls incrementally: rollups unchanged ({per_call:.2} ms per call)"
    );
    println!(
        "big tenant: {} calls in 90 days, {} answered",
        after.get(Counter::Calls),
        after.get(Counter::Answered)
    );

    let utc = analytics::zone("UTC").unwrap();
    let ny = analytics::zone("America/New_York").unwrap();
    let paris = analytics::zone("Europe/Paris").unwrap();
    let kolkata = analytics::zone("Asia/Kolkata").unwrap();
    let (today_from, today_to) = analytics::today(billing::unix_ms_now(), &utc);
    let b_hour7 = analytics::boundaries(now - 7 * DAY, now, analytics::Bucket::Hour, &utc).unwrap();
    let ny_from = now - 30 * DAY + 5 * 3_600_000;
    let b_day30_ny =
        analytics::boundaries(ny_from, ny_from + 30 * DAY, analytics::Bucket::Day, &ny).unwrap();
    let paris_from = now - 90 * DAY - 3_600_000;
    let b_day90_paris =
        analytics::boundaries(paris_from, now - 3_600_000, analytics::Bucket::Day, &paris).unwrap();
    let in_from = now - 30 * DAY - 5 * 3_600_000 - 1_800_000;
    let b_day30_in = analytics::boundaries(
        in_from,
        in_from + 30 * DAY,
        analytics::Bucket::Day,
        &kolkata,
    )
    .unwrap();
    let plans = Plans {
        enforce: true,
        default_plan: "p".into(),
        plans: BTreeMap::from([(
            "p".into(),
            Plan {
                name: "p".into(),
                included_minutes: i64::MAX / 120_000,
                concurrent_calls: 100,
                overage: billing::Overage::Block,
                overage_per_minute: 0,
                dodo_product_id: String::new(),
            },
        )]),
        max_call_ms: 7_200_000,
    };

    macro_rules! time {
        ($name:expr, $body:expr) => {{
            for _ in 0..5 {
                $body;
            }
            let mut v = Vec::with_capacity(runs);
            for _ in 0..runs {
                let t = Instant::now();
                $body;
                v.push(t.elapsed());
            }
            let (p50, p95) = pct(v);
            let verdict = if p95 <= 100.0 { "ok" } else { "OVER 100 ms" };
            println!(
                "{:<48} p50 {:>7.2} ms  p95 {:>7.2} ms  {verdict}",
                $name, p50, p95
            );
        }};
    }
    time!(
        "summary, 90 days (UTC days)",
        analytics::summary(&store, &big, from, now).await.unwrap()
    );
    time!(
        "summary, today so far",
        analytics::summary(&store, &big, today_from, today_to)
            .await
            .unwrap()
    );
    time!(
        "summary, 30 days from 05:15 (mixed grains)",
        analytics::summary(
            &store,
            &big,
            now - 30 * DAY + 5 * 3_600_000 + 900_000,
            now - 900_000
        )
        .await
        .unwrap()
    );
    time!(
        "timeseries, hourly, 7 days, UTC",
        analytics::timeseries(&store, &big, &b_hour7).await.unwrap()
    );
    time!(
        "timeseries, daily, 30 days, America/New_York",
        analytics::timeseries(&store, &big, &b_day30_ny)
            .await
            .unwrap()
    );
    time!(
        "timeseries, daily, 90 days, Europe/Paris",
        analytics::timeseries(&store, &big, &b_day90_paris)
            .await
            .unwrap()
    );
    time!(
        "timeseries, daily, 30 days, Asia/Kolkata",
        analytics::timeseries(&store, &big, &b_day30_in)
            .await
            .unwrap()
    );
    time!(
        "admission check (meter + concurrency)",
        billing::check_admission(&store, &plans, &big, CallDirection::Inbound, now)
            .await
            .unwrap()
    );
    let filter = store::ExportFilter {
        from,
        to: now,
        status: None,
        direction: None,
    };
    time!(
        "CSV export, one page of 500 calls",
        store.export_calls(&big, &filter, None, 500).await.unwrap()
    );

    println!("\nquery plans ({engine}):");
    for (name, boundaries) in [
        ("hourly UTC", &b_hour7),
        ("daily New York", &b_day30_ny),
        ("daily Kolkata", &b_day30_in),
    ] {
        for (q, plan) in store
            .analytics_plans(&big, from, now, boundaries)
            .await
            .unwrap()
        {
            if q.starts_with("buckets") || name == "hourly UTC" {
                println!("-- {q} [{name}]");
                for line in plan {
                    println!("   {line}");
                }
            }
        }
    }
    store.close().await;
    if let Some((admin, name)) = cleanup {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        let _ = sqlx::Executor::execute(
            &mut conn,
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
        )
        .await;
    } else {
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("agent-bench-{}", std::process::id())),
        );
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let engines = std::env::var("BENCH_ENGINES").unwrap_or_else(|_| "sqlite,postgres".into());
    for engine in engines.split(',') {
        run(engine.trim(), n, runs).await;
    }
}
