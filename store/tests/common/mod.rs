//! Test databases: a fresh SQLite file in a temp dir, or a fresh PostgreSQL database created on
//! the server at `AGENT_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and dropped afterwards.

use std::sync::atomic::{AtomicU32, Ordering};

use store::{Store, StoreOptions};

pub enum Engine {
    Sqlite,
    Postgres,
}

/// A migrated store plus whatever must be cleaned up after it.
pub struct TestDb {
    pub store: Store,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

pub fn postgres_admin_url() -> String {
    std::env::var("AGENT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub async fn new(engine: Engine) -> TestDb {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/agent.db", dir.path().display());
                let store = Store::connect(&url, &StoreOptions::default())
                    .await
                    .expect("sqlite");
                store.migrate().await.expect("migrate sqlite");
                TestDb {
                    store,
                    cleanup: Cleanup::Dir(dir),
                }
            }
            Engine::Postgres => {
                let admin_url = postgres_admin_url();
                let name = format!(
                    "agent_test_{}_{}_{}",
                    std::process::id(),
                    SEQ.fetch_add(1, Ordering::Relaxed),
                    rand_suffix()
                );
                exec_admin(&admin_url, &format!("CREATE DATABASE {name}")).await;
                let url = replace_db(&admin_url, &name);
                let store = Store::connect(&url, &StoreOptions::default())
                    .await
                    .expect("postgres: is the server on 127.0.0.1:5432 running?");
                store.migrate().await.expect("migrate postgres");
                TestDb {
                    store,
                    cleanup: Cleanup::Postgres { admin_url, name },
                }
            }
        }
    }

    pub async fn finish(self) {
        self.store.close().await;
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            exec_admin(
                admin_url,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await;
        }
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

pub fn replace_db(url: &str, name: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("postgres url has a database");
    format!("{base}/{name}")
}

async fn exec_admin(admin_url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to the PostgreSQL server for test database setup");
    sqlx::Executor::execute(&mut conn, sql).await.expect(sql);
}

/// Declares each named `async fn(&Store)` test twice, as `sqlite::NAME` and `postgres::NAME`,
/// each on a fresh database that is dropped afterwards.
macro_rules! both_engines {
    ($($name:ident),+ $(,)?) => {
        mod sqlite { $(
            #[tokio::test]
            async fn $name() {
                let db = super::TestDb::new(super::Engine::Sqlite).await;
                super::$name(&db.store).await;
                db.finish().await;
            }
        )+ }
        mod postgres { $(
            #[tokio::test]
            async fn $name() {
                let db = super::TestDb::new(super::Engine::Postgres).await;
                super::$name(&db.store).await;
                db.finish().await;
            }
        )+ }
    };
}
