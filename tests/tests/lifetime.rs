//! The key lifetime contract on moto: a key handed out keeps working until the Expiration it
//! was given (one interval after it stopped being AWSCURRENT, at the latest), whatever starts
//! a rotation and however often; and the local AWS refuses what AWS refuses.

use keyrot::iam_key::KeyLifetime;
use keyrot::rotation::{RotationError, Stage, Step};
use keyrot_integration_tests::fault_proxy::Fault;
use keyrot_integration_tests::world::World;
use std::time::{Duration, Instant};

/// A promise far longer than the test: every rotation after the second is early.
const LONG: KeyLifetime = KeyLifetime {
    interval: Duration::from_secs(600),
    max_wait: Duration::from_millis(500),
};

async fn current_key(world: &World) -> String {
    world
        .value(Stage::Current)
        .await
        .and_then(|value| value.access_key_id)
        .expect("AWSCURRENT holds a key")
}

#[tokio::test]
async fn early_rotations_carry_the_current_key_forward_and_delete_nothing_promised() {
    let world = World::with_lifetime("early", LONG).await;
    world.rotate().await;
    let first = current_key(&world).await;
    world.rotate().await;
    let second = current_key(&world).await;
    assert_ne!(first, second, "a free slot is used for a new key");

    // Native window, operator, deploy, retry: five more rotations within the promise.
    for _ in 0..5 {
        world.rotate().await;
        assert_eq!(
            current_key(&world).await,
            second,
            "the current key carries on"
        );
        let keys = world.key_ids().await;
        assert!(
            keys.contains(&first),
            "the promised key must stay: {keys:?}"
        );
        assert!(keys.len() <= 2);
        world.assert_invariants(None).await;
    }
    // Both keys a client may hold still authenticate as the user.
    assert_eq!(world.promised_keys().await, vec![first.clone()]);
    world.assert_previous_still_works().await;
}

#[tokio::test]
async fn a_promise_about_to_run_out_is_waited_for_then_the_next_key_is_minted() {
    let lifetime = KeyLifetime {
        interval: Duration::from_secs(2),
        max_wait: Duration::from_secs(5),
    };
    let world = World::with_lifetime("wait", lifetime).await;
    world.rotate().await;
    let first = current_key(&world).await;
    world.rotate().await;
    let superseded_at = Instant::now();
    let second = current_key(&world).await;

    world.rotate().await;
    // The mark says one interval plus a second (rounding up), from the second's finish.
    assert!(
        superseded_at.elapsed() >= lifetime.interval,
        "the first key was deleted before its promise ran out"
    );
    let third = current_key(&world).await;
    assert_ne!(third, second);
    let keys = world.key_ids().await;
    assert!(!keys.contains(&first) && keys.contains(&second), "{keys:?}");
    world.assert_invariants(None).await;
}

#[tokio::test]
async fn a_superseded_key_whose_promise_was_not_recorded_is_still_kept() {
    let world = World::with_lifetime("unrecorded", LONG).await;
    world.rotate().await;
    let first = current_key(&world).await;
    // finishSecret's record of the promise fails (and Secrets Manager gives up); the
    // promotion itself went through.
    let token = world.start_rotation().await;
    for step in [Step::Create, Step::Set, Step::Test] {
        world.step(step, &token).await.expect("step");
    }
    let tag_calls_before = world.proxy.count("TagUser");
    world
        .proxy
        .inject("TagUser", Fault::throttling_query(), 100);
    let error = world.step(Step::Finish, &token).await.unwrap_err();
    assert!(matches!(error, RotationError::Aws(_)), "{error}");
    world.proxy.clear_faults();
    assert!(world.proxy.count("TagUser") > tag_calls_before);
    let second = current_key(&world).await;
    assert_ne!(first, second, "the promotion went through");

    // The next rotation finds the first key superseded without a record: it records one from
    // now and keeps the key, carrying the current one forward.
    world.rotate().await;
    assert_eq!(current_key(&world).await, second);
    assert!(world.key_ids().await.contains(&first));
    assert_eq!(world.promised_keys().await, vec![first]);
    world.assert_invariants(None).await;
}

/// What AWS does and moto 5.2.5 does not: RotateSecret is refused while a version carries
/// AWSPENDING without AWSCURRENT (the moto launcher reproduces it).
#[tokio::test]
async fn rotate_secret_is_refused_while_a_rotation_is_in_progress() {
    let world = World::new("in-progress").await;
    world.rotate().await;
    let token = world.start_rotation().await;
    let refused = world
        .secrets
        .rotate_secret()
        .secret_id(&world.secret_id)
        .send()
        .await
        .expect_err("a second RotateSecret during the rotation");
    let text = aws_sdk_secretsmanager::error::DisplayErrorContext(&refused).to_string();
    assert!(
        text.contains("InvalidRequestException")
            && text.contains("previous rotation isn't complete"),
        "{text}"
    );
    assert_eq!(
        world.version_with(Stage::Pending).await.as_deref(),
        Some(token.as_str()),
        "the rotation in progress keeps its version"
    );
    world
        .run_steps(&token)
        .await
        .expect("the rotation completes");

    // AWSPENDING left on the AWSCURRENT version ends a rotation cleanly, as on AWS.
    let current = world.version_with(Stage::Current).await.expect("current");
    world
        .secrets
        .update_secret_version_stage()
        .secret_id(&world.secret_id)
        .version_stage("AWSPENDING")
        .move_to_version_id(&current)
        .send()
        .await
        .expect("label the current version AWSPENDING");
    world.rotate().await;
    world.assert_invariants(None).await;
}

/// Failure mail counted instead of sent.
#[derive(Default)]
struct CountedMail(std::sync::atomic::AtomicUsize);

impl keyrot::notify::FailureNotifier for CountedMail {
    async fn notify<M: keyrot::notify::Mail>(&self, _mail: &M) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One step as Secrets Manager invokes rotation-fn: through the handler, which mails.
async fn invoke(
    world: &World,
    mail: &CountedMail,
    step: Step,
    token: &str,
) -> Result<(), RotationError> {
    let event = lambda_runtime::LambdaEvent::new(
        serde_json::json!({"Step": step.as_str(), "SecretId": world.secret_id, "ClientRequestToken": token}),
        lambda_runtime::Context::default(),
    );
    keyrot::rotation::handle_rotation_event(&world.engine, mail, event).await
}

/// At the version limit (here 50 kept versions, as the local stack's `--max-versions` sets it
/// for rotation-fn) createSecret refuses before it makes anything: no key is created or
/// deleted and no tag written, AWSCURRENT's key keeps working, the refusal is mailed once,
/// and Secrets Manager's reattempts of the same rotation are refused again without mail.
#[tokio::test]
async fn the_version_limit_refuses_the_rotation_before_any_key_and_mails_once() {
    let world = World::new("versions").await.with_version_limit(50);
    let mail = CountedMail::default();
    let refused = loop {
        let keys = world.key_ids().await;
        let tags = world.tags().await;
        let token = world.start_rotation().await;
        let mut outcome = Ok(());
        for step in [Step::Create, Step::Set, Step::Test, Step::Finish] {
            outcome = invoke(&world, &mail, step, &token).await;
            if outcome.is_err() {
                break;
            }
        }
        match outcome {
            Ok(()) => assert!(world.versions().await.len() <= 50, "never past the limit"),
            Err(error) => break (token, error, keys, tags),
        }
    };
    let (token, error, keys_before, tags_before) = refused;
    assert_eq!(error.code(), "VersionLimitReached", "{error}");
    assert!(!error.already_reported(), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&world.secret_id) && message.contains("at most 50"),
        "{message}"
    );
    assert_eq!(world.key_ids().await, keys_before, "no key made or deleted");
    assert_eq!(world.tags().await, tags_before, "no tag written");
    assert_eq!(mail.0.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Secrets Manager reattempts the same rotation: refused again, logged, not mailed.
    for _ in 0..3 {
        let again = invoke(&world, &mail, Step::Create, &token)
            .await
            .expect_err("still at the limit");
        assert!(again.already_reported(), "{again}");
    }
    assert_eq!(
        mail.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one mail"
    );
    assert_eq!(world.key_ids().await, keys_before, "no key made or deleted");
    // The rotation is open (its AWSPENDING has no value); the current key works.
    world.assert_invariants(Some(&token)).await;
}

/// Should Secrets Manager refuse PutSecretValue before keyrot's own count says so (moto's
/// KEYROT_MOTO_MAX_VERSIONS=60, set by scripts/test, against keyrot's default of AWS's 100):
/// the step fails with its own code and message, and AWSCURRENT's key keeps working.
#[tokio::test]
async fn a_refused_put_fails_the_step_with_its_cause_and_loses_no_working_key() {
    let world = World::new("versions-put").await;
    let mut refused = None;
    for _ in 0..100 {
        let token = world.start_rotation().await;
        match world.run_steps(&token).await {
            Ok(()) => {}
            Err(error) => {
                refused = Some((token, error));
                break;
            }
        }
    }
    let (token, error) = refused.expect(
        "moto must refuse PutSecretValue at the version limit (start it with KEYROT_MOTO_MAX_VERSIONS=60, as scripts/test does)",
    );
    assert_eq!(error.code(), "VersionLimitReached", "{error}");
    assert!(error.to_string().contains(&world.secret_id), "{error}");
    let versions = world.versions().await.len();
    assert!((59..=61).contains(&versions), "{versions} versions");
    world.assert_invariants(Some(&token)).await;
}

/// What anyone with iam:TagUser on the user can do: tag `key` with `mark`.
async fn forge_mark(world: &World, key: &str, mark: &str) {
    world
        .iam
        .tag_user()
        .user_name(&world.user)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key(key)
                .value(mark)
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("forge the mark");
}

/// A forged mark naming a version the secret never had, on a hand-made key never used, is no
/// abandoned attempt of keyrot's: such a key is left alone (before, it was deleted to make
/// room).
#[tokio::test]
async fn a_forged_mark_naming_a_version_the_secret_never_had_is_not_trusted() {
    let mut world = World::new("forged-version").await;
    world.rotate().await;
    let foreign = world.add_foreign_key().await;
    let forged = format!(
        "keyrot managed secret={} version=00000000-0000-4000-8000-000000000000 interval=600",
        world.secret_id
    );
    forge_mark(&world, &foreign, &forged).await;
    let token = world.start_rotation().await;
    let outcome = world.run_steps(&token).await;
    assert!(
        world.key_ids().await.contains(&foreign),
        "the hand-made key survives: {outcome:?}"
    );
    if outcome.is_err() {
        world.abandon_rotation().await;
    }
    world.assert_invariants(None).await;
}

/// A forged mark (anyone with iam:TagUser on the user can write one) does not get a hand-made
/// key deleted: keyrot confirms a mark against the secret's version history first.
#[tokio::test]
async fn a_forged_mark_on_a_hand_made_key_is_not_trusted() {
    let mut world = World::new("forged").await;
    world.rotate().await;
    let token = world.version_with(Stage::Current).await.expect("current");
    let foreign = world.add_foreign_key().await;
    // The forger copies the current key's mark onto the hand-made key: the version it names
    // holds another key.
    let mark = world
        .tags()
        .await
        .into_values()
        .find(|v| v.contains(&token));
    forge_mark(&world, &foreign, &mark.expect("the current key's mark")).await;
    let token = world.start_rotation().await;
    let error = world.run_steps(&token).await.unwrap_err();
    assert_eq!(error.code(), "NoFreeKeySlot", "{error}");
    assert!(
        world.key_ids().await.contains(&foreign),
        "the hand-made key survives"
    );
    // The advice no longer tells the operator to store a hand-made key as AWSCURRENT, which
    // got the working key deleted and left the adopted one unmarked.
    assert!(!error.to_string().contains("AWSCURRENT value"), "{error}");
    world.abandon_rotation().await;
    world.assert_invariants(None).await;
}
