//! Invariant 5: bad input gets a clear error and changes nothing.

use keyrot::notify::NoNotifier;
use keyrot::rotation::{handle_rotation_event, RotationError, RotationRequest, Stage, Step};
use keyrot_integration_tests::world::{start_rotation, KeyState, World};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::json;
use std::collections::HashMap;

#[derive(Debug, PartialEq)]
struct Snapshot {
    keys: Vec<KeyState>,
    versions: HashMap<String, Vec<String>>,
    tags: HashMap<String, String>,
    current: Option<String>,
}

async fn snapshot(world: &World) -> Snapshot {
    let current = world
        .secrets
        .get_secret_value()
        .secret_id(&world.secret_id)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .ok()
        .and_then(|o| o.secret_string);
    Snapshot {
        keys: world.keys().await,
        versions: world.versions().await,
        tags: world.tags().await,
        current,
    }
}

/// Replaces the AWSCURRENT value, as an operator editing the secret would.
async fn set_current_value(world: &World, value: &str) {
    world
        .secrets
        .put_secret_value()
        .secret_id(&world.secret_id)
        .secret_string(value)
        .send()
        .await
        .expect("put value");
}

async fn invoke(world: &World, payload: serde_json::Value) -> Result<(), RotationError> {
    let mut context = Context::default();
    context.request_id = "bad-input-test".into();
    handle_rotation_event(
        &world.engine,
        &NoNotifier,
        LambdaEvent::new(payload, context),
    )
    .await
}

#[tokio::test]
async fn malformed_events_are_rejected_before_any_aws_call() {
    let world = World::new("malformed").await;
    let before = snapshot(&world).await;
    for payload in [
        json!({"Step": "createSecret", "SecretId": world.secret_id}),
        json!({"Step": 7, "SecretId": world.secret_id, "ClientRequestToken": "t"}),
        json!("createSecret"),
        json!({}),
    ] {
        let error = invoke(&world, payload.clone()).await.unwrap_err();
        assert!(
            matches!(error, RotationError::MalformedEvent(_)),
            "{payload}: {error}"
        );
        let diagnostic = Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, "keyrot.rotation.MalformedEvent");
    }
    let unknown = invoke(
        &world,
        json!({"Step": "rollbackSecret", "SecretId": world.secret_id, "ClientRequestToken": "t"}),
    )
    .await
    .unwrap_err();
    assert!(
        unknown.to_string().contains("rollbackSecret")
            && unknown.to_string().contains("finishSecret")
    );
    assert!(
        world.proxy.calls().is_empty(),
        "no AWS call for a bad event: {:?}",
        world.proxy.calls()
    );
    assert_eq!(snapshot(&world).await, before);
}

#[tokio::test]
async fn secret_values_that_are_not_key_secrets_are_refused() {
    for (name, value, expected) in [
        ("notjson", "this is not JSON", "not valid JSON"),
        (
            "nouser",
            r#"{"user":"someone"}"#,
            "missing field `UserName`",
        ),
        (
            "halfkey",
            r#"{"UserName":"x","AccessKeyId":"AKIA"}"#,
            "both present",
        ),
    ] {
        let world = World::new(name).await;
        set_current_value(&world, value).await;
        let token = world.start_rotation().await;
        let before = snapshot(&world).await;
        let error = world.step(Step::Create, &token).await.unwrap_err();
        assert!(
            matches!(error, RotationError::InvalidSecretValue { .. }),
            "{error}"
        );
        assert!(error.to_string().contains(expected), "{error}");
        assert!(error.to_string().contains(&world.secret_id), "{error}");
        assert_eq!(snapshot(&world).await, before, "{name}: nothing may change");
    }
}

#[tokio::test]
async fn a_user_that_does_not_exist_is_named_in_the_error() {
    let world = World::new("ghost").await;
    // A secret named after a user that does not exist (deleted, or never created).
    let ghost = format!("{}-ghost", world.user);
    let ghost_secret = format!("keyrot/iam/{ghost}");
    world
        .secrets
        .create_secret()
        .name(&ghost_secret)
        .secret_string(json!({ "UserName": ghost }).to_string())
        .send()
        .await
        .expect("create secret");
    let token = start_rotation(&world.secrets, &ghost_secret, true).await;
    let before = snapshot(&world).await;
    for step in [Step::Create, Step::Test] {
        let request = RotationRequest {
            step,
            secret_id: ghost_secret.clone(),
            token: token.clone(),
        };
        let error = world.engine.run(&request).await.unwrap_err();
        assert!(
            matches!(error, RotationError::UserNotFound { ref user, .. } if *user == ghost),
            "{error}"
        );
    }
    assert_eq!(snapshot(&world).await, before);
}

/// Confused deputy: whoever can create a secret under the prefix and rotate it must not get
/// a key of the user its value names. The name must be exactly the prefix and the user.
#[tokio::test]
async fn a_secret_naming_another_user_is_refused_at_every_step() {
    let victim = World::new("victim").await;
    victim.rotate().await;
    let keys_before = victim.key_ids().await;
    let decoy = format!("keyrot/iam/{}-decoy", victim.user);
    victim
        .secrets
        .create_secret()
        .name(&decoy)
        .secret_string(json!({ "UserName": victim.user }).to_string())
        .send()
        .await
        .expect("create decoy secret");
    let token = start_rotation(&victim.secrets, &decoy, true).await;
    for step in [Step::Create, Step::Set, Step::Test, Step::Finish] {
        let request = RotationRequest {
            step,
            secret_id: decoy.clone(),
            token: token.clone(),
        };
        let error = victim.engine.run(&request).await.unwrap_err();
        assert!(
            matches!(error, RotationError::SecretNameMismatch { ref user, .. } if *user == victim.user)
                || matches!(error, RotationError::MissingValue { .. }),
            "{step}: {error}"
        );
    }
    assert_eq!(
        victim.key_ids().await,
        keys_before,
        "the victim's keys are untouched"
    );
    victim.assert_invariants(None).await;
}

#[tokio::test]
async fn rotation_disabled_is_refused() {
    let world = World::new("disabled").await;
    let version = world
        .version_with(Stage::Current)
        .await
        .expect("initial version");
    let before = snapshot(&world).await;
    let error = world.step(Step::Create, &version).await.unwrap_err();
    assert!(
        matches!(error, RotationError::RotationDisabled { .. }),
        "{error}"
    );
    assert!(error.to_string().contains(&world.secret_id));
    assert_eq!(snapshot(&world).await, before);

    // Rotation configured, then cancelled.
    let token = world.start_rotation().await;
    world
        .secrets
        .cancel_rotate_secret()
        .secret_id(&world.secret_id)
        .send()
        .await
        .expect("cancel rotation");
    let before = snapshot(&world).await;
    let error = world.step(Step::Create, &token).await.unwrap_err();
    assert!(
        matches!(error, RotationError::RotationDisabled { .. }),
        "{error}"
    );
    assert_eq!(snapshot(&world).await, before);
}

#[tokio::test]
async fn tokens_that_are_not_the_pending_version_are_refused() {
    let world = World::new("tokens").await;
    world.rotate().await;
    world.rotate().await;
    let previous = world
        .version_with(Stage::Previous)
        .await
        .expect("previous version");
    let before = snapshot(&world).await;

    let error = world
        .step(Step::Create, "00000000-0000-4000-8000-000000000000")
        .await
        .unwrap_err();
    assert!(
        matches!(error, RotationError::UnknownVersion { .. }),
        "{error}"
    );
    let error = world.step(Step::Finish, &previous).await.unwrap_err();
    assert!(matches!(error, RotationError::NotPending { .. }), "{error}");
    assert!(error.to_string().contains("AWSPREVIOUS"), "{error}");
    assert_eq!(snapshot(&world).await, before);
}

async fn put_pending(world: &World, token: &str, value: serde_json::Value) {
    world
        .secrets
        .put_secret_value()
        .secret_id(&world.secret_id)
        .client_request_token(token)
        .secret_string(value.to_string())
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("put pending");
}

#[tokio::test]
async fn set_refuses_a_pending_value_for_another_user_or_key() {
    let world = World::new("deputy").await;
    world.rotate().await;
    // A pending value naming someone else (confused deputy).
    let token = world.start_rotation().await;
    put_pending(
        &world,
        &token,
        json!({"UserName": "admin", "AccessKeyId": "AKIAADMIN", "SecretAccessKey": "x"}),
    )
    .await;
    let before = snapshot(&world).await;
    let error = world.step(Step::Set, &token).await.unwrap_err();
    // The pending value's user is not the one the secret is named after.
    assert!(
        matches!(error, RotationError::SecretNameMismatch { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("admin"));
    assert_eq!(snapshot(&world).await, before);

    // The right user, but a key that is not theirs.
    let other = World::new("deputy-other").await;
    other.rotate().await;
    let foreign = other.value(Stage::Current).await.expect("other key");
    world.abandon_rotation().await;
    let token = world.start_rotation().await;
    put_pending(
        &world,
        &token,
        json!({
            "UserName": world.user,
            "AccessKeyId": foreign.access_key_id,
            "SecretAccessKey": foreign.secret_access_key,
        }),
    )
    .await;
    let before = snapshot(&world).await;
    let error = world.step(Step::Set, &token).await.unwrap_err();
    assert!(
        matches!(error, RotationError::KeyNotOwned { .. }),
        "{error}"
    );
    assert_eq!(snapshot(&world).await, before);
}
