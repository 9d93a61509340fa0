//! Renders many acts through the server's renderer and prints the process's resident memory,
//! to show that memory stays bounded across renders (typst's cache is evicted after each).
//!
//! `cargo run --release -p signaling --example act_render_rss -- 200`

use signaling::act::model::{Act, ActInputs};
use signaling::act::render::Renderer;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let (insp, state) = signaling::act::sample::sample("ru");
    let renderer = Renderer::new(1);
    let started = std::time::Instant::now();
    println!("renders\trss_kib\tms_per_render");
    for i in 1..=n {
        // A different head each time, so no two renders are the same document.
        let head = format!("{:064x}", i);
        let act = Act::build(&ActInputs {
            inspection: &insp,
            state: &state,
            head_seq: i as u64,
            head_hash: &head,
            recording: None,
            control_body: "Главное управление МЧС России по г. Москве",
            verify_url: format!("http://127.0.0.1:8080/review/#{}", insp.id),
            rate_url: format!("http://127.0.0.1:8080/rate/#i={}", insp.id),
            language: "ru",
            images: &std::collections::BTreeSet::new(),
            track: None,
        });
        let pdf = renderer.render(act, Vec::new()).await?;
        assert!(pdf.starts_with(b"%PDF-"));
        if i == 1 || i % 20 == 0 {
            println!(
                "{i}\t{}\t{:.0}",
                rss_kib(),
                started.elapsed().as_secs_f64() * 1000.0 / i as f64
            );
        }
    }
    Ok(())
}
