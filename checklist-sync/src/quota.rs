//! What one participant may add to an inspection: comments and evidence per item, and content
//! bytes per inspection and per minute. Without these bounds one participant (for example a
//! business flooding 4000-character comments) grows the state every client downloads on
//! join without limit.
//!
//! [`Usage`] is a projection of the state: every comment and evidence entry carries its author
//! and server time, so a room rebuilds it from the log when it is loaded, and the per-minute
//! window survives a reload too. Time is an input; no clock is read.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::proto::{codes, Evidence, OpError, Operation};
use crate::state::State;

/// The window of [`Quotas::bytes_per_minute`], µs.
const MINUTE_US: i64 = 60_000_000;

/// Per-participant bounds on what accumulates in the state. `set_result` is not counted: it
/// replaces the item's previous result instead of adding to the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// Comments one participant may add to one item.
    pub comments_per_item: usize,
    /// Evidence references one participant may attach to one item.
    pub evidence_per_item: usize,
    /// Content bytes (UTF-8 text of comments and evidence references) one participant may add
    /// to one inspection.
    pub bytes_per_participant: u64,
    /// Content bytes one participant may add within any 60 seconds.
    pub bytes_per_minute: u64,
    /// Stills (`frame` events) one participant's phone may send to one inspection: at one
    /// every 5 s, 3,600 are five hours of low-bandwidth mode.
    pub frames_per_participant: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            comments_per_item: 100,
            evidence_per_item: 50,
            bytes_per_participant: 1024 * 1024,
            bytes_per_minute: 64 * 1024,
            frames_per_participant: 3600,
        }
    }
}

/// Which quota refused an operation (the `limit` field of a `quota_exceeded` error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`Quotas::comments_per_item`].
    CommentsPerItem,
    /// [`Quotas::evidence_per_item`].
    EvidencePerItem,
    /// [`Quotas::bytes_per_participant`].
    BytesPerParticipant,
    /// [`Quotas::bytes_per_minute`].
    BytesPerMinute,
    /// [`Quotas::frames_per_participant`].
    FramesPerParticipant,
}

impl Limit {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CommentsPerItem => "comments_per_item",
            Self::EvidencePerItem => "evidence_per_item",
            Self::BytesPerParticipant => "bytes_per_participant",
            Self::BytesPerMinute => "bytes_per_minute",
            Self::FramesPerParticipant => "frames_per_participant",
        }
    }
}

#[derive(Debug, Default, Clone)]
struct ParticipantUsage {
    comments: HashMap<Target, usize>,
    evidence: HashMap<Target, usize>,
    bytes: u64,
    /// (server time, bytes) of additions that may still be inside the minute window.
    recent: VecDeque<(i64, u64)>,
    recent_bytes: u64,
    /// Stills sent (`frame` events).
    frames: usize,
}

impl ParticipantUsage {
    fn forget_before(&mut self, since: i64) {
        while self.recent.front().is_some_and(|(ts, _)| *ts <= since) {
            if let Some((_, b)) = self.recent.pop_front() {
                self.recent_bytes -= b;
            }
        }
    }
}

/// What each participant has added so far (see the module documentation).
#[derive(Debug, Default, Clone)]
pub struct Usage {
    by: HashMap<Uuid, ParticipantUsage>,
}

/// What comments and evidence are counted against: a checklist item, or a free-form finding
/// (`evidence_per_item` bounds one finding's evidence too).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    Item(String),
    Finding(u64),
}

/// The target and the content bytes of an operation the quotas count, or `None`.
fn counted(op: &Operation) -> Option<(Target, bool, u64)> {
    match op {
        Operation::Comment { item_id, text } => {
            Some((Target::Item(item_id.clone()), false, text.len() as u64))
        }
        Operation::AttachEvidence {
            item_id,
            finding_seq,
            evidence,
        } => {
            let target = match (item_id, finding_seq) {
                (Some(i), _) => Target::Item(i.clone()),
                (None, Some(s)) => Target::Finding(*s),
                (None, None) => return None,
            };
            Some((target, true, evidence_bytes(evidence)))
        }
        _ => None,
    }
}

/// Bytes of an evidence reference's text fields.
fn evidence_bytes(e: &Evidence) -> u64 {
    let opt = |s: &Option<String>| s.as_deref().map_or(0, str::len);
    (e.id.len() + opt(&e.uri) + opt(&e.sha256) + opt(&e.caption)) as u64
}

impl Usage {
    /// The usage a state already holds (a room restored from the log).
    pub fn from_state(state: &State) -> Usage {
        let mut u = Usage::default();
        for (item_id, item) in &state.items {
            let t = Target::Item(item_id.clone());
            for c in &item.comments {
                u.add(c.by, &t, false, c.text.len() as u64, c.ts);
            }
            for e in &item.evidence {
                u.add(e.by, &t, true, evidence_bytes(&e.evidence), e.ts);
            }
        }
        for f in &state.findings {
            let t = Target::Finding(f.seq);
            for e in &f.evidence {
                u.add(e.by, &t, true, evidence_bytes(&e.evidence), e.ts);
            }
        }
        for (id, p) in &state.participants {
            if let Some(f) = &p.frames {
                u.by.entry(*id).or_default().frames = f.count as usize;
            }
        }
        for p in u.by.values_mut() {
            p.recent.make_contiguous().sort_by_key(|(ts, _)| *ts);
        }
        u
    }

    /// Whether `who` may do `op` at `now` (µs) without exceeding `quotas`. Changes nothing.
    pub fn admit(
        &mut self,
        quotas: &Quotas,
        who: Uuid,
        op: &Operation,
        now: i64,
    ) -> Result<(), OpError> {
        if matches!(op, Operation::Frame { .. }) {
            let sent = self.by.get(&who).map_or(0, |p| p.frames);
            if sent >= quotas.frames_per_participant {
                let mut e = OpError::new(
                    codes::QUOTA_EXCEEDED,
                    format!(
                        "at most {} stills per participant",
                        quotas.frames_per_participant
                    ),
                );
                e.limit = Some(Limit::FramesPerParticipant.as_str().into());
                return Err(e);
            }
            return Ok(());
        }
        let Some((item, is_evidence, bytes)) = counted(op) else {
            return Ok(());
        };
        let p = self.by.entry(who).or_default();
        p.forget_before(now - MINUTE_US);
        let refuse = |limit: Limit, message: String| {
            let mut e = OpError::new(codes::QUOTA_EXCEEDED, message);
            e.limit = Some(limit.as_str().into());
            Err(e)
        };
        if is_evidence {
            if p.evidence.get(&item).copied().unwrap_or(0) >= quotas.evidence_per_item {
                return refuse(
                    Limit::EvidencePerItem,
                    format!(
                        "at most {} evidence references per item",
                        quotas.evidence_per_item
                    ),
                );
            }
        } else if p.comments.get(&item).copied().unwrap_or(0) >= quotas.comments_per_item {
            return refuse(
                Limit::CommentsPerItem,
                format!("at most {} comments per item", quotas.comments_per_item),
            );
        }
        if p.bytes + bytes > quotas.bytes_per_participant {
            return refuse(
                Limit::BytesPerParticipant,
                format!(
                    "at most {} bytes of comments and evidence per participant",
                    quotas.bytes_per_participant
                ),
            );
        }
        if p.recent_bytes + bytes > quotas.bytes_per_minute {
            return refuse(
                Limit::BytesPerMinute,
                format!(
                    "at most {} bytes of comments and evidence per minute; wait a little",
                    quotas.bytes_per_minute
                ),
            );
        }
        Ok(())
    }

    /// Counts an operation that was sequenced at `ts`.
    pub fn record(&mut self, who: Uuid, op: &Operation, ts: i64) {
        if matches!(op, Operation::Frame { .. }) {
            self.by.entry(who).or_default().frames += 1;
            return;
        }
        if let Some((item, is_evidence, bytes)) = counted(op) {
            self.add(who, &item, is_evidence, bytes, ts);
        }
    }

    fn add(&mut self, who: Uuid, item: &Target, is_evidence: bool, bytes: u64, ts: i64) {
        let p = self.by.entry(who).or_default();
        let per_item = if is_evidence {
            &mut p.evidence
        } else {
            &mut p.comments
        };
        *per_item.entry(item.clone()).or_default() += 1;
        p.bytes += bytes;
        p.recent.push_back((ts, bytes));
        p.recent_bytes += bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment(item: &str, n: usize) -> Operation {
        Operation::Comment {
            item_id: item.into(),
            text: "я".repeat(n),
        }
    }

    fn quotas() -> Quotas {
        Quotas {
            comments_per_item: 3,
            evidence_per_item: 1,
            bytes_per_participant: 100,
            bytes_per_minute: 60,
            frames_per_participant: 2,
        }
    }

    fn limit(r: Result<(), OpError>) -> Option<String> {
        r.err().and_then(|e| {
            assert_eq!(e.code, "quota_exceeded");
            e.limit
        })
    }

    #[test]
    fn comments_per_item_and_per_minute() {
        let q = quotas();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut u = Usage::default();
        let t0 = 1_000_000_000;
        for i in 0..3 {
            assert!(u.admit(&q, a, &comment("q1", 5), t0 + i).is_ok());
            u.record(a, &comment("q1", 5), t0 + i);
        }
        assert_eq!(
            limit(u.admit(&q, a, &comment("q1", 1), t0 + 3)).as_deref(),
            Some("comments_per_item")
        );
        // Other items and other participants are not affected.
        assert!(u.admit(&q, a, &comment("q2", 1), t0 + 3).is_ok());
        assert!(u.admit(&q, b, &comment("q1", 1), t0 + 3).is_ok());
        // 30 bytes used within the minute; 2 × 16 more would pass 60.
        u.record(a, &comment("q2", 8), t0 + 4);
        assert_eq!(
            limit(u.admit(&q, a, &comment("q3", 8), t0 + 5)).as_deref(),
            Some("bytes_per_minute")
        );
        // A minute later the window is empty again.
        assert!(u
            .admit(&q, a, &comment("q3", 8), t0 + MINUTE_US + 5)
            .is_ok());
    }

    #[test]
    fn total_bytes_and_evidence() {
        let q = quotas();
        let a = Uuid::new_v4();
        let mut u = Usage::default();
        let mut t = 0;
        // 25 bytes a minute apart, four times: 100 bytes in total.
        for item in ["q1", "q2", "q3", "q4"] {
            t += MINUTE_US + 1;
            let op = Operation::Comment {
                item_id: item.into(),
                text: "x".repeat(25),
            };
            assert!(u.admit(&q, a, &op, t).is_ok());
            u.record(a, &op, t);
        }
        t += MINUTE_US + 1;
        assert_eq!(
            limit(u.admit(&q, a, &comment("q5", 1), t)).as_deref(),
            Some("bytes_per_participant")
        );
        let photo = || {
            Box::new(
                serde_json::from_value::<Evidence>(serde_json::json!({"id": "e", "kind": "photo"}))
                    .expect("evidence"),
            )
        };
        let ev = Operation::AttachEvidence {
            item_id: Some("q9".into()),
            finding_seq: None,
            evidence: photo(),
        };
        // A finding's evidence is bounded per finding, apart from any item's.
        let of_finding = Operation::AttachEvidence {
            item_id: None,
            finding_seq: Some(9),
            evidence: photo(),
        };
        let q = Quotas {
            bytes_per_participant: 1000,
            ..q
        };
        assert!(u.admit(&q, a, &ev, t).is_ok());
        u.record(a, &ev, t);
        assert_eq!(
            limit(u.admit(&q, a, &ev, t + 1)).as_deref(),
            Some("evidence_per_item")
        );
        assert!(u.admit(&q, a, &of_finding, t + 1).is_ok());
        u.record(a, &of_finding, t + 1);
        assert_eq!(
            limit(u.admit(&q, a, &of_finding, t + 2)).as_deref(),
            Some("evidence_per_item")
        );
    }

    #[test]
    fn usage_is_a_projection_of_the_state() {
        use crate::state::{Event, EventBody};
        let q = quotas();
        let a = Uuid::new_v4();
        let mut state = State::default();
        let mut live = Usage::default();
        for seq in 1..=3u64 {
            let op = comment("q1", 4);
            let ts = seq as i64 * 10;
            live.record(a, &op, ts);
            state.apply(&Event {
                seq,
                server_ts: ts,
                participant_id: a,
                client_op_id: None,
                device_time: None,
                clock_offset_ms: None,
                body: EventBody::Op(op),
            });
        }
        let mut rebuilt = Usage::from_state(&state);
        for u in [&mut live, &mut rebuilt] {
            assert_eq!(
                limit(u.admit(&q, a, &comment("q1", 1), 40)).as_deref(),
                Some("comments_per_item")
            );
            assert_eq!(
                limit(u.admit(&q, a, &comment("q2", 20), 40)).as_deref(),
                Some("bytes_per_minute")
            );
        }
    }
}
