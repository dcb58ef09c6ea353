-- Outbound campaigns and the do-not-call list. Same portability rules as the initial
-- migration (TEXT ids, BIGINT unix ms, JSON as TEXT, BIGINT everywhere).
--
-- Claiming (store/src/campaigns/claim.rs, ARCHITECTURE.md "Campaign claims"): a daemon claims
-- due contacts in one transaction — the campaign row locked (PostgreSQL FOR UPDATE SKIP
-- LOCKED), due contacts locked with FOR UPDATE SKIP LOCKED, each claimed contact's number
-- locked in `dialling_numbers` — and sets `claimed_by` and `lease_until`. A lease that runs
-- out (a killed daemon) makes the contact claimable again.

-- A campaign: what to call (its contacts), through which trunk, with which flow, when
-- (`settings.windows`, evaluated in each callee's time zone), how fast and how often.
CREATE TABLE campaigns (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    name           TEXT NOT NULL,
    -- list | callbacks (the tenant's one campaign that calls back scheduled callbacks)
    kind           TEXT NOT NULL,
    flow           TEXT NOT NULL,
    trunk          TEXT NOT NULL,
    -- draft | running | paused | completed
    status         TEXT NOT NULL,
    -- Why it paused itself (e.g. the trunk refused most calls), or who paused it.
    status_reason  TEXT,
    -- JSON: calling windows, default time zone, pacing, retry policy, failure pause
    -- (store::CampaignSettings).
    settings       TEXT NOT NULL,
    -- Global pacing: the earliest time the next call of this campaign may start. Each claim
    -- hands out dial times from here and advances it, so calls per second hold across daemons.
    next_dial_at   BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE UNIQUE INDEX campaigns_one_callbacks ON campaigns (tenant_id) WHERE kind = 'callbacks';
CREATE INDEX campaigns_status ON campaigns (status);

-- One number to call in one campaign, with its state:
--   pending  waiting for next_attempt_at;
--   claimed  a daemon (claimed_by) holds it until lease_until, dialling at dial_at;
--   done     finished with a disposition (answered, voicemail, busy, no_answer, dnc, failed,
--            completed — then `outcome` holds the flow's outcome).
CREATE TABLE campaign_contacts (
    id               TEXT PRIMARY KEY,
    campaign_id      TEXT NOT NULL REFERENCES campaigns(id),
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    -- The CSV line it came from (NULL for customer filters and callbacks).
    line             BIGINT,
    -- E.164.
    phone            TEXT NOT NULL,
    name             TEXT,
    -- IANA zone names, space separated: a call may start only when it is inside a calling
    -- window in every one of them (several when derived from a multi-zone country).
    time_zone        TEXT NOT NULL,
    -- JSON object of flow variables from the CSV's other columns.
    variables        TEXT NOT NULL,
    customer_id      TEXT,
    callback_id      TEXT,
    state            TEXT NOT NULL,
    disposition      TEXT,
    outcome          TEXT,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    claimed_by       TEXT,
    lease_until      BIGINT,
    dial_at          BIGINT,
    last_call_id     TEXT,
    updated_at       BIGINT NOT NULL,
    UNIQUE (campaign_id, phone)
);
-- Claims walk this in (next_attempt_at, id) order: with id in the index the LIMIT stops after a
-- few rows even when thousands are due at the same instant.
CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, state, next_attempt_at, id);
CREATE INDEX campaign_contacts_claims ON campaign_contacts (claimed_by, state);
CREATE UNIQUE INDEX campaign_contacts_callback ON campaign_contacts (callback_id);

-- Every call placed for a contact, numbered per contact: UNIQUE (contact_id, seq) is what
-- makes a duplicated attempt impossible to store.
CREATE TABLE campaign_attempts (
    id           TEXT PRIMARY KEY,
    campaign_id  TEXT NOT NULL REFERENCES campaigns(id),
    contact_id   TEXT NOT NULL REFERENCES campaign_contacts(id),
    seq          BIGINT NOT NULL,
    node         TEXT NOT NULL,
    call_id      TEXT,
    started_at   BIGINT NOT NULL,
    ended_at     BIGINT,
    -- answered | completed | voicemail | busy | no_answer | failed | interrupted | lost
    result       TEXT,
    end_reason   TEXT,
    detail       TEXT,
    UNIQUE (contact_id, seq)
);
CREATE INDEX campaign_attempts_campaign ON campaign_attempts (campaign_id, ended_at);

-- One call per number at a time, across campaigns and daemons. A claim takes the number's row
-- in its transaction; a row whose lease has not run out blocks every other claim of the number.
CREATE TABLE dialling_numbers (
    tenant_id    TEXT NOT NULL,
    phone        TEXT NOT NULL,
    contact_id   TEXT NOT NULL,
    claimed_by   TEXT NOT NULL,
    lease_until  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, phone)
);

-- A tenant's do-not-call list (E.164). Checked when a contact is claimed: a listed number is
-- never dialled and its contact ends with disposition `dnc`.
CREATE TABLE dnc_numbers (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    phone       TEXT NOT NULL,
    -- api | csv | cli | call (the callee asked during a call)
    source      TEXT NOT NULL,
    reason      TEXT,
    call_id     TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, phone)
);
