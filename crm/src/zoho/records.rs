//! Zoho CRM v8 records (wave2-facts.md §2).
//!
//! - List: `GET /crm/v8/{module}?fields=…&per_page=200&sort_by=Modified_Time&sort_order=asc`
//!   (https://www.zoho.com/crm/developer/docs/api/v8/get-records.html). `fields` is mandatory
//!   (≤ 50); `If-Modified-Since: 2019-07-25T15:26:49+05:30` returns only records modified after
//!   it; `page` reaches record 2,000 at most, then `page_token` (from `info.next_page_token`)
//!   continues up to 100,000, never both. Empty answers are `204 No Content` (or `304 Not
//!   Modified` with `If-Modified-Since`).
//! - Deleted: `GET /crm/v8/{module}/deleted?type=all&page&per_page` with `If-Modified-Since`
//!   (https://www.zoho.com/crm/developer/docs/api/v8/get-deleted-records.html): `data[]` of
//!   `{id, display_name, type: "recycle"|"permanent", deleted_by, created_by, deleted_time}` and
//!   `info {per_page, count, page, more_records}`.
//! - Insert a call: `POST /crm/v8/Calls` `{"data": [{…}]}` (Kaizen #38); each record's result
//!   is `{"code", "details": {"id", …}, "message", "status": "success"|"error"}`, and a refused
//!   record may come with HTTP 2xx or 400.

use serde::Deserialize;

use super::api::{ApiRequest, ApiResponse};
use super::{RetryPolicy, Zoho, ZohoError};

/// Records per page: the default and maximum.
pub const PER_PAGE: u32 = 200;
/// The last record `page` can reach; beyond it only `page_token` works.
pub const PAGE_LIMIT_RECORDS: u32 = 2_000;

/// The CRM modules we sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Module {
    Contacts,
    Leads,
}

impl Module {
    pub const ALL: [Module; 2] = [Module::Contacts, Module::Leads];

    /// The API name (`Contacts`, `Leads`), also `$se_module`'s value.
    pub fn api_name(self) -> &'static str {
        match self {
            Module::Contacts => "Contacts",
            Module::Leads => "Leads",
        }
    }

    /// The fields a sync asks for (the `fields` parameter).
    pub fn fields(self) -> &'static str {
        match self {
            Module::Contacts => {
                "First_Name,Last_Name,Full_Name,Email,Phone,Mobile,Home_Phone,Other_Phone,\
                 Asst_Phone,Account_Name,Mailing_Zip,Modified_Time"
            }
            Module::Leads => {
                "First_Name,Last_Name,Full_Name,Email,Phone,Mobile,Company,Zip_Code,Modified_Time"
            }
        }
    }

    /// External-id prefix of this module's customers: `zoho:crm:Contacts:`.
    pub fn external_prefix(self) -> String {
        format!("zoho:crm:{}:", self.api_name())
    }

    /// The module named by an API name.
    pub fn from_api_name(name: &str) -> Option<Module> {
        Module::ALL.into_iter().find(|m| m.api_name() == name)
    }
}

/// A lookup field's value (`Account_Name`).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Lookup {
    pub name: Option<String>,
    pub id: Option<String>,
}

/// A Contacts or Leads record, with the fields we ask for.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct CrmRecord {
    pub id: String,
    #[serde(rename = "First_Name")]
    pub first_name: Option<String>,
    #[serde(rename = "Last_Name")]
    pub last_name: Option<String>,
    #[serde(rename = "Full_Name")]
    pub full_name: Option<String>,
    #[serde(rename = "Email")]
    pub email: Option<String>,
    #[serde(rename = "Phone")]
    pub phone: Option<String>,
    #[serde(rename = "Mobile")]
    pub mobile: Option<String>,
    #[serde(rename = "Home_Phone")]
    pub home_phone: Option<String>,
    #[serde(rename = "Other_Phone")]
    pub other_phone: Option<String>,
    #[serde(rename = "Asst_Phone")]
    pub asst_phone: Option<String>,
    #[serde(rename = "Account_Name")]
    pub account_name: Option<Lookup>,
    #[serde(rename = "Company")]
    pub company: Option<String>,
    #[serde(rename = "Mailing_Zip")]
    pub mailing_zip: Option<String>,
    #[serde(rename = "Zip_Code")]
    pub zip_code: Option<String>,
    #[serde(rename = "Modified_Time")]
    pub modified_time: Option<String>,
}

/// `info` of a list answer.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct PageInfo {
    #[serde(default)]
    pub per_page: Option<u32>,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub page: Option<u32>,
    #[serde(default)]
    pub more_records: bool,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct ListBody<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    #[serde(default)]
    info: PageInfo,
}

/// One page of records.
#[derive(Debug, Clone, Default)]
pub struct RecordPage<T> {
    pub records: Vec<T>,
    pub info: PageInfo,
}

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    Page(u32),
    Token(String),
}

impl Cursor {
    /// The cursor after `info` for a listing at `current`; `None` at the end. Pages are used
    /// while they stay within the first 2,000 records, then the token (Zoho refuses `page`
    /// beyond that).
    pub fn next(current: &Cursor, info: &PageInfo) -> Option<Cursor> {
        if !info.more_records {
            return None;
        }
        if let Some(token) = info.next_page_token.as_ref().filter(|t| !t.is_empty()) {
            return Some(Cursor::Token(token.clone()));
        }
        match current {
            Cursor::Page(p) if (p + 1) * PER_PAGE <= PAGE_LIMIT_RECORDS => {
                Some(Cursor::Page(p + 1))
            }
            _ => None,
        }
    }
}

/// A deleted record.
#[derive(Debug, Clone, Deserialize)]
pub struct DeletedRecord {
    pub id: String,
    pub deleted_time: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

impl Zoho {
    /// One page of `module`'s records, oldest modification first; `if_modified_since` as
    /// Zoho's ISO 8601 text.
    pub async fn list_records(
        &self,
        tenant_id: &store::TenantId,
        module: Module,
        cursor: &Cursor,
        if_modified_since: Option<&str>,
    ) -> Result<RecordPage<CrmRecord>, ZohoError> {
        let mut request = ApiRequest::get(format!("/crm/v8/{}", module.api_name()))
            .query("fields", module.fields())
            .query("per_page", PER_PAGE.to_string())
            .query("sort_by", "Modified_Time")
            .query("sort_order", "asc");
        request = match cursor {
            Cursor::Page(p) => request.query("page", p.to_string()),
            Cursor::Token(t) => request.query("page_token", t.clone()),
        };
        if let Some(since) = if_modified_since {
            request = request.header("if-modified-since", since);
        }
        list_page(self.api(tenant_id, &request).await?, "crm records")
    }

    /// One page of `module`'s deleted records.
    pub async fn list_deleted(
        &self,
        tenant_id: &store::TenantId,
        module: Module,
        cursor: &Cursor,
        if_modified_since: Option<&str>,
    ) -> Result<RecordPage<DeletedRecord>, ZohoError> {
        let mut request = ApiRequest::get(format!("/crm/v8/{}/deleted", module.api_name()))
            .query("type", "all")
            .query("per_page", PER_PAGE.to_string());
        request = match cursor {
            Cursor::Page(p) => request.query("page", p.to_string()),
            Cursor::Token(t) => request.query("page_token", t.clone()),
        };
        if let Some(since) = if_modified_since {
            request = request.header("if-modified-since", since);
        }
        list_page(self.api(tenant_id, &request).await?, "crm deleted records")
    }

    /// Creates CRM Calls records; the raw answer, for the outbox to classify.
    pub async fn insert_calls(
        &self,
        tenant_id: &store::TenantId,
        body: &serde_json::Value,
        retry: RetryPolicy,
    ) -> Result<ApiResponse, ZohoError> {
        let request = ApiRequest::post("/crm/v8/Calls", body.clone());
        self.api_with(tenant_id, &request, retry).await
    }
}

fn list_page<T: serde::de::DeserializeOwned>(
    response: ApiResponse,
    what: &'static str,
) -> Result<RecordPage<T>, ZohoError> {
    match response.status {
        204 | 304 => Ok(RecordPage {
            records: Vec::new(),
            info: PageInfo::default(),
        }),
        200 => {
            let body: ListBody<T> = response.json(what)?;
            Ok(RecordPage {
                records: body.data,
                info: body.info,
            })
        }
        _ => Err(response.into_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_then_tokens() {
        let more = |token: Option<&str>| PageInfo {
            more_records: true,
            next_page_token: token.map(str::to_owned),
            ..PageInfo::default()
        };
        assert_eq!(
            Cursor::next(&Cursor::Page(1), &more(None)),
            Some(Cursor::Page(2))
        );
        // Page 10 ends at record 2,000: page 11 would be refused.
        assert_eq!(Cursor::next(&Cursor::Page(10), &more(None)), None);
        assert_eq!(
            Cursor::next(&Cursor::Page(10), &more(Some("t1"))),
            Some(Cursor::Token("t1".into()))
        );
        assert_eq!(
            Cursor::next(&Cursor::Token("t1".into()), &more(Some("t2"))),
            Some(Cursor::Token("t2".into()))
        );
        let done = PageInfo::default();
        assert_eq!(Cursor::next(&Cursor::Page(1), &done), None);
    }
}
