//! Books contacts and invoices into the cache.
//!
//! A Books contact is the Books side of a customer. It is linked to a CRM customer when Books
//! names the CRM contact (`zcrm_contact_id`, set by Zoho's Books–CRM integration), else when its
//! numbers belong to exactly one CRM customer; the link writes the balance onto that customer.
//! Otherwise it is a customer of its own (`zoho:books:<contact_id>`). Either way one number
//! maps to one customer, so the caller-ID lookup stays unambiguous. Inactive contacts and
//! vendors leave the cache.

use std::collections::{HashMap, HashSet};

use store::{BooksLink, CustomerRef, CustomerUpsert, InvoiceUpsert};

use super::Run;
use super::map::{
    books_balance, books_external_id, books_is_active_customer, books_name, books_phones,
    crm_external_id, invoice_fields,
};
use crate::zoho::books::BooksContact;
use crate::zoho::records::Module;
use crate::zoho::{ZohoError, time};

const CONTACTS: &str = "books:contacts";
const INVOICES: &str = "books:invoices";

fn is_books_only(c: &CustomerRef) -> bool {
    c.external_id.starts_with("zoho:books:")
}

/// Whether a record modified at `modified` is older than the watermark: the listing is newest
/// first, so everything after it is older too. Equal times are applied again (harmless).
fn before_watermark(modified: Option<&str>, watermark_ms: Option<i64>) -> bool {
    match (modified.and_then(time::parse_ms), watermark_ms) {
        (Some(t), Some(w)) => t < w,
        _ => false,
    }
}

pub(super) async fn sync_contacts(run: &mut Run<'_>, org: &str) -> Result<(), ZohoError> {
    run.counts(CONTACTS);
    let store = run.zoho.store();
    let tenant = run.tenant_id;
    let watermark = match run.full {
        true => None,
        false => store.zoho_watermark(tenant, CONTACTS).await?,
    };
    let watermark_ms = watermark.as_deref().and_then(time::parse_ms);
    let full_listing = watermark.is_none();
    let mut high: Option<(i64, String)> = None;
    let mut seen: HashSet<String> = HashSet::new();
    let mut page = 1;
    loop {
        let answer = run.zoho.books_contacts(tenant, org, page).await?;
        let mut fresh = Vec::with_capacity(answer.items.len());
        let mut reached_watermark = false;
        for contact in answer.items {
            if !full_listing
                && before_watermark(contact.last_modified_time.as_deref(), watermark_ms)
            {
                reached_watermark = true;
                break;
            }
            if let Some(t) = contact.last_modified_time.as_deref()
                && let Some(ms) = time::parse_ms(t)
                && high.as_ref().is_none_or(|(h, _)| ms > *h)
            {
                high = Some((ms, t.to_owned()));
            }
            seen.insert(contact.contact_id.clone());
            fresh.push(contact);
        }
        run.counts(CONTACTS).listed += fresh.len() as u64;
        apply_contacts(run, &fresh).await?;
        run.page_done(CONTACTS).await?;
        if reached_watermark || !answer.page_context.has_more_page {
            break;
        }
        page += 1;
    }
    if let Some((_, h)) = high {
        store
            .set_zoho_watermark(tenant, CONTACTS, &h, run.zoho.now())
            .await?;
    }
    if full_listing {
        let linked = store.customer_refs_with_books_id(tenant).await?;
        let gone: Vec<CustomerRef> = linked
            .into_iter()
            .filter(|c| c.zoho_books_id.as_ref().is_some_and(|b| !seen.contains(b)))
            .collect();
        let removed = remove_books_side(run, &gone).await?;
        run.counts(CONTACTS).deleted += removed;
    }
    Ok(())
}

/// Applies one page of contacts (see the module docs for the linking rules).
async fn apply_contacts(run: &mut Run<'_>, contacts: &[BooksContact]) -> Result<(), ZohoError> {
    let store = run.zoho.store();
    let tenant = run.tenant_id;
    let normalizer = run.zoho.inner.phones;
    let default_currency = run.zoho.config().default_currency.clone();

    let books_ids: Vec<&str> = contacts.iter().map(|c| c.contact_id.as_str()).collect();
    let holders = store.customers_by_books_ids(tenant, &books_ids).await?;

    let (active, inactive): (Vec<&BooksContact>, Vec<&BooksContact>) =
        contacts.iter().partition(|c| books_is_active_customer(c));
    let leaving: Vec<CustomerRef> = inactive
        .iter()
        .filter_map(|c| holders.get(&c.contact_id).cloned())
        .collect();
    run.counts(CONTACTS).skipped += (inactive.len() - leaving.len()) as u64;
    let removed = remove_books_side(run, &leaving).await?;
    run.counts(CONTACTS).deleted += removed;

    let phones: HashMap<&str, Vec<store::CustomerPhone>> = active
        .iter()
        .map(|c| (c.contact_id.as_str(), books_phones(c, &normalizer)))
        .collect();
    let crm_ext: Vec<String> = active
        .iter()
        .filter_map(|c| {
            c.zcrm_contact_id
                .as_deref()
                .filter(|z| !z.trim().is_empty())
        })
        .map(|z| crm_external_id(Module::Contacts, z.trim()))
        .collect();
    let crm_ext_refs: Vec<&str> = crm_ext.iter().map(String::as_str).collect();
    let named = store
        .customer_refs_by_external_ids(tenant, &crm_ext_refs)
        .await?;
    let all_phones: Vec<&str> = phones.values().flatten().map(|p| p.e164.as_str()).collect();
    let owners = store.customers_by_phones(tenant, &all_phones).await?;
    let mut crm_by_phone: HashMap<&str, Vec<&CustomerRef>> = HashMap::new();
    for o in &owners {
        if o.customer.external_id.starts_with("zoho:crm:") {
            crm_by_phone
                .entry(o.e164.as_str())
                .or_default()
                .push(&o.customer);
        }
    }

    let mut links = Vec::new();
    let mut books_only = Vec::new();
    let now = run.zoho.now();
    for contact in active {
        let Some((balance_minor, currency)) = books_balance(contact, &default_currency) else {
            run.counts(CONTACTS).skipped += 1;
            continue;
        };
        let own_phones = &phones[contact.contact_id.as_str()];
        let target: Option<CustomerRef> = match contact
            .zcrm_contact_id
            .as_deref()
            .map(str::trim)
            .filter(|z| !z.is_empty())
            .and_then(|z| named.get(&crm_ext_id(z)))
        {
            Some(c) => Some(c.clone()),
            None => {
                let candidates: HashMap<&str, &CustomerRef> = own_phones
                    .iter()
                    .filter_map(|p| crm_by_phone.get(p.e164.as_str()))
                    .flatten()
                    .map(|c| (c.id.as_str(), *c))
                    .collect();
                (candidates.len() == 1)
                    .then(|| candidates.into_values().next().cloned())
                    .flatten()
            }
        };
        let holder = holders.get(&contact.contact_id);
        match (target, holder) {
            (Some(target), holder) => {
                if let Some(h) = holder.filter(|h| h.id != target.id) {
                    if is_books_only(h) {
                        store.merge_customer_into(tenant, &h.id, &target.id).await?;
                    } else {
                        store.detach_books(tenant, &[h.id.as_str()], now).await?;
                    }
                }
                links.push(BooksLink {
                    customer_id: target.id.clone(),
                    zoho_books_id: contact.contact_id.clone(),
                    balance_minor,
                    currency,
                });
            }
            // Linked before (e.g. by a number it no longer has): keep the link current.
            (None, Some(h)) if !is_books_only(h) => links.push(BooksLink {
                customer_id: h.id.clone(),
                zoho_books_id: contact.contact_id.clone(),
                balance_minor,
                currency,
            }),
            (None, holder) => {
                if own_phones.is_empty() {
                    run.counts(CONTACTS).skipped_no_phone += 1;
                    if let Some(h) = holder {
                        store.delete_customers(tenant, &[h.id.as_str()]).await?;
                        run.counts(CONTACTS).deleted += 1;
                    }
                    continue;
                }
                books_only.push(CustomerUpsert {
                    external_id: books_external_id(&contact.contact_id),
                    zoho_contact_id: None,
                    zoho_books_id: Some(contact.contact_id.clone()),
                    name: books_name(contact),
                    company: contact
                        .company_name
                        .clone()
                        .filter(|c| !c.trim().is_empty()),
                    email: contact.email.clone().filter(|e| !e.trim().is_empty()),
                    postal_code: None,
                    balance_minor,
                    currency,
                    phones: own_phones.clone(),
                });
            }
        }
    }
    if !links.is_empty() {
        store.link_books_contacts(tenant, &links, now).await?;
        run.counts(CONTACTS).updated += links.len() as u64;
    }
    if !books_only.is_empty() {
        let done = store.upsert_customers(tenant, &books_only, now).await?;
        let counts = run.counts(CONTACTS);
        for u in done {
            match u.outcome {
                store::UpsertOutcome::Inserted => counts.inserted += 1,
                store::UpsertOutcome::Updated => counts.updated += 1,
            }
        }
    }
    Ok(())
}

fn crm_ext_id(zcrm_contact_id: &str) -> String {
    crm_external_id(Module::Contacts, zcrm_contact_id)
}

/// Removes the Books side of customers: a Books-only customer is deleted; a CRM customer
/// keeps existing without balance or invoices.
async fn remove_books_side(run: &Run<'_>, gone: &[CustomerRef]) -> Result<u64, ZohoError> {
    let store = run.zoho.store();
    let (only, linked): (Vec<&CustomerRef>, Vec<&CustomerRef>) =
        gone.iter().partition(|c| is_books_only(c));
    let only: Vec<&str> = only.iter().map(|c| c.id.as_str()).collect();
    let linked: Vec<&str> = linked.iter().map(|c| c.id.as_str()).collect();
    store.delete_customers(run.tenant_id, &only).await?;
    store
        .detach_books(run.tenant_id, &linked, run.zoho.now())
        .await?;
    Ok(gone.len() as u64)
}

pub(super) async fn sync_invoices(run: &mut Run<'_>, org: &str) -> Result<(), ZohoError> {
    run.counts(INVOICES);
    let store = run.zoho.store();
    let tenant = run.tenant_id;
    let watermark = match run.full {
        true => None,
        false => store.zoho_watermark(tenant, INVOICES).await?,
    };
    let watermark_ms = watermark.as_deref().and_then(time::parse_ms);
    let full_listing = watermark.is_none();
    let default_currency = run.zoho.config().default_currency.clone();
    let mut high: Option<(i64, String)> = None;
    let mut seen: HashSet<String> = HashSet::new();
    let mut page = 1;
    loop {
        let answer = run.zoho.books_invoices(tenant, org, page).await?;
        let mut fresh = Vec::with_capacity(answer.items.len());
        let mut reached_watermark = false;
        for invoice in answer.items {
            if !full_listing
                && before_watermark(invoice.last_modified_time.as_deref(), watermark_ms)
            {
                reached_watermark = true;
                break;
            }
            if let Some(t) = invoice.last_modified_time.as_deref()
                && let Some(ms) = time::parse_ms(t)
                && high.as_ref().is_none_or(|(h, _)| ms > *h)
            {
                high = Some((ms, t.to_owned()));
            }
            seen.insert(invoice.invoice_id.clone());
            fresh.push(invoice);
        }
        run.counts(INVOICES).listed += fresh.len() as u64;
        let customer_ids: Vec<&str> = fresh.iter().map(|i| i.customer_id.as_str()).collect();
        let customers = store.customers_by_books_ids(tenant, &customer_ids).await?;
        let mut upserts = Vec::with_capacity(fresh.len());
        let mut skipped = 0;
        for invoice in &fresh {
            let (Some(customer), Some(fields)) = (
                customers.get(&invoice.customer_id),
                invoice_fields(invoice, &default_currency),
            ) else {
                skipped += 1;
                continue;
            };
            upserts.push(InvoiceUpsert {
                customer_id: customer.id.clone(),
                number: fields.number,
                zoho_invoice_id: Some(invoice.invoice_id.clone()),
                status: fields.status,
                total_minor: fields.total_minor,
                balance_minor: fields.balance_minor,
                currency: fields.currency,
                issue_date: fields.issue_date,
                due_date: fields.due_date,
            });
        }
        run.counts(INVOICES).skipped += skipped;
        if !upserts.is_empty() {
            let done = store
                .upsert_invoices(tenant, &upserts, run.zoho.now())
                .await?;
            let counts = run.counts(INVOICES);
            for u in done {
                match u.outcome {
                    store::UpsertOutcome::Inserted => counts.inserted += 1,
                    store::UpsertOutcome::Updated => counts.updated += 1,
                }
            }
        }
        run.page_done(INVOICES).await?;
        if reached_watermark || !answer.page_context.has_more_page {
            break;
        }
        page += 1;
    }
    if let Some((_, h)) = high {
        store
            .set_zoho_watermark(tenant, INVOICES, &h, run.zoho.now())
            .await?;
    }
    if full_listing {
        let cached = store.books_invoice_refs(tenant).await?;
        let gone: Vec<&str> = cached
            .iter()
            .filter(|(_, z)| !seen.contains(z))
            .map(|(id, _)| id.as_str())
            .collect();
        let removed = store.delete_invoices(tenant, &gone).await?;
        run.counts(INVOICES).deleted += removed;
    }
    Ok(())
}
