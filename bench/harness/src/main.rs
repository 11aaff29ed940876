//! `keyrot-bench`: measures the release functions (and a Python baseline) and writes the
//! results as JSON and as the generated part of BENCHMARKS.md. Run through `scripts/bench`,
//! which builds everything and runs criterion first.

mod api_bench;
mod decision;
mod invoke_api;
mod measure;
mod registry_bench;
mod report;
mod rotation;
mod runtime_api;
mod sizes;
mod stack;
mod stats;
mod subject;

use clap::Parser;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "keyrot-bench",
    about = "Benchmarks keyrot's functions against a Python baseline."
)]
pub struct Args {
    /// The keyrot checkout.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Release binaries: the three functions and hello-fn.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// The `keyrot-local` binary (the local stack).
    #[arg(long, default_value = "target/debug/keyrot-local")]
    pub local_stack: PathBuf,
    /// Python of the baseline's venv (awslambdaric, boto3, PyJWT).
    #[arg(long, default_value = ".venv-bench/bin/python")]
    pub python: PathBuf,
    /// Criterion's output directory.
    #[arg(long, default_value = "target/criterion")]
    pub criterion_dir: PathBuf,
    /// Where results and logs go.
    #[arg(long, default_value = "target/keyrot/bench")]
    pub out_dir: PathBuf,
    /// Cold starts per function.
    #[arg(long, default_value_t = 20)]
    pub cold_runs: usize,
    /// Measured warm invocations per path.
    #[arg(long, default_value_t = 1000)]
    pub warm_runs: usize,
    /// Unmeasured invocations before them.
    #[arg(long, default_value_t = 50)]
    pub warmup: usize,
    /// Warm rotations of the resident rotation-fn.
    #[arg(long, default_value_t = 20)]
    pub rotations: usize,
    /// Managed users rotated in one round on the local stack (0 skips it).
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Results of an earlier run (results.json) to show side by side with this one.
    #[arg(long)]
    pub before: Option<PathBuf>,
    /// Replace the generated section of this file (BENCHMARKS.md) with the results.
    #[arg(long)]
    pub update: Option<PathBuf>,
    /// Measure only the authorizer with a registry of this many clients (cold starts, calls
    /// per refresh), on the moto at KEYROT_TEST_MOTO_URL; `--update` then rewrites the
    /// registry section.
    #[arg(long)]
    pub registry_clients: Option<usize>,
    /// An earlier authorizer-fn binary to measure beside `--bin-dir`'s, as "before".
    #[arg(long, requires = "registry_clients")]
    pub registry_baseline: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("setup: {0}")]
    Setup(String),
    #[error("invoking {0}: {1}")]
    Invoke(String, String),
    #[error("{what} answered unexpectedly: {answer}")]
    Unexpected { what: String, answer: String },
}

impl BenchError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

impl Args {
    /// Paths made absolute (relative ones are relative to the checkout): function processes
    /// run in other directories.
    fn absolute(mut self) -> Self {
        let current = std::env::current_dir().unwrap_or_default();
        self.root = current.join(&self.root);
        for path in [
            &mut self.bin_dir,
            &mut self.local_stack,
            &mut self.python,
            &mut self.criterion_dir,
            &mut self.out_dir,
        ] {
            *path = self.root.join(&*path);
        }
        for path in [&mut self.before, &mut self.registry_baseline]
            .into_iter()
            .flatten()
        {
            *path = self.root.join(&*path);
        }
        self
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse().absolute();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keyrot-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn step(what: &str) {
    eprintln!("[keyrot-bench] {what}");
}

async fn run(args: &Args) -> Result<(), BenchError> {
    if let Some(clients) = args.registry_clients {
        return run_registry(args, clients).await;
    }
    // Read first: a wrong path should fail before minutes of measuring, not after.
    let before: Option<serde_json::Value> = match &args.before {
        None => None,
        Some(path) => Some(
            std::fs::read_to_string(path)
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok())
                .ok_or_else(|| {
                    BenchError::Setup(format!("{} is not a results.json", path.display()))
                })?,
        ),
    };
    std::fs::create_dir_all(&args.out_dir)
        .map_err(|e| BenchError::io(format!("creating {}", args.out_dir.display()), e))?;
    let mut results = json!({
        "machine": report::machine(),
        "settings": {
            "cold_runs": args.cold_runs, "warm_runs": args.warm_runs, "warmup": args.warmup,
            "rotations": args.rotations, "users": args.users,
        },
    });
    step("sizes");
    results["sizes"] = sizes::measure(&args.bin_dir, &args.out_dir)?;
    results["decision"] = decision::read(&args.criterion_dir);

    step("starting the local stack with the harness as its Lambda service");
    let stack = stack::BenchStack::start(args).await?;
    let measured = async {
        step("API functions: cold starts, warm paths, memory (Rust and Python)");
        let functions = api_bench::measure(&stack, args).await?;
        step("rotation: warm, cold, calls per rotation");
        let rotation = rotation::measure(&stack, args).await?;
        Ok::<_, BenchError>((functions, rotation))
    }
    .await;
    stack.stop().await;
    (results["functions"], results["rotation"]) = measured?;
    if args.users > 0 {
        step(&format!(
            "{} managed users rotated in a row on the local stack",
            args.users
        ));
        results["throughput"] = rotation::throughput(args).await?;
    }

    let json_path = args.out_dir.join("results.json");
    let text = serde_json::to_string_pretty(&results).unwrap_or_default();
    std::fs::write(&json_path, text).map_err(|e| BenchError::io("writing results.json", e))?;
    let mut markdown = report::render(&results);
    if let Some(before) = &before {
        markdown.push_str("\n### Before and after tuning\n\n");
        report::before_after(&mut markdown, before, &results);
    }
    let md_path = args.out_dir.join("results.md");
    std::fs::write(&md_path, &markdown).map_err(|e| BenchError::io("writing results.md", e))?;
    if let Some(path) = &args.update {
        report::splice_into(path, &markdown)?;
    }
    println!("{markdown}");
    step(&format!(
        "results: {} and {}",
        json_path.display(),
        md_path.display()
    ));
    Ok(())
}

/// `--registry-clients N`: the authorizer with N clients, and nothing else.
async fn run_registry(args: &Args, clients: usize) -> Result<(), BenchError> {
    std::fs::create_dir_all(&args.out_dir)
        .map_err(|e| BenchError::io(format!("creating {}", args.out_dir.display()), e))?;
    let mut results = registry_bench::measure(args, clients).await?;
    let machine = report::machine();
    results["machine"] = machine.clone();
    let json_path = args.out_dir.join("registry.json");
    let text = serde_json::to_string_pretty(&results).unwrap_or_default();
    std::fs::write(&json_path, text).map_err(|e| BenchError::io("writing registry.json", e))?;
    let described = format!(
        "{} on {} ({} cores), {}",
        machine["date"].as_str().unwrap_or(""),
        machine["cpu"].as_str().unwrap_or(""),
        machine["cores"],
        machine["rustc"].as_str().unwrap_or("")
    );
    let markdown = registry_bench::render(&results, &described);
    if let Some(path) = &args.update {
        report::splice_between(
            path,
            report::REGISTRY_BEGIN,
            report::REGISTRY_END,
            &markdown,
        )?;
    }
    println!("{markdown}");
    step(&format!("results: {}", json_path.display()));
    Ok(())
}
