//! `keyrot users add|remove|list`: the fleet registry (docs/fleet.md).

use crate::cloud::{Cloud, SecretInfo};
use crate::deployment::Deployment;
use crate::error::CliError;
use crate::names;
use crate::output::{table, Style};
use crate::Report;
use keyrot::key_slots::{self, Slot};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

/// The tag the reconciler puts on the secrets it creates.
pub const FLEET_TAG: &str = "keyrot:fleet";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserState {
    /// In the registry (or the seed list), no rotating secret yet.
    Pending,
    /// The secret exists with rotation enabled.
    Managed,
    /// Its secret is scheduled for deletion, or its entry is gone and the secret remains.
    Offboarding,
}

impl UserState {
    pub fn label(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Managed => "managed",
            Self::Offboarding => "offboarding",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct UserEntry {
    pub user: String,
    pub state: UserState,
    pub in_registry: bool,
    pub seed: bool,
    /// The registry entry exists but its value is not `{"UserName": "<user>"}`.
    pub malformed_entry: bool,
    #[serde(skip)]
    pub secret: Option<SecretInfo>,
}

/// Every user the registry, the seed list or the managed secrets name.
pub async fn list<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
) -> Result<Vec<UserEntry>, CliError> {
    let names = &deployment.names;
    let (parameters, secrets) = tokio::join!(
        cloud.list_parameters(&names.users_path),
        cloud.list_secrets(&names.managed_prefix)
    );
    let mut registry: BTreeMap<String, bool> = BTreeMap::new();
    for (name, value) in parameters? {
        let user = name
            .strip_prefix(names.users_path.as_str())
            .unwrap_or(&name)
            .trim_start_matches('/')
            .to_owned();
        let well_formed = serde_json::from_str::<serde_json::Value>(&value)
            .ok()
            .and_then(|v| {
                v.get("UserName")
                    .and_then(|u| u.as_str())
                    .map(|u| u == user)
            })
            .unwrap_or(false);
        registry.insert(user, well_formed);
    }
    let mut secrets_by_user: BTreeMap<String, SecretInfo> = BTreeMap::new();
    // A user is known by its first slot's secret (the second follows it a run later).
    for secret in secrets? {
        if let Some((user, Slot::A)) =
            key_slots::parse_secret_name(&names.managed_prefix, &secret.name)
        {
            secrets_by_user.insert(user.to_owned(), secret);
        }
    }
    let mut all: Vec<String> = registry
        .keys()
        .chain(secrets_by_user.keys())
        .chain(deployment.seed_users.iter())
        .cloned()
        .collect();
    all.sort();
    all.dedup();
    Ok(all
        .into_iter()
        .map(|user| {
            let in_registry = registry.contains_key(&user);
            let seed = deployment.seed_users.iter().any(|s| s == &user);
            let secret = secrets_by_user.get(&user).cloned();
            // Without the stack (the local stack) the seed list is unknown: a secret the fleet
            // still serves is taken as wanted; the fleet schedules an unwanted one's deletion
            // within a run, and it then shows as offboarding.
            let seeds_unknown = matches!(deployment.source, crate::deployment::Source::FixedNames);
            let state = classify(in_registry || seed || seeds_unknown, secret.as_ref());
            UserEntry {
                malformed_entry: registry.get(&user) == Some(&false),
                user,
                state,
                in_registry,
                seed,
                secret,
            }
        })
        .collect())
}

fn classify(wanted: bool, secret: Option<&SecretInfo>) -> UserState {
    match secret {
        None => UserState::Pending,
        Some(secret) if secret.deleted.is_some() => UserState::Offboarding,
        Some(secret) if !wanted && secret.has_tag(FLEET_TAG) => UserState::Offboarding,
        Some(secret) if secret.rotation_enabled => UserState::Managed,
        Some(_) => UserState::Pending,
    }
}

pub async fn add<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    user: &str,
) -> Result<Report, CliError> {
    names::user(user)?;
    let Some(iam_user) = cloud.get_user(user).await? else {
        return Err(CliError::not_found(
            format!("IAM user {user} does not exist"),
            format!("create it first (aws iam create-user --user-name {user}) or check the name"),
        ));
    };
    // The fleet refuses users outside the stack's EligibleUserPath (docs/security.md, 19.9):
    // say so now rather than leave a registry entry nobody serves.
    if let Some(eligible) = &deployment.eligible_user_path {
        if !iam_user.is_under(eligible) {
            return Err(CliError::refused(
                format!(
                    "IAM user {user} is at path {}, outside the stack's EligibleUserPath {eligible}: keyrot may not manage it",
                    iam_user.path().unwrap_or("(unknown)")
                ),
                "pick a user under that path, or deploy with the EligibleUserPath that covers it (docs/deploy.md)",
            ));
        }
    }
    let parameter = deployment.names.user_parameter(user);
    let value = json!({ "UserName": user }).to_string();
    let created = match cloud.put_parameter(&parameter, &value, false).await {
        Ok(()) => true,
        Err(error) if error.has_code("ParameterAlreadyExists") => false,
        Err(error) => return Err(error.into()),
    };
    let text = if created {
        format!(
            "registered {user} ({parameter}): the reconciler creates its secret and first key within a minute; `keyrot users list` shows it managed then\n"
        )
    } else {
        format!("{user} is already registered ({parameter}); nothing changed\n")
    };
    Ok(Report::ok(
        text,
        json!({"user": user, "parameter": parameter, "created": created}),
    ))
}

pub async fn remove<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    user: &str,
) -> Result<Report, CliError> {
    names::user(user)?;
    let parameter = deployment.names.user_parameter(user);
    let deleted = cloud.delete_parameter(&parameter).await?;
    let seed = deployment.seed_users.iter().any(|s| s == user);
    if !deleted {
        return Err(if seed {
            CliError::refused(
                format!("{user} is in the stack's ManagedUsers seed list, not in the registry"),
                "remove it from ManagedUsers and redeploy",
            )
        } else {
            CliError::not_found(
                format!("{user} is not in the registry ({parameter})"),
                "keyrot users list shows the registered users",
            )
        });
    }
    let mut text = format!(
        "removed {user} from the registry: the reconciler offboards it — its keys stay valid for what was promised (one interval plus a 2-minute grace), then keyrot deletes them and the secret\n"
    );
    if seed {
        text.push_str(&format!(
            "note: {user} is also in the stack's ManagedUsers seed list, so it stays managed until it is removed there\n"
        ));
    }
    Ok(Report::ok(
        text,
        json!({"user": user, "parameter": parameter, "removed": true, "still_seeded": seed}),
    ))
}

pub async fn list_report<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    style: Style,
) -> Result<Report, CliError> {
    let users = list(cloud, deployment).await?;
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            let mut source = Vec::new();
            if u.in_registry {
                source.push("registry");
            }
            if u.seed {
                source.push("seed");
            }
            if source.is_empty() {
                source.push("secret only");
            }
            let state = match u.state {
                UserState::Managed => style.good(u.state.label()),
                UserState::Pending => style.warn(u.state.label()),
                UserState::Offboarding => style.warn(u.state.label()),
            };
            let mut notes = String::new();
            if u.malformed_entry {
                notes.push_str("registry entry is not {\"UserName\": …}");
            }
            vec![u.user.clone(), state, source.join("+"), notes]
        })
        .collect();
    let mut text = table(&["USER", "STATE", "SOURCE", "NOTES"], &rows);
    let count = |s: UserState| users.iter().filter(|u| u.state == s).count();
    text.push_str(&format!(
        "{} users: {} managed, {} pending, {} offboarding\n",
        users.len(),
        count(UserState::Managed),
        count(UserState::Pending),
        count(UserState::Offboarding)
    ));
    Ok(Report::ok(text, json!({ "users": users })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_the_registry_and_the_secret() {
        let secret = |enabled: bool, deleted: bool, fleet: bool| SecretInfo {
            rotation_enabled: enabled,
            deleted: deleted.then(std::time::SystemTime::now),
            tags: if fleet {
                vec![(FLEET_TAG.into(), "keyrot/iam/".into())]
            } else {
                vec![]
            },
            ..SecretInfo::default()
        };
        assert_eq!(classify(true, None), UserState::Pending);
        assert_eq!(
            classify(true, Some(&secret(false, false, true))),
            UserState::Pending
        );
        assert_eq!(
            classify(true, Some(&secret(true, false, true))),
            UserState::Managed
        );
        assert_eq!(
            classify(true, Some(&secret(true, true, true))),
            UserState::Offboarding
        );
        assert_eq!(
            classify(false, Some(&secret(true, false, true))),
            UserState::Offboarding
        );
        // A secret the stack made (no fleet tag) is managed without an entry.
        assert_eq!(
            classify(false, Some(&secret(true, false, false))),
            UserState::Managed
        );
    }
}
