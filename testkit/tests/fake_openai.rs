//! The fake speaks the documented wire format: checked here with a raw HTTP/1.1 client so
//! the test depends on nothing but the bytes.

use std::time::Duration;

use testkit::openai::{ChatReply, FakeOpenAi};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn post(fake: &FakeOpenAi, body: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(fake.addr())
        .await
        .expect("connect");
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

const STREAM_REQ: &str = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"What is my balance?"}]}"#;

#[tokio::test]
async fn streams_text_tool_call_pieces_usage_and_done() {
    let fake = FakeOpenAi::start().await;
    fake.enqueue(
        ChatReply::text("Let me check.")
            .tool_call("get_balance", r#"{"x":1}"#)
            .usage(7, 3),
    );
    let resp = post(&fake, STREAM_REQ).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("text/event-stream"));
    assert!(resp.contains(r#""object":"chat.completion.chunk""#));
    assert!(resp.contains(r#""content":" check.""#));
    assert!(resp.contains(r#""name":"get_balance""#));
    // Arguments in three pieces.
    assert!(resp.contains(r#""arguments":"{\"x""#), "{resp}");
    assert!(resp.contains(r#""finish_reason":"tool_calls""#));
    assert!(resp.contains(r#""prompt_tokens":7"#));
    assert!(resp.trim_end().ends_with("data: [DONE]") || resp.contains("data: [DONE]\n\n"));
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(reqs[0].body["model"], "m");
}

#[tokio::test]
async fn matcher_beats_queue_and_errors_use_the_documented_body() {
    let fake = FakeOpenAi::start().await;
    fake.enqueue(ChatReply::text("queued"));
    fake.when_user_says("BALANCE", ChatReply::error(429, "slow down"));
    let resp = post(&fake, STREAM_REQ).await;
    assert!(resp.starts_with("HTTP/1.1 429"), "{resp}");
    assert!(resp.contains(r#""type":"rate_limit_error""#));
    assert_eq!(fake.pending(), 1);
}

#[tokio::test]
async fn plain_json_when_not_streaming_and_500_when_unscripted() {
    let fake = FakeOpenAi::start().await;
    fake.enqueue(ChatReply::text("Hello there."));
    let resp = post(
        &fake,
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert!(resp.contains(r#""object":"chat.completion""#), "{resp}");
    assert!(resp.contains(r#""content":"Hello there.""#));
    let resp = post(&fake, STREAM_REQ).await;
    assert!(resp.starts_with("HTTP/1.1 500"));
}

#[tokio::test(start_paused = true)]
async fn first_byte_delay_is_in_tokio_time() {
    let fake = FakeOpenAi::start().await;
    fake.enqueue(ChatReply::text("late").delay_first(Duration::from_secs(30)));
    let t0 = tokio::time::Instant::now();
    let resp = post(&fake, STREAM_REQ).await;
    assert!(resp.contains("late"));
    assert!(t0.elapsed() >= Duration::from_secs(30));
}
