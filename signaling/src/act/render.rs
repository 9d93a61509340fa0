//! Renders an [`Act`] to PDF/A-2b with typst used as a library: a `World` of embedded files
//! only (the template, the act's data as `act.json`, the QR code, thumbnails, the fonts), so
//! rendering never touches the network or the file system. Typst memoizes across runs; the
//! cache is evicted after every render so that memory stays bounded over many acts.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;
use typst::diag::{FileError, FileResult, Severity};
use typst::foundations::{Bytes, Datetime, Duration, Smart};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};

use super::model::Act;

const TEMPLATE: &str = include_str!("act.typ");

/// PT Sans and PT Mono (ParaType, see signaling/fonts/LICENSE-ParaType.txt): Cyrillic and Latin.
const FONTS: [&[u8]; 3] = [
    include_bytes!("../../fonts/PTS55F.ttf"),
    include_bytes!("../../fonts/PTS75F.ttf"),
    include_bytes!("../../fonts/PTM55F.ttf"),
];

static LIBRARY: LazyLock<LazyHash<Library>> = LazyLock::new(|| LazyHash::new(Library::default()));

static FONT_SET: LazyLock<(LazyHash<FontBook>, Vec<Font>)> = LazyLock::new(|| {
    let fonts: Vec<Font> = FONTS
        .iter()
        .flat_map(|data| Font::iter(Bytes::new(*data)))
        .collect();
    (LazyHash::new(FontBook::from_fonts(&fonts)), fonts)
});

fn file_id(path: &str) -> FileId {
    // The paths are literals of this module, always valid.
    let vpath = VirtualPath::new(path).expect("a valid virtual path");
    RootedPath::new(VirtualRoot::Project, vpath).intern()
}

/// An image embedded into the act (a thumbnail of a photo or still).
#[derive(Debug, Clone)]
pub struct ActImage {
    /// Path the act refers to (`img/N.png`).
    pub path: String,
    /// PNG or JPEG bytes.
    pub bytes: Vec<u8>,
}

struct ActWorld {
    main: Source,
    files: HashMap<FileId, Bytes>,
}

impl World for ActWorld {
    fn library(&self) -> &LazyHash<Library> {
        &LIBRARY
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &FONT_SET.0
    }

    fn main(&self) -> FileId {
        self.main.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() {
            Ok(self.main.clone())
        } else {
            Err(FileError::NotSource)
        }
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        if id == self.main.id() {
            return Ok(Bytes::from_string(self.main.clone()));
        }
        self.files
            .get(&id)
            .cloned()
            .ok_or_else(|| FileError::NotFound(id.vpath().get_with_slash().into()))
    }

    fn font(&self, index: usize) -> Option<Font> {
        FONT_SET.1.get(index).cloned()
    }

    fn today(&self, _offset: Option<Duration>) -> Option<Datetime> {
        // The act takes its dates from the log, never from the clock.
        None
    }
}

/// Why an act could not be rendered (a bug in the template or data, never the caller's).
#[derive(Debug, thiserror::Error)]
#[error("act rendering failed: {0}")]
pub struct RenderError(pub String);

/// The QR code of `url` as SVG.
pub fn qr_svg(url: &str) -> Result<String, RenderError> {
    qrcode::QrCode::new(url.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .map_err(|e| RenderError(format!("QR code: {e}")))
}

/// Renders the act to PDF/A-2b bytes. Deterministic: the same act gives the same bytes.
pub fn render_pdf(act: &Act, images: &[ActImage]) -> Result<Vec<u8>, RenderError> {
    let data = serde_json::to_vec(act).map_err(|e| RenderError(e.to_string()))?;
    let mut files = HashMap::new();
    files.insert(file_id("/act.json"), Bytes::new(data));
    files.insert(
        file_id("/qr.svg"),
        Bytes::new(qr_svg(&act.verify_url)?.into_bytes()),
    );
    files.insert(
        file_id("/rate-qr.svg"),
        Bytes::new(qr_svg(&act.rate_url)?.into_bytes()),
    );
    for img in images {
        let path = format!("/{}", img.path.trim_start_matches('/'));
        let id = RootedPath::new(
            VirtualRoot::Project,
            VirtualPath::new(&path).map_err(|e| RenderError(format!("{path}: {e:?}")))?,
        )
        .intern();
        files.insert(id, Bytes::new(img.bytes.clone()));
    }
    let world = ActWorld {
        main: Source::new(file_id("/main.typ"), TEMPLATE.to_string()),
        files,
    };
    let result = typst::compile::<typst_layout::PagedDocument>(&world);
    let doc = result.output.map_err(|diags| {
        RenderError(
            diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .map(|d| d.message.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let d = act.date;
    let timestamp = Datetime::from_ymd_hms(
        d.year,
        d.month as u8,
        d.day as u8,
        d.hour as u8,
        d.minute as u8,
        d.second as u8,
    )
    .and_then(|dt| typst_pdf::Timestamp::new_local(dt, d.offset_minutes));
    let options = typst_pdf::PdfOptions {
        // A stable document id from the inspection and the head the act was formed from.
        ident: Smart::Custom(format!("{}:{}", act.inspection_id, act.log.head_hash)),
        creator: Smart::Custom(Some("Inspector".into())),
        timestamp,
        standards: typst_pdf::PdfStandards::new(&[typst_pdf::PdfStandard::A_2b])
            .map_err(|e| RenderError(format!("{e:?}")))?,
        ..Default::default()
    };
    let pdf = typst_pdf::pdf(&doc, &options).map_err(|diags| {
        RenderError(
            diags
                .iter()
                .map(|d| d.message.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    });
    pdf
}

/// Compiles any typst `template` over embedded `files` (data as JSON, pictures) to PDF/A-2b:
/// the act's renderer for other documents of the same kind (the prescription).
pub fn render_document(
    template: &str,
    files: Vec<(String, Vec<u8>)>,
    ident: String,
    timestamp: Option<typst_pdf::Timestamp>,
) -> Result<Vec<u8>, RenderError> {
    let mut map = HashMap::new();
    for (path, bytes) in files {
        let path = format!("/{}", path.trim_start_matches('/'));
        let id = RootedPath::new(
            VirtualRoot::Project,
            VirtualPath::new(&path).map_err(|e| RenderError(format!("{path}: {e:?}")))?,
        )
        .intern();
        map.insert(id, Bytes::new(bytes));
    }
    let world = ActWorld {
        main: Source::new(file_id("/main.typ"), template.to_string()),
        files: map,
    };
    let doc = typst::compile::<typst_layout::PagedDocument>(&world)
        .output
        .map_err(|diags| {
            RenderError(
                diags
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .map(|d| d.message.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
    let options = typst_pdf::PdfOptions {
        ident: Smart::Custom(ident),
        creator: Smart::Custom(Some("Inspector".into())),
        timestamp,
        standards: typst_pdf::PdfStandards::new(&[typst_pdf::PdfStandard::A_2b])
            .map_err(|e| RenderError(format!("{e:?}")))?,
        ..Default::default()
    };
    typst_pdf::pdf(&doc, &options).map_err(|diags| {
        RenderError(
            diags
                .iter()
                .map(|d| d.message.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// Renders acts off the async workers, a bounded number at a time, evicting typst's caches
/// after each so that memory does not grow with the number of acts rendered.
#[derive(Clone)]
pub struct Renderer {
    permits: Arc<Semaphore>,
}

impl Renderer {
    /// At most `concurrency` renders at once (each takes one blocking thread and some tens
    /// of MB while it runs).
    pub fn new(concurrency: usize) -> Renderer {
        Renderer {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Runs one render job (any document) under the same bounds as acts.
    pub async fn run<F>(&self, job: F) -> Result<Vec<u8>, RenderError>
    where
        F: FnOnce() -> Result<Vec<u8>, RenderError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| RenderError("renderer closed".into()))?;
        tokio::task::spawn_blocking(move || {
            let out = job();
            typst::comemo::evict(0);
            out
        })
        .await
        .map_err(|e| RenderError(format!("render task: {e}")))?
    }

    /// Renders one act.
    pub async fn render(&self, act: Act, images: Vec<ActImage>) -> Result<Vec<u8>, RenderError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| RenderError("renderer closed".into()))?;
        tokio::task::spawn_blocking(move || {
            let out = render_pdf(&act, &images);
            typst::comemo::evict(0);
            out
        })
        .await
        .map_err(|e| RenderError(format!("render task: {e}")))?
    }
}
