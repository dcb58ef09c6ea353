//! `[recording]`: where recorded calls (flows with `[recording] enabled`) are written and how
//! long they are kept.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Directory of the files (`<dir>/<tenant id>/<call id>-caller.wav` and `-agent.wav`);
    /// relative paths are from the daemon's working directory.
    pub dir: PathBuf,
    /// Recordings older than this are deleted (files and rows); 0 keeps them forever.
    pub retention_days: u32,
    /// How often the retention sweep runs.
    pub sweep_interval_secs: u64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("recordings"),
            retention_days: 90,
            sweep_interval_secs: 3600,
        }
    }
}
