//! Short videos from the on-site phone: the container is recognised by its magic bytes, then
//! the real `ffprobe` demuxes the whole file before anything is kept. The duration is taken
//! from the packets, not the header: Chromium's MediaRecorder writes WebM without one.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{ApiError, ApiResult};

/// How long ffprobe may take over one upload (it only demuxes: seconds for the size limit).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInfo {
    /// `video/webm` or `video/mp4`.
    pub media_type: &'static str,
    /// Pixel width of the video stream.
    pub width: u32,
    /// Pixel height.
    pub height: u32,
    /// Span of the video packets, ms.
    pub duration_ms: i64,
}

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        code,
        message: message.into(),
    }
}

/// The container a body claims to be by its first bytes: WebM (EBML with the `webm` doc type)
/// or MP4 (an `ftyp` box whose brand is not an image format). `None` for anything else.
pub fn sniff_container(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        // The EBML header is short; its DocType is within the first few dozen bytes.
        let window = &head[..head.len().min(64)];
        if window.windows(4).any(|w| w == b"webm") {
            return Some("video/webm");
        }
        return None;
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        // HEIF/AVIF stills share the box layout; they are pictures, not videos.
        let brand = &head[8..12];
        if [b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"]
            .iter()
            .any(|b| brand == *b)
        {
            return None;
        }
        return Some("video/mp4");
    }
    None
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    #[serde(default)]
    packets: Vec<ProbePacket>,
}

#[derive(Deserialize)]
struct ProbeStream {
    codec_type: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
}

#[derive(Deserialize)]
struct ProbePacket {
    pts_time: Option<String>,
    duration_time: Option<String>,
}

/// Runs ffprobe over the whole file: it must demux without an error, hold a video stream with
/// a pixel size and at least one packet. The duration is the end of the last packet.
pub async fn probe(path: &std::path::Path, media_type: &'static str) -> ApiResult<VideoInfo> {
    let mut cmd = tokio::process::Command::new("ffprobe");
    // Any message at level `error` (a damaged packet, a cut-off cluster) refuses the upload.
    cmd.args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_type,width,height:packet=pts_time,duration_time",
        ])
        .args(["-of", "json"])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(PROBE_TIMEOUT, cmd.output())
        .await
        .map_err(|_| invalid("video_unreadable", "the video could not be read in time"))?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("ffprobe could not run: {e}")))?;
    let unreadable = || invalid("video_unreadable", "the video cannot be read");
    if !out.status.success() || !out.stderr.is_empty() {
        tracing::info!(stderr = %String::from_utf8_lossy(&out.stderr), "ffprobe refused an upload");
        return Err(unreadable());
    }
    let probe: Probe = serde_json::from_slice(&out.stdout).map_err(|_| unreadable())?;
    let stream = probe
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video"))
        .ok_or_else(|| invalid("video_unreadable", "the file holds no video stream"))?;
    let (Some(width), Some(height)) = (stream.width, stream.height) else {
        return Err(unreadable());
    };
    if width == 0 || height == 0 || width > 16_384 || height > 16_384 {
        return Err(unreadable());
    }
    let num = |s: &Option<String>| s.as_deref().and_then(|v| v.parse::<f64>().ok());
    let mut start = f64::INFINITY;
    let mut end = f64::NEG_INFINITY;
    for p in &probe.packets {
        let Some(pts) = num(&p.pts_time) else {
            continue;
        };
        start = start.min(pts);
        end = end.max(pts + num(&p.duration_time).unwrap_or(0.0));
    }
    if !(start.is_finite() && end.is_finite()) {
        return Err(invalid("video_unreadable", "the video has no frames"));
    }
    Ok(VideoInfo {
        media_type,
        width,
        height,
        duration_ms: ((end - start) * 1000.0).round().max(0.0) as i64,
    })
}

/// Checks a probed duration against the one the device claims and the configured limit.
///
/// The device measures start to stop on its clock. Its packets may span much less: a busy
/// phone starts encoding late and drops frames, and such a video is still the evidence it
/// recorded, so a shorter one is kept (with the probed length). Packets spanning more than the
/// recorder ran (a second or a fifth of the claim, whichever is larger, of slack) cannot come
/// from that recording: refused.
pub fn check_duration(probed_ms: i64, claimed_ms: i64, max_ms: i64) -> ApiResult<()> {
    if probed_ms > max_ms + 1000 || claimed_ms > max_ms + 1000 {
        return Err(invalid(
            "video_too_long",
            format!("videos are limited to {} s", max_ms / 1000),
        ));
    }
    let slack = (claimed_ms / 5).max(1000);
    if probed_ms - claimed_ms > slack {
        return Err(invalid(
            "video_duration_mismatch",
            format!("the video lasts {probed_ms} ms, longer than the {claimed_ms} ms recorded"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_by_magic() {
        let webm = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm";
        assert_eq!(sniff_container(webm), Some("video/webm"));
        let mkv = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska";
        assert_eq!(sniff_container(mkv), None);
        assert_eq!(
            sniff_container(b"\0\0\0\x18ftypisom\0\0\0\0"),
            Some("video/mp4")
        );
        assert_eq!(sniff_container(b"\0\0\0\x18ftypheic\0\0\0\0"), None);
        assert_eq!(sniff_container(b"not a video at all"), None);
    }

    #[test]
    fn durations() {
        let code = |r: ApiResult<()>| r.unwrap_err().status_and_code().1;
        assert!(check_duration(4800, 5000, 60_000).is_ok());
        // A phone that encoded late: shorter than it ran, still kept.
        assert!(check_duration(2000, 5000, 60_000).is_ok());
        assert!(check_duration(6000, 5000, 60_000).is_ok());
        assert_eq!(
            code(check_duration(6100, 5000, 60_000)),
            "video_duration_mismatch"
        );
        assert_eq!(
            code(check_duration(70_000, 70_000, 60_000)),
            "video_too_long"
        );
    }
}
