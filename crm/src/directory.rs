//! The customer directory: who is calling, by caller ID, within one tenant.

use store::{Customer, Invoice, Store, StoreError, TenantId};

use crate::phone::{E164, PhoneError, PhoneNormalizer};

/// How many invoices a lookup returns with the customer (newest due date first).
pub const LOOKUP_INVOICES: u32 = 20;

/// The answer to "who is calling from this number?".
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CallerMatch {
    /// Exactly one customer of the tenant has this number.
    Found(Box<KnownCaller>),
    /// No customer of the tenant has this number.
    Unknown,
    /// Several customers share this number (e.g. an office line). Nobody is identified:
    /// guessing would read one customer's data to another.
    Ambiguous { count: usize },
    /// The caller ID is not a phone number (withheld, `anonymous`, a SIP name).
    NoNumber(PhoneError),
}

/// An identified caller with their invoices.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownCaller {
    /// The normalised number that matched.
    pub number: E164,
    pub customer: Customer,
    /// Latest due date first, as many as the lookup asked for.
    pub invoices: Vec<Invoice>,
}

/// Why the directory could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    #[error("customer store unavailable: {0}")]
    Store(#[from] StoreError),
}

/// Customer lookups over the store's customers cache. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CustomerDirectory {
    store: Store,
    phones: PhoneNormalizer,
}

impl CustomerDirectory {
    /// A directory over `store`, reading national numbers in `phones`' default region.
    pub fn new(store: Store, phones: PhoneNormalizer) -> CustomerDirectory {
        CustomerDirectory { store, phones }
    }

    /// The phone normaliser in use.
    pub fn normalizer(&self) -> &PhoneNormalizer {
        &self.phones
    }

    /// Identifies the caller of `tenant_id` from a raw caller ID (`+1555…`, `sip:…@host`, a
    /// national number…), with up to `invoices` of their invoices (0 skips that query; use
    /// [`LOOKUP_INVOICES`] for the usual amount).
    pub async fn lookup_caller(
        &self,
        tenant_id: &TenantId,
        caller_id: &str,
        invoices: u32,
    ) -> Result<CallerMatch, DirectoryError> {
        let number = match self.phones.normalize(caller_id) {
            Ok(n) => n,
            Err(e) => return Ok(CallerMatch::NoNumber(e)),
        };
        // Two rows are enough to tell "one" from "several".
        let mut found = self
            .store
            .customers_by_phone(tenant_id, number.as_str(), 2)
            .await?;
        if found.len() > 1 {
            tracing::debug!(
                count = found.len(),
                "caller number matches several customers"
            );
            return Ok(CallerMatch::Ambiguous { count: found.len() });
        }
        let Some(customer) = found.pop() else {
            return Ok(CallerMatch::Unknown);
        };
        let invoices = match invoices {
            0 => Vec::new(),
            n => {
                self.store
                    .invoices_for_customer(tenant_id, &customer.id, n)
                    .await?
            }
        };
        Ok(CallerMatch::Found(Box::new(KnownCaller {
            number,
            customer,
            invoices,
        })))
    }

    /// One customer of the tenant by the store's id.
    pub async fn customer(
        &self,
        tenant_id: &TenantId,
        customer_id: &str,
    ) -> Result<Option<Customer>, DirectoryError> {
        Ok(self.store.customer(tenant_id, customer_id).await?)
    }

    /// A customer's invoices, latest due date first, at most `limit`.
    pub async fn invoices(
        &self,
        tenant_id: &TenantId,
        customer_id: &str,
        limit: u32,
    ) -> Result<Vec<Invoice>, DirectoryError> {
        Ok(self
            .store
            .invoices_for_customer(tenant_id, customer_id, limit)
            .await?)
    }
}
