//! `inspector audit verify` (the real binary) against the act: the signed act prints the head
//! of the log it was formed from, so cutting the log's tail is detected once an act exists —
//! the signature events after that head (by the stored signatures no event names), and the
//! head itself.

use std::process::Command;

use inspector_tests::act::signed_bundle;
use inspector_tests::spawn_app;
use sqlx::Row;

const EXE: &str = env!("CARGO_BIN_EXE_inspector");

#[tokio::test]
async fn audit_verify_detects_a_cut_tail_against_the_act() {
    let app = spawn_app().await;
    let (f, _zip) = signed_bundle(&app).await;
    let id = f.id.clone();
    let data = app.data_dir.path().to_path_buf();
    let url = app.database_url.clone();
    let audit = || {
        let out = Command::new(EXE)
            .args(["audit", "verify", &id, "--data-dir"])
            .arg(&data)
            .args(["--database-url", &url])
            .output()
            .expect("audit runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, text) = audit();
    assert!(ok, "{text}");
    assert!(text.contains("the act's head (event"), "{text}");

    let seq_of = |kind: &'static str| {
        let (db, id) = (app.db.clone(), id.clone());
        async move {
            let r =
                sqlx::query("SELECT MIN(seq) FROM events WHERE inspection_id = $1 AND kind = $2")
                    .bind(id)
                    .bind(kind)
                    .fetch_one(&db)
                    .await
                    .expect("query");
            r.get::<i64, _>(0)
        }
    };
    let cut = |from: i64| {
        let (db, id) = (app.db.clone(), id.clone());
        async move {
            sqlx::query("DELETE FROM events WHERE inspection_id = $1 AND seq >= $2")
                .bind(id)
                .bind(from)
                .execute(&db)
                .await
                .expect("delete");
        }
    };
    // The signatures' events removed: the chain that is left is intact, but the stored
    // signatures are named by no event.
    cut(seq_of("act_signed").await).await;
    let (ok, text) = audit();
    assert!(!ok, "a cut tail fails the audit: {text}");
    assert!(
        text.contains("intact:"),
        "the chain itself is intact: {text}"
    );
    assert!(
        text.contains("BROKEN against the act") && text.contains("act_signed"),
        "{text}"
    );
    // Cut back to before the head the act prints.
    cut(seq_of("act_formed").await - 1).await;
    let (ok, text) = audit();
    assert!(!ok, "{text}");
    assert!(text.contains("the tail was truncated"), "{text}");
    app.stop().await;
}
