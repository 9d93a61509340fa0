//! OpenID Connect sign-in through a real provider (`oidc-provider` run by Node, behind the
//! test's proxy: tests/support/oidc.rs): a good sign-in makes the same staff session as a
//! password login with the mapped role; every bad answer is refused with its stable code and
//! leaves no session; provisioning off refuses an unknown subject; passwords off refuse the
//! password login; the key set is fetched again for an unknown `kid`, at most once a window.

use inspector_tests::oidc::{Browser, Provider, TokenEdit, CLIENT_ID, CLIENT_SECRET};
use inspector_tests::{spawn_app_with, Role, TestApp};
use serde_json::{json, Value};
use signaling::oidc::OidcConfig;

fn accounts() -> Value {
    json!({
        "alice": {"preferred_username": "alice", "name": "Алиса Петрова", "email": "alice@body.example",
                  "email_verified": true, "groups": ["staff", "inspectors", "admins"]},
        "bob": {"preferred_username": "bob", "name": "Bob", "groups": ["inspectors"]},
        "carol": {"preferred_username": "carol.r", "name": "Carol", "groups": ["reviewers"]},
        "dave": {"preferred_username": "dave", "name": "Dave", "groups": ["visitors"]},
    })
}

fn oidc_config(issuer: &str) -> OidcConfig {
    OidcConfig {
        issuer: Some(issuer.to_string()),
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        provider_name: "Test IdP".into(),
        role_claim: Some("groups".into()),
        roles: [
            ("inspectors".to_string(), Role::Inspector),
            ("reviewers".to_string(), Role::Reviewer),
            ("admins".to_string(), Role::Admin),
        ]
        .into_iter()
        .collect(),
        jit_provisioning: true,
        ..OidcConfig::default()
    }
}

/// A server configured for the provider, and the provider (signing with `alg`).
async fn world(alg: &str, adjust: impl FnOnce(&mut OidcConfig)) -> (TestApp, Provider) {
    let slot = Provider::bind().await.expect("bind the proxy");
    let mut cfg = oidc_config(&slot.issuer);
    adjust(&mut cfg);
    let app = spawn_app_with(|c| c.oidc = cfg).await;
    let provider = slot
        .start(&app.public_url, accounts(), alg)
        .await
        .expect("start the provider");
    (app, provider)
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&app.db)
        .await
        .expect("count")
        .get::<i64, _>(0)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn a_good_sign_in_makes_a_staff_session_with_the_mapped_role() {
    let (app, provider) = world("RS256", |_| {}).await;
    let browser = Browser::new(&app.address);
    let (status, methods) = browser.get("/api/auth/methods").await;
    assert_eq!(status, 200);
    assert_eq!(methods["password"], json!(true));
    assert_eq!(methods["oidc"]["name"], json!("Test IdP"));

    // The authorization request carries PKCE S256, state and nonce.
    let auth = browser.start().await;
    let p = Browser::params(&auth);
    assert!(
        auth.starts_with(&format!("{}/auth?", provider.issuer)),
        "{auth}"
    );
    assert_eq!(p["code_challenge_method"], "S256");
    assert_eq!(p["code_challenge"].len(), 43);
    assert!(p["state"].len() >= 43 && p["nonce"].len() >= 43);
    assert_eq!(
        p["redirect_uri"],
        format!("{}/api/auth/oidc/callback", app.public_url)
    );
    assert!(
        browser.cookies().unwrap_or_default().is_empty(),
        "the binding cookie is scoped to the callback"
    );
    let cb = browser.authorize(&auth, "alice").await;
    let landing = browser.callback(&cb).await;
    assert_eq!(landing.location, "/#/list");
    assert_eq!(provider.last_id_token_header()["alg"], json!("RS256"));

    // The staff session: the strongest mapped group (admins) gives the role.
    let (status, me) = browser.get("/api/auth/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["username"], json!("alice"));
    assert_eq!(me["user"]["display_name"], json!("Алиса Петрова"));
    assert_eq!(me["user"]["role"], json!("admin"));
    assert_eq!(browser.get("/api/users").await.0, 200);
    // Linked by issuer and subject; the e-mail is kept for display.
    assert_eq!(
        count(&app, &format!(
            "SELECT COUNT(*) FROM oidc_identities WHERE issuer = '{}' AND subject = 'alice' AND email = 'alice@body.example'",
            provider.issuer
        ))
        .await,
        1
    );
    // Provisioned without a usable password.
    let c = app.anonymous();
    let r = c
        .post_json(
            "/api/auth/login",
            &json!({"username": "alice", "password": "!oidc"}),
        )
        .await;
    assert_eq!(r.code(), "bad_credentials");

    // A second sign-in finds the same account (no second one).
    let again = Browser::new(&app.address);
    assert_eq!(again.sign_in("alice").await.location, "/#/list");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, 1);
    // A local account holding the next subject's name keeps it: the new one gets a suffix.
    app.create_user("bob", "a long test password", Role::Reviewer)
        .await;
    let b = Browser::new(&app.address);
    assert_eq!(b.sign_in("bob").await.location, "/#/list");
    let (_, me) = b.get("/api/auth/me").await;
    assert_eq!(me["user"]["role"], json!("inspector"));
    assert!(
        me["user"]["username"].as_str().unwrap().starts_with("bob-"),
        "{me}"
    );
    // A subject with no mapped group and no default role is refused.
    let d = Browser::new(&app.address);
    assert_eq!(
        d.sign_in("dave").await.error().as_deref(),
        Some("oidc_no_role")
    );
    assert_eq!(d.get("/api/auth/me").await.0, 401);
}

#[tokio::test]
async fn every_bad_answer_is_refused_with_its_code() {
    let (app, provider) = world("RS256", |_| {}).await;
    let sessions = || count(&app, "SELECT COUNT(*) FROM sessions");
    let cases: Vec<(&str, TokenEdit)> = vec![
        ("oidc_token_invalid", TokenEdit::Corrupt),
        (
            "oidc_wrong_audience",
            TokenEdit::Resign(Box::new(|c| c["aud"] = json!("another-client"))),
        ),
        (
            // Several audiences need azp naming this client.
            "oidc_wrong_audience",
            TokenEdit::Resign(Box::new(|c| {
                c["aud"] = json!([CLIENT_ID, "another-client"]);
                c.as_object_mut().unwrap().remove("azp");
            })),
        ),
        (
            "oidc_token_expired",
            TokenEdit::Resign(Box::new(|c| c["exp"] = json!(now() - 600))),
        ),
        (
            "oidc_nonce_mismatch",
            TokenEdit::Resign(Box::new(|c| c["nonce"] = json!("not-this-sign-in"))),
        ),
        (
            "oidc_wrong_issuer",
            TokenEdit::Resign(Box::new(|c| c["iss"] = json!("http://127.0.0.1:1"))),
        ),
    ];
    for (code, edit) in cases {
        provider.edit_tokens(edit);
        let b = Browser::new(&app.address);
        assert_eq!(b.sign_in("alice").await.error().as_deref(), Some(code));
        assert_eq!(b.get("/api/auth/me").await.0, 401, "{code}: no session");
        assert_eq!(sessions().await, 0, "{code}: no session stored");
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM users").await,
        0,
        "nobody provisioned"
    );

    // A re-signed token with nothing changed passes: the edits above were the refusals' cause.
    provider.edit_tokens(TokenEdit::Resign(Box::new(|_| {})));
    let b = Browser::new(&app.address);
    let auth = b.start().await;
    let cb = b.authorize(&auth, "alice").await;
    assert_eq!(b.callback(&cb).await.location, "/#/list");
    provider.edit_tokens(TokenEdit::Keep);

    // The same callback again: its sign-in is used up.
    let replay = Browser::new(&app.address);
    assert_eq!(
        b.callback(&cb).await.error().as_deref(),
        Some("oidc_state_unknown")
    );
    // The used code under a fresh sign-in's state: the provider refuses it.
    let fresh = Browser::params(&replay.start().await)["state"].clone();
    let code = Browser::params(&cb)["code"].clone();
    let forged = format!(
        "{}/api/auth/oidc/callback?code={code}&state={fresh}",
        app.address
    );
    assert_eq!(
        replay.callback(&forged).await.error().as_deref(),
        Some("oidc_code_rejected")
    );
    assert_eq!(replay.get("/api/auth/me").await.0, 401);

    // State mismatch: a callback for a sign-in this browser did not begin (login CSRF), and
    // one begun by an older attempt whose cookie a newer one replaced.
    let victim = Browser::new(&app.address);
    let attacker = Browser::new(&app.address);
    let auth = attacker.start().await;
    let cb = attacker.authorize(&auth, "bob").await;
    assert_eq!(
        victim.callback(&cb).await.error().as_deref(),
        Some("oidc_state_mismatch")
    );
    assert_eq!(victim.get("/api/auth/me").await.0, 401);
    // The rightful browser can still finish it: a stray callback cancels nothing.
    assert_eq!(attacker.callback(&cb).await.location, "/#/list");
    let twice = Browser::new(&app.address);
    let first = twice.start().await;
    let _second = twice.start().await;
    let cb = twice.authorize(&first, "alice").await;
    assert_eq!(
        twice.callback(&cb).await.error().as_deref(),
        Some("oidc_state_mismatch")
    );
    // The provider's own refusal (the user cancelled) and a callback with no state.
    let cancel = Browser::new(&app.address);
    let state = Browser::params(&cancel.start().await)["state"].clone();
    let url = format!(
        "{}/api/auth/oidc/callback?error=access_denied&state={state}",
        app.address
    );
    assert_eq!(
        cancel.callback(&url).await.error().as_deref(),
        Some("oidc_provider_refused")
    );
    let url = format!("{}/api/auth/oidc/callback?code=x", app.address);
    assert_eq!(
        cancel.callback(&url).await.error().as_deref(),
        Some("oidc_state_unknown")
    );
}

#[tokio::test]
async fn provisioning_off_refuses_an_unknown_subject_and_admits_a_linked_one() {
    let (app, provider) = world("RS256", |c| c.jit_provisioning = false).await;
    let before = app.dump().await;
    let b = Browser::new(&app.address);
    assert_eq!(
        b.sign_in("bob").await.error().as_deref(),
        Some("oidc_unknown_account")
    );
    assert_eq!(b.get("/api/auth/me").await.0, 401);
    assert_eq!(
        app.dump().await,
        before,
        "a refused subject changes nothing"
    );

    // An administrator links a local account to carol's subject: she signs in, and the
    // provider's group sets her role.
    app.create_user("carol", "a long test password", Role::Inspector)
        .await;
    assert!(
        signaling::oidc::link(&app.db, "carol", &provider.issuer, "carol")
            .await
            .unwrap()
    );
    let c = Browser::new(&app.address);
    assert_eq!(c.sign_in("carol").await.location, "/#/list");
    let (_, me) = c.get("/api/auth/me").await;
    assert_eq!(me["user"]["username"], json!("carol"));
    assert_eq!(me["user"]["role"], json!("reviewer"));
    // A disabled account stays out.
    let bus = signaling::signals::bus_for(&app.db, &app.database_url).expect("a bus");
    signaling::users::disable_user(&app.db, bus.as_ref(), "carol")
        .await
        .unwrap();
    let again = Browser::new(&app.address);
    assert_eq!(
        again.sign_in("carol").await.error().as_deref(),
        Some("oidc_account_disabled")
    );
}

#[tokio::test]
async fn passwords_off_refuse_the_password_login_and_es256_tokens_sign_in() {
    let (app, provider) = world("ES256", |c| {
        c.password_login = false;
        c.max_pending = 2;
    })
    .await;
    app.create_user("local", "a long test password", Role::Admin)
        .await;
    let c = app.anonymous();
    let r = c
        .post_json(
            "/api/auth/login",
            &json!({"username": "local", "password": "a long test password"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "password_login_disabled"));
    let b = Browser::new(&app.address);
    let (_, methods) = b.get("/api/auth/methods").await;
    assert_eq!(methods["password"], json!(false));
    // The provider signs ES256 here.
    let auth = b.start().await;
    let cb = b.authorize(&auth, "bob").await;
    assert_eq!(b.callback(&cb).await.location, "/#/list");
    assert_eq!(provider.last_id_token_header()["alg"], json!("ES256"));
    assert_eq!(
        b.get("/api/auth/me").await.1["user"]["role"],
        json!("inspector")
    );

    // Pending sign-ins are bounded: past `max_pending`, a start is refused with a code.
    let x = Browser::new(&app.address);
    x.start().await;
    x.start().await;
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/api/auth/oidc/start", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/?login_error=oidc_busy#/login");
}

#[tokio::test]
async fn an_unknown_kid_fetches_the_key_set_again_at_most_once_a_window() {
    // The window is long against the few requests that must fall inside it (a loaded
    // machine), and the test waits it out once.
    const WINDOW_SECS: u64 = 6;
    let (app, provider) = world("RS256", |c| c.jwks_refetch_secs = WINDOW_SECS).await;
    // A new P-256 key the provider will rotate to.
    let rng = ring::rand::SystemRandom::new();
    let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    use ring::signature::KeyPair;
    let point = pair.public_key().as_ref();
    let b64 = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    let resign = |kid: &str| TokenEdit::ResignEs256 {
        kid: kid.into(),
        pkcs8: pkcs8.as_ref().to_vec(),
    };

    let b = Browser::new(&app.address);
    assert_eq!(b.sign_in("alice").await.location, "/#/list");
    assert_eq!(provider.jwks_fetches(), 1);
    // The provider rotates: tokens now name a key the server has not seen.
    provider.add_jwk(json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]),
        "y": b64(&point[33..65]), "kid": "rotated-1", "alg": "ES256", "use": "sig"}));
    provider.edit_tokens(resign("rotated-1"));
    // Within the window after the last fetch, an unknown kid finds nothing new: refused.
    let w = Browser::new(&app.address);
    assert_eq!(
        w.sign_in("alice").await.error().as_deref(),
        Some("oidc_token_invalid")
    );
    assert_eq!(provider.jwks_fetches(), 1, "no fetch within the window");
    // Past the window the key set is fetched again and the new key found.
    tokio::time::sleep(std::time::Duration::from_millis(WINDOW_SECS * 1000 + 100)).await;
    let r = Browser::new(&app.address);
    assert_eq!(r.sign_in("alice").await.location, "/#/list");
    assert_eq!(
        provider.jwks_fetches(),
        2,
        "fetched again for the unknown kid"
    );
    // A made-up kid right after: refused, and the provider is not asked again.
    provider.edit_tokens(resign("ghost"));
    for _ in 0..2 {
        let g = Browser::new(&app.address);
        assert_eq!(
            g.sign_in("alice").await.error().as_deref(),
            Some("oidc_token_invalid")
        );
    }
    assert_eq!(
        provider.jwks_fetches(),
        2,
        "unknown kids do not hammer the provider"
    );
    // Known keys come from the cache, whatever the window.
    provider.edit_tokens(TokenEdit::Keep);
    assert_eq!(
        Browser::new(&app.address).sign_in("alice").await.location,
        "/#/list"
    );
    provider.edit_tokens(resign("rotated-1"));
    assert_eq!(
        Browser::new(&app.address).sign_in("alice").await.location,
        "/#/list"
    );
    assert_eq!(provider.jwks_fetches(), 2, "the key set is cached");
}

/// The login page in Chromium: the provider's button by its name, the provider's own login
/// form, the console signed in; a refused sign-in's code said on the login page in Russian,
/// then in English.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_login_page_signs_in_through_the_provider_and_says_refusals() -> anyhow::Result<()> {
    use inspector_tests::browser::{Browser as Chromium, Device};
    use std::time::Duration;
    const T: Duration = Duration::from_secs(20);
    let (app, provider) = world("RS256", |_| {}).await;
    let b = Chromium::launch("oidc", Device::Desktop).await?;
    b.goto(&format!("{}/", app.address)).await?;
    b.wait_true(
        "the provider's button",
        "const a = document.getElementById('login-oidc-link'); \
         return !document.getElementById('login-oidc').hidden && a.textContent === 'Войти через Test IdP'",
        T,
    )
    .await?;
    b.screenshot("oidc-login-ru").await?;
    b.click("#login-oidc-link").await?;
    // The provider's own page (node-oidc-provider's development login form).
    b.wait_for("form input[name=login]").await?;
    b.fill("input[name=login]", "alice").await?;
    b.fill("input[name=password]", "any").await?;
    b.click("button[type=submit]").await?;
    b.wait_true(
        "signed in as Alice",
        "return !document.getElementById('logout').hidden && \
         document.getElementById('who').textContent === 'Алиса Петрова'",
        T,
    )
    .await?;
    b.click("#logout").await?;
    b.wait_true(
        "signed out",
        "return !document.getElementById('view-login').hidden",
        T,
    )
    .await?;

    // A tampered token: back on the login page with the code in Russian (the provider
    // remembers Alice, so no form this time), the address cleaned.
    provider.edit_tokens(TokenEdit::Corrupt);
    b.click("#login-oidc-link").await?;
    b.wait_true(
        "the refusal in Russian",
        "const e = document.getElementById('login-error'); \
         return !e.hidden && e.textContent.startsWith('Подпись ответа поставщика') && \
         !location.search.includes('login_error')",
        T,
    )
    .await?;
    b.screenshot("oidc-refused-ru").await?;
    b.click("#lang").await?;
    b.wait_true(
        "the button in English",
        "return document.getElementById('login-oidc-link').textContent === 'Sign in with Test IdP'",
        T,
    )
    .await?;
    b.click("#login-oidc-link").await?;
    b.wait_true(
        "the refusal in English",
        "const e = document.getElementById('login-error'); \
         return !e.hidden && e.textContent.startsWith('The answer of the identity provider failed')",
        T,
    )
    .await?;
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM sessions").await,
        0,
        "signed out, then refused twice"
    );
    b.close().await?;
    Ok(())
}

/// Answers of the provider are bounded: a key set of too many keys, or too many bytes, is
/// refused (and not cached), and the sign-in works again once the provider is sane.
#[tokio::test]
async fn oversized_key_sets_are_refused() {
    let (app, provider) = world("RS256", |_| {}).await;
    let key = |i: usize| json!({"kty": "oct", "kid": format!("k{i}"), "k": "AAAA"});
    provider.set_extra_jwks((0..64).map(key).collect());
    let b = Browser::new(&app.address);
    assert_eq!(
        b.sign_in("alice").await.error().as_deref(),
        Some("oidc_provider_unreachable")
    );
    // One key of 300 KB: over the byte bound.
    provider.set_extra_jwks(vec![
        json!({"kty": "oct", "kid": "big", "k": "A".repeat(300 * 1024)}),
    ]);
    let b = Browser::new(&app.address);
    assert_eq!(
        b.sign_in("alice").await.error().as_deref(),
        Some("oidc_provider_unreachable")
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sessions").await, 0);
    // A key no ID token may be verified with (a symmetric one: HS256 is never accepted) is
    // ignored, not fatal.
    provider.set_extra_jwks(vec![key(0)]);
    let b = Browser::new(&app.address);
    assert_eq!(b.sign_in("alice").await.location, "/#/list");
}
