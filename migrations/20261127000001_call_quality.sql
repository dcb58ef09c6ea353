-- Per-call media quality, written when the call ends (and replaced if written again). Same
-- portability rules as the initial migration, and every number is a BIGINT: fractional values
-- are scaled integers rather than REAL, because REAL is a 4-byte float on PostgreSQL and an
-- 8-byte one on SQLite, while BIGINT stores, compares and sums identically on both.
--   loss_bp      share of the caller's packets lost, in basis points (1234 = 12.34 %);
--   jitter_us    RFC 3550 interarrival jitter of the caller's stream, in microseconds;
--   rtt_us       round trip measured from RTCP (LSR/DLSR), in microseconds; NULL when the
--                peer sent no report about our stream;
--   remote_*     our stream as the peer's latest RTCP report describes it; NULL without one;
--   mos_x100     estimated MOS (ITU-T G.107 E-model) times 100, 100 to 450.
CREATE TABLE call_quality (
    call_id              TEXT PRIMARY KEY REFERENCES calls(id),
    codec                TEXT NOT NULL,
    packets_expected     BIGINT NOT NULL,
    packets_received     BIGINT NOT NULL,
    packets_lost         BIGINT NOT NULL,
    loss_bp              BIGINT NOT NULL,
    jitter_us            BIGINT NOT NULL,
    rtt_us               BIGINT,
    remote_packets_lost  BIGINT,
    remote_loss_bp       BIGINT,
    remote_jitter_us     BIGINT,
    mos_x100             BIGINT NOT NULL,
    recorded_at          BIGINT NOT NULL
);
