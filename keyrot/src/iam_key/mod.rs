//! The IAM access key secret kind: a secret holding one access key of one IAM user.

mod ledger;
mod lifetime;
mod ports;
mod rotator;
mod sdk;
mod secret;

pub use ledger::{
    CreationIntent, KeyLedger, ManagedMark, INTENT_TAG_PREFIX, MANAGED_TAG_PREFIX,
    MANAGED_USER_TAG, SLOT_MARK_TAG_PREFIX,
};
pub use lifetime::KeyLifetime;
pub use ports::{
    AccessKeyInfo, IamKeys, IamUser, KeyCheck, KeyVerifier, NewAccessKey, SecretVersions,
    SiblingSecret,
};
pub use rotator::{IamKeyRotator, IamRotationSettings};
pub use sdk::{IamSdk, StsKeyVerifier};
pub use secret::IamKeySecret;
