//! The act (акт) of an inspection: a plain data model ([`model::Act`]) built from the finished
//! inspection and its event log, rendered to PDF/A-2b ([`render`]), signed by the official and
//! the business (detached CMS, [`crate::signing`]), and bundled with every piece of evidence
//! into one ZIP that can be checked offline ([`bundle`]).
//!
//! The PDF and the signatures are files named by their SHA-256 under `<data>/acts/<id>/`; the
//! log holds `act_formed`, `act_signed`, `act_refused` with those hashes, so the log says which
//! files count and a stray file (a crash between writing and committing) means nothing.

pub mod audit;
pub mod bundle;
pub mod http;
pub mod model;
pub mod render;

use std::io::Write;
use std::path::{Path, PathBuf};

use uuid::Uuid;

/// Where acts live and how they are rendered.
pub struct Acts {
    dir: PathBuf,
    /// The PDF renderer (bounded concurrency, off the async workers).
    pub renderer: render::Renderer,
    /// Several nodes with a remote object store: every act file is also kept there
    /// (`acts/<id>/<file>`), and a node that does not have one fetches it on first read.
    shared: Option<crate::blobs::BlobStore>,
}

impl Acts {
    /// Acts under `<data_dir>/acts`.
    pub fn new(data_dir: &Path) -> Acts {
        Acts {
            dir: data_dir.join("acts"),
            renderer: render::Renderer::new(1),
            shared: None,
        }
    }

    /// [`Acts::new`], with every act file also kept in `store` (several nodes).
    pub fn shared(data_dir: &Path, store: crate::blobs::BlobStore) -> Acts {
        Acts {
            shared: Some(store),
            ..Acts::new(data_dir)
        }
    }

    /// Writes an act file (`path` is [`Acts::pdf_path`] or [`Acts::signature_path`]) durably,
    /// and to the shared store when there is one, before the event naming it is committed.
    pub async fn keep(
        &self,
        inspection: Uuid,
        path: PathBuf,
        bytes: Vec<u8>,
    ) -> anyhow::Result<()> {
        let name = file_name(&path)?;
        let shared = bytes.clone();
        tokio::task::spawn_blocking(move || Acts::write_durably(&path, &bytes))
            .await
            .map_err(|e| anyhow::anyhow!(e))??;
        if let Some(store) = &self.shared {
            store
                .put_act_object(&format!("{inspection}/{name}"), shared.into())
                .await?;
        }
        Ok(())
    }

    /// Reads an act file; one another node wrote comes from the shared store (its name is its
    /// SHA-256, checked) and is kept locally from then on.
    pub async fn read(&self, inspection: Uuid, path: &Path) -> anyhow::Result<Vec<u8>> {
        match tokio::fs::read(path).await {
            Ok(b) => return Ok(b),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound || self.shared.is_none() => {
                return Err(anyhow::anyhow!("act file {}: {e}", path.display()))
            }
            Err(_) => {}
        }
        let name = file_name(path)?;
        let store = self.shared.as_ref().expect("checked above");
        let bytes = store
            .get_act_object(&format!("{inspection}/{name}"))
            .await?
            .ok_or_else(|| anyhow::anyhow!("act file {name} is in no store"))?
            .to_vec();
        let stem = name.split('.').next().unwrap_or_default();
        if sha256_hex(&bytes) != stem {
            anyhow::bail!("act file {name} in the store does not hash to its name");
        }
        let (p, b) = (path.to_path_buf(), bytes.clone());
        tokio::task::spawn_blocking(move || Acts::write_durably(&p, &b))
            .await
            .map_err(|e| anyhow::anyhow!(e))??;
        Ok(bytes)
    }

    /// Makes sure an act file is on this node's disk (see [`Acts::read`]).
    pub async fn ensure_local(&self, inspection: Uuid, path: &Path) -> anyhow::Result<()> {
        if self.shared.is_some() && !path.exists() {
            self.read(inspection, path).await?;
        }
        Ok(())
    }

    /// The directory of one inspection's acts.
    pub fn dir_of(&self, inspection: Uuid) -> PathBuf {
        self.dir.join(inspection.to_string())
    }

    /// The act PDF with this SHA-256.
    pub fn pdf_path(&self, inspection: Uuid, sha256: &str) -> PathBuf {
        self.dir_of(inspection).join(format!("{sha256}.pdf"))
    }

    /// The CMS signature with this SHA-256.
    pub fn signature_path(&self, inspection: Uuid, sha256: &str) -> PathBuf {
        self.dir_of(inspection).join(format!("{sha256}.p7s"))
    }

    /// Writes a file durably (temporary file, fsync, rename, fsync of the directory) before
    /// the event naming it is committed.
    pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension(format!("tmp-{}", Uuid::new_v4().simple()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    }
}

fn file_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(String::from)
        .ok_or_else(|| anyhow::anyhow!("act path without a file name"))
}

/// SHA-256, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A sample finished inspection, for tests and the memory measurement example.
#[doc(hidden)]
pub mod sample {
    use super::model::{Act, ActInputs};
    use crate::domain::{Kind, Mode, Status};
    use crate::inspections::{Business, Inspection, TemplateRef, UserRef};
    use crate::templates::Item;
    use checklist_sync::state::{ItemState, ParticipantState};
    use checklist_sync::{ItemResult, Role, State};

    fn item(id: &str, n: &str, q: &str, r: &str) -> Item {
        Item {
            id: id.into(),
            number: n.into(),
            question: q.into(),
            requirement: r.into(),
            answer_kind: "compliance".into(),
        }
    }

    pub fn sample(language: &str) -> (Inspection, State) {
        let id = uuid::Uuid::parse_str("0190f4d2-0000-7000-8000-000000000001").unwrap();
        let insp = Inspection {
            id,
            kind: Kind::Control,
            mode: Mode::Remote,
            title: "Плановая проверка пожарной безопасности".into(),
            status: Status::Finished,
            scheduled_at: chrono::DateTime::from_timestamp(1_796_000_000, 0).unwrap(),
            started_at: None,
            finished_at: None,
            inspector: UserRef {
                id: uuid::Uuid::nil(),
                display_name: "Петров Пётр Петрович".into(),
            },
            template: Some(TemplateRef {
                id: uuid::Uuid::nil(),
                title: "Пожарная безопасность".into(),
                version: 1,
                legal_basis: "ППР № 1479".into(),
            }),
            business: Business {
                name: "ООО «Ромашка»".into(),
                inn: crate::domain::Inn::parse("7707083893").expect("a valid INN"),
                address: "Москва, ул. Тверская, 1".into(),
                lat: Some(55.757),
                lon: Some(37.615),
            },
            language: language.into(),
            time_zone: "Europe/Moscow".into(),
            erknm_number: None,
            external_id: None,
            inspector_control_body: None,
            items: Some(vec![
                item("a", "1", "Назначено ли ответственное лицо?", "ППР, п. 4"),
                item("b", "2", "Свободны ли эвакуационные выходы?", "ППР, п. 27"),
                item("c", "3", "Есть ли огнетушители?", "ППР, п. 60"),
                item("d", "4", "Исправна ли сигнализация?", "ППР, п. 54"),
            ]),
        };
        let mut state = State::default();
        state.lifecycle.status = checklist_sync::state::Status::Finished;
        state.lifecycle.started_at = Some(1_796_000_000_000_000);
        state.lifecycle.finished_at = Some(1_796_001_800_000_000);
        let set = |r: ItemResult, v: Option<&str>| ItemState {
            result: Some(r),
            violation: v.map(str::to_string),
            result_ts: Some(1_796_000_600_000_000),
            ..Default::default()
        };
        state
            .items
            .insert("a".into(), set(ItemResult::Compliant, None));
        state.items.insert(
            "b".into(),
            set(
                ItemResult::Violation,
                Some("Эвакуационный выход загромождён коробками"),
            ),
        );
        state
            .items
            .insert("c".into(), set(ItemResult::NotApplicable, None));
        state.participants.insert(
            uuid::Uuid::from_u128(1),
            ParticipantState {
                role: Some(Role::Inspector),
                display_name: "Петров Пётр Петрович".into(),
                joined_at: Some(1_796_000_000_000_000),
                ..Default::default()
            },
        );
        state.participants.insert(
            uuid::Uuid::from_u128(2),
            ParticipantState {
                role: Some(Role::Business),
                display_name: "Сидорова Анна (ООО «Ромашка»)".into(),
                joined_at: Some(1_796_000_010_000_000),
                left_at: Some(1_796_001_790_000_000),
                ..Default::default()
            },
        );
        (insp, state)
    }

    pub fn sample_act(language: &str) -> Act {
        let (insp, state) = sample(language);
        Act::build(&ActInputs {
            inspection: &insp,
            state: &state,
            head_seq: 42,
            head_hash: &"ab".repeat(32),
            recording: None,
            control_body: "Главное управление МЧС России по г. Москве",
            verify_url: format!("http://127.0.0.1:8080/review/#{}", insp.id),
            rate_url: format!("http://127.0.0.1:8080/rate/#i={}", insp.id),
            language,
            images: &std::collections::BTreeSet::new(),
            track: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::render::render_pdf;
    use super::sample::sample_act;

    fn pdftotext(pdf: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("act.pdf");
        std::fs::write(&p, pdf).unwrap();
        let out = std::process::Command::new("pdftotext")
            .args(["-layout", p.to_str().unwrap(), "-"])
            .output()
            .expect("pdftotext (poppler-utils) is installed");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    fn tool(name: &str, args: &[&str], pdf: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("act.pdf");
        std::fs::write(&p, pdf).unwrap();
        let out = std::process::Command::new(name)
            .args(args)
            .arg(&p)
            .output()
            .expect("poppler-utils is installed");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn act_renders_to_pdfa_with_every_item_in_russian() {
        let act = sample_act("ru");
        let pdf = render_pdf(&act, &[]).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        // Deterministic: the same act gives the same bytes.
        assert_eq!(render_pdf(&act, &[]).unwrap(), pdf);
        let text = pdftotext(&pdf);
        // pdftotext -layout may break long cells; compare without line breaks and runs of spaces.
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for needle in [
            "АКТ",
            "контрольного (надзорного) мероприятия",
            "Главное управление МЧС России по г. Москве",
            "ООО «Ромашка»",
            "7707083893",
            "Назначено ли ответственное лицо?",
            "Свободны ли эвакуационные выходы?",
            "Есть ли огнетушители?",
            "Исправна ли сигнализация?",
            "Соответствует",
            "Нарушение",
            "Неприменимо",
            "Не заполнено",
            "Эвакуационный выход загромождён коробками",
            "Петров Пётр Петрович",
            "Сидорова Анна",
            "Видеозапись не велась",
        ] {
            assert!(flat.contains(needle), "{needle:?} not in the act:\n{text}");
        }
        assert!(text.contains(&"ab".repeat(32)), "the head hash is printed");
        // No installable PDF/A validator exists here (veraPDF is Java, not packaged); qpdf
        // checks the structure, poppler the fonts and metadata.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.pdf"), &pdf).unwrap();
        let q = std::process::Command::new("qpdf")
            .arg("--check")
            .arg(dir.path().join("a.pdf"))
            .output()
            .expect("qpdf is installed");
        assert!(
            q.status.success(),
            "qpdf --check: {}",
            String::from_utf8_lossy(&q.stdout)
        );
        // Embedded fonts, PDF/A identification and output intent.
        let fonts = tool("pdffonts", &[], &pdf);
        assert!(fonts.contains("PTSans"), "{fonts}");
        for line in fonts.lines().skip(2) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // name type encoding emb sub uni object ID: "emb" is the third from the end but two.
            assert!(
                cols.iter().rev().nth(4) == Some(&"yes"),
                "font not embedded: {line}"
            );
        }
        let meta = tool("pdfinfo", &["-meta"], &pdf);
        assert!(meta.contains("pdfaid:part") && meta.contains('2'), "{meta}");
        assert!(
            meta.contains("pdfaid:conformance") && meta.contains('B'),
            "{meta}"
        );
        let raw = String::from_utf8_lossy(&pdf);
        assert!(
            raw.contains("/OutputIntents"),
            "an output intent is present"
        );
        assert!(raw.contains("GTS_PDFA1"), "a PDF/A output intent");
        // The machine-readable head for `bundle verify` and `audit verify`.
        assert_eq!(
            super::bundle::pdf_keyword(&pdf, "head-hash").as_deref(),
            Some("ab".repeat(32).as_str())
        );
        assert_eq!(
            super::bundle::pdf_keyword(&pdf, "head-seq").as_deref(),
            Some("42")
        );
    }

    #[test]
    fn act_shows_stills_and_photos_as_pictures() {
        use super::model::{image_path, Act, ActInputs};
        use super::render::ActImage;
        use checklist_sync::proto::EvidenceKind;
        use checklist_sync::state::EvidenceEntry;
        // A real JPEG, as the deriver's still or a phone's photo would be.
        let dir = tempfile::tempdir().unwrap();
        let jpg = dir.path().join("still.jpg");
        let out = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=160x120",
                "-frames:v",
                "1",
            ])
            .arg(&jpg)
            .output()
            .expect("ffmpeg is installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let jpeg = std::fs::read(&jpg).unwrap();
        let sha = super::sha256_hex(&jpeg);
        let (insp, mut state) = super::sample::sample("ru");
        let entry = |kind, id: &str| EvidenceEntry {
            seq: 30,
            ts: 1_796_000_700_000_000,
            by: uuid::Uuid::nil(),
            evidence: checklist_sync::proto::Evidence {
                id: id.into(),
                kind,
                sha256: Some(sha.clone()),
                size: Some(jpeg.len() as u64),
                media_type: Some("image/jpeg".into()),
                media_ms: (kind == EvidenceKind::Still).then_some(605_000),
                at_micros: Some(1_796_000_605_000_000),
                ..crate::uploads::empty_evidence()
            },
        };
        let b = state.items.get_mut("b").unwrap();
        b.evidence.push(entry(EvidenceKind::Still, "s1"));
        b.evidence.push(entry(EvidenceKind::Photo, "p1"));
        let images = std::collections::BTreeSet::from([sha.clone()]);
        let act = Act::build(&ActInputs {
            inspection: &insp,
            state: &state,
            head_seq: 42,
            head_hash: &"ab".repeat(32),
            recording: None,
            control_body: "Главное управление МЧС России по г. Москве",
            verify_url: "http://127.0.0.1/review/".into(),
            rate_url: "http://127.0.0.1/rate/".into(),
            language: "ru",
            images: &images,
            track: None,
        });
        let pics = [ActImage {
            path: image_path(&sha, Some("image/jpeg")),
            bytes: jpeg.clone(),
        }];
        let pdf = render_pdf(&act, &pics).unwrap();
        assert_eq!(render_pdf(&act, &pics).unwrap(), pdf, "deterministic");
        let list = tool("pdfimages", &["-list"], &pdf);
        // Header lines, then one line per image placed: the still and the photo (the same
        // bytes here), each 160×120.
        let placed: Vec<&str> = list
            .lines()
            .skip(2)
            .filter(|l| l.split_whitespace().nth(3) == Some("160"))
            .collect();
        assert_eq!(placed.len(), 2, "{list}");
        let flat: String = pdftotext(&pdf)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for needle in ["кадр видеозаписи", "фото", "0:10:05", &sha[..16]] {
            assert!(flat.contains(needle), "{needle:?} not in the act:\n{flat}");
        }
    }

    #[test]
    fn act_in_english() {
        let pdf = render_pdf(&sample_act("en"), &[]).unwrap();
        let text = pdftotext(&pdf);
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for needle in [
            "ACT",
            "of a control (supervisory) event",
            "Compliant",
            "Violation",
            "Not applicable",
            "Not answered",
        ] {
            assert!(flat.contains(needle), "{needle:?} not in:\n{text}");
        }
    }
}
