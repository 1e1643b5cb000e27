//! `ngm-twin serve [--scenario FILE] [--port N] [--kubeconfig PATH] [--moto-url URL] [--speed X]`
//! runs the cluster twin for any client. The first line on stdout is the URL served
//! (`http://127.0.0.1:PORT`); then one `KEY=VALUE` line per environment variable a client
//! needs. It runs until SIGINT or SIGTERM; with `--report PATH` it then writes the run's JSON
//! report there and its summary to stderr.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ngm_twin::scenario::Scenario;
use ngm_twin::seed;
use ngm_twin::twin::{Twin, TwinOptions};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(name = "ngm-twin", about = "The ngm cluster twin")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the twin's Kubernetes and EKS APIs on 127.0.0.1.
    Serve {
        /// A scenario (tests/scenarios/*.yaml), or plain Kubernetes manifests.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Port to listen on (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Where to write a kubeconfig for kubectl.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Use this moto server instead of starting one.
        #[arg(long)]
        moto_url: Option<String>,
        /// Simulated seconds per real second (default: the scenario's `cluster.speed`).
        #[arg(long)]
        speed: Option<f64>,
        /// On exit, write the JSON report of the run (from the moment the URL is printed).
        #[arg(long)]
        report: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let Command::Serve {
        scenario,
        port,
        kubeconfig,
        moto_url,
        speed,
        report,
    } = Cli::parse().command;
    let options = TwinOptions {
        port,
        kubeconfig,
        moto_url,
        speed,
        ..TwinOptions::default()
    };
    let text = scenario.as_ref().map(std::fs::read_to_string).transpose()?;
    // A scenario has a `cluster`; anything else is taken as manifests to load as they are.
    let manifests = text
        .as_deref()
        .filter(|t| !t.lines().any(|l| l.starts_with("cluster:")));
    let parsed = match (&text, manifests) {
        (Some(t), None) => Some(Scenario::parse(t)?),
        _ => None,
    };
    let mut twin = Twin::start(parsed, options).await?;
    if let Some(m) = manifests {
        let n = seed::seed_manifests(twin.store(), m)?;
        tracing::info!(objects = n, "manifests loaded");
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", twin.url())?;
    for (k, v) in twin.env() {
        writeln!(out, "{k}={v}")?;
    }
    out.flush()?;
    drop(out);
    // The run (timed faults, the report's "before") starts once clients can connect.
    twin.begin_run();
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    if let Some(path) = report {
        let run = twin.finish_run().await?;
        run.write_json(&path)?;
        eprintln!("{}", run.summary());
    }
    twin.shutdown().await?;
    Ok(())
}
