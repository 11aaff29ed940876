//! Fault injection through a real proxy socket in front of moto: lost responses, failures
//! after the server acted, throttling bursts, STS propagation lag, and operator-owned keys.
//! After each scenario the invariants are asserted, not just the absence of an error.

use keyrot::rotation::{RotationError, Stage, Step};
use keyrot_integration_tests::fault_proxy::Fault;
use keyrot_integration_tests::world::World;

/// Keys that exist and are marked as created for rotation `token`.
async fn keys_created_for(world: &World, token: &str) -> usize {
    let ids = world.key_ids().await;
    world
        .tags()
        .await
        .iter()
        .filter(|(key, value)| {
            ids.contains(*key) && keyrot_integration_tests::world::marks_version(value, token)
        })
        .count()
}

async fn assert_rotation_completed(world: &World, token: &str) {
    assert_eq!(
        world.version_with(Stage::Current).await.as_deref(),
        Some(token)
    );
    assert_eq!(
        keys_created_for(world, token).await,
        1,
        "exactly one key for rotation {token}"
    );
    world.assert_previous_still_works().await;
    world.assert_invariants(None).await;
}

#[tokio::test]
async fn create_access_key_response_lost_after_iam_created_the_key() {
    let world = World::new("lost-create").await;
    world.rotate().await;
    let token = world.start_rotation().await;
    let creates_before = world.proxy.count("CreateAccessKey");
    world
        .proxy
        .inject("CreateAccessKey", Fault::DropResponse, 1);
    let error = world.step(Step::Create, &token).await.unwrap_err();
    assert!(
        matches!(error, RotationError::Aws(ref e) if e.operation == "CreateAccessKey"),
        "{error}"
    );
    assert_eq!(
        world.keys().await.len(),
        2,
        "IAM did create the key whose response was lost"
    );
    assert!(world.value_of_version(&token).await.is_none());

    // Secrets Manager retries the rotation with the same token.
    world.run_steps(&token).await.expect("retried rotation");
    assert_eq!(world.proxy.count("CreateAccessKey") - creates_before, 2);
    assert_rotation_completed(&world, &token).await;
}

#[tokio::test]
async fn put_secret_value_failing_after_the_key_was_created() {
    let world = World::new("put-fails").await;
    world.rotate().await;
    world.rotate().await;
    let token = world.start_rotation().await;
    world.proxy.inject(
        "PutSecretValue",
        Fault::Reject {
            status: 400,
            code: "InternalServiceError",
        },
        1,
    );
    let error = world.step(Step::Create, &token).await.unwrap_err();
    assert!(
        matches!(error, RotationError::Aws(ref e) if e.operation == "PutSecretValue"),
        "{error}"
    );
    world.assert_invariants(Some(&token)).await;

    world.run_steps(&token).await.expect("retried rotation");
    assert_rotation_completed(&world, &token).await;
}

#[tokio::test]
async fn put_secret_value_response_lost_after_it_was_stored() {
    for fault in [Fault::DropResponse, Fault::FailAfterForward] {
        let world = World::new("put-lost").await;
        world.rotate().await;
        let token = world.start_rotation().await;
        let creates_before = world.proxy.count("CreateAccessKey");
        world.proxy.inject("PutSecretValue", fault.clone(), 1);
        // The SDK retries PutSecretValue with the same token: same data, so a no-op success.
        let outcome = world.step(Step::Create, &token).await;
        if outcome.is_err() {
            world.run_steps(&token).await.expect("retried rotation");
        } else {
            for step in [Step::Set, Step::Test, Step::Finish] {
                world.step(step, &token).await.expect("step");
            }
        }
        assert_eq!(
            world.proxy.count("CreateAccessKey") - creates_before,
            1,
            "{fault:?}: one key only"
        );
        assert_rotation_completed(&world, &token).await;
    }
}

/// Every AWS call of a rotation fails in turn (once before the server acts, once after it
/// acted with the response lost); then Secrets Manager re-runs the rotation with the same
/// token, which must complete with exactly one new key and all invariants intact.
#[tokio::test]
async fn rerun_with_the_same_token_after_failing_at_each_call_in_turn() {
    let calls_of_one_rotation = {
        let world = World::new("count").await;
        world.rotate().await;
        world.rotate().await;
        let token = world.start_rotation().await;
        let before = world.proxy.calls().len();
        world.run_steps(&token).await.expect("clean rotation");
        world.proxy.calls()[before..].to_vec()
    };
    assert!(
        calls_of_one_rotation.len() >= 20,
        "{calls_of_one_rotation:?}"
    );

    for (index, operation) in calls_of_one_rotation.iter().enumerate() {
        for fault in [
            Fault::Reject {
                status: 400,
                code: "InternalServiceError",
            },
            Fault::DropResponse,
        ] {
            let world = World::new("each-call").await;
            world.rotate().await;
            world.rotate().await;
            let token = world.start_rotation().await;
            world.proxy.inject_at_call(index + 1, fault.clone());
            let first_attempt = world.run_steps(&token).await;
            let applied = world.proxy.faults_applied();
            assert_eq!(
                applied.len(),
                1,
                "call {index} ({operation}): fault applied once: {applied:?}"
            );
            assert!(
                world.keys().await.len() <= 2,
                "call {index} ({operation}) {fault:?}"
            );
            world
                .run_steps(&token)
                .await
                .unwrap_or_else(|e| panic!("re-run after {fault:?} at call {index} ({operation}), first attempt {first_attempt:?}: {e}"));
            assert_rotation_completed(&world, &token).await;
        }
    }
}

#[tokio::test]
async fn throttling_bursts_within_the_retry_budget_are_absorbed() {
    let world = World::new("throttle").await;
    world.rotate().await;
    let token = world.start_rotation().await;
    world
        .proxy
        .inject("DescribeSecret", Fault::throttling_json(), 3);
    world
        .proxy
        .inject("GetSecretValue", Fault::throttling_json(), 2);
    world
        .proxy
        .inject("PutSecretValue", Fault::throttling_json(), 2);
    world
        .proxy
        .inject("ListAccessKeys", Fault::throttling_query(), 3);
    world.proxy.inject("TagUser", Fault::throttling_query(), 2);
    world
        .proxy
        .inject("UpdateSecretVersionStage", Fault::throttling_json(), 2);
    world
        .run_steps(&token)
        .await
        .expect("throttling absorbed by SDK retries");
    assert!(world.proxy.faults_applied().len() >= 14);
    assert_rotation_completed(&world, &token).await;
}

#[tokio::test]
async fn throttling_bursts_beyond_the_retry_budget_fail_cleanly_and_recover() {
    let world = World::new("throttle-long").await;
    world.rotate().await;
    let token = world.start_rotation().await;
    world
        .proxy
        .inject("ListAccessKeys", Fault::throttling_query(), 100);
    let error = world.step(Step::Create, &token).await.unwrap_err();
    assert!(
        matches!(error, RotationError::Aws(ref e) if e.has_code("Throttling")),
        "{error}"
    );
    world.assert_invariants(Some(&token)).await;

    // CreateAccessKey is never retried by the SDK (a lost response must not become a
    // second key), so one throttled call fails the step; the rotation retry recovers.
    world.proxy.clear_faults();
    world
        .proxy
        .inject("CreateAccessKey", Fault::throttling_query(), 1);
    assert!(world.step(Step::Create, &token).await.is_err());
    world.assert_invariants(Some(&token)).await;

    world.proxy.clear_faults();
    world
        .run_steps(&token)
        .await
        .expect("rotation after the burst");
    assert_rotation_completed(&world, &token).await;
}

#[tokio::test]
async fn sts_rejecting_the_new_key_until_it_propagates() {
    let world = World::new("propagation").await;
    world.rotate().await;
    let token = world.start_rotation().await;
    world.step(Step::Create, &token).await.expect("create");
    world.step(Step::Set, &token).await.expect("set");
    let checks_before = world.proxy.count("GetCallerIdentity");
    world
        .proxy
        .inject("GetCallerIdentity", Fault::invalid_client_token(), 3);
    world
        .step(Step::Test, &token)
        .await
        .expect("accepted from the fourth attempt on");
    // Three refusals, then the three answers in a row that count as working.
    assert_eq!(world.proxy.count("GetCallerIdentity") - checks_before, 6);
    world.step(Step::Finish, &token).await.expect("finish");
    assert_rotation_completed(&world, &token).await;
}

#[tokio::test]
async fn sts_never_accepting_the_new_key_leaves_awscurrent_untouched() {
    let world = World::new("never-accepted").await;
    world.rotate().await;
    let current_before = world.value(Stage::Current).await;
    let token = world.start_rotation().await;
    world.step(Step::Create, &token).await.expect("create");
    world.step(Step::Set, &token).await.expect("set");
    let checks_before = world.proxy.count("GetCallerIdentity");
    world
        .proxy
        .inject("GetCallerIdentity", Fault::invalid_client_token(), 1_000);
    let error = world.step(Step::Test, &token).await.unwrap_err();
    let RotationError::KeyNotVerified {
        attempts,
        ref last_answer,
        ..
    } = error
    else {
        panic!("expected KeyNotVerified, got {error}");
    };
    assert_eq!(last_answer, "InvalidClientTokenId");
    // Backoff 20, 40, 80, 100, 100 ms fits the 400 ms budget: six attempts.
    assert_eq!(attempts, 6);
    assert_eq!(world.proxy.count("GetCallerIdentity") - checks_before, 6);
    assert_eq!(
        world.value(Stage::Current).await,
        current_before,
        "AWSCURRENT untouched"
    );
    world.assert_invariants(Some(&token)).await;
}

#[tokio::test]
async fn one_operator_key_is_never_touched_and_blocks_only_when_no_slot_is_left() {
    let mut world = World::new("one-foreign").await;
    let foreign = world.add_foreign_key().await;
    world.rotate().await;
    world.assert_invariants(None).await;

    let token = world.start_rotation().await;
    let error = world.step(Step::Create, &token).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, RotationError::NoFreeKeySlot { .. }),
        "{message}"
    );
    assert!(
        message.contains(&world.user) && message.contains(&foreign),
        "{message}"
    );
    assert!(
        message.contains("delete-access-key"),
        "tells the operator what to do: {message}"
    );
    world.assert_invariants(Some(&token)).await;

    // The operator frees the slot; the same rotation then completes.
    world
        .iam
        .delete_access_key()
        .user_name(&world.user)
        .access_key_id(&foreign)
        .send()
        .await
        .expect("operator deletes own key");
    let mut world = world;
    world.forget_foreign_keys();
    world
        .run_steps(&token)
        .await
        .expect("rotation after the operator freed a slot");
    assert_rotation_completed(&world, &token).await;
}

#[tokio::test]
async fn two_operator_keys_fail_the_first_rotation_naming_both() {
    let mut world = World::new("two-foreign").await;
    let first = world.add_foreign_key().await;
    let second = world.add_foreign_key().await;
    let token = world.start_rotation().await;
    let error = world.step(Step::Create, &token).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&first) && message.contains(&second),
        "{message}"
    );
    world.assert_invariants(Some(&token)).await;
    assert_eq!(world.keys().await.len(), 2);
}

/// IAM eventual consistency inside a step: setSecret's ListAccessKeys, just after the
/// CreateAccessKey of createSecret, may not show the new key yet. That is re-read, not taken
/// for a confused deputy.
#[tokio::test]
async fn a_key_list_that_has_not_caught_up_yet_is_read_again() {
    let world = World::new("stale-list").await;
    world.rotate().await;
    let token = world.start_rotation().await;
    world.step(Step::Create, &token).await.expect("create");
    let lists_before = world.proxy.count("ListAccessKeys");
    world
        .proxy
        .inject("ListAccessKeys", Fault::no_access_keys_yet(), 2);
    world
        .step(Step::Set, &token)
        .await
        .expect("set, once IAM caught up");
    assert_eq!(world.proxy.count("ListAccessKeys") - lists_before, 3);
    let sts_before = world.proxy.count("GetCallerIdentity");
    world.step(Step::Test, &token).await.expect("test");
    // A new key counts as working only after several STS answers in a row.
    assert!(world.proxy.count("GetCallerIdentity") - sts_before >= 3);
    world.step(Step::Finish, &token).await.expect("finish");
    assert_rotation_completed(&world, &token).await;
}

/// CreateAccessKey just after DeleteAccessKey may still count the deleted key and answer
/// LimitExceeded; no key was made, so it is retried.
#[tokio::test]
async fn the_key_limit_right_after_a_deletion_is_waited_out() {
    let world = World::new("limit-after-delete").await;
    world.rotate().await;
    world.rotate().await;
    assert_eq!(world.keys().await.len(), 2);
    let token = world.start_rotation().await;
    let creates_before = world.proxy.count("CreateAccessKey");
    world
        .proxy
        .inject("CreateAccessKey", Fault::key_limit_exceeded(), 2);
    world.run_steps(&token).await.expect("rotation");
    assert_eq!(world.proxy.count("CreateAccessKey") - creates_before, 3);
    assert_rotation_completed(&world, &token).await;
}
