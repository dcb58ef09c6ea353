-- Zoho CRM and Books: per-tenant connections, secrets encrypted at rest, sync runs and
-- watermarks, the call write-back outbox, and which customer each call identified. Same
-- portability rules as the initial migration.

-- Secrets encrypted by the `vault` crate (AES-256-GCM): base64(nonce || ciphertext || tag)
-- plus the id of the key that sealed it, so `agent keys rotate-encryption` finds what is still
-- under an old key. The plaintext is never stored; the tenant id and purpose are bound into the
-- ciphertext as associated data, so a row copied elsewhere does not decrypt.
CREATE TABLE secrets (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    -- e.g. zoho.refresh_token, zoho.access_token
    purpose     TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    ciphertext  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, purpose)
);
CREATE INDEX secrets_key ON secrets (key_id);

-- One Zoho connection per tenant. The tokens live in `secrets`, never here.
CREATE TABLE zoho_connections (
    tenant_id           TEXT PRIMARY KEY REFERENCES tenants(id),
    -- pending (authorization started, never connected) | connected | disconnected
    status              TEXT NOT NULL,
    -- us | eu | in | au | jp | ca | sa | uk | cn
    dc                  TEXT NOT NULL,
    accounts_server     TEXT NOT NULL,
    -- From the token response; every API call goes there.
    api_domain          TEXT,
    -- The OAuth `state` of an authorization in progress, and when it stops being accepted.
    pending_state       TEXT,
    pending_expires_at  BIGINT,
    access_expires_at   BIGINT,
    -- JSON array of unix ms: access tokens minted recently (Zoho allows 10 per 10 minutes
    -- per refresh token), shared by every daemon using this database.
    token_grants        TEXT NOT NULL,
    -- Why it is disconnected (e.g. "refresh token revoked: invalid_code").
    status_reason       TEXT,
    connected_at        BIGINT,
    disconnected_at     BIGINT,
    -- One sync per tenant at a time across daemons: the holder and until when.
    sync_lease_owner    TEXT,
    sync_lease_until    BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

-- Each sync run, for GET /v1/integrations/zoho and the CLI.
CREATE TABLE zoho_sync_runs (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants(id),
    -- 1: everything listed, deletions found by absence; 0: changes since the watermarks
    full_sync         BIGINT NOT NULL,
    -- cli | schedule | api
    trigger_source    TEXT NOT NULL,
    node              TEXT NOT NULL,
    -- running | succeeded | failed
    status            TEXT NOT NULL,
    started_at        BIGINT NOT NULL,
    finished_at       BIGINT,
    -- JSON object per stream: {"crm:Contacts": {"upserted": 1, "deleted": 0, ...}, ...}
    counts            TEXT NOT NULL,
    skipped_no_phone  BIGINT NOT NULL,
    pages             BIGINT NOT NULL,
    error             TEXT
);
CREATE INDEX zoho_sync_runs_tenant ON zoho_sync_runs (tenant_id, started_at, id);

-- Where each incremental stream continues: Zoho's own time text (Modified_Time,
-- last_modified_time, deleted_time) of the newest record applied.
CREATE TABLE zoho_watermarks (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    -- crm:Contacts, crm:Leads, crm:Contacts:deleted, crm:Leads:deleted, books:contacts, books:invoices
    stream      TEXT NOT NULL,
    watermark   TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, stream)
);

-- Writes to Zoho that must survive restarts (a call's CRM Calls record). A worker claims a
-- due row by setting a lease with a compare-and-set UPDATE, so two daemons never send the same
-- row while the lease holds; a crashed worker's lease simply expires.
CREATE TABLE zoho_outbox (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    -- One write-back per call.
    call_id          TEXT NOT NULL UNIQUE,
    -- crm_call
    kind             TEXT NOT NULL,
    -- JSON: the request body, built when the call ended.
    payload          TEXT NOT NULL,
    -- pending | sent | failed
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    -- The last failure, as Zoho worded it.
    last_error       TEXT,
    -- The created record's id in Zoho.
    remote_id        TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX zoho_outbox_due ON zoho_outbox (status, next_attempt_at);
CREATE INDEX zoho_outbox_tenant ON zoho_outbox (tenant_id, status);

-- The customer the caller-ID lookup identified for a call. No foreign keys: the lookup runs
-- before the call row is written (the call's recorder writes asynchronously), and the fact
-- outlives a sync that rebuilds the customer row.
CREATE TABLE call_customers (
    call_id        TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    customer_id    TEXT NOT NULL,
    identified_at  BIGINT NOT NULL
);

-- Books contacts and invoices by their Zoho ids (invoice -> customer, deletions).
CREATE INDEX customers_zoho_books ON customers (tenant_id, zoho_books_id);
CREATE INDEX invoices_zoho ON invoices (tenant_id, zoho_invoice_id);
