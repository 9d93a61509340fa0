//! The evidence bundle: one ZIP per inspection with everything needed to check the act
//! offline, and [`verify`] (`inspector bundle verify FILE.zip`), which checks every hash, the
//! hash chain against the head the act prints, and every signature, naming the first thing
//! that does not match.
//!
//! Layout: `act.pdf`, `signatures/<role>.p7s`, `certificates/<role>.pem`, `ca.pem`,
//! `recording/<file>`, `recording/recording.vtt`, `recording/manifest.json`,
//! `evidence/<sha256>.<ext>` (every photo, clip and still the log names), `events.jsonl`,
//! `manifest.json` (every file with its SHA-256 and size), `SHA256SUMS`, `VERIFY.md`.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::Path;

use checklist_sync::SignerRole;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

use super::sha256_hex;
use crate::error::{ApiError, ApiResult};
use crate::inspections::Inspection;
use crate::signing::{ca, cms};
use crate::AppState;

/// The bundle format named in `manifest.json`.
pub const FORMAT: &str = "inspector-bundle/1";

/// One file of the bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    /// Path inside the ZIP.
    pub path: String,
    /// SHA-256, hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleManifest {
    /// [`FORMAT`].
    pub format: String,
    /// The inspection.
    pub inspection_id: String,
    /// SHA-256 of `act.pdf` (as `act_formed` records it).
    pub act_sha256: String,
    /// The head the act was formed from.
    pub act_head_seq: u64,
    /// Its hash (printed in the act).
    pub act_head_hash: String,
    /// Events in `events.jsonl`.
    pub events: u64,
    /// Hash of the last of them.
    pub log_head_hash: String,
    /// Signatures: role → file.
    pub signatures: BTreeMap<String, String>,
    /// The recording file, if any.
    pub recording: Option<String>,
    /// The evidence files, one per blob the log names (photos, clips, stills).
    #[serde(default)]
    pub evidence: Vec<BundleEvidence>,
    /// Every other file with its hash.
    pub files: Vec<FileEntry>,
}

/// A piece of evidence in the bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleEvidence {
    /// Path inside the ZIP.
    pub path: String,
    /// `photo`, `clip`, `still`, …
    pub kind: String,
    /// The checklist item (absent for a free-form finding's evidence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    /// The free-form finding's seq (absent for an item's evidence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding_seq: Option<u64>,
    /// The `attach_evidence` (or, for a still of the phone's camera, `frame`) event that
    /// names it.
    pub seq: u64,
}

/// Where a blob the log names goes in the bundle.
pub fn evidence_path(sha256: &str, media_type: Option<&str>) -> String {
    format!(
        "evidence/{sha256}.{}",
        crate::uploads::extension(media_type.unwrap_or_default())
    )
}

/// Reads a blob's byte stream from a blocking thread (the ZIP writer is synchronous).
struct BlockingStream {
    rt: tokio::runtime::Handle,
    stream: futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
}

impl Read for BlockingStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use futures_util::StreamExt;
        while self.chunk.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                Some(c) => self.chunk = c?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

struct Writer<W: Write + Seek> {
    zip: zip::ZipWriter<W>,
    files: Vec<FileEntry>,
}

impl<W: Write + Seek> Writer<W> {
    fn add(&mut self, path: &str, bytes: &[u8], compress: bool) -> std::io::Result<()> {
        self.add_reader(path, &mut &bytes[..], compress)
    }

    fn add_reader(&mut self, path: &str, r: &mut dyn Read, compress: bool) -> std::io::Result<()> {
        let opts = SimpleFileOptions::default()
            .compression_method(if compress {
                zip::CompressionMethod::Deflated
            } else {
                zip::CompressionMethod::Stored
            })
            // Fixed times keep the archive's bytes a function of its content.
            .last_modified_time(zip::DateTime::default())
            .large_file(true);
        self.zip
            .start_file(path, opts)
            .map_err(std::io::Error::other)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            self.zip.write_all(&buf[..n])?;
            size += n as u64;
        }
        self.files.push(FileEntry {
            path: path.to_string(),
            sha256: hex::encode(hasher.finalize()),
            size,
        });
        Ok(())
    }
}

fn verify_md(m: &BundleManifest) -> String {
    let mut s = String::new();
    s.push_str("# Проверка пакета доказательств / Verifying this evidence bundle\n\n");
    s.push_str(&format!(
        "Inspection `{}`. Act SHA-256 `{}`, formed from event {} with hash `{}`.\n\n",
        m.inspection_id, m.act_sha256, m.act_head_seq, m.act_head_hash
    ));
    s.push_str(
        "Every command below needs only `sha256sum` and `openssl`; run them in the directory \
         where this ZIP was unpacked. Each must succeed (exit status 0).\n\n\
         Все команды ниже требуют только `sha256sum` и `openssl`; выполните их в каталоге, куда \
         распакован архив. Каждая должна завершиться успешно.\n\n",
    );
    s.push_str(
        "## 1. Files are intact / Файлы не изменены\n\n```sh\nsha256sum -c SHA256SUMS\n```\n\n",
    );
    s.push_str("## 2. The act is the one the log recorded / Акт — тот, что записан в журнал\n\n");
    s.push_str(&format!(
        "```sh\necho \"{}  act.pdf\" | sha256sum -c -\ngrep -F '\"kind\":\"act_formed\"' events.jsonl | grep -F '{}'\n```\n\n",
        m.act_sha256, m.act_sha256
    ));
    if !m.evidence.is_empty() {
        s.push_str(
            "## 2a. Evidence files are the ones the log names / Фото, фрагменты и кадры — те, что \
             названы в журнале\n\n\
             Each file in `evidence/` is named by its SHA-256, and the `attach_evidence` (or `frame`) event \
             naming that hash is in `events.jsonl`:\n\n\
             ```sh\nfor f in evidence/*; do n=$(basename \"$f\"); h=${n%.*}; \
             echo \"$h  $f\" | sha256sum -c - && grep -qF \"\\\"sha256\\\":\\\"$h\\\"\" events.jsonl || exit 1; done\n```\n\n",
        );
    }
    s.push_str("## 3. Signatures / Подписи\n\n");
    if m.signatures.is_empty() {
        s.push_str("The act has not been signed.\n\n");
    }
    for (role, file) in &m.signatures {
        s.push_str(&format!(
            "{role}:\n\n```sh\nopenssl cms -verify -binary -inform DER -in {file} -content act.pdf -CAfile ca.pem -out /dev/null\n\
             openssl x509 -in certificates/{role}.pem -noout -subject -issuer -dates -fingerprint -sha256\n```\n\n"
        ));
    }
    s.push_str(&format!(
        "## 4. The log's head / Последнее событие журнала, напечатанное в акте\n\n\
         The act prints the hash of event {seq}; that event's line in `events.jsonl` carries it:\n\n\
         ```sh\ngrep -F '\"seq\":{seq},' events.jsonl | grep -F '\"hash\":\"{hash}\"'\n```\n\n",
        seq = m.act_head_seq,
        hash = m.act_head_hash
    ));
    s.push_str(
        "## 5. The hash chain (optional, needs `jq`) / Цепочка хешей (необязательно, нужен `jq`)\n\n\
         Each event's `hash` is SHA-256 of the compact JSON array \
         `[inspection_id, seq, server_ts, participant_id, client_op_id, kind, payload_text, prev_hash]` \
         (docs/protocol.md); `prev_hash` is the previous event's `hash`.\n\n\
         ```sh\njq -rc '[.inspection_id,.seq,.server_ts,.participant_id,.client_op_id,.kind,.payload_text,.prev_hash]' events.jsonl \
         | while IFS= read -r line; do printf '%s' \"$line\" | sha256sum | cut -c1-64; done > computed-hashes.txt\n\
         jq -r .hash events.jsonl | cmp - computed-hashes.txt\n\
         jq -s -e '. as $e | all(range(1; $e | length); $e[.].prev_hash == $e[. - 1].hash)' events.jsonl\n```\n\n",
    );
    s.push_str(
        "## What this proves / Что это доказывает\n\n\
         See docs/evidence.md: the signatures are ECDSA P-256 signatures under the server's own \
         CA (`ca.pem`) — technical integrity signatures, not qualified electronic signatures \
         under 63-ФЗ. Compare `ca.pem` with the one the control body publishes \
         (`/api/signing/ca.pem`). `inspector bundle verify` runs all of the checks above at once.\n",
    );
    s
}

/// Builds the bundle of an inspection whose act was formed, into an unlinked temporary file
/// (rewound): memory stays small whatever the recording's size.
pub async fn build(state: &AppState, insp: &Inspection) -> ApiResult<std::fs::File> {
    let id = insp.id;
    let snap = state
        .live
        .sync
        .snapshot(id)
        .await
        .map_err(|e| anyhow::anyhow!("snapshot: {e}"))?;
    let act = snap.state.act.clone().ok_or(ApiError::Conflict {
        code: "act_not_formed",
        message: "form the act first".into(),
    })?;
    let mut events = Vec::new();
    let count = checklist_sync::export_jsonl(&state.db, id, &mut events)
        .await
        .map_err(|e| anyhow::anyhow!("export: {e}"))?;
    let log_head = events
        .split(|b| *b == b'\n')
        .rfind(|l| !l.is_empty())
        .and_then(|l| serde_json::from_slice::<Value>(l).ok())
        .and_then(|v| v["hash"].as_str().map(str::to_string))
        .unwrap_or_default();
    let manifest = super::http::recording(state, id).await?;
    let rec_dir = state.config.recordings_dir().join(id.to_string());
    let pdf_path = state.acts.pdf_path(id, &act.sha256);
    let sigs: Vec<(SignerRole, std::path::PathBuf)> = act
        .signatures
        .iter()
        .map(|s| (s.role, state.acts.signature_path(id, &s.signature_sha256)))
        .collect();
    // Several nodes: the files another node wrote come from the shared store first.
    state.acts.ensure_local(id, &pdf_path).await?;
    for (_, p) in &sigs {
        state.acts.ensure_local(id, p).await?;
    }
    // Every blob the log names, once, in log order (the state groups it by item and finding).
    type Target = (Option<String>, Option<u64>);
    let of_items = snap.state.items.iter().flat_map(|(item, s)| {
        s.evidence
            .iter()
            .map(move |e| (e.seq, (Some(item.clone()), None), e.evidence.clone()))
    });
    let of_findings = snap.state.findings.iter().flat_map(|f| {
        f.evidence
            .iter()
            .map(move |e| (e.seq, (None, Some(f.seq)), e.evidence.clone()))
    });
    // The phone's stills in place of video (`frame` events; the fold keeps only the latest).
    let of_frames = events
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .filter(|e| e["kind"] == "frame")
        .filter_map(|e| {
            let seq = e["seq"].as_u64()?;
            let ev = serde_json::from_value(e["payload"]["evidence"].clone()).ok()?;
            Some((seq, (None, None), ev))
        })
        .collect::<Vec<_>>();
    let mut named: Vec<(u64, Target, checklist_sync::proto::Evidence)> = of_items
        .chain(of_findings)
        .chain(of_frames)
        .filter(|(_, _, e)| e.sha256.is_some() && e.size.is_some())
        .collect();
    named.sort_by_key(|(seq, ..)| *seq);
    let mut blobs = Vec::new();
    let mut evidence = Vec::new();
    for (seq, (item_id, finding_seq), e) in named {
        let Some(sha) = e.sha256.clone() else {
            continue;
        };
        let path = evidence_path(&sha, e.media_type.as_deref());
        if !blobs.iter().any(|(p, _)| *p == path) {
            blobs.push((path.clone(), sha));
        }
        evidence.push(BundleEvidence {
            path,
            kind: serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            item_id,
            finding_seq,
            seq,
        });
    }
    let rt = tokio::runtime::Handle::current();
    let store = state.blobs.clone();
    let ca_pem = state.signing.ca.cert_pem().to_string();
    let ca_der = state.signing.ca.cert_der().to_vec();
    let tmp_dir = state.config.data_dir.join("tmp");
    let inspection_id = id.to_string();
    tokio::task::spawn_blocking(move || -> anyhow::Result<std::fs::File> {
        std::fs::create_dir_all(&tmp_dir)?;
        let file = tempfile::tempfile_in(&tmp_dir)?;
        let mut w = Writer {
            zip: zip::ZipWriter::new(file),
            files: Vec::new(),
        };
        let pdf = std::fs::read(&pdf_path)?;
        w.add("act.pdf", &pdf, false)?;
        let mut signatures = BTreeMap::new();
        for (role, path) in &sigs {
            let p7s = std::fs::read(path)?;
            let name = format!("signatures/{}.p7s", role.as_str());
            w.add(&name, &p7s, false)?;
            let v = cms::verify_detached(&p7s, &pdf, &ca_der)
                .map_err(|e| anyhow::anyhow!("stored {name} does not verify: {e}"))?;
            w.add(
                &format!("certificates/{}.pem", role.as_str()),
                ca::der_to_pem(&v.certificate_der).as_bytes(),
                true,
            )?;
            signatures.insert(role.as_str().to_string(), name);
        }
        w.add("ca.pem", ca_pem.as_bytes(), true)?;
        let mut recording = None;
        if let Some(m) = &manifest {
            let name = format!("recording/{}", m.file);
            let mut f = std::fs::File::open(rec_dir.join(&m.file))?;
            w.add_reader(&name, &mut f, false)?;
            recording = Some(name);
            if let Ok(vtt) = std::fs::read(rec_dir.join(media_recorder::finalize::VTT_FILE)) {
                w.add("recording/recording.vtt", &vtt, true)?;
            }
            w.add(
                "recording/manifest.json",
                &serde_json::to_vec_pretty(m)?,
                true,
            )?;
        }
        for (path, sha) in blobs {
            // Opened one at a time, when its turn comes (an S3 read is a request).
            let stream = rt
                .block_on(store.get(&sha, None))?
                .ok_or_else(|| anyhow::anyhow!("evidence {sha} named by the log is not stored"))?
                .stream;
            let mut r = BlockingStream {
                rt: rt.clone(),
                stream,
                chunk: bytes::Bytes::new(),
            };
            w.add_reader(&path, &mut r, false)?;
        }
        w.add("events.jsonl", &events, true)?;
        let bm = BundleManifest {
            format: FORMAT.into(),
            inspection_id,
            act_sha256: act.sha256.clone(),
            act_head_seq: act.head_seq,
            act_head_hash: act.head_hash.clone(),
            events: count,
            log_head_hash: log_head,
            signatures,
            recording,
            evidence,
            files: w.files.clone(),
        };
        let verify = verify_md(&bm);
        w.add("VERIFY.md", verify.as_bytes(), true)?;
        let mut bm = bm;
        bm.files = w.files.clone();
        let sums: String = w
            .files
            .iter()
            .map(|f| format!("{}  {}\n", f.sha256, f.path))
            .collect();
        w.add("manifest.json", &serde_json::to_vec_pretty(&bm)?, true)?;
        w.add("SHA256SUMS", sums.as_bytes(), true)?;
        let mut file = w.zip.finish()?;
        file.rewind()?;
        Ok(file)
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))?
    .map_err(ApiError::Internal)
}

/// What `bundle verify` found wrong: the first thing that does not match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {why}")]
pub struct Mismatch {
    /// The file (or file and event) that does not match.
    pub what: String,
    /// Why.
    pub why: String,
}

fn mismatch(what: impl Into<String>, why: impl Into<String>) -> Mismatch {
    Mismatch {
        what: what.into(),
        why: why.into(),
    }
}

/// What a bundle that checks out says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The inspection.
    pub inspection_id: String,
    /// Files checked.
    pub files: usize,
    /// Events checked.
    pub events: u64,
    /// The head printed in the act.
    pub head_hash: String,
    /// Roles whose signatures verified.
    pub signed_by: Vec<String>,
    /// Refusals recorded (role: reason).
    pub refused_by: Vec<String>,
    /// SHA-256 of the CA certificate the signatures chain to.
    pub ca_fingerprint: String,
}

/// The values the act's PDF carries in its (uncompressed, as PDF/A requires) XMP metadata:
/// `key:value` keywords.
pub fn pdf_keyword(pdf: &[u8], key: &str) -> Option<String> {
    let needle = format!("{key}:");
    let pos = pdf
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())?;
    let rest = &pdf[pos + needle.len()..];
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-'))
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok().map(str::to_string)
}

/// Checks a bundle offline: every file's hash, the hash chain, the act against the log and
/// the head it prints, every signature against `ca.pem`. Returns the first mismatch.
pub fn verify(path: &Path) -> Result<Verified, Mismatch> {
    let f = std::fs::File::open(path)
        .map_err(|e| mismatch(path.display().to_string(), e.to_string()))?;
    let mut zip = zip::ZipArchive::new(f).map_err(|e| mismatch("the ZIP", e.to_string()))?;
    let mut read = |name: &str| -> Result<Vec<u8>, Mismatch> {
        let mut e = zip
            .by_name(name)
            .map_err(|_| mismatch(name, "missing from the bundle"))?;
        let mut v = Vec::new();
        e.read_to_end(&mut v)
            .map_err(|e| mismatch(name, e.to_string()))?;
        Ok(v)
    };
    let manifest: BundleManifest = serde_json::from_slice(&read("manifest.json")?)
        .map_err(|e| mismatch("manifest.json", format!("unreadable: {e}")))?;
    if manifest.format != FORMAT {
        return Err(mismatch(
            "manifest.json",
            format!("unknown format {}", manifest.format),
        ));
    }
    // 1. Every file against the manifest and SHA256SUMS.
    let sums =
        String::from_utf8(read("SHA256SUMS")?).map_err(|_| mismatch("SHA256SUMS", "not text"))?;
    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for entry in &manifest.files {
        let bytes = read(&entry.path)?;
        let sha = sha256_hex(&bytes);
        if sha != entry.sha256 || bytes.len() as u64 != entry.size {
            return Err(mismatch(
                &entry.path,
                format!("SHA-256 is {sha}, the manifest says {}", entry.sha256),
            ));
        }
        if !sums
            .lines()
            .any(|l| l == format!("{}  {}", entry.sha256, entry.path))
        {
            return Err(mismatch(
                "SHA256SUMS",
                format!("does not list {} with its hash", entry.path),
            ));
        }
        contents.insert(entry.path.clone(), bytes);
    }
    if sums.lines().filter(|l| !l.is_empty()).count() != manifest.files.len() {
        return Err(mismatch("SHA256SUMS", "lists files the manifest does not"));
    }
    let get = |name: &str| {
        contents
            .get(name)
            .ok_or_else(|| mismatch(name, "not listed in manifest.json"))
    };
    // 2. The hash chain of events.jsonl.
    let events_text = get("events.jsonl")?;
    let mut events: Vec<Value> = Vec::new();
    let mut prev = checklist_sync::chain::GENESIS_HASH.to_string();
    for (i, line) in events_text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let seq = i as u64 + 1;
        let what = format!("events.jsonl event {seq}");
        let v: Value =
            serde_json::from_slice(line).map_err(|e| mismatch(&what, format!("not JSON: {e}")))?;
        let s = |k: &str| v[k].as_str().map(str::to_string);
        if v["seq"].as_u64() != Some(seq) {
            return Err(mismatch(
                &what,
                format!("seq is {}, expected {seq} (an event is missing)", v["seq"]),
            ));
        }
        if s("inspection_id").as_deref() != Some(manifest.inspection_id.as_str()) {
            return Err(mismatch(&what, "belongs to another inspection"));
        }
        if s("prev_hash").as_deref() != Some(prev.as_str()) {
            return Err(mismatch(
                &what,
                "prev_hash is not the previous event's hash",
            ));
        }
        let pid = s("participant_id")
            .and_then(|p| uuid::Uuid::parse_str(&p).ok())
            .ok_or_else(|| mismatch(&what, "participant_id"))?;
        let iid = uuid::Uuid::parse_str(&manifest.inspection_id)
            .map_err(|_| mismatch("manifest.json", "inspection_id"))?;
        let computed = checklist_sync::chain::event_hash(
            iid,
            seq,
            v["server_ts"].as_i64().unwrap_or_default(),
            pid,
            v["client_op_id"].as_str(),
            v["kind"].as_str().unwrap_or_default(),
            v["payload_text"].as_str().unwrap_or_default(),
            &prev,
        );
        if Some(computed.as_str()) != v["hash"].as_str() {
            return Err(mismatch(
                &what,
                format!(
                    "content hashes to {computed}, the log says {} (altered)",
                    v["hash"]
                ),
            ));
        }
        prev = computed;
        events.push(v);
    }
    if events.len() as u64 != manifest.events || prev != manifest.log_head_hash {
        return Err(mismatch(
            "events.jsonl",
            format!(
                "{} events ending in {prev}; the manifest says {} ending in {} (events removed?)",
                events.len(),
                manifest.events,
                manifest.log_head_hash
            ),
        ));
    }
    // 3. The act against the log and against what it prints.
    let pdf = get("act.pdf")?;
    let pdf_sha = sha256_hex(pdf);
    let payload = |v: &Value| -> Value {
        v["payload_text"]
            .as_str()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null)
    };
    let formed = events
        .iter()
        .find(|e| e["kind"] == "act_formed")
        .map(payload)
        .ok_or_else(|| {
            mismatch(
                "events.jsonl",
                "no act_formed event (the act is not in the log)",
            )
        })?;
    if formed["sha256"].as_str() != Some(pdf_sha.as_str()) {
        return Err(mismatch(
            "act.pdf",
            format!(
                "SHA-256 {pdf_sha} is not the act_formed event's {}",
                formed["sha256"]
            ),
        ));
    }
    let head_seq = formed["head_seq"].as_u64().unwrap_or_default();
    let head_hash = formed["head_hash"].as_str().unwrap_or_default().to_string();
    let printed_hash = pdf_keyword(pdf, "head-hash");
    let printed_seq = pdf_keyword(pdf, "head-seq");
    if printed_hash.as_deref() != Some(head_hash.as_str())
        || printed_seq != Some(head_seq.to_string())
    {
        return Err(mismatch(
            "act.pdf",
            "the head it prints is not the act_formed event's head",
        ));
    }
    let at_head = events
        .get((head_seq as usize).wrapping_sub(1))
        .and_then(|e| e["hash"].as_str())
        .map(str::to_string);
    if at_head.as_deref() != Some(head_hash.as_str()) {
        return Err(mismatch(
            "events.jsonl",
            format!("event {head_seq} does not have the hash {head_hash} printed in the act (log truncated or altered)"),
        ));
    }
    if let Some(rec) = &manifest.recording {
        let printed = pdf_keyword(pdf, "recording-sha256");
        let sha = sha256_hex(get(rec)?);
        if printed.as_deref() != Some(sha.as_str()) {
            return Err(mismatch(
                rec,
                format!("SHA-256 {sha} is not the one printed in the act"),
            ));
        }
    }
    // 4. Every blob the log names is in the bundle, with the logged hash.
    for e in events
        .iter()
        .filter(|e| e["kind"] == "attach_evidence" || e["kind"] == "frame")
    {
        let p = payload(e);
        let ev = &p["evidence"];
        let (Some(sha), Some(_)) = (ev["sha256"].as_str(), ev["size"].as_u64()) else {
            continue;
        };
        let path = evidence_path(sha, ev["media_type"].as_str());
        let bytes = get(&path).map_err(|_| {
            mismatch(
                &path,
                format!(
                    "event {} names this evidence but the bundle lacks it",
                    e["seq"]
                ),
            )
        })?;
        if sha256_hex(bytes) != sha {
            return Err(mismatch(
                &path,
                format!(
                    "is not the evidence event {} logged (SHA-256 differs)",
                    e["seq"]
                ),
            ));
        }
    }
    // 5. Signatures: every act_signed event has its file, every file its event, and each
    // verifies over act.pdf under ca.pem.
    let ca_der = ca::pem_to_der(
        std::str::from_utf8(get("ca.pem")?).map_err(|_| mismatch("ca.pem", "not text"))?,
    )
    .map_err(|e| mismatch("ca.pem", e.to_string()))?;
    let signed: Vec<Value> = events
        .iter()
        .filter(|e| e["kind"] == "act_signed")
        .map(payload)
        .collect();
    for (role, file) in &manifest.signatures {
        if !signed.iter().any(|p| p["role"] == role.as_str()) {
            return Err(mismatch(
                file,
                format!("no act_signed event of the {role} in events.jsonl (events removed?)"),
            ));
        }
    }
    let mut signed_by = Vec::new();
    for p in &signed {
        let role = p["role"].as_str().unwrap_or_default();
        let file = format!("signatures/{role}.p7s");
        let p7s = get(&file).map_err(|_| {
            mismatch(
                &file,
                "the log records this signature but the bundle lacks it",
            )
        })?;
        if p["act_sha256"].as_str() != Some(pdf_sha.as_str()) {
            return Err(mismatch(&file, "the log says it signs another act"));
        }
        if p["signature_sha256"].as_str() != Some(sha256_hex(p7s).as_str()) {
            return Err(mismatch(
                &file,
                "is not the signature the log recorded (SHA-256 differs)",
            ));
        }
        let v =
            cms::verify_detached(p7s, pdf, &ca_der).map_err(|e| mismatch(&file, e.to_string()))?;
        if p["certificate_sha256"].as_str() != Some(sha256_hex(&v.certificate_der).as_str()) {
            return Err(mismatch(
                &file,
                "signed with a certificate other than the one the log recorded",
            ));
        }
        signed_by.push(role.to_string());
    }
    let refused_by = events
        .iter()
        .filter(|e| e["kind"] == "act_refused")
        .map(payload)
        .map(|p| {
            format!(
                "{}: {}",
                p["role"].as_str().unwrap_or_default(),
                p["reason"].as_str().unwrap_or_default()
            )
        })
        .collect();
    Ok(Verified {
        inspection_id: manifest.inspection_id.clone(),
        files: manifest.files.len(),
        events: events.len() as u64,
        head_hash,
        signed_by,
        refused_by,
        ca_fingerprint: sha256_hex(&ca_der),
    })
}
