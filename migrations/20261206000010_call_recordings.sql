-- Call recordings (flows with [recording] enabled, after the consent prompt): one file per
-- channel ('caller': what the caller said, 'agent': what the agent played), written by the
-- call's recording task and deleted by the retention sweeper after recording.retention_days.
CREATE TABLE call_recordings (
    call_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    path TEXT NOT NULL,
    format TEXT NOT NULL,
    sample_rate BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (call_id, channel)
);
CREATE INDEX call_recordings_created ON call_recordings (created_at);
