//! `keyrot-credentials`: arguments, then `run`; every error is one line on stderr, which the
//! AWS CLI shows to its user.

use clap::Parser;
use keyrot_credentials::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match keyrot_credentials::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("keyrot-credentials: {error}");
            ExitCode::FAILURE
        }
    }
}
