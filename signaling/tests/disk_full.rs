//! The recordings directory's disk full during a live inspection (issue 19, item 5), on a
//! tmpfs of the test's own (the tests run as root) mounted at `<data>/recordings`, the
//! database elsewhere. While it is full, checklist ops are still acknowledged (nothing
//! hangs) and the recording keeps what was stored; finishing gets its ack, the manifest
//! answers `recording_not_ready` while finalization cannot write; once space returns, the
//! finalization is retried by itself and the file plays, with what was stored before.

mod common;
mod phone;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{add_user, database_url, login, start, start_live, Live};
use phone::publish;
use serde_json::json;

/// A size-limited tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(path).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount");
        assert!(ok.success(), "mount a tmpfs (the tests run as root)");
        SmallDisk(path.to_owned())
    }

    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while let Ok(n) = f.write(&chunk) {
            if n == 0 {
                break;
            }
        }
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).expect("space returns");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_recordings_disk_hangs_nothing_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = SmallDisk::mount(&dir.path().join("recordings"), "16m");
    let db = database_url(dir.path()).await;
    let _guard = inspector_tests::PgDatabaseGuard::for_url(&db);
    let config = dir.path().join("inspector.toml");
    std::fs::write(&config, "").expect("config");
    let server = start(dir.path(), &db, &config).await;
    add_user(&db, "inspector1", "inspector");
    let insp = login(&server.base, "inspector1").await;
    let Live {
        id,
        business,
        mut ws,
        items,
    } = start_live(&insp).await;
    let phone = publish(&business, &id, (320, 240)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ack = ws
        .op(
            "m0",
            json!({"kind": "set_result", "item_id": items[0], "result": "violation"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let mark_ms = ack["server_ts"].as_i64().expect("server ts") / 1000;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // The disk fills up; the call and the checklist go on.
    disk.fill();
    let filled = Instant::now();
    for n in 1..4 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let t = Instant::now();
        let ack = ws
            .op(
                &format!("m{n}"),
                json!({"kind": "set_result", "item_id": items[n], "result": "compliant"}),
            )
            .await;
        assert_eq!(ack["type"], "ack", "an op while the disk is full: {ack}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "acked in {:?}",
            t.elapsed()
        );
    }
    let ack = ws.op("finish", json!({"kind": "finish"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    phone.stop.store(true, Ordering::Relaxed);
    let _ = phone.client.pc.close().await;
    let manifest_url = format!("/api/inspections/{id}/recording/manifest");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = insp.get(&manifest_url).await;
    assert_eq!(
        r.status, 409,
        "no manifest while the disk is full: {}",
        r.text
    );
    let code = r.body["error"]["code"]
        .as_str()
        .expect("a code")
        .to_string();
    println!(
        "manifest while full: {code}; full for {:?}",
        filled.elapsed()
    );

    // Space returns: the finalization is retried by itself.
    disk.free();
    let freed = Instant::now();
    let manifest = loop {
        let r = insp.get(&manifest_url).await;
        if r.status == 200 {
            break r.body;
        }
        assert!(
            freed.elapsed() < Duration::from_secs(20),
            "no manifest 20 s after space returned: {} {}",
            r.status,
            r.text
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!("manifest {:?} after space returned", freed.elapsed());
    // A journal closed while the disk was full may end in half a record (the OS took part
    // of the last flush): that tail is cut at the record boundary, never misread.
    println!("torn journals: {}", manifest["torn_journals"]);
    let file = dir
        .path()
        .join("recordings")
        .join(&id)
        .join(manifest["file"].as_str().expect("file"));
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_format", "-of", "json"])
        .arg(&file)
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let epoch_ms = manifest["epoch_micros"].as_i64().expect("epoch") / 1000;
    // The picture of the first mark, stored before the disk filled, is there.
    let (_, frame) = media_recorder::testsrc::frame_at(&file, mark_ms - epoch_ms)
        .expect("decode")
        .expect("a picture at the first mark");
    let captured = media_recorder::testsrc::read_barcode(&frame, mark_ms).expect("barcode");
    assert!(
        (captured - mark_ms).abs() <= 100,
        "mark {mark_ms}, picture {captured}"
    );
    drop(server);
}
