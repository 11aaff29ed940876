//! `keyrot-fleet-bench`: the fleet at scale on moto. Onboards N users through the registry
//! and the real reconciler, then runs one full interval with every user rotating (the rotation
//! engine stands in for Secrets Manager's Lambda invocations, several at once). Every AWS call
//! of the fleet and of the rotations goes through a counting proxy; the result is JSON with
//! the time taken, calls by service and operation, and the peak calls per second of each
//! budgeted group. Time may be compressed: the interval, the reconcile period and the run
//! length are divided by `--compression` and the budgets multiplied by it, which keeps every
//! ratio (calls per slot, budget per rotation) as deployed.

use clap::Parser;
use keyrot::fleet::Budgets;
use keyrot_integration_tests::fleet_world::FleetWorld;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    name = "keyrot-fleet-bench",
    about = "Measures the fleet's onboarding and one interval of rotations on moto."
)]
struct Args {
    #[arg(long, default_value = ".")]
    root: std::path::PathBuf,
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// The deployed interval, in seconds.
    #[arg(long, default_value_t = 600)]
    interval_seconds: u64,
    /// Time compression factor (1: real time).
    #[arg(long, default_value_t = 4)]
    compression: u64,
    #[arg(long, default_value_t = 10)]
    iam_writes_per_second: u64,
    #[arg(long, default_value_t = 20)]
    secrets_writes_per_second: u64,
    #[arg(long, default_value_t = 50)]
    rotate_secret_per_second: u64,
    /// Rotations Lambda runs at once at most (the rotation function's reserved concurrency).
    #[arg(long, default_value_t = 86)]
    concurrency: usize,
    #[arg(long, default_value = "target/keyrot/bench/fleet.json")]
    out: std::path::PathBuf,
}

const IAM_WRITES: &[&str] = &[
    "CreateAccessKey",
    "DeleteAccessKey",
    "TagUser",
    "UntagUser",
    "UpdateAccessKey",
];
const SECRETS_WRITES: &[&str] = &["PutSecretValue", "UpdateSecret", "UpdateSecretVersionStage"];
const SECRETS_OPS: &[&str] = &[
    "ListSecrets",
    "CreateSecret",
    "DescribeSecret",
    "GetSecretValue",
    "PutSecretValue",
    "UpdateSecretVersionStage",
    "RotateSecret",
    "PutResourcePolicy",
    "TagResource",
    "DeleteSecret",
    "RestoreSecret",
    "ListSecretVersionIds",
    "UpdateSecret",
];

fn service(operation: &str) -> &'static str {
    if SECRETS_OPS.contains(&operation) {
        "secretsmanager"
    } else if operation == "GetCallerIdentity" {
        "sts"
    } else if operation.contains("Parameter") {
        "ssm"
    } else {
        "iam"
    }
}

/// Calls by operation, and the peak per one-second window of each budgeted group.
fn summarise(calls: &[(Instant, String)], from: Instant, to: Instant) -> serde_json::Value {
    let window: Vec<&(Instant, String)> = calls
        .iter()
        .filter(|(at, _)| *at >= from && *at <= to)
        .collect();
    let mut by_operation: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_service: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, operation) in &window {
        *by_operation.entry(operation.clone()).or_default() += 1;
        *by_service.entry(service(operation)).or_default() += 1;
    }
    let peak = |selected: &dyn Fn(&str) -> bool| {
        let times: Vec<Instant> = window
            .iter()
            .filter(|(_, operation)| selected(operation))
            .map(|(at, _)| *at)
            .collect();
        // The most calls in any one-second window (sliding).
        let mut best = 0usize;
        let mut start = 0usize;
        for end in 0..times.len() {
            while times[end].duration_since(times[start]) >= Duration::from_secs(1) {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    };
    json!({
        "seconds": to.duration_since(from).as_secs_f64(),
        "calls_by_service": by_service,
        "calls_by_operation": by_operation,
        "peak_per_second": {
            "iam_writes": peak(&|op| IAM_WRITES.contains(&op)),
            "secrets_writes": peak(&|op| SECRETS_WRITES.contains(&op)),
            "rotate_secret": peak(&|op| op == "RotateSecret"),
            "iam_all": peak(&|op| service(op) == "iam"),
            "secretsmanager_all": peak(&|op| service(op) == "secretsmanager"),
        },
    })
}

async fn start_moto(root: &std::path::Path) -> (tokio::process::Child, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    let port = listener.local_addr().expect("port").port();
    drop(listener);
    let child = tokio::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tools/moto_server.py"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("moto");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, format!("http://127.0.0.1:{port}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let (_moto, url) = start_moto(&args.root).await;
    // The harness's worlds find moto through this variable.
    std::env::set_var("KEYROT_TEST_MOTO_URL", &url);
    let k = args.compression.max(1);
    let interval = Duration::from_secs(args.interval_seconds / k);
    let period = Duration::from_secs((60 / k).max(1));
    let mut world = FleetWorld::new("bench", interval, Duration::from_secs(5)).await;
    world.fleet.config.budgets = Budgets {
        iam_writes_per_second: args.iam_writes_per_second * k,
        secrets_writes_per_second: args.secrets_writes_per_second * k,
        rotate_secret_per_second: args.rotate_secret_per_second * k,
    };
    // As deployed: a 50 s run every minute, scaled.
    world.fleet.config.run_time = period.mul_f64(50.0 / 60.0).max(Duration::from_secs(1));

    eprintln!(
        "creating {} IAM users and their registry entries",
        args.users
    );
    let users = world.create_users(args.users).await;
    for user in &users {
        world.enrol(user).await;
    }
    world.proxy.forget_calls();

    // Rotations run as Lambda runs them, beside the schedule: every pending rotation found
    // (polled every 100 ms) is run, up to the reserved concurrency at once.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let peak_concurrent = std::sync::atomic::AtomicUsize::new(0);
    let completer = async {
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let (_, peak) = world.complete_rotations_concurrently(args.concurrency).await;
            peak_concurrent.fetch_max(peak, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let run_time = world.fleet.config.run_time;
    let driver = async {
        // Onboarding: the schedule's runs until every user has its secret and first key.
        let onboarding_started = Instant::now();
        let mut runs = 0;
        loop {
            let run_started = Instant::now();
            let report = world.fleet.reconcile().await.expect("reconcile");
            runs += 1;
            eprintln!(
                "onboarding run {runs}: {} onboarded, {} pending, {} managed",
                report.onboarded, report.onboarding_pending, report.managed
            );
            if report.onboarding_pending == 0 && report.managed as usize == users.len() {
                break;
            }
            let elapsed = run_started.elapsed();
            if elapsed < period {
                tokio::time::sleep(period - elapsed).await;
            }
        }
        let onboarding_ended = Instant::now();
        // Let the last first rotations finish before counting versions.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let versions_before = world.version_counts().await;

        // Exactly one interval of scheduled runs: the last run's horizon ends with it.
        let interval_started = Instant::now();
        let mut dispatched = 0;
        let mut refused = 0;
        let mut errors = 0;
        loop {
            let elapsed = interval_started.elapsed();
            if elapsed >= interval {
                break;
            }
            let run_started = Instant::now();
            let report = world
                .fleet
                .reconcile_for(run_time.min(interval - elapsed))
                .await
                .expect("reconcile");
            dispatched += report.rotations_started;
            refused += report.rotations_refused;
            errors += report.errors;
            let left = interval.saturating_sub(interval_started.elapsed());
            let wait = period.saturating_sub(run_started.elapsed()).min(left);
            tokio::time::sleep(wait).await;
        }
        let interval_ended = Instant::now();
        // Rotations still running when the interval ended finish now.
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        (
            runs,
            onboarding_started,
            onboarding_ended,
            versions_before,
            interval_started,
            interval_ended,
            dispatched,
            refused,
            errors,
        )
    };
    let (
        (
            runs,
            onboarding_started,
            onboarding_ended,
            versions_before,
            interval_started,
            interval_ended,
            dispatched,
            refused,
            errors,
        ),
        (),
    ) = tokio::join!(driver, completer);
    world.complete_rotations_concurrently(args.concurrency).await;
    let peak_concurrent = peak_concurrent.load(std::sync::atomic::Ordering::SeqCst);
    let versions_after = world.version_counts().await;
    let mut per_user: BTreeMap<usize, u64> = BTreeMap::new();
    for (secret, after) in &versions_after {
        let rotations = after - versions_before.get(secret).copied().unwrap_or(0);
        *per_user.entry(rotations).or_default() += 1;
    }
    let calls = world.proxy.timed_calls();
    let rotations = versions_after.len() as u64;
    let budgets = world.fleet.config.budgets;
    let result = json!({
        "users": args.users,
        "compression": k,
        "interval_seconds_compressed": interval.as_secs(),
        "budgets_compressed": {
            "iam_writes_per_second": budgets.iam_writes_per_second,
            "secrets_writes_per_second": budgets.secrets_writes_per_second,
            "rotate_secret_per_second": budgets.rotate_secret_per_second,
        },
        "onboarding": {
            "runs": runs,
            "summary": summarise(&calls, onboarding_started, onboarding_ended),
        },
        "interval": {
            "rotations_started": dispatched,
            "rotations_refused": refused,
            "fleet_errors": errors,
            "users_by_rotations_in_the_interval": per_user,
            "peak_concurrent_rotations": peak_concurrent,
            "summary": summarise(&calls, interval_started, interval_ended),
            "calls_per_rotation": calls
                .iter()
                .filter(|(at, _)| *at >= interval_started && *at <= interval_ended)
                .fold(BTreeMap::<String, u64>::new(), |mut acc, (_, op)| {
                    *acc.entry(op.clone()).or_default() += 1;
                    acc
                })
                .into_iter()
                .map(|(op, n)| (op, n as f64 / rotations.max(1) as f64))
                .collect::<BTreeMap<String, f64>>(),
        },
    });
    let text = serde_json::to_string_pretty(&result).unwrap_or_default();
    if let Some(parent) = args.out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(&args.out, &text);
    println!("{text}");
}
