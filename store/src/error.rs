//! The store's error type.

/// Errors from the store. Variants say what failed; the sqlx error is kept as the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL is not one we can use.
    #[error("invalid database url: {reason}")]
    InvalidUrl { reason: String },
    /// The database could not be reached or opened.
    #[error("cannot connect to the database: {source}")]
    Connect {
        #[source]
        source: sqlx::Error,
    },
    /// Applying migrations failed.
    #[error("migrations failed: {source}")]
    Migrate {
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("database query failed: {source}")]
    Query {
        #[from]
        source: sqlx::Error,
    },
    /// A row that must exist does not.
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// A unique value already exists.
    #[error("{what} already exists")]
    Conflict { what: &'static str },
    /// A stored value does not decode into its domain type (data written by something else).
    #[error("corrupt {what} in the database: {value:?}")]
    Corrupt { what: &'static str, value: String },
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::Conflict`], anything else to `Query`.
    pub(crate) fn from_insert(err: sqlx::Error, what: &'static str) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict { what },
            _ => StoreError::Query { source: err },
        }
    }
}
