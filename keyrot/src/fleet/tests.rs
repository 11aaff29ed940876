//! The fleet on in-memory AWS: onboarding, offboarding around the key lifetime contract,
//! dispatch, crash-resumption and teardown.

use super::*;
use crate::iam_key::{AccessKeyInfo, IamUser, NewAccessKey, MANAGED_TAG_PREFIX};
use std::collections::BTreeMap;
use std::sync::Mutex;

const PREFIX: &str = "keyrot/iam/";

#[derive(Default)]
struct World {
    registry: Vec<String>,
    /// Entries that exist but do not parse (their last path segments).
    unreadable_entries: Vec<String>,
    registry_fails: bool,
    /// user → (key ids, tags)
    users: BTreeMap<String, (Vec<String>, BTreeMap<String, String>)>,
    secrets: BTreeMap<String, ListedSecret>,
    policies: BTreeMap<String, String>,
    calls: Vec<String>,
    /// Fail the n-th mutating call (counted from 0), once.
    fail_at: Option<usize>,
    mutations: usize,
    /// DescribeSecret calls (reads, not in `calls`).
    describes: usize,
    /// What ListSecrets answers instead of the secrets, when set.
    stale_listing: Option<BTreeMap<String, ListedSecret>>,
    /// How long each listing (registry, secrets) takes.
    listing_latency: Duration,
}

#[derive(Clone, Default)]
struct Aws(std::sync::Arc<Mutex<World>>);

impl Aws {
    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap()
    }

    fn mutate(&self, call: String) -> Result<(), AwsCallError> {
        let mut world = self.world();
        let n = world.mutations;
        world.mutations += 1;
        if world.fail_at == Some(n) {
            world.fail_at = None;
            return Err(AwsCallError {
                operation: "Injected",
                code: Some("ServiceUnavailable".into()),
                message: format!("injected failure of {call}"),
            });
        }
        world.calls.push(call);
        Ok(())
    }

    fn add_user(&self, user: &str, keys: &[&str]) {
        self.world().users.insert(
            user.into(),
            (
                keys.iter().map(|k| (*k).to_owned()).collect(),
                BTreeMap::new(),
            ),
        );
    }

    fn mark(&self, user: &str, key: &str, until: Option<SystemTime>) {
        let mark = format!("{MANAGED_TAG_PREFIX}{PREFIX}{user} version=v1");
        let value = match until {
            Some(until) => format!("{mark} until={}", crate::time::unix_seconds(until)),
            None => mark,
        };
        let mut world = self.world();
        let entry = world.users.get_mut(user).unwrap();
        entry.0.push(key.into());
        entry.1.insert(key.into(), value);
        // Only an enrolled user gets keyrot's keys.
        entry.1.insert(MANAGED_USER_TAG.into(), PREFIX.into());
    }

    /// Both slot secrets of `user`, onboarded.
    fn ready_secret(&self, user: &str, last_rotated: Option<SystemTime>) {
        for name in [format!("{PREFIX}{user}"), format!("{PREFIX}{user}/b")] {
            self.world().secrets.insert(
                name.clone(),
                ListedSecret {
                    name,
                    fleet: true,
                    rotation_enabled: true,
                    last_rotated,
                    deleted: None,
                    rotating: false,
                    // Onboarding put the stack's policy.
                    policy_stamp: Some(super::policy::stamp(&format!(
                        "{}\n",
                        super::policy::readers_only(&readers())
                    ))),
                },
            );
        }
        // Onboarding tagged the user (when it exists).
        if let Some((_, tags)) = self.world().users.get_mut(user) {
            tags.insert(MANAGED_USER_TAG.into(), PREFIX.into());
        }
    }

    fn set_secret(&self, name: &str, change: impl FnOnce(&mut ListedSecret)) {
        change(self.world().secrets.get_mut(name).unwrap());
    }
}

impl UserPolicies for Aws {
    async fn attach_user_policy(&self, user: &str, policy: &str) -> Result<(), AwsCallError> {
        self.mutate(format!("AttachUserPolicy {user} {policy}"))
    }
    async fn detach_user_policy(&self, user: &str, policy: &str) -> Result<(), AwsCallError> {
        // The fleet role may detach it from enrolled users only (template.yaml).
        let enrolled = self
            .world()
            .users
            .get(user)
            .is_some_and(|(_, tags)| tags.contains_key(MANAGED_USER_TAG));
        if !enrolled {
            return Err(AwsCallError {
                operation: "DetachUserPolicy",
                code: Some("AccessDenied".into()),
                message: "not authorized: the user has no keyrot:managed tag".into(),
            });
        }
        self.mutate(format!("DetachUserPolicy {user} {policy}"))
    }
}

impl Registry for Aws {
    async fn users(&self) -> Result<RegistryUsers, AwsCallError> {
        let latency = self.world().listing_latency;
        tokio::time::sleep(latency).await;
        let world = self.world();
        if world.registry_fails {
            return Err(AwsCallError {
                operation: "GetParametersByPath",
                code: Some("AccessDeniedException".into()),
                message: "denied".into(),
            });
        }
        Ok(RegistryUsers {
            users: world.registry.clone(),
            unreadable: world.unreadable_entries.clone(),
        })
    }
    async fn remove(&self, user: &str) -> Result<(), AwsCallError> {
        self.mutate(format!("DeleteParameter {user}"))?;
        self.world().registry.retain(|u| u != user);
        Ok(())
    }
}

impl FleetSecrets for Aws {
    async fn list(&self, prefix: &str) -> Result<Vec<ListedSecret>, AwsCallError> {
        let latency = self.world().listing_latency;
        tokio::time::sleep(latency).await;
        let world = self.world();
        // ListSecrets may miss the last five minutes: a test may hand out an old listing.
        let secrets = world.stale_listing.as_ref().unwrap_or(&world.secrets);
        Ok(secrets
            .values()
            .filter(|s| s.name.starts_with(prefix))
            .cloned()
            .collect())
    }
    async fn describe(&self, name: &str, _: &str) -> Result<Option<ListedSecret>, AwsCallError> {
        let mut world = self.world();
        world.describes += 1;
        Ok(world.secrets.get(name).cloned())
    }
    async fn create(
        &self,
        name: &str,
        _: &str,
        _: &str,
        _: Option<&str>,
    ) -> Result<bool, AwsCallError> {
        self.mutate(format!("CreateSecret {name}"))?;
        let mut world = self.world();
        if world.secrets.contains_key(name) {
            return Ok(false);
        }
        world.secrets.insert(
            name.into(),
            ListedSecret {
                name: name.into(),
                fleet: true,
                rotation_enabled: false,
                last_rotated: None,
                deleted: None,
                rotating: false,
                policy_stamp: None,
            },
        );
        Ok(true)
    }
    async fn tag_fleet(&self, name: &str, _: &str) -> Result<(), AwsCallError> {
        self.mutate(format!("TagResource {name}"))?;
        if let Some(s) = self.world().secrets.get_mut(name) {
            s.fleet = true;
        }
        Ok(())
    }
    async fn put_policy(&self, name: &str, policy: &str, stamp: &str) -> Result<(), AwsCallError> {
        self.mutate(format!("PutResourcePolicy {name}"))?;
        let mut world = self.world();
        world.policies.insert(name.into(), policy.into());
        if let Some(secret) = world.secrets.get_mut(name) {
            secret.policy_stamp = Some(stamp.to_owned());
        }
        Ok(())
    }
    async fn enable_rotation(&self, name: &str, _: &str) -> Result<RotationStart, AwsCallError> {
        self.mutate(format!("EnableRotation {name}"))?;
        let mut world = self.world();
        let secret = world.secrets.get_mut(name).unwrap();
        secret.rotation_enabled = true;
        secret.last_rotated = Some(SystemTime::now());
        Ok(RotationStart::Started)
    }
    async fn rotate(&self, name: &str, _: &str) -> Result<RotationStart, AwsCallError> {
        self.mutate(format!("RotateSecret {name}"))?;
        if let Some(s) = self.world().secrets.get_mut(name) {
            s.last_rotated = Some(SystemTime::now());
        }
        Ok(RotationStart::Started)
    }
    async fn schedule_deletion(&self, name: &str) -> Result<(), AwsCallError> {
        self.mutate(format!("DeleteSecret {name}"))?;
        if let Some(s) = self.world().secrets.get_mut(name) {
            s.deleted = Some(SystemTime::now());
        }
        Ok(())
    }
    async fn restore(&self, name: &str) -> Result<(), AwsCallError> {
        self.mutate(format!("RestoreSecret {name}"))?;
        if let Some(s) = self.world().secrets.get_mut(name) {
            s.deleted = None;
        }
        Ok(())
    }
    async fn purge(&self, name: &str) -> Result<(), AwsCallError> {
        self.mutate(format!("PurgeSecret {name}"))?;
        self.world().secrets.remove(name);
        Ok(())
    }
}

fn no_such_entity(operation: &'static str) -> AwsCallError {
    AwsCallError {
        operation,
        code: Some("NoSuchEntity".into()),
        message: "no such user".into(),
    }
}

impl IamKeys for Aws {
    async fn get_user(&self, user: &str) -> Result<Option<IamUser>, AwsCallError> {
        Ok(self.world().users.get(user).map(|(_, tags)| IamUser {
            name: user.into(),
            arn: format!("arn:aws:iam::1:user/{user}"),
            tags: tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }))
    }
    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyInfo>, AwsCallError> {
        let world = self.world();
        let (keys, tags) = world
            .users
            .get(user)
            .ok_or_else(|| no_such_entity("ListAccessKeys"))?;
        // The fleet role may list the keys of enrolled users only (template.yaml).
        if !tags.contains_key(MANAGED_USER_TAG) {
            return Err(AwsCallError {
                operation: "ListAccessKeys",
                code: Some("AccessDenied".into()),
                message: "not authorized: the user has no keyrot:managed tag".into(),
            });
        }
        Ok(keys
            .iter()
            .map(|id| AccessKeyInfo {
                id: id.clone(),
                active: true,
                created: None,
            })
            .collect())
    }
    async fn key_last_used(&self, _: &str) -> Result<Option<SystemTime>, AwsCallError> {
        Ok(None)
    }
    async fn list_user_tags(&self, user: &str) -> Result<Vec<(String, String)>, AwsCallError> {
        let world = self.world();
        let (_, tags) = world
            .users
            .get(user)
            .ok_or_else(|| no_such_entity("ListUserTags"))?;
        // The fleet role may list the tags of enrolled users only (template.yaml).
        if !tags.contains_key(MANAGED_USER_TAG) {
            return Err(AwsCallError {
                operation: "ListUserTags",
                code: Some("AccessDenied".into()),
                message: "not authorized: the user has no keyrot:managed tag".into(),
            });
        }
        Ok(tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
    async fn tag_user(&self, user: &str, key: &str, value: &str) -> Result<(), AwsCallError> {
        self.mutate(format!("TagUser {user} {key}"))?;
        let mut world = self.world();
        let (_, tags) = world
            .users
            .get_mut(user)
            .ok_or_else(|| no_such_entity("TagUser"))?;
        tags.insert(key.into(), value.into());
        Ok(())
    }
    async fn untag_user(&self, user: &str, keys: &[String]) -> Result<(), AwsCallError> {
        self.mutate(format!("UntagUser {user} {}", keys.join(",")))?;
        let mut world = self.world();
        let (_, tags) = world
            .users
            .get_mut(user)
            .ok_or_else(|| no_such_entity("UntagUser"))?;
        for key in keys {
            tags.remove(key);
        }
        Ok(())
    }
    async fn create_access_key(&self, _: &str) -> Result<NewAccessKey, AwsCallError> {
        unreachable!("the fleet never creates keys")
    }
    async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), AwsCallError> {
        self.mutate(format!("DeleteAccessKey {user} {key_id}"))?;
        let mut world = self.world();
        let (keys, _) = world
            .users
            .get_mut(user)
            .ok_or_else(|| no_such_entity("DeleteAccessKey"))?;
        keys.retain(|k| k != key_id);
        Ok(())
    }
}

/// The fleet's secret readers in these tests.
fn readers() -> Vec<String> {
    vec!["arn:aws:iam::1:role/api".into()]
}

fn fleet(aws: &Aws, seed: &[&str]) -> Fleet<Aws, Aws, Aws> {
    Fleet {
        registry: aws.clone(),
        secrets: aws.clone(),
        iam: aws.clone(),
        config: FleetConfig {
            rotation_function_arn: "arn:aws:lambda:us-east-1:1:function:rotation".into(),
            managed_prefix: PREFIX.into(),
            users_path: "/keyrot/users/".into(),
            seed_users: seed.iter().map(|s| (*s).to_owned()).collect(),
            secret_readers: readers(),
            kms_key_id: None,
            interval: Duration::from_secs(600),
            budgets: Budgets {
                iam_writes_per_second: 1000,
                secrets_writes_per_second: 1000,
                rotate_secret_per_second: 1000,
            },
            run_time: Duration::from_secs(50),
            offboard_grace: Duration::from_secs(120),
            stack_id: None,
            eligible_user_path: "/".into(),
            session_deny_policy_arn: None,
        },
    }
}

fn managed_tag(aws: &Aws, user: &str) -> Option<String> {
    aws.world().users[user].1.get(MANAGED_USER_TAG).cloned()
}

#[tokio::test(start_paused = true)]
async fn onboarding_tags_the_user_then_creates_locks_and_rotates_the_secret() {
    let aws = Aws::default();
    aws.add_user("alice", &[]);
    aws.world().registry = vec!["alice".into()];
    let report = fleet(&aws, &[]).reconcile().await.unwrap();
    assert_eq!(report.onboarded, 1);
    assert_eq!(
        aws.world().calls,
        [
            "TagUser alice keyrot:managed",
            "CreateSecret keyrot/iam/alice/b",
            "CreateSecret keyrot/iam/alice",
            "PutResourcePolicy keyrot/iam/alice",
            "EnableRotation keyrot/iam/alice",
        ]
    );
    assert_eq!(managed_tag(&aws, "alice").as_deref(), Some(PREFIX));
    // The next run enables slot B, whose first rotation mints the user's second key (and
    // starts slot A's tick if the wall clock puts one inside the run's 50 s).
    aws.world().calls.clear();
    let report = fleet(&aws, &[]).reconcile().await.unwrap();
    assert_eq!(report.onboarded, 1);
    let mut calls = aws.world().calls.clone();
    calls.retain(|call| call != "RotateSecret keyrot/iam/alice");
    assert_eq!(
        calls,
        [
            "PutResourcePolicy keyrot/iam/alice/b",
            "EnableRotation keyrot/iam/alice/b",
        ]
    );
    // A third run finds both in place: nothing to onboard again (at most a tick, if one
    // falls within the run).
    aws.world().calls.clear();
    let report = fleet(&aws, &[]).reconcile().await.unwrap();
    assert_eq!((report.managed, report.onboarded), (1, 0));
    let calls = aws.world().calls.clone();
    assert!(
        calls
            .iter()
            .all(|call| call.starts_with("RotateSecret keyrot/iam/alice")),
        "{calls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn seed_users_are_managed_and_unknown_users_are_left_pending() {
    let aws = Aws::default();
    aws.add_user("bob", &[]);
    aws.world().registry = vec!["ghost".into()];
    let report = fleet(&aws, &["bob"]).reconcile().await.unwrap();
    // bob's slot A; pending: bob's slot B (a run later) and both of ghost's slots.
    assert_eq!((report.onboarded, report.onboarding_pending), (1, 3));
    assert!(aws.world().secrets.contains_key("keyrot/iam/bob"));
    assert!(!aws.world().secrets.contains_key("keyrot/iam/ghost"));
}

#[tokio::test(start_paused = true)]
async fn a_policy_the_stack_no_longer_asks_for_is_put_back_once() {
    // Security issue, item 4: an adopted secret's own policy, or one naming a break-glass
    // principal the stack no longer names, used to stay as it was.
    let aws = Aws::default();
    aws.add_user("alice", &[]);
    aws.ready_secret("alice", Some(SystemTime::now()));
    aws.set_secret("keyrot/iam/alice/b", |secret| {
        secret.policy_stamp = Some("stale".into())
    });
    aws.set_secret("keyrot/iam/alice", |secret| secret.policy_stamp = None);
    aws.world().registry = vec!["alice".into()];
    let report = fleet(&aws, &[]).reconcile().await.unwrap();
    assert_eq!(report.policies_rewritten, 2);
    let expected = super::policy::readers_only(&readers());
    for name in ["keyrot/iam/alice", "keyrot/iam/alice/b"] {
        assert_eq!(aws.world().policies[name], expected, "{name}");
    }
    // Stamped now: the next run leaves them alone.
    let calls = aws.world().calls.len();
    let report = fleet(&aws, &[]).reconcile().await.unwrap();
    assert_eq!(report.policies_rewritten, 0);
    assert!(!aws.world().calls[calls..]
        .iter()
        .any(|call| call.starts_with("PutResourcePolicy")));
}

#[tokio::test(start_paused = true)]
async fn a_registry_user_outside_the_eligible_path_is_refused_and_never_tagged() {
    // Security issue, item 5: a registry writer could get keys minted for any IAM user.
    let aws = Aws::default();
    aws.add_user("admin", &[]);
    aws.world().registry = vec!["admin".into()];
    let mut fleet = fleet(&aws, &[]);
    fleet.config.eligible_user_path = "/keyrot-managed/".into();
    let report = fleet.reconcile().await.unwrap();
    assert_eq!(report.users_not_eligible, 1);
    assert_eq!(report.onboarded, 0);
    assert!(aws.world().calls.is_empty(), "{:?}", aws.world().calls);
    // The same user with the whole account eligible ("/") is enrolled.
    fleet.config.eligible_user_path = "/".into();
    let report = fleet.reconcile().await.unwrap();
    assert_eq!((report.users_not_eligible, report.onboarded), (0, 1));
}

#[test]
fn a_users_path_comes_from_its_arn() {
    let user = |arn: &str| IamUser {
        name: "alice".into(),
        arn: arn.into(),
        tags: Vec::new(),
    };
    let root = user("arn:aws:iam::123456789012:user/alice");
    assert_eq!(root.path(), Some("/"));
    let nested = user("arn:aws:iam::123456789012:user/keyrot-managed/ci/alice");
    assert_eq!(nested.path(), Some("/keyrot-managed/ci/"));
    assert!(nested.is_under("/keyrot-managed/"));
    assert!(nested.is_under("/"));
    assert!(!root.is_under("/keyrot-managed/"));
    assert!(!user("arn:aws:iam::1:user/keyrot-managed-not/alice").is_under("/keyrot-managed/"));
    assert_eq!(user("not an arn").path(), None);
}

#[tokio::test(start_paused = true)]
async fn the_session_deny_policy_is_attached_on_enrolment_and_detached_before_the_tag_goes() {
    // Security issue, item 7: sessions made from a managed user's keys outlive the keys.
    let policy = "arn:aws:iam::1:policy/keyrot/session-deny";
    let aws = Aws::default();
    aws.add_user("alice", &[]);
    aws.world().registry = vec!["alice".into()];
    let mut fleet = fleet(&aws, &[]);
    fleet.config.session_deny_policy_arn = Some(policy.into());
    fleet.reconcile().await.unwrap();
    let calls = aws.world().calls.clone();
    let position = |prefix: &str| calls.iter().position(|call| call.starts_with(prefix));
    let attach = position("AttachUserPolicy alice").expect("attached");
    assert!(position("TagUser alice keyrot:managed").is_some_and(|tag| tag < attach));
    assert!(attach < position("EnableRotation").expect("rotation enabled"));

    // Teardown releases the user: detach first, while the tag still grants it.
    aws.mark("alice", "AKIAALICE", None);
    aws.world().calls.clear();
    let report = fleet
        .teardown(Instant::now() + Duration::from_secs(60))
        .await;
    assert!(report.complete, "{report:?}");
    let calls = aws.world().calls.clone();
    let position = |prefix: &str| calls.iter().position(|call| call.starts_with(prefix));
    let detach = position("DetachUserPolicy alice").expect("detached");
    assert!(
        detach < position("UntagUser alice").expect("untagged"),
        "{calls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn users_managed_before_the_session_deny_policy_get_it_at_the_next_run() {
    let policy = "arn:aws:iam::1:policy/keyrot/session-deny";
    let aws = Aws::default();
    aws.add_user("alice", &[]);
    aws.ready_secret("alice", Some(SystemTime::now()));
    aws.world().registry = vec!["alice".into()];
    let mut fleet = fleet(&aws, &[]);
    fleet.config.session_deny_policy_arn = Some(policy.into());
    let report = fleet.reconcile().await.unwrap();
    assert_eq!(report.policies_rewritten, 2);
    let calls = aws.world().calls.clone();
    let attach = calls
        .iter()
        .position(|call| call.starts_with("AttachUserPolicy alice"))
        .expect("attached");
    let stamped = calls
        .iter()
        .position(|call| call.starts_with("PutResourcePolicy"))
        .expect("stamped");
    assert!(
        attach < stamped,
        "the stamp claims only what is in place: {calls:?}"
    );
    let report = fleet.reconcile().await.unwrap();
    assert_eq!(report.policies_rewritten, 0, "stamped: nothing to do");
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_registry_changes_nothing() {
    let aws = Aws::default();
    aws.add_user("alice", &[]);
    aws.mark("alice", "AKIAALICE", None);
    aws.ready_secret("alice", Some(SystemTime::now()));
    aws.world().registry_fails = true;
    let error = fleet(&aws, &[]).reconcile().await.unwrap_err();
    assert_eq!(error.code(), "RegistryUnreadable");
    assert!(aws.world().calls.is_empty());
    assert!(aws.world().secrets["keyrot/iam/alice"].deleted.is_none());
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_registry_entry_keeps_its_user_as_it_is_and_is_counted() {
    // Security issue, item 6: a garbled, SecureString or mis-cased entry used to read as "not
    // desired", and the user's keys were deleted about 12 minutes later.
    let aws = Aws::default();
    aws.add_user("alice", &[]);
    aws.mark("alice", "AKIAALICE", None);
    aws.ready_secret("alice", Some(SystemTime::now()));
    aws.world().unreadable_entries = vec!["Alice".into()];
    for _ in 0..3 {
        let report = fleet(&aws, &[]).reconcile().await.unwrap();
        assert_eq!(report.registry_entries_unreadable, 1);
        assert_eq!(report.offboarding_started, 0);
    }
    assert!(aws.world().secrets["keyrot/iam/alice"].deleted.is_none());
    assert!(aws.world().users["alice"].1.contains_key("AKIAALICE"));
    assert!(!aws.world().calls.iter().any(|call| call.contains("Delete")));
}

#[tokio::test(start_paused = true)]
async fn offboarding_waits_for_the_promise_then_removes_only_keyrots_keys() {
    let aws = Aws::default();
    aws.add_user("alice", &["AKIAHANDMADE"]);
    aws.mark("alice", "AKIACURRENT", None);
    aws.world()
        .users
        .get_mut("alice")
        .unwrap()
        .1
        .insert(MANAGED_USER_TAG.into(), PREFIX.into());
    aws.ready_secret("alice", Some(SystemTime::now()));

    // Run 1: the promise is recorded and both slots stop being served.
    let report = fleet(&aws, &[]).reconcile().await.unwrap();
    assert_eq!(report.offboarding_started, 2);
    let mark = aws.world().users["alice"].1["AKIACURRENT"].clone();
    let until: u64 = mark.rsplit_once(" until=").unwrap().1.parse().unwrap();
    // A slot's key is retired at most three intervals after its last rotation.
    let expected =
        crate::time::unix_seconds(SystemTime::now() + Duration::from_secs(3 * 600 + 120));
    assert!(until.abs_diff(expected) <= 1, "{mark}");
    assert!(aws.world().secrets["keyrot/iam/alice"].deleted.is_some());
    assert!(aws.world().secrets["keyrot/iam/alice/b"].deleted.is_some());

    // Run 2, still promised: nothing is deleted.
    aws.world().calls.clear();
    let report = fleet(&aws, &[]).reconcile().await.unwrap();
    assert_eq!((report.offboarding_pending, report.offboarded), (2, 0));
    assert!(aws.world().calls.is_empty());

    // Once the promise has run out: keyrot's key, its tags and the secret go; the hand-made
    // key stays.
    {
        let mut world = aws.world();
        let tags = &mut world.users.get_mut("alice").unwrap().1;
        let past = format!(
            "{MANAGED_TAG_PREFIX}{PREFIX}alice version=v1 until={}",
            crate::time::unix_seconds(SystemTime::now() - Duration::from_secs(1))
        );
        tags.insert("AKIACURRENT".into(), past);
        for secret in world.secrets.values_mut() {
            secret.deleted = Some(SystemTime::now() - Duration::from_secs(3600));
        }
    }
    let report = fleet(&aws, &[]).reconcile().await.unwrap();
    assert_eq!(report.offboarded, 2);
    let world = aws.world();
    assert_eq!(world.users["alice"].0, ["AKIAHANDMADE"]);
    assert!(
        world.users["alice"].1.is_empty(),
        "{:?}",
        world.users["alice"].1
    );
    assert!(world.secrets.is_empty());
}

#[tokio::test(start_paused = true)]
async fn offboarding_after_a_shortening_deploy_keeps_a_key_for_the_interval_it_was_minted_under() {
    let aws = Aws::default();
    aws.add_user("alice", &[]);
    aws.ready_secret("alice", Some(SystemTime::now()));
    // Minted under an hourly interval; the stack now rotates every 10 minutes.
    let minted_hourly = format!("{MANAGED_TAG_PREFIX}{PREFIX}alice version=v1 interval=3600");
    {
        let mut world = aws.world();
        let entry = world.users.get_mut("alice").unwrap();
        entry.0.push("AKIAHOURLY".into());
        entry.1.insert("AKIAHOURLY".into(), minted_hourly);
        entry.1.insert(MANAGED_USER_TAG.into(), PREFIX.into());
    }
    let report = fleet(&aws, &[]).reconcile().await.unwrap();
    assert_eq!(report.offboarding_started, 2, "{report:?}");
    let mark = aws.world().users["alice"].1["AKIAHOURLY"].clone();
    assert!(mark.contains(" interval=3600 until="), "{mark}");
    let until: u64 = mark.rsplit_once(" until=").unwrap().1.parse().unwrap();
    // Three of its own intervals, not of the configured one.
    let expected =
        crate::time::unix_seconds(SystemTime::now() + Duration::from_secs(3 * 3600 + 120));
    assert!(until.abs_diff(expected) <= 1, "{mark}");
}

#[tokio::test(start_paused = true)]
async fn one_slot_is_not_cleaned_up_while_the_other_is_still_served() {
    let aws = Aws::default();
    aws.add_user("alice", &[]);
    aws.mark(
        "alice",
        "AKIAOLD",
        Some(SystemTime::now() - Duration::from_secs(1)),
    );
    aws.ready_secret("alice", Some(SystemTime::now()));
    aws.set_secret("keyrot/iam/alice", |secret| {
        secret.deleted = Some(SystemTime::now() - Duration::from_secs(3600))
    });
    // alice is still wanted: slot A is restored or cleaned, never while B serves.
    aws.world().registry = vec![];
    aws.set_secret("keyrot/iam/alice/b", |secret| secret.rotating = true);
    let report = fleet(&aws, &[]).reconcile().await.unwrap();
    assert_eq!(report.offboarded, 0, "{report:?}");
    assert_eq!(aws.world().users["alice"].0, ["AKIAOLD"]);
}

#[tokio::test(start_paused = true)]
async fn secrets_the_fleet_did_not_make_are_never_offboarded() {
    let aws = Aws::default();
    aws.add_user("carol", &[]);
    aws.ready_secret("carol", Some(SystemTime::now()));
    for name in ["keyrot/iam/carol", "keyrot/iam/carol/b"] {
        aws.set_secret(name, |secret| secret.fleet = false);
    }
    fleet(&aws, &[]).reconcile().await.unwrap();
    assert!(aws.world().calls.is_empty());
}

#[tokio::test(start_paused = true)]
async fn offboarding_waits_for_a_rotation_in_progress() {
    let aws = Aws::default();
    aws.add_user("alice", &[]);
    aws.ready_secret("alice", Some(SystemTime::now()));
    aws.set_secret("keyrot/iam/alice", |secret| secret.rotating = true);
    let report = fleet(&aws, &[]).reconcile().await.unwrap();
    // Slot A waits for its rotation; slot B stops being served.
    assert_eq!(
        (report.offboarding_started, report.offboarding_pending),
        (1, 2)
    );
    assert_eq!(aws.world().calls, ["DeleteSecret keyrot/iam/alice/b"]);
    assert!(aws.world().secrets["keyrot/iam/alice"].deleted.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_user_back_in_the_registry_before_cleanup_is_restored() {
    let aws = Aws::default();
    aws.add_user("alice", &[]);
    aws.mark(
        "alice",
        "AKIACURRENT",
        Some(SystemTime::now() + Duration::from_secs(300)),
    );
    aws.ready_secret("alice", Some(SystemTime::now()));
    aws.world()
        .secrets
        .get_mut("keyrot/iam/alice")
        .unwrap()
        .deleted = Some(SystemTime::now());
    aws.world().registry = vec!["alice".into()];
    let report = fleet(&aws, &[]).reconcile().await.unwrap();
    assert_eq!(report.restored, 1);
    assert!(aws.world().secrets["keyrot/iam/alice"].deleted.is_none());
    assert_eq!(aws.world().users["alice"].0, ["AKIACURRENT"]);
}

#[tokio::test(start_paused = true)]
async fn a_crash_between_any_two_calls_is_finished_by_the_next_run() {
    // The clean outcome, for comparison.
    let clean = Aws::default();
    clean.add_user("alice", &[]);
    clean.world().registry = vec!["alice".into()];
    fleet(&clean, &[]).reconcile().await.unwrap();
    let steps = clean.world().calls.len();
    for fail_at in 0..steps {
        let aws = Aws::default();
        aws.add_user("alice", &[]);
        aws.world().registry = vec!["alice".into()];
        aws.world().fail_at = Some(fail_at);
        let report = fleet(&aws, &[]).reconcile().await.unwrap();
        assert_eq!(report.errors, 1, "failure at call {fail_at}");
        fleet(&aws, &[]).reconcile().await.unwrap();
        let world = aws.world();
        let secret = &world.secrets["keyrot/iam/alice"];
        assert!(
            secret.rotation_enabled && secret.fleet,
            "failure at call {fail_at}"
        );
        assert!(world.policies.contains_key("keyrot/iam/alice"));
        assert_eq!(
            world.users["alice"]
                .1
                .get(MANAGED_USER_TAG)
                .map(String::as_str),
            Some(PREFIX)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn due_secrets_rotate_and_others_do_not() {
    let aws = Aws::default();
    for user in ["due", "fresh", "busy"] {
        aws.add_user(user, &[]);
    }
    aws.world().registry = vec!["due".into(), "fresh".into(), "busy".into()];
    let long_ago = SystemTime::now() - Duration::from_secs(3 * 600);
    aws.ready_secret("due", Some(long_ago));
    aws.ready_secret("fresh", Some(SystemTime::now() + Duration::from_secs(120)));
    aws.ready_secret("busy", Some(long_ago));
    aws.world()
        .secrets
        .get_mut("keyrot/iam/busy")
        .unwrap()
        .rotating = true;
    let report = fleet(&aws, &[]).reconcile().await.unwrap();
    // Both of due's slots are late: one rotation per user per run, the earlier tick first.
    let calls = aws.world().calls.clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0].starts_with("RotateSecret keyrot/iam/due"),
        "{calls:?}"
    );
    // busy's slot A is rotating: neither of its slots starts.
    assert_eq!((report.rotations_started, report.rotations_refused), (1, 1));
    // Not rotated for three intervals: every stale slot is named.
    assert_eq!(
        report.stale,
        [
            "keyrot/iam/busy",
            "keyrot/iam/busy/b",
            "keyrot/iam/due",
            "keyrot/iam/due/b"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn teardown_skips_seed_and_registry_users_the_fleet_never_enrolled() {
    // Security issue, item 10: an untagged or missing seed user used to give AccessDenied,
    // and the stack sat in DELETE_FAILED on every retry.
    let aws = Aws::default();
    aws.add_user("alice", &["AKIAHANDMADE"]);
    aws.mark("alice", "AKIACURRENT", None);
    aws.ready_secret("alice", Some(SystemTime::now()));
    aws.add_user("dave", &["AKIADAVESOWN"]);
    aws.world().registry = vec!["alice".into(), "erin".into()];
    let report = fleet(&aws, &["dave", "ghost"])
        .teardown(Instant::now() + Duration::from_secs(60))
        .await;
    assert!(report.complete, "{report:?}");
    assert_eq!(report.keys_deleted, 1);
    assert_eq!(aws.world().users["dave"].0, ["AKIADAVESOWN"]);
    assert_eq!(aws.world().users["alice"].0, ["AKIAHANDMADE"]);
}

#[tokio::test(start_paused = true)]
async fn teardown_removes_keyrots_keys_tags_secrets_and_registry_only() {
    let aws = Aws::default();
    aws.add_user("alice", &["AKIAHANDMADE"]);
    aws.mark("alice", "AKIACURRENT", None);
    aws.mark(
        "alice",
        "AKIAPREVIOUS",
        Some(SystemTime::now() + Duration::from_secs(500)),
    );
    aws.ready_secret("alice", Some(SystemTime::now()));
    aws.add_user("carol", &[]);
    aws.ready_secret("carol", Some(SystemTime::now()));
    for name in ["keyrot/iam/carol", "keyrot/iam/carol/b"] {
        aws.set_secret(name, |secret| secret.fleet = false);
    }
    aws.world().registry = vec!["alice".into()];
    let report = fleet(&aws, &[])
        .teardown(Instant::now() + Duration::from_secs(60))
        .await;
    assert!(report.complete, "{report:?}");
    assert_eq!(report.keys_deleted, 2);
    assert_eq!(
        report.secrets_deleted,
        ["keyrot/iam/alice", "keyrot/iam/alice/b"]
    );
    assert_eq!(
        report.secrets_left,
        ["keyrot/iam/carol", "keyrot/iam/carol/b"]
    );
    assert_eq!(report.registry_entries_deleted, ["alice"]);
    let world = aws.world();
    assert_eq!(world.users["alice"].0, ["AKIAHANDMADE"]);
    assert!(world.users["alice"].1.is_empty());
    assert!(world.secrets.contains_key("keyrot/iam/carol"));
    assert!(world.registry.is_empty());
}

#[tokio::test(start_paused = true)]
async fn onboarding_and_late_slots_take_turns_when_the_run_is_short() {
    let aws = Aws::default();
    let long_ago = SystemTime::now() - Duration::from_secs(3 * 600);
    let mut registry = Vec::new();
    for n in 0..10 {
        let (late, new) = (format!("late{n}"), format!("new{n}"));
        aws.add_user(&late, &[]);
        aws.add_user(&new, &[]);
        aws.ready_secret(&late, Some(long_ago));
        registry.extend([late, new]);
    }
    aws.world().registry = registry;
    let mut fleet = fleet(&aws, &[]);
    // Budgets that allow about 4 rotations in the run: 3 IAM writes each at 3 a second, 4 s.
    fleet.config.budgets.iam_writes_per_second = 3;
    fleet.config.run_time = Duration::from_secs(4);
    let report = fleet.reconcile().await.unwrap();
    assert!(report.onboarded >= 1, "{report:?}");
    assert!(report.rotations_started >= 1, "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stale_listing_starts_no_second_rotation_and_no_second_onboarding() {
    let aws = Aws::default();
    aws.add_user("alice", &[]);
    aws.world().registry = vec!["alice".into()];
    let long_ago = SystemTime::now() - Duration::from_secs(3 * 600);
    aws.ready_secret("alice", Some(long_ago));
    // ListSecrets still shows the secrets as they were: slot A due, slot B missing.
    let mut old = aws.world().secrets.clone();
    old.remove("keyrot/iam/alice/b");
    aws.world().stale_listing = Some(old);
    // DescribeSecret knows better: every slot has rotated since its tick (recorded at the
    // end of the run's 50 s, so that no tick the wall clock puts inside the run is due).
    let rotated = SystemTime::now() + Duration::from_secs(50);
    aws.set_secret("keyrot/iam/alice", |secret| {
        secret.last_rotated = Some(rotated)
    });
    aws.set_secret("keyrot/iam/alice/b", |secret| {
        secret.last_rotated = Some(rotated)
    });
    let report = fleet(&aws, &[]).reconcile().await.unwrap();
    assert!(aws.world().calls.is_empty(), "{:?}", aws.world().calls);
    assert_eq!((report.rotations_started, report.onboarded), (0, 0));
    assert!(aws.world().describes >= 2);
}

#[tokio::test(start_paused = true)]
async fn the_registry_and_the_secrets_are_listed_at_once() {
    let aws = Aws::default();
    aws.world().listing_latency = Duration::from_secs(10);
    let started = tokio::time::Instant::now();
    fleet(&aws, &[]).reconcile().await.unwrap();
    // 10 s each: together, not one after the other, so dispatch keeps 10 s more of its run.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn more_users_than_the_budgets_rotate_in_an_interval_are_counted() {
    let aws = Aws::default();
    let users: Vec<String> = (0..230).map(|n| format!("user{n}")).collect();
    for user in &users {
        aws.add_user(user, &[]);
    }
    aws.world().registry = users;
    let mut fleet = fleet(&aws, &[]);
    // 1 IAM write a second, 3 per rotation: 200 users in a 10-minute interval.
    fleet.config.budgets.iam_writes_per_second = 1;
    let report = fleet.reconcile().await.unwrap();
    assert_eq!(report.users_beyond_cadence, 30, "{report:?}");
    // At the test's own generous budgets, nobody is beyond.
    let report = self::fleet(&aws, &[]).reconcile().await.unwrap();
    assert_eq!(report.users_beyond_cadence, 0, "{report:?}");
}
