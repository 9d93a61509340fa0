//! `inspector audit verify`: the event log's hash chain, every piece of evidence the log
//! names re-hashed from the blob store (present, same size, same SHA-256), and
//! ([`verify_all`]) the signed checkpoints (crate::anchor), the status column against the
//! log, the recording against its logged hash and the stored acts, each problem named by a
//! stable code.

use checklist_sync::VerifyReport;
use sqlx::AnyPool;
use uuid::Uuid;

use crate::blobs::BlobStore;
use crate::config::Config;
use crate::db::RowExt;
use crate::domain::Status;

/// What is wrong with one piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvidenceProblem {
    /// The blob store has no blob with the logged hash.
    Missing,
    /// The stored bytes hash to something else (or have another size).
    Altered {
        /// The hash of what is stored.
        actual_sha256: String,
        /// Its size.
        actual_size: u64,
    },
}

/// One finding about evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceFinding {
    /// The `attach_evidence` (or `frame`) event.
    pub seq: u64,
    /// The evidence id.
    pub evidence_id: String,
    /// The logged hash.
    pub sha256: String,
    /// What is wrong.
    pub problem: EvidenceProblem,
}

/// The result of an audit.
#[derive(Debug)]
pub struct AuditReport {
    /// The chain check.
    pub chain: VerifyReport,
    /// Pieces of evidence re-hashed.
    pub evidence_checked: usize,
    /// Everything that did not match.
    pub evidence_problems: Vec<EvidenceFinding>,
}

impl AuditReport {
    /// Chain intact and every blob as logged.
    pub fn is_clean(&self) -> bool {
        self.chain.is_intact() && self.evidence_problems.is_empty()
    }
}

/// Checks the chain and every server-stored piece of evidence of the inspection. Evidence of
/// the first revision (a client's claimed uri) names nothing in the store and is not checked.
pub async fn verify(pool: &AnyPool, blobs: &BlobStore, id: Uuid) -> anyhow::Result<AuditReport> {
    let chain = checklist_sync::verify(pool, id).await?;
    let (_, state) = checklist_sync::load_snapshot(pool, id).await?;
    let mut checked = 0;
    let mut problems = Vec::new();
    // The items' and findings' evidence from the fold, the phone's stills from the log (the
    // fold keeps only each phone's latest).
    let mut stored: Vec<(u64, String, Option<String>, Option<u64>)> = state
        .all_evidence()
        .map(|e| {
            (
                e.seq,
                e.evidence.id.clone(),
                e.evidence.sha256.clone(),
                e.evidence.size,
            )
        })
        .collect();
    stored.extend(
        crate::uploads::logged_frames(pool, id, None)
            .await?
            .into_iter()
            .map(|(seq, e)| (seq, e.id, e.sha256, e.size)),
    );
    for (seq, evidence_id, sha, size) in stored {
        let (Some(sha), Some(size)) = (sha, size) else {
            continue;
        };
        checked += 1;
        let problem = match blobs.rehash(&sha).await? {
            None => Some(EvidenceProblem::Missing),
            Some((h, n)) if h != sha || n != size => Some(EvidenceProblem::Altered {
                actual_sha256: h,
                actual_size: n,
            }),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            problems.push(EvidenceFinding {
                seq,
                evidence_id,
                sha256: sha,
                problem,
            });
        }
    }
    Ok(AuditReport {
        chain,
        evidence_checked: checked,
        evidence_problems: problems,
    })
}

/// One thing `audit verify` found broken, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable code (docs/security.md lists them).
    pub code: &'static str,
    /// What, in words, naming the seq, file or hash concerned.
    pub message: String,
}

/// Everything `inspector audit verify` checks, in this order: the chain, the signed
/// checkpoints, the status column against the log, the recording against its logged hash,
/// every evidence file, the stored acts.
#[derive(Debug)]
pub struct FullReport {
    /// The chain and evidence part ([`verify`]).
    pub base: AuditReport,
    /// Checkpoints checked (file lines and rows).
    pub checkpoints_checked: usize,
    /// The latest checkpointed head, if any.
    pub last_checkpoint: Option<(u64, String)>,
    /// Events after the latest checkpoint (not anchored yet).
    pub unanchored_events: u64,
    /// The recording as logged and checked, if any.
    pub recording: Option<Box<checklist_sync::state::RecordingState>>,
    /// The act check.
    pub act: crate::act::audit::ActCheck,
    /// What is broken, the first one first.
    pub findings: Vec<Finding>,
}

impl FullReport {
    /// Nothing broken.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

fn finding(code: &'static str, message: impl Into<String>) -> Finding {
    Finding {
        code,
        message: message.into(),
    }
}

/// The checkpoint public key: derived from the key file, else read from its `.pub.pem`.
fn checkpoint_public(config: &Config) -> Option<Vec<u8>> {
    let path = &config.anchor.key_file;
    if let Ok(pkcs8) = std::fs::read(path) {
        if let Ok(pair) = ring::signature::Ed25519KeyPair::from_pkcs8(&pkcs8) {
            use ring::signature::KeyPair;
            return Some(pair.public_key().as_ref().to_vec());
        }
    }
    let pem = std::fs::read_to_string(crate::anchor::public_path(path)).ok()?;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    (der.len() == 44).then(|| der[12..].to_vec())
}

/// Runs every check of `inspector audit verify` on one inspection.
pub async fn verify_all(
    pool: &AnyPool,
    blobs: &BlobStore,
    config: &Config,
    id: Uuid,
) -> anyhow::Result<FullReport> {
    let base = verify(pool, blobs, id).await?;
    let mut findings = Vec::new();
    if let Some(b) = &base.chain.first_broken {
        findings.push(finding(
            "chain_broken",
            format!("the hash chain breaks at seq {}: {:?}", b.seq, b.reason),
        ));
    }
    let id_s = id.to_string();
    let mut heads = std::collections::BTreeMap::new();
    let mut implied: Option<Status> = None;
    let mut end_seq: Option<u64> = None;
    for r in sqlx::query(
        "SELECT seq, hash, kind, payload FROM events WHERE inspection_id = $1 ORDER BY seq",
    )
    .bind(&id_s)
    .fetch_all(pool)
    .await?
    {
        let seq = r.col::<i64>(0)? as u64;
        let kind: String = r.col(2)?;
        let payload: serde_json::Value =
            serde_json::from_str(&r.col::<String>(3)?).unwrap_or_default();
        if let Some(s) = crate::live::projection::status_after_parts(&kind, &payload) {
            implied = Some(s);
            if matches!(s, Status::Finished | Status::Cancelled) {
                end_seq = Some(seq);
            }
        }
        heads.insert(seq, r.col::<String>(1)?);
    }
    let head_seq = heads.keys().next_back().copied().unwrap_or(0);

    // Checkpoints: the file's chain of signed records and the rows, each against the other
    // and against the log.
    let mut checked = 0;
    let mut last_checkpoint: Option<(u64, String)> = None;
    let public = checkpoint_public(config);
    let path = crate::anchor::file_path(&config.data_dir, id);
    let lines = crate::anchor::read_file(&path)?;
    let rows = crate::anchor::read_rows(pool, id).await?;
    let check_record = |s: &crate::anchor::Signed,
                        whence: &str,
                        findings: &mut Vec<Finding>|
     -> Option<crate::anchor::Record> {
        let Some(public) = &public else {
            findings.push(finding(
                "checkpoint_key_missing",
                format!(
                    "no checkpoint key at {} to check the {whence}",
                    config.anchor.key_file.display()
                ),
            ));
            return None;
        };
        let record = match s.verify(public) {
            Ok(r) => r,
            Err(e) => {
                findings.push(finding("checkpoint_signature", format!("{whence}: {e}")));
                return None;
            }
        };
        if record.inspection_id != id {
            findings.push(finding(
                "checkpoint_signature",
                format!(
                    "{whence} is a checkpoint of inspection {}",
                    record.inspection_id
                ),
            ));
            return None;
        }
        match heads.get(&record.seq) {
            None => findings.push(finding(
                "checkpoint_head_missing",
                format!(
                    "{whence} signs event {} (hash {}), which the log no longer has: its tail was cut",
                    record.seq, record.head_hash
                ),
            )),
            Some(h) if *h != record.head_hash => findings.push(finding(
                "checkpoint_head_mismatch",
                format!(
                    "{whence} signs hash {} for event {}, the log has {h}: the log was rewritten",
                    record.head_hash, record.seq
                ),
            )),
            Some(_) => {}
        }
        Some(record)
    };
    let mut file_records = std::collections::BTreeSet::new();
    let mut prev: Option<String> = None;
    let n_lines = lines.len();
    for (i, line) in lines.iter().enumerate() {
        let s = match line {
            Ok(s) => s,
            Err((n, e)) => {
                findings.push(finding(
                    "checkpoint_signature",
                    format!("{} line {n} is not a checkpoint: {e}", path.display()),
                ));
                continue;
            }
        };
        checked += 1;
        let whence = format!("checkpoint line {} of {}", i + 1, path.display());
        if let Some(r) = check_record(s, &whence, &mut findings) {
            if r.prev != prev {
                findings.push(finding(
                    "checkpoint_deleted",
                    format!("{whence} does not follow the line before it: a checkpoint was removed from the file"),
                ));
            }
            if last_checkpoint.as_ref().is_none_or(|(q, _)| r.seq >= *q) {
                last_checkpoint = Some((r.seq, r.head_hash.clone()));
            }
        }
        prev = Some(s.record_sha256());
        // The line is written before its row, and the next checkpoint writes a missing row
        // of the line before it: only a stop of the server between the two writes of the
        // last checkpoint leaves a line without a row.
        if !rows.iter().any(|row| row.record == s.record) {
            let crash = if i + 1 == n_lines {
                " (or the server stopped between writing the line and the row)"
            } else {
                ""
            };
            findings.push(finding(
                "checkpoint_deleted",
                format!("{whence} has no row in the checkpoints table: the row was deleted{crash}"),
            ));
        }
        file_records.insert(s.record.clone());
    }
    for (i, row) in rows.iter().enumerate() {
        checked += 1;
        let whence = format!("checkpoint row {} (by seq)", i + 1);
        if let Some(r) = check_record(row, &whence, &mut findings) {
            if last_checkpoint.as_ref().is_none_or(|(q, _)| r.seq > *q) {
                last_checkpoint = Some((r.seq, r.head_hash.clone()));
            }
        }
        if !file_records.contains(&row.record) {
            findings.push(finding(
                "checkpoint_deleted",
                format!("{whence} is not in {}: the file lost it", path.display()),
            ));
        }
    }
    if let Some(end) = end_seq {
        if last_checkpoint.as_ref().is_none_or(|(q, _)| *q < end) {
            findings.push(finding(
                "checkpoint_missing",
                format!("the inspection ended at event {end} but no checkpoint covers it"),
            ));
        }
    }
    let unanchored = head_seq.saturating_sub(last_checkpoint.as_ref().map_or(0, |(q, _)| *q));

    // The status column is a projection of the log; it must say what the log says.
    let row = sqlx::query("SELECT status FROM inspections WHERE id = $1")
        .bind(&id_s)
        .fetch_optional(pool)
        .await?;
    if let Some(row) = row {
        let stored: String = row.col(0)?;
        let expected = implied.map_or("scheduled", Status::as_str);
        if stored != expected {
            findings.push(finding(
                "status_mismatch",
                format!("the inspection's status is {stored}, its log says {expected}"),
            ));
        }
    }

    // The recording against the hash the log holds (not the manifest's).
    let (_, state) = checklist_sync::load_snapshot(pool, id).await?;
    let dir = config.recordings_dir().join(&id_s);
    let d = dir.clone();
    let manifest = tokio::task::spawn_blocking(move || media_recorder::finalize::read_manifest(&d))
        .await?
        .ok()
        .flatten();
    match (&state.recording, &manifest) {
        (Some(logged), manifest) => {
            if let Some(m) = manifest {
                if m.sha256 != logged.sha256 || m.file != logged.file {
                    findings.push(finding(
                        "manifest_altered",
                        format!(
                            "the manifest says {} {}, the log (event {}) says {} {}",
                            m.file, m.sha256, logged.seq, logged.file, logged.sha256
                        ),
                    ));
                }
            }
            let file = dir.join(&logged.file);
            if logged.file.contains('/') || logged.file.contains("..") {
                findings.push(finding("recording_missing", "the logged file name is not plain"));
            } else {
                match tokio::task::spawn_blocking(move || hash_file(&file)).await? {
                    Err(e) => findings.push(finding(
                        "recording_missing",
                        format!("the recording {} cannot be read: {e}", logged.file),
                    )),
                    Ok((h, n)) if h != logged.sha256 || n != logged.size => findings.push(finding(
                        "recording_altered",
                        format!(
                            "the recording {} hashes to {h} ({n} bytes), the log (event {}) says {} ({} bytes)",
                            logged.file, logged.seq, logged.sha256, logged.size
                        ),
                    )),
                    Ok(_) => {}
                }
            }
        }
        (None, Some(m)) => findings.push(finding(
            "recording_unlogged",
            format!(
                "a finalized recording ({} {}) is not in the log: its recording_finalized event is missing",
                m.file, m.sha256
            ),
        )),
        (None, None) => {}
    }

    for f in &base.evidence_problems {
        let (code, what) = match &f.problem {
            EvidenceProblem::Missing => ("evidence_missing", "is missing".to_string()),
            EvidenceProblem::Altered {
                actual_sha256,
                actual_size,
            } => (
                "evidence_altered",
                format!("hashes to {actual_sha256} ({actual_size} bytes)"),
            ),
        };
        findings.push(finding(
            code,
            format!(
                "evidence {} of event {} (sha256 {}) {what}",
                f.evidence_id, f.seq, f.sha256
            ),
        ));
    }

    let act = crate::act::audit::check_against_acts(pool, config, id).await?;
    if let crate::act::audit::ActCheck::Mismatch(why) = &act {
        findings.push(finding("act_mismatch", why.clone()));
    }
    Ok(FullReport {
        base,
        checkpoints_checked: checked,
        last_checkpoint,
        unanchored_events: unanchored,
        recording: state.recording.clone(),
        act,
        findings,
    })
}

fn hash_file(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((hex::encode(h.finalize()), n))
}
