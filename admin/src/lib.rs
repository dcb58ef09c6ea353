//! The admin HTTP API for supervisors (axum): health, readiness, metrics, bearer-key
//! authentication and the /v1 resources.
//!
//! It holds no business rules that belong in `store` or `dialogs`; it maps HTTP to them.
