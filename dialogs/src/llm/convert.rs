//! Conversions between the engine's history and async-openai's wire types.

use async_openai::types::chat::{
    ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls,
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestToolMessage,
    ChatCompletionRequestToolMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionStreamOptions, ChatCompletionTool,
    ChatCompletionTools, CreateChatCompletionRequest, CreateChatCompletionStreamResponse,
    FunctionCall, FunctionObject,
};

use super::{Delta, LlmConfig, ToolCall};

/// One message of the conversation history the engine keeps.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ChatMessage {
    User(String),
    Assistant {
        text: String,
        tool_calls: Vec<ToolCall>,
    },
    Tool {
        call_id: String,
        content: String,
    },
}

/// A function offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// Builds a streaming request with usage reporting.
pub(crate) fn build_request(
    cfg: &LlmConfig,
    system: &str,
    history: &[ChatMessage],
    tools: &[ToolSpec],
) -> CreateChatCompletionRequest {
    let mut messages = vec![ChatCompletionRequestMessage::System(
        ChatCompletionRequestSystemMessage {
            content: ChatCompletionRequestSystemMessageContent::Text(system.to_string()),
            name: None,
        },
    )];
    for m in history {
        match m {
            ChatMessage::User(t) => messages.push(ChatCompletionRequestMessage::User(
                ChatCompletionRequestUserMessage {
                    content: ChatCompletionRequestUserMessageContent::Text(t.clone()),
                    name: None,
                },
            )),
            ChatMessage::Assistant { text, tool_calls } => {
                // An interrupted reply trimmed to nothing carries no information.
                if text.is_empty() && tool_calls.is_empty() {
                    continue;
                }
                let calls: Vec<ChatCompletionMessageToolCalls> = tool_calls
                    .iter()
                    .map(|c| {
                        ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
                            id: c.id.clone(),
                            function: FunctionCall {
                                name: c.name.clone(),
                                arguments: c.arguments.clone(),
                            },
                        })
                    })
                    .collect();
                messages.push(ChatCompletionRequestMessage::Assistant(
                    ChatCompletionRequestAssistantMessage {
                        content: (!text.is_empty()).then(|| {
                            ChatCompletionRequestAssistantMessageContent::Text(text.clone())
                        }),
                        tool_calls: (!calls.is_empty()).then_some(calls),
                        ..Default::default()
                    },
                ));
            }
            ChatMessage::Tool { call_id, content } => messages.push(
                ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
                    content: ChatCompletionRequestToolMessageContent::Text(content.clone()),
                    tool_call_id: call_id.clone(),
                }),
            ),
        }
    }
    let tools: Vec<ChatCompletionTools> = tools
        .iter()
        .map(|t| {
            ChatCompletionTools::Function(ChatCompletionTool {
                function: FunctionObject {
                    name: t.name.clone(),
                    description: (!t.description.is_empty()).then(|| t.description.clone()),
                    parameters: Some(t.parameters.clone()),
                    strict: None,
                },
            })
        })
        .collect();
    CreateChatCompletionRequest {
        model: cfg.model.clone(),
        messages,
        tools: (!tools.is_empty()).then_some(tools),
        // One call at a time: tools run in order and a transition stops the batch.
        parallel_tool_calls: None,
        stream: Some(true),
        stream_options: Some(ChatCompletionStreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        }),
        temperature: cfg.temperature,
        max_completion_tokens: cfg.max_completion_tokens,
        ..Default::default()
    }
}

/// The deltas in one streamed chunk (first choice only; we never ask for `n > 1`).
pub(crate) fn deltas(chunk: CreateChatCompletionStreamResponse) -> Vec<Delta> {
    let mut out = Vec::new();
    if let Some(choice) = chunk.choices.into_iter().next() {
        let d = choice.delta;
        if let Some(t) = d.content.filter(|t| !t.is_empty()) {
            out.push(Delta::Text(t));
        }
        for tc in d.tool_calls.unwrap_or_default() {
            let (name, arguments) = tc
                .function
                .map(|f| (f.name, f.arguments))
                .unwrap_or_default();
            out.push(Delta::ToolCall {
                index: tc.index,
                id: tc.id,
                name,
                arguments,
            });
        }
    }
    if let Some(u) = chunk.usage {
        out.push(Delta::Usage {
            prompt: u.prompt_tokens,
            completion: u.completion_tokens,
        });
    }
    out
}
