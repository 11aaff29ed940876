//! Settings of the fleet function (the rotation function's binary, deployed a second time with
//! the fleet's role): read once from the environment, a clear error for a bad value.

use super::pacer::Budgets;
use crate::config::{
    number_or, required, rotation_interval, text_or, with_trailing_slash, ConfigError,
    DEFAULT_MANAGED_SECRET_PREFIX, MANAGED_SECRET_PREFIX,
};
use std::time::Duration;

pub const ROTATION_FUNCTION_ARN: &str = "KEYROT_ROTATION_FUNCTION_ARN";
pub const USERS_PARAMETER_PATH: &str = "KEYROT_USERS_PARAMETER_PATH";
pub const DEFAULT_USERS_PARAMETER_PATH: &str = "/keyrot/users/";
pub const SEED_USERS: &str = "KEYROT_SEED_USERS";
pub const SECRET_READER_ARNS: &str = "KEYROT_SECRET_READER_ARNS";
pub const SECRETS_KMS_KEY_ID: &str = "KEYROT_SECRETS_KMS_KEY_ID";
pub const IAM_WRITES_PER_SECOND: &str = "KEYROT_IAM_WRITES_PER_SECOND";
pub const SECRETS_WRITES_PER_SECOND: &str = "KEYROT_SECRETS_WRITES_PER_SECOND";
pub const ROTATE_SECRET_PER_SECOND: &str = "KEYROT_ROTATE_SECRET_PER_SECOND";
pub const RUN_SECONDS: &str = "KEYROT_FLEET_RUN_SECONDS";
pub const OFFBOARD_GRACE_SECONDS: &str = "KEYROT_OFFBOARD_GRACE_SECONDS";
pub const STACK_ID: &str = "KEYROT_STACK_ID";
pub const ELIGIBLE_USER_PATH: &str = "KEYROT_ELIGIBLE_USER_PATH";
pub const SESSION_DENY_POLICY_ARN: &str = "KEYROT_SESSION_DENY_POLICY_ARN";

#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// The function Secrets Manager invokes for each rotation step.
    pub rotation_function_arn: String,
    pub managed_prefix: String,
    /// The registry: one SSM parameter per managed user under this path.
    pub users_path: String,
    /// The stack's `ManagedUsers`: managed as if they had a registry entry.
    pub seed_users: Vec<String>,
    /// Principals allowed to read a managed secret (its resource policy denies all others).
    pub secret_readers: Vec<String>,
    /// A customer managed KMS key for new secrets; `None` for Secrets Manager's own key.
    pub kms_key_id: Option<String>,
    pub interval: Duration,
    pub budgets: Budgets,
    /// How long one reconcile run may dispatch before it leaves the rest to the next run
    /// (the schedule fires every minute).
    pub run_time: Duration,
    /// How long after a secret stops being served its keys are kept beyond the interval:
    /// covers the calls between recording the promise and the deletion, and clock skew.
    pub offboard_grace: Duration,
    /// The stack whose teardown custom resource this function serves (its `AWS::StackId`);
    /// `None` (no stack, as locally): every custom-resource event is refused.
    pub stack_id: Option<String>,
    /// Only IAM users under this path may be enrolled (the administrator's boundary, which the
    /// registry's writers cannot widen; template.yaml `EligibleUserPath`).
    pub eligible_user_path: String,
    /// The managed policy that ends a managed user's temporary-credential sessions: attached
    /// on enrolment, detached when keyrot lets the user go; `None`: not managed by the fleet.
    pub session_deny_policy_arn: Option<String>,
}

impl FleetConfig {
    /// The fleet's settings; `None` when this deployment of the binary is not the fleet
    /// function (no rotation function to point secrets at).
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        if text_or(&lookup, ROTATION_FUNCTION_ARN, "").is_empty() {
            return Ok(None);
        }
        let rotation_function_arn = required(&lookup, ROTATION_FUNCTION_ARN)?;
        let seed_users = names(&lookup, SEED_USERS)?;
        let secret_readers = list(&lookup, SECRET_READER_ARNS);
        if secret_readers.is_empty() {
            return Err(ConfigError {
                variable: SECRET_READER_ARNS,
                value: String::new(),
                reason: "must list the principals that may read managed secrets (the API and rotation functions' roles)".into(),
            });
        }
        let kms_key_id = Some(text_or(&lookup, SECRETS_KMS_KEY_ID, "")).filter(|k| !k.is_empty());
        let rate = |variable, default| number_or(&lookup, variable, default, 1..=1000);
        Ok(Some(Self {
            rotation_function_arn,
            managed_prefix: text_or(
                &lookup,
                MANAGED_SECRET_PREFIX,
                DEFAULT_MANAGED_SECRET_PREFIX,
            ),
            users_path: with_trailing_slash(text_or(
                &lookup,
                USERS_PARAMETER_PATH,
                DEFAULT_USERS_PARAMETER_PATH,
            )),
            seed_users,
            secret_readers,
            kms_key_id,
            interval: rotation_interval(&lookup)?,
            budgets: Budgets {
                iam_writes_per_second: rate(IAM_WRITES_PER_SECOND, 10)?,
                secrets_writes_per_second: rate(SECRETS_WRITES_PER_SECOND, 20)?,
                rotate_secret_per_second: rate(ROTATE_SECRET_PER_SECOND, 50)?,
            },
            run_time: Duration::from_secs(number_or(&lookup, RUN_SECONDS, 50, 1..=840)?),
            offboard_grace: Duration::from_secs(number_or(
                &lookup,
                OFFBOARD_GRACE_SECONDS,
                120,
                1..=3600,
            )?),
            stack_id: Some(text_or(&lookup, STACK_ID, "")).filter(|id| !id.is_empty()),
            eligible_user_path: eligible_user_path(&lookup)?,
            session_deny_policy_arn: Some(text_or(&lookup, SESSION_DENY_POLICY_ARN, ""))
                .filter(|arn| !arn.is_empty()),
        }))
    }
}

/// An IAM path: `/`, or `/` + segments + `/`.
fn eligible_user_path(lookup: &impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let path = text_or(lookup, ELIGIBLE_USER_PATH, "/");
    let valid = path.starts_with('/')
        && path.ends_with('/')
        && path.len() <= 512
        && !path.contains("//")
        && path
            .chars()
            .all(|c| ('\u{21}'..='\u{7e}').contains(&c) && !"*?$".contains(c));
    if valid {
        Ok(path)
    } else {
        Err(ConfigError {
            variable: ELIGIBLE_USER_PATH,
            value: path,
            reason: "must be an IAM path: / or /segments/ (printable ASCII, no * ? $ or //)".into(),
        })
    }
}

fn list(lookup: &impl Fn(&str) -> Option<String>, variable: &str) -> Vec<String> {
    text_or(lookup, variable, "")
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A comma-separated list of IAM user names.
fn names(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<Vec<String>, ConfigError> {
    let names = list(lookup, variable);
    match names
        .iter()
        .find(|name| !crate::api::endpoints::is_valid_user_name(name))
    {
        Some(bad) => Err(ConfigError {
            variable,
            value: bad.clone(),
            reason: "each item must be an IAM user name (1-64 of letters, digits and _+=,.@-)"
                .into(),
        }),
        None => Ok(names),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Option<FleetConfig>, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        FleetConfig::from_lookup(move |name| vars.get(name).cloned())
    }

    #[test]
    fn the_eligible_user_path_must_be_an_iam_path_without_wildcards() {
        let with_path = |path: &str| {
            config(&[
                (
                    ROTATION_FUNCTION_ARN,
                    "arn:aws:lambda:us-east-1:1:function:rot",
                ),
                (SECRET_READER_ARNS, "arn:aws:iam::1:role/api"),
                (ELIGIBLE_USER_PATH, path),
            ])
        };
        for good in ["/", "/keyrot-managed/", "/team/ci/"] {
            let fleet = with_path(good).expect("valid").expect("fleet");
            assert_eq!(fleet.eligible_user_path, good);
        }
        for bad in [
            "keyrot/",
            "/keyrot",
            "/a*/",
            "/a?/",
            "/${aws:username}/",
            "//",
            "/a b/",
        ] {
            let error = with_path(bad).expect_err(bad);
            assert_eq!(error.variable, ELIGIBLE_USER_PATH, "{bad}");
        }
    }

    #[test]
    fn without_a_rotation_function_this_is_not_the_fleet_function() {
        assert_eq!(config(&[]).unwrap(), None);
    }

    #[test]
    fn defaults_are_the_documented_budgets() {
        let fleet = config(&[
            (
                ROTATION_FUNCTION_ARN,
                "arn:aws:lambda:us-east-1:1:function:rot",
            ),
            (
                SECRET_READER_ARNS,
                "arn:aws:iam::1:role/api, arn:aws:iam::1:role/rot",
            ),
            (SEED_USERS, "alice, bob"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(fleet.users_path, "/keyrot/users/");
        assert_eq!(fleet.seed_users, ["alice", "bob"]);
        assert_eq!(fleet.secret_readers.len(), 2);
        assert_eq!(fleet.budgets.iam_writes_per_second, 10);
        assert_eq!(fleet.budgets.secrets_writes_per_second, 20);
        assert_eq!(fleet.budgets.rotate_secret_per_second, 50);
        assert_eq!(fleet.interval, Duration::from_secs(600));
        assert_eq!(fleet.kms_key_id, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let base = [
            (
                ROTATION_FUNCTION_ARN,
                "arn:aws:lambda:us-east-1:1:function:rot",
            ),
            (SECRET_READER_ARNS, "arn:aws:iam::1:role/api"),
        ];
        for (variable, value) in [
            (IAM_WRITES_PER_SECOND, "0"),
            (SECRETS_WRITES_PER_SECOND, "many"),
            (SEED_USERS, "alice,bad user"),
            (RUN_SECONDS, "9999"),
        ] {
            let mut vars = base.to_vec();
            vars.push((variable, value));
            let error = config(&vars).unwrap_err();
            assert_eq!(error.variable, variable);
        }
        let error = config(&base[..1]).unwrap_err();
        assert_eq!(error.variable, SECRET_READER_ARNS);
    }
}
