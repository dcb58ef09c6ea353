//! `agent customers import`: fills the customer cache from CSV until the Zoho sync exists.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use crm::ImportReport;

use super::open_store;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum CustomersCommand {
    /// Import customers (and their invoices) from CSV into the customer cache.
    ///
    /// Prints how many rows were inserted, updated and rejected, with the line and reason of
    /// each rejected row. Rejected rows do not fail the command (exit 0); a file that cannot be
    /// read, a bad header (missing, unknown or repeated column) or a database failure does
    /// (exit 1). Re-importing updates customers by external_id and invoices by number.
    ///
    /// Customers: external_id,name,company,email,phone,postal_code,balance,currency (required:
    /// external_id, name, currency; phone: numbers separated by `;`, optionally `mobile:`,
    /// `work:`, `home:`, `other:`; national numbers in crm.default_region; balance in major
    /// units, e.g. 142.50). Invoices: customer_external_id,number,status,total,balance,currency,
    /// due_date[,issue_date] (dates YYYY-MM-DD).
    #[command(verbatim_doc_comment)]
    Import {
        /// Customers CSV file
        file: PathBuf,
        /// Invoices CSV file, imported after the customers
        #[arg(long, value_name = "FILE")]
        invoices: Option<PathBuf>,
        /// Tenant the customers belong to
        #[arg(long, value_name = "NAME")]
        tenant: String,
    },
}

pub(super) async fn run(cmd: CustomersCommand, cfg: &Config) -> anyhow::Result<()> {
    let CustomersCommand::Import {
        file,
        invoices,
        tenant,
    } = cmd;
    let store = open_store(cfg).await?;
    let t = store.tenant_by_name(&tenant).await?.with_context(|| {
        format!("no tenant named {tenant:?} (create it with `agent tenants create {tenant}`)")
    })?;
    let report = crm::import_csv(&store, &t.id, &file, &cfg.crm.default_region)
        .await
        .with_context(|| format!("importing customers from {}", file.display()))?;
    print_report("customers", &file, &report);
    if let Some(path) = invoices {
        let report = crm::import_invoices_csv(&store, &t.id, &path)
            .await
            .with_context(|| format!("importing invoices from {}", path.display()))?;
        print_report("invoices", &path, &report);
    }
    store.close().await;
    Ok(())
}

fn print_report(what: &str, file: &Path, report: &ImportReport) {
    println!("{what} from {}: {report}", file.display());
    for row in &report.rejected {
        println!("  rejected {row}");
    }
    let unlisted = report
        .rejected_count
        .saturating_sub(report.rejected.len() as u64);
    if unlisted > 0 {
        println!("  … and {unlisted} more rejected rows");
    }
}
