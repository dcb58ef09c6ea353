//! Creating a campaign from a request, the same for the admin API and the CLI: settings
//! validated, the flow and trunk checked when the caller can, the contacts read (CSV or
//! customer filter), then everything stored in one transaction — or nothing.

use store::{
    Campaign, CampaignKind, CampaignSettings, CampaignStatus, NewCampaign, Store, TenantId,
};

use super::contacts::{CsvError, CustomerFilter, contacts_from_customers, parse_contacts_csv};
use super::{SettingsError, validate_settings};
use crate::phone::PhoneNormalizer;

/// Where a campaign's numbers come from.
#[derive(Debug, Clone)]
pub enum ContactSource {
    /// A contacts CSV (see `contacts`), as text.
    Csv(String),
    /// The customer cache.
    Customers(CustomerFilter),
    /// None: the tenant's callbacks campaign takes scheduled callbacks as they come.
    Callbacks,
}

/// A campaign to create.
#[derive(Debug, Clone)]
pub struct CampaignRequest {
    pub tenant_id: TenantId,
    pub name: String,
    pub flow: String,
    pub trunk: String,
    pub settings: CampaignSettings,
    pub contacts: ContactSource,
    /// Start at once (`running`) instead of `draft`.
    pub start: bool,
    pub now: i64,
}

/// What the creator can check about the daemon's configuration.
pub struct Checks<'a> {
    pub phones: &'a PhoneNormalizer,
    /// Whether a flow of that name is loaded; `None`: not checked here.
    pub flow_exists: Option<&'a (dyn Fn(&str) -> bool + Sync)>,
    /// Whether a trunk of that name is configured; `None`: not checked here.
    pub trunk_exists: Option<&'a (dyn Fn(&str) -> bool + Sync)>,
}

/// Why a campaign was not created. Nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    #[error("name must be 1 to 100 characters")]
    BadName,
    #[error("settings.{0}")]
    Settings(#[from] SettingsError),
    #[error("no flow named {0:?} is loaded")]
    UnknownFlow(String),
    #[error("no trunk named {0:?} in [[trunks]]")]
    UnknownTrunk(String),
    #[error("contacts: {0}")]
    Contacts(#[from] CsvError),
    #[error("no customer matches the filter")]
    NoCustomers,
    #[error(
        "a campaign named {0:?} already exists (or the tenant already has a callbacks campaign)"
    )]
    Exists(String),
    #[error(transparent)]
    Store(store::StoreError),
}

/// Validates and creates; see the module docs.
pub async fn create_campaign(
    store: &Store,
    req: CampaignRequest,
    checks: &Checks<'_>,
) -> Result<Campaign, CreateError> {
    let name = req.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(CreateError::BadName);
    }
    validate_settings(&req.settings)?;
    if let Some(exists) = checks.flow_exists
        && !exists(&req.flow)
    {
        return Err(CreateError::UnknownFlow(req.flow));
    }
    if let Some(exists) = checks.trunk_exists
        && !exists(&req.trunk)
    {
        return Err(CreateError::UnknownTrunk(req.trunk));
    }
    let default_zone = req.settings.default_time_zone.as_deref();
    let (kind, contacts) = match &req.contacts {
        ContactSource::Csv(text) => (
            CampaignKind::List,
            parse_contacts_csv(text.as_bytes(), checks.phones, default_zone)?,
        ),
        ContactSource::Customers(filter) => {
            let (contacts, _skipped) =
                contacts_from_customers(store, &req.tenant_id, filter, default_zone)
                    .await
                    .map_err(CreateError::Store)?;
            if contacts.is_empty() {
                return Err(CreateError::NoCustomers);
            }
            (CampaignKind::List, contacts)
        }
        ContactSource::Callbacks => (CampaignKind::Callbacks, Vec::new()),
    };
    let new = NewCampaign {
        tenant_id: req.tenant_id,
        name: name.clone(),
        kind,
        flow: req.flow,
        trunk: req.trunk,
        settings: req.settings,
        status: if req.start {
            CampaignStatus::Running
        } else {
            CampaignStatus::Draft
        },
        created_at: req.now,
    };
    store
        .create_campaign(new, &contacts)
        .await
        .map_err(|e| match e {
            store::StoreError::Conflict {
                what: "campaign", ..
            } => CreateError::Exists(name),
            other => CreateError::Store(other),
        })
}
