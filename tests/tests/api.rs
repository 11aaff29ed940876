//! The API end to end on moto (authorizer → api-fn → Secrets Manager), and the attack suite:
//! every attack is refused with the right status and never a 5xx.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keyrot::iam_key::IamKeySecret;
use keyrot::Sensitive;
use keyrot_integration_tests::api_world::{ApiWorld, Call};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Claims as api-fn would issue them for `client`, to be altered by each attack.
fn claims(world: &ApiWorld, client: &str) -> Value {
    let now = now();
    json!({
        "iss": world.issuer, "aud": world.audience, "sub": client,
        "iat": now, "nbf": now, "exp": now + 120, "jti": "attack",
    })
}

/// Signs `claims` with the real current private key (as a thief of the key could not, but as
/// a test of every other check needs).
async fn sign(world: &ApiWorld, claims: &Value, kid: Option<&str>) -> String {
    let key = world.current_signing_key().await.key().expect("key");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.unwrap_or(&key.kid).to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&key.pkcs8_der)).expect("sign")
}

async fn active_key_status(world: &ApiWorld, client: &str, token: &str, user: &str) -> i64 {
    world
        .call(world.active_key_call(client, token, user))
        .await
        .status
}

#[tokio::test]
async fn happy_path_issues_a_token_and_returns_the_current_key() {
    let world = ApiWorld::new("happy").await;
    let reply = world
        .call(
            Call::new("POST", "/generate-token")
                .header("x-api-key", &world.client("client-a").api_key),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 120);
    assert_eq!(
        reply.headers.get("cache-control").map(String::as_str),
        Some("no-store")
    );
    let token = reply.body["token"].as_str().expect("token");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid, world.current_signing_key().await.kid);

    let user = &world.users[0];
    let reply = world
        .call(world.active_key_call("client-a", token, user))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.headers.get("cache-control").map(String::as_str),
        Some("no-store")
    );
    let stored = world
        .secrets
        .get_secret_value()
        .secret_id(format!("{}{user}", world.managed_prefix))
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("secret");
    let stored_value = IamKeySecret::parse(
        &Sensitive::new(stored.secret_string.clone().unwrap()),
        "s",
        "AWSCURRENT",
    )
    .unwrap();
    assert_eq!(reply.body["UserName"], json!(user));
    assert_eq!(reply.body["AccessKeyId"], json!(stored_value.access_key_id));
    assert_eq!(
        reply.body["SecretAccessKey"],
        json!(stored_value.secret_access_key)
    );
    assert_eq!(reply.body["Version"], json!(stored.version_id));
    let rotated = reply.body["RotatedAt"].as_str().expect("RotatedAt");
    let expiration = reply.body["Expiration"].as_str().expect("Expiration");
    assert!(expiration > rotated, "{rotated} → {expiration}");

    // After a rotation the API hands out the new key.
    world
        .rotate(&format!("{}{user}", world.managed_prefix))
        .await;
    let reply = world
        .call(world.active_key_call("client-a", token, user))
        .await;
    assert_ne!(reply.body["AccessKeyId"], json!(stored_value.access_key_id));
}

#[tokio::test]
async fn credential_attacks_are_unauthorized() {
    let world = ApiWorld::new("credentials").await;
    let user = world.users[0].clone();
    let key_a = world.client("client-a").api_key.clone();
    let valid = world.token_for("client-a").await;
    let base = || {
        Call::new("GET", "/active-key")
            .header("x-api-key", &key_a)
            .query("username", &user)
    };

    let mut cases: Vec<(&str, Call)> = vec![
        ("no Authorization", base()),
        (
            "not bearer",
            base().header("Authorization", &format!("Basic {valid}")),
        ),
        ("empty bearer", base().header("Authorization", "Bearer ")),
        (
            "garbage",
            base().header("Authorization", "Bearer not.a.jwt"),
        ),
        (
            "two Authorization headers",
            base()
                .header("Authorization", &format!("Bearer {valid}"))
                .header("Authorization", &format!("Bearer {valid}")),
        ),
        (
            "unknown API key",
            Call::new("GET", "/active-key")
                .header("x-api-key", "0123456789abcdef0123456789abcdef")
                .header("Authorization", &format!("Bearer {valid}"))
                .query("username", &user),
        ),
        (
            "no API key",
            Call::new("GET", "/active-key")
                .header("Authorization", &format!("Bearer {valid}"))
                .query("username", &user),
        ),
        (
            "huge API key",
            Call::new("GET", "/active-key")
                .header("x-api-key", &"k".repeat(10_000))
                .header("Authorization", &format!("Bearer {valid}"))
                .query("username", &user),
        ),
        (
            "huge token",
            base().header("Authorization", &format!("Bearer {}", "a".repeat(8_000))),
        ),
    ];

    // alg: none
    let mut none_claims = claims(&world, "client-a");
    none_claims["jti"] = json!("none");
    let kid = world.current_signing_key().await.kid.unwrap();
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(&none_claims)
    );
    cases.push((
        "alg none",
        base().header("Authorization", &format!("Bearer {none}")),
    ));

    // HS256 with the public key as the HMAC secret (key confusion).
    let public = world.current_signing_key().await.public_key.unwrap();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(kid.clone());
    for secret in [
        public.as_bytes().to_vec(),
        URL_SAFE_NO_PAD.decode(&public).unwrap(),
    ] {
        let forged = jsonwebtoken::encode(
            &hs_header,
            &claims(&world, "client-a"),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        cases.push((
            "HS256 with the public key",
            base().header("Authorization", &format!("Bearer {forged}")),
        ));
    }

    // Correctly signed but wrong in one claim.
    let mut expired = claims(&world, "client-a");
    expired["iat"] = json!(now() - 121);
    expired["nbf"] = json!(now() - 121);
    expired["exp"] = json!(now() - 1);
    let mut future = claims(&world, "client-a");
    future["nbf"] = json!(now() + 60);
    let mut issued_later = claims(&world, "client-a");
    issued_later["iat"] = json!(now() + 60);
    let mut wrong_iss = claims(&world, "client-a");
    wrong_iss["iss"] = json!("urn:keyrot:someone-else");
    let mut wrong_aud = claims(&world, "client-a");
    wrong_aud["aud"] = json!("urn:keyrot:other-api");
    let mut no_exp = claims(&world, "client-a");
    no_exp.as_object_mut().unwrap().remove("exp");
    for (name, forged) in [
        ("expired by 1 s", sign(&world, &expired, None).await),
        ("nbf in the future", sign(&world, &future, None).await),
        ("iat in the future", sign(&world, &issued_later, None).await),
        ("wrong iss", sign(&world, &wrong_iss, None).await),
        ("wrong aud", sign(&world, &wrong_aud, None).await),
        ("no exp", sign(&world, &no_exp, None).await),
        (
            "unknown kid",
            sign(&world, &claims(&world, "client-a"), Some("k-unknown")).await,
        ),
    ] {
        cases.push((
            name,
            base().header("Authorization", &format!("Bearer {forged}")),
        ));
    }

    // Tampered payload: client-a's valid token, re-pointed at client-b.
    let parts: Vec<&str> = valid.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!("client-b");
    let tampered = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    cases.push((
        "tampered payload",
        Call::new("GET", "/active-key")
            .header("x-api-key", &world.client("client-b").api_key)
            .header("Authorization", &format!("Bearer {tampered}"))
            .query("username", &world.users[1]),
    ));
    // Client A's token with client B's API key.
    cases.push((
        "token of another client",
        Call::new("GET", "/active-key")
            .header("x-api-key", &world.client("client-b").api_key)
            .header("Authorization", &format!("Bearer {valid}"))
            .query("username", &world.users[1]),
    ));
    // Token issue needs a known API key too.
    cases.push((
        "token issue without API key",
        Call::new("POST", "/generate-token"),
    ));
    cases.push((
        "token issue with unknown key",
        Call::new("POST", "/generate-token").header("x-api-key", "nope"),
    ));

    for (name, call) in cases {
        let reply = world.call(call).await;
        assert_eq!(reply.status, 401, "{name}: {reply:?}");
    }
    // The valid token still works: the refusals were about the attacks.
    assert_eq!(
        active_key_status(&world, "client-a", &valid, &user).await,
        200
    );
}

#[tokio::test]
async fn source_ip_attacks_are_forbidden() {
    let world = ApiWorld::new("source-ip").await;
    let user = world.users[0].clone();
    let token = world.token_for("client-a").await;
    let call = |ip: &str| world.active_key_call("client-a", &token, &user).from_ip(ip);

    // X-Forwarded-For claiming an allowed address changes nothing.
    let spoofed = call("192.0.2.10").header("X-Forwarded-For", "127.0.0.1");
    assert_eq!(world.call(spoofed).await.status, 403);
    assert_eq!(world.call(call("192.0.2.10")).await.status, 403);
    // IPv4-mapped IPv6 is its IPv4 address.
    assert_eq!(world.call(call("::ffff:127.0.0.1")).await.status, 200);
    assert_eq!(world.call(call("::ffff:192.0.2.10")).await.status, 403);
    // IPv6 inside and outside the allowed /64.
    assert_eq!(world.call(call("2001:db8:1:2:abcd::7")).await.status, 200);
    assert_eq!(world.call(call("2001:db8:1:3::7")).await.status, 403);
    // Token issue from a denied address.
    let issue = Call::new("POST", "/generate-token")
        .header("x-api-key", &world.client("client-a").api_key)
        .from_ip("192.0.2.10");
    assert_eq!(world.call(issue).await.status, 403);
    // A client with its own CIDRs: the global list alone is not enough (refused like an
    // unknown key, see api_hardening.rs).
    let narrow = Call::new("POST", "/generate-token")
        .header("x-api-key", &world.client("client-narrow").api_key);
    assert_eq!(world.call(narrow.clone()).await.status, 401);
    assert_eq!(world.call(narrow.from_ip("10.1.7.7")).await.status, 200);
    // Garbage in place of an address.
    assert_eq!(world.call(call("not-an-ip")).await.status, 403);
}

#[tokio::test]
async fn username_attacks_are_refused_without_enumeration() {
    let world = ApiWorld::new("usernames").await;
    let token = world.token_for("client-a").await;
    let other_clients_user = world.users[1].clone();
    let status = |call: Call| async { world.call(call).await };

    // Another client's user, and a user that does not exist: the same 403.
    let theirs = status(world.active_key_call("client-a", &token, &other_clients_user)).await;
    let nobody = status(world.active_key_call("client-a", &token, "nobody-at-all")).await;
    assert_eq!((theirs.status, nobody.status), (403, 403));
    assert_eq!(theirs.body, nobody.body);

    let key = world.client("client-a").api_key.clone();
    let base = || {
        Call::new("GET", "/active-key")
            .header("x-api-key", &key)
            .header("Authorization", &format!("Bearer {token}"))
    };
    for (name, call) in [
        ("missing", base()),
        ("empty", base().query("username", "")),
        (
            "duplicated",
            base()
                .query("username", &world.users[0])
                .query("username", &world.users[0]),
        ),
        ("path traversal", base().query("username", "../iam/alice")),
        (
            "JSON metacharacters",
            base().query("username", "alice\",\"x\":\""),
        ),
        ("encoded slash", base().query("username", "alice%2F..")),
        ("too long", base().query("username", &"a".repeat(65))),
    ] {
        let reply = world.call(call).await;
        assert_eq!(reply.status, 400, "{name}: {reply:?}");
        assert_eq!(reply.body["error"], "invalid_request", "{name}");
    }
    // Unknown routes are not served.
    let unknown = Call::new("DELETE", "/active-key").header("x-api-key", &key);
    assert_eq!(world.call(unknown).await.status, 403);
}

#[tokio::test]
async fn signing_key_rotation_keeps_previous_tokens_until_the_key_after_that() {
    let world = ApiWorld::new("signing").await;
    let user = world.users[0].clone();
    let old_token = world.token_for("client-a").await;
    world.rotate(&world.signing_secret).await;
    let new_token = world.token_for("client-a").await;
    assert_ne!(
        jsonwebtoken::decode_header(&old_token).unwrap().kid,
        jsonwebtoken::decode_header(&new_token).unwrap().kid,
        "tokens are signed with the new key"
    );
    assert_eq!(
        active_key_status(&world, "client-a", &old_token, &user).await,
        200,
        "previous key still accepted"
    );
    assert_eq!(
        active_key_status(&world, "client-a", &new_token, &user).await,
        200
    );
    world.rotate(&world.signing_secret).await;
    assert_eq!(
        active_key_status(&world, "client-a", &old_token, &user).await,
        401,
        "two keys back is refused"
    );
    assert_eq!(
        active_key_status(&world, "client-a", &new_token, &user).await,
        200
    );
    let published: Value = serde_json::from_str(
        &world
            .ssm
            .get_parameter()
            .name(&world.public_keys_parameter)
            .send()
            .await
            .unwrap()
            .parameter
            .unwrap()
            .value
            .unwrap(),
    )
    .unwrap();
    assert_eq!(published["keys"].as_array().map(Vec::len), Some(2));
    assert!(!published.to_string().contains("PrivateKey"));
}

/// `keyrot clients rotate-key`'s overlap, through the authorizer: the secret holds the new
/// key and the previous one with the end of its grace. Both are accepted during the grace,
/// only the new one after it; an end of grace that does not parse refuses the previous key.
#[tokio::test]
async fn a_rotated_api_key_overlaps_with_the_previous_one_until_its_grace_ends() {
    let world = ApiWorld::new("rotate-key").await;
    let old_key = world.client("client-a").api_key.clone();
    let new_key = "NewKeyOfClientA0123456789abcdefghijklmnopq".to_owned();
    let valid_until = |seconds_from_now: u64| {
        let at = SystemTime::now() + std::time::Duration::from_secs(seconds_from_now);
        aws_smithy_types::DateTime::from(at)
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .expect("rfc 3339")
    };
    let put = |until: String| {
        let value = json!({"ClientId": "client-a", "ApiKey": new_key, "PreviousApiKey": old_key, "PreviousApiKeyValidUntil": until});
        let secrets = world.secrets.clone();
        let id = format!("{}client-a", world.client_secret_prefix);
        async move {
            secrets
                .put_secret_value()
                .secret_id(id)
                .secret_string(value.to_string())
                .send()
                .await
                .expect("put client key");
        }
    };
    let token_with = |key: String| Call::new("POST", "/generate-token").header("x-api-key", &key);
    put(valid_until(3)).await;
    // A fresh authorizer instance, as after the registry cache expired.
    let authorizer = world.authorizer_with_cache(std::time::Duration::ZERO);
    let during_old = world
        .call_through(&authorizer, token_with(old_key.clone()))
        .await;
    let during_new = world
        .call_through(&authorizer, token_with(new_key.clone()))
        .await;
    assert_eq!(
        (during_old.status, during_new.status),
        (200, 200),
        "{during_old:?} {during_new:?}"
    );
    // A token issued with the old key is for client-a, and reads client-a's user.
    let token = during_old.body["token"].as_str().expect("token").to_owned();
    let read = world
        .call_through(
            &authorizer,
            Call::new("GET", "/active-key")
                .header("x-api-key", &new_key)
                .header("Authorization", &format!("Bearer {token}"))
                .query("username", &world.client("client-a").users[0]),
        )
        .await;
    assert_eq!(read.status, 200, "{read:?}");
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let after_old = world
        .call_through(&authorizer, token_with(old_key.clone()))
        .await;
    let after_new = world
        .call_through(&authorizer, token_with(new_key.clone()))
        .await;
    assert_eq!(
        (after_old.status, after_new.status),
        (401, 200),
        "{after_old:?} {after_new:?}"
    );
    // A garbled end of grace fails closed: the previous key is refused at once.
    put("tomorrow".into()).await;
    let garbled = world
        .call_through(&authorizer, token_with(old_key.clone()))
        .await;
    assert_eq!(garbled.status, 401, "{garbled:?}");
}
