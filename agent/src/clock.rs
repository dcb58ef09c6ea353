//! Wall-clock time as unix milliseconds, the unit the store keeps.

/// Now, as unix milliseconds.
pub fn now_ms() -> i64 {
    admin::unix_ms_now()
}
