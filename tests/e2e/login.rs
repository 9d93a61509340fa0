//! Issue 10, item 5: login lockout and throttle races. Before, five anonymous wrong passwords
//! locked any user for 15 minutes even for the right password from elsewhere, behind a proxy
//! one address locked out everybody, and 40 concurrent wrong passwords got 35 checked against
//! a limit of 5. Now failures count per (user, address), per address, and per user only for
//! browsers that never logged in as that user; attempts are reserved atomically before the
//! hash; `X-Forwarded-For` counts only from a configured trusted proxy.

use inspector_tests::{spawn_app, spawn_app_with, Client, Role, TestApp};
use serde_json::json;

const RIGHT: &str = "the right password";

async fn login(c: &Client, password: &str, from: Option<&str>) -> (u16, String) {
    let body = json!({"username": "alice", "password": password});
    let r = match from {
        Some(ip) => {
            c.post_json_with("/api/auth/login", &body, &[("x-forwarded-for", ip)])
                .await
        }
        None => c.post_json("/api/auth/login", &body).await,
    };
    (r.status, r.code().to_string())
}

/// Behind a reverse proxy on this machine.
async fn behind_proxy() -> TestApp {
    let app = spawn_app_with(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    app.create_user("alice", RIGHT, Role::Inspector).await;
    app
}

#[tokio::test]
async fn hammering_a_username_from_one_address_does_not_lock_out_its_owner() {
    let app = behind_proxy().await;
    let attacker = app.anonymous();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(login(&attacker, "guess", Some("203.0.113.7")).await.0);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429, 429, 429]);
    // Even the right password is refused from the attacker's address…
    assert_eq!(
        login(&attacker, RIGHT, Some("203.0.113.7")).await,
        (429, "too_many_attempts".into())
    );
    // …but the owner, elsewhere, logs in at once.
    let owner = app.anonymous();
    assert_eq!(login(&owner, RIGHT, Some("198.51.100.2")).await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn an_attack_from_many_addresses_does_not_lock_out_known_browsers() {
    let app = behind_proxy().await;
    // The owner has logged in from this browser before (it holds a device cookie).
    let owner = app.anonymous();
    assert_eq!(login(&owner, RIGHT, Some("198.51.100.2")).await.0, 200);
    // The attacker spreads 25 guesses over 25 addresses: no address reaches its limit, the
    // user's limit for new browsers (20) does.
    let attacker = app.anonymous();
    let mut statuses = Vec::new();
    for i in 0..25 {
        let ip = format!("203.0.113.{}", i + 1);
        statuses.push(login(&attacker, "guess", Some(&ip)).await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 20);
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    // A new browser is locked out for now, even with the right password…
    assert_eq!(
        login(&app.anonymous(), RIGHT, Some("192.0.2.10")).await.0,
        429
    );
    // …the owner's known browser is not, from wherever it comes.
    assert_eq!(login(&owner, RIGHT, Some("192.0.2.99")).await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn forty_concurrent_wrong_passwords_check_at_most_the_limit() {
    let app = spawn_app().await;
    app.create_user("alice", RIGHT, Role::Inspector).await;
    let clients: Vec<Client> = (0..40).map(|_| app.anonymous()).collect();
    let answers =
        futures_util::future::join_all(clients.iter().map(|c| login(c, "guess", None))).await;
    let checked = answers.iter().filter(|(s, _)| *s == 401).count();
    let refused = answers
        .iter()
        .filter(|a| **a == (429, "too_many_attempts".to_string()))
        .count();
    // Exactly the limit got their password hashed; everything else was refused unchecked.
    assert_eq!((checked, refused), (5, 35), "{answers:?}");
    app.stop().await;
}

#[tokio::test]
async fn forwarded_for_is_ignored_unless_it_comes_from_a_trusted_proxy() {
    // No proxy configured, and a proxy configured that is not the one connecting.
    let apps = [
        spawn_app().await,
        spawn_app_with(|c| c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]).await,
    ];
    for app in apps {
        app.create_user("alice", RIGHT, Role::Inspector).await;
        let c = app.anonymous();
        for i in 0..5 {
            // Claiming a new address each time gains nothing.
            let ip = format!("203.0.113.{i}");
            assert_eq!(login(&c, "guess", Some(&ip)).await.0, 401);
        }
        assert_eq!(login(&c, RIGHT, Some("198.51.100.2")).await.0, 429);
        app.stop().await;
    }
}
