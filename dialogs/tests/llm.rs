//! The engine with an LLM, against testkit's FakeOpenAi: streaming, tool calls, limits,
//! failures and interruptions.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use dialogs::testing::MemoryServices;
use dialogs::{CallEvent, CallerInput, LlmClient, LlmConfig, ReplyEvent, ReplyMode};
use futures::StreamExt;
use testkit::openai::{ChatReply, FakeOpenAi};

fn llm(fake: &FakeOpenAi, timeout_ms: u64) -> LlmClient {
    LlmClient::new(
        LlmConfig::new(&fake.base_url(), Some("sk-test"), "test-model").with_timeout_ms(timeout_ms),
    )
    .expect("client")
}

async fn started(
    fake: &FakeOpenAi,
    host: Arc<MemoryServices>,
    caller: &str,
    timeout_ms: u64,
) -> dialogs::Engine {
    let mut e = engine(
        flow("receptionist"),
        host,
        Some(llm(fake, timeout_ms)),
        Some(caller),
    );
    collect(e.start()).await;
    e
}

fn say(t: &str) -> CallerInput {
    CallerInput::Speech(t.into())
}

#[tokio::test]
async fn streams_sentence_by_sentence_with_usage() {
    let fake = FakeOpenAi::start().await;
    fake.enqueue(
        ChatReply::chunks(&[
            "Sure, our hours",
            " are 9 to 5. Is there any",
            "thing else? We're here",
            " to help",
        ])
        .usage(120, 17),
    );
    let host = Arc::new(MemoryServices::demo());
    let mut e = started(&fake, host, JANE, 2000).await;
    let r = collect(e.turn(say("When are you open?"))).await;
    assert_eq!(
        r.sentences,
        vec![
            "Sure, our hours are 9 to 5.",
            "Is there anything else?",
            "We're here to help"
        ]
    );
    let s = r.summary();
    assert_eq!(s.mode, ReplyMode::Llm);
    assert_eq!(
        (s.usage.prompt_tokens, s.usage.completion_tokens),
        (120, 17)
    );

    let req = &fake.requests()[0].body;
    assert_eq!(req["stream"], true);
    assert_eq!(req["stream_options"]["include_usage"], true);
    assert_eq!(req["model"], "test-model");
    let system = req["messages"][0]["content"].as_str().unwrap_or_default();
    assert!(system.contains("receptionist of Acme Plumbing"), "{system}");
    assert!(
        system.contains("identified by caller ID as Jane Doe"),
        "{system}"
    );
    let tools: Vec<&str> = req["tools"].as_array().map_or(vec![], |t| {
        t.iter()
            .filter_map(|t| t["function"]["name"].as_str())
            .collect()
    });
    assert!(
        tools.contains(&"get_balance") && tools.contains(&"transfer"),
        "{tools:?}"
    );
    // The greeting (the opener) is in the history the LLM sees.
    assert_eq!(req["messages"][1]["role"], "assistant");
    assert_eq!(
        fake.requests()[0].authorization.as_deref(),
        Some("Bearer sk-test")
    );
}

#[tokio::test]
async fn first_sentence_arrives_before_the_reply_is_complete() {
    let fake = FakeOpenAi::start().await;
    fake.enqueue(
        ChatReply::text("One moment. Let me think about that for a while.")
            .delay_chunks(Duration::from_millis(60)),
    );
    let host = Arc::new(MemoryServices::demo());
    let mut e = started(&fake, host, JANE, 2000).await;
    let t0 = std::time::Instant::now();
    let mut s = e.turn(say("hello"));
    let mut first = None;
    while let Some(ev) = s.next().await {
        if let ReplyEvent::Sentence(t) = &ev
            && first.is_none()
        {
            first = Some((t.clone(), t0.elapsed()));
        }
        if matches!(ev, ReplyEvent::Done(_)) {
            break;
        }
    }
    let total = t0.elapsed();
    let (text, at) = first.expect("a sentence");
    assert_eq!(text, "One moment.");
    assert!(
        total >= at + Duration::from_millis(300),
        "first at {at:?}, done at {total:?}"
    );
}

#[tokio::test]
async fn a_sentence_ending_at_a_chunk_end_is_spoken_before_the_next_chunk() {
    let fake = FakeOpenAi::start().await;
    // The role chunk, then "One moment.", then the server goes quiet: the next chunk never
    // comes, so nothing after it can prove that a space follows the period.
    fake.enqueue(ChatReply::chunks(&["One moment.", " Let me check."]).stall_after(2));
    let host = Arc::new(MemoryServices::demo());
    let mut e = started(&fake, host, JANE, 1000).await;
    let t0 = std::time::Instant::now();
    let mut s = e.turn(say("hello"));
    let mut sentences = Vec::new();
    let mut summary = None;
    while let Some(ev) = s.next().await {
        match ev {
            ReplyEvent::Sentence(t) => sentences.push((t, t0.elapsed())),
            ReplyEvent::Done(sum) => summary = Some(sum),
            _ => {}
        }
    }
    let texts: Vec<&str> = sentences.iter().map(|(t, _)| t.as_str()).collect();
    // Held back, it would have been lost with the stall and replaced by the fallback line.
    assert_eq!(texts, vec!["One moment."]);
    assert!(
        sentences[0].1 < Duration::from_millis(1000),
        "spoken when its chunk arrived, not at the gap timeout: {:?}",
        sentences[0].1
    );
    let summary = summary.expect("Done");
    assert_eq!(summary.llm_error.as_deref(), Some("timeout"));
    assert_eq!(
        summary.mode,
        ReplyMode::Llm,
        "no fallback after words were spoken"
    );
}

#[tokio::test]
async fn tool_arguments_that_break_the_schema_go_back_to_the_model() {
    let fake = FakeOpenAi::start().await;
    fake.enqueue(ChatReply::tools().tool_call("take_message", r#"{"message": 42}"#));
    fake.enqueue(ChatReply::tools().tool_call("take_message", r#"{"message": "Call me back"}"#));
    let host = Arc::new(MemoryServices::demo());
    let mut e = started(&fake, host.clone(), JANE, 2000).await;
    let r = collect(e.turn(say("Can you pass on a message?"))).await;
    let statuses: Vec<&str> = r
        .summary()
        .tools
        .iter()
        .map(|t| t.status.as_str())
        .collect();
    assert_eq!(statuses, vec!["invalid_arguments", "ok"]);
    // The bad call reached no tool and moved nothing; the corrected one did both.
    assert_eq!(host.messages().len(), 1);
    assert_eq!(host.messages()[0].text, "Call me back");
    assert_eq!(e.node(), "message_taken");
    let tool_msg = fake.requests()[1].body["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "tool").cloned())
        .unwrap_or_default();
    let content = tool_msg["content"].as_str().unwrap_or_default();
    assert!(content.contains("invalid_arguments"), "{content}");
    assert!(
        content.contains("message: expected string, got integer"),
        "the model is told what to fix: {content}"
    );

    // A missing required argument is refused the same way.
    fake.enqueue(ChatReply::tools().tool_call("transfer", "{}"));
    fake.enqueue(ChatReply::text("Who would you like to speak to?"));
    let r = collect(e.turn(say("transfer me"))).await;
    assert_eq!(r.summary().tools[0].status, "invalid_arguments");
    assert!(r.actions.is_empty(), "{:?}", r.actions);
    let tool_msg = fake.requests()[3].body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "tool").cloned())
        .unwrap_or_default();
    assert!(
        tool_msg["content"]
            .as_str()
            .unwrap_or_default()
            .contains("destination: is required"),
        "{tool_msg}"
    );
}

#[tokio::test]
async fn chunked_tool_call_arguments_are_assembled_and_commit_with_the_transition() {
    let fake = FakeOpenAi::start().await;
    fake.enqueue(ChatReply::tools().tool_call_chunked(
        "take_message",
        &[
            r#"{"mess"#,
            r#"age": "Please call me about "#,
            r#"the leak in the kitchen"}"#,
        ],
    ));
    let host = Arc::new(MemoryServices::demo());
    let mut e = started(&fake, host.clone(), JANE, 2000).await;
    let r = collect(e.turn(say("Can you pass on a message?"))).await;
    assert_eq!(
        host.messages()[0].text,
        "Please call me about the leak in the kitchen"
    );
    assert_eq!(
        host.messages()[0]
            .customer_id
            .as_ref()
            .map(|c| c.0.as_str()),
        Some("C-1001")
    );
    assert_eq!(e.node(), "message_taken");
    // The new node's opener is the reply; the LLM was not asked again (no double speaking).
    assert!(r.text().contains("passed your message on"), "{}", r.text());
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(r.summary().tools[0].name, "take_message");

    // The next request carries the assembled call and its result, in order.
    fake.enqueue(ChatReply::text("You're welcome."));
    collect(e.turn(say("Thanks"))).await;
    let msgs = fake.requests()[1].body["messages"].clone();
    let call = msgs
        .as_array()
        .and_then(|m| m.iter().find(|m| m.get("tool_calls").is_some()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        call["tool_calls"][0]["function"]["arguments"],
        r#"{"message": "Please call me about the leak in the kitchen"}"#
    );
    let tool_msg = msgs
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "tool"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(tool_msg["tool_call_id"], call["tool_calls"][0]["id"]);
    assert!(
        tool_msg["content"]
            .as_str()
            .unwrap_or_default()
            .contains("\"ok\"")
    );
}

#[tokio::test]
async fn tool_round_limit_stops_a_looping_model() {
    let fake = FakeOpenAi::start().await;
    let flow = flow_from(
        r#"
[flow]
name = "loop"
initial_node = "a"
max_tool_rounds = 2
[[functions]]
name = "noop"
description = "does nothing"
[nodes.a]
opener = "Hi."
"#,
    );
    fake.when_user_says("loop", ChatReply::tools().tool_call("noop", "{}"));
    let host = Arc::new(MemoryServices::demo());
    let mut e = engine(flow, host.clone(), Some(llm(&fake, 2000)), Some(JANE));
    collect(e.start()).await;
    let r = collect(e.turn(say("loop please"))).await;
    assert_eq!(fake.requests().len(), 3, "two tool rounds, then the limit");
    assert_eq!(r.summary().tools.len(), 2);
    assert!(
        r.text().contains("trouble"),
        "fallback line when nothing was said: {}",
        r.text()
    );
    assert!(
        host.events()
            .contains(&CallEvent::ToolRoundLimit { rounds: 2 })
    );
}

#[tokio::test(start_paused = true)]
async fn llm_timeout_gives_the_fallback_within_two_seconds() {
    let fake = FakeOpenAi::start().await;
    fake.enqueue(ChatReply::text("far too late").delay_first(Duration::from_secs(30)));
    let host = Arc::new(MemoryServices::demo());
    let mut e = started(&fake, host.clone(), JANE, 1500).await;
    let t0 = tokio::time::Instant::now();
    let mut s = e.turn(say("What's my balance?"));
    let first = loop {
        match s.next().await {
            Some(ReplyEvent::Sentence(t)) => break t,
            Some(_) => continue,
            None => panic!("stream ended without a sentence"),
        }
    };
    let at = t0.elapsed();
    assert!(at <= Duration::from_secs(2), "fallback after {at:?}");
    assert!(first.contains("trouble"), "{first}");
    let rest: Vec<ReplyEvent> = s.collect().await;
    let Some(ReplyEvent::Done(sum)) = rest.last() else {
        panic!("no Done")
    };
    assert_eq!(sum.mode, ReplyMode::Fallback);
    assert_eq!(sum.llm_error.as_deref(), Some("timeout"));
    assert!(host.events().contains(&CallEvent::LlmFallback {
        reason: "timeout".into()
    }));
    assert!(e.ended().is_none(), "the call goes on");
}

#[tokio::test]
async fn llm_errors_give_the_fallback_and_the_call_goes_on() {
    let fake = FakeOpenAi::start().await;
    fake.enqueue(ChatReply::error(500, "boom"));
    fake.enqueue(ChatReply::error(429, "rate limited"));
    fake.enqueue(ChatReply::text("Back again. How can I help?"));
    let host = Arc::new(MemoryServices::demo());
    let mut e = started(&fake, host.clone(), JANE, 2000).await;
    let t0 = std::time::Instant::now();
    let r = collect(e.turn(say("hello"))).await;
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "no retries with backoff"
    );
    assert!(r.text().contains("trouble"), "{}", r.text());
    assert_eq!(r.summary().llm_error.as_deref(), Some("api_500"));
    let r = collect(e.turn(say("hello?"))).await;
    assert_eq!(r.summary().llm_error.as_deref(), Some("api_429"));
    let r = collect(e.turn(say("hello??"))).await;
    assert_eq!(r.text(), "Back again. How can I help?");
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn a_flow_may_transfer_when_the_llm_fails() {
    let fake = FakeOpenAi::start().await;
    let flow = flow_from(
        r#"
[flow]
name = "handoff"
initial_node = "a"
on_llm_error = [{ say = "Let me get you a person." }, { transfer = "desk" }]
[transfers]
desk = "+15550100100"
[nodes.a]
opener = "Hi."
"#,
    );
    fake.enqueue(ChatReply::error(503, "overloaded"));
    let host = Arc::new(MemoryServices::demo());
    let mut e = engine(flow, host.clone(), Some(llm(&fake, 2000)), Some(JANE));
    collect(e.start()).await;
    let r = collect(e.turn(say("hello"))).await;
    assert_eq!(r.sentences, vec!["Let me get you a person."]);
    assert_eq!(
        r.actions,
        vec![dialogs::CallAction::Transfer {
            to: "+15550100100".into(),
            name: "desk".into()
        }]
    );
    assert_eq!(r.summary().mode, ReplyMode::Fallback);
    assert!(host.events().contains(&CallEvent::LlmFallback {
        reason: "api_503".into()
    }));
}

#[tokio::test]
async fn stall_mid_reply_keeps_what_was_said_without_a_fallback() {
    let fake = FakeOpenAi::start().await;
    // role chunk, "Hello", " there.", " And", then silence.
    fake.enqueue(ChatReply::text("Hello there. And then").stall_after(4));
    let host = Arc::new(MemoryServices::demo());
    let mut e = started(&fake, host, JANE, 300).await;
    let r = collect(e.turn(say("hi"))).await;
    assert_eq!(r.sentences, vec!["Hello there."]);
    assert_eq!(r.summary().llm_error.as_deref(), Some("timeout"));
}

#[tokio::test]
async fn unknown_tool_and_bad_arguments_are_answered_not_fatal() {
    let fake = FakeOpenAi::start().await;
    fake.enqueue(
        ChatReply::tools()
            .tool_call("format_disk", "{}")
            .tool_call_chunked("take_message", &["{not json"]),
    );
    fake.enqueue(ChatReply::text("Sorry about that."));
    let host = Arc::new(MemoryServices::demo());
    let mut e = started(&fake, host.clone(), JANE, 2000).await;
    let r = collect(e.turn(say("do something odd"))).await;
    let statuses: Vec<&str> = r
        .summary()
        .tools
        .iter()
        .map(|t| t.status.as_str())
        .collect();
    assert_eq!(statuses, vec!["unknown_function", "invalid_arguments"]);
    assert_eq!(r.text(), "Sorry about that.");
    assert!(host.messages().is_empty());
}

#[tokio::test]
async fn tool_timeout_is_reported_to_the_model() {
    let fake = FakeOpenAi::start().await;
    let flow = flow_from(
        r#"
[flow]
name = "slow"
initial_node = "a"
tool_timeout_ms = 100
[[functions]]
name = "get_balance"
[nodes.a]
opener = "Hi."
"#,
    );
    fake.enqueue(ChatReply::tools().tool_call("get_balance", "{}"));
    fake.enqueue(ChatReply::text("Sorry, the system is slow."));
    let host = Arc::new(MemoryServices::demo().with_delay(Duration::from_secs(2)));
    let customer = MemoryServices::demo().customer_by_phone(JANE);
    let setup = dialogs::CallSetup::new(Some(JANE))
        .with_customer(customer)
        .with_caller_id_trusted(true);
    let mut e = dialogs::Engine::new(flow, host.clone(), Some(llm(&fake, 2000)), setup);
    collect(e.start()).await;
    let t0 = std::time::Instant::now();
    let r = collect(e.turn(say("balance?"))).await;
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(r.summary().tools[0].status, "timeout");
    assert_eq!(r.text(), "Sorry, the system is slow.");
    assert!(host.events().contains(&CallEvent::ToolTimedOut {
        tool: "get_balance".into()
    }));
    let tool_msg = fake.requests()[1].body["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "tool").cloned())
        .unwrap_or_default();
    assert!(
        tool_msg["content"]
            .as_str()
            .unwrap_or_default()
            .contains("timeout")
    );
}

#[tokio::test]
async fn interrupted_mid_tool_commits_atomically_on_the_next_turn() {
    let fake = FakeOpenAi::start().await;
    fake.enqueue(ChatReply::text("Let me check.").tool_call("get_balance", "{}"));
    fake.enqueue(ChatReply::text("You're welcome."));
    let host = Arc::new(MemoryServices::demo().with_delay(Duration::from_millis(400)));
    let mut e = started(&fake, host.clone(), JANE, 2000).await;
    {
        let mut s = e.turn(say("What's my balance?"));
        let mut heard = Vec::new();
        // Read until the stream blocks on the tool, then drop it (barge-in).
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(150), s.next()).await {
            heard.push(ev);
        }
        assert_eq!(heard, vec![ReplyEvent::Sentence("Let me check.".into())]);
    }
    // Nothing half-moved: still in the old node, the tool pending.
    assert_eq!(e.node(), "main");
    assert!(e.has_pending_tool());
    e.interrupted("Let me");

    let r = collect(e.turn(say("Thanks"))).await;
    // The tool's result and its transition landed together before the new input.
    assert_eq!(e.node(), "balance");
    assert!(!e.has_pending_tool());
    assert_eq!(r.summary().tools[0].name, "get_balance");
    assert_eq!(r.summary().node_before, "main");
    // The opener of the node entered during the interruption is not spoken late.
    assert!(!r.text().contains("current balance"), "{}", r.text());
    assert_eq!(r.text(), "You're welcome.");
    let msgs = fake.requests()[1].body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let assistant_with_call = msgs
        .iter()
        .find(|m| m.get("tool_calls").is_some())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        assistant_with_call["content"], "Let me",
        "history keeps only the words played"
    );
    assert!(msgs.iter().any(|m| m["role"] == "tool"));
    assert_eq!(
        msgs.last().map(|m| m["content"].clone()),
        Some("Thanks".into())
    );
}

#[tokio::test]
async fn opener_is_spoken_once_even_when_cut_off() {
    let fake = FakeOpenAi::start().await;
    fake.enqueue(ChatReply::tools().tool_call("get_balance", "{}"));
    fake.enqueue(ChatReply::text("Sure."));
    let host = Arc::new(MemoryServices::demo());
    let mut e = started(&fake, host, JANE, 2000).await;
    {
        let mut s = e.turn(say("balance please"));
        let first = s.next().await;
        assert_eq!(
            first,
            Some(ReplyEvent::Sentence(
                "Your current balance is $142.50.".into()
            ))
        );
        // Caller barges in after the first sentence of the opener.
    }
    assert_eq!(e.node(), "balance");
    e.interrupted("Your current balance is $142.50.");
    let r = collect(e.turn(say("ok and?"))).await;
    assert_eq!(r.text(), "Sure.");
    let transcript = e.transcript();
    let openers = transcript
        .iter()
        .filter(|(_, t)| t.contains("current balance"))
        .count();
    assert_eq!(openers, 1);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn interrupted_counts_unheard_tokens() {
    let fake = FakeOpenAi::start().await;
    fake.enqueue(ChatReply::text("One two three four. Five six seven eight.").usage(50, 40));
    let host = Arc::new(MemoryServices::demo());
    let mut e = started(&fake, host, JANE, 2000).await;
    collect(e.turn(say("count"))).await;
    let cut = e.interrupted("One two three four.");
    assert_eq!(cut, 20);
    assert_eq!(e.usage().cut_off_completion_tokens, 20);
    assert_eq!(e.interrupted(""), 0, "a second call changes nothing");
}

#[tokio::test]
async fn llm_greeting_when_the_initial_node_has_no_opener() {
    let fake = FakeOpenAi::start().await;
    let flow = flow_from(
        r#"
[flow]
name = "open"
initial_node = "a"
role = "Greet the caller."
[nodes.a]
task = "Say hello."
"#,
    );
    fake.enqueue(ChatReply::text("Hello from the model."));
    let host = Arc::new(MemoryServices::demo());
    let mut e = engine(flow, host, Some(llm(&fake, 2000)), Some(JANE));
    let g = collect(e.start()).await;
    assert_eq!(g.text(), "Hello from the model.");
    assert!(collect(e.start()).await.sentences.is_empty());
}
