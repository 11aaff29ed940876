//! Full rotations against moto: the protocol as Secrets Manager drives it, and the key
//! lifecycle it promises (zero downtime, two keys at most, previous key kept one interval).

use keyrot::rotation::{Stage, Step, StepOutcome};
use keyrot_integration_tests::world::{World, STEPS};

#[tokio::test]
async fn first_rotation_creates_the_first_managed_key() {
    let world = World::new("first").await;
    assert!(world.keys().await.is_empty());
    let token = world.rotate().await;

    let current = world.value(Stage::Current).await.expect("AWSCURRENT value");
    assert_eq!(current.user_name, world.user);
    let (key_id, _) = current.key().expect("a key");
    assert_eq!(
        world.key_ids().await.into_iter().collect::<Vec<_>>(),
        vec![key_id.to_owned()]
    );
    assert_eq!(
        world.version_with(Stage::Current).await.as_deref(),
        Some(token.as_str())
    );
    assert!(current.created_at.is_some());
    assert_eq!(world.caller_arn(&current).await, world.user_arn);
    let mark = world
        .tags()
        .await
        .remove(key_id)
        .expect("managed key is marked");
    assert!(
        mark.contains(&world.secret_id) && mark.contains(&token),
        "{mark}"
    );
    world.assert_invariants(None).await;
}

#[tokio::test]
async fn rotation_keeps_the_previous_key_working_until_the_next_one() {
    let world = World::new("downtime").await;
    world.rotate().await;
    let first = world.value(Stage::Current).await.expect("first key");
    world.rotate().await;
    let second = world.value(Stage::Current).await.expect("second key");
    assert_ne!(first.access_key_id, second.access_key_id);
    // A client that fetched the first key just before the rotation keeps working.
    let previous = world
        .value(Stage::Previous)
        .await
        .expect("AWSPREVIOUS value");
    assert_eq!(previous.access_key_id, first.access_key_id);
    world.assert_previous_still_works().await;
    assert_eq!(world.keys().await.len(), 2);

    world.rotate().await;
    let ids = world.key_ids().await;
    assert!(
        !ids.contains(first.access_key_id.as_deref().expect("id")),
        "oldest key is deleted"
    );
    assert!(
        ids.contains(second.access_key_id.as_deref().expect("id")),
        "previous key stays"
    );
    world.assert_previous_still_works().await;
    world.assert_invariants(None).await;
}

#[tokio::test]
async fn fifty_rotations_leave_exactly_current_and_previous() {
    let world = World::new("fifty").await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        world.rotate().await;
        let current = world.value(Stage::Current).await.expect("current");
        assert_eq!(world.caller_arn(&current).await, world.user_arn);
        assert!(
            seen.insert(current.access_key_id.clone().expect("id")),
            "every rotation makes a new key"
        );
        assert!(world.keys().await.len() <= 2);
    }
    let current = world
        .value(Stage::Current)
        .await
        .and_then(|v| v.access_key_id)
        .expect("current");
    let previous = world
        .value(Stage::Previous)
        .await
        .and_then(|v| v.access_key_id)
        .expect("previous");
    let expected: std::collections::HashSet<String> = [current, previous].into_iter().collect();
    assert_eq!(world.key_ids().await, expected);
    world.assert_previous_still_works().await;
    world.assert_invariants(None).await;
}

#[tokio::test]
async fn every_step_invoked_twice_has_the_effect_of_once() {
    let world = World::new("twice").await;
    world.rotate().await;
    let token = world.start_rotation().await;
    for step in STEPS {
        let first = world.step(step, &token).await.expect("first invocation");
        let second = world.step(step, &token).await.expect("second invocation");
        match step {
            Step::Create => {
                assert_eq!(first, StepOutcome::Created);
                assert_eq!(second, StepOutcome::PendingAlreadyCreated);
            }
            Step::Finish => {
                assert_eq!(first, StepOutcome::Finished);
                assert_eq!(second, StepOutcome::AlreadyCurrent);
            }
            _ => assert_eq!(first, second),
        }
        assert!(world.keys().await.len() <= 2);
    }
    assert_eq!(world.keys().await.len(), 2);
    assert_eq!(
        world.version_with(Stage::Current).await.as_deref(),
        Some(token.as_str())
    );
    world.assert_invariants(None).await;
}

#[tokio::test]
async fn finish_leaves_awspending_only_on_awscurrent_so_the_next_rotate_secret_is_accepted() {
    let world = World::new("pending").await;
    let token = world.rotate().await;
    let versions = world.versions().await;
    // One label move: AWSCURRENT joins AWSPENDING on the new version, which ends the rotation
    // for Secrets Manager (it moves AWSPENDING on at the next RotateSecret).
    assert_eq!(
        versions.get(&token).cloned(),
        Some(vec!["AWSCURRENT".to_owned(), "AWSPENDING".to_owned()])
    );
    assert!(world.pending_without_current().await.is_empty());
    world.rotate().await;
    world.assert_invariants(None).await;
}

#[tokio::test]
async fn test_step_alone_checks_the_configuration_when_rotate_immediately_is_false() {
    let world = World::new("test-alone").await;
    // Onboarded secret, no key yet: testing the configuration only needs the user to exist.
    let token = world.start_rotation_with(false).await;
    world
        .step(Step::Test, &token)
        .await
        .expect("testSecret on an onboarding value");
    // Secrets Manager removes the test's AWSPENDING version again afterwards.
    world.abandon_rotation().await;
    assert!(
        world.keys().await.is_empty(),
        "testSecret alone creates nothing"
    );
    // Pending version without a value (RotateSecret staged it, nothing created yet):
    // AWSCURRENT is what gets tested.
    let token = world.start_rotation().await;
    world.run_steps(&token).await.expect("rotation");
    let current = world.value(Stage::Current).await;
    let token = world.start_rotation_with(false).await;
    world
        .step(Step::Test, &token)
        .await
        .expect("testSecret alone with a key");
    assert_eq!(
        world.keys().await.len(),
        1,
        "testSecret alone creates nothing"
    );
    assert_eq!(
        world.value(Stage::Current).await,
        current,
        "AWSCURRENT unchanged"
    );
}

#[tokio::test]
async fn finish_retried_after_promotion_completes_without_a_stray_awspending() {
    let world = World::new("finish-retry").await;
    world.rotate().await;
    let token = world.start_rotation().await;
    for step in [Step::Create, Step::Set, Step::Test] {
        world.step(step, &token).await.expect("step");
    }
    // Simulate a finishSecret that moved AWSCURRENT and died before removing AWSPENDING.
    let current = world.version_with(Stage::Current).await.expect("current");
    world
        .secrets
        .update_secret_version_stage()
        .secret_id(&world.secret_id)
        .version_stage("AWSCURRENT")
        .move_to_version_id(&token)
        .remove_from_version_id(&current)
        .send()
        .await
        .expect("move AWSCURRENT");
    assert_eq!(
        world.step(Step::Finish, &token).await.expect("retry"),
        StepOutcome::AlreadyCurrent
    );
    assert!(world.pending_without_current().await.is_empty());
    world.assert_invariants(None).await;
}

#[tokio::test]
async fn rotate_secret_naming_only_the_secret_uses_the_configured_function() {
    // What an EventBridge Scheduler target sends: {"SecretId": ...}, no function ARN.
    let world = World::new("schedule").await;
    world.rotate().await;
    let current = world.version_with(Stage::Current).await;
    let token = world
        .secrets
        .rotate_secret()
        .secret_id(&world.secret_id)
        .send()
        .await
        .expect("RotateSecret")
        .version_id
        .expect("version id");
    assert_eq!(
        world.version_with(Stage::Current).await,
        current,
        "nothing promoted yet"
    );
    assert_eq!(
        world.version_with(Stage::Pending).await.as_deref(),
        Some(token.as_str())
    );
    world.run_steps(&token).await.expect("rotation");
    assert_eq!(
        world.version_with(Stage::Current).await.as_deref(),
        Some(token.as_str())
    );
    world.assert_invariants(None).await;
}

#[tokio::test]
async fn a_user_with_an_iam_path_rotates_and_its_key_authenticates_as_that_user() {
    // Issue 12, item 5: the user's ARN carries the path; the STS check must expect it.
    let world = World::with_user_path("path", "/division/").await;
    assert!(
        world
            .user_arn
            .ends_with(&format!(":user/division/{}", world.user)),
        "{}",
        world.user_arn
    );
    world.rotate().await;
    world.rotate().await;
    let current = world.value(Stage::Current).await.expect("AWSCURRENT value");
    assert_eq!(current.user_name, world.user);
    assert_eq!(world.caller_arn(&current).await, world.user_arn);
    world.assert_previous_still_works().await;
    world.assert_invariants(None).await;
}
