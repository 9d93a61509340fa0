//! A prescription as plain data: the events of its log and the pure fold that gives its
//! state. Nothing here reads a clock or the database; the time a state is judged at (what is
//! overdue) is an input.

use checklist_sync::trust::{Signal, TrustLevel};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Items of one prescription at most.
pub const MAX_ITEMS: usize = 100;
/// Proofs one item may collect (over all its rounds).
pub const MAX_PROOFS_PER_ITEM: usize = 10;
/// Decisions one item may collect (each return is followed by a new round).
pub const MAX_DECISIONS_PER_ITEM: usize = 20;
/// Longest comment of a decision, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;
/// "Due soon": an open item due within this many days.
pub const DUE_SOON_DAYS: i64 = 7;

/// The log's head of the inspection the prescription follows up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InspectionHead {
    /// Last event's seq.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// The control body that issued it, as it was at the time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IssuingBody {
    /// Name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Kind of control.
    pub control_kind: String,
}

/// The business and its site, as the inspection recorded them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BusinessAtIssue {
    /// INN.
    pub inn: String,
    /// Name.
    pub name: String,
    /// Site address.
    pub address: String,
    /// Site latitude.
    pub lat: Option<f64>,
    /// Site longitude.
    pub lon: Option<f64>,
}

/// Evidence of the inspection an item refers to (by the inspection log's own id and hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EvidenceRef {
    /// The evidence id in the inspection's log.
    pub id: String,
    /// photo, still, clip, …
    pub kind: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
}

/// One violation to remedy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IssuedItem {
    /// The item's id within the prescription (`1`, `2`, …).
    pub id: String,
    /// The checklist item it comes from.
    pub checklist_item: String,
    /// The checklist item's number.
    pub number: String,
    /// The mandatory requirement (the checklist question).
    pub requirement: String,
    /// The legal act and its structural unit.
    pub legal_basis: String,
    /// The violation as the inspector described it.
    pub description: String,
    /// Due date, µs since the epoch UTC.
    pub due_at: i64,
    /// Evidence from the inspection.
    pub evidence: Vec<EvidenceRef>,
}

/// The `issued` event: everything the prescription says, fixed at issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Issued {
    /// The inspection.
    pub inspection_id: Uuid,
    /// Its log's head when the prescription was issued.
    pub inspection_head: InspectionHead,
    /// The issuing control body, if the inspector belongs to one.
    pub control_body: Option<IssuingBody>,
    /// The business.
    pub business: BusinessAtIssue,
    /// The site radius proofs are judged against, metres.
    pub site_radius_m: f64,
    /// The items.
    pub items: Vec<IssuedItem>,
}

/// Where a proof was taken: the last sample of the trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProofLocation {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Accuracy, metres.
    pub accuracy: f64,
    /// Device time of the fix, ms since the epoch.
    pub device_ts: i64,
}

/// The trust verdict of a proof's location trace (codes with parameters, no prose).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProofVerdict {
    /// trusted, suspicious or spoofed.
    #[schema(value_type = String)]
    pub level: TrustLevel,
    /// The signals that decided it.
    #[schema(value_type = Vec<Object>)]
    pub signals: Vec<Signal>,
}

/// A proof of the fix, as the server found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Proof {
    /// Id (serves it).
    pub id: Uuid,
    /// photo or video.
    pub kind: String,
    /// SHA-256 the server computed.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// Detected type.
    pub media_type: String,
    /// Pixel width (photos).
    pub width: Option<u32>,
    /// Pixel height (photos).
    pub height: Option<u32>,
    /// Capture time the device claims, ms since the epoch.
    pub captured_at: Option<i64>,
    /// Server receive time, µs.
    pub received_at: i64,
    /// The last location sample.
    pub location: Option<ProofLocation>,
    /// Samples in the trace.
    pub samples: u32,
    /// The trace's trust verdict.
    pub verdict: Option<ProofVerdict>,
    /// Distance of the last sample from the site, metres.
    pub distance_m: Option<f64>,
    /// Whether it was taken inside the site's radius (accuracy in its favour).
    pub within_radius: Option<bool>,
    /// Marks for the inspector: `no_location`, `no_site`, `far_from_site`, `suspicious`,
    /// `spoofed`.
    pub flags: Vec<String>,
}

/// The `proof_added` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProofAdded {
    /// The prescription item.
    pub item: String,
    /// The proof.
    pub proof: Proof,
}

/// The `accepted` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    /// The prescription item.
    pub item: String,
}

/// The `returned` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Returned {
    /// The prescription item.
    pub item: String,
    /// Why (the inspector's words, shown as written).
    pub comment: String,
    /// A new due date, µs, if one was given.
    pub due_at: Option<i64>,
}

/// One event of a prescription's log.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Issued (always the first).
    Issued(Box<Issued>),
    /// The business sent a proof.
    ProofAdded(Box<ProofAdded>),
    /// The inspector closed an item.
    Accepted(Accepted),
    /// The inspector sent an item back.
    Returned(Returned),
}

impl Event {
    /// The stored kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Issued(_) => "issued",
            Event::ProofAdded(_) => "proof_added",
            Event::Accepted(_) => "accepted",
            Event::Returned(_) => "returned",
        }
    }

    /// The stored payload.
    pub fn payload(&self) -> serde_json::Value {
        let v = match self {
            Event::Issued(e) => serde_json::to_value(e),
            Event::ProofAdded(e) => serde_json::to_value(e),
            Event::Accepted(e) => serde_json::to_value(e),
            Event::Returned(e) => serde_json::to_value(e),
        };
        // Plain structs of strings and numbers always serialize.
        v.unwrap_or(serde_json::Value::Null)
    }

    /// Decodes a stored event.
    pub fn from_parts(kind: &str, payload: &str) -> Result<Event, String> {
        let e = |e: serde_json::Error| e.to_string();
        Ok(match kind {
            "issued" => Event::Issued(Box::new(serde_json::from_str(payload).map_err(e)?)),
            "proof_added" => Event::ProofAdded(Box::new(serde_json::from_str(payload).map_err(e)?)),
            "accepted" => Event::Accepted(serde_json::from_str(payload).map_err(e)?),
            "returned" => Event::Returned(serde_json::from_str(payload).map_err(e)?),
            other => return Err(format!("unknown kind {other:?}")),
        })
    }
}

/// An event with its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    /// Seq.
    pub seq: u64,
    /// Server time, µs.
    pub ts: i64,
    /// Who (a user id, or the representative's sign-in link id).
    pub actor: Uuid,
    /// What.
    pub event: Event,
}

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Waiting for a proof.
    Open,
    /// A proof waits for the inspector's check.
    Submitted,
    /// Sent back; waiting for a new proof.
    Returned,
    /// Accepted: fixed.
    Closed,
}

/// Where a whole prescription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrescriptionStatus {
    /// Items are open (none overdue or returned).
    Open,
    /// Some item was sent back and waits for a new proof.
    Returned,
    /// Some open item is past its due date.
    Overdue,
    /// Every item is closed, some after its due date.
    Closed,
    /// Every item was closed by its due date: no repeat visit is needed.
    Fulfilled,
}

/// A proof in the log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProofEntry {
    /// Seq of its event.
    pub seq: u64,
    /// Server time, µs.
    pub ts: i64,
    /// The proof.
    #[serde(flatten)]
    pub proof: Proof,
}

/// A decision in the log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DecisionEntry {
    /// Seq of its event.
    pub seq: u64,
    /// Server time, µs.
    pub ts: i64,
    /// The inspector.
    pub by: Uuid,
    /// accept or return.
    pub decision: String,
    /// The comment of a return.
    pub comment: Option<String>,
    /// A new due date, µs.
    pub due_at: Option<i64>,
}

/// An item's state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ItemState {
    /// As issued.
    #[serde(flatten)]
    pub issued: IssuedItem,
    /// The due date now (a return may have moved it), µs.
    pub current_due_at: i64,
    /// Where it stands.
    pub status: ItemStatus,
    /// Open past its due date (at the time the state was judged).
    pub overdue: bool,
    /// When it was closed, µs.
    pub closed_at: Option<i64>,
    /// Proofs, oldest first.
    pub proofs: Vec<ProofEntry>,
    /// Decisions, oldest first.
    pub decisions: Vec<DecisionEntry>,
}

/// The state of a prescription: a pure fold of its log, judged at a time.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PrescriptionState {
    /// Issued with.
    pub inspection_id: Uuid,
    /// The inspection's log head at issue.
    pub inspection_head: InspectionHead,
    /// The issuing body.
    pub control_body: Option<IssuingBody>,
    /// The business.
    pub business: BusinessAtIssue,
    /// Site radius, metres.
    pub site_radius_m: f64,
    /// When it was issued, µs.
    pub issued_at: i64,
    /// Who issued it.
    pub issued_by: Uuid,
    /// Items in order.
    pub items: Vec<ItemState>,
    /// Where it stands.
    pub status: PrescriptionStatus,
    /// Every item closed by its due date: no repeat visit.
    pub no_repeat_visit: bool,
    /// The earliest due date of an item not closed, µs.
    pub next_due_at: Option<i64>,
    /// Items whose proof waits for the inspector.
    pub awaiting_check: usize,
    /// Proofs with a flag (far, spoofed, …) the inspector should look at.
    pub flagged_proofs: usize,
    /// Events in the log.
    pub events: u64,
}

impl PrescriptionState {
    /// Folds a log (oldest first) and judges it at `now` (µs). `None` for a log that does not
    /// start with `issued` (no such prescription).
    pub fn fold(log: &[Logged], now: i64) -> Option<PrescriptionState> {
        let (first, rest) = log.split_first()?;
        let Event::Issued(issued) = &first.event else {
            return None;
        };
        let mut st = PrescriptionState {
            inspection_id: issued.inspection_id,
            inspection_head: issued.inspection_head.clone(),
            control_body: issued.control_body.clone(),
            business: issued.business.clone(),
            site_radius_m: issued.site_radius_m,
            issued_at: first.ts,
            issued_by: first.actor,
            items: issued
                .items
                .iter()
                .map(|i| ItemState {
                    issued: i.clone(),
                    current_due_at: i.due_at,
                    status: ItemStatus::Open,
                    overdue: false,
                    closed_at: None,
                    proofs: Vec::new(),
                    decisions: Vec::new(),
                })
                .collect(),
            status: PrescriptionStatus::Open,
            no_repeat_visit: false,
            next_due_at: None,
            awaiting_check: 0,
            flagged_proofs: 0,
            events: log.len() as u64,
        };
        for e in rest {
            st.apply(e);
        }
        st.judge(now);
        Some(st)
    }

    fn item_mut(&mut self, id: &str) -> Option<&mut ItemState> {
        self.items.iter_mut().find(|i| i.issued.id == id)
    }

    fn apply(&mut self, e: &Logged) {
        // Events were checked by `check` before they were logged; one that does not fit (an
        // unknown item) changes nothing.
        match &e.event {
            Event::Issued(_) => {}
            Event::ProofAdded(p) => {
                if let Some(i) = self.item_mut(&p.item) {
                    i.proofs.push(ProofEntry {
                        seq: e.seq,
                        ts: e.ts,
                        proof: p.proof.clone(),
                    });
                    if i.status != ItemStatus::Closed {
                        i.status = ItemStatus::Submitted;
                    }
                }
            }
            Event::Accepted(a) => {
                if let Some(i) = self.item_mut(&a.item) {
                    i.status = ItemStatus::Closed;
                    i.closed_at = Some(e.ts);
                    i.decisions.push(DecisionEntry {
                        seq: e.seq,
                        ts: e.ts,
                        by: e.actor,
                        decision: "accept".into(),
                        comment: None,
                        due_at: None,
                    });
                }
            }
            Event::Returned(r) => {
                if let Some(i) = self.item_mut(&r.item) {
                    i.status = ItemStatus::Returned;
                    if let Some(d) = r.due_at {
                        i.current_due_at = d;
                    }
                    i.decisions.push(DecisionEntry {
                        seq: e.seq,
                        ts: e.ts,
                        by: e.actor,
                        decision: "return".into(),
                        comment: Some(r.comment.clone()),
                        due_at: r.due_at,
                    });
                }
            }
        }
    }

    fn judge(&mut self, now: i64) {
        for i in &mut self.items {
            i.overdue = i.status != ItemStatus::Closed && i.current_due_at < now;
        }
        let all_closed = self.items.iter().all(|i| i.status == ItemStatus::Closed);
        // "By its due date": the date the prescription set, or the one a return moved it to.
        let in_time = self
            .items
            .iter()
            .all(|i| i.closed_at.is_some_and(|c| c <= i.current_due_at));
        self.status = if all_closed && in_time {
            PrescriptionStatus::Fulfilled
        } else if all_closed {
            PrescriptionStatus::Closed
        } else if self.items.iter().any(|i| i.overdue) {
            PrescriptionStatus::Overdue
        } else if self.items.iter().any(|i| i.status == ItemStatus::Returned) {
            PrescriptionStatus::Returned
        } else {
            PrescriptionStatus::Open
        };
        self.no_repeat_visit = self.status == PrescriptionStatus::Fulfilled;
        self.next_due_at = self
            .items
            .iter()
            .filter(|i| i.status != ItemStatus::Closed)
            .map(|i| i.current_due_at)
            .min();
        self.awaiting_check = self
            .items
            .iter()
            .filter(|i| i.status == ItemStatus::Submitted)
            .count();
        self.flagged_proofs = self
            .items
            .iter()
            .flat_map(|i| i.proofs.iter())
            .filter(|p| !p.proof.flags.is_empty())
            .count();
    }

    /// Whether an open item is due within [`DUE_SOON_DAYS`] of `now` (and not yet overdue).
    pub fn due_soon(&self, now: i64) -> bool {
        let horizon = now + DUE_SOON_DAYS * 24 * 3600 * 1_000_000;
        self.items.iter().any(|i| {
            i.status != ItemStatus::Closed && i.current_due_at >= now && i.current_due_at <= horizon
        })
    }

    /// The item with this id.
    pub fn item(&self, id: &str) -> Option<&ItemState> {
        self.items.iter().find(|i| i.issued.id == id)
    }
}

/// Why an event may not be added (a stable code; the HTTP layer maps it to a status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such item in the prescription.
    UnknownItem,
    /// The item is closed: nothing more is added to it.
    ItemClosed,
    /// Accept or return needs a proof the inspector has not decided on yet.
    NoProof,
    /// The item has as many proofs or decisions as it may.
    ItemFull,
}

impl Refusal {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::UnknownItem => "unknown_item",
            Refusal::ItemClosed => "item_closed",
            Refusal::NoProof => "no_proof",
            Refusal::ItemFull => "item_full",
        }
    }
}

/// Whether `event` may follow the log whose state is `st` (the rules of the prescription).
pub fn check(st: &PrescriptionState, event: &Event) -> Result<(), Refusal> {
    let (item, decision) = match event {
        Event::Issued(_) => return Err(Refusal::UnknownItem),
        Event::ProofAdded(p) => (&p.item, false),
        Event::Accepted(a) => (&a.item, true),
        Event::Returned(r) => (&r.item, true),
    };
    let i = st.item(item).ok_or(Refusal::UnknownItem)?;
    if i.status == ItemStatus::Closed {
        return Err(Refusal::ItemClosed);
    }
    if decision {
        if i.status != ItemStatus::Submitted {
            return Err(Refusal::NoProof);
        }
        if i.decisions.len() >= MAX_DECISIONS_PER_ITEM {
            return Err(Refusal::ItemFull);
        }
    } else if i.proofs.len() >= MAX_PROOFS_PER_ITEM {
        return Err(Refusal::ItemFull);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600 * 1_000_000;

    fn issued(due: &[i64]) -> Logged {
        Logged {
            seq: 1,
            ts: 0,
            actor: Uuid::nil(),
            event: Event::Issued(Box::new(Issued {
                inspection_id: Uuid::nil(),
                inspection_head: InspectionHead {
                    seq: 1,
                    hash: "h".into(),
                },
                control_body: None,
                business: BusinessAtIssue {
                    inn: "7707083893".into(),
                    name: "n".into(),
                    address: "a".into(),
                    lat: None,
                    lon: None,
                },
                site_radius_m: 300.0,
                items: due
                    .iter()
                    .enumerate()
                    .map(|(n, d)| IssuedItem {
                        id: (n + 1).to_string(),
                        checklist_item: format!("c{n}"),
                        number: n.to_string(),
                        requirement: "r".into(),
                        legal_basis: "l".into(),
                        description: "d".into(),
                        due_at: *d,
                        evidence: vec![],
                    })
                    .collect(),
            })),
        }
    }

    fn proof(item: &str) -> Event {
        Event::ProofAdded(Box::new(ProofAdded {
            item: item.into(),
            proof: Proof {
                id: Uuid::nil(),
                kind: "photo".into(),
                sha256: "0".repeat(64),
                size: 1,
                media_type: "image/jpeg".into(),
                width: Some(1),
                height: Some(1),
                captured_at: None,
                received_at: 0,
                location: None,
                samples: 0,
                verdict: None,
                distance_m: None,
                within_radius: None,
                flags: vec!["no_location".into()],
            },
        }))
    }

    fn log_of(due: &[i64], events: Vec<(i64, Event)>) -> Vec<Logged> {
        let mut log = vec![issued(due)];
        for (n, (ts, event)) in events.into_iter().enumerate() {
            log.push(Logged {
                seq: n as u64 + 2,
                ts,
                actor: Uuid::nil(),
                event,
            });
        }
        log
    }

    #[test]
    fn return_then_accept_in_time_is_fulfilled() {
        let log = log_of(
            &[10 * DAY, 10 * DAY],
            vec![
                (DAY, proof("1")),
                (DAY, proof("2")),
                (
                    2 * DAY,
                    Event::Returned(Returned {
                        item: "1".into(),
                        comment: "c".into(),
                        due_at: Some(12 * DAY),
                    }),
                ),
                (2 * DAY, Event::Accepted(Accepted { item: "2".into() })),
            ],
        );
        let st = PrescriptionState::fold(&log, 3 * DAY).unwrap();
        assert_eq!(st.status, PrescriptionStatus::Returned);
        assert_eq!(st.items[0].current_due_at, 12 * DAY);
        assert_eq!(check(&st, &proof("2")), Err(Refusal::ItemClosed));
        assert_eq!(
            check(&st, &Event::Accepted(Accepted { item: "1".into() })),
            Err(Refusal::NoProof)
        );
        let mut log = log;
        log.push(Logged {
            seq: 6,
            ts: 11 * DAY,
            actor: Uuid::nil(),
            event: proof("1"),
        });
        log.push(Logged {
            seq: 7,
            ts: 11 * DAY,
            actor: Uuid::nil(),
            event: Event::Accepted(Accepted { item: "1".into() }),
        });
        let st = PrescriptionState::fold(&log, 20 * DAY).unwrap();
        assert_eq!(st.status, PrescriptionStatus::Fulfilled);
        assert!(st.no_repeat_visit);
        assert_eq!(st.flagged_proofs, 3);
    }

    #[test]
    fn overdue_and_late_closing() {
        let log = log_of(&[DAY], vec![]);
        assert_eq!(
            PrescriptionState::fold(&log, 0).unwrap().status,
            PrescriptionStatus::Open
        );
        assert!(PrescriptionState::fold(&log, 0).unwrap().due_soon(0));
        let st = PrescriptionState::fold(&log, 2 * DAY).unwrap();
        assert_eq!(st.status, PrescriptionStatus::Overdue);
        assert!(st.items[0].overdue);
        let log = log_of(
            &[DAY],
            vec![
                (2 * DAY, proof("1")),
                (3 * DAY, Event::Accepted(Accepted { item: "1".into() })),
            ],
        );
        let st = PrescriptionState::fold(&log, 4 * DAY).unwrap();
        assert_eq!(st.status, PrescriptionStatus::Closed);
        assert!(!st.no_repeat_visit);
        assert_eq!(
            check(&st, &proof("9")),
            Err(Refusal::UnknownItem),
            "unknown item"
        );
    }
}
