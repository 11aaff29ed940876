//! The key slots on moto, from IAM's side: each user gets a new key every interval from its
//! two slot secrets taking turns, never more than IAM's two keys, and no key is deleted
//! before the `ExpiresAt` recorded with it, whatever starts a rotation. An existing user with
//! one secret upgrades in place without losing a promised key.

use keyrot::key_slots::Slot;
use keyrot_integration_tests::fleet_world::FleetWorld;
use keyrot_integration_tests::world::start_rotation;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

/// What the test has seen of the user's keys: each key's latest promise.
#[derive(Default)]
struct Observed {
    promised_until: BTreeMap<String, SystemTime>,
    most_keys: usize,
}

impl Observed {
    /// Records both slots' keys and their `ExpiresAt`, then checks that every key still
    /// promised exists (read after the clock, so a key deleted at its tick is not flagged).
    async fn check(&mut self, world: &FleetWorld, user: &str) {
        for slot in Slot::BOTH {
            let Some(value) = world.slot_value(user, slot).await else {
                continue;
            };
            if let (Some(id), Some(until)) = (value.access_key_id.clone(), value.expires()) {
                let entry = self.promised_until.entry(id).or_insert(until);
                *entry = (*entry).max(until);
            }
        }
        self.promise(world, user, SystemTime::UNIX_EPOCH, None)
            .await;
    }

    /// Also promises `key` until `until` (a client's fetch under the one-secret rule).
    async fn promise(
        &mut self,
        world: &FleetWorld,
        user: &str,
        until: SystemTime,
        key: Option<&str>,
    ) {
        if let Some(key) = key {
            let entry = self.promised_until.entry(key.to_owned()).or_insert(until);
            *entry = (*entry).max(until);
        }
        let now = SystemTime::now();
        let keys = world.key_ids(user).await;
        self.most_keys = self.most_keys.max(keys.len());
        for (key, until) in &self.promised_until {
            if now < *until {
                assert!(
                    keys.contains(key),
                    "{key} deleted before {}",
                    keyrot::time::rfc3339(*until)
                );
            }
        }
    }
}

#[tokio::test]
async fn each_interval_mints_a_key_and_no_key_goes_before_its_expiration() {
    let interval = Duration::from_secs(5);
    let world = FleetWorld::new("slots", interval, Duration::from_secs(1)).await;
    let user = world.create_users(1).await.remove(0);
    world.enrol(&user).await;
    // Slot A, then slot B a run later.
    for _ in 0..3 {
        world.reconcile().await;
    }
    let mut observed = Observed::default();
    observed.check(&world, &user).await;
    let first_keys: BTreeSet<String> = observed.promised_until.keys().cloned().collect();
    assert_eq!(first_keys.len(), 2, "one key per slot after onboarding");

    // Ticks only: the cadence, the versions they write and the calls they make.
    let versions_before = world.version_counts().await;
    let calls_before = world.proxy.calls().len();
    let started = std::time::Instant::now();
    while started.elapsed() < 6 * interval {
        world.reconcile().await;
        observed.check(&world, &user).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let intervals = elapsed / interval.as_secs_f64();
    let new_keys = observed.promised_until.len() - first_keys.len();
    let versions_after = world.version_counts().await;
    // Scaled to the default 10 minutes: this run's time × 600 / interval.
    let scaled_day = 86_400.0 * interval.as_secs_f64() / 600.0;
    for (secret, after) in &versions_after {
        let written = after - versions_before[secret];
        let per_day = written as f64 * scaled_day / elapsed;
        eprintln!(
            "{secret}: {written} versions in {elapsed:.1} s, {per_day:.0} per 24 h at 10 minutes"
        );
        assert!(per_day <= 80.0, "{secret}: {per_day:.0} versions a day");
    }
    eprintln!("{new_keys} new keys in {intervals:.2} intervals");
    // Calls per rotation (fleet and rotation function, at the proxy), for the cost estimate.
    let rotations: usize = versions_after
        .iter()
        .map(|(secret, after)| after - versions_before[secret])
        .sum();
    let mut per_call: BTreeMap<String, usize> = BTreeMap::new();
    // The registry and secret listings are per run (once a minute deployed), not per rotation.
    for call in &world.proxy.calls()[calls_before..] {
        if call != "ListSecrets" && call != "GetParametersByPath" {
            *per_call.entry(call.clone()).or_default() += 1;
        }
    }
    let per_rotation: Vec<String> = per_call
        .iter()
        .map(|(call, n)| format!("{call} {:.2}", *n as f64 / rotations.max(1) as f64))
        .collect();
    eprintln!(
        "calls per rotation over {rotations} rotations: {}",
        per_rotation.join(", ")
    );
    // A tick whose other slot rotated under a second ago (this harness completes rotations
    // after each run, slowly on a loaded machine) carries its key on; the cadence itself is
    // measured by scripts/bench-slots.
    assert!(
        new_keys as f64 >= intervals.floor() - 2.0,
        "a new key every interval: {new_keys} in {intervals:.2}"
    );

    // Early rotations of either slot, at arbitrary moments between the ticks: carried
    // forward while their key is promised, never deleting it.
    let started = std::time::Instant::now();
    let mut run = 0usize;
    while started.elapsed() < 4 * interval {
        run += 1;
        let slot = if run.is_multiple_of(2) {
            Slot::A
        } else {
            Slot::B
        };
        let name = keyrot::key_slots::secret_name(&world.prefix, &user, slot);
        start_rotation(&world.secrets, &name, true).await;
        world.complete_rotations().await;
        observed.check(&world, &user).await;
        world.reconcile().await;
        observed.check(&world, &user).await;
    }
    assert!(observed.most_keys <= 2, "IAM's limit");
}

#[tokio::test]
async fn a_user_with_one_secret_upgrades_in_place_keeping_every_promise() {
    let interval = Duration::from_secs(3);
    let world = FleetWorld::new("upgrade", interval, Duration::from_secs(1)).await;
    let user = world.create_users(1).await.remove(0);
    let slot_a = world.secret_of(&user);
    // The deployment before the slots: one secret per user, made by the per-user template,
    // rotated twice (a current and a superseded key, promised under the one-secret rule).
    world
        .iam
        .tag_user()
        .user_name(&user)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key(keyrot::fleet::MANAGED_USER_TAG)
                .value(&world.prefix)
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("enrolled as before");
    world
        .secrets
        .create_secret()
        .name(&slot_a)
        .secret_string(serde_json::json!({ "UserName": user }).to_string())
        .send()
        .await
        .expect("the one secret");
    let mut observed = Observed::default();
    for _ in 0..2 {
        start_rotation(&world.secrets, &slot_a, true).await;
        world.complete_rotations().await;
        // A client fetches the current key: promised one interval from now.
        let current = world.current(&user).await.expect("a key");
        assert!(current.expires_at.is_none(), "a one-secret value");
        let id = current.access_key_id.expect("a key id");
        observed
            .promise(&world, &user, SystemTime::now() + interval, Some(&id))
            .await;
    }
    assert_eq!(world.key_ids(&user).await.len(), 2);

    // The upgrade: the registry names the user; the fleet adopts the secret and adds slot B
    // once slot A's superseded key is no longer promised.
    world.enrol(&user).await;
    let started = std::time::Instant::now();
    while started.elapsed() < 8 * interval {
        let report = world.reconcile().await;
        assert_eq!(report.errors, 0, "{report:?}");
        observed.check(&world, &user).await;
    }
    let a = world.slot_value(&user, Slot::A).await.expect("slot A");
    let b = world.slot_value(&user, Slot::B).await.expect("slot B");
    assert!(
        a.expires_at.is_some() && b.expires_at.is_some(),
        "{a:?} {b:?}"
    );
    assert!(observed.most_keys <= 2, "IAM's limit");
    // New keys were minted after the upgrade: more than the two it started with.
    assert!(
        observed.promised_until.len() >= 4,
        "{:?}",
        observed.promised_until
    );
}

/// One user onboarded with both slots (three runs), and each slot's value.
async fn onboarded_with_both_slots(
    name: &str,
    interval: Duration,
) -> (
    FleetWorld,
    String,
    keyrot::iam_key::IamKeySecret,
    keyrot::iam_key::IamKeySecret,
) {
    let world = FleetWorld::new(name, interval, Duration::from_secs(1)).await;
    let user = world.create_users(1).await.remove(0);
    world.enrol(&user).await;
    for _ in 0..3 {
        world.reconcile().await;
    }
    let a = world.slot_value(&user, Slot::A).await.expect("a");
    let b = world.slot_value(&user, Slot::B).await.expect("b");
    (world, user, a, b)
}

/// A tick is not held up by the other slot carrying its own key forward at the same moment
/// (an operator's or a native window's early rotation): that rotation changes neither the
/// key the other slot serves nor when it took over. Before, the tick saw "rotating" and
/// carried its key forward too, a lost interval (the consumer soak saw 3 keys in 6).
#[tokio::test]
async fn a_tick_retires_its_key_while_the_other_slot_carries_its_own_forward() {
    use keyrot::rotation::{RotationRequest, Step};
    let interval = Duration::from_secs(5);
    let (world, user, a, b) = onboarded_with_both_slots("slots-concurrent", interval).await;
    let value = |slot| world.slot_value(&user, slot);
    // The slot holding the older key ticks (at its retirement tick); the other holds the
    // newer key, which it carries forward meanwhile.
    let (ticking, other, old_key, retires) = if a.created() <= b.created() {
        (Slot::A, Slot::B, a.access_key_id.clone(), a.expires())
    } else {
        (Slot::B, Slot::A, b.access_key_id.clone(), b.expires())
    };
    let retires = retires.expect("ExpiresAt recorded");
    let wait = retires
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        + Duration::from_millis(1500);
    tokio::time::sleep(wait).await;

    let name = |slot| keyrot::key_slots::secret_name(&world.prefix, &user, slot);
    let step = |secret: String, token: &str| RotationRequest {
        step: Step::Create,
        secret_id: secret,
        token: token.to_owned(),
    };
    // The other slot's early rotation stores its pending version (its own key, carried).
    let other_token = start_rotation(&world.secrets, &name(other), true).await;
    world
        .run_step(step(name(other), &other_token))
        .await
        .expect("the other slot's createSecret");
    // The tick, meanwhile.
    let tick_token = start_rotation(&world.secrets, &name(ticking), true).await;
    world
        .run_step(step(name(ticking), &tick_token))
        .await
        .expect("the tick's createSecret");
    world.complete_rotations().await;
    let after = value(ticking).await.expect("ticked");
    assert_ne!(after.access_key_id, old_key, "the tick minted a new key");
    assert!(!world
        .key_ids(&user)
        .await
        .contains(old_key.as_ref().expect("old key")));
    assert_eq!(world.key_ids(&user).await.len(), 2);
}

/// A tick right after the other slot's late tick minted its key (less than the slack ago)
/// waits out the rest of the slack and retires its key, instead of carrying it two more
/// intervals (the consumer soak lost up to half its keys to this).
#[tokio::test]
async fn a_tick_right_after_the_other_slots_late_tick_waits_out_the_slack_and_retires() {
    use keyrot::rotation::{RotationRequest, Step};
    let interval = Duration::from_secs(5);
    let (world, user, a, b) = onboarded_with_both_slots("slots-late", interval).await;
    let value = |slot| world.slot_value(&user, slot);
    // `late` holds the older key and ticks first; `next` ticks right after it.
    let (late, next) = if a.created() <= b.created() {
        (Slot::A, Slot::B)
    } else {
        (Slot::B, Slot::A)
    };
    let both_due = [a.expires(), b.expires()]
        .into_iter()
        .map(|at| at.expect("ExpiresAt recorded"))
        .max()
        .expect("two");
    tokio::time::sleep(
        both_due
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            + Duration::from_millis(500),
    )
    .await;
    let name = |slot| keyrot::key_slots::secret_name(&world.prefix, &user, slot);
    // The late tick: retires the older key and mints.
    start_rotation(&world.secrets, &name(late), true).await;
    world.complete_rotations().await;
    let next_key = value(next).await.expect("next").access_key_id;
    // The next slot's tick at once, its key now the older one.
    let token = start_rotation(&world.secrets, &name(next), true).await;
    let started = std::time::Instant::now();
    world
        .run_step(RotationRequest {
            step: Step::Create,
            secret_id: name(next),
            token,
        })
        .await
        .expect("createSecret");
    assert!(
        started.elapsed() <= Duration::from_secs(3),
        "waited at most the slack"
    );
    world.complete_rotations().await;
    let after = value(next).await.expect("ticked");
    assert_ne!(after.access_key_id, next_key, "the tick minted a new key");
    assert_eq!(world.key_ids(&user).await.len(), 2);
}

/// Ticks alone for `windows` compressed days on a moto server of the test's own, with the
/// version rules at a fifth of AWS's scale: `limit` versions kept (AWS: about 100) for 28.8
/// intervals (AWS: 24 h = 144 intervals of the default 10 minutes), in both moto and
/// rotation-fn's own count. Not a tenth: a slot secret's count also holds a version or two
/// that do not scale (the rotation's own pending one, a window's rounding), and at a tenth
/// those left one version of headroom, which a late tick on a loaded machine used up. Returns the refused steps' error codes, the new keys and the
/// intervals run, checking meanwhile that no promised key goes and IAM's limit holds.
async fn compressed_days(limit: usize, windows: f64) -> (Vec<String>, usize, f64) {
    use keyrot::rotation::RotationRequest;
    let interval = Duration::from_secs(2);
    let retention = interval.mul_f64(28.8);
    let moto = keyrot_integration_tests::moto::OwnMoto::start(&[
        ("KEYROT_MOTO_MAX_VERSIONS", limit.to_string()),
        (
            "KEYROT_MOTO_VERSION_RETENTION_SECONDS",
            retention.as_secs_f64().to_string(),
        ),
    ]);
    let world = FleetWorld::on(&moto.url, "day", interval, Duration::from_secs(1))
        .await
        .with_version_rules(retention, limit);
    let user = world.create_users(1).await.remove(0);
    world.enrol(&user).await;
    let mut observed = Observed::default();
    let mut refused = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < retention.mul_f64(windows) {
        world.reconcile_only().await;
        // The four steps of each rotation started, as Secrets Manager runs them (and reruns
        // a refused one: its reattempts).
        for (name, versions) in world.versions_by_secret().await {
            let Some((token, _)) = versions.iter().find(|(_, stages)| {
                stages.iter().any(|s| s == "AWSPENDING")
                    && !stages.iter().any(|s| s == "AWSCURRENT")
            }) else {
                continue;
            };
            for step in keyrot_integration_tests::world::STEPS {
                let request = RotationRequest {
                    step,
                    secret_id: name.clone(),
                    token: token.clone(),
                };
                if let Err(error) = world.run_step(request).await {
                    refused.push(error.code().to_owned());
                    break;
                }
            }
        }
        observed.check(&world, &user).await;
    }
    assert!(observed.most_keys <= 2, "IAM's limit");
    let new_keys = observed.promised_until.len().saturating_sub(2);
    (
        refused,
        new_keys,
        started.elapsed().as_secs_f64() / interval.as_secs_f64(),
    )
}

/// The slots' 72 versions per secret per 24 h stay under the quota: over more than a
/// compressed day (versions ageing out included) no tick is refused, and a new key still
/// comes nearly every interval.
#[tokio::test]
async fn ticks_never_reach_the_version_limit_over_compressed_days() {
    let (refused, new_keys, intervals) = compressed_days(20, 1.3).await;
    eprintln!("{new_keys} new keys in {intervals:.1} intervals, refused: {refused:?}");
    assert!(refused.is_empty(), "{refused:?}");
    assert!(
        new_keys as f64 >= intervals.floor() - 4.0,
        "{new_keys} in {intervals:.1}"
    );
}

/// The same run with a limit below what the ticks need (12 of 20): the limit is reached, and
/// the refusals are VersionLimitReached before any key is made, deleting no promised key
/// (checked throughout); so the test above can fail.
#[tokio::test]
async fn a_limit_below_the_ticks_needs_refuses_rotations_and_loses_no_key() {
    let (refused, _, _) = compressed_days(12, 1.0).await;
    assert!(!refused.is_empty(), "the limit was never reached");
    assert!(
        refused.iter().all(|code| code == "VersionLimitReached"),
        "{refused:?}"
    );
}
