-- Billing, analytics and mail (issue 11). Same portability rules as the initial migration:
-- TEXT ids, BIGINT unix ms, BIGINT money (micro-units or minor units, named in the column),
-- BIGINT 0/1 flags, JSON as TEXT.

-- Per-tenant settings a tenant admin edits through the API: the zone the daily summary and
-- "today" are computed in, and the supervisors who receive e-mail (JSON array of addresses).
CREATE TABLE tenant_settings (
    tenant_id          TEXT PRIMARY KEY REFERENCES tenants(id),
    timezone           TEXT NOT NULL,
    supervisor_emails  TEXT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- LiveKit SIP trunk ids -> tenant and flow (dialled numbers are in phone_numbers).
CREATE TABLE trunk_routes (
    trunk_id    TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    flow        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX trunk_routes_tenant ON trunk_routes (tenant_id, trunk_id);
CREATE INDEX phone_numbers_tenant ON phone_numbers (tenant_id, number);

-- Concurrent-call admission counts a tenant's unfinished calls.
CREATE INDEX calls_tenant_status ON calls (tenant_id, status);
-- CSV export and analytics edges filter a tenant's calls by start time (calls_tenant_started
-- exists); usage per call for the cost ledger:
CREATE INDEX usage_records_call ON usage_records (call_id);
CREATE INDEX turns_call ON turns (call_id, seq);
CREATE INDEX messages_call ON messages (call_id);
CREATE INDEX callbacks_call ON callbacks (call_id);
-- The mail notifier scans every tenant's new messages and callbacks in creation order.
CREATE INDEX messages_created ON messages (created_at, id);
CREATE INDEX callbacks_created ON callbacks (created_at, id);

-- Rollups. Every write that changes what analytics sees of a call bumps calls.rollup_rev; the
-- folder re-reads calls whose rollup_rev differs from rolled_rev, computes the call's
-- contribution, and applies (new - old) to the rollup rows in one transaction, keeping the
-- contribution it applied in call_rollup_state. Re-folding an unchanged call changes nothing,
-- so late ends, repeated ends and late turns stay exact.
ALTER TABLE calls ADD COLUMN rollup_rev BIGINT NOT NULL DEFAULT 1;
ALTER TABLE calls ADD COLUMN rolled_rev BIGINT NOT NULL DEFAULT 0;
CREATE INDEX calls_unrolled ON calls (id) WHERE rollup_rev <> rolled_rev;

-- What a call contributed to the rollups when last folded, and its priced cost (the cost
-- ledger): currency, total in micro-units (1e-6 of the currency unit), breakdown as JSON.
CREATE TABLE call_rollup_state (
    call_id        TEXT PRIMARY KEY REFERENCES calls(id),
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    contribution   TEXT NOT NULL,
    currency       TEXT NOT NULL,
    cost_micros    BIGINT NOT NULL,
    cost_breakdown TEXT NOT NULL,
    folded_at      BIGINT NOT NULL
);

-- Sums over the calls that started in one slot of one grain: 'q' 15 minutes, 'h' hour,
-- 'd' day (UTC). Latency histograms: 40 fixed bins per metric (see store::rollup::BIN_EDGES).
CREATE TABLE rollup_calls (
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    grain          TEXT NOT NULL,
    slot           BIGINT NOT NULL,
    calls          BIGINT NOT NULL DEFAULT 0,
    inbound        BIGINT NOT NULL DEFAULT 0,
    outbound       BIGINT NOT NULL DEFAULT 0,
    answered       BIGINT NOT NULL DEFAULT 0,
    ended          BIGINT NOT NULL DEFAULT 0,
    handled        BIGINT NOT NULL DEFAULT 0,
    handle_ms      BIGINT NOT NULL DEFAULT 0,
    transferred    BIGINT NOT NULL DEFAULT 0,
    followups      BIGINT NOT NULL DEFAULT 0,
    contained      BIGINT NOT NULL DEFAULT 0,
    refusals       BIGINT NOT NULL DEFAULT 0,
    turns          BIGINT NOT NULL DEFAULT 0,
    mos_x100_sum   BIGINT NOT NULL DEFAULT 0,
    mos_n          BIGINT NOT NULL DEFAULT 0,
    call_ms        BIGINT NOT NULL DEFAULT 0,
    cost_micros    BIGINT NOT NULL DEFAULT 0,
    e2e_b00        BIGINT NOT NULL DEFAULT 0,
    e2e_b01        BIGINT NOT NULL DEFAULT 0,
    e2e_b02        BIGINT NOT NULL DEFAULT 0,
    e2e_b03        BIGINT NOT NULL DEFAULT 0,
    e2e_b04        BIGINT NOT NULL DEFAULT 0,
    e2e_b05        BIGINT NOT NULL DEFAULT 0,
    e2e_b06        BIGINT NOT NULL DEFAULT 0,
    e2e_b07        BIGINT NOT NULL DEFAULT 0,
    e2e_b08        BIGINT NOT NULL DEFAULT 0,
    e2e_b09        BIGINT NOT NULL DEFAULT 0,
    e2e_b10        BIGINT NOT NULL DEFAULT 0,
    e2e_b11        BIGINT NOT NULL DEFAULT 0,
    e2e_b12        BIGINT NOT NULL DEFAULT 0,
    e2e_b13        BIGINT NOT NULL DEFAULT 0,
    e2e_b14        BIGINT NOT NULL DEFAULT 0,
    e2e_b15        BIGINT NOT NULL DEFAULT 0,
    e2e_b16        BIGINT NOT NULL DEFAULT 0,
    e2e_b17        BIGINT NOT NULL DEFAULT 0,
    e2e_b18        BIGINT NOT NULL DEFAULT 0,
    e2e_b19        BIGINT NOT NULL DEFAULT 0,
    e2e_b20        BIGINT NOT NULL DEFAULT 0,
    e2e_b21        BIGINT NOT NULL DEFAULT 0,
    e2e_b22        BIGINT NOT NULL DEFAULT 0,
    e2e_b23        BIGINT NOT NULL DEFAULT 0,
    e2e_b24        BIGINT NOT NULL DEFAULT 0,
    e2e_b25        BIGINT NOT NULL DEFAULT 0,
    e2e_b26        BIGINT NOT NULL DEFAULT 0,
    e2e_b27        BIGINT NOT NULL DEFAULT 0,
    e2e_b28        BIGINT NOT NULL DEFAULT 0,
    e2e_b29        BIGINT NOT NULL DEFAULT 0,
    e2e_b30        BIGINT NOT NULL DEFAULT 0,
    e2e_b31        BIGINT NOT NULL DEFAULT 0,
    e2e_b32        BIGINT NOT NULL DEFAULT 0,
    e2e_b33        BIGINT NOT NULL DEFAULT 0,
    e2e_b34        BIGINT NOT NULL DEFAULT 0,
    e2e_b35        BIGINT NOT NULL DEFAULT 0,
    e2e_b36        BIGINT NOT NULL DEFAULT 0,
    e2e_b37        BIGINT NOT NULL DEFAULT 0,
    e2e_b38        BIGINT NOT NULL DEFAULT 0,
    e2e_b39        BIGINT NOT NULL DEFAULT 0,
    eot_b00        BIGINT NOT NULL DEFAULT 0,
    eot_b01        BIGINT NOT NULL DEFAULT 0,
    eot_b02        BIGINT NOT NULL DEFAULT 0,
    eot_b03        BIGINT NOT NULL DEFAULT 0,
    eot_b04        BIGINT NOT NULL DEFAULT 0,
    eot_b05        BIGINT NOT NULL DEFAULT 0,
    eot_b06        BIGINT NOT NULL DEFAULT 0,
    eot_b07        BIGINT NOT NULL DEFAULT 0,
    eot_b08        BIGINT NOT NULL DEFAULT 0,
    eot_b09        BIGINT NOT NULL DEFAULT 0,
    eot_b10        BIGINT NOT NULL DEFAULT 0,
    eot_b11        BIGINT NOT NULL DEFAULT 0,
    eot_b12        BIGINT NOT NULL DEFAULT 0,
    eot_b13        BIGINT NOT NULL DEFAULT 0,
    eot_b14        BIGINT NOT NULL DEFAULT 0,
    eot_b15        BIGINT NOT NULL DEFAULT 0,
    eot_b16        BIGINT NOT NULL DEFAULT 0,
    eot_b17        BIGINT NOT NULL DEFAULT 0,
    eot_b18        BIGINT NOT NULL DEFAULT 0,
    eot_b19        BIGINT NOT NULL DEFAULT 0,
    eot_b20        BIGINT NOT NULL DEFAULT 0,
    eot_b21        BIGINT NOT NULL DEFAULT 0,
    eot_b22        BIGINT NOT NULL DEFAULT 0,
    eot_b23        BIGINT NOT NULL DEFAULT 0,
    eot_b24        BIGINT NOT NULL DEFAULT 0,
    eot_b25        BIGINT NOT NULL DEFAULT 0,
    eot_b26        BIGINT NOT NULL DEFAULT 0,
    eot_b27        BIGINT NOT NULL DEFAULT 0,
    eot_b28        BIGINT NOT NULL DEFAULT 0,
    eot_b29        BIGINT NOT NULL DEFAULT 0,
    eot_b30        BIGINT NOT NULL DEFAULT 0,
    eot_b31        BIGINT NOT NULL DEFAULT 0,
    eot_b32        BIGINT NOT NULL DEFAULT 0,
    eot_b33        BIGINT NOT NULL DEFAULT 0,
    eot_b34        BIGINT NOT NULL DEFAULT 0,
    eot_b35        BIGINT NOT NULL DEFAULT 0,
    eot_b36        BIGINT NOT NULL DEFAULT 0,
    eot_b37        BIGINT NOT NULL DEFAULT 0,
    eot_b38        BIGINT NOT NULL DEFAULT 0,
    eot_b39        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, grain, slot)
);

-- Open-ended breakdowns of the same slots: dim 'end_reason' or 'last_node'.
CREATE TABLE rollup_counts (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    grain      TEXT NOT NULL,
    slot       BIGINT NOT NULL,
    dim        TEXT NOT NULL,
    value      TEXT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, grain, slot, dim, value)
);

-- A tenant's plan and its Dodo Payments subscription. event_at/event_rank: the newest
-- subscription event applied (its envelope timestamp in unix ms, and a rank that orders
-- events with equal timestamps), so events arriving out of order never move state backwards.
CREATE TABLE subscriptions (
    tenant_id             TEXT PRIMARY KEY REFERENCES tenants(id),
    plan                  TEXT NOT NULL,
    status                TEXT NOT NULL,
    dodo_subscription_id  TEXT UNIQUE,
    dodo_customer_id      TEXT,
    product_id            TEXT,
    period_start          BIGINT,
    period_end            BIGINT,
    cancel_at_period_end  BIGINT NOT NULL DEFAULT 0,
    event_at              BIGINT NOT NULL,
    event_rank            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);

-- Payments reported by Dodo webhooks (plan payments and invoice payment links), newest
-- event per payment wins. Amounts in minor units.
CREATE TABLE billing_payments (
    payment_id       TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    subscription_id  TEXT,
    purpose          TEXT NOT NULL,
    reference        TEXT,
    status           TEXT NOT NULL,
    total_minor      BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    event_at         BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX billing_payments_tenant ON billing_payments (tenant_id, updated_at);

-- Checkout sessions we created (plan upgrades, invoice payment links).
CREATE TABLE checkout_sessions (
    session_id   TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    purpose      TEXT NOT NULL,
    plan         TEXT,
    reference    TEXT,
    customer_id  TEXT,
    call_id      TEXT,
    url          TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX checkout_sessions_tenant ON checkout_sessions (tenant_id, created_at);

-- Webhook deliveries seen, by the sender's webhook-id (Standard Webhooks): a replay is
-- answered 200 and not applied again. Inserted in the same transaction as the event's effect.
CREATE TABLE webhook_deliveries (
    provider     TEXT NOT NULL,
    webhook_id   TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    tenant_id    TEXT,
    outcome      TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (provider, webhook_id)
);

-- Outgoing e-mail, delivered by a worker through Resend. idempotency_key is unique (one row
-- per logical mail, e.g. daily-summary:TENANT:DATE) and is sent as Resend's Idempotency-Key,
-- so a retry after a lost response is not delivered twice. A worker claims a row by setting
-- lease_owner/lease_until with a conditional UPDATE (safe with several daemons on PostgreSQL).
CREATE TABLE mail_outbox (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    idempotency_key  TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL,
    recipients       TEXT NOT NULL,
    subject          TEXT NOT NULL,
    html             TEXT NOT NULL,
    text_body        TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    last_error       TEXT,
    provider_id      TEXT,
    created_at       BIGINT NOT NULL,
    sent_at          BIGINT
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
CREATE INDEX mail_outbox_tenant ON mail_outbox (tenant_id, created_at);

-- Where the notifier stopped scanning messages and callbacks ((created_at, id) of the last).
CREATE TABLE mail_cursors (
    name        TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL,
    item_id     TEXT NOT NULL
);
