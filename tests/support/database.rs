//! Scratch databases for the suites that run on both backends: a fresh
//! SQLite file, or a fresh schema on the PostgreSQL server `DATABASE_URL`
//! names (dropped again by `remove`). Without `DATABASE_URL` there is no
//! PostgreSQL database and the caller skips its PostgreSQL half, so plain
//! `cargo test` passes on any machine; `.ci/run` sets it.

pub use hotline::tickets::store::Backend;

/// Declares each named scenario as two tests, `sqlite::NAME` and
/// `postgres::NAME`, each calling the suite's own
/// `run(backend, scenario)`.
#[allow(unused_macros)]
macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::run(crate::support::database::Backend::Sqlite, super::$name).await;
            })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::run(crate::support::database::Backend::Postgres, super::$name).await;
            })+
        }
    };
}
use sqlx::{Connection, Executor};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct ScratchDatabase {
    pub url: String,
    /// The PostgreSQL schema to drop afterwards.
    schema: Option<String>,
}

impl ScratchDatabase {
    /// A database of its own for one test; `prefix` names the suite in
    /// the file or schema name. `None`: PostgreSQL without `DATABASE_URL`.
    pub async fn create(backend: Backend, prefix: &str) -> Option<ScratchDatabase> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "hotline_{prefix}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                Some(ScratchDatabase {
                    url: format!("sqlite://{}", path.display()),
                    schema: None,
                })
            }
            Backend::Postgres => {
                let Ok(base) = std::env::var("DATABASE_URL") else {
                    eprintln!("DATABASE_URL is not set: skipping the PostgreSQL run");
                    return None;
                };
                sqlx::any::install_default_drivers();
                let mut conn = sqlx::AnyConnection::connect(&base)
                    .await
                    .expect("connect to DATABASE_URL");
                conn.execute(
                    format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}").as_str(),
                )
                .await
                .expect("create a scratch schema");
                let separator = if base.contains('?') { '&' } else { '?' };
                Some(ScratchDatabase {
                    url: format!("{base}{separator}options=-c%20search_path%3D{name}"),
                    schema: Some(name),
                })
            }
        }
    }

    /// Drops the PostgreSQL schema (a SQLite file stays in the temp dir).
    pub async fn remove(self) {
        let (Some(schema), Ok(base)) = (self.schema, std::env::var("DATABASE_URL")) else {
            return;
        };
        if let Ok(mut conn) = sqlx::AnyConnection::connect(&base).await {
            let _ = conn
                .execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
                .await;
        }
    }
}

/// A clock a test moves by hand.
pub type ManualClock = std::sync::Arc<std::sync::Mutex<chrono::DateTime<chrono::Utc>>>;

/// A store on `url` whose "now" is `clock`.
pub async fn store_on(url: &str, clock: &ManualClock) -> hotline::tickets::store::Store {
    store_with(url, clock, |_| {}).await
}

/// A store on `url` whose "now" is `clock`, with options `configure` set.
pub async fn store_with(
    url: &str,
    clock: &ManualClock,
    configure: impl FnOnce(&mut hotline::tickets::store::StoreOptions),
) -> hotline::tickets::store::Store {
    use hotline::tickets::store::{Store, StoreOptions};
    let mut options = StoreOptions::new(std::sync::Arc::new(
        hotline::tickets::sla::SlaPolicy::builtin(),
    ));
    let handle = clock.clone();
    options.clock = std::sync::Arc::new(move || *handle.lock().unwrap());
    configure(&mut options);
    Store::open(url, options).await.expect("store opens")
}

/// Runs `scenario` with two stores on one fresh database (two gateways
/// sharing it) and their clock, set to `start`; skipped for PostgreSQL
/// without `DATABASE_URL`.
pub async fn with_two_stores<F, Fut>(
    backend: Backend,
    prefix: &str,
    start: chrono::DateTime<chrono::Utc>,
    scenario: F,
) where
    F: FnOnce(hotline::tickets::store::Store, hotline::tickets::store::Store, ManualClock) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(database) = ScratchDatabase::create(backend, prefix).await else {
        return;
    };
    let clock: ManualClock = std::sync::Arc::new(std::sync::Mutex::new(start));
    let first = store_on(&database.url, &clock).await;
    first.migrate().await.expect("migrations run");
    let second = store_on(&database.url, &clock).await;
    scenario(first.clone(), second.clone(), clock).await;
    first.close().await;
    second.close().await;
    database.remove().await;
}
