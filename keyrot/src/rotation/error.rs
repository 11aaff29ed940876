//! Everything a rotation step can fail with. Messages name the secret, user and key ids
//! involved and what an operator can do; they never contain key material.

use crate::AwsCallError;
use lambda_runtime::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("malformed rotation event: {0}")]
    MalformedEvent(String),

    #[error(
        "unknown rotation step {0:?}: expected createSecret, setSecret, testSecret or finishSecret"
    )]
    UnknownStep(String),

    #[error("rotation is not enabled for secret {secret}: configure rotation (RotateSecret with a rotation function) before invoking the rotation function")]
    RotationDisabled { secret: String },

    #[error("version {token} is not a version of secret {secret}")]
    UnknownVersion { secret: String, token: String },

    #[error(
        "version {token} of secret {secret} is not staged AWSPENDING (its labels: {stages:?})"
    )]
    NotPending {
        secret: String,
        token: String,
        stages: Vec<String>,
    },

    #[error("secret {secret} has no {stage} value to rotate from")]
    MissingValue { secret: String, stage: &'static str },

    #[error("the {stage} value of secret {secret} is not a valid {kind} secret: {reason}")]
    InvalidSecretValue {
        secret: String,
        stage: &'static str,
        kind: &'static str,
        reason: String,
    },

    #[error("IAM user {user} named by secret {secret} does not exist")]
    UserNotFound { secret: String, user: String },

    #[error("IAM user {user} named by secret {secret} is not enrolled (no tag keyrot:managed={prefix}): keyrot touches only users it onboarded; add the user to the registry (keyrot users add {user}) instead of creating its secret by hand")]
    UserNotManaged {
        secret: String,
        user: String,
        prefix: String,
    },

    #[error("IAM user {user} has no free access key slot: {foreign_keys:?} {verb} not created by keyrot and keyrot never deletes such keys; delete one of them (aws iam delete-access-key --user-name {user} --access-key-id <id>) then retry the rotation", verb = if foreign_keys.len() == 1 { "was" } else { "were" })]
    NoFreeKeySlot {
        user: String,
        foreign_keys: Vec<String>,
    },

    #[error("secret {secret} names IAM user {user}, but a managed secret's name must be exactly {prefix:?} followed by its user's name: refusing to touch {user}'s keys")]
    SecretNameMismatch {
        secret: String,
        user: String,
        prefix: String,
    },

    #[error("secret {secret} has reached Secrets Manager's limit on versions ({aws_message}): Secrets Manager keeps every version younger than 24 hours, and each rotation adds one (72 a day per slot secret at a 10-minute interval); avoid extra manual rotations until versions age out. Nothing was changed: AWSCURRENT and its key keep working{}", if *reattempt { " (a reattempt of a rotation already reported)" } else { "" })]
    VersionLimitReached {
        secret: String,
        aws_message: String,
        /// Secrets Manager's reattempt of a rotation already refused (and mailed) for this.
        reattempt: bool,
    },

    #[error("AWSPENDING of secret {secret} names IAM user {pending} but AWSCURRENT names {current}: refusing to mix users")]
    UserMismatch {
        secret: String,
        current: String,
        pending: String,
    },

    #[error(
        "access key {key_id} in AWSPENDING of secret {secret} is not a key of IAM user {user}"
    )]
    KeyNotOwned {
        secret: String,
        user: String,
        key_id: String,
    },

    #[error("access key {key_id} of IAM user {user} was not accepted by STS after {attempts} attempts over {waited_ms} ms (last answer: {last_answer}); AWSCURRENT is unchanged and Secrets Manager will retry the rotation")]
    KeyNotVerified {
        user: String,
        key_id: String,
        attempts: u32,
        waited_ms: u128,
        last_answer: String,
    },

    #[error("access key {key_id} authenticates as {actual}, not as {expected}")]
    WrongIdentity {
        key_id: String,
        expected: String,
        actual: String,
    },

    #[error(transparent)]
    Aws(#[from] AwsCallError),
}

impl RotationError {
    pub fn invalid_value(
        secret: &str,
        stage: &'static str,
        kind: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidSecretValue {
            secret: secret.to_owned(),
            stage,
            kind,
            reason: reason.into(),
        }
    }

    /// A stable, machine-readable name for alarms and metrics.
    /// Whether this failure repeats one already mailed for the same rotation (Secrets
    /// Manager's reattempt of a rotation refused at the version limit).
    pub fn already_reported(&self) -> bool {
        matches!(
            self,
            Self::VersionLimitReached {
                reattempt: true,
                ..
            }
        )
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedEvent(_) => "MalformedEvent",
            Self::UnknownStep(_) => "UnknownStep",
            Self::RotationDisabled { .. } => "RotationDisabled",
            Self::UnknownVersion { .. } => "UnknownVersion",
            Self::NotPending { .. } => "NotPending",
            Self::MissingValue { .. } => "MissingValue",
            Self::InvalidSecretValue { .. } => "InvalidSecretValue",
            Self::UserNotFound { .. } => "UserNotFound",
            Self::UserNotManaged { .. } => "UserNotManaged",
            Self::NoFreeKeySlot { .. } => "NoFreeKeySlot",
            Self::SecretNameMismatch { .. } => "SecretNameMismatch",
            Self::VersionLimitReached { .. } => "VersionLimitReached",
            Self::UserMismatch { .. } => "UserMismatch",
            Self::KeyNotOwned { .. } => "KeyNotOwned",
            Self::KeyNotVerified { .. } => "KeyNotVerified",
            Self::WrongIdentity { .. } => "WrongIdentity",
            Self::Aws(_) => "AwsCallFailed",
        }
    }
}

impl From<RotationError> for Diagnostic {
    fn from(error: RotationError) -> Self {
        Diagnostic {
            error_type: format!("keyrot.rotation.{}", error.code()),
            error_message: error.to_string(),
        }
    }
}

/// Parses a secret value as the JSON of `T`; a failure is described without echoing the value.
pub fn parse_secret_json<T: serde::de::DeserializeOwned>(
    value: &crate::Sensitive,
    secret: &str,
    stage: &'static str,
    kind: &'static str,
) -> Result<T, RotationError> {
    serde_json::from_str(value.expose()).map_err(|error| {
        RotationError::invalid_value(
            secret,
            stage,
            kind,
            crate::json_error::describe_json_error(&error),
        )
    })
}
