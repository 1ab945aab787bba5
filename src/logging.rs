//! Log output: human-readable lines by default, JSON on request, filtered
//! by the configured level (`RUST_LOG` wins when set). Calls log inside a
//! `call` span carrying the SIP Call-ID, and webhooks inside an `sms_webhook`
//! span carrying the message id, so every line of a call or a text has it.
//!
//! The filter can be changed while the gateway runs ([`set_level`]): from
//! the admin API (`PUT /api/v1/admin/log-level`) or by signal (SIGUSR1
//! turns on `debug`, SIGUSR2 goes back to the level the gateway started
//! with).

use crate::config::LogConfig;
use std::io::IsTerminal;
use std::sync::OnceLock;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Changes the filter of the installed subscriber.
type Reloader = Box<dyn Fn(EnvFilter) -> Result<(), reload::Error> + Send + Sync>;

/// The running logger's filter: how to change it, what it is now, and
/// what it was at start.
struct Level {
    reload: Reloader,
    current: std::sync::Mutex<String>,
    initial: String,
}

static LEVEL: OnceLock<Level> = OnceLock::new();

/// What can go wrong changing the log level.
#[derive(Debug, thiserror::Error)]
pub enum LevelError {
    #[error("{0:?} is not a log filter: {1}")]
    Invalid(String, String),
    #[error("the logger was not installed by this process")]
    NotInstalled,
    #[error("cannot change the log filter: {0}")]
    Reload(String),
}

/// Installs the global subscriber. Errors if one is already installed.
pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    let initial = match std::env::var("RUST_LOG") {
        Ok(value) if !value.is_empty() => value,
        _ => config.level.clone(),
    };
    let (filter, handle) = reload::Layer::new(EnvFilter::try_new(&initial)?);
    remember(Box::new(move |f| handle.reload(f)), &initial);
    // Colours only on a terminal: log files and journald get plain text.
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(filter);
    let result = if config.format == "json" {
        registry
            .with(output.json().flatten_event(true).with_current_span(true))
            .try_init()
    } else {
        registry.with(output).try_init()
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

fn remember(reload: Reloader, initial: &str) {
    let _ = LEVEL.set(Level {
        reload,
        current: std::sync::Mutex::new(initial.to_string()),
        initial: initial.to_string(),
    });
}

/// Replaces the log filter (a tracing filter such as `debug` or
/// `info,hotline::sip=debug`) until the next change; returns it.
pub fn set_level(filter: &str) -> Result<String, LevelError> {
    let parsed = EnvFilter::try_new(filter)
        .map_err(|e| LevelError::Invalid(filter.to_string(), e.to_string()))?;
    let level = LEVEL.get().ok_or(LevelError::NotInstalled)?;
    (level.reload)(parsed).map_err(|e| LevelError::Reload(e.to_string()))?;
    let mut current = level
        .current
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *current = filter.to_string();
    tracing::warn!(filter, "log level changed");
    Ok(filter.to_string())
}

/// The filter in force now, if this process installed the logger.
pub fn current_level() -> Option<String> {
    LEVEL.get().map(|level| {
        level
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    })
}

/// Goes back to the filter the gateway started with.
pub fn reset_level() -> Result<String, LevelError> {
    let initial = LEVEL.get().ok_or(LevelError::NotInstalled)?.initial.clone();
    set_level(&initial)
}
