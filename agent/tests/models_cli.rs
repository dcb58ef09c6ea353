//! `agent models pull` and `agent models list` against a local HTTP file host (no internet
//! here): the download, its resume from a partial file and after a dropped connection, the
//! SHA-256 check that refuses a wrong file, and the listing.

mod support;

use std::process::Output;

use sha2::{Digest, Sha256};
use support::speech::whisper_model;
use support::{Env, stderr, stdout};
use testkit::files::FakeFileHost;

/// A file host on its own runtime, alive as long as the returned runtime.
fn host_with(files: &[(&str, Vec<u8>)]) -> (tokio::runtime::Runtime, FakeFileHost) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let host = rt.block_on(FakeFileHost::start());
    for (path, bytes) in files {
        host.put(path, bytes.clone());
    }
    (rt, host)
}

fn pull(env: &Env, host: &FakeFileHost, name: &str, extra: &[&str]) -> Output {
    let dir = env.dir.path().join("models");
    let mut args = vec![
        "models",
        "pull",
        name,
        "--dir",
        dir.to_str().unwrap(),
        "--base-url",
    ];
    let base = format!("{}/whisper", host.base_url());
    args.push(&base);
    args.extend_from_slice(extra);
    env.run(&args)
}

#[test]
fn pull_resumes_verifies_and_installs_then_list_shows_the_model() {
    // The real test model: `list` then reads its whisper header.
    let model = std::fs::read(whisper_model()).unwrap();
    let sha = hex::encode(Sha256::digest(&model));
    let (_rt, host) = host_with(&[
        ("/whisper/ggml-test-tiny.bin", model.clone()),
        (
            "/whisper/ggml-test-tiny.bin.sha256",
            format!("{sha}  ggml-test-tiny.bin\n").into_bytes(),
        ),
    ]);
    let env = Env::new("");
    let dir = env.dir.path().join("models");
    std::fs::create_dir_all(&dir).unwrap();
    // A previous run stopped after 1 MiB; this one also loses its connection 5 MiB later.
    let first = 1 << 20;
    std::fs::write(dir.join("ggml-test-tiny.bin.part"), &model[..first]).unwrap();
    host.cut_next("/whisper/ggml-test-tiny.bin", 5 << 20);

    let out = pull(&env, &host, "test-tiny", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains(&format!("resumed at {first} bytes")),
        "{text}"
    );
    assert!(text.contains(&sha), "{text}");
    let installed = std::fs::read(dir.join("ggml-test-tiny.bin")).unwrap();
    assert!(
        installed == model,
        "installed file differs from the served one"
    );
    assert!(!dir.join("ggml-test-tiny.bin.part").exists());
    // Progress went to stderr (a line per 10 % when not a terminal).
    assert!(stderr(&out).contains("100%"), "{}", stderr(&out));
    let ranges: Vec<String> = host
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(".bin"))
        .map(|r| r.range.unwrap_or_default())
        .collect();
    // The first request resumes the partial file; after the cut the next one resumes from
    // what reached the disk: past the first resume point, at most the 5 MiB the host sent
    // (bytes in flight when the connection dropped may be lost).
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_eq!(ranges[0], format!("bytes={first}-"));
    let second: usize = ranges[1]
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{ranges:?}"));
    assert!(
        second > first && second <= first + (5 << 20),
        "resumed from where the cut left it: {ranges:?}"
    );

    // Pulling again downloads nothing.
    let out = pull(&env, &host, "test-tiny", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("already installed"),
        "{}",
        stdout(&out)
    );

    let out = env.run(&["models", "list", "--dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("test-tiny"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(&model.len().to_string()), "{line}");
    assert!(line.contains("n_audio_ctx=1500"), "{line}");
    assert!(line.contains("hash recorded"), "{line}");
}

#[test]
fn a_wrong_sha256_installs_nothing_and_says_why() {
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (_rt, host) = host_with(&[("/whisper/ggml-odd.bin", body)]);
    let env = Env::new("");
    let wrong = "0".repeat(64);
    let out = pull(&env, &host, "odd", &["--sha256", &wrong]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("SHA-256 mismatch"), "{err}");
    let dir = env.dir.path().join("models");
    assert!(!dir.join("ggml-odd.bin").exists());
    assert!(
        !dir.join("ggml-odd.bin.part").exists(),
        "the bad download is deleted"
    );

    // No hash anywhere (not built in, no sidecar, none given): nothing is downloaded.
    let out = pull(&env, &host, "odd", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no SHA-256 known"),
        "{}",
        stderr(&out)
    );
    // A name that could escape the folder is refused before any request.
    let before = host.requests().len();
    let out = pull(&env, &host, "../etc", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a model name"),
        "{}",
        stderr(&out)
    );
    assert_eq!(host.requests().len(), before);
}
