//! `songpei-server`: the district sync server's command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use songpei_server::Config;
use songpei_server::config::FileConfig;

/// songpei's district server.
#[derive(Debug, Parser)]
#[command(name = "songpei-server", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve phones' syncs on the embedded SQLite store.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long, env = "SONGPEI_LISTEN")]
        listen: Option<SocketAddr>,
        /// Folder of the database and keys [default: ./songpei-data].
        #[arg(long, env = "SONGPEI_DATA")]
        data: Option<PathBuf>,
        /// Documents kept loaded in memory [default: 256].
        #[arg(long, env = "SONGPEI_CACHE_DOCS")]
        cache_docs: Option<usize>,
        /// A TOML file with any of these settings (and `[limits]`).
        #[arg(long, env = "SONGPEI_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SONGPEI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let Command::Serve {
        listen,
        data,
        cache_docs,
        config,
    } = cli.command;
    let file = match config.as_deref().map(FileConfig::read).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let config = Config::resolve(listen, data, cache_docs, file);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", config.listen);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(%addr, data = %config.data.display(), "songpei-server listening");
        // One line on stdout that scripts and tests wait for.
        println!("listening on http://{addr}");
        match songpei_server::run(config, listener, shutdown_signal()).await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
