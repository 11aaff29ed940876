//! The key lifetime contract, on the rotator's side.
//!
//! The API hands a key out with `Expiration = fetch time + interval` and promises that the
//! key works until then. A key is only handed out while it is AWSCURRENT, so the last promise
//! made for it ends at most one interval after it stopped being AWSCURRENT; finishSecret
//! records that moment (`until=` in the key's mark). createSecret then deletes a superseded
//! key only once its promise has run out. When it has not, and no slot is free, the rotation
//! carries the current key forward instead of minting one: it completes cleanly and deletes
//! nothing promised, whatever started it (tick, native window, operator, deploy, retry).

use super::ledger::KeyLedger;
use super::ports::AccessKeyInfo;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

/// IAM's limit of access keys per user.
pub const KEYS_PER_USER: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLifetime {
    /// The rotation interval: how long after fetching a client may use a key.
    pub interval: Duration,
    /// The longest createSecret waits for a promise that is about to run out, rather than
    /// carry the current key forward. On the tick, the previous key's promise ends as much
    /// later than the tick as the previous rotation took to finish (its STS wait).
    pub max_wait: Duration,
}

impl KeyLifetime {
    /// No promise at all: every rotation may delete the superseded key (unit and fault tests).
    pub const NONE: Self = Self {
        interval: Duration::ZERO,
        max_wait: Duration::ZERO,
    };

    /// When the promise for a key that stops being AWSCURRENT at `now` ends. `handed_out_for`
    /// is the interval the key was handed out under (its secret value's `IntervalSeconds`),
    /// which may exceed ours during a deploy that shortens the interval. Rounded up to whole
    /// seconds, as the mark stores it; `None` only if the clock overflows.
    pub fn promise_end(
        &self,
        now: SystemTime,
        handed_out_for: Option<Duration>,
    ) -> Option<SystemTime> {
        let interval = self.interval.max(handed_out_for.unwrap_or_default());
        if interval.is_zero() {
            return Some(now);
        }
        now.checked_add(interval)?
            .checked_add(Duration::from_secs(1))
    }
}

/// What createSecret does with the user's key slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A slot is (or, after the deletions, will be) free: create the next key.
    Mint,
    /// Every slot is held by the current key and a key still promised to clients: store the
    /// current key again as the new version.
    CarryForward {
        promised_key: String,
        until: SystemTime,
    },
    /// Slots are held by keys keyrot did not create (or, with no current key to carry
    /// forward, by promised ones).
    NoFreeSlot {
        foreign_keys: Vec<String>,
        promised_keys: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPlan {
    /// Promise ends to record first: a superseded key whose finishSecret never recorded one.
    pub record: Vec<(String, SystemTime)>,
    /// Sleep until then before deleting (a promise about to run out).
    pub wait_until: Option<SystemTime>,
    /// Keys to delete, with the reason for the log.
    pub retire: Vec<(String, &'static str)>,
    pub decision: Decision,
}

/// The facts createSecret plans from.
pub struct Slots<'a> {
    pub secret: &'a str,
    pub keys: &'a [AccessKeyInfo],
    pub ledger: &'a KeyLedger,
    /// The AWSCURRENT value's key.
    pub current_key: Option<&'a str>,
    /// The AWSPREVIOUS value's key, when it differs from the current one, with the interval
    /// it was handed out under.
    pub previous_key: Option<(&'a str, Option<Duration>)>,
    /// Unmarked keys whose creation response was lost (never seen by anyone).
    pub lost: &'a HashSet<String>,
}

pub fn plan(slots: &Slots<'_>, lifetime: &KeyLifetime, now: SystemTime) -> SlotPlan {
    let mut record = Vec::new();
    let mut retire = Vec::new();
    let mut waiting: Vec<(String, SystemTime)> = Vec::new();
    let mut promised: Vec<(String, SystemTime)> = Vec::new();
    let mut foreign = Vec::new();
    let mut current_exists = false;
    for key in slots.keys {
        let id = key.id.as_str();
        if Some(id) == slots.current_key {
            current_exists = true;
            continue;
        }
        let Some(mark) = slots.ledger.mark_for(id, slots.secret) else {
            if slots.lost.contains(id) {
                retire.push((id.to_owned(), "creation_response_lost"));
            } else {
                foreign.push(id.to_owned());
            }
            continue;
        };
        let until = match (mark.until, slots.previous_key) {
            (Some(until), _) => until,
            // Superseded, but finishSecret did not get to record when: count from now, which
            // is never earlier than the truth.
            (None, Some((previous, handed_out_for))) if previous == id => {
                match lifetime.promise_end(now, handed_out_for) {
                    Some(until) if until > now => {
                        record.push((id.to_owned(), until));
                        until
                    }
                    _ => now,
                }
            }
            // Made by an attempt that never finished: never AWSCURRENT, never handed out.
            (None, _) => {
                retire.push((id.to_owned(), "abandoned_attempt"));
                continue;
            }
        };
        match until.duration_since(now) {
            Err(_) | Ok(Duration::ZERO) => retire.push((id.to_owned(), "promise_ended")),
            Ok(left) if left <= lifetime.max_wait => waiting.push((id.to_owned(), until)),
            Ok(_) => promised.push((id.to_owned(), until)),
        }
    }

    let kept = usize::from(current_exists) + waiting.len() + promised.len() + foreign.len();
    let mut wait_until = None;
    let decision = if kept < KEYS_PER_USER {
        Decision::Mint
    } else if kept - waiting.len() < KEYS_PER_USER && !waiting.is_empty() {
        wait_until = waiting.iter().map(|(_, until)| *until).max();
        retire.extend(waiting.drain(..).map(|(id, _)| (id, "promise_ended")));
        Decision::Mint
    } else {
        promised.extend(waiting);
        promised.sort_by_key(|(_, until)| *until);
        match promised.first() {
            Some((id, until)) if current_exists => Decision::CarryForward {
                promised_key: id.clone(),
                until: *until,
            },
            _ => Decision::NoFreeSlot {
                foreign_keys: foreign,
                promised_keys: promised.into_iter().map(|(id, _)| id).collect(),
            },
        }
    };
    SlotPlan {
        record,
        wait_until,
        retire,
        decision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam_key::ledger::{managed_tag_value, ManagedMark};
    use std::time::UNIX_EPOCH;

    const SECRET: &str = "keyrot/iam/alice";
    const LIFETIME: KeyLifetime = KeyLifetime {
        interval: Duration::from_secs(600),
        max_wait: Duration::from_secs(60),
    };

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn key(id: &str) -> AccessKeyInfo {
        AccessKeyInfo {
            id: id.into(),
            active: true,
            created: Some(at(0)),
        }
    }

    /// Tags marking `id` for SECRET, with the promise ending at `until` (if any).
    fn mark(id: &str, until: Option<u64>) -> (String, String) {
        let value = managed_tag_value(SECRET, "tok").expect("fits");
        let value = match until {
            Some(seconds) => ManagedMark {
                secret: SECRET.into(),
                version: "tok".into(),
                until: None,
            }
            .with_until(at(seconds)),
            None => value,
        };
        (id.to_owned(), value)
    }

    fn plan_for(
        keys: &[&str],
        tags: &[(String, String)],
        previous: Option<&str>,
        now: u64,
    ) -> SlotPlan {
        let keys: Vec<AccessKeyInfo> = keys.iter().map(|id| key(id)).collect();
        let ledger = KeyLedger::from_tags(tags);
        let lost = HashSet::new();
        plan(
            &Slots {
                secret: SECRET,
                keys: &keys,
                ledger: &ledger,
                current_key: Some("CUR"),
                previous_key: previous.map(|id| (id, None)),
                lost: &lost,
            },
            &LIFETIME,
            at(now),
        )
    }

    #[test]
    fn a_key_whose_promise_ran_out_is_deleted_and_the_next_one_minted() {
        let plan = plan_for(&["CUR", "OLD"], &[mark("OLD", Some(1000))], None, 1000);
        assert_eq!(plan.retire, vec![("OLD".to_owned(), "promise_ended")]);
        assert_eq!(plan.decision, Decision::Mint);
        assert_eq!(plan.wait_until, None);
    }

    #[test]
    fn a_promise_about_to_end_is_waited_for() {
        let plan = plan_for(&["CUR", "OLD"], &[mark("OLD", Some(1030))], None, 1000);
        assert_eq!(plan.wait_until, Some(at(1030)));
        assert_eq!(plan.retire, vec![("OLD".to_owned(), "promise_ended")]);
        assert_eq!(plan.decision, Decision::Mint);
    }

    #[test]
    fn an_early_rotation_carries_the_current_key_forward() {
        let plan = plan_for(&["CUR", "OLD"], &[mark("OLD", Some(1500))], None, 1000);
        assert!(plan.retire.is_empty());
        assert_eq!(
            plan.decision,
            Decision::CarryForward {
                promised_key: "OLD".into(),
                until: at(1500)
            }
        );
    }

    #[test]
    fn a_free_slot_is_used_without_touching_a_promised_key() {
        let plan = plan_for(&["OLD"], &[mark("OLD", Some(1500))], None, 1000);
        assert!(plan.retire.is_empty());
        assert_eq!(plan.decision, Decision::Mint);
    }

    #[test]
    fn a_superseded_key_without_a_recorded_promise_gets_one_from_now() {
        let plan = plan_for(&["CUR", "OLD"], &[mark("OLD", None)], Some("OLD"), 1000);
        assert_eq!(plan.record, vec![("OLD".to_owned(), at(1601))]);
        assert!(matches!(plan.decision, Decision::CarryForward { .. }));
    }

    #[test]
    fn keys_of_abandoned_attempts_and_lost_creations_go_at_once() {
        let plan = plan_for(
            &["CUR", "ABANDONED"],
            &[mark("ABANDONED", None)],
            None,
            1000,
        );
        assert_eq!(
            plan.retire,
            vec![("ABANDONED".to_owned(), "abandoned_attempt")]
        );
        assert_eq!(plan.decision, Decision::Mint);
    }

    #[test]
    fn hand_made_keys_are_never_retired_and_block_when_no_slot_is_left() {
        let plan = plan_for(&["CUR", "LAPTOP"], &[], None, 1000);
        assert!(plan.retire.is_empty());
        assert_eq!(
            plan.decision,
            Decision::NoFreeSlot {
                foreign_keys: vec!["LAPTOP".into()],
                promised_keys: vec![]
            }
        );
    }

    #[test]
    fn without_a_promise_every_superseded_key_goes() {
        let keys = [key("CUR"), key("OLD")];
        let ledger = KeyLedger::from_tags(&[mark("OLD", None)]);
        let lost = HashSet::new();
        let plan = plan(
            &Slots {
                secret: SECRET,
                keys: &keys,
                ledger: &ledger,
                current_key: Some("CUR"),
                previous_key: Some(("OLD", None)),
                lost: &lost,
            },
            &KeyLifetime::NONE,
            at(1000),
        );
        assert!(plan.record.is_empty());
        assert_eq!(plan.retire, vec![("OLD".to_owned(), "promise_ended")]);
        assert_eq!(plan.decision, Decision::Mint);
    }

    #[test]
    fn the_longer_of_the_two_intervals_is_promised() {
        let end = LIFETIME
            .promise_end(at(0), Some(Duration::from_secs(1200)))
            .expect("no overflow");
        assert_eq!(end, at(1201));
        assert_eq!(LIFETIME.promise_end(at(0), None), Some(at(601)));
    }
}
