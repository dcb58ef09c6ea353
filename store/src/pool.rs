//! Connecting to SQLite or PostgreSQL behind one `AnyPool`, and running the migrations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::StoreError;

/// Which engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections the pool opens (SQLite allows one writer at a time regardless).
    pub max_connections: u32,
    /// How long to wait for a connection before failing a query.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Handle to the database. Cheap to clone; all clones share one pool.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

impl Store {
    /// Connects to `url` (`sqlite://path/to/file.db`, `sqlite::memory:`, or
    /// `postgres://user@host:port/db`). For SQLite the file and its parent folder are created
    /// when missing, and the database runs in WAL mode with foreign keys enforced.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let url = match backend {
            Backend::Sqlite => sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let connect_options =
            AnyConnectOptions::from_str(&url).map_err(|e| StoreError::InvalidUrl {
                reason: e.to_string(),
            })?;
        let mut pool_options = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout);
        if backend == Backend::Sqlite {
            pool_options = pool_options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets the admin API read while a call writes; busy_timeout makes
                    // concurrent writers wait instead of failing with SQLITE_BUSY.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool_options
            .connect_with(connect_options)
            .await
            .map_err(|source| StoreError::Connect { source })?;
        Ok(Self { pool, backend })
    }

    /// Applies pending migrations from `migrations/` (embedded at build time).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|source| StoreError::Migrate { source })
    }

    /// Round-trips a trivial query: true when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool, waiting for checked-out connections to return.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn backend_of(url: &str) -> Result<Backend, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(StoreError::InvalidUrl {
            reason: "expected a sqlite:// or postgres:// url".to_owned(),
        })
    }
}

/// Normalises a SQLite url to one that creates the file, and creates its parent folder.
fn sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or("");
    if rest.is_empty() {
        return Err(StoreError::InvalidUrl {
            reason: "sqlite url names no file".to_owned(),
        });
    }
    if rest.starts_with(":memory:") {
        return Ok(url.to_owned());
    }
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if let Some(parent) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::InvalidUrl {
            reason: format!("cannot create folder {}: {e}", parent.display()),
        })?;
    }
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_url_adds_create_mode_and_keeps_params() {
        let dir = std::env::temp_dir().join(format!("store-url-{}", std::process::id()));
        let file = dir.join("a.db");
        let url = sqlite_url(&format!("sqlite://{}", file.display())).unwrap();
        assert_eq!(url, format!("sqlite://{}?mode=rwc", file.display()));
        assert!(dir.is_dir());
        let url = sqlite_url(&format!("sqlite://{}?cache=shared", file.display())).unwrap();
        assert!(url.ends_with("?cache=shared&mode=rwc"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_scheme_is_rejected() {
        assert!(matches!(
            backend_of("mysql://x"),
            Err(StoreError::InvalidUrl { .. })
        ));
        assert!(matches!(
            sqlite_url("sqlite://"),
            Err(StoreError::InvalidUrl { .. })
        ));
    }
}
