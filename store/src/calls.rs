//! Calls, their events and their turns — written as the call runs, not only at the end.

use std::fmt;
use std::str::FromStr;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{CallId, EndReason, EventKind, Store, StoreError, TenantId, new_id};

/// Inbound (caller rang us) or outbound (we dialled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallDirection {
    Inbound,
    Outbound,
}

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    /// Offered or dialled, not yet answered.
    Ringing,
    /// Answered and in progress.
    Active,
    /// Over; `end_reason` says why.
    Ended,
}

macro_rules! text_enum {
    ($ty:ident, $what:literal, $($variant:ident => $text:literal),+) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(StoreError::Corrupt { what: $what, value: s.to_owned() }),
                }
            }
        }
    };
}
text_enum!(CallDirection, "call direction", Inbound => "inbound", Outbound => "outbound");
text_enum!(CallStatus, "call status", Ringing => "ringing", Active => "active", Ended => "ended");

/// What carried a call: the daemon's own SIP/RTP stack, or a LiveKit room (LiveKit SIP
/// bridged the phone call into it and the daemon joined as the agent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CallTransport {
    #[default]
    Sip,
    LiveKit,
}
text_enum!(CallTransport, "call transport", Sip => "sip", LiveKit => "livekit");

/// What is known when a call starts.
#[derive(Debug, Clone)]
pub struct NewCall {
    /// The call's id, chosen by the caller (see [`CallId::generate`]) so events can be queued for a
    /// call before its row is written.
    pub id: CallId,
    pub tenant_id: TenantId,
    pub direction: CallDirection,
    pub from_number: String,
    pub to_number: String,
    pub sip_call_id: Option<String>,
    pub flow: Option<String>,
    pub flow_version: Option<String>,
    pub node: String,
    pub started_at: i64,
    pub transport: CallTransport,
}

/// A call row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub id: CallId,
    pub tenant_id: TenantId,
    pub direction: CallDirection,
    pub from_number: String,
    pub to_number: String,
    pub sip_call_id: Option<String>,
    pub flow: Option<String>,
    pub flow_version: Option<String>,
    pub node: String,
    pub status: CallStatus,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub end_reason: Option<EndReason>,
    pub transport: CallTransport,
}

/// Something that happened during a call (answered, DTMF, transfer outcome, refusal, …).
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    pub id: String,
    pub call_id: CallId,
    pub at: i64,
    pub kind: EventKind,
    pub detail: serde_json::Value,
}

/// Per-turn latencies in milliseconds, measured at the RTP boundary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnLatency {
    /// Caller's last voiced frame → endpoint decision.
    pub eot_ms: Option<i64>,
    /// Endpoint decision → final transcript.
    pub stt_ms: Option<i64>,
    /// Final transcript → reply text ready (first sentence).
    pub llm_ms: Option<i64>,
    /// Reply text ready → first synthesized audio.
    pub tts_ms: Option<i64>,
    /// Caller's last voiced frame → first reply RTP packet sent.
    pub e2e_ms: Option<i64>,
}

/// One exchange: what the caller said and what the agent answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub call_id: CallId,
    /// 0 for the greeting, then 1, 2, … per caller turn.
    pub seq: i64,
    pub started_at: i64,
    pub caller_text: Option<String>,
    pub agent_text: Option<String>,
    /// The agent's reply was cut short by the caller (barge-in); `agent_text` holds what played.
    pub interrupted: bool,
    pub latency: TurnLatency,
}

/// Filter and page for listing calls, newest first.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub status: Option<CallStatus>,
    /// Page size; clamped to 1..=200.
    pub limit: u32,
    /// Continue after this cursor (from a previous page).
    pub after: Option<CallCursor>,
}

/// Opaque position in the newest-first call listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallCursor {
    pub started_at: i64,
    pub id: CallId,
}

impl fmt::Display for CallCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.started_at, self.id)
    }
}

impl FromStr for CallCursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ms, id) = s
            .split_once('_')
            .ok_or_else(|| "malformed cursor".to_owned())?;
        let started_at = ms.parse().map_err(|_| "malformed cursor".to_owned())?;
        if id.is_empty() {
            return Err("malformed cursor".to_owned());
        }
        Ok(Self {
            started_at,
            id: CallId::new(id),
        })
    }
}

/// A page of calls and where the next page starts (None at the end).
#[derive(Debug, Clone)]
pub struct CallPage {
    pub calls: Vec<Call>,
    pub next: Option<CallCursor>,
}

pub(crate) const CALL_COLUMNS: &str = "id, tenant_id, direction, from_number, to_number, sip_call_id, \
     flow, flow_version, node, status, started_at, answered_at, ended_at, end_reason, transport";

pub(crate) fn call_from_row(r: &AnyRow) -> Result<Call, StoreError> {
    let direction: String = r.get(2);
    let status: String = r.get(9);
    let end_reason: Option<String> = r.get(13);
    let transport: String = r.get(14);
    Ok(Call {
        id: CallId::new(r.get::<String, _>(0)),
        tenant_id: TenantId::new(r.get::<String, _>(1)),
        direction: direction.parse()?,
        from_number: r.get(3),
        to_number: r.get(4),
        sip_call_id: r.get(5),
        flow: r.get(6),
        flow_version: r.get(7),
        node: r.get(8),
        status: status.parse()?,
        started_at: r.get(10),
        answered_at: r.get(11),
        ended_at: r.get(12),
        end_reason: end_reason.as_deref().map(EndReason::from_code),
        transport: transport.parse()?,
    })
}

impl Store {
    /// Records a new call in `ringing` state.
    pub async fn insert_call(&self, new: NewCall) -> Result<Call, StoreError> {
        let call = Call {
            id: new.id,
            tenant_id: new.tenant_id,
            direction: new.direction,
            from_number: new.from_number,
            to_number: new.to_number,
            sip_call_id: new.sip_call_id,
            flow: new.flow,
            flow_version: new.flow_version,
            node: new.node,
            status: CallStatus::Ringing,
            started_at: new.started_at,
            answered_at: None,
            ended_at: None,
            end_reason: None,
            transport: new.transport,
        };
        sqlx::query(&format!(
            "INSERT INTO calls ({CALL_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ))
        .bind(call.id.as_str())
        .bind(call.tenant_id.as_str())
        .bind(call.direction.as_str())
        .bind(&call.from_number)
        .bind(&call.to_number)
        .bind(&call.sip_call_id)
        .bind(&call.flow)
        .bind(&call.flow_version)
        .bind(&call.node)
        .bind(call.status.as_str())
        .bind(call.started_at)
        .bind(call.answered_at)
        .bind(call.ended_at)
        .bind(call.end_reason.as_ref().map(|r| r.as_str().to_owned()))
        .bind(call.transport.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_insert(e, "call"))?;
        Ok(call)
    }

    /// Marks a ringing call answered.
    pub async fn mark_call_answered(&self, id: &CallId, at: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE calls SET status = 'active', answered_at = $1, rollup_rev = rollup_rev + 1 \
             WHERE id = $2 AND status = 'ringing'",
        )
        .bind(at)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "ringing call",
            });
        }
        Ok(())
    }

    /// Ends a call with a reason from the end-reason catalogue. Ending an ended call is a
    /// no-op that keeps the first reason.
    pub async fn end_call(
        &self,
        id: &CallId,
        at: i64,
        reason: &EndReason,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE calls SET status = 'ended', ended_at = $1, end_reason = $2, \
             rollup_rev = rollup_rev + 1 WHERE id = $3 AND status <> 'ended'",
        )
        .bind(at)
        .bind(reason.as_str())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends every call `node` left unfinished (the process died mid-call); returns how many.
    pub async fn end_orphaned_calls(
        &self,
        node: &str,
        at: i64,
        reason: &EndReason,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE calls SET status = 'ended', ended_at = $1, end_reason = $2, \
             rollup_rev = rollup_rev + 1 WHERE node = $3 AND status <> 'ended'",
        )
        .bind(at)
        .bind(reason.as_str())
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// One call of a tenant.
    pub async fn get_call(
        &self,
        tenant_id: &TenantId,
        id: &CallId,
    ) -> Result<Option<Call>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(call_from_row).transpose()
    }

    /// A tenant's calls, newest first, one page at a time.
    pub async fn list_calls(
        &self,
        tenant_id: &TenantId,
        filter: &CallFilter,
    ) -> Result<CallPage, StoreError> {
        let limit = filter.limit.clamp(1, 200);
        // Fetch one extra row to learn whether another page exists.
        let fetch = i64::from(limit) + 1;
        let status = filter.status.map(CallStatus::as_str);
        let (after_ms, after_id) = match &filter.after {
            Some(c) => (Some(c.started_at), Some(c.id.as_str())),
            None => (None, None),
        };
        let rows = sqlx::query(&format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE tenant_id = $1 \
             AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR started_at < $3 OR (started_at = $3 AND id < $4)) \
             ORDER BY started_at DESC, id DESC LIMIT $5"
        ))
        .bind(tenant_id.as_str())
        .bind(status)
        .bind(after_ms)
        .bind(after_id)
        .bind(fetch)
        .fetch_all(&self.pool)
        .await?;
        let mut calls = rows
            .iter()
            .map(call_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if calls.len() > limit as usize {
            calls.truncate(limit as usize);
            calls.last().map(|c| CallCursor {
                started_at: c.started_at,
                id: c.id.clone(),
            })
        } else {
            None
        };
        Ok(CallPage { calls, next })
    }

    /// Appends an event to a call.
    pub async fn add_call_event(
        &self,
        call_id: &CallId,
        at: i64,
        kind: &EventKind,
        detail: serde_json::Value,
    ) -> Result<CallEvent, StoreError> {
        let event = CallEvent {
            id: new_id(),
            call_id: call_id.clone(),
            at,
            kind: kind.clone(),
            detail,
        };
        sqlx::query(
            "INSERT INTO call_events (id, call_id, at, kind, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&event.id)
        .bind(event.call_id.as_str())
        .bind(event.at)
        .bind(event.kind.as_str())
        .bind(event.detail.to_string())
        .execute(&self.pool)
        .await?;
        // Analytics read refusals, transfers and nodes from events (see `rollup`).
        self.touch_call(call_id).await?;
        Ok(event)
    }

    /// A call's events in order.
    pub async fn list_call_events(&self, call_id: &CallId) -> Result<Vec<CallEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, call_id, at, kind, detail FROM call_events WHERE call_id = $1 ORDER BY at, id",
        )
        .bind(call_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let detail: String = r.get(4);
                Ok(CallEvent {
                    id: r.get(0),
                    call_id: CallId::new(r.get::<String, _>(1)),
                    at: r.get(2),
                    kind: EventKind::from_code(&r.get::<String, _>(3)),
                    detail: serde_json::from_str(&detail).map_err(|_| StoreError::Corrupt {
                        what: "call event detail",
                        value: detail,
                    })?,
                })
            })
            .collect()
    }

    /// Inserts a turn or replaces the stored one with the same (call, seq): a turn is saved
    /// when it starts and again as each stage completes.
    pub async fn upsert_turn(&self, turn: &Turn) -> Result<(), StoreError> {
        let l = &turn.latency;
        sqlx::query(
            "INSERT INTO turns (id, call_id, seq, started_at, caller_text, agent_text, interrupted, \
             eot_ms, stt_ms, llm_ms, tts_ms, e2e_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (call_id, seq) DO UPDATE SET caller_text = excluded.caller_text, \
             agent_text = excluded.agent_text, interrupted = excluded.interrupted, \
             eot_ms = excluded.eot_ms, stt_ms = excluded.stt_ms, llm_ms = excluded.llm_ms, \
             tts_ms = excluded.tts_ms, e2e_ms = excluded.e2e_ms",
        )
        .bind(new_id())
        .bind(turn.call_id.as_str())
        .bind(turn.seq)
        .bind(turn.started_at)
        .bind(&turn.caller_text)
        .bind(&turn.agent_text)
        .bind(i64::from(turn.interrupted))
        .bind(l.eot_ms)
        .bind(l.stt_ms)
        .bind(l.llm_ms)
        .bind(l.tts_ms)
        .bind(l.e2e_ms)
        .execute(&self.pool)
        .await?;
        self.touch_call(&turn.call_id).await?;
        Ok(())
    }

    /// A call's turns in order.
    pub async fn list_turns(&self, call_id: &CallId) -> Result<Vec<Turn>, StoreError> {
        let rows = sqlx::query(
            "SELECT call_id, seq, started_at, caller_text, agent_text, interrupted, eot_ms, stt_ms, \
             llm_ms, tts_ms, e2e_ms FROM turns WHERE call_id = $1 ORDER BY seq",
        )
        .bind(call_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Turn {
                call_id: CallId::new(r.get::<String, _>(0)),
                seq: r.get(1),
                started_at: r.get(2),
                caller_text: r.get(3),
                agent_text: r.get(4),
                interrupted: r.get::<i64, _>(5) != 0,
                latency: TurnLatency {
                    eot_ms: r.get(6),
                    stt_ms: r.get(7),
                    llm_ms: r.get(8),
                    tts_ms: r.get(9),
                    e2e_ms: r.get(10),
                },
            })
            .collect())
    }
}
