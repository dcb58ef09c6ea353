//! The only place that talks SQL: an sqlx pool over SQLite (embedded default) or PostgreSQL,
//! the portable migrations runner, and typed repositories.
//!
//! It holds no business rules beyond data integrity.
