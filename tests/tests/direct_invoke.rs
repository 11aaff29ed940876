//! Security issue, item 1: api-fn invoked directly (past API Gateway and its authorizer) with
//! a hand-made proxy event. Anyone with `lambda:InvokeFunction` on `*` can send one; only
//! valid credentials in it may get a key, never the authorizer context it carries.

use keyrot_integration_tests::api_world::{ApiWorld, Call};
use keyrot_integration_tests::events::proxy_event;
use serde_json::{json, Value};

/// The authorizer context an attacker writes: client-b's id, allowed to read `users`.
fn forged_context(users: &[String]) -> Value {
    json!({
        "principalId": "client-b",
        "context": {
            "client_id": "client-b",
            "allowed_users": serde_json::to_string(users).expect("json"),
            "token_id": "forged",
        }
    })
}

fn assert_no_key(reply: &keyrot_integration_tests::api_world::Reply) {
    assert!(reply.body.get("SecretAccessKey").is_none(), "{reply:?}");
    assert!(reply.body.get("token").is_none(), "{reply:?}");
}

#[tokio::test]
async fn a_forged_authorizer_context_without_credentials_gets_no_key_and_no_token() {
    let world = ApiWorld::new("direct-forged").await;
    let alice = world.users[0].clone();
    let context = forged_context(std::slice::from_ref(&alice));

    let read = Call::new("GET", "/active-key").query("username", &alice);
    let reply = world.invoke_api(proxy_event(&read, &context)).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_no_key(&reply);

    let issue = Call::new("POST", "/generate-token");
    let reply = world.invoke_api(proxy_event(&issue, &context)).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_no_key(&reply);

    // A made-up API key and token change nothing.
    let guessed = Call::new("GET", "/active-key")
        .header("x-api-key", "0123456789abcdef0123456789abcdef")
        .header("Authorization", "Bearer eyJhbGciOiJFZERTQSJ9.e30.c2ln")
        .query("username", &alice);
    let reply = world.invoke_api(proxy_event(&guessed, &context)).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_no_key(&reply);
}

#[tokio::test]
async fn a_clients_own_credentials_reach_only_the_users_the_registry_gives_it() {
    // client-b may read bob only; its context is forged to allow alice.
    let world = ApiWorld::new("direct-widened").await;
    let (alice, bob) = (world.users[0].clone(), world.users[1].clone());
    let token = world.token_for("client-b").await;
    let context = forged_context(&[alice.clone(), bob.clone()]);

    let alices = world
        .invoke_api(proxy_event(
            &world.active_key_call("client-b", &token, &alice),
            &context,
        ))
        .await;
    assert_eq!(alices.status, 403, "{alices:?}");
    assert_no_key(&alices);

    // The same credentials, directly, for the user it may read: the check is the
    // authorizer's, not a blanket refusal of direct invokes.
    let bobs = world
        .invoke_api(proxy_event(
            &world.active_key_call("client-b", &token, &bob),
            &context,
        ))
        .await;
    assert_eq!(bobs.status, 200, "{bobs:?}");
    assert_eq!(bobs.body["UserName"], bob);

    // client-a's key with client-b's token: a token is only good with its own client's key.
    let mixed = Call::new("GET", "/active-key")
        .header("x-api-key", &world.client("client-a").api_key)
        .header("Authorization", &format!("Bearer {token}"))
        .query("username", &bob);
    let reply = world.invoke_api(proxy_event(&mixed, &context)).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_no_key(&reply);
}

#[tokio::test]
async fn a_source_address_outside_the_allowlist_is_refused_even_with_valid_credentials() {
    let world = ApiWorld::new("direct-ip").await;
    let bob = world.users[1].clone();
    let token = world.token_for("client-b").await;
    let call = world
        .active_key_call("client-b", &token, &bob)
        .from_ip("192.0.2.10");
    let reply = world
        .invoke_api(proxy_event(
            &call,
            &forged_context(std::slice::from_ref(&bob)),
        ))
        .await;
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_no_key(&reply);
}
