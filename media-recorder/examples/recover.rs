//! Finalizes every unfinished inspection under a recordings directory (what the server does
//! at start) and prints the manifests: `recover <recordings_dir>`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: recover <recordings_dir>")?;
    for (path, result) in media_recorder::finalize::recover_all(std::path::Path::new(&dir)) {
        match result {
            Ok(m) => println!("{}: {}", path.display(), serde_json::to_string_pretty(&m)?),
            Err(e) => println!("{}: {e}", path.display()),
        }
    }
    Ok(())
}
