//! The call's recorder: a task that writes the call's rows in order (call, events, turns,
//! usage, quality, end) as the call runs, retrying while the database is away, fed by a bounded
//! channel so the actor never waits on storage.

use std::time::Duration;

use store::{
    CallId, CallQuality, EndReason, EventKind, NewCall, Store, StoreError, TenantId, Turn,
};

/// One write.
#[derive(Debug)]
pub enum Record {
    Call(NewCall),
    Answered {
        at: i64,
    },
    Event {
        at: i64,
        kind: EventKind,
        detail: serde_json::Value,
    },
    Turn(Turn),
    /// The call's media quality (written at its end; see `quality.rs`).
    Quality(CallQuality),
    Usage {
        kind: &'static str,
        quantity: i64,
        unit: &'static str,
        at: i64,
    },
    Ended {
        at: i64,
        reason: EndReason,
    },
    /// The caller-ID lookup identified the call's customer (for the CRM write-back).
    Customer {
        customer_id: String,
        at: i64,
    },
}

/// Writes pending per call before new ones are dropped (and counted).
const QUEUE: usize = 512;
/// How long one write is retried while the database is unreachable.
const RETRY_FOR: Duration = Duration::from_secs(120);

/// The actor's side.
#[derive(Clone)]
pub struct Recorder {
    tx: tokio::sync::mpsc::Sender<Record>,
    call_id: CallId,
}

impl Recorder {
    /// Starts the writer for `call_id` of `tenant_id`.
    pub fn spawn(
        store: Store,
        tenant_id: TenantId,
        call_id: CallId,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        let task = tokio::spawn(write_all(store, tenant_id, call_id.clone(), rx));
        (Self { tx, call_id }, task)
    }

    pub fn call_id(&self) -> &CallId {
        &self.call_id
    }

    /// Queues a write; never waits. A full queue (database down for minutes) drops the write.
    pub fn record(&self, record: Record) {
        if let Err(e) = self.tx.try_send(record) {
            metrics::counter!("agent_store_writes_dropped_total").increment(1);
            tracing::error!(call_id = %self.call_id, error = %e, "call record dropped");
        }
    }

    pub fn event(&self, kind: EventKind, detail: serde_json::Value) {
        self.record(Record::Event {
            at: crate::clock::now_ms(),
            kind,
            detail,
        });
    }
}

/// The flow's events (through the call's `CallServices`) are written by the same recorder as
/// everything else on the call, in order.
impl crm::CallEventSink for Recorder {
    fn record(&self, kind: EventKind, detail: serde_json::Value) {
        self.event(kind, detail);
    }

    fn customer_identified(&self, customer_id: &str) {
        self.record(Record::Customer {
            customer_id: customer_id.to_owned(),
            at: crate::clock::now_ms(),
        });
    }
}

async fn write_all(
    store: Store,
    tenant_id: TenantId,
    call_id: CallId,
    mut rx: tokio::sync::mpsc::Receiver<Record>,
) {
    while let Some(record) = rx.recv().await {
        let mut delay = Duration::from_millis(100);
        let started = tokio::time::Instant::now();
        loop {
            match write(&store, &tenant_id, &call_id, &record).await {
                Ok(()) => break,
                Err(e) if started.elapsed() < RETRY_FOR && is_transient(&e) => {
                    tracing::warn!(%call_id, error = %e, "store write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    metrics::counter!("agent_store_writes_failed_total").increment(1);
                    tracing::error!(%call_id, error = %e, ?record, "store write failed; giving up");
                    break;
                }
            }
        }
    }
}

fn is_transient(e: &StoreError) -> bool {
    matches!(e, StoreError::Query { .. } | StoreError::Connect { .. })
}

async fn write(
    store: &Store,
    tenant_id: &TenantId,
    call_id: &CallId,
    record: &Record,
) -> Result<(), StoreError> {
    match record {
        Record::Call(new) => match store.insert_call(new.clone()).await {
            // A retry after a write that did land.
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        },
        Record::Answered { at } => match store.mark_call_answered(call_id, *at).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        },
        Record::Event { at, kind, detail } => store
            .add_call_event(call_id, *at, kind, detail.clone())
            .await
            .map(drop),
        Record::Turn(turn) => store.upsert_turn(turn).await,
        Record::Quality(quality) => store.upsert_call_quality(quality).await,
        Record::Usage {
            kind,
            quantity,
            unit,
            at,
        } => store
            .add_usage(tenant_id, Some(call_id), kind, *quantity, unit, *at)
            .await
            .map(drop),
        Record::Ended { at, reason } => store.end_call(call_id, *at, reason).await,
        Record::Customer { customer_id, at } => {
            store
                .set_call_customer(call_id, tenant_id, customer_id, *at)
                .await
        }
    }
}
