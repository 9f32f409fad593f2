//! The `kmsync` command line: clap definitions and wiring only (`anyhow` is allowed here and
//! nowhere else in the crate).

pub mod rules;

use clap::{Parser, Subcommand};

/// kmsync: keeps Kubernetes Secrets in step with Alibaba Cloud KMS Secrets Manager.
#[derive(Debug, Parser)]
#[command(name = "kmsync", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Develop, test and inspect WebAssembly rule modules.
    Rules(rules::RulesArgs),
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Rules(args) => rules::run(args).await,
    }
}
