//! Flow definitions and the flow engine: what the agent says and does on each caller turn,
//! either scripted (keywords/phrases) or through an OpenAI-compatible LLM.
//!
//! It does no audio and no SIP: it consumes caller text and produces reply text and actions.
