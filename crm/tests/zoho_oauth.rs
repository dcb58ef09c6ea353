//! Zoho OAuth against the fake: connecting in a chosen DC (by `--dc` and by the redirect's
//! `accounts-server`), tokens sealed at rest, refresh before expiry with one refresh per tenant
//! under concurrency, Zoho's 10-per-10-minutes limit, and a revoked refresh token
//! disconnecting the tenant. On SQLite and PostgreSQL.

#[path = "../../store/tests/common/mod.rs"]
#[rustfmt::skip]
#[macro_use]
mod common;
mod zoho_support;

use std::time::Duration;

use common::{Engine, TestDb};
use crm::zoho::{ACCESS_TOKEN, DataCenter, REFRESH_TOKEN, ZohoError};
use store::{Store, ZohoStatus};
use vault::Owner;
use zoho_support::{Harness, REDIRECT, keyring};

both_engines!(
    connect_by_dc_and_by_accounts_server,
    exchange_refuses_bad_state_foreign_servers_and_other_dc_codes,
    refresh_before_expiry_is_single_flight_and_limited,
    rejected_access_token_is_refreshed_once,
    revoked_refresh_token_disconnects_the_tenant,
);

async fn connect_by_dc_and_by_accounts_server(store: &Store) {
    let h = Harness::new(store).await;
    h.fake.require_redirect_uri(REDIRECT);
    let auth = h
        .zoho
        .start_authorization(&h.tenant, DataCenter::Eu)
        .await
        .unwrap();
    let url = url::Url::parse(&auth.url).unwrap();
    assert_eq!(url.path(), "/accounts/eu/oauth/v2/auth");
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert_eq!(q["state"], auth.state);
    for scope in [
        "ZohoCRM.modules.contacts.READ",
        "ZohoCRM.modules.calls.WRITE",
        "ZohoBooks.invoices.READ",
    ] {
        assert!(q["scope"].split(',').any(|s| s == scope), "{}", q["scope"]);
    }
    let pending = store.zoho_connection(&h.tenant).await.unwrap().unwrap();
    assert_eq!(pending.status, ZohoStatus::Pending);

    // The user consents; the redirect carries the code and the accounts server.
    let consent = reqwest_013::Client::builder()
        .redirect(reqwest_013::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&auth.url)
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), 302);
    let location = url::Url::parse(consent.headers()["location"].to_str().unwrap()).unwrap();
    let back: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(back["state"], auth.state);
    assert_eq!(back["location"], "eu");
    let connected = h
        .zoho
        .complete_authorization(
            &h.tenant,
            &back["code"],
            Some(&back["state"]),
            Some(&back["accounts-server"]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(connected.dc, DataCenter::Eu);
    assert_eq!(connected.api_domain, h.fake.api_domain("eu"));
    let conn = store.zoho_connection(&h.tenant).await.unwrap().unwrap();
    assert_eq!(conn.status, ZohoStatus::Connected);
    assert_eq!(
        conn.api_domain.as_deref(),
        Some(h.fake.api_domain("eu").as_str())
    );
    assert_eq!(conn.pending_state, None);

    // Tokens are stored sealed: the ciphertext is not the token, and opens only as this
    // tenant's refresh token.
    let refresh = store
        .secret(&h.tenant, REFRESH_TOKEN)
        .await
        .unwrap()
        .unwrap();
    assert!(!refresh.ciphertext.contains("refresh"));
    let sealed = vault::Sealed {
        key_id: refresh.key_id.clone(),
        ciphertext: refresh.ciphertext.clone(),
    };
    let ring = keyring(7);
    let token = ring
        .open(&sealed, Owner::new(h.tenant.as_str(), REFRESH_TOKEN))
        .unwrap();
    assert!(
        token.expose().starts_with("1000.refresh"),
        "fake's refresh token"
    );
    assert!(
        ring.open(&sealed, Owner::new(h.tenant.as_str(), ACCESS_TOKEN))
            .is_err()
    );
    // The API is reached at the EU api_domain with the EU token.
    h.zoho
        .sync(&h.tenant, &zoho_support::options(false), &|_| {})
        .await
        .unwrap();
    let list = h.fake.requests_to("/crm/v8/Contacts");
    assert!(!list.is_empty() && list.iter().all(|r| r.dc == "eu" && r.status != 401));

    // The other form: `--dc jp` with a code, no accounts server (a fresh tenant).
    let other = store.ensure_tenant("globex", 1).await.unwrap().id;
    let code = h.fake.issue_code("jp");
    let connected = h
        .zoho
        .complete_authorization(&other, &code, None, None, Some(DataCenter::Jp))
        .await
        .unwrap();
    assert_eq!(connected.dc, DataCenter::Jp);
    assert_eq!(connected.api_domain, h.fake.api_domain("jp"));
}

async fn exchange_refuses_bad_state_foreign_servers_and_other_dc_codes(store: &Store) {
    let h = Harness::new(store).await;
    let auth = h
        .zoho
        .start_authorization(&h.tenant, DataCenter::Us)
        .await
        .unwrap();
    let code = h.fake.issue_code("us");
    let err = h
        .zoho
        .complete_authorization(&h.tenant, &code, Some("forged"), None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ZohoError::BadState), "{err}");
    // A state that expired.
    h.clock.advance(Duration::from_secs(3600));
    let err = h
        .zoho
        .complete_authorization(&h.tenant, &code, Some(&auth.state), None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ZohoError::BadState), "{err}");
    // Never send the client secret to a server that is not Zoho's.
    let err = h
        .zoho
        .complete_authorization(
            &h.tenant,
            &code,
            None,
            Some("https://accounts.evil.example"),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ZohoError::UnknownAccountsServer { .. }),
        "{err}"
    );
    assert!(h.fake.requests_to("/oauth/v2/token").is_empty());
    // A US code at the EU server is refused by Zoho (codes belong to their DC).
    let err = h
        .zoho
        .complete_authorization(
            &h.tenant,
            &code,
            None,
            Some(&h.fake.accounts_server("eu")),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ZohoError::CodeRejected { ref error } if error == "invalid_code"),
        "{err}"
    );
    // The same code at its own server works, once.
    h.zoho
        .complete_authorization(
            &h.tenant,
            &code,
            None,
            Some(&h.fake.accounts_server("us")),
            None,
        )
        .await
        .unwrap();
    let err = h
        .zoho
        .complete_authorization(&h.tenant, &code, None, None, Some(DataCenter::Us))
        .await
        .unwrap_err();
    assert!(matches!(err, ZohoError::CodeRejected { .. }), "{err}");
}

async fn refresh_before_expiry_is_single_flight_and_limited(store: &Store) {
    let h = Harness::new(store).await;
    h.connect().await;
    let first = h.zoho.access_token(&h.tenant).await.unwrap();
    assert_eq!(
        h.fake.refresh_grants(),
        0,
        "the code grant's token is used first"
    );
    // Within the refresh margin (5 minutes before expiry): 20 callers at once share one
    // refresh.
    h.clock.advance(Duration::from_secs(3600 - 200));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let z = h.zoho.clone();
        let t = h.tenant.clone();
        tasks.push(tokio::spawn(async move {
            let token = z.access_token(&t).await.unwrap();
            format!("{:?}", token.expires_at)
        }));
    }
    let mut expiries = Vec::new();
    for t in tasks {
        expiries.push(t.await.unwrap());
    }
    expiries.dedup();
    assert_eq!(expiries.len(), 1, "every caller got the same token");
    assert_eq!(
        h.fake.refresh_grants(),
        1,
        "one refresh for 20 concurrent callers"
    );
    assert!(first.expires_at < h.zoho.access_token(&h.tenant).await.unwrap().expires_at);

    // A restarted daemon reuses the stored token instead of minting another.
    let again = Harness::zoho(store, &h.fake, keyring(7), &h.clock);
    again.access_token(&h.tenant).await.unwrap();
    assert_eq!(h.fake.refresh_grants(), 1);

    // Zoho's limit, counted by us: after 10 grants within 10 minutes we stop asking. (The
    // code grant at connect counted as one.)
    for _ in 0..8 {
        h.clock.advance(Duration::from_secs(3600));
        h.zoho.access_token(&h.tenant).await.unwrap();
    }
    let grants = store
        .zoho_connection(&h.tenant)
        .await
        .unwrap()
        .unwrap()
        .token_grants;
    // Only those in the last 10 minutes of our clock are kept; the clock moved by hours.
    assert!(!grants.is_empty());
    assert_eq!(h.fake.refresh_grants(), 9);

    // Ten in a window: simulate by keeping the clock still and invalidating the token.
    let h2 = Harness::new(store).await;
    let t2 = store.ensure_tenant("initech", 1).await.unwrap().id;
    let code = h2.fake.issue_code("us");
    h2.zoho
        .complete_authorization(&t2, &code, None, None, Some(DataCenter::Us))
        .await
        .unwrap();
    for _ in 0..9 {
        let token = h2.zoho.access_token(&t2).await.unwrap();
        h2.zoho.invalidate_access_token(&t2, &token).await.unwrap();
        h2.zoho.access_token(&t2).await.unwrap();
    }
    let before = h2.fake.refresh_grants();
    let token = h2.zoho.access_token(&t2).await.unwrap();
    h2.zoho.invalidate_access_token(&t2, &token).await.unwrap();
    let err = h2.zoho.access_token(&t2).await.unwrap_err();
    match err {
        ZohoError::RefreshLimited { retry_after } => {
            assert!(
                retry_after <= Duration::from_secs(600) && retry_after >= Duration::from_secs(1)
            );
        }
        other => panic!("expected the limit, got {other}"),
    }
    assert_eq!(
        h2.fake.refresh_grants(),
        before,
        "Zoho was not asked an eleventh time"
    );
    // Ten minutes later it may refresh again.
    h2.clock.advance(Duration::from_secs(601));
    h2.zoho.access_token(&t2).await.unwrap();
    assert_eq!(h2.fake.refresh_grants(), before + 1);
}

async fn rejected_access_token_is_refreshed_once(store: &Store) {
    let h = Harness::new(store).await;
    h.connect().await;
    h.fake
        .add_contact(&testkit::zoho::Person::new("Jane", "Doe", "+15550142000"));
    // Zoho dropped the token early (revoked session): the next call gets 401 INVALID_TOKEN,
    // refreshes once and succeeds.
    h.fake.expire_access_tokens();
    let report = h.sync(false).await;
    assert_eq!(report.streams["crm:Contacts"].inserted, 1);
    assert_eq!(h.fake.refresh_grants(), 1);
    let statuses: Vec<u16> = h
        .fake
        .requests_to("/crm/v8/Contacts")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [401, 200]);
}

async fn revoked_refresh_token_disconnects_the_tenant(store: &Store) {
    let h = Harness::new(store).await;
    h.connect().await;
    h.fake.revoke_refresh_tokens();
    h.clock.advance(Duration::from_secs(3600));
    let err = h
        .zoho
        .sync(&h.tenant, &zoho_support::options(false), &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, ZohoError::RefreshRevoked { ref error } if error == "invalid_code"),
        "{err}"
    );
    let conn = store.zoho_connection(&h.tenant).await.unwrap().unwrap();
    assert_eq!(conn.status, ZohoStatus::Disconnected);
    assert!(conn.status_reason.unwrap().contains("invalid_code"));
    assert!(
        store
            .secret(&h.tenant, ACCESS_TOKEN)
            .await
            .unwrap()
            .is_none()
    );
    // From now on nothing is asked of Zoho until someone reconnects.
    let asked = h.fake.requests().len();
    let err = h.zoho.access_token(&h.tenant).await.unwrap_err();
    assert!(matches!(err, ZohoError::Disconnected { .. }), "{err}");
    let err = h
        .zoho
        .sync(&h.tenant, &zoho_support::options(false), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ZohoError::Disconnected { .. }), "{err}");
    assert_eq!(h.fake.requests().len(), asked);
    // Reconnecting brings it back.
    h.connect().await;
    assert_eq!(
        store
            .zoho_connection(&h.tenant)
            .await
            .unwrap()
            .unwrap()
            .status,
        ZohoStatus::Connected
    );
    h.zoho.access_token(&h.tenant).await.unwrap();
}
