//! The ticket store: the one database that voice, SMS and staff share.
//!
//! SQLite (the built-in default, one file, WAL) or PostgreSQL (chosen by a
//! `postgres://` URL), through sqlx's `Any` driver so that every query is
//! written once. Times are stored as milliseconds since the Unix epoch.
//!
//! Writes are transactions. On SQLite they all go through one writer task
//! that commits whatever has queued up as one durable transaction (group
//! commit), each write inside its own savepoint so that one failure does not
//! undo its neighbours; nobody hears "done" before the commit. On PostgreSQL
//! the frequent writes (ticket creations, call records, texts that open
//! tickets) are group-committed the same way by a few writer tasks, and
//! every other write is its own transaction on the pool; background jobs
//! claim rows with `FOR UPDATE SKIP LOCKED` so several gateways can share
//! it.

mod calls;
mod customers;
mod indicators;
mod instances;
mod observer;
mod outbound;
mod outbox;
mod recordings;
mod rows;
mod sessions;
mod sla_job;
mod sms;
mod sms_limits;
mod surveys;
mod tickets;
mod tokens;
mod transfer;
mod writer;

pub use calls::{
    is_contained, CallDirection, CallRecord, CallTransfer, MenuStep, StoredCall,
    CONTAINED_DISPOSITIONS, REJECTED, TRANSFERRED,
};
pub use customers::{parse_customer_csv, Customer, CustomerImportError, NewCustomer, Product};
pub use indicators::{
    CallIndicators, HourCount, Indicators, KeyCount, NodeCount, ScoreCount, SlaCompliance,
    StageMean, SurveyIndicators, TicketIndicators, TransferCount, MAX_RANGE_DAYS,
};
pub use instances::{InstanceBeat, InstanceRow, LiveCallRow};
pub use observer::{StoreObserver, Unobserved};
pub use outbound::{
    AttemptRecord, ClaimedCall, NewOutboundCall, OutboundCall, OutboundState, StoredAttempt,
};
pub use outbox::{
    ClaimedNotification, DeliveryReference, DeliveryReport, DeliveryStatus, Notification,
    OutboxSummary,
};
pub use recordings::{NewRecording, RecordingKind, StoredRecording};
pub use sessions::ConsoleSession;
pub use sla_job::Breach;
pub use sms::{
    AnswerFacts, CancelFacts, InboundSms, SmsFacts, SmsOutcome, SmsRequest, StoredSms, TicketFacts,
};
pub use sms_limits::{SharedTake, SMS_LIMIT_CONNECTIONS};
pub use surveys::{Survey, SURVEY_SCORES};
pub use tickets::{Deadlines, NewTicket, Ticket, TicketEvent, TicketQuery};
pub use tokens::ApiToken;
pub use transfer::{NewTransferContext, TransferContext};

use super::lifecycle::TransitionError;
use super::number::TicketNumberError;
use super::sla::SlaPolicy;
use crate::outbound::schedule::CampaignRules;
use crate::tickets::model::TicketType;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Executor};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Once};
use std::time::Duration;
use thiserror::Error;
use writer::Writer;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a SQLite connection waits for a lock before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;
/// The most writes one commit carries.
const MAX_BATCH: usize = 512;
/// PostgreSQL writer tasks unless configured (docs/design.md: measured).
pub const DEFAULT_WRITERS: usize = 1;

/// What can go wrong in the store.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    InvalidNumber(#[from] TicketNumberError),
    #[error("no ticket {0}")]
    TicketNotFound(String),
    #[error("{0}")]
    Transition(#[from] TransitionError),
    /// Somebody else changed the ticket since the caller read it.
    #[error("ticket {number} was changed by someone else (version {expected} expected, it is now {actual}); reload and try again")]
    Conflict {
        number: String,
        expected: i64,
        actual: i64,
    },
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("the database holds a value this version does not understand: {0}")]
    Corrupt(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("{0}")]
    Import(#[from] CustomerImportError),
    /// A customer that tickets refer to cannot be deleted.
    #[error("customer {id} has {tickets} ticket(s) and cannot be deleted")]
    CustomerHasTickets { id: i64, tickets: i64 },
}

/// Which database the store is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where "now" comes from: the wall clock, or a test's.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Options for opening a store.
pub struct StoreOptions {
    pub sla: Arc<SlaPolicy>,
    pub clock: Clock,
    /// Connections for reads (SQLite), or for reads and the writes that
    /// are not batched (PostgreSQL).
    pub max_connections: u32,
    /// Writer tasks, each with its own connection, that group-commit the
    /// batched writes on PostgreSQL (SQLite always has one).
    pub writers: usize,
    /// `[outbound.confirm]` when enabled: resolving a fault ticket queues
    /// a confirmation call (in the calling window) instead of the
    /// "is it restored?" text, which becomes the call's fallback.
    pub confirm_calls: Option<CampaignRules>,
    /// `[outbound.survey]` when enabled: closing a ticket of these types
    /// queues a satisfaction survey call.
    pub survey_calls: Option<(CampaignRules, Vec<TicketType>)>,
    /// `[outbound.callback]` when enabled: a dialplan's `callback_request`
    /// queues a call; otherwise it records nothing.
    pub callback_calls: Option<CampaignRules>,
    /// Told of the store's work (`observer`): in the server, the metrics
    /// exporter's; [`Unobserved`] unless set.
    pub observer: Arc<dyn StoreObserver>,
}

impl StoreOptions {
    pub fn new(sla: Arc<SlaPolicy>) -> StoreOptions {
        StoreOptions {
            sla,
            clock: Arc::new(Utc::now),
            max_connections: 16,
            writers: DEFAULT_WRITERS,
            confirm_calls: None,
            survey_calls: None,
            callback_calls: None,
            observer: Arc::new(Unobserved),
        }
    }
}

/// The shared ticket store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    pool: AnyPool,
    writer: Writer,
    /// PostgreSQL: the SMS rate limits' own connections, whose commits do
    /// not wait for the disk (`sms_limits`).
    limits: Option<sms_limits::SharedLimits>,
    sla: Arc<SlaPolicy>,
    clock: Clock,
    confirm_calls: Option<CampaignRules>,
    survey_calls: Option<(CampaignRules, Vec<TicketType>)>,
    callback_calls: Option<CampaignRules>,
    observer: Arc<dyn StoreObserver>,
}

impl Store {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`). A SQLite file
    /// and its directory are created when missing. Does not migrate.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = backend_of(url)?;
        let (pool, connect) = match backend {
            Backend::Sqlite => {
                let url = sqlite_url(url)?;
                let connect = AnyConnectOptions::from_str(&url)?;
                let pool = AnyPoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .after_connect(|conn, _| Box::pin(async move { sqlite_pragmas(conn).await }))
                    .connect_with(connect.clone())
                    .await?;
                (pool, connect)
            }
            Backend::Postgres => {
                let connect = AnyConnectOptions::from_str(url)?;
                let pool = AnyPoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(connect.clone())
                    .await?;
                (pool, connect)
            }
        };
        let limits = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(sms_limits::SharedLimits::start(url).await?),
        };
        let writer = Writer::start(connect, backend, options.writers, MAX_BATCH).await?;
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                pool,
                writer,
                limits,
                sla: options.sla,
                clock: options.clock,
                confirm_calls: options.confirm_calls,
                survey_calls: options.survey_calls,
                callback_calls: options.callback_calls,
                observer: options.observer,
            }),
        })
    }

    /// Brings the schema up to date. Safe to run on every start and from
    /// several gateways at once (sqlx takes a lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.inner.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.inner.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    pub fn sla(&self) -> &SlaPolicy {
        &self.inner.sla
    }

    /// The store's current time.
    pub fn now(&self) -> DateTime<Utc> {
        (self.inner.clock)()
    }

    /// Whether the database answers (for readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.inner.pool).await?;
        Ok(())
    }

    /// Finishes queued writes and closes every connection.
    pub async fn close(&self) {
        self.inner.writer.close().await;
        self.inner.pool.close().await;
        if let Some(limits) = &self.inner.limits {
            limits.close().await;
        }
    }

    /// The pool for reads.
    fn reader(&self) -> &AnyPool {
        &self.inner.pool
    }

    fn observer(&self) -> &dyn StoreObserver {
        self.inner.observer.as_ref()
    }

    /// Runs `op` in a transaction and returns its result once committed: on
    /// SQLite in a savepoint of the writer's next batch, on PostgreSQL in a
    /// transaction of its own on the pool (PostgreSQL runs them side by
    /// side, and a batch could not run `op` again after a deadlock).
    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut AnyConnection,
            )
                -> futures_core::future::BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        self.write_timed("other", op).await
    }

    /// `write`, its latency recorded as a database write of `kind`.
    async fn write_timed<T, F>(&self, kind: &'static str, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut AnyConnection,
            )
                -> futures_core::future::BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let started = std::time::Instant::now();
        let result = match self.inner.backend {
            Backend::Sqlite => self.inner.writer.submit(op).await,
            Backend::Postgres => {
                let mut transaction = self.inner.pool.begin().await?;
                let value = op(&mut transaction).await?;
                transaction.commit().await?;
                Ok(value)
            }
        };
        self.observer().db_write(kind, started.elapsed());
        result
    }
}

fn backend_of(url: &str) -> Result<Backend, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(StoreError::Invalid {
            field: "database url",
            reason: format!(
                "{:?} must start with sqlite: or postgres://",
                crate::redact::url(url)
            ),
        })
    }
}

/// Adds `mode=rwc` (create the file) and creates the file's directory.
fn sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::Invalid {
            field: "database url",
            reason: "SQLite needs a file path (an in-memory database would lose every ticket)"
                .into(),
        });
    }
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Invalid {
            field: "database url",
            reason: format!("cannot create directory {}: {e}", dir.display()),
        })?;
    }
    Ok(if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// WAL (readers never block the writer), full fsync on commit (a ticket
/// the API confirmed survives power loss), a busy timeout, and foreign keys.
async fn sqlite_pragmas(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    conn.execute(
        format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON;"
        )
        .as_str(),
    )
    .await?;
    Ok(())
}

/// `sql` for `conn`'s database: on SQLite, numbered parameters that appear
/// in order (`$1, $2, …`, each once, as the multi-row statements write
/// them) become anonymous `?`, bound by position just the same. sqlx binds
/// a numbered SQLite parameter by asking for its name, which SQLite finds
/// by scanning the statement's list of names, so binding a statement of n
/// numbered parameters takes n² steps: 7 % of the gateway's CPU when
/// texts opened 5,000 tickets a second. Anonymous ones have no name to
/// look up. Any other SQL is left as it is.
/// "$first, $first+1, …" for `count` parameters.
fn parameters(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn bind_in_order(conn: &AnyConnection, sql: String) -> String {
    if conn.backend_name() != "SQLite" {
        return sql;
    }
    let mut anonymous = String::with_capacity(sql.len());
    let mut next = 1_usize;
    let mut rest = sql.as_str();
    while let Some(at) = rest.find('$') {
        let digits = rest[at + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if rest[at + 1..at + 1 + digits].parse::<usize>() != Ok(next) {
            return sql;
        }
        anonymous.push_str(&rest[..at]);
        anonymous.push('?');
        next += 1;
        rest = &rest[at + 1 + digits..];
    }
    anonymous.push_str(rest);
    anonymous
}

/// Milliseconds since the epoch, as stored.
fn to_millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(millis: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {millis}")))
}

fn parse_code<T: FromStr>(value: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::ConnectOptions;

    #[test]
    fn parameters_continue_the_numbering() {
        assert_eq!(parameters(3, 2), "$3, $4");
        assert_eq!(parameters(1, 1), "$1");
    }

    #[tokio::test]
    async fn parameters_in_order_become_anonymous_on_sqlite_only() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_url(&format!("sqlite://{}/x.db", dir.path().display())).unwrap();
        let mut conn = AnyConnectOptions::from_str(&url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let sql = |text: &str| bind_in_order(&conn, text.to_string());
        assert_eq!(sql("VALUES ($1, $2), ($3, $4)"), "VALUES (?, ?), (?, ?)");
        assert_eq!(sql("SELECT $2, $1"), "SELECT $2, $1");
        assert_eq!(sql("SELECT $1, $1"), "SELECT $1, $1");
        assert_eq!(sql("SELECT 1"), "SELECT 1");
        let (a, b): (i64, String) = sqlx::query_as(&sql("SELECT $1, $2"))
            .bind(7_i64)
            .bind("x")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!((a, b.as_str()), (7, "x"));
    }

    #[test]
    fn urls_choose_the_backend() {
        assert_eq!(backend_of("sqlite://x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(
            backend_of("postgres://localhost/test").ok(),
            Some(Backend::Postgres)
        );
        assert!(backend_of("mysql://x").is_err());
    }

    #[test]
    fn sqlite_urls_get_create_mode_and_memory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/x.db", dir.path().display());
        assert_eq!(sqlite_url(&url).unwrap(), format!("{url}?mode=rwc"));
        assert!(dir.path().join("sub").is_dir());
        assert!(sqlite_url("sqlite::memory:").is_err());
    }
}
