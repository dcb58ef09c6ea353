//! What callers leave behind: messages for the business (`take_message`) and callback requests
//! (`schedule_callback`), each tied to the call it came from, listed newest first for the
//! admin API.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{CallId, Store, StoreError, TenantId, new_id};

/// A message left for the business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub id: String,
    pub tenant_id: TenantId,
    pub call_id: Option<CallId>,
    /// The identified caller (from call state, never from what the caller said).
    pub customer_id: Option<String>,
    pub caller_number: Option<String>,
    /// The name the caller gave, free text.
    pub caller_name: Option<String>,
    pub text: String,
    pub status: MessageStatus,
    pub created_at: i64,
    pub handled_at: Option<i64>,
    /// Id of the API key that marked it handled.
    pub handled_by: Option<String>,
}

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewMessage {
    pub tenant_id: TenantId,
    pub call_id: Option<CallId>,
    pub customer_id: Option<String>,
    pub caller_number: Option<String>,
    pub caller_name: Option<String>,
    pub text: String,
    pub created_at: i64,
}

/// Whether someone has dealt with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    New,
    Handled,
}

/// A callback request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Callback {
    pub id: String,
    pub tenant_id: TenantId,
    pub call_id: Option<CallId>,
    pub customer_id: Option<String>,
    /// The number to call (E.164 when it could be normalised).
    pub number: String,
    /// When the caller would like the call, in their words ("tomorrow morning").
    pub preferred_time: Option<String>,
    /// A concrete time (unix ms) once one is known.
    pub due_at: Option<i64>,
    pub reason: Option<String>,
    pub status: CallbackStatus,
    pub created_at: i64,
    pub closed_at: Option<i64>,
}

/// A callback request to store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewCallback {
    pub tenant_id: TenantId,
    pub call_id: Option<CallId>,
    pub customer_id: Option<String>,
    pub number: String,
    pub preferred_time: Option<String>,
    pub due_at: Option<i64>,
    pub reason: Option<String>,
    pub created_at: i64,
}

/// Where a callback request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatus {
    Pending,
    Done,
    Cancelled,
}

/// Position in a newest-first listing of messages or callbacks: `<created_at>_<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedCursor {
    pub created_at: i64,
    pub id: String,
}

/// Filter and page for listing messages or callbacks, newest first.
#[derive(Debug, Clone)]
pub struct ListFilter<S> {
    pub status: Option<S>,
    /// Page size; clamped to 1..=200.
    pub limit: u32,
    /// Continue after this cursor (from a previous page).
    pub after: Option<CreatedCursor>,
}

/// A page of rows and where the next page starts (None at the end).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<CreatedCursor>,
}

impl<S> Default for ListFilter<S> {
    fn default() -> Self {
        Self {
            status: None,
            limit: 50,
            after: None,
        }
    }
}

impl Store {
    /// Stores a message with status `new`.
    pub async fn insert_message(&self, new: NewMessage) -> Result<Message, StoreError> {
        let m = Message {
            id: new_id(),
            tenant_id: new.tenant_id,
            call_id: new.call_id,
            customer_id: new.customer_id,
            caller_number: new.caller_number,
            caller_name: new.caller_name,
            text: new.text,
            status: MessageStatus::New,
            created_at: new.created_at,
            handled_at: None,
            handled_by: None,
        };
        sqlx::query(&format!(
            "INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&m.id)
        .bind(m.tenant_id.as_str())
        .bind(m.call_id.as_ref().map(CallId::as_str))
        .bind(&m.customer_id)
        .bind(&m.caller_number)
        .bind(&m.caller_name)
        .bind(&m.text)
        .bind(m.status.as_str())
        .bind(m.created_at)
        .bind(m.handled_at)
        .bind(&m.handled_by)
        .execute(&self.pool)
        .await?;
        if let Some(call_id) = &m.call_id {
            // A message taken means the call was not contained (see `rollup`).
            self.touch_call(call_id).await?;
        }
        Ok(m)
    }

    /// One message of a tenant.
    pub async fn message(
        &self,
        tenant_id: &TenantId,
        id: &str,
    ) -> Result<Option<Message>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(message_from_row).transpose()
    }

    /// Marks a message handled and returns it. Marking a handled message again keeps the
    /// first time and key. A message of another tenant is [`StoreError::NotFound`].
    pub async fn mark_message_handled(
        &self,
        tenant_id: &TenantId,
        id: &str,
        by_key_id: &str,
        at: i64,
    ) -> Result<Message, StoreError> {
        sqlx::query(
            "UPDATE messages SET status = 'handled', handled_at = $1, handled_by = $2 \
             WHERE tenant_id = $3 AND id = $4 AND status = 'new'",
        )
        .bind(at)
        .bind(by_key_id)
        .bind(tenant_id.as_str())
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.message(tenant_id, id)
            .await?
            .ok_or(StoreError::NotFound { what: "message" })
    }

    /// A tenant's messages, newest first, one page at a time.
    pub async fn list_messages(
        &self,
        tenant_id: &TenantId,
        filter: &ListFilter<MessageStatus>,
    ) -> Result<Page<Message>, StoreError> {
        let rows = list_page(
            self,
            "messages",
            MESSAGE_COLUMNS,
            tenant_id,
            filter.status.map(MessageStatus::as_str),
            filter,
        )
        .await?;
        let items = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(paginate(items, filter.limit, |m| (m.created_at, &m.id)))
    }

    /// The messages stored during one call, oldest first.
    pub async fn messages_for_call(&self, call_id: &CallId) -> Result<Vec<Message>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE call_id = $1 ORDER BY created_at, id"
        ))
        .bind(call_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// Stores a callback request with status `pending`.
    pub async fn insert_callback(&self, new: NewCallback) -> Result<Callback, StoreError> {
        let c = Callback {
            id: new_id(),
            tenant_id: new.tenant_id,
            call_id: new.call_id,
            customer_id: new.customer_id,
            number: new.number,
            preferred_time: new.preferred_time,
            due_at: new.due_at,
            reason: new.reason,
            status: CallbackStatus::Pending,
            created_at: new.created_at,
            closed_at: None,
        };
        sqlx::query(&format!(
            "INSERT INTO callbacks ({CALLBACK_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&c.id)
        .bind(c.tenant_id.as_str())
        .bind(c.call_id.as_ref().map(CallId::as_str))
        .bind(&c.customer_id)
        .bind(&c.number)
        .bind(&c.preferred_time)
        .bind(c.due_at)
        .bind(&c.reason)
        .bind(c.status.as_str())
        .bind(c.created_at)
        .bind(c.closed_at)
        .execute(&self.pool)
        .await?;
        if let Some(call_id) = &c.call_id {
            self.touch_call(call_id).await?;
        }
        Ok(c)
    }

    /// One callback request of a tenant.
    pub async fn callback(
        &self,
        tenant_id: &TenantId,
        id: &str,
    ) -> Result<Option<Callback>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(callback_from_row).transpose()
    }

    /// Closes a pending callback as `done` or `cancelled` and returns it. Closing a closed one
    /// keeps its first status and time; `Pending` is not a way to close.
    pub async fn close_callback(
        &self,
        tenant_id: &TenantId,
        id: &str,
        status: CallbackStatus,
        at: i64,
    ) -> Result<Callback, StoreError> {
        if status != CallbackStatus::Pending {
            sqlx::query(
                "UPDATE callbacks SET status = $1, closed_at = $2 \
                 WHERE tenant_id = $3 AND id = $4 AND status = 'pending'",
            )
            .bind(status.as_str())
            .bind(at)
            .bind(tenant_id.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        }
        self.callback(tenant_id, id)
            .await?
            .ok_or(StoreError::NotFound { what: "callback" })
    }

    /// A tenant's callback requests, newest first, one page at a time.
    pub async fn list_callbacks(
        &self,
        tenant_id: &TenantId,
        filter: &ListFilter<CallbackStatus>,
    ) -> Result<Page<Callback>, StoreError> {
        let rows = list_page(
            self,
            "callbacks",
            CALLBACK_COLUMNS,
            tenant_id,
            filter.status.map(CallbackStatus::as_str),
            filter,
        )
        .await?;
        let items = rows
            .iter()
            .map(callback_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(paginate(items, filter.limit, |c| (c.created_at, &c.id)))
    }

    /// The callback requests made during one call, oldest first.
    pub async fn callbacks_for_call(&self, call_id: &CallId) -> Result<Vec<Callback>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE call_id = $1 ORDER BY created_at, id"
        ))
        .bind(call_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(callback_from_row).collect()
    }
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::New => "new",
            MessageStatus::Handled => "handled",
        }
    }
}

impl FromStr for MessageStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "new" => Ok(MessageStatus::New),
            "handled" => Ok(MessageStatus::Handled),
            _ => Err(StoreError::Corrupt {
                what: "message status",
                value: s.to_owned(),
            }),
        }
    }
}

impl CallbackStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackStatus::Pending => "pending",
            CallbackStatus::Done => "done",
            CallbackStatus::Cancelled => "cancelled",
        }
    }
}

impl FromStr for CallbackStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(CallbackStatus::Pending),
            "done" => Ok(CallbackStatus::Done),
            "cancelled" => Ok(CallbackStatus::Cancelled),
            _ => Err(StoreError::Corrupt {
                what: "callback status",
                value: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for CreatedCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.created_at, self.id)
    }
}

impl FromStr for CreatedCursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ms, id) = s
            .split_once('_')
            .ok_or_else(|| "malformed cursor".to_owned())?;
        let created_at = ms.parse().map_err(|_| "malformed cursor".to_owned())?;
        if id.is_empty() {
            return Err("malformed cursor".to_owned());
        }
        Ok(Self {
            created_at,
            id: id.to_owned(),
        })
    }
}

const MESSAGE_COLUMNS: &str = "id, tenant_id, call_id, customer_id, caller_number, caller_name, \
     body, status, created_at, handled_at, handled_by";

const CALLBACK_COLUMNS: &str = "id, tenant_id, call_id, customer_id, number, preferred_time, \
     due_at, reason, status, created_at, closed_at";

fn message_from_row(r: &AnyRow) -> Result<Message, StoreError> {
    let status: String = r.get(7);
    Ok(Message {
        id: r.get(0),
        tenant_id: TenantId::new(r.get::<String, _>(1)),
        call_id: r.get::<Option<String>, _>(2).map(CallId::new),
        customer_id: r.get(3),
        caller_number: r.get(4),
        caller_name: r.get(5),
        text: r.get(6),
        status: status.parse()?,
        created_at: r.get(8),
        handled_at: r.get(9),
        handled_by: r.get(10),
    })
}

fn callback_from_row(r: &AnyRow) -> Result<Callback, StoreError> {
    let status: String = r.get(8);
    Ok(Callback {
        id: r.get(0),
        tenant_id: TenantId::new(r.get::<String, _>(1)),
        call_id: r.get::<Option<String>, _>(2).map(CallId::new),
        customer_id: r.get(3),
        number: r.get(4),
        preferred_time: r.get(5),
        due_at: r.get(6),
        reason: r.get(7),
        status: status.parse()?,
        created_at: r.get(9),
        closed_at: r.get(10),
    })
}

/// Newest-first keyset page over a table with `(tenant_id, created_at, id)` indexed; fetches
/// one extra row to learn whether another page exists. `table` and `columns` are constants.
async fn list_page<S>(
    store: &Store,
    table: &str,
    columns: &str,
    tenant_id: &TenantId,
    status: Option<&str>,
    filter: &ListFilter<S>,
) -> Result<Vec<AnyRow>, StoreError> {
    let fetch = i64::from(filter.limit.clamp(1, 200)) + 1;
    let (after_ms, after_id) = match &filter.after {
        Some(c) => (Some(c.created_at), Some(c.id.as_str())),
        None => (None, None),
    };
    let rows = sqlx::query(&format!(
        "SELECT {columns} FROM {table} WHERE tenant_id = $1 \
         AND ($2 IS NULL OR status = $2) \
         AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4)) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    ))
    .bind(tenant_id.as_str())
    .bind(status)
    .bind(after_ms)
    .bind(after_id)
    .bind(fetch)
    .fetch_all(&store.pool)
    .await?;
    Ok(rows)
}

fn paginate<T>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> (i64, &String)) -> Page<T> {
    let limit = limit.clamp(1, 200) as usize;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|t| {
            let (created_at, id) = key(t);
            CreatedCursor {
                created_at,
                id: id.clone(),
            }
        })
    } else {
        None
    };
    Page { items, next }
}
