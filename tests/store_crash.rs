//! Crash safety: a process creating tickets from 32 tasks is killed with
//! SIGKILL mid-burst. After reopening, every ticket whose creation the store
//! confirmed exists with its `created` event, and no ticket exists without
//! one. Runs on SQLite, and on PostgreSQL when `DATABASE_URL` is set.
//!
//! The test runs itself as the child: with `HOTLINE_CRASH_CHILD` set to a
//! database URL, the `burst` test below creates tickets until it is killed,
//! printing each confirmed number.

mod support;

use hotline::tickets::model::{Actor, Channel, TicketType};
use hotline::tickets::sla::SlaPolicy;
use hotline::tickets::store::{NewTicket, Store, StoreOptions};
use sqlx::Connection;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::database::{Backend, ScratchDatabase};

const CHILD_ENV: &str = "HOTLINE_CRASH_CHILD";
const WRITERS: usize = 32;
/// Confirmations to wait for before the kill, per round.
const KILL_AFTER: usize = 400;
const ROUNDS: usize = 3;

async fn open(url: &str) -> Store {
    let store = Store::open(url, StoreOptions::new(Arc::new(SlaPolicy::builtin())))
        .await
        .expect("store opens");
    store.migrate().await.expect("migrations run");
    store
}

/// The child's work; a no-op when run as an ordinary test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = open(&url).await;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let phone = format!("139{writer:02}{i:06}");
                    let new = NewTicket::new(
                        TicketType::FaultReport,
                        "bandwidth",
                        &phone,
                        "专线中断 crash test",
                        Channel::Api,
                        Actor::customer(&phone),
                    );
                    let ticket = store.create_ticket(new).await.expect("created");
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "confirmed {}", ticket.number);
                    let _ = out.flush();
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

/// Runs the child until it has confirmed `KILL_AFTER` tickets, kills it
/// with SIGKILL, and returns every number it confirmed.
fn burst_and_kill(url: &str) -> HashSet<String> {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["burst", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("child starts");
    let stdout = child.stdout.take().expect("piped");
    let mut confirmed = HashSet::new();
    let started = Instant::now();
    let mut lines = BufReader::new(stdout).lines();
    while confirmed.len() < KILL_AFTER && started.elapsed() < Duration::from_secs(60) {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(number) = line.strip_prefix("confirmed ") {
                    confirmed.insert(number.to_string());
                }
            }
            _ => break,
        }
    }
    child.kill().expect("SIGKILL");
    // Numbers already written to the pipe were confirmed before the kill.
    for line in lines.map_while(Result::ok) {
        if let Some(number) = line.strip_prefix("confirmed ") {
            confirmed.insert(number.to_string());
        }
    }
    let _ = child.wait();
    assert!(
        confirmed.len() >= KILL_AFTER,
        "the child confirmed only {} tickets",
        confirmed.len()
    );
    confirmed
}

async fn check_after_crash(url: &str, confirmed: &HashSet<String>) {
    let store = open(url).await;
    for number in confirmed {
        let ticket = store
            .ticket(number)
            .await
            .expect("readable")
            .unwrap_or_else(|| panic!("confirmed ticket {number} is gone"));
        let events = store.events(ticket.id).await.expect("events");
        assert_eq!(events.first().map(|e| e.kind.as_str()), Some("created"));
    }
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let orphans: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tickets t WHERE NOT EXISTS \
         (SELECT 1 FROM ticket_events e WHERE e.ticket_id = t.id AND e.kind = 'created')",
    )
    .fetch_one(&mut conn)
    .await
    .expect("count");
    assert_eq!(orphans, 0, "tickets without their first event");
    store.close().await;
}

async fn crash_rounds(url: &str) {
    let mut total = 0;
    for _ in 0..ROUNDS {
        let confirmed = burst_and_kill(url);
        total += confirmed.len();
        check_after_crash(url, &confirmed).await;
    }
    eprintln!("{total} confirmed tickets survived {ROUNDS} kills");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_loses_nothing_confirmed_when_killed() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/crash.db", dir.path().display());
    crash_rounds(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_loses_nothing_confirmed_when_killed() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let Some(database) = ScratchDatabase::create(Backend::Postgres, "crash").await else {
        return;
    };
    crash_rounds(&database.url).await;
    database.remove().await;
}
