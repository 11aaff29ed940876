//! keyrot's bookkeeping on the IAM user, kept in user tags so it survives crashes:
//!
//! * managed-key marks: value = `keyrot managed secret=<secret name> version=<token>
//!   interval=<seconds>` (the rotation interval the key was minted under, which bounds its
//!   promises for the fleet, which may not read the secret's value), with ` until=<unix
//!   seconds>` appended once the end of the key lifetime contract's promise to clients is
//!   recorded (see [`Promise`]). A slot's key is marked under the slot's own tag key,
//!   `keyrot:slot:<a|b>`, written once, *before* CreateAccessKey, with the attempt appended
//!   (` at=<unix seconds> keys=<ids present before, joined by +>`): the slot's key is the one
//!   that appeared in that attempt's window ([`KeyLedger::from_tags_and_keys`]), so a key whose
//!   creation response was lost is recognised as the attempt's, and each tick costs one tag
//!   write that overwrites the last one (whose key the tick has just deleted). A one-secret
//!   user's keys (whose superseded key outlives the next one) are marked under the key id
//!   itself (the IAM console's convention for key descriptions), after CreateAccessKey. Marks
//!   written before the interval was recorded have none;
//! * creation intents (one-secret users, and earlier releases): tag key =
//!   `keyrot:creating:<token>`, value = `at=<unix seconds> keys=<ids present before>`,
//!   written just before CreateAccessKey so a key whose creation response was lost can be
//!   recognised and removed by the next attempt.
//!
//! Tag values allow only letters, digits, spaces and `_ . : / = + - @`, hence the format.

use super::ports::AccessKeyInfo;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const MANAGED_TAG_PREFIX: &str = "keyrot managed secret=";
/// Tag on an IAM user that keyrot manages, valued with the managed secret prefix. The fleet
/// writes it when it onboards the user; the rotation function's IAM rights are scoped to users
/// carrying it, and the rotation function itself refuses a user without it.
pub const MANAGED_USER_TAG: &str = "keyrot:managed";
pub const INTENT_TAG_PREFIX: &str = "keyrot:creating:";
/// Tag keys of slot marks: the slot's label follows (`keyrot:slot:a`, `keyrot:slot:b`).
pub const SLOT_MARK_TAG_PREFIX: &str = "keyrot:slot:";
const VERSION_SEPARATOR: &str = " version=";
const INTERVAL_SEPARATOR: &str = " interval=";
const AT_SEPARATOR: &str = " at=";
const KEYS_SEPARATOR: &str = " keys=";
const UNTIL_SEPARATOR: &str = " until=";
const IAM_TAG_VALUE_MAX: usize = 256;
/// Room kept in a new mark for the ` until=<unix seconds>` written when the key is retired.
const UNTIL_RESERVE: usize = UNTIL_SEPARATOR.len() + 20;

/// A creation attempt recorded before CreateAccessKey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreationIntent {
    pub token: String,
    pub at: SystemTime,
    pub keys_before: Vec<String>,
}

impl CreationIntent {
    pub fn tag_key(token: &str) -> String {
        format!("{INTENT_TAG_PREFIX}{token}")
    }

    pub fn tag_value(&self) -> String {
        let seconds = self
            .at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        format!("at={seconds} keys={}", self.keys_before.join(" "))
    }

    fn parse(tag_key: &str, value: &str) -> Option<Self> {
        let token = tag_key.strip_prefix(INTENT_TAG_PREFIX)?;
        let mut at = None;
        let mut keys_before = Vec::new();
        for word in value.split_whitespace() {
            if let Some(seconds) = word.strip_prefix("at=") {
                at = seconds.parse::<u64>().ok();
            } else {
                let id = word.strip_prefix("keys=").unwrap_or(word);
                if !id.is_empty() {
                    keys_before.push(id.to_owned());
                }
            }
        }
        Some(Self {
            token: token.to_owned(),
            // A hostile or garbled `at=` must not overflow the clock: such a tag is malformed.
            at: UNIX_EPOCH.checked_add(Duration::from_secs(at?))?,
            keys_before,
        })
    }

    /// Whether a key absent from the snapshot and created at `created` may be this attempt's
    /// lost key. The window allows for clock skew and a slow CreateAccessKey call.
    pub fn could_have_created(&self, key_id: &str, created: SystemTime) -> bool {
        const SKEW: Duration = Duration::from_secs(60);
        const CALL_WINDOW: Duration = Duration::from_secs(300);
        let (Some(earliest), Some(latest)) =
            (self.at.checked_sub(SKEW), self.at.checked_add(CALL_WINDOW))
        else {
            return false;
        };
        !self.keys_before.iter().any(|id| id == key_id) && created >= earliest && created <= latest
    }
}

/// The tag key of `slot`'s mark.
pub fn slot_mark_tag_key(slot: crate::key_slots::Slot) -> String {
    format!("{SLOT_MARK_TAG_PREFIX}{}", slot.label())
}

/// Room kept in a new mark for a slot's attempt: ` at=` and ten digits, ` keys=` and the one
/// key a user can have before CreateAccessKey makes its second (AWS's ids are 20 characters;
/// a longer one may not fit, and the rotation then says the name is too long).
const ATTEMPT_RESERVE: usize = AT_SEPARATOR.len() + 10 + KEYS_SEPARATOR.len() + 20;

/// The managed-key mark for a key created for `secret` in rotation `token`, to be handed out
/// under `interval`; `None` when the secret name is too long to fit IAM's tag value limit.
pub fn managed_tag_value(secret: &str, token: &str, interval: Duration) -> Option<String> {
    let mark = ManagedMark {
        secret: secret.to_owned(),
        version: token.to_owned(),
        interval: Some(interval),
        attempt: None,
        until: None,
        tag_key: String::new(),
    };
    let value = mark.value();
    (value.len() + ATTEMPT_RESERVE + UNTIL_RESERVE <= IAM_TAG_VALUE_MAX).then_some(value)
}

/// A slot's mark for the key its rotation `token` is about to create, written before
/// CreateAccessKey: the keys the user has at `at` are not it. `None` when it would not fit
/// IAM's limit with room for the promise.
pub fn slot_mark_value(
    secret: &str,
    token: &str,
    interval: Duration,
    at: SystemTime,
    keys_before: &[String],
) -> Option<String> {
    let value = ManagedMark {
        secret: secret.to_owned(),
        version: token.to_owned(),
        interval: Some(interval),
        attempt: Some(Attempt {
            at,
            keys_before: keys_before.to_vec(),
        }),
        until: None,
        tag_key: String::new(),
    }
    .value();
    (value.len() + UNTIL_RESERVE <= IAM_TAG_VALUE_MAX).then_some(value)
}

/// When a slot's attempt started, and the keys that existed then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at: SystemTime,
    pub keys_before: Vec<String>,
}

impl Attempt {
    /// Whether `key` may be the key this attempt created: it did not exist before, and IAM
    /// dates it from just before the record (clocks, IAM's whole seconds) to a minute after
    /// (CreateAccessKey follows the record at once, and is never retried by the SDK).
    fn may_have_created(&self, key: &AccessKeyInfo) -> bool {
        const BEFORE: Duration = Duration::from_secs(5);
        const AFTER: Duration = Duration::from_secs(60);
        let (Some(created), Some(earliest), Some(latest)) = (
            key.created,
            self.at.checked_sub(BEFORE),
            self.at.checked_add(AFTER),
        ) else {
            return false;
        };
        !self.keys_before.contains(&key.id) && created >= earliest && created <= latest
    }
}

/// A managed key's mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedMark {
    pub secret: String,
    pub version: String,
    /// The rotation interval the key was minted under (a carried-forward key keeps it);
    /// `None` on marks written before it was recorded.
    pub interval: Option<Duration>,
    /// A slot mark's attempt, which tells its key; `None` in a mark stored under the key id.
    pub attempt: Option<Attempt>,
    /// When the promise to clients that fetched this key ends; `None` while it is (or was
    /// never recorded as having stopped being) AWSCURRENT.
    pub until: Option<SystemTime>,
    /// The tag key the mark is stored under (the slot's, or the key id); not in the value.
    pub tag_key: String,
}

impl ManagedMark {
    fn parse(value: &str) -> Option<Self> {
        let mark = value.strip_prefix(MANAGED_TAG_PREFIX)?;
        let (mark, until) = match mark.rsplit_once(UNTIL_SEPARATOR) {
            Some((rest, seconds)) => {
                // A garbled or overflowing `until=` makes the whole mark untrusted (unmarked).
                let seconds = seconds.parse::<u64>().ok()?;
                (
                    rest,
                    Some(UNIX_EPOCH.checked_add(Duration::from_secs(seconds))?),
                )
            }
            None => (mark, None),
        };
        let (mark, attempt) = match mark.rsplit_once(KEYS_SEPARATOR) {
            Some((rest, keys)) => {
                // Both or neither; a garbled or overflowing `at=` makes the mark untrusted.
                let (rest, seconds) = rest.rsplit_once(AT_SEPARATOR)?;
                let at = UNIX_EPOCH.checked_add(Duration::from_secs(seconds.parse().ok()?))?;
                let keys_before = keys
                    .split('+')
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned)
                    .collect();
                (rest, Some(Attempt { at, keys_before }))
            }
            None => (mark, None),
        };
        let (mark, interval) = match mark.rsplit_once(INTERVAL_SEPARATOR) {
            // Garbled like `until=`: the whole mark is untrusted.
            Some((rest, seconds)) => (rest, Some(Duration::from_secs(seconds.parse().ok()?))),
            None => (mark, None),
        };
        let (secret, version) = mark.rsplit_once(VERSION_SEPARATOR)?;
        Some(Self {
            secret: secret.to_owned(),
            version: version.to_owned(),
            interval,
            attempt,
            until,
            tag_key: String::new(),
        })
    }

    /// The tag value with the promise's end recorded.
    pub fn with_until(&self, until: SystemTime) -> String {
        Self {
            until: Some(until),
            ..self.clone()
        }
        .value()
    }

    fn value(&self) -> String {
        let mut value = format!(
            "{MANAGED_TAG_PREFIX}{}{VERSION_SEPARATOR}{}",
            self.secret, self.version
        );
        if let Some(interval) = self.interval {
            value.push_str(&format!("{INTERVAL_SEPARATOR}{}", interval.as_secs()));
        }
        if let Some(attempt) = &self.attempt {
            let seconds = attempt
                .at
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            value.push_str(&format!(
                "{AT_SEPARATOR}{seconds}{KEYS_SEPARATOR}{}",
                attempt.keys_before.join("+")
            ));
        }
        if let Some(until) = self.until {
            let seconds = until
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            value.push_str(&format!("{UNTIL_SEPARATOR}{seconds}"));
        }
        value
    }
}

/// What the user's tags say about its keys.
#[derive(Debug, Clone, Default)]
pub struct KeyLedger {
    /// Key id → mark, for every keyrot-marked key, whatever its secret.
    managed: HashMap<String, ManagedMark>,
    /// Slot marks, whose key the user's keys tell ([`KeyLedger::from_tags_and_keys`]).
    slot_marks: Vec<ManagedMark>,
    intents: Vec<CreationIntent>,
}

impl KeyLedger {
    /// The marks stored under key ids and the intents; slot marks are kept aside until the
    /// user's keys say which key each one names.
    pub fn from_tags(tags: &[(String, String)]) -> Self {
        let mut ledger = Self::default();
        for (key, value) in tags {
            if let Some(intent) = CreationIntent::parse(key, value) {
                ledger.intents.push(intent);
                continue;
            }
            let Some(mark) = ManagedMark::parse(value) else {
                continue;
            };
            let mark = ManagedMark {
                tag_key: key.clone(),
                ..mark
            };
            match (key.starts_with(SLOT_MARK_TAG_PREFIX), &mark.attempt) {
                (true, Some(_)) => ledger.slot_marks.push(mark),
                (false, None) => {
                    ledger.managed.insert(key.clone(), mark);
                }
                // An attempt under a key id, or a slot mark without one: garbled, untrusted.
                _ => {}
            }
        }
        ledger
    }

    /// [`KeyLedger::from_tags`], with each slot mark naming the key its attempt created: the
    /// earliest of the keys that appeared in the attempt's window (none if its
    /// CreateAccessKey never made one, or the key is gone). The latest attempt chooses first,
    /// so that a slot whose key was deleted does not claim the other slot's next key, made
    /// moments later; a key a mark under its own id claims keeps that mark.
    pub fn from_tags_and_keys(tags: &[(String, String)], keys: &[AccessKeyInfo]) -> Self {
        let mut ledger = Self::from_tags(tags);
        let mut marks: Vec<&ManagedMark> = ledger.slot_marks.iter().collect();
        marks.sort_by_key(|mark| std::cmp::Reverse(mark.attempt.as_ref().map(|a| a.at)));
        let mut found = Vec::new();
        for mark in marks {
            let Some(attempt) = &mark.attempt else {
                continue;
            };
            let key = keys
                .iter()
                .filter(|key| {
                    attempt.may_have_created(key)
                        && !ledger.managed.contains_key(&key.id)
                        && !found
                            .iter()
                            .any(|(id, _): &(String, ManagedMark)| *id == key.id)
                })
                .min_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
            if let Some(key) = key {
                found.push((key.id.clone(), mark.clone()));
            }
        }
        ledger.managed.extend(found);
        ledger
    }

    /// The tag keys of every slot mark, whether or not its key still exists.
    pub fn slot_mark_tags(&self) -> Vec<String> {
        self.slot_marks.iter().map(|m| m.tag_key.clone()).collect()
    }

    /// Whether keyrot created `key_id` for `secret`.
    pub fn is_managed_by(&self, key_id: &str, secret: &str) -> bool {
        self.mark_for(key_id, secret).is_some()
    }

    /// The mark of `key_id`, if keyrot created it for `secret`.
    pub fn mark_for(&self, key_id: &str, secret: &str) -> Option<&ManagedMark> {
        self.managed
            .get(key_id)
            .filter(|mark| mark.secret == secret)
    }

    /// Whether any keyrot secret claims `key_id`.
    pub fn is_marked(&self, key_id: &str) -> bool {
        self.managed.contains_key(key_id)
    }

    /// Tag keys of the marks of `secret` whose key no longer exists.
    pub fn stale_marks(&self, secret: &str, existing: &HashSet<&str>) -> Vec<String> {
        let mut stale: Vec<String> = self
            .managed
            .iter()
            .filter(|(id, mark)| {
                mark.secret == secret && mark.attempt.is_none() && !existing.contains(id.as_str())
            })
            .map(|(_, mark)| mark.tag_key.clone())
            .collect();
        stale.sort();
        stale
    }

    pub fn intents(&self) -> &[CreationIntent] {
        &self.intents
    }

    /// Intents of attempts that may have lost a key: not those whose version a mark names (the
    /// attempt got its key and marked it, and a crash left the intent behind).
    pub fn open_intents(&self) -> impl Iterator<Item = &CreationIntent> {
        self.intents.iter().filter(|intent| {
            !self
                .managed
                .values()
                .any(|mark| mark.version == intent.token)
        })
    }

    /// The same ledger without the marks of `keys`.
    pub fn without(mut self, keys: &[String]) -> Self {
        for key in keys {
            self.managed.remove(key);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn managed_marks_round_trip_and_belong_to_one_secret() {
        let value =
            managed_tag_value("keyrot/iam/alice", "tok-1", Duration::from_secs(600)).expect("fits");
        let ledger = KeyLedger::from_tags(&tags(&[
            ("AKIA1", &value),
            ("AKIA2", "laptop key"),
            ("team", "platform"),
        ]));
        assert!(ledger.is_managed_by("AKIA1", "keyrot/iam/alice"));
        assert!(!ledger.is_managed_by("AKIA1", "keyrot/iam/bob"));
        assert!(!ledger.is_marked("AKIA2"));
        let existing: HashSet<&str> = ["AKIA2"].into_iter().collect();
        assert_eq!(
            ledger.stale_marks("keyrot/iam/alice", &existing),
            vec!["AKIA1"]
        );
    }

    fn key(id: &str, created: u64) -> AccessKeyInfo {
        AccessKeyInfo {
            id: id.to_owned(),
            active: true,
            created: Some(UNIX_EPOCH + Duration::from_secs(created)),
        }
    }

    /// A slot's mark is written before its key exists: the user's keys say which key it
    /// names (the earliest that appeared in the attempt's window and was not there before);
    /// its promise is recorded under the same tag key without losing the attempt; a slot mark
    /// without an attempt, or an attempt under a key id, is not trusted.
    #[test]
    fn a_slot_mark_names_the_key_that_appeared_in_its_attempts_window() {
        let secret = "keyrot/iam/alice/b";
        let at = UNIX_EPOCH + Duration::from_secs(1_000);
        let value = slot_mark_value(
            secret,
            "tok-3",
            Duration::from_secs(600),
            at,
            &["AKIAOTHER".to_owned()],
        )
        .expect("fits");
        assert!(value.ends_with(" at=1000 keys=AKIAOTHER"), "{value}");
        let tag = slot_mark_tag_key(crate::key_slots::Slot::B);
        assert_eq!(tag, "keyrot:slot:b");
        let tagged = tags(&[(&tag, &value)]);
        // Without the keys, the mark names nothing yet.
        assert!(!KeyLedger::from_tags(&tagged).is_marked("AKIANEW"));
        let keys = [
            key("AKIAOTHER", 1_001),
            key("AKIANEW", 1_001),
            key("AKIALATER", 1_030),
        ];
        let ledger = KeyLedger::from_tags_and_keys(&tagged, &keys);
        let mark = ledger
            .mark_for("AKIANEW", secret)
            .expect("the earliest new key");
        assert_eq!(
            (mark.tag_key.as_str(), mark.version.as_str()),
            ("keyrot:slot:b", "tok-3")
        );
        assert!(!ledger.is_marked("AKIAOTHER") && !ledger.is_marked("AKIALATER"));
        // Outside the window (a key made long after, or well before): none.
        for far in [key("AKIAFAR", 1_061), key("AKIAOLD", 990)] {
            assert!(
                !KeyLedger::from_tags_and_keys(&tagged, std::slice::from_ref(&far))
                    .is_marked(&far.id)
            );
        }
        // The promise recorded later keeps the attempt, so the key is still found.
        let until = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let recorded = mark.with_until(until);
        assert!(recorded.len() <= IAM_TAG_VALUE_MAX);
        let reread = KeyLedger::from_tags_and_keys(&tags(&[(&tag, &recorded)]), &keys);
        assert_eq!(
            reread.mark_for("AKIANEW", secret).and_then(|m| m.until),
            Some(until)
        );
        // Slot marks are overwritten, never listed as stale; their tags are known.
        assert!(reread.stale_marks(secret, &HashSet::new()).is_empty());
        assert_eq!(reread.slot_mark_tags(), vec![tag.clone()]);
        // Untrusted forms.
        let plain = managed_tag_value(secret, "tok-3", Duration::from_secs(600)).expect("fits");
        assert!(
            !KeyLedger::from_tags_and_keys(&tags(&[(&tag, &plain)]), &keys).is_marked("AKIANEW")
        );
        assert!(
            !KeyLedger::from_tags_and_keys(&tags(&[("AKIANEW", &value)]), &keys)
                .is_marked("AKIANEW")
        );
        let garbled = value.replace(" at=1000", " at=x");
        assert!(
            !KeyLedger::from_tags_and_keys(&tags(&[(&tag, &garbled)]), &keys).is_marked("AKIANEW")
        );
    }

    /// Slot A's key was deleted (a revoke) and slot B's next key came within A's window: the
    /// later attempt, B's, names it, and A's mark names nothing.
    #[test]
    fn the_later_attempt_names_a_key_in_both_windows() {
        let value = |secret: &str, at: u64| {
            slot_mark_value(
                secret,
                "tok",
                Duration::from_secs(10),
                UNIX_EPOCH + Duration::from_secs(at),
                &[],
            )
            .expect("fits")
        };
        let tagged = tags(&[
            ("keyrot:slot:b", &value("keyrot/iam/alice/b", 1_010)),
            ("keyrot:slot:a", &value("keyrot/iam/alice", 1_000)),
        ]);
        let ledger = KeyLedger::from_tags_and_keys(&tagged, &[key("AKIAB2", 1_010)]);
        assert!(ledger.is_managed_by("AKIAB2", "keyrot/iam/alice/b"));
        assert!(!ledger.is_managed_by("AKIAB2", "keyrot/iam/alice"));
    }

    #[test]
    fn managed_tag_value_respects_iam_limit() {
        assert!(managed_tag_value(&"n".repeat(300), "tok", Duration::from_secs(600)).is_none());
    }

    #[test]
    fn a_mark_keeps_its_interval_when_its_promise_is_recorded() {
        let interval = Duration::from_secs(3600);
        let value = managed_tag_value("keyrot/iam/alice/b", "tok-2", interval).expect("fits");
        assert!(value.ends_with(" interval=3600"), "{value}");
        let mark = ManagedMark::parse(&value).expect("parses");
        assert_eq!(mark.interval, Some(interval));
        assert_eq!(mark.until, None);
        let until = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let recorded = ManagedMark::parse(&mark.with_until(until)).expect("parses");
        assert_eq!(
            (recorded.interval, recorded.until),
            (Some(interval), Some(until))
        );
        assert_eq!(recorded.secret, "keyrot/iam/alice/b");
        assert_eq!(recorded.version, "tok-2");
        // Marks written before the interval was recorded still parse, without one.
        let old = ManagedMark::parse("keyrot managed secret=keyrot/iam/a version=t until=5")
            .expect("parses");
        assert_eq!((old.version.as_str(), old.interval), ("t", None));
        // A garbled interval makes the mark untrusted, as a garbled `until=` does.
        assert!(ManagedMark::parse("keyrot managed secret=s version=t interval=x").is_none());
    }

    #[test]
    fn intent_round_trips_and_bounds_its_window() {
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let intent = CreationIntent {
            token: "tok-9".into(),
            at,
            keys_before: vec!["AKIAOLD".into()],
        };
        let ledger = KeyLedger::from_tags(&tags(&[(
            &CreationIntent::tag_key("tok-9"),
            &intent.tag_value(),
        )]));
        assert_eq!(ledger.intents(), std::slice::from_ref(&intent));
        assert!(intent.could_have_created("AKIANEW", at + Duration::from_secs(2)));
        assert!(!intent.could_have_created("AKIAOLD", at + Duration::from_secs(2)));
        assert!(!intent.could_have_created("AKIANEW", at + Duration::from_secs(3600)));
        assert!(!intent.could_have_created("AKIANEW", at - Duration::from_secs(3600)));
        let empty = CreationIntent {
            keys_before: vec![],
            ..intent
        };
        let parsed = KeyLedger::from_tags(&tags(&[(
            &CreationIntent::tag_key("tok-9"),
            &empty.tag_value(),
        )]));
        assert_eq!(parsed.intents(), std::slice::from_ref(&empty));
    }

    /// A hostile tag (anyone with iam:TagUser can write one) must not panic createSecret:
    /// times that overflow the clock make the tag malformed, i.e. ignored.
    #[test]
    fn overflowing_times_in_tags_are_malformed_not_a_panic() {
        let huge = u64::MAX.to_string();
        let ledger = KeyLedger::from_tags(&tags(&[
            (
                &CreationIntent::tag_key("tok"),
                &format!("at={huge} keys=AKIA1"),
            ),
            (
                "AKIA2",
                &format!("{MANAGED_TAG_PREFIX}keyrot/iam/alice version=tok until={huge}"),
            ),
        ]));
        assert!(ledger.intents().is_empty());
        assert!(!ledger.is_marked("AKIA2"));
        // A slot mark's attempt: an overflowing `at=` is malformed too.
        let slot = KeyLedger::from_tags_and_keys(
            &tags(&[(
                "keyrot:slot:a",
                &format!("{MANAGED_TAG_PREFIX}keyrot/iam/alice version=tok at={huge} keys="),
            )]),
            &[AccessKeyInfo {
                id: "AKIA3".into(),
                active: true,
                created: Some(UNIX_EPOCH),
            }],
        );
        assert!(!slot.is_marked("AKIA3") && slot.slot_mark_tags().is_empty());
        // The largest time the clock holds: the window's end overflows, the check says no.
        let edge = CreationIntent {
            token: "tok".into(),
            at: UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2),
            keys_before: vec![],
        };
        let _ = edge.could_have_created("AKIA3", UNIX_EPOCH);
    }

    #[test]
    fn the_promise_end_round_trips_through_the_mark() {
        let value =
            managed_tag_value("keyrot/iam/alice", "tok", Duration::from_secs(600)).expect("fits");
        let mark = KeyLedger::from_tags(&tags(&[("AKIA1", &value)]))
            .mark_for("AKIA1", "keyrot/iam/alice")
            .cloned()
            .expect("mark");
        assert_eq!(mark.until, None);
        let until = UNIX_EPOCH + Duration::from_secs(1_800_000_600);
        let retired = mark.with_until(until);
        assert!(retired.len() <= IAM_TAG_VALUE_MAX);
        let parsed = KeyLedger::from_tags(&tags(&[("AKIA1", &retired)]));
        let parsed = parsed.mark_for("AKIA1", "keyrot/iam/alice").expect("mark");
        assert_eq!(
            (parsed.version.as_str(), parsed.until),
            ("tok", Some(until))
        );
        // A name that leaves no room for the promise is refused up front.
        assert!(managed_tag_value(
            &"n".repeat(190),
            "0123456789abcdef0123456789abcdef0123",
            Duration::from_secs(600)
        )
        .is_none());
    }
}
