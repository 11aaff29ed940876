//! `keyrot status [USER…]`: one row per managed user, what needs attention, a summary.

use crate::cloud::{Cloud, SecretInfo, VersionInfo};
use crate::deployment::Deployment;
use crate::error::CliError;
use crate::output::{age, rfc3339, table, Progress, Style};
use crate::users::{self, UserState};
use crate::Report;
use futures_util::stream::{self, StreamExt};
use keyrot::iam_key::{AccessKeyInfo, IamKeySecret, KeyLedger};
use keyrot::Sensitive;
use serde::Serialize;
use serde_json::json;
use std::time::{Duration, SystemTime};

/// Versions at which the version budget alarm fires (README, "Version budget").
const VERSION_BUDGET: usize = 80;

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Slot {
    pub access_key_id: String,
    /// Made by keyrot for one of this user's slot secrets.
    pub managed: bool,
    /// Which slot secret made it (`a`: `keyrot/iam/<user>`, `b`: `keyrot/iam/<user>/b`).
    pub slot: Option<&'static str>,
    pub active: bool,
    pub current: bool,
    pub created: Option<String>,
    /// For a superseded managed key: the end of its promise to clients.
    pub promised_until: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub version_id: String,
    pub created: Option<String>,
    pub age_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserStatus {
    pub user: String,
    pub state: UserState,
    pub secret: String,
    pub rotation_enabled: bool,
    pub access_key_id: Option<String>,
    pub key_created: Option<String>,
    pub key_age_seconds: Option<u64>,
    pub interval_seconds: u64,
    pub last_rotation: Option<String>,
    pub next_rotation: Option<String>,
    /// What `GET /active-key` would promise for the current key if fetched now.
    pub expiration_if_fetched_now: Option<String>,
    pub slots: Vec<Slot>,
    pub stuck_pending: Option<Pending>,
    /// A rotation in progress that is not yet stuck.
    pub rotating: Option<Pending>,
    pub version_count: Option<usize>,
    pub problems: Vec<Problem>,
}

pub struct StatusOptions {
    pub users: Vec<String>,
    pub concurrency: usize,
    /// An AWSPENDING older than this counts as stuck.
    pub stuck_after: Duration,
    pub json: bool,
}

fn secs_between(later: SystemTime, earlier: SystemTime) -> u64 {
    later
        .duration_since(earlier)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

struct Observed {
    secret: Option<SecretInfo>,
    value: Result<Option<Sensitive>, keyrot::AwsCallError>,
    versions: Result<Vec<VersionInfo>, keyrot::AwsCallError>,
    keys: Result<Vec<AccessKeyInfo>, keyrot::AwsCallError>,
    tags: Result<Vec<(String, String)>, keyrot::AwsCallError>,
}

async fn observe<C: Cloud>(
    cloud: &C,
    secret_id: &str,
    user: &str,
    secret: Option<SecretInfo>,
) -> Observed {
    let secret = match secret {
        // The listing's versions map may be partial; DescribeSecret is authoritative.
        Some(_) | None => match cloud.describe_secret(secret_id).await {
            Ok(found) => found,
            Err(_) => secret,
        },
    };
    let (value, versions, keys, tags) = tokio::join!(
        cloud.current_value(secret_id),
        cloud.secret_versions(secret_id),
        cloud.list_access_keys(user),
        cloud.list_user_tags(user)
    );
    Observed {
        secret,
        value,
        versions,
        keys,
        tags,
    }
}

/// Builds one user's status from what was observed. Pure: tested without AWS.
fn assess(
    user: &str,
    state: UserState,
    secret_id: &str,
    observed: Observed,
    default_interval: Duration,
    stuck_after: Duration,
    now: SystemTime,
) -> UserStatus {
    let mut problems = Vec::new();
    let mut problem =
        |code: &'static str, message: String| problems.push(Problem { code, message });
    let secret = observed.secret;
    let value = match observed.value {
        Ok(Some(value)) => match IamKeySecret::parse(&value, secret_id, "AWSCURRENT") {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                problem("SecretUnreadable", error.to_string());
                None
            }
        },
        Ok(None) => None,
        Err(error) => {
            problem("SecretUnreadable", error.to_string());
            None
        }
    };
    let interval = keyrot::key_slots::governing_interval(
        value.as_ref().and_then(|v| v.interval_seconds),
        default_interval,
    );
    let current_id = value.as_ref().and_then(|v| v.access_key_id.clone());
    let key_created = value.as_ref().and_then(IamKeySecret::created);
    let ledger = match (&observed.tags, &observed.keys) {
        (Ok(tags), Ok(keys)) => KeyLedger::from_tags_and_keys(tags, keys),
        (Ok(tags), Err(_)) => KeyLedger::from_tags(tags),
        (Err(_), _) => KeyLedger::default(),
    };
    let mut slots = Vec::new();
    match &observed.keys {
        Ok(keys) => {
            // secret_id is the user's first slot; its second is the same name plus the suffix.
            let slot_b = format!("{secret_id}{}", keyrot::key_slots::SLOT_B_SUFFIX);
            for key in keys {
                let (slot, mark) = match ledger.mark_for(&key.id, secret_id) {
                    Some(mark) => (Some("a"), Some(mark)),
                    None => match ledger.mark_for(&key.id, &slot_b) {
                        Some(mark) => (Some("b"), Some(mark)),
                        None => (None, None),
                    },
                };
                slots.push(Slot {
                    access_key_id: key.id.clone(),
                    managed: mark.is_some(),
                    slot,
                    active: key.active,
                    current: current_id.as_deref() == Some(key.id.as_str()),
                    created: key.created.map(rfc3339),
                    promised_until: mark.and_then(|m| m.until).map(rfc3339),
                });
            }
        }
        Err(error) if error.has_code("NoSuchEntity") => {
            problem("UserNotFound", format!("IAM user {user} does not exist: keyrot users remove {user}, or recreate the user"));
        }
        Err(error) => problem("IamUnreadable", error.to_string()),
    }
    let hand_made = slots.iter().filter(|s| !s.managed).count();
    if hand_made > 0 && slots.len() >= 2 {
        let ids: Vec<&str> = slots
            .iter()
            .filter(|s| !s.managed)
            .map(|s| s.access_key_id.as_str())
            .collect();
        problem(
            "NoFreeKeySlot",
            format!(
                "{} hand-made key(s) {} leave no free slot for the next key: delete one (aws iam delete-access-key --user-name {user} --access-key-id <id>)",
                hand_made,
                ids.join(",")
            ),
        );
    }
    if let (Some(id), Ok(keys)) = (&current_id, &observed.keys) {
        if !keys.iter().any(|k| &k.id == id) {
            problem("CurrentKeyMissing", format!("the current key {id} no longer exists in IAM (revoked or deleted by hand): keyrot rotate {user}"));
        }
    }
    // Rotation progress.
    let mut stuck_pending = None;
    let mut rotating = None;
    let versions = observed.versions.as_ref().ok();
    if let Some(secret) = &secret {
        for (version_id, stages) in &secret.versions {
            let pending = stages.iter().any(|s| s == "AWSPENDING");
            let current = stages.iter().any(|s| s == "AWSCURRENT");
            if pending && !current {
                let created = versions
                    .and_then(|vs| vs.iter().find(|v| &v.id == version_id))
                    .and_then(|v| v.created);
                let entry = Pending {
                    version_id: version_id.clone(),
                    created: created.map(rfc3339),
                    age_seconds: created.map(|c| secs_between(now, c)),
                };
                let old = created
                    .is_none_or(|c| now.duration_since(c).unwrap_or_default() >= stuck_after);
                if old {
                    problem(
                        "StuckPending",
                        format!(
                            "AWSPENDING on version {version_id} without AWSCURRENT{}: every rotation is refused until it ends (README, \"Recovering a rotation that failed midway\")",
                            created.map(|c| format!(" since {}", age(now, c))).unwrap_or_default()
                        ),
                    );
                    stuck_pending = Some(entry);
                } else {
                    rotating = Some(entry);
                }
            }
        }
        if !secret.rotation_enabled && state != UserState::Offboarding {
            problem(
                "RotationDisabled",
                format!("rotation is not enabled on {secret_id}"),
            );
        }
    }
    let last_rotated = secret.as_ref().and_then(|s| s.last_rotated);
    if state == UserState::Managed {
        let reference = last_rotated.or(secret.as_ref().and_then(|s| s.created));
        if let Some(reference) = reference {
            // Each slot rotates every two intervals: three without one is a missed tick.
            if now.duration_since(reference).unwrap_or_default() > interval * 3 {
                problem(
                    "Stale",
                    format!(
                        "no completed rotation for {} (more than three intervals): check the schedule (keyrot doctor) and the function's logs",
                        crate::output::human_duration(now.duration_since(reference).unwrap_or_default())
                    ),
                );
            }
        }
        if current_id.is_none() && value.is_some() {
            problem(
                "NoKeyYet",
                "the secret holds no key: its first rotation has not completed".into(),
            );
        }
    }
    let version_count = versions.map(Vec::len);
    if let Some(count) = version_count {
        if count >= VERSION_BUDGET {
            problem(
                "VersionBudget",
                format!("{count} versions (budget alarm at {VERSION_BUDGET}): lengthen RotationIntervalMinutes"),
            );
        }
    }
    if state == UserState::Pending && secret.is_none() {
        // Not a problem: the reconciler onboards it.
    }
    UserStatus {
        user: user.to_owned(),
        state,
        secret: secret_id.to_owned(),
        rotation_enabled: secret.as_ref().is_some_and(|s| s.rotation_enabled),
        access_key_id: current_id.clone(),
        key_created: key_created.map(rfc3339),
        key_age_seconds: key_created.map(|c| secs_between(now, c)),
        interval_seconds: interval.as_secs(),
        last_rotation: last_rotated.map(rfc3339),
        next_rotation: last_rotated.map(|t| rfc3339(t + interval * 2)),
        expiration_if_fetched_now: current_id.as_ref().map(|_| {
            let slack = keyrot::key_slots::slack(interval);
            match value.as_ref().and_then(IamKeySecret::expires) {
                Some(retired) => rfc3339(retired.max(now + slack)),
                None => rfc3339(now + interval),
            }
        }),
        slots,
        stuck_pending,
        rotating,
        version_count,
        problems,
    }
}

pub async fn status<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    options: &StatusOptions,
    style: Style,
) -> Result<Report, CliError> {
    let mut entries = users::list(cloud, deployment).await?;
    let mut unknown = Vec::new();
    if !options.users.is_empty() {
        for wanted in &options.users {
            crate::names::user(wanted)?;
            if !entries.iter().any(|e| &e.user == wanted) {
                unknown.push(wanted.clone());
            }
        }
        entries.retain(|e| options.users.contains(&e.user));
    }
    let progress = Progress::new("status", entries.len(), options.json);
    let default_interval = deployment.interval();
    let now = SystemTime::now();
    let mut done = 0;
    let mut statuses: Vec<UserStatus> = stream::iter(entries.into_iter().map(|entry| async move {
        let secret_id = deployment.names.user_secret(&entry.user);
        if entry.secret.is_none() {
            return UserStatus {
                user: entry.user.clone(),
                state: entry.state,
                secret: secret_id,
                rotation_enabled: false,
                access_key_id: None,
                key_created: None,
                key_age_seconds: None,
                interval_seconds: default_interval.as_secs(),
                last_rotation: None,
                next_rotation: None,
                expiration_if_fetched_now: None,
                slots: Vec::new(),
                stuck_pending: None,
                rotating: None,
                version_count: None,
                problems: Vec::new(),
            };
        }
        let observed = observe(cloud, &secret_id, &entry.user, entry.secret.clone()).await;
        assess(
            &entry.user,
            entry.state,
            &secret_id,
            observed,
            default_interval,
            options.stuck_after,
            now,
        )
    }))
    .buffer_unordered(options.concurrency.max(1))
    .inspect(|_| {
        done += 1;
        progress.tick(done);
    })
    .collect()
    .await;
    progress.finish();
    statuses.sort_by(|a, b| a.user.cmp(&b.user));
    for user in &unknown {
        statuses.push(UserStatus {
            user: user.clone(),
            state: UserState::Pending,
            secret: deployment.names.user_secret(user),
            rotation_enabled: false,
            access_key_id: None,
            key_created: None,
            key_age_seconds: None,
            interval_seconds: default_interval.as_secs(),
            last_rotation: None,
            next_rotation: None,
            expiration_if_fetched_now: None,
            slots: Vec::new(),
            stuck_pending: None,
            rotating: None,
            version_count: None,
            problems: vec![Problem {
                code: "NotManaged",
                message: format!(
                    "{user} is neither registered nor managed: keyrot users add {user}"
                ),
            }],
        });
    }
    Ok(render(statuses, style, now))
}

fn render(statuses: Vec<UserStatus>, style: Style, now: SystemTime) -> Report {
    let parse = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| {
                aws_smithy_types::DateTime::from_str(
                    t,
                    aws_smithy_types::date_time::Format::DateTime,
                )
                .ok()
            })
            .and_then(|d| SystemTime::try_from(d).ok())
    };
    let rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|s| {
            let slots = s
                .slots
                .iter()
                .map(|slot| {
                    let kind = match (slot.slot, slot.current) {
                        (Some(label), true) => format!("slot {label}, current"),
                        (Some(label), false) => format!("slot {label}"),
                        (None, true) => "current".to_owned(),
                        (None, false) => "hand-made".to_owned(),
                    };
                    format!("{}({kind})", slot.access_key_id)
                })
                .collect::<Vec<_>>()
                .join(" ");
            let pending = match (&s.stuck_pending, &s.rotating) {
                (Some(p), _) => style.bad(&format!(
                    "stuck {}",
                    p.age_seconds
                        .map(|a| crate::output::human_duration(Duration::from_secs(a)))
                        .unwrap_or_default()
                )),
                (None, Some(_)) => "rotating".into(),
                _ => "-".into(),
            };
            let state = if s.problems.is_empty() {
                style.good(&format!("✔ {}", s.state.label()))
            } else {
                style.bad(&format!(
                    "✘ {}",
                    s.problems
                        .iter()
                        .map(|p| p.code)
                        .collect::<Vec<_>>()
                        .join(",")
                ))
            };
            vec![
                s.user.clone(),
                s.access_key_id.clone().unwrap_or_else(|| "-".into()),
                s.key_age_seconds
                    .map(|a| crate::output::human_duration(Duration::from_secs(a)))
                    .unwrap_or_else(|| "-".into()),
                parse(&s.last_rotation)
                    .map(|t| age(now, t))
                    .unwrap_or_else(|| "-".into()),
                parse(&s.next_rotation)
                    .map(|t| age(now, t))
                    .unwrap_or_else(|| "-".into()),
                s.expiration_if_fetched_now
                    .clone()
                    .unwrap_or_else(|| "-".into()),
                if slots.is_empty() { "-".into() } else { slots },
                pending,
                s.version_count
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                state,
            ]
        })
        .collect();
    let mut text = table(
        &[
            "USER",
            "KEY",
            "AGE",
            "LAST ROTATION",
            "NEXT",
            "EXPIRATION (fetch now)",
            "SLOTS",
            "PENDING",
            "VERSIONS",
            "STATE",
        ],
        &rows,
    );
    let attention: Vec<&UserStatus> = statuses.iter().filter(|s| !s.problems.is_empty()).collect();
    for s in &attention {
        for p in &s.problems {
            text.push_str(&format!(
                "{} {}: {} — {}\n",
                style.bad("✘"),
                s.user,
                p.code,
                p.message
            ));
        }
    }
    let count = |state: UserState| statuses.iter().filter(|s| s.state == state).count();
    let summary = format!(
        "{} users: {} managed, {} pending, {} offboarding; {} need attention",
        statuses.len(),
        count(UserState::Managed),
        count(UserState::Pending),
        count(UserState::Offboarding),
        attention.len()
    );
    text.push_str(&style.bold(&summary));
    text.push('\n');
    let json_value = json!({
        "users": statuses,
        "summary": {
            "users": statuses.len(),
            "managed": count(UserState::Managed),
            "pending": count(UserState::Pending),
            "offboarding": count(UserState::Offboarding),
            "attention": attention.len(),
        },
    });
    let mut report = Report::ok(text, json_value);
    report.attention = !attention.is_empty();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyrot::iam_key::MANAGED_TAG_PREFIX;
    use std::collections::HashMap;

    const NOW: u64 = 1_900_000_000;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn observed(
        versions: &[(&str, &[&str], u64)],
        keys: &[(&str, bool)],
        last_rotated: u64,
    ) -> Observed {
        let mut map = HashMap::new();
        for (id, stages, _) in versions {
            map.insert(
                id.to_string(),
                stages.iter().map(|s| s.to_string()).collect(),
            );
        }
        Observed {
            secret: Some(SecretInfo {
                name: "keyrot/iam/alice".into(),
                rotation_enabled: true,
                last_rotated: Some(at(last_rotated)),
                created: Some(at(NOW - 86_400)),
                versions: map,
                ..SecretInfo::default()
            }),
            value: Ok(Some(Sensitive::new(
                r#"{"UserName":"alice","AccessKeyId":"AKIACUR","SecretAccessKey":"s3cr3t-value","CreatedAt":"2030-03-17T17:40:00Z","IntervalSeconds":600}"#,
            ))),
            versions: Ok(versions
                .iter()
                .map(|(id, stages, created)| VersionInfo {
                    id: id.to_string(),
                    stages: stages.iter().map(|s| s.to_string()).collect(),
                    created: Some(at(*created)),
                })
                .collect()),
            keys: Ok(keys
                .iter()
                .map(|(id, _)| AccessKeyInfo {
                    id: id.to_string(),
                    active: true,
                    created: Some(at(NOW - 300)),
                })
                .collect()),
            tags: Ok(keys
                .iter()
                .filter(|(_, managed)| *managed)
                .map(|(id, _)| {
                    (
                        id.to_string(),
                        format!("{MANAGED_TAG_PREFIX}keyrot/iam/alice version=v1"),
                    )
                })
                .collect()),
        }
    }

    fn codes(status: &UserStatus) -> Vec<&'static str> {
        status.problems.iter().map(|p| p.code).collect()
    }

    fn run(observed: Observed) -> UserStatus {
        assess(
            "alice",
            UserState::Managed,
            "keyrot/iam/alice",
            observed,
            Duration::from_secs(600),
            Duration::from_secs(120),
            at(NOW),
        )
    }

    #[test]
    fn a_healthy_user_needs_nothing_and_shows_no_secret() {
        let status = run(observed(
            &[("v1", &["AWSCURRENT"], NOW - 300)],
            &[("AKIACUR", true)],
            NOW - 300,
        ));
        assert!(status.problems.is_empty(), "{:?}", status.problems);
        assert_eq!(status.access_key_id.as_deref(), Some("AKIACUR"));
        assert_eq!(status.version_count, Some(1));
        // The slot's next tick: two intervals after its last rotation.
        assert_eq!(
            status.next_rotation.as_deref(),
            Some(rfc3339(at(NOW + 900)).as_str())
        );
        let report = render(vec![status], Style { color: false }, at(NOW));
        assert!(!report.attention);
        assert!(!report.text.contains("s3cr3t") && !report.json.to_string().contains("s3cr3t"));
    }

    #[test]
    fn stuck_pending_is_flagged_with_its_age_but_a_fresh_one_is_a_rotation() {
        let stuck = run(observed(
            &[
                ("v1", &["AWSCURRENT"], NOW - 900),
                ("v2", &["AWSPENDING"], NOW - 600),
            ],
            &[("AKIACUR", true)],
            NOW - 300,
        ));
        assert_eq!(codes(&stuck), vec!["StuckPending"]);
        assert_eq!(
            stuck.stuck_pending.as_ref().and_then(|p| p.age_seconds),
            Some(600)
        );
        let fresh = run(observed(
            &[
                ("v1", &["AWSCURRENT"], NOW - 900),
                ("v2", &["AWSPENDING"], NOW - 5),
            ],
            &[("AKIACUR", true)],
            NOW - 300,
        ));
        assert!(fresh.problems.is_empty());
        assert!(fresh.rotating.is_some());
    }

    #[test]
    fn hand_made_keys_filling_the_slots_and_stale_secrets_are_flagged() {
        let blocked = run(observed(
            &[("v1", &["AWSCURRENT"], NOW)],
            &[("AKIAHAND1", false), ("AKIAHAND2", false)],
            NOW - 60,
        ));
        assert!(
            codes(&blocked).contains(&"NoFreeKeySlot"),
            "{:?}",
            blocked.problems
        );
        assert!(codes(&blocked).contains(&"CurrentKeyMissing"));
        let stale = run(observed(
            &[("v1", &["AWSCURRENT"], NOW)],
            &[("AKIACUR", true)],
            NOW - 1900,
        ));
        assert_eq!(codes(&stale), vec!["Stale"]);
        let report = render(vec![blocked, stale], Style { color: false }, at(NOW));
        assert!(report.attention);
        assert!(report.text.contains("2 need attention"), "{}", report.text);
    }
}
