//! The scheduler's pure core: what to plan for a schedule, whether a due row is still wanted,
//! what follows an attempt (sent, retry with backoff, failed). No clock and no IO: `now` is
//! an argument (µs since the epoch), so the tests drive time.

use uuid::Uuid;

use crate::domain::Status;

/// Why a message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// The notice of the event (revision `seq`: 0 first, higher after a reschedule).
    Notice,
    /// The event is cancelled.
    Cancel,
    /// A reminder `offset_secs` before the start.
    Reminder,
}

impl Purpose {
    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Notice => "notice",
            Purpose::Cancel => "cancel",
            Purpose::Reminder => "reminder",
        }
    }

    /// Parses a stored code.
    pub fn parse(s: &str) -> Option<Purpose> {
        Some(match s {
            "notice" => Purpose::Notice,
            "cancel" => Purpose::Cancel,
            "reminder" => Purpose::Reminder,
            _ => return None,
        })
    }
}

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its due time (or its retry).
    Pending,
    /// Claimed by a node, which records the outcome before its lease ends.
    Sending,
    /// Accepted by the channel (the SMTP server, the push service).
    Sent,
    /// Refused for good, or retried too often.
    Failed,
    /// Found in `sending` after its lease: the node died between the attempt and its result.
    /// Reported, never resent (it may have arrived).
    Unknown,
    /// No longer wanted: superseded by a reschedule, the inspection cancelled or started.
    Dropped,
}

impl DeliveryState {
    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sending => "sending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Unknown => "unknown",
            DeliveryState::Dropped => "dropped",
        }
    }

    /// Parses a stored code.
    pub fn parse(s: &str) -> Option<DeliveryState> {
        Some(match s {
            "pending" => DeliveryState::Pending,
            "sending" => DeliveryState::Sending,
            "sent" => DeliveryState::Sent,
            "failed" => DeliveryState::Failed,
            "unknown" => DeliveryState::Unknown,
            "dropped" => DeliveryState::Dropped,
            _ => return None,
        })
    }
}

/// Who a contact belongs to, for an inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The inspected business: notice, reminders, cancellation.
    Business,
    /// The responsible inspector: reminders.
    Inspector,
}

/// A contact to plan for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    /// The contact row.
    pub contact_id: Uuid,
    /// Whose it is.
    pub audience: Audience,
}

/// One row to insert (the unique key makes inserting it twice a no-op).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// Why.
    pub purpose: Purpose,
    /// Seconds before the start (reminders; 0 otherwise).
    pub offset_secs: i64,
    /// To whom.
    pub contact_id: Uuid,
    /// The schedule's revision.
    pub seq: i64,
    /// When, µs.
    pub due_at: i64,
}

const SEC: i64 = 1_000_000;

/// The messages a scheduled inspection (start `scheduled_at`, revision `seq`) owes its
/// recipients at `now`: the notice to the business at once, and each reminder whose time is
/// still ahead (a reminder already past when the schedule is made is not sent late).
pub fn plan(
    scheduled_at: i64,
    seq: i64,
    recipients: &[Recipient],
    offsets_secs: &[u64],
    now: i64,
) -> Vec<Planned> {
    let mut out = Vec::new();
    for r in recipients {
        if r.audience == Audience::Business {
            out.push(Planned {
                purpose: Purpose::Notice,
                offset_secs: 0,
                contact_id: r.contact_id,
                seq,
                due_at: now,
            });
        }
        for &off in offsets_secs {
            let off = i64::try_from(off)
                .unwrap_or(i64::MAX / SEC)
                .min(i64::MAX / SEC);
            let due = scheduled_at.saturating_sub(off * SEC);
            if due > now {
                out.push(Planned {
                    purpose: Purpose::Reminder,
                    offset_secs: off,
                    contact_id: r.contact_id,
                    seq,
                    due_at: due,
                });
            }
        }
    }
    out
}

/// The cancellation owed to a business contact that got a notice (revision `seq` of the
/// cancelled schedule), due at once.
pub fn plan_cancel(contact_id: Uuid, seq: i64, now: i64) -> Planned {
    Planned {
        purpose: Purpose::Cancel,
        offset_secs: 0,
        contact_id,
        seq,
        due_at: now,
    }
}

/// Whether a claimed row is still to be sent, judged from the inspection as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// Drop it, with this code.
    Drop(&'static str),
}

/// A notice or reminder only while the inspection is scheduled, for its current revision, and
/// before the start; a cancellation only once it is cancelled.
pub fn judge(
    purpose: Purpose,
    row_seq: i64,
    status: Status,
    current_seq: i64,
    scheduled_at: i64,
    now: i64,
) -> Verdict {
    match purpose {
        Purpose::Cancel if status == Status::Cancelled => Verdict::Send,
        Purpose::Cancel => Verdict::Drop("not_cancelled"),
        _ if status == Status::Cancelled => Verdict::Drop("cancelled"),
        _ if status != Status::Scheduled => Verdict::Drop("started"),
        _ if row_seq != current_seq => Verdict::Drop("superseded"),
        Purpose::Reminder if now >= scheduled_at => Verdict::Drop("too_late"),
        _ => Verdict::Send,
    }
}

/// What a channel said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted.
    Sent,
    /// Failed for now (connection refused, timeout, a 4xx SMTP reply): retry later.
    Temporary(&'static str),
    /// Failed for good (a 5xx reply, an invalid address).
    Permanent(&'static str),
    /// The contact no longer exists at the other end (an expired push subscription): the
    /// contact is removed.
    Gone(&'static str),
}

/// Retries of temporary failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts at most (the first included).
    pub max_attempts: u32,
    /// The first wait, seconds; doubled after every further failure.
    pub base_secs: u64,
    /// The longest wait, seconds.
    pub max_secs: u64,
}

/// The row's next state after attempt number `attempts` (1 for the first) ended in `outcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Sent at `now`.
    Sent,
    /// Back to pending, due at `due_at`, with the failure's code.
    Retry {
        /// When to try again, µs.
        due_at: i64,
        /// The failure.
        code: &'static str,
    },
    /// Failed for good.
    Failed(&'static str),
    /// Failed for good, and the contact is to be removed.
    RemoveContact(&'static str),
}

/// The wait before attempt `attempts + 1`: `base · 2^(attempts−1)`, at most `max`.
pub fn backoff_secs(policy: &RetryPolicy, attempts: u32) -> u64 {
    let shift = attempts.saturating_sub(1).min(30);
    policy
        .base_secs
        .saturating_mul(1u64 << shift)
        .min(policy.max_secs)
}

/// Decides what follows an attempt.
pub fn after_attempt(policy: &RetryPolicy, attempts: u32, outcome: &Outcome, now: i64) -> Next {
    match outcome {
        Outcome::Sent => Next::Sent,
        Outcome::Permanent(code) => Next::Failed(code),
        Outcome::Gone(code) => Next::RemoveContact(code),
        Outcome::Temporary(code) if attempts >= policy.max_attempts => Next::Failed(code),
        Outcome::Temporary(code) => {
            let wait = i64::try_from(backoff_secs(policy, attempts)).unwrap_or(i64::MAX / SEC);
            Next::Retry {
                due_at: now.saturating_add(wait.saturating_mul(SEC)),
                code,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600 * SEC;
    const OFFSETS: [u64; 3] = [7 * 86_400, 86_400, 3600];

    fn business() -> Recipient {
        Recipient {
            contact_id: Uuid::from_u128(1),
            audience: Audience::Business,
        }
    }

    fn inspector() -> Recipient {
        Recipient {
            contact_id: Uuid::from_u128(2),
            audience: Audience::Inspector,
        }
    }

    #[test]
    fn a_schedule_ten_days_ahead_plans_the_notice_and_three_reminders_each() {
        let now = 1_000_000 * SEC;
        let start = now + 240 * H;
        let p = plan(start, 0, &[business(), inspector()], &OFFSETS, now);
        let mut business_rows: Vec<_> = p
            .iter()
            .filter(|r| r.contact_id == business().contact_id)
            .map(|r| (r.purpose, r.due_at))
            .collect();
        business_rows.sort_by_key(|r| r.1);
        assert_eq!(
            business_rows,
            vec![
                (Purpose::Notice, now),
                (Purpose::Reminder, start - 168 * H),
                (Purpose::Reminder, start - 24 * H),
                (Purpose::Reminder, start - H),
            ]
        );
        // The inspector gets reminders, never the notice.
        let inspector_rows: Vec<_> = p
            .iter()
            .filter(|r| r.contact_id == inspector().contact_id)
            .collect();
        assert_eq!(inspector_rows.len(), 3);
        assert!(inspector_rows
            .iter()
            .all(|r| r.purpose == Purpose::Reminder));
    }

    #[test]
    fn reminders_already_past_are_not_planned() {
        let now = 1_000_000 * SEC;
        let p = plan(now + 2 * H, 3, &[business()], &OFFSETS, now);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].purpose, Purpose::Notice);
        assert_eq!((p[1].offset_secs, p[1].seq), (3600, 3));
        // Exactly at its time is past, too (it would fire at once, as late as the notice).
        let p = plan(now + H, 0, &[inspector()], &OFFSETS, now);
        assert!(p.is_empty());
    }

    #[test]
    fn judge_follows_the_inspection() {
        let (start, now) = (100 * H, 10 * H);
        use Purpose::*;
        assert_eq!(
            judge(Reminder, 1, Status::Scheduled, 1, start, now),
            Verdict::Send
        );
        assert_eq!(
            judge(Reminder, 0, Status::Scheduled, 1, start, now),
            Verdict::Drop("superseded")
        );
        assert_eq!(
            judge(Reminder, 1, Status::Live, 1, start, now),
            Verdict::Drop("started")
        );
        assert_eq!(
            judge(Notice, 1, Status::Cancelled, 1, start, now),
            Verdict::Drop("cancelled")
        );
        assert_eq!(
            judge(Reminder, 1, Status::Scheduled, 1, start, start),
            Verdict::Drop("too_late")
        );
        assert_eq!(
            judge(Cancel, 1, Status::Cancelled, 1, start, now),
            Verdict::Send
        );
        assert_eq!(
            judge(Cancel, 1, Status::Scheduled, 1, start, now),
            Verdict::Drop("not_cancelled")
        );
    }

    #[test]
    fn temporary_failures_back_off_then_fail() {
        let policy = RetryPolicy {
            max_attempts: 4,
            base_secs: 60,
            max_secs: 150,
        };
        let now = 50 * H;
        let t = Outcome::Temporary("smtp_connect");
        assert_eq!(
            after_attempt(&policy, 1, &t, now),
            Next::Retry {
                due_at: now + 60 * SEC,
                code: "smtp_connect"
            }
        );
        assert_eq!(
            after_attempt(&policy, 2, &t, now),
            Next::Retry {
                due_at: now + 120 * SEC,
                code: "smtp_connect"
            }
        );
        // Capped.
        assert_eq!(
            after_attempt(&policy, 3, &t, now),
            Next::Retry {
                due_at: now + 150 * SEC,
                code: "smtp_connect"
            }
        );
        assert_eq!(
            after_attempt(&policy, 4, &t, now),
            Next::Failed("smtp_connect")
        );
        assert_eq!(
            after_attempt(&policy, 1, &Outcome::Permanent("smtp_rejected"), now),
            Next::Failed("smtp_rejected")
        );
        assert_eq!(
            after_attempt(&policy, 1, &Outcome::Gone("push_gone"), now),
            Next::RemoveContact("push_gone")
        );
        assert_eq!(after_attempt(&policy, 1, &Outcome::Sent, now), Next::Sent);
        // No overflow for absurd attempt counts.
        assert_eq!(backoff_secs(&policy, u32::MAX), 150);
    }

    #[test]
    fn codes_round_trip() {
        for p in [Purpose::Notice, Purpose::Cancel, Purpose::Reminder] {
            assert_eq!(Purpose::parse(p.as_str()), Some(p));
        }
        for s in [
            DeliveryState::Pending,
            DeliveryState::Sending,
            DeliveryState::Sent,
            DeliveryState::Failed,
            DeliveryState::Unknown,
            DeliveryState::Dropped,
        ] {
            assert_eq!(DeliveryState::parse(s.as_str()), Some(s));
        }
    }
}
