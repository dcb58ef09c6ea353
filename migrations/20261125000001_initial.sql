-- Portable schema: this file runs unchanged on SQLite and PostgreSQL.
-- Rules (see ARCHITECTURE.md "Storage portability"):
--   * ids are TEXT (UUIDv7, time-ordered), never auto-increment;
--   * timestamps are BIGINT unix milliseconds (UTC);
--   * money is BIGINT minor units plus a TEXT ISO-4217 currency;
--   * flags are BIGINT 0/1; free-form detail is TEXT holding JSON;
--   * every integer column is BIGINT so both engines decode it as i64.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    role         TEXT NOT NULL,
    -- SHA-256 of the whole key, hex; the key itself is shown once and never stored.
    key_hash     TEXT NOT NULL UNIQUE,
    -- First characters of the key, so an operator can tell keys apart in listings.
    prefix       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    last_used_at BIGINT
);

CREATE TABLE phone_numbers (
    number      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    flow        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE calls (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    direction     TEXT NOT NULL,
    from_number   TEXT NOT NULL,
    to_number     TEXT NOT NULL,
    sip_call_id   TEXT,
    -- The daemon instance that owns the call (several may share one PostgreSQL).
    node          TEXT NOT NULL,
    flow          TEXT,
    flow_version  TEXT,
    status        TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    answered_at   BIGINT,
    ended_at      BIGINT,
    end_reason    TEXT
);
CREATE INDEX calls_tenant_started ON calls (tenant_id, started_at, id);
CREATE INDEX calls_status ON calls (status);

CREATE TABLE call_events (
    id        TEXT PRIMARY KEY,
    call_id   TEXT NOT NULL REFERENCES calls(id),
    at        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL
);
CREATE INDEX call_events_call ON call_events (call_id, at);

CREATE TABLE turns (
    id           TEXT PRIMARY KEY,
    call_id      TEXT NOT NULL REFERENCES calls(id),
    seq          BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    caller_text  TEXT,
    agent_text   TEXT,
    interrupted  BIGINT NOT NULL DEFAULT 0,
    eot_ms       BIGINT,
    stt_ms       BIGINT,
    llm_ms       BIGINT,
    tts_ms       BIGINT,
    e2e_ms       BIGINT,
    UNIQUE (call_id, seq)
);

CREATE TABLE usage_records (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    call_id     TEXT REFERENCES calls(id),
    kind        TEXT NOT NULL,
    quantity    BIGINT NOT NULL,
    unit        TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX usage_records_tenant_at ON usage_records (tenant_id, at);
