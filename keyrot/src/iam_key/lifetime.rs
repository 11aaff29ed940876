//! The key lifetime contract, on the rotator's side.
//!
//! Two modes, by whether the secret has a sibling slot (see [`crate::key_slots`]):
//!
//! * **Slots.** A key is retired at a tick of its own slot fixed when it was minted
//!   (`ExpiresAt`), and only once the other slot holds a newer working key, so the newest key
//!   is never retired. The tick retires its own key and mints the next one at once: no wait.
//!   An early rotation (operator, deploy, retry) finds its key still promised and carries it
//!   forward; so does a tick whose key is still the newest (the other slot failed), with the
//!   next retirement tick.
//! * **One secret** (before the upgrade adds the second slot, and the tests' single secret):
//!   the API hands a key out with `Expiration = fetch time + interval`, so a superseded key's
//!   promise ends one interval after it stopped being AWSCURRENT (finishSecret records that
//!   in its mark). createSecret deletes it only then, waits briefly for a promise about to
//!   end, or carries the current key forward instead of minting.
//!
//! Either way a rotation completes cleanly and deletes nothing promised, whatever started it.

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
    /// Slots: this slot's key stays (still promised, or still the newest): store it again.
    KeepCurrent { reason: &'static str },
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
    /// The other slot, when the user has two; `None` for a user with one secret.
    pub sibling: Option<Sibling<'a>>,
}

/// The other slot, as createSecret found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sibling<'a> {
    pub secret: &'a str,
    /// Its AWSCURRENT value's key.
    pub current_key: Option<&'a str>,
    /// Its key is newer than ours, it is not rotating, and its last rotation completed more
    /// than a rotation's allowance ago: no client has been handed our key since then.
    pub supersedes_ours: bool,
    /// Our key's retirement tick (its `ExpiresAt`), if recorded.
    pub our_retirement: Option<SystemTime>,
}

pub fn plan(slots: &Slots<'_>, lifetime: &KeyLifetime, now: SystemTime) -> SlotPlan {
    match slots.sibling {
        Some(sibling) => plan_with_sibling(slots, &sibling, now),
        None => plan_one_secret(slots, lifetime, now),
    }
}

/// How a key that is not the slot's current one stands, by its mark.
enum Standing {
    Retire(&'static str),
    /// Promised until then.
    Promised(SystemTime),
    /// Someone else's: the other slot's rotation in flight, or a key keyrot did not create.
    Kept,
}

fn plan_with_sibling(slots: &Slots<'_>, sibling: &Sibling<'_>, now: SystemTime) -> SlotPlan {
    let mut retire = Vec::new();
    let mut kept = 0usize;
    let mut waiting: Vec<(String, SystemTime)> = Vec::new();
    let mut foreign = Vec::new();
    let mut promised = Vec::new();
    let mut current_kept = false;
    for key in slots.keys {
        let id = key.id.as_str();
        if Some(id) == slots.current_key {
            let retirement_due = sibling.our_retirement.is_some_and(|at| at <= now);
            if retirement_due && sibling.supersedes_ours {
                retire.push((id.to_owned(), "retirement_tick"));
            } else {
                current_kept = true;
            }
            continue;
        }
        if Some(id) == sibling.current_key {
            kept += 1;
            continue;
        }
        let own = slots.ledger.mark_for(id, slots.secret);
        let theirs = slots.ledger.mark_for(id, sibling.secret);
        let standing = match (own, theirs) {
            (Some(mark), _) | (None, Some(mark)) => match mark.until {
                Some(until) if until <= now => Standing::Retire("promise_ended"),
                Some(until) => Standing::Promised(until),
                // Our own attempt that never became current; the other slot's is its own.
                None if own.is_some() => Standing::Retire("abandoned_attempt"),
                None => Standing::Kept,
            },
            (None, None) if slots.lost.contains(id) => Standing::Retire("creation_response_lost"),
            (None, None) => {
                foreign.push(id.to_owned());
                Standing::Kept
            }
        };
        match standing {
            Standing::Retire(reason) => retire.push((id.to_owned(), reason)),
            Standing::Promised(until) if until <= now + MAX_LEGACY_WAIT => {
                waiting.push((id.to_owned(), until))
            }
            Standing::Promised(_) => {
                promised.push(id.to_owned());
                kept += 1;
            }
            Standing::Kept => kept += 1,
        }
    }
    let mut wait_until = None;
    let decision = if current_kept {
        let reason = if sibling.our_retirement.is_some_and(|at| at <= now) {
            "still_the_newest_key"
        } else {
            "still_promised"
        };
        Decision::KeepCurrent { reason }
    } else if kept + waiting.len() < KEYS_PER_USER {
        Decision::Mint
    } else if kept < KEYS_PER_USER && !waiting.is_empty() {
        // A key of the one-secret era whose promise ends within the allowance (an upgrade).
        wait_until = waiting.iter().map(|(_, until)| *until).max();
        retire.extend(waiting.drain(..).map(|(id, _)| (id, "promise_ended")));
        Decision::Mint
    } else {
        promised.extend(waiting.into_iter().map(|(id, _)| id));
        Decision::NoFreeSlot {
            foreign_keys: foreign,
            promised_keys: promised,
        }
    };
    SlotPlan {
        record: Vec::new(),
        wait_until,
        retire,
        decision,
    }
}

/// Slots mode never waits for its own key; a key marked in the one-secret era (an upgrade)
/// may still be waited for this long, as the one-secret mode does.
const MAX_LEGACY_WAIT: Duration = Duration::from_secs(60);

fn plan_one_secret(slots: &Slots<'_>, lifetime: &KeyLifetime, now: SystemTime) -> SlotPlan {
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
        let value = managed_tag_value(SECRET, "tok", Duration::from_secs(600)).expect("fits");
        let value = match until {
            Some(seconds) => ManagedMark {
                secret: SECRET.into(),
                version: "tok".into(),
                interval: Some(Duration::from_secs(600)),
                attempt: None,
                until: None,
                tag_key: String::new(),
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
                sibling: None,
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
                sibling: None,
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

    const SIBLING: &str = "keyrot/iam/alice/b";

    fn sibling_mark(id: &str, until: Option<u64>) -> (String, String) {
        let mark = ManagedMark {
            secret: SIBLING.into(),
            version: "tok".into(),
            interval: Some(Duration::from_secs(600)),
            attempt: None,
            until: None,
            tag_key: String::new(),
        };
        let value = match until {
            Some(seconds) => mark.with_until(at(seconds)),
            None => managed_tag_value(SIBLING, "tok", Duration::from_secs(600)).expect("fits"),
        };
        (id.to_owned(), value)
    }

    /// Slot A of alice holding CUR (retired at `retirement`), slot B holding `theirs`.
    fn plan_slots(
        keys: &[&str],
        tags: &[(String, String)],
        theirs: Option<&str>,
        supersedes_ours: bool,
        retirement: Option<u64>,
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
                previous_key: None,
                lost: &lost,
                sibling: Some(Sibling {
                    secret: SIBLING,
                    current_key: theirs,
                    supersedes_ours,
                    our_retirement: retirement.map(at),
                }),
            },
            &LIFETIME,
            at(now),
        )
    }

    #[test]
    fn slots_the_tick_retires_its_own_key_and_mints_without_waiting() {
        let plan = plan_slots(
            &["CUR", "THEIRS"],
            &[],
            Some("THEIRS"),
            true,
            Some(1200),
            1200,
        );
        assert_eq!(plan.retire, vec![("CUR".to_owned(), "retirement_tick")]);
        assert_eq!(plan.decision, Decision::Mint);
        assert_eq!(plan.wait_until, None);
    }

    #[test]
    fn slots_an_early_rotation_keeps_the_promised_key() {
        let plan = plan_slots(
            &["CUR", "THEIRS"],
            &[],
            Some("THEIRS"),
            true,
            Some(1200),
            1100,
        );
        assert!(plan.retire.is_empty());
        assert_eq!(
            plan.decision,
            Decision::KeepCurrent {
                reason: "still_promised"
            }
        );
    }

    #[test]
    fn slots_the_newest_key_is_never_retired() {
        // The other slot's tick failed: our key is still the newest at our tick.
        let plan = plan_slots(
            &["CUR", "THEIRS"],
            &[],
            Some("THEIRS"),
            false,
            Some(1200),
            1300,
        );
        assert!(plan.retire.is_empty());
        assert_eq!(
            plan.decision,
            Decision::KeepCurrent {
                reason: "still_the_newest_key"
            }
        );
        // The other slot holds no key at all: the same.
        let plan = plan_slots(&["CUR"], &[], None, false, Some(1200), 1300);
        assert_eq!(
            plan.decision,
            Decision::KeepCurrent {
                reason: "still_the_newest_key"
            }
        );
    }

    /// Slot A of alice holding no key of its own, slot B holding `theirs`.
    fn plan_keyless_slot(
        keys: &[&str],
        tags: &[(String, String)],
        theirs: &str,
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
                current_key: None,
                previous_key: None,
                lost: &lost,
                sibling: Some(Sibling {
                    secret: SIBLING,
                    current_key: Some(theirs),
                    supersedes_ours: false,
                    our_retirement: None,
                }),
            },
            &LIFETIME,
            at(now),
        )
    }

    #[test]
    fn slots_an_empty_slot_mints_beside_the_other_slots_key() {
        let plan = plan_keyless_slot(&["THEIRS"], &[], "THEIRS", 1000);
        assert_eq!(plan.decision, Decision::Mint);
        assert!(plan.retire.is_empty());
    }

    #[test]
    fn slots_leave_the_other_slots_attempts_alone_and_hand_made_keys_block() {
        // Our key goes at its tick; the other slot's unfinished attempt stays: no free slot.
        let plan = plan_slots(
            &["CUR", "THEIRS_NEW"],
            &[sibling_mark("THEIRS_NEW", None)],
            Some("GONE"),
            true,
            Some(1200),
            1200,
        );
        assert_eq!(plan.retire, vec![("CUR".to_owned(), "retirement_tick")]);
        assert_eq!(plan.decision, Decision::Mint);
        let plan = plan_slots(
            &["CUR", "THEIRS", "LAPTOP"],
            &[],
            Some("THEIRS"),
            true,
            Some(1200),
            1200,
        );
        assert_eq!(
            plan.decision,
            Decision::NoFreeSlot {
                foreign_keys: vec!["LAPTOP".into()],
                promised_keys: vec![]
            }
        );
    }

    #[test]
    fn slots_an_upgrade_retires_one_secret_keys_whose_promise_ended() {
        // After the upgrade slot B finds slot A's superseded key of the one-secret era.
        let tags = [sibling_mark("A_OLD", Some(990))];
        let plan = plan_keyless_slot(&["A_CUR", "A_OLD"], &tags, "A_CUR", 1000);
        assert_eq!(plan.retire, vec![("A_OLD".to_owned(), "promise_ended")]);
        assert_eq!(plan.decision, Decision::Mint);
    }
}
