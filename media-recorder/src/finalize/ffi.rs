//! Everything that touches FFmpeg's C structures: the codec parameters of a copied stream
//! and the muxer output through a writer thread. The rest of finalization uses safe
//! ffmpeg-next calls only.
//!
//! Muxer output through a writer thread: libavformat's writes are copied into buffers that a
//! second thread writes at their offsets (pwrite), so muxing (CPU) and writing back to disk
//! (IO) overlap instead of taking turns.

use std::ffi::{c_int, c_void, CString};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use ffmpeg_next as ffmpeg;
use ffmpeg_next::ffi;

use super::FinalizeError;
use crate::depacketize::Codec;

/// Codec parameters of an output stream: what the container needs to know about a codec
/// whose packets are copied, never decoded.
pub(super) fn codec_parameters(
    codec: Codec,
    size: Option<(u32, u32)>,
    extradata: &[u8],
) -> Result<ffmpeg::codec::Parameters, FinalizeError> {
    let mut par = ffmpeg::codec::Parameters::new();
    let extradata: Vec<u8> = match codec {
        Codec::Opus => opus_head(2),
        Codec::H264 => extradata.to_vec(),
        Codec::Vp8 => Vec::new(),
    };
    // SAFETY: `par` owns a valid AVCodecParameters allocated by avcodec_parameters_alloc; we
    // only set plain fields, and extradata is allocated with av_mallocz (padding included) so
    // avcodec_parameters_free can release it.
    unsafe {
        let p = par.as_mut_ptr();
        match codec {
            Codec::Vp8 | Codec::H264 => {
                (*p).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
                (*p).codec_id = if codec == Codec::Vp8 {
                    ffi::AVCodecID::AV_CODEC_ID_VP8
                } else {
                    ffi::AVCodecID::AV_CODEC_ID_H264
                };
                let (w, h) = size.unwrap_or((0, 0));
                (*p).width = w as i32;
                (*p).height = h as i32;
                (*p).format = ffi::AVPixelFormat::AV_PIX_FMT_YUV420P as i32;
            }
            Codec::Opus => {
                (*p).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_AUDIO;
                (*p).codec_id = ffi::AVCodecID::AV_CODEC_ID_OPUS;
                (*p).sample_rate = 48_000;
                ffi::av_channel_layout_default(&mut (*p).ch_layout, 2);
                // Opus decoders need 80 ms of pre-roll after a seek.
                (*p).seek_preroll = 3840;
            }
        }
        if !extradata.is_empty() {
            let pad = ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
            let buf = ffi::av_mallocz(extradata.len() + pad) as *mut u8;
            if buf.is_null() {
                return Err(FinalizeError::Mux("out of memory".into()));
            }
            std::ptr::copy_nonoverlapping(extradata.as_ptr(), buf, extradata.len());
            (*p).extradata = buf;
            (*p).extradata_size = extradata.len() as i32;
        }
    }
    Ok(par)
}

/// OpusHead identification header (RFC 7845) as Matroska/MP4 codec private data. WebRTC
/// Opus has no pre-skip, so it is 0 and audio stays aligned with video.
fn opus_head(channels: u8) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(channels);
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

const BUFFER_SIZE: usize = 1 << 20;

struct Sink {
    tx: Option<SyncSender<(u64, Vec<u8>)>>,
    pos: i64,
    size: i64,
}

/// The writer side of a muxer output; see [`open`].
struct Writer {
    sink: Box<Sink>,
    thread: Option<JoinHandle<io::Result<File>>>,
}

/// A muxer whose output goes through a writer thread. Dropping it (error paths) frees
/// the custom I/O context before the muxer and the writer, in that order.
pub struct Muxer {
    octx: ffmpeg::format::context::Output,
    writer: Option<Writer>,
    path: std::path::PathBuf,
}

impl std::ops::Deref for Muxer {
    type Target = ffmpeg::format::context::Output;
    fn deref(&self) -> &Self::Target {
        &self.octx
    }
}

impl std::ops::DerefMut for Muxer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.octx
    }
}

impl Drop for Muxer {
    fn drop(&mut self) {
        // Only the custom I/O context needs detaching; a plain muxer closes its own file.
        if self.writer.is_some() {
            detach(&mut self.octx);
        }
    }
}

unsafe extern "C" fn write_packet(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    // SAFETY: opaque is the Box<Sink> owned by Writer, which outlives the AVIOContext
    // (the context is freed in `finish` or `Drop` before the box); libavformat calls this
    // from the muxing thread only, so the &mut is unique. buf holds `size` bytes.
    let sink = unsafe { &mut *(opaque as *mut Sink) };
    let data = unsafe { std::slice::from_raw_parts(buf, size.max(0) as usize) }.to_vec();
    let Some(tx) = sink.tx.as_ref() else {
        return ffi::AVERROR(ffi::EIO);
    };
    if tx.send((sink.pos as u64, data)).is_err() {
        return ffi::AVERROR(ffi::EIO);
    }
    sink.pos += size as i64;
    sink.size = sink.size.max(sink.pos);
    size
}

unsafe extern "C" fn seek(opaque: *mut c_void, offset: i64, whence: c_int) -> i64 {
    // SAFETY: as in write_packet.
    let sink = unsafe { &mut *(opaque as *mut Sink) };
    let whence = whence & !ffi::AVSEEK_FORCE;
    let target = match whence {
        ffi::AVSEEK_SIZE => return sink.size,
        0 => offset,
        1 => sink.pos + offset,
        2 => sink.size + offset,
        _ => return ffi::AVERROR(ffi::EINVAL) as i64,
    };
    if target < 0 {
        return ffi::AVERROR(ffi::EINVAL) as i64;
    }
    sink.pos = target;
    target
}

/// Creates a muxer for `format` writing to `path` through a writer thread.
pub fn open(path: &Path, format: &str) -> Result<Muxer, FinalizeError> {
    let file = File::create(path)?;
    let (tx, rx) = sync_channel::<(u64, Vec<u8>)>(64);
    let thread = std::thread::spawn(move || -> io::Result<File> {
        for (at, data) in rx {
            file.write_all_at(&data, at)?;
        }
        Ok(file)
    });
    let mut writer = Writer {
        sink: Box::new(Sink {
            tx: Some(tx),
            pos: 0,
            size: 0,
        }),
        thread: Some(thread),
    };
    let format = CString::new(format).map_err(|e| FinalizeError::Mux(e.to_string()))?;
    // SAFETY: plain libavformat allocation calls; every pointer is checked before use.
    // The AVIOContext gets a buffer from av_malloc (libavformat may reallocate it) and the
    // Sink box as opaque; both are released in `detach` before the Writer is dropped.
    unsafe {
        let mut ctx: *mut ffi::AVFormatContext = std::ptr::null_mut();
        let ret = ffi::avformat_alloc_output_context2(
            &mut ctx,
            std::ptr::null(),
            format.as_ptr(),
            std::ptr::null(),
        );
        if ret < 0 || ctx.is_null() {
            return Err(ffmpeg::Error::from(ret).into());
        }
        let buffer = ffi::av_malloc(BUFFER_SIZE) as *mut u8;
        let opaque = &mut *writer.sink as *mut Sink as *mut c_void;
        let pb = ffi::avio_alloc_context(
            buffer,
            BUFFER_SIZE as c_int,
            1,
            opaque,
            None,
            Some(write_packet),
            Some(seek),
        );
        if buffer.is_null() || pb.is_null() {
            ffi::avformat_free_context(ctx);
            return Err(FinalizeError::Mux("out of memory".into()));
        }
        (*pb).seekable = ffi::AVIO_SEEKABLE_NORMAL as c_int;
        (*ctx).pb = pb;
        (*ctx).flags |= ffi::AVFMT_FLAG_CUSTOM_IO;
        Ok(Muxer {
            octx: ffmpeg::format::context::Output::wrap(ctx),
            writer: Some(writer),
            path: path.to_owned(),
        })
    }
}

impl Muxer {
    /// Wraps a muxer that writes its file itself.
    pub fn plain(octx: ffmpeg::format::context::Output, path: &Path) -> Self {
        Self {
            octx,
            writer: None,
            path: path.to_owned(),
        }
    }

    /// Frees the I/O context (after `write_trailer` flushed it), waits for the writer
    /// thread and returns the written file.
    pub fn finish(mut self) -> Result<File, FinalizeError> {
        if self.writer.is_none() {
            // A plain muxer: dropping it closes its file, which is then reopened.
            let path = self.path.clone();
            drop(self);
            return Ok(File::options().read(true).write(true).open(path)?);
        }
        detach(&mut self.octx);
        let Some(mut writer) = self.writer.take() else {
            return Err(FinalizeError::Mux("writer already finished".into()));
        };
        writer.sink.tx = None;
        match writer.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => Ok(result?),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Err(FinalizeError::Mux("writer already finished".into())),
        }
    }
}

/// Flushes and frees the custom I/O context, so dropping `octx` does not close it as a
/// file. Must run before the owning [`Writer`] is dropped.
fn detach(octx: &mut ffmpeg::format::context::Output) {
    // SAFETY: pb was created by `open` with avio_alloc_context; it is flushed, its buffer
    // freed with av_freep and the context with avio_context_free, then the pointer is
    // cleared so ffmpeg-next's destructor sees no I/O context (avio_close(NULL) is a no-op).
    unsafe {
        let ctx = octx.as_mut_ptr();
        let mut pb = (*ctx).pb;
        if !pb.is_null() {
            ffi::avio_flush(pb);
            ffi::av_freep(&mut (*pb).buffer as *mut *mut u8 as *mut c_void);
            ffi::avio_context_free(&mut pb);
            (*ctx).pb = std::ptr::null_mut();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Error paths: stop the thread; the partial file is removed by the caller.
        self.sink.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
