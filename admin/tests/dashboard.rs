//! The dashboard in a real headless Chromium (Debian's `chromium`, installed by
//! `scripts/deps.sh test`): the page loads with a key given once, and the figures it shows
//! equal the API's; a call's transcript shows each turn's latency; a screenshot is taken.
//! Without Chromium the test says so loudly and skips.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{fixture, json, send};

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium(profile: &Path, extra: &[&str], url: &str) -> std::process::Output {
    Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=8000",
            "--timeout=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium")
}

/// `data-value` of the element with `id`, from the dumped DOM.
fn shown(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("#{id} not in the page:\n{dom}"));
    let rest = &dom[at..];
    let v = rest.split("data-value=\"").nth(1).expect("data-value");
    v[..v.find('"').unwrap()].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_apis_figures_in_headless_chromium() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!(
            "\n\n!!! SKIPPED: {CHROMIUM} is missing. Install it with `scripts/deps.sh test` \
             (Debian package `chromium`); the dashboard is untested without it. !!!\n"
        );
        return;
    }
    let f = fixture(None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = f.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let key = f.a.supervisor.clone();
    let (_, api) = send(
        &f.app,
        "GET",
        "/v1/analytics/summary",
        Some(&key),
        None,
        &[],
    )
    .await;
    let api = json(&api)["summary"].clone();
    assert_eq!(api["calls"], 1, "the fixture has one call today: {api}");

    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/dashboard#key={key}&call={}", f.a.call);
    let (p, u) = (profile.path().to_owned(), url.clone());
    let out = tokio::task::spawn_blocking(move || chromium(&p, &["--dump-dom"], &u))
        .await
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        dom.contains("data-loaded=\"1\""),
        "the page did not finish loading:\n{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (id, field) in [
        ("f-calls", "calls"),
        ("f-inbound", "inbound"),
        ("f-answered", "answered"),
        ("f-transferred", "transferred"),
        ("f-refusals", "refusals"),
        ("f-cost", "cost_micros"),
        ("f-aht", "avg_handle_ms"),
        ("f-containment", "contained"),
    ] {
        assert_eq!(
            shown(&dom, id),
            api[field].to_string(),
            "{id} vs summary.{field}"
        );
    }
    assert_eq!(shown(&dom, "f-e2e-p50"), api["e2e_ms"]["p50"].to_string());
    assert_eq!(shown(&dom, "f-e2e-p95"), api["e2e_ms"]["p95"].to_string());
    // The hourly chart has the call's bar; the outcome table and the recent calls list it.
    assert!(
        dom.contains("class=\"bar\" data-series=\"inbound\" data-value=\"1\""),
        "{dom}"
    );
    assert!(dom.contains("data-reason=\"caller_hangup\""));
    assert!(dom.contains(&format!("data-id=\"{}\"", f.a.call)));
    // The transcript with each turn's latency.
    assert!(dom.contains("secret words of alpha"));
    assert!(
        dom.contains("<td class=\"e2e\">800 ms</td>")
            && dom.contains("<td class=\"eot\">300 ms</td>"),
        "{dom}"
    );
    // Nothing of the other tenant.
    assert!(!dom.contains("bravo"));

    let shot: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().unwrap();
    let (p, s) = (profile.path().to_owned(), shot.clone());
    let out = tokio::task::spawn_blocking(move || {
        chromium(
            &p,
            &[
                &format!("--screenshot={}", s.display()),
                "--window-size=1280,1400",
            ],
            &url,
        )
    })
    .await
    .unwrap();
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    eprintln!("dashboard screenshot: {}", shot.display());
}
