//! Secrets at rest against a real database: the start-up key check (missing key, unknown key,
//! undecryptable data) and rotation re-sealing every secret under the new key. On SQLite and
//! PostgreSQL.

#[path = "../../store/tests/common/mod.rs"]
#[rustfmt::skip]
#[macro_use]
mod common;

use common::{Engine, TestDb};
use crm::secrets::{KeyCheckError, check_encryption_keys, rotate_secrets};
use store::{NewSecret, Store};
use vault::{EncryptionKey, Keyring, Owner};

both_engines!(
    key_check_names_the_setting,
    rotation_reseals_everything_under_the_new_key,
);

fn key(byte: u8) -> EncryptionKey {
    EncryptionKey::from_bytes(&[byte; 32]).unwrap()
}

async fn put(store: &Store, ring: &Keyring, tenant: &store::TenantId, purpose: &str, text: &str) {
    let sealed = ring.seal(text, Owner::new(tenant.as_str(), purpose));
    store
        .put_secret(
            tenant,
            &NewSecret {
                purpose: purpose.to_owned(),
                key_id: sealed.key_id,
                ciphertext: sealed.ciphertext,
            },
            1,
        )
        .await
        .unwrap();
}

async fn open(store: &Store, ring: &Keyring, tenant: &store::TenantId, purpose: &str) -> String {
    let s = store.secret(tenant, purpose).await.unwrap().unwrap();
    ring.open(
        &vault::Sealed {
            key_id: s.key_id,
            ciphertext: s.ciphertext,
        },
        Owner::new(tenant.as_str(), purpose),
    )
    .unwrap()
    .expose()
    .to_owned()
}

async fn key_check_names_the_setting(store: &Store) {
    let old = Keyring::new(key(1), vec![]);
    // An empty database fits any key, or none.
    check_encryption_keys(store, None).await.unwrap();
    check_encryption_keys(store, Some(&old)).await.unwrap();
    let t = store.create_tenant("acme", 1).await.unwrap().id;
    put(store, &old, &t, "zoho.refresh_token", "1000.r").await;
    check_encryption_keys(store, Some(&old)).await.unwrap();

    let err = check_encryption_keys(store, None).await.unwrap_err();
    assert!(
        matches!(err, KeyCheckError::NoKey { secrets: 1, .. }) && err.is_config(),
        "{err}"
    );
    assert!(err.to_string().contains("security.encryption_key"), "{err}");

    let wrong = Keyring::new(key(2), vec![]);
    let err = check_encryption_keys(store, Some(&wrong))
        .await
        .unwrap_err();
    assert!(
        matches!(err, KeyCheckError::UnknownKey { .. }) && err.is_config(),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("security.encryption_key") && text.contains(key(1).id()),
        "{text}"
    );
    // With the old key as a previous one, it is accepted.
    check_encryption_keys(store, Some(&Keyring::new(key(2), vec![key(1)])))
        .await
        .unwrap();

    // A tampered row under the right key id does not pass.
    let stored = store
        .secret(&t, "zoho.refresh_token")
        .await
        .unwrap()
        .unwrap();
    let mut bytes = stored.ciphertext.into_bytes();
    let last = bytes.len() - 3;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    store
        .put_secret(
            &t,
            &NewSecret {
                purpose: "zoho.refresh_token".into(),
                key_id: stored.key_id,
                ciphertext: String::from_utf8(bytes).unwrap(),
            },
            2,
        )
        .await
        .unwrap();
    let err = check_encryption_keys(store, Some(&old)).await.unwrap_err();
    assert!(matches!(err, KeyCheckError::Undecryptable { .. }), "{err}");
}

async fn rotation_reseals_everything_under_the_new_key(store: &Store) {
    let old = Keyring::new(key(1), vec![]);
    let mut tenants = Vec::new();
    for name in ["acme", "globex", "initech"] {
        let t = store.create_tenant(name, 1).await.unwrap().id;
        put(
            store,
            &old,
            &t,
            "zoho.refresh_token",
            &format!("refresh-{name}"),
        )
        .await;
        put(
            store,
            &old,
            &t,
            "zoho.access_token",
            &format!("access-{name}"),
        )
        .await;
        tenants.push((t, name));
    }
    let rotating = Keyring::new(key(2), vec![key(1)]);
    let report = rotate_secrets(store, &rotating, 10).await.unwrap();
    assert_eq!((report.resealed, report.skipped), (6, 0));
    // Everything is under the new key; the new key alone reads it all; the old one nothing.
    let usage = store.secret_key_usage().await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (usage[0].key_id.as_str(), usage[0].secrets),
        (key(2).id(), 6)
    );
    let only_new = Keyring::new(key(2), vec![]);
    check_encryption_keys(store, Some(&only_new)).await.unwrap();
    for (t, name) in &tenants {
        assert_eq!(
            open(store, &only_new, t, "zoho.refresh_token").await,
            format!("refresh-{name}")
        );
        assert_eq!(
            open(store, &only_new, t, "zoho.access_token").await,
            format!("access-{name}")
        );
    }
    assert!(check_encryption_keys(store, Some(&old)).await.is_err());
    // Running it again has nothing to do.
    let again = rotate_secrets(store, &rotating, 11).await.unwrap();
    assert_eq!((again.resealed, again.skipped), (0, 0));
}
