//! Runs the fake kube-apiserver for manual use:
//! `cargo run -p kmsync-tests --bin fake-apiserver -- --crd-dir charts/kmsync/crds --kubeconfig-out /tmp/kc`
//! then `kubectl --kubeconfig /tmp/kc get ...`. Stops on Ctrl-C.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use kmsync_tests::apiserver::{Config, FakeApiServer};

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "A fake kube-apiserver on 127.0.0.1 for tests and manual experiments")]
struct Args {
    /// Directory (or file) of CustomResourceDefinition YAML to load; repeatable.
    #[arg(long = "crd-dir")]
    crd_dirs: Vec<PathBuf>,
    /// Write a kubeconfig for the server here.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Port on 127.0.0.1 (0: ephemeral).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Kubernetes version reported by /version.
    #[arg(long, default_value = "v1.33.0")]
    kube_version: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let mut config = Config {
        port: args.port,
        ..Config::default()
    }
    .kube_version(args.kube_version);
    for d in args.crd_dirs {
        config = config.crds_from(d);
    }
    let handle = FakeApiServer::start(config)
        .await
        .context("starting the fake apiserver")?;
    if let Some(path) = &args.kubeconfig_out {
        handle
            .write_kubeconfig(path)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("kubeconfig written to {}", path.display());
    }
    println!("{}", handle.url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    handle.shutdown().await;
    Ok(())
}
