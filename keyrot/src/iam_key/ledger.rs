//! keyrot's bookkeeping on the IAM user, kept in user tags so it survives crashes:
//!
//! * managed-key marks: tag key = access key id (the IAM console's convention for key
//!   descriptions), value = `keyrot managed secret=<secret name> version=<token>
//!   interval=<seconds>` (the rotation interval the key was minted under, which bounds its
//!   promises for the fleet, which may not read the secret's value), with ` until=<unix
//!   seconds>` appended once the key stops being AWSCURRENT: the end of the key lifetime
//!   contract's promise to clients that fetched it (see [`Promise`]). Marks written before
//!   the interval was recorded have none;
//! * creation intents: tag key = `keyrot:creating:<token>`, value =
//!   `at=<unix seconds> keys=<ids present before>`, written just before CreateAccessKey so a
//!   key whose creation response was lost can be recognised and removed by the next attempt.
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
const VERSION_SEPARATOR: &str = " version=";
const INTERVAL_SEPARATOR: &str = " interval=";
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

/// The managed-key mark for a key created for `secret` in rotation `token`, to be handed out
/// under `interval`; `None` when the secret name is too long to fit IAM's tag value limit.
pub fn managed_tag_value(secret: &str, token: &str, interval: Duration) -> Option<String> {
    let value = ManagedMark {
        secret: secret.to_owned(),
        version: token.to_owned(),
        interval: Some(interval),
        until: None,
    }
    .value();
    (value.len() + UNTIL_RESERVE <= IAM_TAG_VALUE_MAX).then_some(value)
}

/// A managed key's mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedMark {
    pub secret: String,
    pub version: String,
    /// The rotation interval the key was minted under (a carried-forward key keeps it);
    /// `None` on marks written before it was recorded.
    pub interval: Option<Duration>,
    /// When the promise to clients that fetched this key ends; `None` while it is (or was
    /// never recorded as having stopped being) AWSCURRENT.
    pub until: Option<SystemTime>,
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
            until,
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
            } else if let Some(mark) = ManagedMark::parse(value) {
                ledger.managed.insert(key.clone(), mark);
            }
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

    /// Marks of `secret` whose key no longer exists.
    pub fn stale_marks(&self, secret: &str, existing: &HashSet<&str>) -> Vec<String> {
        let mut stale: Vec<String> = self
            .managed
            .iter()
            .filter(|(id, mark)| mark.secret == secret && !existing.contains(id.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        stale.sort();
        stale
    }

    pub fn intents(&self) -> &[CreationIntent] {
        &self.intents
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
