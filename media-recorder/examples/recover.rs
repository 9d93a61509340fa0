//! What the server does with recordings at start, by hand: seals every unfinished inspection
//! directory under a recordings directory (torn journal tails cut, nothing published) and
//! lists them; with `--finish`, also finalizes each one from its journals and mark log (for an
//! inspection known to be over) and prints the manifests.
//!
//! `recover <recordings_dir> [--finish]`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: recover <recordings_dir> [--finish]")?;
    let finish = args.next().as_deref() == Some("--finish");
    for u in media_recorder::recover::seal_all(std::path::Path::new(&dir))? {
        println!(
            "{}: {} journals, {} tails cut, {} set aside, {} bytes cut off the mark log",
            u.dir.display(),
            u.journals,
            u.cut.len(),
            u.corrupt.len(),
            u.marks_cut
        );
        if finish {
            let marks = media_recorder::chapters::read_marks(&u.dir)?;
            match media_recorder::finalize::finalize_inspection(&u.dir, &marks) {
                Ok(m) => println!("{}", serde_json::to_string_pretty(&m)?),
                Err(e) => println!("{}: {e}", u.dir.display()),
            }
        }
    }
    Ok(())
}
