//! CRM Contacts and Leads into the cache, and CRM deletions out of it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use store::{CustomerRef, UpsertOutcome};

use super::Run;
use super::map::{books_external_id, crm_customer, crm_external_id};
use crate::zoho::ZohoError;
use crate::zoho::records::{Cursor, Module};
use crate::zoho::time;

/// Allowance for our clock against Zoho's.
const SKEW_MS: i64 = 10 * 60 * 1000;

fn stream(module: Module) -> &'static str {
    match module {
        Module::Contacts => "crm:Contacts",
        Module::Leads => "crm:Leads",
    }
}

fn deleted_stream(module: Module) -> &'static str {
    match module {
        Module::Contacts => "crm:Contacts:deleted",
        Module::Leads => "crm:Leads:deleted",
    }
}

/// `If-Modified-Since` for a watermark: one second earlier, so records modified in the same
/// second as the last one applied are read again (harmless) rather than missed, whether Zoho
/// compares inclusively or not.
fn since_header(watermark: &str) -> Option<String> {
    let ts = time::parse(watermark)?;
    let earlier = ts.checked_sub(Duration::from_secs(1)).unwrap_or(ts);
    Some(time::format(earlier))
}

/// Lists `module` (changes since the watermark, or everything) into the cache.
pub(super) async fn sync_module(run: &mut Run<'_>, module: Module) -> Result<(), ZohoError> {
    let name = stream(module);
    run.counts(name);
    let store = run.zoho.store();
    let tenant = run.tenant_id;
    let watermark = match run.full {
        true => None,
        false => store.zoho_watermark(tenant, name).await?,
    };
    let full_listing = watermark.is_none();
    let mut seen: HashSet<String> = HashSet::new();
    let mut since = watermark.clone();
    let mut high = watermark;
    'listing: loop {
        let header = since.as_deref().and_then(since_header);
        let mut cursor = Cursor::Page(1);
        loop {
            let page = run
                .zoho
                .list_records(tenant, module, &cursor, header.as_deref())
                .await?;
            apply_records(run, module, &page.records, &mut seen).await?;
            // Ascending Modified_Time: the page's last record is the newest applied so far.
            for t in page
                .records
                .iter()
                .filter_map(|r| r.modified_time.as_deref())
            {
                if newer(t, high.as_deref()) {
                    high = Some(t.to_owned());
                }
            }
            if let Some(h) = &high {
                store
                    .set_zoho_watermark(tenant, name, h, run.zoho.now())
                    .await?;
            }
            run.page_done(name).await?;
            match Cursor::next(&cursor, &page.info) {
                Some(next) => cursor = next,
                None if page.info.more_records => {
                    // No way to page further (Zoho's 100,000-record reach, or no token): start
                    // a new listing after what was applied.
                    if high != since {
                        since = high.clone();
                        continue 'listing;
                    }
                    return Err(ZohoError::Protocol {
                        what: "crm paging",
                        detail: format!(
                            "{} has more records but gave no page_token",
                            module.api_name()
                        ),
                    });
                }
                None => break 'listing,
            }
        }
    }
    if full_listing {
        // Everything Zoho has was listed: what the cache has beyond it is gone.
        let cached = store
            .customer_refs_by_source(tenant, &module.external_prefix())
            .await?;
        let gone: Vec<CustomerRef> = cached
            .into_iter()
            .filter(|c| !seen.contains(&c.external_id))
            .collect();
        let removed = remove_crm_customers(run, &gone).await?;
        run.counts(name).deleted += removed;
    }
    Ok(())
}

/// Reads the deleted-records API since the stream's watermark and removes those customers.
/// The first run only sets the watermark: its full listing already removed what is gone.
pub(super) async fn sync_deleted(run: &mut Run<'_>, module: Module) -> Result<(), ZohoError> {
    let name = deleted_stream(module);
    let store = run.zoho.store();
    let tenant = run.tenant_id;
    let now = run.zoho.now();
    let watermark = store.zoho_watermark(tenant, name).await?;
    let Some(watermark) = watermark.filter(|_| !run.full) else {
        // From this run's start, less ten minutes for clock skew between us and Zoho (its
        // deleted_time is its clock): reading a deletion twice is harmless, missing one is not.
        let start = now - run.started.elapsed().as_millis() as i64 - SKEW_MS;
        store
            .set_zoho_watermark(tenant, name, &time::format_ms(start), now)
            .await?;
        return Ok(());
    };
    run.counts(name);
    let header = since_header(&watermark);
    let mut high = Some(watermark);
    let mut cursor = Cursor::Page(1);
    loop {
        let page = run
            .zoho
            .list_deleted(tenant, module, &cursor, header.as_deref())
            .await?;
        run.counts(name).listed += page.records.len() as u64;
        let external: Vec<String> = page
            .records
            .iter()
            .map(|d| crm_external_id(module, &d.id))
            .collect();
        let refs: Vec<&str> = external.iter().map(String::as_str).collect();
        let found = store.customer_refs_by_external_ids(tenant, &refs).await?;
        let gone: Vec<CustomerRef> = found.into_values().collect();
        let removed = remove_crm_customers(run, &gone).await?;
        run.counts(name).deleted += removed;
        for t in page
            .records
            .iter()
            .filter_map(|d| d.deleted_time.as_deref())
        {
            if newer(t, high.as_deref()) {
                high = Some(t.to_owned());
            }
        }
        run.page_done(name).await?;
        match Cursor::next(&cursor, &page.info) {
            Some(next) => cursor = next,
            None => break,
        }
    }
    if let Some(h) = high {
        store
            .set_zoho_watermark(tenant, name, &h, run.zoho.now())
            .await?;
    }
    Ok(())
}

/// Whether Zoho time `t` is after `than` (unparseable times never are).
fn newer(t: &str, than: Option<&str>) -> bool {
    match (time::parse_ms(t), than.and_then(time::parse_ms)) {
        (Some(a), Some(b)) => a > b,
        (Some(_), None) => true,
        _ => false,
    }
}

async fn apply_records(
    run: &mut Run<'_>,
    module: Module,
    records: &[crate::zoho::records::CrmRecord],
    seen: &mut HashSet<String>,
) -> Result<(), ZohoError> {
    let name = stream(module);
    let store = run.zoho.store();
    let tenant = run.tenant_id;
    let phones = &run.zoho.inner.phones;
    let mut upserts = Vec::with_capacity(records.len());
    let mut without_phone = Vec::new();
    for record in records {
        match crm_customer(module, record, phones) {
            Some(c) => upserts.push(c),
            None => without_phone.push(crm_external_id(module, &record.id)),
        }
    }
    {
        let counts = run.counts(name);
        counts.listed += records.len() as u64;
        counts.skipped_no_phone += without_phone.len() as u64;
    }

    if !upserts.is_empty() {
        let currency = run.zoho.config().default_currency.clone();
        let done = store
            .upsert_crm_customers(tenant, &upserts, &currency, run.zoho.now())
            .await?;
        let mut created = Vec::new();
        {
            let counts = run.counts(name);
            for (u, c) in done.iter().zip(&upserts) {
                match u.outcome {
                    UpsertOutcome::Inserted => {
                        counts.inserted += 1;
                        created.push((u.id.as_str(), c));
                    }
                    UpsertOutcome::Updated => counts.updated += 1,
                }
            }
        }
        if run.books_only_customers && !created.is_empty() {
            adopt_books_only(run, &created).await?;
        }
        seen.extend(upserts.into_iter().map(|c| c.external_id));
    }

    // A record that lost its last usable number leaves the cache.
    if !without_phone.is_empty() {
        let refs: Vec<&str> = without_phone.iter().map(String::as_str).collect();
        let found = store.customer_refs_by_external_ids(tenant, &refs).await?;
        let gone: Vec<CustomerRef> = found.into_values().collect();
        let removed = remove_crm_customers(run, &gone).await?;
        run.counts(name).deleted += removed;
    }
    Ok(())
}

/// A new CRM customer whose number belongs to exactly one Books-only customer is that person:
/// the Books-only customer is folded into it (invoices and the Books link move), instead of
/// leaving two customers on one number (which would make the caller ambiguous). Only new
/// records are checked, and only when the tenant has Books-only customers at all, so large
/// syncs do no per-page phone queries.
async fn adopt_books_only(
    run: &Run<'_>,
    created: &[(&str, &store::CrmCustomerUpsert)],
) -> Result<(), ZohoError> {
    let store = run.zoho.store();
    let tenant = run.tenant_id;
    let phones: Vec<&str> = created
        .iter()
        .flat_map(|(_, c)| c.phones.iter().map(|p| p.e164.as_str()))
        .collect();
    let owners = store.customers_by_phones(tenant, &phones).await?;
    let mut books_only: HashMap<&str, HashSet<&str>> = HashMap::new();
    for o in &owners {
        if o.customer.external_id.starts_with("zoho:books:") {
            books_only
                .entry(o.e164.as_str())
                .or_default()
                .insert(o.customer.id.as_str());
        }
    }
    let mut adopted: HashSet<&str> = HashSet::new();
    for (new_id, c) in created {
        let candidates: HashSet<&str> = c
            .phones
            .iter()
            .filter_map(|p| books_only.get(p.e164.as_str()))
            .flatten()
            .copied()
            .collect();
        if candidates.len() != 1 {
            continue;
        }
        let Some(old) = candidates
            .into_iter()
            .next()
            .filter(|id| adopted.insert(id))
        else {
            continue;
        };
        let Some(old_row) = store.customer(tenant, old).await? else {
            continue;
        };
        store.merge_customer_into(tenant, old, new_id).await?;
        if let Some(books_id) = old_row.zoho_books_id {
            store
                .link_books_contacts(
                    tenant,
                    &[store::BooksLink {
                        customer_id: (*new_id).to_owned(),
                        zoho_books_id: books_id,
                        balance_minor: old_row.balance_minor,
                        currency: old_row.currency,
                    }],
                    run.zoho.now(),
                )
                .await?;
        }
    }
    Ok(())
}

/// Removes CRM customers from the cache. One that also has Books data stays as a Books-only
/// customer (its balance and invoices are still true); the rest are deleted.
async fn remove_crm_customers(run: &Run<'_>, gone: &[CustomerRef]) -> Result<u64, ZohoError> {
    let store = run.zoho.store();
    let tenant = run.tenant_id;
    let mut delete = Vec::new();
    for c in gone {
        match &c.zoho_books_id {
            Some(books_id) => {
                store
                    .rekey_customer(
                        tenant,
                        &c.id,
                        &books_external_id(books_id),
                        None,
                        run.zoho.now(),
                    )
                    .await?;
            }
            None => delete.push(c.id.as_str()),
        }
    }
    store.delete_customers(tenant, &delete).await?;
    Ok(gone.len() as u64)
}
