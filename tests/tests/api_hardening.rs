//! Issue 12 on moto: what a caller may learn from outside its CIDRs (item 10), commas in user
//! names (item 9), an unreadable client secret (item 6) and tokens of a new signing key at a
//! warm authorizer (item 7).

use keyrot::api::caller_check::FORCED_RELOAD_MIN_INTERVAL as KID_RELOAD_MIN_INTERVAL;
use keyrot_integration_tests::api_world::{ApiWorld, Call};
use std::time::Duration;

#[tokio::test]
async fn outside_its_cidrs_a_valid_key_or_token_is_refused_like_an_invalid_one() {
    // client-narrow may call from 10.1.0.0/16 only; 127.0.0.1 is in the global list.
    let world = ApiWorld::new("probe").await;
    let key = world.client("client-narrow").api_key.clone();
    let issue = |key: &str| Call::new("POST", "/generate-token").header("x-api-key", key);
    let valid = world.call(issue(&key)).await;
    let invalid = world.call(issue("0123456789abcdef0123456789abcdef")).await;
    assert_eq!(
        (valid.status, valid.body.clone()),
        (401, invalid.body.clone())
    );
    assert_eq!(invalid.status, 401);

    // A real token, fetched from inside the CIDRs, then presented from outside them.
    let from_inside = world.call(issue(&key).from_ip("10.1.7.7")).await;
    assert_eq!(from_inside.status, 200, "{from_inside:?}");
    let token = from_inside.body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let user = world.users[0].clone();
    let read = |token: &str| {
        Call::new("GET", "/active-key")
            .header("x-api-key", &key)
            .header("Authorization", &format!("Bearer {token}"))
            .query("username", &user)
    };
    let real = world.call(read(&token)).await;
    let forged = world.call(read("eyJhbGciOiJFZERTQSJ9.e30.c2ln")).await;
    assert_eq!((real.status, real.body.clone()), (401, forged.body.clone()));
    assert_eq!(forged.status, 401);
    assert_eq!(
        world.call(read(&token).from_ip("10.1.7.7")).await.status,
        200
    );
}

#[tokio::test]
async fn a_comma_in_a_registry_user_name_names_one_user_not_two() {
    let mut world = ApiWorld::new("commas").await;
    let alice = world.users[0].clone();
    let comma_user = format!("ci,{alice}");
    world
        .add_client("comma", vec![comma_user.clone()], vec![])
        .await;
    let token = world.token_for("comma").await;
    // Before issue 12 the context said "ci,<alice>" and api-fn split it: alice's key leaked.
    let alices = world
        .call(world.active_key_call("comma", &token, &alice))
        .await;
    assert_eq!(alices.status, 403, "{alices:?}");
    // The user it names is allowed (no managed key exists for it, hence 404, not 403).
    let its_own = world
        .call(world.active_key_call("comma", &token, &comma_user))
        .await;
    assert_eq!(its_own.status, 404, "{its_own:?}");
}

#[tokio::test]
async fn an_unreadable_client_secret_locks_out_that_client_only() {
    let world = ApiWorld::new("unreadable").await;
    // Scheduled for deletion: GetSecretValue answers InvalidRequestException.
    world
        .secrets
        .delete_secret()
        .secret_id(format!("{}client-b", world.client_secret_prefix))
        .recovery_window_in_days(7)
        .send()
        .await
        .expect("delete secret");
    let issue = |client: &str| {
        Call::new("POST", "/generate-token").header("x-api-key", &world.client(client).api_key)
    };
    let a = world.call(issue("client-a")).await;
    assert_eq!(a.status, 200, "the other clients keep working: {a:?}");
    let b = world.call(issue("client-b")).await;
    assert_eq!(b.status, 401, "{b:?}");
}

#[tokio::test]
async fn a_warm_authorizer_accepts_a_new_signing_keys_token_at_once_and_rate_limits_reloads() {
    let world = ApiWorld::new("new-kid").await;
    let user = world.users[0].clone();
    // An instance that caches the key set for 30 s, as deployed.
    let warm = world.authorizer_with_cache(Duration::from_secs(30));
    let status = |token: String| {
        let call = world.active_key_call("client-a", &token, &user);
        let warm = &warm;
        let world = &world;
        async move { world.call_through(warm, call).await.status }
    };
    assert_eq!(status(world.token_for("client-a").await).await, 200);

    world.rotate(&world.signing_secret).await;
    assert_eq!(
        status(world.token_for("client-a").await).await,
        200,
        "token of the new key, within the cache TTL"
    );
    // Another new key right away: the previous forced reload was too recent.
    world.rotate(&world.signing_secret).await;
    let newest = world.token_for("client-a").await;
    assert_eq!(
        status(newest.clone()).await,
        401,
        "reloads are rate-limited"
    );
    tokio::time::sleep(KID_RELOAD_MIN_INTERVAL + Duration::from_millis(200)).await;
    assert_eq!(status(newest).await, 200);
}
