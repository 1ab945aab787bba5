//! The `hotline` command line: `serve` runs the gateway; `check-config`
//! prints the effective configuration or every problem in it.

use anyhow::Context;
use clap::{Parser, Subcommand};
use hotline::config::Config;
use hotline::server::Server;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hotline",
    version,
    about = "IVR and SMS ticket intake gateway for a customer-service hotline"
)]
struct Cli {
    /// Configuration file (default: ./hotline.toml if it exists). Every
    /// setting can also come from HOTLINE_<SECTION>_<KEY> variables.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (SIP on UDP and TCP port 5060 by default).
    Serve,
    /// Validate the configuration and print the effective settings as TOML.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("hotline: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve => serve(config),
        Command::CheckConfig => check_config(&config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hotline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(config: &Config) -> anyhow::Result<()> {
    let text = toml::to_string_pretty(config).context("cannot print the configuration")?;
    print!("{text}");
    Ok(())
}

fn serve(config: Config) -> anyhow::Result<()> {
    hotline::logging::init(&config.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::start(config).await?;
        let stopper = server.stopper();
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            tracing::info!("stop signal received");
            let _ = stopper.send(true);
        });
        server.wait().await;
        Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
