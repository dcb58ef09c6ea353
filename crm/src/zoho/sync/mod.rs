//! The sync engine: Zoho CRM Contacts and Leads, then Books contacts and invoices, into the
//! customer cache the caller-ID lookup reads.
//!
//! A run holds the tenant's sync lease (one run per tenant across daemons), is stored with its
//! counts and outcome, and reports progress after every page. Streams and their watermarks:
//!
//! | stream | incremental by | deletions |
//! |---|---|---|
//! | `crm:Contacts`, `crm:Leads` | `If-Modified-Since` = watermark − 1 s, `Modified_Time` ascending, watermark saved per page | `crm:{module}:deleted` (the deleted-records API) |
//! | `books:contacts`, `books:invoices` | `last_modified_time` descending, stop at the watermark | full runs: what was not listed |
//!
//! A stream without a watermark is listed in full. Only a full listing proves absence, so
//! "not listed → deleted" applies only then (CRM by module, Books contacts and invoices).
//! Linking rules between CRM and Books customers are in [`books`]; record mapping in [`map`].

mod books;
mod crm;
pub mod map;

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use store::SyncRunProgress;

use super::{Zoho, ZohoError};

/// Inserted rows between two refreshes of the planner's statistics during a run.
const ANALYZE_EVERY_INSERTS: u64 = 20_000;

/// How long a sync lease lasts; renewed after every page.
const LEASE_MS: i64 = 10 * 60 * 1000;

/// What to run.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// List everything and remove what Zoho no longer has.
    pub full: bool,
    /// `cli`, `schedule` or `api` (stored with the run).
    pub trigger: String,
    /// This daemon's node id (lease owner, stored with the run).
    pub node: String,
}

/// Counters of one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StreamCounts {
    /// Records read from Zoho.
    pub listed: u64,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    /// Records without a usable phone number (not cached; removed if they were).
    pub skipped_no_phone: u64,
    /// Other records not cached (vendors, invoices of uncached customers, unreadable rows).
    pub skipped: u64,
    pub pages: u64,
}

/// Progress after a page, for terminals and logs.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncProgress {
    pub stream: &'static str,
    /// Records read so far in this run (all streams).
    pub records: u64,
    /// Pages read so far in this run (all streams).
    pub pages: u64,
    pub elapsed_ms: u64,
}

impl SyncProgress {
    /// Records per second so far.
    pub fn rate(&self) -> f64 {
        self.records as f64 * 1000.0 / self.elapsed_ms.max(1) as f64
    }
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncReport {
    pub run_id: String,
    pub full: bool,
    pub streams: BTreeMap<&'static str, StreamCounts>,
    pub elapsed_ms: u64,
}

impl SyncReport {
    /// Records read from Zoho in all streams.
    pub fn records(&self) -> u64 {
        self.streams.values().map(|c| c.listed).sum()
    }

    /// Records skipped for lack of a usable phone.
    pub fn skipped_no_phone(&self) -> u64 {
        self.streams.values().map(|c| c.skipped_no_phone).sum()
    }

    pub fn pages(&self) -> u64 {
        self.streams.values().map(|c| c.pages).sum()
    }
}

/// The state of a run in progress, passed to each stream.
pub(crate) struct Run<'a> {
    pub zoho: &'a Zoho,
    pub tenant_id: &'a store::TenantId,
    pub run_id: String,
    pub full: bool,
    pub node: String,
    pub started: Instant,
    pub streams: BTreeMap<&'static str, StreamCounts>,
    pub progress: &'a (dyn Fn(&SyncProgress) + Send + Sync),
    /// Whether the tenant has Books-only customers a new CRM record may turn out to be.
    pub books_only_customers: bool,
    /// Rows inserted when statistics were last refreshed.
    pub analyzed_at_inserts: u64,
}

impl Run<'_> {
    pub(crate) fn counts(&mut self, stream: &'static str) -> &mut StreamCounts {
        self.streams.entry(stream).or_default()
    }

    /// After a page: renew the lease, store the counters, tell the caller.
    pub(crate) async fn page_done(&mut self, stream: &'static str) -> Result<(), ZohoError> {
        self.counts(stream).pages += 1;
        let store = self.zoho.store();
        // A bulk load into fresh tables leaves the planner with no statistics; PostgreSQL
        // (without autovacuum, or before it runs) then scans the tenant for every IN-list
        // probe and the load turns quadratic. Refresh them as the tables grow.
        let inserted: u64 = self.streams.values().map(|c| c.inserted).sum();
        if inserted >= self.analyzed_at_inserts + ANALYZE_EVERY_INSERTS {
            self.analyzed_at_inserts = inserted;
            store.analyze().await?;
        }
        let now = self.zoho.now();
        if !store
            .acquire_zoho_sync_lease(self.tenant_id, &self.node, now, now + LEASE_MS)
            .await?
        {
            return Err(ZohoError::SyncBusy {
                holder: "another node (our lease expired)".into(),
            });
        }
        store
            .update_zoho_sync_run(&self.run_id, &progress_of(&self.streams))
            .await?;
        let records = self.streams.values().map(|c| c.listed).sum();
        let pages = self.streams.values().map(|c| c.pages).sum();
        (self.progress)(&SyncProgress {
            stream,
            records,
            pages,
            elapsed_ms: self.started.elapsed().as_millis() as u64,
        });
        Ok(())
    }
}

fn progress_of(streams: &BTreeMap<&'static str, StreamCounts>) -> SyncRunProgress {
    SyncRunProgress {
        counts: serde_json::to_value(streams).unwrap_or_default(),
        skipped_no_phone: streams.values().map(|c| c.skipped_no_phone as i64).sum(),
        pages: streams.values().map(|c| c.pages as i64).sum(),
    }
}

impl Zoho {
    /// Runs one sync of the tenant (see the module docs), calling `progress` after every page.
    /// The run is stored whatever happens; an error fails the run and is returned.
    pub async fn sync(
        &self,
        tenant_id: &store::TenantId,
        options: &SyncOptions,
        progress: &(dyn Fn(&SyncProgress) + Send + Sync),
    ) -> Result<SyncReport, ZohoError> {
        let store = self.store();
        let conn = store
            .zoho_connection(tenant_id)
            .await?
            .ok_or(ZohoError::NotConnected)?;
        match conn.status {
            store::ZohoStatus::Connected => {}
            store::ZohoStatus::Pending => return Err(ZohoError::NotConnected),
            store::ZohoStatus::Disconnected => {
                return Err(ZohoError::Disconnected {
                    reason: conn.status_reason.unwrap_or_default(),
                });
            }
        }
        let now = self.now();
        if !store
            .acquire_zoho_sync_lease(tenant_id, &options.node, now, now + LEASE_MS)
            .await?
        {
            return Err(ZohoError::SyncBusy {
                holder: conn
                    .sync_lease_owner
                    .unwrap_or_else(|| "another node".into()),
            });
        }
        let run = store
            .start_zoho_sync_run(
                tenant_id,
                options.full,
                &options.trigger,
                &options.node,
                now,
            )
            .await;
        let run = match run {
            Ok(run) => run,
            Err(e) => {
                let _ = store
                    .release_zoho_sync_lease(tenant_id, &options.node)
                    .await;
                return Err(e.into());
            }
        };
        let mut state = Run {
            zoho: self,
            tenant_id,
            run_id: run.id.clone(),
            full: options.full,
            node: options.node.clone(),
            started: Instant::now(),
            streams: BTreeMap::new(),
            progress,
            books_only_customers: false,
            analyzed_at_inserts: 0,
        };
        let outcome = match store
            .customer_refs_by_source(tenant_id, "zoho:books:")
            .await
        {
            Ok(books_only) => {
                state.books_only_customers = !books_only.is_empty();
                self.run_streams(&mut state).await
            }
            Err(e) => Err(e.into()),
        };
        let counts = progress_of(&state.streams);
        let error = outcome.as_ref().err().map(ToString::to_string);
        let finished = store
            .finish_zoho_sync_run(&run.id, &counts, error.as_deref(), self.now())
            .await;
        let _ = store
            .release_zoho_sync_lease(tenant_id, &options.node)
            .await;
        outcome?;
        finished?;
        let report = SyncReport {
            run_id: run.id,
            full: options.full,
            streams: state.streams,
            elapsed_ms: state.started.elapsed().as_millis() as u64,
        };
        tracing::info!(
            tenant_id = %tenant_id,
            full = report.full,
            records = report.records(),
            skipped_no_phone = report.skipped_no_phone(),
            elapsed_ms = report.elapsed_ms,
            "zoho sync finished"
        );
        Ok(report)
    }

    async fn run_streams(&self, run: &mut Run<'_>) -> Result<(), ZohoError> {
        for module in super::records::Module::ALL {
            crm::sync_module(run, module).await?;
            crm::sync_deleted(run, module).await?;
        }
        let org = self.config().books_organization_id.trim().to_owned();
        if !org.is_empty() {
            books::sync_contacts(run, &org).await?;
            books::sync_invoices(run, &org).await?;
        }
        Ok(())
    }
}
