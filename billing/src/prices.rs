//! The price table and pricing a call's usage (the cost ledger).
//!
//! Rates are micro-units of the currency per unit (per minute of call by direction, per minute
//! of STT audio, per 1,000 prompt/completion tokens, per 1,000 synthesised characters). A
//! component's cost is `quantity × rate / unit`, rounded half up to a micro-unit, in i128 so
//! no product overflows. Tokens of replies cut off by barge-in are part of the completion
//! tokens (the model produced them); they are listed on their own, unpriced, so a supervisor
//! sees what interruptions cost.

use std::collections::BTreeMap;

use serde::Serialize;
use store::CallDirection;

/// Rates in micro-units (1e-6 of `currency`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prices {
    /// ISO 4217 code.
    pub currency: String,
    pub inbound_per_minute: i64,
    pub outbound_per_minute: i64,
    pub stt_per_audio_minute: i64,
    pub llm_prompt_per_1k_tokens: i64,
    pub llm_completion_per_1k_tokens: i64,
    pub tts_per_1k_chars: i64,
}

/// One priced line of a call's cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CostItem {
    /// `transport`, `stt`, `llm_prompt`, `llm_completion`, `tts`.
    pub component: &'static str,
    /// The usage kind it prices (`call_ms`, `stt_audio_ms`, …).
    pub usage: &'static str,
    pub quantity: i64,
    pub unit: &'static str,
    /// Micro-units per `per` units of `quantity`'s kind.
    pub rate_micros: i64,
    pub per: &'static str,
    pub micros: i64,
}

/// `quantity × rate / divisor`, rounded half up (quantities and rates are not negative).
fn scaled(quantity: i64, rate: i64, divisor: i64) -> i64 {
    let num = i128::from(quantity) * i128::from(rate);
    let d = i128::from(divisor.max(1));
    i64::try_from((num + d / 2).div_euclid(d)).unwrap_or(i64::MAX)
}

/// Prices a call's usage (summed by kind). Returns the total (micro-units), the lines, and the
/// JSON breakdown stored in the ledger.
pub fn price_usage(
    prices: &Prices,
    direction: CallDirection,
    usage: &BTreeMap<String, i64>,
) -> (i64, Vec<CostItem>, serde_json::Value) {
    let get = |k: &str| usage.get(k).copied().unwrap_or(0).max(0);
    let per_minute = match direction {
        CallDirection::Inbound => prices.inbound_per_minute,
        CallDirection::Outbound => prices.outbound_per_minute,
    };
    let lines = [
        ("transport", "call_ms", "ms", per_minute, "minute", 60_000),
        (
            "stt",
            "stt_audio_ms",
            "ms",
            prices.stt_per_audio_minute,
            "minute",
            60_000,
        ),
        (
            "llm_prompt",
            "llm_prompt_tokens",
            "tokens",
            prices.llm_prompt_per_1k_tokens,
            "1k_tokens",
            1_000,
        ),
        (
            "llm_completion",
            "llm_completion_tokens",
            "tokens",
            prices.llm_completion_per_1k_tokens,
            "1k_tokens",
            1_000,
        ),
        (
            "tts",
            "tts_chars",
            "chars",
            prices.tts_per_1k_chars,
            "1k_chars",
            1_000,
        ),
    ];
    let items: Vec<CostItem> = lines
        .into_iter()
        .map(|(component, kind, unit, rate, per, divisor)| {
            let quantity = get(kind);
            CostItem {
                component,
                usage: kind,
                quantity,
                unit,
                rate_micros: rate,
                per,
                micros: scaled(quantity, rate, divisor),
            }
        })
        .collect();
    let total = items
        .iter()
        .map(|i| i.micros)
        .fold(0_i64, i64::saturating_add);
    let breakdown = serde_json::json!({
        "currency": prices.currency,
        "total_micros": total,
        "items": items,
        // Part of llm_completion (produced, then cut off by the caller): informational.
        "llm_cut_off_tokens": get("llm_cut_off_tokens"),
    });
    (total, items, breakdown)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn each_component_is_priced_exactly() {
        let usage: BTreeMap<String, i64> = [
            ("call_ms", 90_000),
            ("stt_audio_ms", 30_000),
            ("llm_prompt_tokens", 2_500),
            ("llm_completion_tokens", 333),
            ("llm_cut_off_tokens", 40),
            ("tts_chars", 1_234),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let (total, items, json) = price_usage(&prices(), CallDirection::Inbound, &usage);
        let micros: Vec<i64> = items.iter().map(|i| i.micros).collect();
        // 1.5 min × 10,000; 0.5 min × 6,000; 2.5k × 150; 0.333k × 600 = 199.8 → 200;
        // 1.234k × 15,000 = 18,510.
        assert_eq!(micros, [15_000, 3_000, 375, 200, 18_510]);
        assert_eq!(total, 37_085);
        assert_eq!(json["llm_cut_off_tokens"], 40);
        let (outbound, ..) = price_usage(&prices(), CallDirection::Outbound, &usage);
        assert_eq!(outbound, total + 7_500);
    }

    #[test]
    fn no_usage_costs_nothing_and_huge_usage_does_not_overflow() {
        let (total, ..) = price_usage(&prices(), CallDirection::Inbound, &BTreeMap::new());
        assert_eq!(total, 0);
        let usage = BTreeMap::from([("call_ms".to_owned(), i64::MAX)]);
        let (total, ..) = price_usage(&prices(), CallDirection::Inbound, &usage);
        assert_eq!(total, i64::MAX / 6);
    }
}
