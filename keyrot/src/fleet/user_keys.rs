//! One user's keyrot-made keys, as the fleet sees them when it offboards or tears down: which
//! keys a secret made, and until when each is promised to clients.

use crate::iam_key::{IamKeys, KeyLedger, ManagedMark, INTENT_TAG_PREFIX};
use crate::AwsCallError;
use std::time::SystemTime;

/// What IAM says about a user's keys and keyrot's tags on it.
#[derive(Debug, Clone)]
pub struct UserKeys {
    /// (key id, mark) of every existing key keyrot made for the user's slot secrets.
    pub managed: Vec<(String, ManagedMark)>,
    /// Tag keys keyrot wrote for the secret that name no existing key (marks of deleted keys)
    /// and creation intents: removed when the user is released.
    pub leftover_tags: Vec<String>,
    pub has_managed_tag: bool,
}

impl UserKeys {
    /// `None` when the user no longer exists.
    pub async fn read(
        iam: &impl IamKeys,
        user: &str,
        secrets: &[String],
    ) -> Result<Option<Self>, AwsCallError> {
        let tags = match iam.list_user_tags(user).await {
            Ok(tags) => tags,
            Err(error) if error.has_code("NoSuchEntity") => return Ok(None),
            Err(error) => return Err(error),
        };
        let keys = match iam.list_access_keys(user).await {
            Ok(keys) => keys,
            Err(error) if error.has_code("NoSuchEntity") => return Ok(None),
            Err(error) => return Err(error),
        };
        let ledger = KeyLedger::from_tags_and_keys(&tags, &keys);
        let managed: Vec<(String, ManagedMark)> = keys
            .iter()
            .filter_map(|key| {
                secrets
                    .iter()
                    .find_map(|secret| ledger.mark_for(&key.id, secret))
                    .map(|mark| (key.id.clone(), mark.clone()))
            })
            .collect();
        let existing: std::collections::HashSet<&str> =
            keys.iter().map(|key| key.id.as_str()).collect();
        let mut leftover_tags: Vec<String> = secrets
            .iter()
            .flat_map(|secret| ledger.stale_marks(secret, &existing))
            .collect();
        // Intents, and slot marks whose key is gone (a revoked key's).
        let in_use: std::collections::HashSet<&str> = managed
            .iter()
            .map(|(_, mark)| mark.tag_key.as_str())
            .collect();
        leftover_tags.extend(
            tags.iter()
                .map(|(key, _)| key)
                .filter(|key| key.starts_with(INTENT_TAG_PREFIX))
                .cloned(),
        );
        leftover_tags.extend(
            ledger
                .slot_mark_tags()
                .into_iter()
                .filter(|key| !in_use.contains(key.as_str())),
        );
        leftover_tags.sort();
        leftover_tags.dedup();
        Ok(Some(Self {
            managed,
            leftover_tags,
            has_managed_tag: tags
                .iter()
                .any(|(key, _)| key == super::ports::MANAGED_USER_TAG),
        }))
    }

    /// When the last promise made for any of these keys ends; a key without a recorded end
    /// is promised until `unrecorded(its mark)`.
    pub fn promised_until(
        &self,
        unrecorded: impl Fn(&ManagedMark) -> SystemTime,
    ) -> Option<SystemTime> {
        self.managed
            .iter()
            .map(|(_, mark)| mark.until.unwrap_or_else(|| unrecorded(mark)))
            .max()
    }

    /// Deletes the keys and every tag keyrot wrote on the user (marks, intents and the
    /// managed-user tag), marks last: a crash in between leaves marks the next run finds.
    pub async fn release(&self, iam: &impl IamKeys, user: &str) -> Result<usize, AwsCallError> {
        for (key_id, _) in &self.managed {
            iam.delete_access_key(user, key_id).await?;
        }
        let mut tags: Vec<String> = self
            .managed
            .iter()
            .map(|(_, mark)| mark.tag_key.clone())
            .collect();
        tags.extend(self.leftover_tags.iter().cloned());
        if self.has_managed_tag {
            tags.push(super::ports::MANAGED_USER_TAG.to_owned());
        }
        // UntagUser takes at most 50 keys per call.
        for chunk in tags.chunks(50) {
            iam.untag_user(user, chunk).await?;
        }
        Ok(self.managed.len())
    }

    /// IAM writes [`UserKeys::release`] makes.
    pub fn release_writes(&self) -> u64 {
        let tags =
            self.managed.len() + self.leftover_tags.len() + usize::from(self.has_managed_tag);
        (self.managed.len() + tags.div_ceil(50)) as u64
    }
}
