//! Zoho Books v3 contacts and invoices (wave2-facts.md §2; https://www.zoho.com/books/api/v3/contacts/,
//! …/invoices/, …/pagination/).
//!
//! Every request carries `organization_id`. Lists page with `page`/`per_page` (200) and answer
//! `{"code": 0, "message": "success", "contacts"|"invoices": […], "page_context": {"page",
//! "per_page", "has_more_page"}}`. Books documents no filter on `last_modified_time`, so an
//! incremental run sorts by it, newest first (`sort_column=last_modified_time&sort_order=D`),
//! and stops at the stored watermark (the facts file's plan; a daily full run catches the rest).
//! Amounts are JSON numbers; we read their exact text (no floating point) into minor units.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::api::ApiRequest;
use super::{Zoho, ZohoError};

/// Records per page.
pub const PER_PAGE: u32 = 200;

/// `page_context` of a list answer.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct PageContext {
    #[serde(default)]
    pub page: Option<u32>,
    #[serde(default)]
    pub per_page: Option<u32>,
    #[serde(default)]
    pub has_more_page: bool,
}

/// A decimal amount as Zoho wrote it (`250.00`, `1369.66`, or a string), kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Amount(pub String);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: Box<RawValue> = Deserialize::deserialize(d)?;
        let text = raw.get().trim();
        let text = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        Ok(Amount(if text == "null" {
            String::new()
        } else {
            text.to_owned()
        }))
    }
}

/// A Books contact (list fields).
#[derive(Debug, Clone, Deserialize)]
pub struct BooksContact {
    pub contact_id: String,
    #[serde(default)]
    pub contact_name: Option<String>,
    #[serde(default)]
    pub company_name: Option<String>,
    /// `customer`, `vendor` or `both`.
    #[serde(default)]
    pub contact_type: Option<String>,
    /// `active`, `inactive`, …
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub mobile: Option<String>,
    #[serde(default)]
    pub currency_code: Option<String>,
    #[serde(default)]
    pub outstanding_receivable_amount: Option<Amount>,
    /// The linked CRM contact, when the Books–CRM integration links them.
    #[serde(default)]
    pub zcrm_contact_id: Option<String>,
    #[serde(default)]
    pub last_modified_time: Option<String>,
}

/// A Books invoice (list fields).
#[derive(Debug, Clone, Deserialize)]
pub struct BooksInvoice {
    pub invoice_id: String,
    pub customer_id: String,
    #[serde(default)]
    pub invoice_number: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub date: Option<String>,
    #[serde(default)]
    pub due_date: Option<String>,
    #[serde(default)]
    pub currency_code: Option<String>,
    #[serde(default)]
    pub total: Option<Amount>,
    #[serde(default)]
    pub balance: Option<Amount>,
    #[serde(default)]
    pub last_modified_time: Option<String>,
}

/// One page of a Books list.
#[derive(Debug, Clone)]
pub struct BooksPage<T> {
    pub items: Vec<T>,
    pub page_context: PageContext,
}

#[derive(Deserialize)]
struct ContactsBody {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    contacts: Vec<BooksContact>,
    #[serde(default)]
    page_context: PageContext,
}

#[derive(Deserialize)]
struct InvoicesBody {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    invoices: Vec<BooksInvoice>,
    #[serde(default)]
    page_context: PageContext,
}

impl Zoho {
    /// A page of contacts of every status (inactive ones too, so they leave the cache), most
    /// recently modified first.
    pub async fn books_contacts(
        &self,
        tenant_id: &store::TenantId,
        organization_id: &str,
        page: u32,
    ) -> Result<BooksPage<BooksContact>, ZohoError> {
        let request = books_list("/books/v3/contacts", organization_id, page)
            .query("filter_by", "Status.All");
        let response = self.api(tenant_id, &request).await?;
        if response.status != 200 {
            return Err(response.into_error());
        }
        let body: ContactsBody = response.json("books contacts")?;
        if body.code != 0 {
            return Err(response.into_error());
        }
        Ok(BooksPage {
            items: body.contacts,
            page_context: body.page_context,
        })
    }

    /// A page of invoices, most recently modified first.
    pub async fn books_invoices(
        &self,
        tenant_id: &store::TenantId,
        organization_id: &str,
        page: u32,
    ) -> Result<BooksPage<BooksInvoice>, ZohoError> {
        let request = books_list("/books/v3/invoices", organization_id, page);
        let response = self.api(tenant_id, &request).await?;
        if response.status != 200 {
            return Err(response.into_error());
        }
        let body: InvoicesBody = response.json("books invoices")?;
        if body.code != 0 {
            return Err(response.into_error());
        }
        Ok(BooksPage {
            items: body.invoices,
            page_context: body.page_context,
        })
    }
}

fn books_list(path: &str, organization_id: &str, page: u32) -> ApiRequest {
    ApiRequest::get(path)
        .query("organization_id", organization_id)
        .query("page", page.to_string())
        .query("per_page", PER_PAGE.to_string())
        .query("sort_column", "last_modified_time")
        .query("sort_order", "D")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_keep_their_exact_text() {
        let c: BooksContact = serde_json::from_str(
            r#"{"contact_id":"1","outstanding_receivable_amount":1369.66,"currency_code":"USD"}"#,
        )
        .unwrap();
        assert_eq!(c.outstanding_receivable_amount.unwrap().0, "1369.66");
        let c: BooksContact =
            serde_json::from_str(r#"{"contact_id":"1","outstanding_receivable_amount":"0.10"}"#)
                .unwrap();
        assert_eq!(c.outstanding_receivable_amount.unwrap().0, "0.10");
        let c: BooksContact =
            serde_json::from_str(r#"{"contact_id":"1","outstanding_receivable_amount":null}"#)
                .unwrap();
        assert_eq!(c.outstanding_receivable_amount, None);
    }
}
