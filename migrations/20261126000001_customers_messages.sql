-- Customers cache (CRM data kept locally for caller lookup), invoices, and what callers leave
-- behind: messages and callback requests. Same portability rules as the initial migration.

-- A customer of a tenant, as last imported or synced. `external_id` is the id in the system
-- the record came from (the CSV's `external_id`; the Zoho contact id once the sync exists):
-- imports upsert on (tenant_id, external_id).
CREATE TABLE customers (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    external_id      TEXT NOT NULL,
    zoho_contact_id  TEXT,
    zoho_books_id    TEXT,
    name             TEXT NOT NULL,
    company          TEXT,
    email            TEXT,
    -- Asked for by flows with `verify = "postal_code"`; never returned by the admin API.
    postal_code      TEXT,
    balance_minor    BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (tenant_id, external_id)
);

-- Phone numbers in E.164, several per customer. The primary key doubles as the caller-ID
-- lookup index: (tenant_id, e164) is its prefix. One number may belong to several customers
-- (a shared office line); lookups then report the ambiguity instead of picking one.
CREATE TABLE customer_phones (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    e164         TEXT NOT NULL,
    customer_id  TEXT NOT NULL REFERENCES customers(id),
    -- work | mobile | home | other
    kind         TEXT NOT NULL,
    PRIMARY KEY (tenant_id, e164, customer_id)
);
-- Replacing a customer's phones on upsert deletes by customer.
CREATE INDEX customer_phones_customer ON customer_phones (customer_id);

-- Invoices upsert on (tenant_id, number). Dates are calendar dates in the business's own
-- time zone, not instants, so they are TEXT 'YYYY-MM-DD' (which also sorts chronologically),
-- not unix milliseconds: "due 2026-05-01" must not shift by a day with the server's zone.
CREATE TABLE invoices (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    customer_id      TEXT NOT NULL REFERENCES customers(id),
    number           TEXT NOT NULL,
    zoho_invoice_id  TEXT,
    -- e.g. draft, open, overdue, partially_paid, paid, void
    status           TEXT NOT NULL,
    total_minor      BIGINT NOT NULL,
    balance_minor    BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    issue_date       TEXT,
    due_date         TEXT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (tenant_id, number)
);
CREATE INDEX invoices_customer_due ON invoices (customer_id, due_date);

-- A message a caller left (take_message). customer_id is a plain reference, not a foreign
-- key: the customers table is a cache that a sync may rebuild, and messages must outlive that.
CREATE TABLE messages (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    call_id        TEXT REFERENCES calls(id),
    customer_id    TEXT,
    caller_number  TEXT,
    caller_name    TEXT,
    body           TEXT NOT NULL,
    -- new | handled
    status         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    handled_at     BIGINT,
    -- The API key that marked it handled.
    handled_by     TEXT
);
CREATE INDEX messages_tenant_created ON messages (tenant_id, created_at, id);

-- A callback the caller asked for (schedule_callback). `preferred_time` is what the caller
-- said ("tomorrow morning"); `due_at` is set (unix ms) only once a concrete time is known.
CREATE TABLE callbacks (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    call_id         TEXT REFERENCES calls(id),
    customer_id     TEXT,
    number          TEXT NOT NULL,
    preferred_time  TEXT,
    due_at          BIGINT,
    reason          TEXT,
    -- pending | done | cancelled
    status          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    closed_at       BIGINT
);
CREATE INDEX callbacks_tenant_created ON callbacks (tenant_id, created_at, id);
