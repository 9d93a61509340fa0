//! `inspector audit verify`: the event log's hash chain, and every piece of evidence the log
//! names re-hashed from the blob store (present, same size, same SHA-256).

use checklist_sync::VerifyReport;
use sqlx::AnyPool;
use uuid::Uuid;

use crate::blobs::BlobStore;

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
    /// The `attach_evidence` event.
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
    for entry in state.items.values().flat_map(|i| i.evidence.iter()) {
        let (Some(sha), Some(size)) = (&entry.evidence.sha256, entry.evidence.size) else {
            continue;
        };
        checked += 1;
        let problem = match blobs.rehash(sha).await? {
            None => Some(EvidenceProblem::Missing),
            Some((h, n)) if h != *sha || n != size => Some(EvidenceProblem::Altered {
                actual_sha256: h,
                actual_size: n,
            }),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            problems.push(EvidenceFinding {
                seq: entry.seq,
                evidence_id: entry.evidence.id.clone(),
                sha256: sha.clone(),
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
