//! The `hotline` command line: `serve` runs the gateway; `check-config`
//! prints the effective configuration or every problem in it; `migrate`,
//! `ticket …`, `customers import`, `token …` and `report indicators`
//! administer and report on the ticket store.

use anyhow::Context;
use clap::{Parser, Subcommand};
use hotline::admin;
use hotline::config::Config;
use hotline::server::Server;
use hotline::tickets::lifecycle::Action;
use hotline::tickets::model::StaffRole;
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
    Serve {
        /// Do not bring the database schema up to date first.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Validate the configuration and print the effective settings as TOML.
    CheckConfig,
    /// Create or update the database schema.
    Migrate,
    /// Work tickets from the command line.
    Ticket {
        #[command(subcommand)]
        command: TicketCommand,
    },
    /// Manage customers.
    Customers {
        #[command(subcommand)]
        command: CustomersCommand,
    },
    /// Manage staff API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Check or simulate dialplans.
    Dialplan {
        #[command(subcommand)]
        command: DialplanCommand,
    },
    /// Reports from the ticket store.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Try the SMS side of a running gateway.
    Sms {
        #[command(subcommand)]
        command: SmsCommand,
    },
}

#[derive(Subcommand)]
enum SmsCommand {
    /// Post one text to the running gateway's SMS webhook as the provider
    /// would, signed with the configured secret, and print the reply.
    ///
    /// Example: HOTLINE_SMS_GENERIC_SECRET=try-it hotline sms test --from 13800138000 "报障 专线中断"
    Test(hotline::sms::webhook_client::TestText),
}

#[derive(Subcommand)]
enum ReportCommand {
    /// The centre's monitoring indicators over [from, to): calls, IVR
    /// containment, abandonment per menu node, transfers, tickets, SLA
    /// compliance, mean time per stage, survey scores.
    ///
    /// Example: hotline report indicators --from 2026-11-30 --to 2026-12-01 --format csv
    Indicators {
        /// Start, RFC 3339 or a date (midnight in the SLA calendar's time
        /// zone; default: 24 hours before --to).
        #[arg(long, value_parser = admin::parse_time)]
        from: Option<admin::CliTime>,
        /// End (exclusive), RFC 3339 or a date (midnight in the SLA
        /// calendar's time zone; default: now).
        #[arg(long, value_parser = admin::parse_time)]
        to: Option<admin::CliTime>,
        #[arg(long, value_enum, default_value_t = admin::ReportFormat::Json)]
        format: admin::ReportFormat,
    },
}

#[derive(Subcommand)]
enum DialplanCommand {
    /// Check every dialplan in the directory (default: ivr.dialplans_dir)
    /// against each other and the prompts; prints every problem.
    Check { dir: Option<PathBuf> },
    /// Run a dialplan without SIP, against a scratch ticket store, and print
    /// what the caller hears, in order, and the outcome. The call keeps time
    /// (prompt lengths, 0.25 s per key, timeouts) and ends at
    /// calls.max_duration_secs as a live call would.
    ///
    /// Example: hotline dialplan simulate dialplans/10000.toml --keys "9,13800138000#,1"
    /// --caller anonymous --asserted 13900139000
    Simulate {
        file: PathBuf,
        /// Key groups, comma-separated; each is pressed when the plan next
        /// waits for the caller. With none left, the caller stays silent.
        #[arg(long, default_value = "")]
        keys: String,
        /// The dialled number (default: the plan's first entry).
        #[arg(long)]
        dialled: Option<String>,
        /// The caller's From user part: a number, or e.g. `anonymous`,
        /// `sipp` or an extension `8001`, whose number is then unknown.
        #[arg(long, default_value = "13800138000")]
        caller: String,
        /// The number a trusted P-Asserted-Identity gives the call.
        #[arg(long)]
        asserted: Option<String>,
        /// How transfers to agents fail in the simulation: "unavailable"
        /// (nothing could be tried) or "busy" (the agents did not answer).
        #[arg(long, default_value = "unavailable", value_parser = ["unavailable", "busy"])]
        transfers: String,
    },
}

#[derive(Subcommand)]
enum TicketCommand {
    /// List tickets, newest first.
    ///
    /// Example: hotline ticket list --open --level group
    List(admin::ListFilter),
    /// Show a ticket with its deadlines and history.
    Show { number: String },
    /// Create a ticket.
    ///
    /// Example: hotline ticket create --type fault_report --category bandwidth
    /// --phone 13800138000 --description "专线中断"
    Create(admin::CreateArgs),
    /// Apply a lifecycle action: dispatch, accept, start, resolve, confirm,
    /// close, reopen or cancel.
    Transition {
        number: String,
        #[arg(value_parser = admin::parse_code::<Action>)]
        action: Action,
        /// Staff login recorded as the actor.
        #[arg(long, default_value = "cli")]
        by: String,
        /// Refuse if the ticket is no longer at this version.
        #[arg(long)]
        version: Option<i64>,
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token for the staff API and print it (shown only this once).
    ///
    /// Example: hotline token create --name li.na --role agent
    Create {
        /// Who holds it; recorded as the staff actor of what it does.
        #[arg(long)]
        name: String,
        /// agent (work tickets), supervisor (also create and hand out
        /// tickets, edit customers) or admin (also delete customers).
        #[arg(long, value_parser = admin::parse_code::<StaffRole>)]
        role: StaffRole,
    },
    /// List the tokens (names, roles, dates; never the tokens).
    List,
    /// Revoke a token at once.
    Revoke { id: i64 },
}

#[derive(Subcommand)]
enum CustomersCommand {
    /// Import customers from CSV (name,level,language,phones,products).
    /// Every row is checked first; if any is bad, nothing is imported.
    Import { file: PathBuf },
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
        Command::Serve { no_migrate } => {
            let mut config = config;
            config.database.migrate_on_start &= !no_migrate;
            serve(config)
        }
        Command::CheckConfig => check_config(&config),
        Command::Migrate => run_admin(migrate(config)),
        Command::Ticket { command } => run_admin(ticket(config, command)),
        Command::Customers {
            command: CustomersCommand::Import { file },
        } => run_admin(import_customers(config, file)),
        Command::Token { command } => run_admin(token(config, command)),
        Command::Report {
            command: ReportCommand::Indicators { from, to, format },
        } => run_admin(report_indicators(config, from, to, format)),
        Command::Sms {
            command: SmsCommand::Test(text),
        } => run_admin(async move { Ok(hotline::sms::webhook_client::send(&config, text).await?) }),
        Command::Dialplan {
            command: DialplanCommand::Check { dir },
        } => run_admin(async move {
            let dir = dir.unwrap_or_else(|| config.ivr.dialplans_dir.clone());
            admin::check_dialplans(&config, &dir)
        }),
        Command::Dialplan {
            command:
                DialplanCommand::Simulate {
                    file,
                    keys,
                    dialled,
                    caller,
                    asserted,
                    transfers,
                },
        } => run_admin(admin::simulate_dialplan(
            config,
            file,
            admin::SimulatedCall {
                keys,
                dialled,
                caller,
                asserted,
                busy_agents: transfers == "busy",
            },
        )),
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
    let shown = config.redacted();
    let text = toml::to_string_pretty(&shown).context("cannot print the configuration")?;
    print_out(&text)?;
    // The limit `serve` would run with here (it raises the soft limit too).
    let limit = hotline::resources::raise_open_file_limit();
    let demand = hotline::resources::Demand::of(config);
    hotline::resources::plan(limit.soft, limit.hard, demand)?;
    print_out(&format!(
        "# file descriptors: {} needed, the limit here is {}\n",
        demand.total(),
        limit.soft
    ))?;
    // The TLS files as `serve` would load them (reading the key needs the
    // service user's rights, so this runs only when TLS is configured).
    let tls = config.sip.tls_settings();
    if !config.sip.tls.is_empty() || tls != Default::default() {
        let loaded = hotline::sip::tls::TlsContext::load(tls)?;
        print_out(&format!("# {}\n", loaded.summary()))?;
    }
    Ok(())
}

/// Prints `text` on stdout; a reader that went away (`hotline ticket list |
/// head`) is not an error.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot print"),
    }
}

/// Runs an administration command on a small runtime and prints its text.
fn run_admin(
    command: impl std::future::Future<Output = anyhow::Result<String>>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let text = runtime.block_on(command)?;
    print_out(&text)
}

async fn migrate(config: Config) -> anyhow::Result<String> {
    let store = admin::open_store(&config).await?;
    store.migrate().await?;
    store.close().await;
    Ok(format!(
        "database {} is up to date\n",
        hotline::redact::url(&config.database.url)
    ))
}

async fn ticket(config: Config, command: TicketCommand) -> anyhow::Result<String> {
    let store = admin::open_store(&config).await?;
    let text = match command {
        TicketCommand::List(filter) => admin::list(&store, filter).await,
        TicketCommand::Show { number } => admin::show(&store, &number).await,
        TicketCommand::Create(args) => admin::create(&store, args).await,
        TicketCommand::Transition {
            number,
            action,
            by,
            version,
            note,
        } => admin::transition(&store, &number, action, by, version, note).await,
    };
    store.close().await;
    Ok(text?)
}

async fn token(config: Config, command: TokenCommand) -> anyhow::Result<String> {
    let store = admin::open_store(&config).await?;
    let text = match command {
        TokenCommand::Create { name, role } => admin::token_create(&store, &name, role).await,
        TokenCommand::List => admin::token_list(&store).await,
        TokenCommand::Revoke { id } => admin::token_revoke(&store, id).await,
    };
    store.close().await;
    Ok(text?)
}

async fn report_indicators(
    config: Config,
    from: Option<admin::CliTime>,
    to: Option<admin::CliTime>,
    format: admin::ReportFormat,
) -> anyhow::Result<String> {
    let store = admin::open_store(&config).await?;
    let text = admin::indicators(&store, from, to, format).await;
    store.close().await;
    text
}

async fn import_customers(config: Config, file: PathBuf) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let store = admin::open_store(&config).await?;
    let result = store.import_customers(&text).await;
    store.close().await;
    let count = result.map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok(format!(
        "imported {count} customer(s) from {}\n",
        file.display()
    ))
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
        let reloader = server.reloader();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                return;
            };
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading dialplans, prompts and TLS files");
                if let Err(e) = reloader.reload().await {
                    tracing::error!("reload refused, keeping what runs: {e:#}");
                }
                // On its own: a bad certificate does not hold back a good
                // dialplan, nor the other way round.
                if let Err(e) = reloader.reload_tls().await {
                    tracing::error!("TLS reload refused, keeping the certificate in use: {e:#}");
                }
            }
        });
        tokio::spawn(change_log_level_on_signals());
        server.wait().await;
        Ok(())
    })
}

/// SIGUSR1 turns debug logging on, SIGUSR2 back to the configured level.
async fn change_log_level_on_signals() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut usr1), Ok(mut usr2)) = (
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
    ) else {
        return;
    };
    loop {
        let changed = tokio::select! {
            Some(()) = usr1.recv() => hotline::logging::set_level("debug"),
            Some(()) = usr2.recv() => hotline::logging::reset_level(),
            else => return,
        };
        if let Err(e) = changed {
            tracing::error!("{e}");
        }
    }
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
