//! The emergency revoke on moto: it kills the named key at once, whatever was promised, and
//! nothing else; a current key is replaced by a rotation started on the spot.

use keyrot::iam_key::{IamSdk, KeyLifetime};
use keyrot::notify::NoNotifier;
use keyrot::revoke::{
    RevokeError, RevokeRequest, Revoker, SecretsManagerRevokeRequests, SsmClientDirectory,
};
use keyrot::rotation::{SecretsManagerStore, Stage};
use keyrot_integration_tests::moto::{moto_url, sdk_config};
use keyrot_integration_tests::world::World;
use std::time::Duration;

const LONG: KeyLifetime = KeyLifetime {
    interval: Duration::from_secs(600),
    max_wait: Duration::from_millis(500),
};

type TestRevoker = Revoker<
    SecretsManagerStore,
    IamSdk,
    SecretsManagerStore,
    SsmClientDirectory,
    SecretsManagerRevokeRequests,
>;

/// This world's revoke requests secret (the stack's is `keyrot/revoke-requests`).
fn requests_secret(world: &World) -> String {
    format!("kr-revoke/{}/requests", world.user)
}

/// An operator recording `request` before asking for it, as `keyrot revoke` does.
async fn record(world: &World, request: &RevokeRequest) {
    let value = serde_json::json!({
        "SecretId": request.secret_id,
        "AccessKeyId": request.access_key_id,
    })
    .to_string();
    let name = requests_secret(world);
    let created = world
        .secrets
        .create_secret()
        .name(&name)
        .secret_string(&value)
        .send()
        .await;
    if created.is_err() {
        world
            .secrets
            .put_secret_value()
            .secret_id(&name)
            .secret_string(&value)
            .send()
            .await
            .expect("record the request");
    }
}

/// A revoker wired as rotation-fn wires it, with a client `ci` allowed to read the user.
async fn revoker(world: &World) -> TestRevoker {
    let ssm = aws_sdk_ssm::Client::new(&sdk_config(&moto_url()).await);
    let path = format!("/kr-revoke/{}/clients/", world.user);
    ssm.put_parameter()
        .name(format!("{path}ci"))
        .value(serde_json::json!({"users": [world.user, "someone-else"]}).to_string())
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .expect("client parameter");
    ssm.put_parameter()
        .name(format!("{path}other"))
        .value(r#"{"users": ["someone-else"]}"#)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .expect("client parameter");
    Revoker {
        store: SecretsManagerStore::new(world.secrets.clone()),
        iam: IamSdk::new(world.iam.clone()),
        starter: SecretsManagerStore::new(world.secrets.clone()),
        clients: SsmClientDirectory::new(ssm, path),
        authority: SecretsManagerRevokeRequests::new(world.secrets.clone(), requests_secret(world)),
        managed_prefix: "keyrot/iam/".into(),
    }
}

fn request(world: &World, key_id: &str) -> RevokeRequest {
    RevokeRequest {
        action: "RevokeKey".into(),
        secret_id: world.secret_id.clone(),
        access_key_id: key_id.into(),
        reason: "key pasted into a public issue".into(),
    }
}

/// Two rotations within the promise: the first key is superseded but promised, the second
/// is current.
async fn two_keys(world: &World) -> (String, String) {
    world.rotate().await;
    let first = world
        .value(Stage::Current)
        .await
        .and_then(|v| v.access_key_id);
    world.rotate().await;
    let second = world
        .value(Stage::Current)
        .await
        .and_then(|v| v.access_key_id);
    (first.expect("first"), second.expect("second"))
}

#[tokio::test]
async fn revoking_the_current_key_deletes_it_and_starts_its_replacement() {
    let world = World::with_lifetime("revoke-current", LONG).await;
    let (first, second) = two_keys(&world).await;
    let revoker = revoker(&world).await;
    record(&world, &request(&world, &second)).await;
    let revoked = revoker
        .revoke(&request(&world, &second), &NoNotifier)
        .await
        .expect("revoke");
    assert!(revoked.was_current);
    assert_eq!(revoked.clients, Some(vec!["ci".to_owned()]));
    let keys = world.key_ids().await;
    assert!(!keys.contains(&second), "the revoked key is gone at once");
    assert!(keys.contains(&first), "the other promised key is untouched");

    // The rotation it started mints a key in the freed slot, without touching the first.
    let token = revoked.rotation_version.expect("a rotation was started");
    world.run_steps(&token).await.expect("replacement rotation");
    let third = world
        .value(Stage::Current)
        .await
        .and_then(|v| v.access_key_id);
    let third = third.expect("third");
    assert!(third != second && third != first);
    let keys = world.key_ids().await;
    assert!(keys.contains(&first) && keys.contains(&third) && keys.len() == 2);
    world.assert_invariants(None).await;
}

#[tokio::test]
async fn revoking_a_superseded_key_breaks_its_promise_and_nothing_else() {
    let world = World::with_lifetime("revoke-previous", LONG).await;
    let (first, second) = two_keys(&world).await;
    record(&world, &request(&world, &first)).await;
    let revoked = revoker(&world)
        .await
        .revoke(&request(&world, &first), &NoNotifier)
        .await
        .expect("revoke");
    assert!(!revoked.was_current);
    assert_eq!(revoked.rotation_version, None, "the current key stays");
    assert_eq!(
        world.key_ids().await.into_iter().collect::<Vec<_>>(),
        vec![second.clone()]
    );
    assert!(world.promised_keys().await.is_empty());
    world.assert_invariants(None).await;
}

#[tokio::test]
async fn a_key_keyrot_did_not_make_is_refused() {
    let mut world = World::with_lifetime("revoke-foreign", LONG).await;
    world.rotate().await;
    let foreign = world.add_foreign_key().await;
    record(&world, &request(&world, &foreign)).await;
    let error = revoker(&world)
        .await
        .revoke(&request(&world, &foreign), &NoNotifier)
        .await
        .expect_err("a hand-made key is not keyrot's to revoke");
    assert!(matches!(error, RevokeError::Refused { .. }), "{error}");
    assert!(world.key_ids().await.contains(&foreign));
    world.assert_invariants(None).await;
}

/// Security issue, item 2: a `RevokeKey` event from anyone who may invoke rotation-fn used to
/// delete the current key. Without a recorded request naming that secret and key, nothing is
/// deleted.
#[tokio::test]
async fn a_revoke_without_a_recorded_request_for_that_key_deletes_nothing() {
    let world = World::with_lifetime("revoke-unrecorded", LONG).await;
    let (first, second) = two_keys(&world).await;
    let revoker = revoker(&world).await;
    let refused = |error: RevokeError| match error {
        RevokeError::Refused { reason, .. } => reason,
        other => panic!("not a refusal: {other}"),
    };
    // Nothing recorded at all.
    let error = revoker
        .revoke(&request(&world, &second), &NoNotifier)
        .await
        .expect_err("nothing recorded");
    assert!(refused(error).contains("no revoke request is recorded"));
    // A request recorded for the other key does not cover this one.
    record(&world, &request(&world, &first)).await;
    let error = revoker
        .revoke(&request(&world, &second), &NoNotifier)
        .await
        .expect_err("another key recorded");
    assert!(refused(error).contains("another secret or key"));
    assert_eq!(world.key_ids().await.len(), 2, "both keys are still there");
    world.assert_invariants(None).await;
}
