//! Shared by the Zoho tests: a fake Zoho, a store, and the integration configured against the
//! fake for every data centre, with a clock the test moves.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crm::PhoneNormalizer;
use crm::zoho::{ClientSecret, DataCenter, RetryPolicy, SyncOptions, Zoho, ZohoConfig};
use store::Store;
use testkit::zoho::FakeZoho;
use vault::{EncryptionKey, Keyring};

pub const CLIENT_ID: &str = "1000.TESTCLIENT";
pub const CLIENT_SECRET: &str = "test-client-secret";
pub const REDIRECT: &str = "https://agent.example/zoho/callback";

/// A test clock in unix ms.
#[derive(Clone)]
pub struct TestClock(pub Arc<AtomicI64>);

impl TestClock {
    pub fn new() -> TestClock {
        TestClock(Arc::new(AtomicI64::new(1_767_225_600_000)))
    }
    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
}

pub fn keyring(byte: u8) -> Keyring {
    Keyring::new(EncryptionKey::from_bytes(&[byte; 32]).unwrap(), vec![])
}

pub fn config(fake: &FakeZoho) -> ZohoConfig {
    let mut cfg = ZohoConfig::new(CLIENT_ID, ClientSecret::new(CLIENT_SECRET), REDIRECT);
    for dc in DataCenter::ALL {
        cfg.accounts_servers
            .insert(dc, fake.accounts_server(dc.as_str()));
    }
    cfg.books_organization_id = fake.books_organization_id();
    cfg.http_timeout = Duration::from_secs(5);
    cfg.retry = RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(5),
        max: Duration::from_secs(2),
    };
    cfg.outbox_backoff = RetryPolicy {
        attempts: u32::MAX,
        base: Duration::from_secs(30),
        max: Duration::from_secs(3600),
    };
    cfg
}

pub struct Harness {
    pub fake: FakeZoho,
    pub zoho: Zoho,
    pub clock: TestClock,
    pub tenant: store::TenantId,
}

impl Harness {
    pub async fn new(store: &Store) -> Harness {
        let fake = FakeZoho::start(CLIENT_ID, CLIENT_SECRET).await;
        Harness::with_fake(store, fake, keyring(7)).await
    }

    pub async fn with_fake(store: &Store, fake: FakeZoho, ring: Keyring) -> Harness {
        let clock = TestClock::new();
        let tenant = store.ensure_tenant("acme", clock.now()).await.unwrap().id;
        let zoho = Harness::zoho(store, &fake, ring, &clock);
        Harness {
            fake,
            zoho,
            clock,
            tenant,
        }
    }

    /// Another integration over the same store and fake (a restarted daemon).
    pub fn zoho(store: &Store, fake: &FakeZoho, ring: Keyring, clock: &TestClock) -> Zoho {
        let c = clock.clone();
        Zoho::with_clock(
            store.clone(),
            ring,
            config(fake),
            PhoneNormalizer::default(),
            Arc::new(move || c.now()),
        )
        .unwrap()
    }

    /// Connects the tenant through the US data centre with a code from the fake.
    pub async fn connect(&self) {
        let code = self.fake.issue_code("us");
        self.zoho
            .complete_authorization(&self.tenant, &code, None, None, Some(DataCenter::Us))
            .await
            .unwrap();
    }

    pub async fn sync(&self, full: bool) -> crm::zoho::SyncReport {
        self.zoho
            .sync(&self.tenant, &options(full), &|_| {})
            .await
            .unwrap()
    }
}

pub fn options(full: bool) -> SyncOptions {
    SyncOptions {
        full,
        trigger: "cli".into(),
        node: "test-node".into(),
    }
}
