//! A directory of flows, keyed by `[flow] name`, with reload on change.
//!
//! Reload semantics: a changed file that validates replaces the old version for *new* calls;
//! a call already running holds its own `Arc<Flow>` and is unaffected. A changed file that
//! fails validation is reported and the previous good version stays in service.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::{Flow, FlowErrors};

/// Flows loaded from one directory (`*.toml`).
#[derive(Debug)]
pub struct FlowRegistry {
    dir: PathBuf,
    // Never held across an await: lookups clone the Arc and release the lock.
    flows: RwLock<BTreeMap<String, Arc<Flow>>>,
}

/// Why a registry could not be loaded or refreshed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("cannot read flow directory {}: {source}", dir.display())]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FlowErrors>),
    #[error("flow name `{name}` is used by both {} and {}", first.display(), second.display())]
    DuplicateName {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// The result of [`FlowRegistry::scan_dir`].
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct DirCheck {
    /// Flows that validate, by name.
    pub valid: Vec<Arc<Flow>>,
    /// One entry per file that does not validate, in file-name order.
    pub invalid: Vec<FlowErrors>,
}

impl DirCheck {
    /// Every problem in every invalid file.
    pub fn errors(&self) -> impl Iterator<Item = &super::FlowError> {
        self.invalid.iter().flat_map(|e| e.0.iter())
    }
}

/// What a [`FlowRegistry::reload`] changed.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Flows whose content hash changed (or that are new).
    pub updated: Vec<String>,
    /// Flows whose file disappeared.
    pub removed: Vec<String>,
    /// Files that failed validation; their previous version (if any) is still served.
    pub rejected: Vec<FlowErrors>,
}

impl FlowRegistry {
    /// Loads every `*.toml` in `dir`; any invalid flow fails the whole load.
    pub fn load_dir(dir: impl Into<PathBuf>) -> Result<FlowRegistry, RegistryError> {
        let dir = dir.into();
        let (flows, errors) = scan(&dir)?;
        if !errors.is_empty() {
            return Err(RegistryError::Invalid(errors));
        }
        Ok(FlowRegistry {
            dir,
            flows: RwLock::new(flows),
        })
    }

    /// Validates every flow in `dir` without keeping them (`agent flows check`).
    pub fn check_dir(dir: &Path) -> Result<Vec<Arc<Flow>>, RegistryError> {
        let (flows, errors) = scan(dir)?;
        if !errors.is_empty() {
            return Err(RegistryError::Invalid(errors));
        }
        Ok(flows.into_values().collect())
    }

    /// Validates every flow in `dir` and returns the good and the bad ones apart (`agent flows
    /// check` lists both). Only an unreadable directory or a flow name used twice is an error.
    pub fn scan_dir(dir: &Path) -> Result<DirCheck, RegistryError> {
        let (flows, invalid) = scan(dir)?;
        Ok(DirCheck {
            valid: flows.into_values().collect(),
            invalid,
        })
    }

    /// The current version of a flow.
    pub fn get(&self, name: &str) -> Option<Arc<Flow>> {
        self.read().get(name).cloned()
    }

    /// Names of all loaded flows.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// The directory this registry watches.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Rescans the directory and swaps in changed flows that validate.
    pub fn reload(&self) -> Result<ReloadReport, RegistryError> {
        let (fresh, rejected) = scan(&self.dir)?;
        let mut report = ReloadReport {
            rejected,
            ..ReloadReport::default()
        };
        let rejected_files: Vec<&Path> = report
            .rejected
            .iter()
            .filter_map(|e| e.0.first().map(|e| e.file.as_path()))
            .collect();
        let mut flows = self.flows.write().unwrap_or_else(|p| p.into_inner());
        let old = std::mem::take(&mut *flows);
        for (name, flow) in &old {
            // Keep the last good version of a file that is now broken.
            let broken = rejected_files.contains(&flow.path());
            if !fresh.contains_key(name) && !broken {
                report.removed.push(name.clone());
            } else if broken && !fresh.contains_key(name) {
                flows.insert(name.clone(), flow.clone());
            }
        }
        for (name, flow) in fresh {
            let same = old
                .get(&name)
                .is_some_and(|o| o.version_hash() == flow.version_hash());
            if same {
                if let Some(o) = old.get(&name) {
                    flows.insert(name, o.clone());
                }
            } else {
                report.updated.push(name.clone());
                flows.insert(name, flow);
            }
        }
        Ok(report)
    }

    /// Polls the directory every `every` and reloads on change; logs what changed.
    /// The task ends when the registry is dropped elsewhere.
    pub fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(reg) = weak.upgrade() else { return };
                match reg.reload() {
                    Ok(r) => {
                        for name in &r.updated {
                            tracing::info!(flow = %name, "flow reloaded");
                        }
                        for name in &r.removed {
                            tracing::info!(flow = %name, "flow removed");
                        }
                        for e in &r.rejected {
                            tracing::warn!(error = %e, "flow change rejected");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "flow directory scan failed"),
                }
            }
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Flow>>> {
        // A poisoned lock only means a panic elsewhere mid-swap; the map itself is intact.
        self.flows.read().unwrap_or_else(|p| p.into_inner())
    }
}

type Scan = (BTreeMap<String, Arc<Flow>>, Vec<FlowErrors>);

fn scan(dir: &Path) -> Result<Scan, RegistryError> {
    let read_err = |source| RegistryError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let mut flows: BTreeMap<String, Arc<Flow>> = BTreeMap::new();
    let mut errors = Vec::new();
    for path in paths {
        match Flow::load(&path) {
            Ok(flow) => {
                if let Some(first) = flows.get(flow.name()) {
                    return Err(RegistryError::DuplicateName {
                        name: flow.name().to_string(),
                        first: first.path().to_path_buf(),
                        second: path,
                    });
                }
                flows.insert(flow.name().to_string(), Arc::new(flow));
            }
            Err(e) => errors.push(e),
        }
    }
    Ok((flows, errors))
}
