//! The slots' bookkeeping on moto, counted at the fault proxy: a tick that makes a key writes
//! three IAM calls (the retired key's deletion, the slot's mark, the new key) and removes
//! nothing, because the slot's mark, written before the key, overwrites the last one. A lost
//! CreateAccessKey response, a refused one and a failed PutSecretValue are recovered by the
//! next attempt, and a forged mark under a slot's tag key gets no hand-made key deleted.

use keyrot::iam_key::IamKeySecret;
use keyrot::key_slots::Slot;
use keyrot::rotation::RotationRequest;
use keyrot_integration_tests::fault_proxy::Fault;
use keyrot_integration_tests::fleet_world::FleetWorld;
use keyrot_integration_tests::world::{start_rotation, STEPS};
use std::time::{Duration, SystemTime};

const IAM_WRITES: [&str; 4] = ["TagUser", "UntagUser", "CreateAccessKey", "DeleteAccessKey"];

/// One user onboarded with both slots; then the moment the slot holding the older key is due
/// to retire it: that slot, and its key.
async fn at_a_tick(name: &str) -> (FleetWorld, String, Slot, String) {
    let interval = Duration::from_secs(4);
    let world = FleetWorld::new(name, interval, Duration::from_secs(1)).await;
    let user = world.create_users(1).await.remove(0);
    world.enrol(&user).await;
    for _ in 0..3 {
        world.reconcile().await;
    }
    let value = |slot| world.slot_value(&user, slot);
    let (a, b): (IamKeySecret, IamKeySecret) = (
        value(Slot::A).await.expect("a"),
        value(Slot::B).await.expect("b"),
    );
    let (slot, older) = if a.created() <= b.created() {
        (Slot::A, a)
    } else {
        (Slot::B, b)
    };
    let retires = older.expires().expect("ExpiresAt recorded");
    let wait = retires
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        + Duration::from_millis(1500);
    tokio::time::sleep(wait).await;
    let key = older.access_key_id.expect("a key");
    (world, user, slot, key)
}

fn iam_writes(world: &FleetWorld) -> Vec<String> {
    world
        .proxy
        .calls()
        .into_iter()
        .filter(|call| IAM_WRITES.contains(&call.as_str()))
        .collect()
}

async fn run(world: &FleetWorld, secret: &str, token: &str) -> Result<(), String> {
    for step in STEPS {
        let request = RotationRequest {
            step,
            secret_id: secret.to_owned(),
            token: token.to_owned(),
        };
        world
            .run_step(request)
            .await
            .map_err(|error| format!("{}: {error}", step.as_str()))?;
    }
    Ok(())
}

/// After the reattempt: the slot holds a new key, the attempt's orphan key is gone, and the
/// user's two keys are both keyrot's, marked.
async fn assert_recovered(world: &FleetWorld, user: &str, slot: Slot, orphan: &str) {
    let keys = world.key_ids(user).await;
    let new_key = world
        .slot_value(user, slot)
        .await
        .and_then(|value| value.access_key_id)
        .expect("a key");
    assert!(keys.contains(&new_key) && keys.len() == 2, "{keys:?}");
    assert!(
        !keys.iter().any(|id| id == orphan),
        "{orphan} is gone: {keys:?}"
    );
    assert_eq!(world.keyrot_keys(user).await.len(), 2, "both keys marked");
}

/// keyrot's tags on the user, by key, without the enrolment tag.
async fn bookkeeping(world: &FleetWorld, user: &str) -> Vec<String> {
    let mut keys: Vec<String> = world
        .tags(user)
        .await
        .into_keys()
        .filter(|key| key != "keyrot:managed")
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_tick_that_makes_a_key_writes_three_iam_calls_and_removes_nothing() {
    let (world, user, slot, old_key) = at_a_tick("book-count").await;
    let secret = keyrot::key_slots::secret_name(&world.prefix, &user, slot);
    world.proxy.forget_calls();
    let token = start_rotation(&world.secrets, &secret, true).await;
    run(&world, &secret, &token).await.expect("the tick");
    let mut writes = iam_writes(&world);
    writes.sort();
    assert_eq!(
        writes,
        ["CreateAccessKey", "DeleteAccessKey", "TagUser"],
        "{:?}",
        world.proxy.calls()
    );
    // Secrets Manager reads of the four steps: finishSecret does not read the promoted value
    // again (it read it as AWSPENDING a moment before the label move).
    let reads = |operation| world.proxy.count(operation);
    eprintln!(
        "GetSecretValue {}, DescribeSecret {}, ListSecretVersionIds {}",
        reads("GetSecretValue"),
        reads("DescribeSecret"),
        reads("ListSecretVersionIds")
    );
    assert!(reads("GetSecretValue") <= 9, "{:?}", world.proxy.calls());
    let keys = world.key_ids(&user).await;
    assert!(!keys.contains(&old_key) && keys.len() == 2, "{keys:?}");
    // One mark per slot, whatever the number of ticks: nothing accumulates.
    assert_eq!(
        bookkeeping(&world, &user).await,
        ["keyrot:slot:a", "keyrot:slot:b"]
    );
    assert_eq!(world.keyrot_keys(&user).await.len(), 2, "both keys marked");
}

/// IAM makes the key but its answer is lost: the next attempt (Secrets Manager's, same token)
/// finds the key the slot's mark names (it appeared in the attempt's window), which the
/// attempt never stored, deletes it and makes another.
#[tokio::test]
async fn a_lost_create_response_on_a_tick_is_recovered_by_the_next_attempt() {
    let (world, user, slot, _) = at_a_tick("book-lost").await;
    let secret = keyrot::key_slots::secret_name(&world.prefix, &user, slot);
    let token = start_rotation(&world.secrets, &secret, true).await;
    world
        .proxy
        .inject("CreateAccessKey", Fault::DropResponse, 1);
    let before = world.key_ids(&user).await;
    let error = run(&world, &secret, &token).await.unwrap_err();
    assert!(error.contains("CreateAccessKey"), "{error}");
    let after_loss = world.key_ids(&user).await;
    let lost: Vec<&String> = after_loss
        .iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(
        lost.len(),
        1,
        "IAM did make the key: {before:?} then {after_loss:?}"
    );

    run(&world, &secret, &token).await.expect("the reattempt");
    assert_recovered(&world, &user, slot, lost[0]).await;
}

/// The key is made and marked, but PutSecretValue fails: the next attempt deletes the key
/// its version never stored and makes another. CreateAccessKey refused after the mark was
/// written leaves a mark that names nothing, which the next attempt overwrites.
#[tokio::test]
async fn a_failed_store_or_a_refused_create_is_recovered_by_the_next_attempt() {
    let (world, user, slot, _) = at_a_tick("book-crash").await;
    let secret = keyrot::key_slots::secret_name(&world.prefix, &user, slot);
    let token = start_rotation(&world.secrets, &secret, true).await;
    world.proxy.inject(
        "CreateAccessKey",
        Fault::Reject {
            status: 403,
            code: "AccessDenied",
        },
        1,
    );
    let before = world.key_ids(&user).await;
    let error = run(&world, &secret, &token).await.unwrap_err();
    assert!(error.contains("CreateAccessKey"), "{error}");
    assert_eq!(
        world.key_ids(&user).await.len(),
        before.len() - 1,
        "retired, none made"
    );

    world.proxy.inject(
        "PutSecretValue",
        Fault::Reject {
            status: 500,
            code: "InternalServiceError",
        },
        // Every attempt of the SDK's retries.
        10,
    );
    let before = world.key_ids(&user).await;
    let error = run(&world, &secret, &token).await.unwrap_err();
    assert!(error.contains("PutSecretValue"), "{error}");
    world.proxy.clear_faults();
    let after_failure = world.key_ids(&user).await;
    let unstored: Vec<&String> = after_failure
        .iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(unstored.len(), 1, "{before:?} then {after_failure:?}");

    run(&world, &secret, &token).await.expect("the reattempt");
    assert_recovered(&world, &user, slot, unstored[0]).await;
}

/// Someone with iam:TagUser writes a slot mark naming a hand-made key and a version the slot
/// never had, with an attempt whose window covers the key: the key is not keyrot's (the
/// version proves nothing), so the tick refuses (no free slot) instead of deleting it.
#[tokio::test]
async fn a_forged_slot_mark_gets_no_hand_made_key_deleted() {
    let (world, user, slot, old_key) = at_a_tick("book-forged").await;
    let secret = keyrot::key_slots::secret_name(&world.prefix, &user, slot);
    // Free a place for the hand-made key: the operator deletes the slot's due key by hand.
    world.delete_key(&user, &old_key).await;
    let hand_made = world.add_hand_made_key(&user).await;
    // The attempt's window covers the hand-made key, just made.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let forged = format!(
        "keyrot managed secret={secret} version=00000000-0000-0000-0000-000000000000 \
         interval=4 at={now} keys="
    );
    world
        .tag(&user, &format!("keyrot:slot:{}", slot.label()), &forged)
        .await;
    let token = start_rotation(&world.secrets, &secret, true).await;
    let error = run(&world, &secret, &token).await.unwrap_err();
    assert!(
        error.contains("NoFreeKeySlot") || error.contains(&hand_made),
        "{error}"
    );
    assert!(world.key_ids(&user).await.contains(&hand_made));
}
