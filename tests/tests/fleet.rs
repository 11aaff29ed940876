//! The fleet on moto, through the real mechanism: registry entries (what `keyrot users add`
//! writes), the reconciler's runs as the fleet function makes them, rotations run by the real
//! engine, and the fault proxy between the fleet and AWS.

use keyrot::fleet::MANAGED_USER_TAG;
use keyrot::rotation::{RotationError, RotationRequest, Step};
use keyrot_integration_tests::fault_proxy::Fault;
use keyrot_integration_tests::fleet_world::FleetWorld;
use std::time::{Duration, Instant, SystemTime};

fn unix(time: SystemTime) -> u64 {
    keyrot::time::unix_seconds(time)
}

#[tokio::test]
async fn fifty_registry_users_onboard_then_each_rotates_once_per_interval() {
    let interval = Duration::from_secs(20);
    let world = FleetWorld::new("fifty", interval, Duration::from_secs(1)).await;
    let users = world.create_users(50).await;
    for user in &users {
        world.enrol(user).await;
    }
    // Runs of one second each (the deployed ones have 50): onboarding is paced and spread
    // over as many runs as it takes.
    let mut onboarded = 0;
    let mut last = world.reconcile().await;
    for _ in 0..20 {
        assert_eq!(last.errors, 0, "{last:?}");
        onboarded += last.onboarded;
        // Measured from a run that took all its ticks: none deferred to the next run because
        // the user's other slot was onboarding (one rotation per user at a time).
        if last.onboarding_pending == 0
            && last.slots_through.is_some()
            && last.rotations_refused == 0
        {
            break;
        }
        last = world.reconcile().await;
    }
    // Two slot secrets per user: slot B a run after slot A.
    assert_eq!(onboarded, 100);
    for user in &users {
        assert_eq!(
            world
                .tags(user)
                .await
                .get(MANAGED_USER_TAG)
                .map(String::as_str),
            Some(world.prefix.as_str())
        );
        let current = world.current(user).await.expect("a current value");
        assert!(current.access_key_id.is_some(), "{user} has its first key");
    }
    let after_onboarding = world.version_counts().await;
    assert_eq!(after_onboarding.len(), 100);
    // When each secret's last rotation completed (LastRotatedDate, as on AWS): a tick at or
    // before it is covered by that rotation (the key it made is too young to retire), so the
    // fleet does not start another.
    let mut completed: std::collections::HashMap<String, std::time::SystemTime> =
        Default::default();
    for secret in after_onboarding.keys() {
        let described = world
            .secrets
            .describe_secret()
            .secret_id(secret)
            .send()
            .await
            .expect("describe");
        if let Some(date) = described.last_rotated_date() {
            completed.insert(
                secret.clone(),
                std::time::SystemTime::try_from(*date).expect("a time"),
            );
        }
    }
    let slots_from = unix(last.slots_through.expect("the last run took all its slots"));

    // A little over one interval of runs: each secret rotates exactly at its slots, once
    // per interval, whatever the order in which the secrets were onboarded.
    let started = Instant::now();
    let mut dispatched = 0;
    let mut slots_to = slots_from;
    while started.elapsed() < interval {
        let report = world.reconcile().await;
        assert_eq!(report.errors, 0, "{report:?}");
        dispatched += report.rotations_started;
        slots_to = unix(
            report
                .slots_through
                .expect("every slot of the run was taken"),
        );
    }
    assert!(
        slots_to - slots_from >= interval.as_secs(),
        "the runs covered an interval"
    );
    let after_interval = world.version_counts().await;
    let mut expected_total = 0;
    let mut per_user: std::collections::BTreeMap<&str, u64> = Default::default();
    for (secret, versions) in &after_interval {
        let rotations = (versions - after_onboarding[secret]) as u64;
        let schedule =
            keyrot::key_slots::Schedule::of(&world.prefix, secret, interval).expect("a slot");
        // The slot's ticks inside (slots_from, slots_to], after its last completed rotation.
        let expected = (slots_from + 1..=slots_to)
            .filter(|second| {
                let at = std::time::UNIX_EPOCH + Duration::from_secs(*second);
                schedule.latest_at_or_before(at) == Some(at)
                    && completed.get(secret).is_none_or(|done| at > *done)
            })
            .count() as u64;
        assert_eq!(rotations, expected, "{secret}: rotations at its ticks only");
        let (user, _) =
            keyrot::key_slots::parse_secret_name(&world.prefix, secret).expect("a slot");
        *per_user.entry(user).or_default() += expected;
        expected_total += expected;
    }
    // Each user's slots take turns: at least one new key per user in an interval (for the
    // users whose onboarding rotations had completed before the measured interval began).
    let settled = |user: &str| {
        completed
            .iter()
            .filter(|(secret, _)| {
                keyrot::key_slots::parse_secret_name(&world.prefix, secret)
                    .is_some_and(|(owner, _)| owner == user)
            })
            .all(|(_, done)| *done <= std::time::UNIX_EPOCH + Duration::from_secs(slots_from))
    };
    assert!(
        per_user
            .iter()
            .filter(|(user, _)| settled(user))
            .all(|(_, ticks)| *ticks >= 1),
        "{per_user:?}"
    );
    assert_eq!(dispatched, expected_total);
    for user in &users {
        assert!(world.key_ids(user).await.len() <= 2);
    }
}

#[tokio::test]
async fn offboarding_keeps_promised_keys_then_removes_only_what_keyrot_made() {
    let interval = Duration::from_secs(3);
    let grace = Duration::from_secs(1);
    let world = FleetWorld::new("offboard", interval, grace).await;
    let users = world.create_users(3).await;
    let leaving = &users[0];
    let hand_made = world.add_hand_made_key(leaving).await;
    for user in &users {
        world.enrol(user).await;
    }
    world.reconcile().await;
    let served = world
        .current(leaving)
        .await
        .and_then(|v| v.access_key_id)
        .expect("a key");

    world.unenrol(leaving).await;
    let report = world.reconcile().await;
    // Both slot secrets (slot B's made with slot A's, still keyless).
    assert_eq!(report.offboarding_started, 2, "{report:?}");
    // No longer served: the secret is scheduled for deletion (the API answers 404).
    let read = world
        .secrets
        .get_secret_value()
        .secret_id(world.secret_of(leaving))
        .send()
        .await;
    assert!(read.is_err(), "an offboarded secret cannot be read");
    // Still promised: the key the API handed out keeps working.
    let report = world.reconcile().await;
    assert_eq!((report.offboarding_pending, report.offboarded), (2, 0));
    assert!(world.key_ids(leaving).await.contains(&served));

    // A slot's key may be promised up to three intervals after its last rotation.
    tokio::time::sleep(3 * interval + grace + Duration::from_millis(1500)).await;
    let report = world.reconcile().await;
    assert_eq!(report.offboarded, 2, "{report:?}");
    assert_eq!(world.key_ids(leaving).await, vec![hand_made.clone()]);
    let tags = world.tags(leaving).await;
    assert!(tags.is_empty(), "keyrot's tags are gone: {tags:?}");
    assert!(!world
        .versions_by_secret()
        .await
        .contains_key(&world.secret_of(leaving)));
    // The others are untouched.
    for user in &users[1..] {
        assert!(world.current(user).await.is_some());
    }
}

#[tokio::test]
async fn rotation_refuses_a_user_the_fleet_did_not_enrol() {
    let world = FleetWorld::new("outsider", Duration::from_secs(60), Duration::from_secs(1)).await;
    let outsider = world.create_users(1).await.remove(0);
    // Whoever can write a secret under the prefix, naming a user nobody enrolled.
    let secret = world.secret_of(&outsider);
    world
        .secrets
        .create_secret()
        .name(&secret)
        .secret_string(serde_json::json!({ "UserName": outsider }).to_string())
        .send()
        .await
        .expect("secret");
    let token =
        keyrot_integration_tests::world::start_rotation(&world.secrets, &secret, true).await;
    let engine_error = world
        .run_step(RotationRequest {
            step: Step::Create,
            secret_id: secret.clone(),
            token,
        })
        .await
        .expect_err("refused");
    assert!(
        matches!(engine_error, RotationError::UserNotManaged { .. }),
        "{engine_error}"
    );
    assert!(world.key_ids(&outsider).await.is_empty(), "no key was made");
    // And the fleet never adopts or deletes it: it is not in the registry and not its own.
    let report = world.reconcile_only().await;
    assert_eq!((report.onboarded, report.offboarding_started), (0, 0));
}

/// Onboarding then offboarding one user, with the fleet's n-th call failing after AWS acted
/// (the harshest crash: the change happened, the fleet never heard); the next runs finish.
#[tokio::test]
async fn a_crash_between_any_two_calls_is_finished_by_the_next_run() {
    let interval = Duration::from_secs(1);
    let grace = Duration::from_secs(1);
    // The calls of a clean run, counted at the proxy.
    let clean = FleetWorld::new("crashclean", interval, grace).await;
    let user = clean.create_users(1).await.remove(0);
    clean.enrol(&user).await;
    let before = clean.proxy.calls().len();
    clean.reconcile_only().await;
    let onboarding_calls = clean.proxy.calls().len() - before;
    assert!(onboarding_calls >= 6, "{:?}", clean.proxy.calls());

    for n in 0..onboarding_calls {
        let world = FleetWorld::new(&format!("crash{n}"), interval, grace).await;
        let user = world.create_users(1).await.remove(0);
        world.enrol(&user).await;
        world.proxy.inject_at_call(n, Fault::FailAfterForward);
        let _ = world.fleet.reconcile().await;
        world.proxy.clear_faults();
        world.complete_rotations().await;
        world.reconcile().await;
        world.reconcile().await;
        let current = world.current(&user).await;
        assert!(
            current.and_then(|v| v.access_key_id).is_some(),
            "call {n}: onboarding finished with a key"
        );
        assert_eq!(
            world
                .tags(&user)
                .await
                .get(MANAGED_USER_TAG)
                .map(String::as_str),
            Some(world.prefix.as_str()),
            "call {n}"
        );
        assert!(world.key_ids(&user).await.len() <= 2, "call {n}");

        // Offboarding with a crash at each of its calls too.
        world.unenrol(&user).await;
        let offboard_start = world.proxy.calls().len();
        world.proxy.inject_at_call(n % 4, Fault::FailAfterForward);
        let _ = world.fleet.reconcile().await;
        world.proxy.clear_faults();
        world.reconcile().await;
        // A slot's key may be promised up to three intervals after its last rotation.
        tokio::time::sleep(3 * interval + grace + Duration::from_millis(1200)).await;
        world.reconcile().await;
        world.reconcile().await;
        assert!(world.proxy.calls().len() > offboard_start);
        assert!(
            world.keyrot_keys(&user).await.is_empty(),
            "call {n}: no keyrot key left"
        );
        assert!(
            world.tags(&user).await.is_empty(),
            "call {n}: no keyrot tag left"
        );
        let left = world.versions_by_secret().await;
        assert!(
            !left.contains_key(&world.secret_of(&user))
                && !left.contains_key(&format!("{}/b", world.secret_of(&user))),
            "call {n}: both slot secrets gone"
        );
    }
}

#[tokio::test]
async fn the_stack_teardown_leaves_no_key_keyrot_made() {
    let world = FleetWorld::new("teardown", Duration::from_secs(60), Duration::from_secs(1)).await;
    let users = world.create_users(5).await;
    let hand_made = world.add_hand_made_key(&users[4]).await;
    for user in &users {
        world.enrol(user).await;
    }
    world.reconcile().await;
    // Slot B's first rotation gives the others their second keyrot key.
    for user in &users[..4] {
        keyrot_integration_tests::world::start_rotation(
            &world.secrets,
            &format!("{}/b", world.secret_of(user)),
            true,
        )
        .await;
    }
    world.complete_rotations().await;
    assert_eq!(world.keyrot_keys(&users[0]).await.len(), 2);
    // CloudFormation deleting the stack: the custom resource's Delete event.
    let (response, url) = world.teardown_through_custom_resource().await;
    assert_eq!(response["Status"], "SUCCESS", "{response}");
    assert_eq!(url, keyrot_integration_tests::fleet_world::RESPONSE_URL);
    for user in &users {
        assert!(
            world.keyrot_keys(user).await.is_empty(),
            "{user} keeps no keyrot key"
        );
        assert!(
            world.tags(user).await.is_empty(),
            "{user} keeps no keyrot tag"
        );
    }
    assert_eq!(world.key_ids(&users[4]).await, vec![hand_made]);
    assert!(world.versions_by_secret().await.is_empty());
    assert!(world.registry_entries().await.is_empty());
}

/// ListSecrets "might not reflect changes from the last five minutes": with the fault proxy
/// serving every run the same outdated listing, each slot still rotates once per tick, because
/// the fleet confirms with DescribeSecret before RotateSecret.
#[tokio::test]
async fn a_stale_listing_starts_no_second_rotation() {
    let interval = Duration::from_secs(4);
    let world = FleetWorld::new("stale", interval, Duration::from_secs(1)).await;
    let user = world.create_users(1).await.remove(0);
    world.enrol(&user).await;
    for _ in 0..3 {
        world.reconcile().await;
    }
    world
        .proxy
        .inject("ListSecrets", Fault::ReplayFirst, usize::MAX);
    let rotations = |calls: &[String]| calls.iter().filter(|c| *c == "RotateSecret").count();
    let versions_before = world.version_counts().await;
    let rotations_before = rotations(&world.proxy.calls());
    let from = unix(SystemTime::now());
    let started = Instant::now();
    while started.elapsed() < 3 * interval {
        let report = world.reconcile().await;
        assert_eq!(report.errors, 0, "{report:?}");
    }
    let to = unix(SystemTime::now());
    let versions_after = world.version_counts().await;
    let mut written_total = 0;
    for (secret, after) in &versions_after {
        let written = after - versions_before[secret];
        let schedule =
            keyrot::key_slots::Schedule::of(&world.prefix, secret, interval).expect("a slot");
        let ticks = (from..=to)
            .filter(|second| {
                let at = std::time::UNIX_EPOCH + Duration::from_secs(*second);
                schedule.latest_at_or_before(at) == Some(at)
            })
            .count();
        // Without the confirmation every run after a tick would start it again (4 runs per
        // tick here); with it, one rotation per tick (one more if a tick fell on the edge).
        assert!(
            written <= ticks + 1,
            "{secret}: {written} rotations for {ticks} ticks"
        );
        written_total += written;
    }
    assert!(written_total >= 1, "the ticks still rotate");
    assert_eq!(
        rotations(&world.proxy.calls()) - rotations_before,
        written_total,
        "each RotateSecret made one version"
    );
}

/// Security issue, item 2: anyone who may invoke the fleet function can send it a
/// custom-resource event. Only this stack's own teardown resource, answering to
/// CloudFormation's buckets, while CloudFormation reports the stack being deleted, tears down.
#[tokio::test]
async fn a_teardown_event_that_is_not_cloudformations_for_this_stack_deletes_nothing() {
    use keyrot::fleet::{CloudFormationStacks, FleetError};
    use keyrot_integration_tests::fleet_world::{teardown_event, StackBeingDeleted};
    let world = FleetWorld::new(
        "forged-teardown",
        Duration::from_secs(60),
        Duration::from_secs(1),
    )
    .await;
    let users = world.create_users(2).await;
    for user in &users {
        world.enrol(user).await;
    }
    world.reconcile().await;
    world.complete_rotations().await;
    let keys_before = world.keyrot_keys(&users[0]).await;
    assert_eq!(keys_before.len(), 1);

    let forged = |field: &str, value: &str| {
        let mut event = teardown_event();
        event[field] = serde_json::json!(value);
        event
    };
    for (event, reason) in [
        (
            forged(
                "StackId",
                "arn:aws:cloudformation:us-east-1:123456789012:stack/other/9",
            ),
            "another_stack",
        ),
        (
            forged("LogicalResourceId", "SomethingElse"),
            "another_resource",
        ),
        (
            forged("ResponseURL", "https://collector.attacker.example/report"),
            "response_url_not_cloudformations",
        ),
    ] {
        let (result, sent) = world.custom_resource_event(event, &StackBeingDeleted).await;
        assert!(
            matches!(result, Err(FleetError::NotThisStack(r)) if r == reason),
            "{reason}: {result:?}"
        );
        assert!(sent.is_none(), "{reason}: nothing is sent anywhere");
    }

    // The real event while CloudFormation (moto, through the real adapter) knows no such
    // stack being deleted: answered, nothing torn down. CloudFormation sends Delete on an
    // update that replaces or removes the resource, too.
    let config =
        keyrot_integration_tests::moto::sdk_config(&keyrot_integration_tests::moto::moto_url())
            .await;
    let moto_stacks = CloudFormationStacks::new(aws_sdk_cloudformation::Client::new(&config));
    let (result, sent) = world
        .custom_resource_event(teardown_event(), &moto_stacks)
        .await;
    result.expect("answered");
    let (_, body) = sent.expect("answered to CloudFormation");
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert!(body["Reason"]
        .as_str()
        .unwrap_or("")
        .contains("not being deleted"));

    assert_eq!(world.keyrot_keys(&users[0]).await, keys_before);
    assert_eq!(world.registry_entries().await.len(), 2);
    assert!(!world.versions_by_secret().await.is_empty());
}

/// Security issue, item 4: the stack's word on each managed secret is re-applied, not written
/// once. A reader the stack no longer names (a removed break-glass principal) loses access at
/// the next run, and a rotation configuration someone changed (another function, a short
/// native schedule that adds versions) is put back by the next rotation the fleet starts.
#[tokio::test]
async fn every_run_puts_back_the_stacks_policy_and_every_rotation_its_configuration() {
    let mut world =
        FleetWorld::new("stack-says", Duration::from_secs(4), Duration::from_secs(1)).await;
    let user = world.create_users(1).await.remove(0);
    world.enrol(&user).await;
    for _ in 0..3 {
        world.reconcile().await;
    }
    let policy_of = |secret: String| {
        let secrets = world.secrets.clone();
        async move {
            secrets
                .get_resource_policy()
                .secret_id(secret)
                .send()
                .await
                .expect("policy")
                .resource_policy
                .unwrap_or_default()
        }
    };
    let slot_a = world.secret_of(&user);
    let slot_b = format!("{slot_a}/b");
    let break_glass = "arn:aws:iam::123456789012:role/break-glass";
    assert!(policy_of(slot_a.clone()).await.contains("keyrot-api"));

    // The stack drops nobody and adds a break-glass principal: both slots get it next run.
    world
        .fleet
        .config
        .secret_readers
        .push(break_glass.to_owned());
    let report = world.reconcile().await;
    assert_eq!(report.policies_rewritten, 2, "{report:?}");
    for secret in [&slot_a, &slot_b] {
        assert!(
            policy_of(secret.clone()).await.contains(break_glass),
            "{secret}"
        );
    }
    // And removes it again (compromised): gone from both at the next run, then left alone.
    world.fleet.config.secret_readers.pop();
    assert_eq!(world.reconcile().await.policies_rewritten, 2);
    for secret in [&slot_a, &slot_b] {
        assert!(
            !policy_of(secret.clone()).await.contains(break_glass),
            "{secret}"
        );
    }
    assert_eq!(world.reconcile().await.policies_rewritten, 0);

    // Someone points slot A's rotation at another function with a one-day schedule.
    world
        .secrets
        .rotate_secret()
        .secret_id(&slot_a)
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:123456789012:function:not-keyrot")
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(1)
                .build(),
        )
        .send()
        .await
        .expect("reconfigure");
    world.complete_rotations().await;
    // The fleet's next rotation of slot A puts the stack's configuration back.
    let configured = |secret: String| {
        let secrets = world.secrets.clone();
        async move {
            let described = secrets
                .describe_secret()
                .secret_id(secret)
                .send()
                .await
                .expect("describe");
            (
                described
                    .rotation_lambda_arn()
                    .unwrap_or_default()
                    .to_owned(),
                described
                    .rotation_rules()
                    .and_then(|rules| rules.automatically_after_days()),
            )
        }
    };
    let (function, days) = configured(slot_a.clone()).await;
    assert!(
        function.ends_with(":not-keyrot") && days == Some(1),
        "tampered: {function} {days:?}"
    );
    let started = std::time::Instant::now();
    loop {
        world.reconcile().await;
        let (function, days) = configured(slot_a.clone()).await;
        if function == keyrot_integration_tests::world::ROTATION_LAMBDA_ARN && days == Some(1000) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still {function} every {days:?} days"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Security issue, item 7, through the real IAM adapter: the stack's session-deny policy is on
/// every enrolled user, and off again once keyrot lets the user go.
#[tokio::test]
async fn the_session_deny_policy_is_on_enrolled_users_and_off_after_teardown() {
    let mut world = FleetWorld::new(
        "session-deny",
        Duration::from_secs(60),
        Duration::from_secs(1),
    )
    .await;
    let policy = world
        .iam
        .create_policy()
        .policy_name(format!("{}-session-deny", world.tag))
        .policy_document(
            serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
                "Action": "*", "Resource": "*",
                "Condition": {"Null": {"aws:TokenIssueTime": "false"}}}]})
            .to_string(),
        )
        .send()
        .await
        .expect("policy")
        .policy
        .and_then(|p| p.arn)
        .expect("arn");
    world.fleet.config.session_deny_policy_arn = Some(policy.clone());
    let user = world.create_users(1).await.remove(0);
    world.enrol(&user).await;
    world.reconcile().await;
    let attached = |user: String| {
        let iam = world.iam.clone();
        async move {
            iam.list_attached_user_policies()
                .user_name(user)
                .send()
                .await
                .expect("attached policies")
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_owned))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(attached(user.clone()).await, vec![policy.clone()]);
    let (response, _) = world.teardown_through_custom_resource().await;
    assert_eq!(response["Status"], "SUCCESS", "{response}");
    assert!(attached(user.clone()).await.is_empty());
}

/// IAM is eventually consistent: just after the fleet tags a new user, GetUser and ListUserTags
/// may not show the tag yet (the fault proxy hides it for 3 s), and the rotation function
/// refuses a user without it. The fleet starts the first rotation only once GetUser shows the
/// tag, a run later here, and no step of it fails.
#[tokio::test]
async fn the_first_rotation_waits_until_iam_shows_the_users_tag() {
    use keyrot_integration_tests::fault_proxy::Fault;
    let world = FleetWorld::new("tagdelay", Duration::from_secs(60), Duration::from_secs(1)).await;
    let user = world.create_users(1).await.remove(0);
    let without_tag: &'static str = Box::leak(
        format!(
            "<GetUserResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><GetUserResult><User><Path>/</Path><UserName>{user}</UserName><UserId>AIDAKEYROTFAULT</UserId><Arn>arn:aws:iam::123456789012:user/{user}</Arn><CreateDate>2026-01-01T00:00:00Z</CreateDate></User></GetUserResult><ResponseMetadata><RequestId>keyrot-fault</RequestId></ResponseMetadata></GetUserResponse>"
        )
        .into_boxed_str(),
    );
    let no_tags: &'static str = "<ListUserTagsResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ListUserTagsResult><IsTruncated>false</IsTruncated><Tags/></ListUserTagsResult><ResponseMetadata><RequestId>keyrot-fault</RequestId></ResponseMetadata></ListUserTagsResponse>";
    world.enrol(&user).await;
    // From now on for 3 s, IAM's replicas show the user without keyrot's tag.
    let name = format!("UserName={user}");
    let lag = Duration::from_secs(3);
    let started = std::time::Instant::now();
    world
        .proxy
        .inject_for("GetUser", &name, Fault::Respond { body: without_tag }, lag);
    world
        .proxy
        .inject_for("ListUserTags", &name, Fault::Respond { body: no_tags }, lag);
    let mut first_rotation_run = None;
    let mut run = 0;
    while first_rotation_run.is_none() && started.elapsed() < Duration::from_secs(30) {
        run += 1;
        let report = world.reconcile_only().await;
        assert_eq!(report.errors, 0, "{report:?}");
        if run == 1 {
            assert_eq!(world.proxy.count("TagUser"), 1, "run 1 tags the user");
        }
        // Secrets Manager runs the rotations started; any failed step panics.
        if world.complete_rotations().await > 0 {
            first_rotation_run = Some(run);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let first = first_rotation_run.expect("a first rotation within 30 s");
    assert!(
        first >= 2,
        "the first rotation waited for the tag: run {first}"
    );
    assert!(
        started.elapsed() >= lag,
        "it started only after the tag showed"
    );
    assert_eq!(world.key_ids(&user).await.len(), 1, "the user's first key");
}

/// CloudFormation's Create (and Update) of the teardown resource is answered with the users
/// the deployed budgets rotate in one interval: the stack's UsersPerInterval output.
#[tokio::test]
async fn the_stack_learns_how_many_users_its_budgets_rotate_per_interval() {
    use keyrot_integration_tests::fleet_world::{teardown_event, StackBeingDeleted};
    let world = FleetWorld::new("capacity", Duration::from_secs(600), Duration::from_secs(1)).await;
    let mut event = teardown_event();
    event["RequestType"] = "Create".into();
    let (result, sent) = world.custom_resource_event(event, &StackBeingDeleted).await;
    result.expect("answered");
    let (_, body) = sent.expect("a response");
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    // The world's budgets: 1,000 of each a second, so RotateSecret's binds at 600 s.
    let expected = keyrot::fleet::Budgets {
        iam_writes_per_second: 1000,
        secrets_writes_per_second: 1000,
        rotate_secret_per_second: 1000,
    }
    .users_per_interval(Duration::from_secs(600));
    assert_eq!(
        body["Data"]["UsersPerInterval"],
        expected.to_string(),
        "{body}"
    );
    // Nothing is torn down for a Create, whatever the stack's status says.
    assert_eq!(world.proxy.count("DeleteSecret"), 0);
}
