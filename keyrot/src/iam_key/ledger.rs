//! keyrot's bookkeeping on the IAM user, kept in user tags so it survives crashes:
//!
//! * managed-key marks: value = `keyrot managed secret=<secret name> version=<token>
//!   interval=<seconds>` (the rotation interval the key was minted under, which bounds its
//!   promises for the fleet, which may not read the secret's value), with ` until=<unix
//!   seconds>` appended once the end of the key lifetime contract's promise to clients is
//!   recorded (see [`Promise`]). A slot secret's key is marked under the slot's own tag key,
//!   `keyrot:slot:<a|b>`, with ` key=<access key id>` after the interval: each new key of the
//!   slot overwrites the mark of the key it replaced (which its tick has just deleted), so a
//!   new key costs one tag write and no removal. A one-secret user's keys (whose superseded
//!   key outlives the next one) are marked under the key id itself (the IAM console's
//!   convention for key descriptions). Marks written before the interval was recorded have
//!   none;
//! * creation intents: tag key = `keyrot:creating:<a|b>` (the slot's), value = `at=<unix
//!   seconds> keys=<ids present before> version=<token>`, written just before CreateAccessKey
//!   so a key whose creation response was lost can be recognised and removed by the next
//!   attempt. The slot's next attempt overwrites it: an intent whose version a mark also names
//!   is complete, and proves nothing. A one-secret user's intents are keyed by the token
//!   (`keyrot:creating:<token>`, as earlier releases wrote every intent) and removed when the
//!   rotation finishes.
//!
//! Tag values allow only letters, digits, spaces and `_ . : / = + - @`, hence the format.

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
const KEY_SEPARATOR: &str = " key=";
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
    /// The tag key of a one-secret user's intent: the rotation token's own.
    pub fn tag_key(token: &str) -> String {
        format!("{INTENT_TAG_PREFIX}{token}")
    }

    /// The tag key of `slot`'s intent, overwritten by the slot's next attempt.
    pub fn slot_tag_key(slot: crate::key_slots::Slot) -> String {
        format!("{INTENT_TAG_PREFIX}{}", slot.label())
    }

    /// Whether `tag_key` is a slot's intent (not removed: overwritten).
    pub fn is_slot_tag_key(tag_key: &str) -> bool {
        crate::key_slots::Slot::BOTH
            .iter()
            .any(|slot| Self::slot_tag_key(*slot) == tag_key)
    }

    pub fn tag_value(&self) -> String {
        let seconds = self
            .at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        format!(
            "at={seconds} keys={} version={}",
            self.keys_before.join(" "),
            self.token
        )
    }

    fn parse(tag_key: &str, value: &str) -> Option<Self> {
        let suffix = tag_key.strip_prefix(INTENT_TAG_PREFIX)?;
        let mut at = None;
        let mut version = None;
        let mut keys_before = Vec::new();
        for word in value.split_whitespace() {
            if let Some(seconds) = word.strip_prefix("at=") {
                at = seconds.parse::<u64>().ok();
            } else if let Some(token) = word.strip_prefix("version=") {
                version = Some(token.to_owned());
            } else {
                let id = word.strip_prefix("keys=").unwrap_or(word);
                if !id.is_empty() {
                    keys_before.push(id.to_owned());
                }
            }
        }
        // A slot's intent names its version; earlier releases' are keyed by it.
        let token = match version {
            Some(token) => token,
            None if Self::is_slot_tag_key(tag_key) => return None,
            None => suffix.to_owned(),
        };
        Some(Self {
            token,
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

/// Room kept in a new mark for the key id of a slot mark: AWS's access key ids are 20
/// characters. IAM allows up to 128; a longer id than reserved gets its mark under the key id
/// instead ([`ManagedMark::for_slot_key`]).
const KEY_RESERVE: usize = KEY_SEPARATOR.len() + 20;

/// The managed-key mark for a key created for `secret` in rotation `token`, to be handed out
/// under `interval`; `None` when the secret name is too long to fit IAM's tag value limit.
pub fn managed_tag_value(secret: &str, token: &str, interval: Duration) -> Option<String> {
    let mark = ManagedMark {
        secret: secret.to_owned(),
        version: token.to_owned(),
        interval: Some(interval),
        key: None,
        until: None,
        tag_key: String::new(),
    };
    let value = mark.value();
    (value.len() + KEY_RESERVE + UNTIL_RESERVE <= IAM_TAG_VALUE_MAX).then_some(value)
}

/// A managed key's mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedMark {
    pub secret: String,
    pub version: String,
    /// The rotation interval the key was minted under (a carried-forward key keeps it);
    /// `None` on marks written before it was recorded.
    pub interval: Option<Duration>,
    /// The key a slot mark names; `None` in a mark stored under the key id.
    pub key: Option<String>,
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
        let (mark, key) = match mark.rsplit_once(KEY_SEPARATOR) {
            Some((rest, key)) if !key.is_empty() => (rest, Some(key.to_owned())),
            // `key=` with nothing after it: garbled, untrusted.
            Some(_) => return None,
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
            key,
            until,
            tag_key: String::new(),
        })
    }

    /// The mark `value` of a new key as a slot mark naming `key_id`, to be stored under the
    /// slot's tag key; `None` when it would not fit IAM's limit with room for the promise.
    pub fn for_slot_key(value: &str, key_id: &str) -> Option<String> {
        let mark = Self::parse(value)?;
        let value = Self {
            key: Some(key_id.to_owned()),
            ..mark
        }
        .value();
        (value.len() + UNTIL_RESERVE <= IAM_TAG_VALUE_MAX).then_some(value)
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
        if let Some(key) = &self.key {
            value.push_str(&format!("{KEY_SEPARATOR}{key}"));
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
    intents: Vec<CreationIntent>,
}

impl KeyLedger {
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
            // A slot mark names its key; a mark under a key id names that key, and one naming
            // another key too is garbled.
            let key_id = match (key.starts_with(SLOT_MARK_TAG_PREFIX), &mark.key) {
                (true, Some(id)) => id.clone(),
                (false, None) => key.clone(),
                (false, Some(id)) if id == key => key.clone(),
                _ => continue,
            };
            ledger.managed.insert(key_id, mark);
        }
        ledger
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
            .filter(|(id, mark)| mark.secret == secret && !existing.contains(id.as_str()))
            .map(|(_, mark)| mark.tag_key.clone())
            .collect();
        stale.sort();
        stale
    }

    pub fn intents(&self) -> &[CreationIntent] {
        &self.intents
    }

    /// Intents of attempts that may have lost a key: not those whose version a mark names (the
    /// attempt got its key and marked it), which a slot's intent stays as until overwritten.
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

    /// A slot's key is marked under the slot's tag key, naming the key: found by key id, its
    /// promise recorded under the same tag key, and a mark that names no key (or, under a key
    /// id, another key) is not trusted.
    #[test]
    fn slot_marks_name_their_key_and_stay_under_the_slot_tag() {
        let secret = "keyrot/iam/alice/b";
        let value = managed_tag_value(secret, "tok-3", Duration::from_secs(600)).expect("fits");
        let slot_value = ManagedMark::for_slot_key(&value, "AKIAIOSFODNN7EXAMPLE").expect("fits");
        let tag = slot_mark_tag_key(crate::key_slots::Slot::B);
        assert_eq!(tag, "keyrot:slot:b");
        let ledger = KeyLedger::from_tags(&tags(&[(&tag, &slot_value)]));
        let mark = ledger
            .mark_for("AKIAIOSFODNN7EXAMPLE", secret)
            .expect("found by its key id");
        assert_eq!(
            (mark.tag_key.as_str(), mark.version.as_str(), mark.interval),
            ("keyrot:slot:b", "tok-3", Some(Duration::from_secs(600)))
        );
        let until = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let recorded = mark.with_until(until);
        assert!(recorded.len() <= IAM_TAG_VALUE_MAX);
        let reread = KeyLedger::from_tags(&tags(&[(&tag, &recorded)]));
        let reread = reread
            .mark_for("AKIAIOSFODNN7EXAMPLE", secret)
            .expect("still found");
        assert_eq!(reread.until, Some(until));
        // Its key gone (a revoke), the mark is stale under its own tag key.
        assert_eq!(
            reread_stale(&recorded, &tag, secret),
            vec!["keyrot:slot:b".to_owned()]
        );
        // Untrusted: a slot mark naming no key, a key-id mark naming another key.
        assert!(!KeyLedger::from_tags(&tags(&[(&tag, &value)])).is_marked("AKIAIOSFODNN7EXAMPLE"));
        let other = KeyLedger::from_tags(&tags(&[("AKIAOTHER", &slot_value)]));
        assert!(!other.is_marked("AKIAOTHER") && !other.is_marked("AKIAIOSFODNN7EXAMPLE"));
        // A mark under the key id naming that same key is the key's.
        let same = ManagedMark::for_slot_key(&value, "AKIASAME").expect("fits");
        assert!(KeyLedger::from_tags(&tags(&[("AKIASAME", &same)])).is_marked("AKIASAME"));
    }

    fn reread_stale(value: &str, tag: &str, secret: &str) -> Vec<String> {
        KeyLedger::from_tags(&tags(&[(tag, value)])).stale_marks(secret, &HashSet::new())
    }

    /// A slot's intent names its version; it stays open (a lost key may be its) until a mark
    /// names the same version, and without a version it is not trusted.
    #[test]
    fn a_slot_intent_is_open_until_a_mark_names_its_version() {
        let tag = CreationIntent::slot_tag_key(crate::key_slots::Slot::A);
        assert_eq!(tag, "keyrot:creating:a");
        let intent = CreationIntent {
            token: "tok-4".into(),
            at: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            keys_before: vec!["AKIAB".into()],
        };
        let open = KeyLedger::from_tags(&tags(&[(&tag, &intent.tag_value())]));
        assert_eq!(
            open.open_intents().cloned().collect::<Vec<_>>(),
            vec![intent.clone()]
        );
        let value =
            managed_tag_value("keyrot/iam/alice", "tok-4", Duration::from_secs(600)).expect("fits");
        let marked = ManagedMark::for_slot_key(&value, "AKIANEW").expect("fits");
        let done = KeyLedger::from_tags(&tags(&[
            (&tag, &intent.tag_value()),
            ("keyrot:slot:a", &marked),
        ]));
        assert_eq!(done.intents().len(), 1);
        assert_eq!(done.open_intents().count(), 0);
        assert!(KeyLedger::from_tags(&tags(&[(&tag, "at=5 keys=AKIAB")]))
            .intents()
            .is_empty());
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
