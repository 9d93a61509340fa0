//! Test pictures made by the real `ffmpeg` command-line tool (Debian's `ffmpeg` package).

use std::process::Command;

/// One `w`×`h` picture of ffmpeg's test pattern as `jpg`, `png` or `webp` bytes. `noise`
/// (0–100) adds grain, which makes a JPEG as large as a phone camera's.
pub fn picture(format: &str, w: u32, h: u32, noise: u32) -> Vec<u8> {
    let codec = match format {
        "jpg" => "mjpeg",
        "png" => "png",
        "webp" => "libwebp",
        other => panic!("no test picture format {other}"),
    };
    let mut filter = String::from("format=yuv420p");
    if noise > 0 {
        filter = format!("noise=alls={noise}:allf=t,{filter}");
    }
    if format == "png" {
        filter = filter.replace("yuv420p", "rgb24");
    }
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={w}x{h}"))
        .args(["-vf", &filter, "-frames:v", "1", "-q:v", "4", "-c:v", codec])
        .args(["-f", "image2pipe", "pipe:1"])
        .output()
        .expect("ffmpeg runs (install the ffmpeg package)");
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
