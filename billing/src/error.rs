//! The crate's error type.

/// Errors from billing operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BillingError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The payment provider answered with an error or could not be reached.
    #[error("payment provider: {0}")]
    Dodo(#[from] crate::dodo::DodoError),
    /// A plan name that the configuration does not define.
    #[error("unknown plan {0:?}")]
    UnknownPlan(String),
    /// The mail provider refused the e-mail for good (a bad address, a bad key).
    #[error("the e-mail was refused by the mail provider")]
    MailRejected,
    /// Payments are not configured (`dodo.api_key` or the product id is empty).
    #[error("payments are not configured: {0}")]
    NotConfigured(&'static str),
}
