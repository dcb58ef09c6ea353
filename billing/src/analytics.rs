//! Analytics figures from the rollups: one summary over a range, or one per bucket of a
//! time series in a time zone. Counts, sums, averages and costs are exact; latency
//! percentiles come from the rollups' histograms (`store::rollup::BIN_EDGES`) and are accurate
//! to the bin width (50 ms below 1 s, 100 ms to 2 s).

use serde::Serialize;
use store::rollup::{Counter, RollupTotals, percentile};
use store::{Store, StoreError};

const QUARTER: i64 = 15 * 60_000;
/// Longest range of a summary and of a day series.
pub const MAX_DAYS: i64 = 366;
/// Longest range of an hour series.
pub const MAX_HOUR_DAYS: i64 = 31;

/// p50 and p95 of one latency, in ms (`None` without samples).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub p50: Option<i64>,
    pub p95: Option<i64>,
    pub samples: i64,
}

/// The figures of one range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub calls: i64,
    pub inbound: i64,
    pub outbound: i64,
    pub answered: i64,
    /// Answered and ended calls (handle time is over these).
    pub handled: i64,
    pub avg_handle_ms: Option<i64>,
    pub transferred: i64,
    /// Calls where a message or callback request was taken.
    pub followups: i64,
    pub contained: i64,
    /// `contained / answered` (0–1); `None` without answered calls.
    pub containment: Option<f64>,
    /// Guardrail refusals (`refused` call events).
    pub refusals: i64,
    pub turns: i64,
    pub e2e_ms: Percentiles,
    pub eot_ms: Percentiles,
    /// Mean estimated MOS of calls with a quality record.
    pub mos: Option<f64>,
    pub call_ms: i64,
    pub cost_micros: i64,
}

impl Figures {
    pub fn from_totals(t: &RollupTotals) -> Figures {
        let answered = t.get(Counter::Answered);
        let handled = t.get(Counter::Handled);
        let mos_n = t.get(Counter::MosN);
        let pct = |bins: &[i64]| Percentiles {
            p50: percentile(bins, 0.50),
            p95: percentile(bins, 0.95),
            samples: bins.iter().sum(),
        };
        Figures {
            calls: t.get(Counter::Calls),
            inbound: t.get(Counter::Inbound),
            outbound: t.get(Counter::Outbound),
            answered,
            handled,
            avg_handle_ms: (handled > 0).then(|| t.get(Counter::HandleMs) / handled),
            transferred: t.get(Counter::Transferred),
            followups: t.get(Counter::Followups),
            contained: t.get(Counter::Contained),
            containment: (answered > 0).then(|| t.get(Counter::Contained) as f64 / answered as f64),
            refusals: t.get(Counter::Refusals),
            turns: t.get(Counter::Turns),
            e2e_ms: pct(t.e2e_bins()),
            eot_ms: pct(t.eot_bins()),
            mos: (mos_n > 0).then(|| t.get(Counter::MosX100Sum) as f64 / mos_n as f64 / 100.0),
            call_ms: t.get(Counter::CallMs),
            cost_micros: t.get(Counter::CostMicros),
        }
    }
}

/// A summary: figures plus the outcome breakdowns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub from: i64,
    pub to: i64,
    #[serde(flatten)]
    pub figures: Figures,
    /// Calls per end reason, largest first.
    pub end_reasons: Vec<Count>,
    /// Calls per last flow node, largest first.
    pub last_nodes: Vec<Count>,
}

/// One value of a breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    pub value: String,
    pub calls: i64,
}

/// Reads the summary of `[from, to)` (quarter-hour aligned).
pub async fn summary(
    store: &Store,
    tenant_id: &store::TenantId,
    from: i64,
    to: i64,
) -> Result<Summary, StoreError> {
    let totals = store.rollup_totals(tenant_id, from, to).await?;
    let counts = |v: Vec<(String, i64)>| {
        v.into_iter()
            .map(|(value, calls)| Count { value, calls })
            .collect()
    };
    Ok(Summary {
        from,
        to,
        figures: Figures::from_totals(&totals),
        end_reasons: counts(
            store
                .rollup_breakdown(tenant_id, "end_reason", from, to)
                .await?,
        ),
        last_nodes: counts(
            store
                .rollup_breakdown(tenant_id, "last_node", from, to)
                .await?,
        ),
    })
}

/// One point of a time series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub start: i64,
    pub end: i64,
    #[serde(flatten)]
    pub figures: Figures,
}

/// Bucket width of a time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

/// A bad range, naming the query parameter at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {reason}")]
pub struct RangeError {
    pub parameter: &'static str,
    pub reason: String,
}

fn bad(parameter: &'static str, reason: impl Into<String>) -> RangeError {
    RangeError {
        parameter,
        reason: reason.into(),
    }
}

/// Checks `[from, to)`: quarter-hour aligned, increasing, at most `max_days` long.
pub fn check_range(from: i64, to: i64, max_days: i64) -> Result<(), RangeError> {
    if from.rem_euclid(QUARTER) != 0 {
        return Err(bad(
            "from",
            "must fall on a quarter hour (:00, :15, :30, :45)",
        ));
    }
    if to.rem_euclid(QUARTER) != 0 {
        return Err(bad(
            "to",
            "must fall on a quarter hour (:00, :15, :30, :45)",
        ));
    }
    if to <= from {
        return Err(bad("to", "must be after from"));
    }
    if to - from > max_days * 86_400_000 {
        return Err(bad(
            "to",
            format!("the range may span at most {max_days} days"),
        ));
    }
    Ok(())
}

/// The bucket boundaries of `[from, to)` in zone `tz`: local hours or local days (23 or 25
/// hours across DST changes). The first and last bucket may be partial.
pub fn boundaries(
    from: i64,
    to: i64,
    bucket: Bucket,
    tz: &jiff::tz::TimeZone,
) -> Result<Vec<i64>, RangeError> {
    let max = match bucket {
        Bucket::Hour => MAX_HOUR_DAYS,
        Bucket::Day => MAX_DAYS,
    };
    check_range(from, to, max)?;
    let start = jiff::Timestamp::from_millisecond(from)
        .map_err(|e| bad("from", e.to_string()))?
        .to_zoned(tz.clone());
    let mut out = vec![from];
    let mut cursor = start;
    loop {
        let next = match bucket {
            Bucket::Hour => cursor.start_of_day().ok().and_then(|day| {
                // The next whole local hour after `cursor`.
                let hours = (cursor.timestamp().as_millisecond()
                    - day.timestamp().as_millisecond())
                .div_euclid(3_600_000);
                day.checked_add(jiff::Span::new().hours(hours + 1)).ok()
            }),
            Bucket::Day => cursor.tomorrow().ok().and_then(|d| d.start_of_day().ok()),
        }
        .ok_or_else(|| bad("tz", "cannot step through this zone's calendar"))?;
        let ms = next.timestamp().as_millisecond();
        if ms >= to {
            break;
        }
        if ms.rem_euclid(QUARTER) != 0 {
            return Err(bad("tz", "the zone's offset is not a whole quarter hour"));
        }
        out.push(ms);
        cursor = next;
    }
    out.push(to);
    Ok(out)
}

/// The time series over `boundaries` (see [`boundaries`]).
pub async fn timeseries(
    store: &Store,
    tenant_id: &store::TenantId,
    boundaries: &[i64],
) -> Result<Vec<Point>, StoreError> {
    let totals = store.rollup_buckets(tenant_id, boundaries).await?;
    Ok(totals
        .iter()
        .zip(boundaries.windows(2))
        .map(|(t, w)| Point {
            start: w[0],
            end: w[1],
            figures: Figures::from_totals(t),
        })
        .collect())
}

/// Parses an IANA zone name (`Europe/Paris`, `UTC`).
pub fn zone(name: &str) -> Result<jiff::tz::TimeZone, RangeError> {
    jiff::tz::TimeZone::get(name)
        .map_err(|_| bad("tz", format!("{name:?} is not an IANA time zone")))
}

/// Start of the local day holding `now_ms` in `tz`, and the next quarter hour after now: the
/// "today" range.
pub fn today(now_ms: i64, tz: &jiff::tz::TimeZone) -> (i64, i64) {
    let z = jiff::Timestamp::from_millisecond(now_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(tz.clone());
    let start = z
        .start_of_day()
        .map(|d| d.timestamp().as_millisecond())
        .unwrap_or(now_ms);
    let start = start.div_euclid(QUARTER) * QUARTER;
    let end = (now_ms.div_euclid(QUARTER) + 1) * QUARTER;
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn ranges_are_checked_naming_the_parameter() {
        assert_eq!(check_range(0, H, 1), Ok(()));
        assert_eq!(check_range(H, 0, 1).unwrap_err().parameter, "to");
        assert_eq!(check_range(5, H, 1).unwrap_err().parameter, "from");
        let e = check_range(0, 2 * 86_400_000, 1).unwrap_err();
        assert_eq!(e.parameter, "to");
        assert!(e.reason.contains("at most 1 days"));
    }

    #[test]
    fn day_buckets_follow_the_zone_across_dst() {
        let tz = zone("Europe/Paris").unwrap();
        // 2026-10-24T22:00Z (local midnight of the 25th, CEST) to 2026-10-26T23:00Z.
        let from = "2026-10-24T22:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        let to = "2026-10-26T23:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        let b = boundaries(from, to, Bucket::Day, &tz).unwrap();
        let lengths: Vec<i64> = b.windows(2).map(|w| (w[1] - w[0]) / H).collect();
        // 25 October is 25 hours long in Paris (summer time ends).
        assert_eq!(lengths, [25, 24]);
        let india = zone("Asia/Kolkata").unwrap();
        let b = boundaries(0, 3 * H, Bucket::Hour, &india).unwrap();
        assert_eq!(b, [0, H / 2, 3 * H / 2, 5 * H / 2, 3 * H]);
        assert_eq!(zone("Mars/Olympus").unwrap_err().parameter, "tz");
    }
}
