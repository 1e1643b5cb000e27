//! `ngm-twin serve [--scenario FILE] [--port N] [--kubeconfig PATH]`: runs the twin for any
//! client. The first line on stdout is the URL served (`http://127.0.0.1:PORT`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ngm_twin::clock::Clock;
use ngm_twin::store::Store;
use ngm_twin::{kubeconfig, seed, server};

#[derive(Parser)]
#[command(name = "ngm-twin", about = "The ngm cluster twin")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the twin's Kubernetes API on 127.0.0.1.
    Serve {
        /// Objects to load (Kubernetes manifests, YAML).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Port to listen on (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Where to write a kubeconfig for kubectl.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
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
    } = Cli::parse().command;
    let store = Store::new(Clock::scaled(1.0));
    if let Some(path) = scenario {
        let text = std::fs::read_to_string(&path)?;
        let n = seed::seed_manifests(&store, &text)?;
        tracing::info!(objects = n, file = %path.display(), "scenario loaded");
    }
    let (url, handle) = server::serve(store, SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("{url}");
    std::io::stdout().flush()?;
    let path = kubeconfig.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("ngm-twin-{}.kubeconfig", handle.addr.port()))
    });
    kubeconfig::write_kubeconfig(&path, &url)?;
    eprintln!("kubeconfig: {}", path.display());
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await?;
    Ok(())
}
