//! The PostgreSQL write path under what several gateways sharing one
//! database do to it: two stores on one scratch schema taking the same
//! texts at once, one bad item in a batch, batches aborted by deadlocks.
//! PostgreSQL only; without `DATABASE_URL` each test says so and passes.

#[macro_use]
mod support;

use hotline::tickets::model::{Actor, Channel, TicketType};
use hotline::tickets::sla::SlaPolicy;
use hotline::tickets::store::{
    InboundSms, NewTicket, SmsFacts, SmsOutcome, SmsRequest, Store, StoreOptions,
};
use sqlx::{Connection, Executor};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::database::{Backend, ScratchDatabase};

/// A migrated scratch schema and `stores` stores on it, as if each were
/// its own gateway.
async fn gateways(stores: usize) -> Option<(ScratchDatabase, Vec<Store>)> {
    let database = ScratchDatabase::create(Backend::Postgres, "shared").await?;
    let mut opened = Vec::new();
    for _ in 0..stores {
        let store = Store::open(
            &database.url,
            StoreOptions::new(Arc::new(SlaPolicy::builtin())),
        )
        .await
        .expect("store opens");
        store.migrate().await.expect("migrations run");
        opened.push(store);
    }
    Some((database, opened))
}

async fn finish(database: ScratchDatabase, stores: Vec<Store>) {
    for store in stores {
        store.close().await;
    }
    database.remove().await;
}

async fn execute(url: &str, sql: &str) {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    conn.execute(sql).await.unwrap();
}

async fn count(url: &str, sql: &str) -> i64 {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
}

fn report(phone: &str, description: &str) -> NewTicket {
    NewTicket::new(
        TicketType::FaultReport,
        "bandwidth",
        phone,
        description,
        Channel::Sms,
        Actor::customer(phone),
    )
}

/// Delivers the text `id` from `phone` asking for a new ticket.
async fn text(store: &Store, id: &str, phone: &str) -> SmsOutcome {
    let sms = InboundSms {
        provider: "generic".into(),
        provider_message_id: id.into(),
        from: format!("+86{phone}"),
        from_spellings: vec![format!("+86{phone}"), phone.into()],
        to: "10000".into(),
        body: format!("报障 宽带断了 {id}"),
    };
    let request = SmsRequest::Create(Box::new(report(phone, &format!("宽带断了 {id}"))));
    store
        .receive_sms(sms, request, |facts| match facts {
            SmsFacts::Created(ticket) => format!("ticket {}", ticket.number),
            other => format!("{other:?}"),
        })
        .await
        .expect("the text is received")
}

/// Raises `code` from a trigger on new tickets: for the first `times`
/// rows (counted by a sequence, which a rollback does not undo), or for
/// rows whose description is `poison` when `times` is zero.
async fn fail_ticket_inserts(url: &str, code: &str, times: i64) {
    let condition = if times == 0 {
        "NEW.description = 'poison'".to_string()
    } else {
        format!("nextval('injected_failures') <= {times}")
    };
    execute(
        url,
        &format!(
            "CREATE SEQUENCE injected_failures; \
             CREATE FUNCTION inject_failure() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF {condition} THEN \
             RAISE EXCEPTION 'injected failure' USING ERRCODE = '{code}'; \
             END IF; RETURN NEW; END $$; \
             CREATE TRIGGER inject_failure BEFORE INSERT ON tickets \
             FOR EACH ROW EXECUTE FUNCTION inject_failure();"
        ),
    )
    .await;
}

/// Creates `count` tickets at once (so that they share batches).
async fn create_many(store: &Store, count: usize, poison: Option<usize>) -> Vec<bool> {
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let store = store.clone();
            let description = if Some(i) == poison {
                "poison".to_string()
            } else {
                format!("宽带断了 {i}")
            };
            let new = report(&format!("1390000{i:04}"), &description);
            tokio::spawn(async move { store.create_ticket(new).await.is_ok() })
        })
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        created.push(task.await.unwrap());
    }
    created
}

/// An SMS provider retrying each message to two gateways at the same
/// moment: every text is recorded once, opens one ticket, and both
/// deliveries get the same reply, one of them as the retry. The two
/// gateways see the messages in opposite orders, so their batches take
/// the same keys the other way round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_taking_the_same_texts_record_each_once() {
    const TEXTS: usize = 120;
    let Some((database, stores)) = gateways(2).await else {
        return;
    };
    let mut tasks = Vec::new();
    for (which, store) in stores.iter().enumerate() {
        for k in 0..TEXTS {
            let i = if which == 0 { k } else { TEXTS - 1 - k };
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let outcome = text(&store, &format!("dup-{i}"), &format!("1380000{i:04}")).await;
                (i, outcome)
            }));
        }
    }
    let mut outcomes: Vec<Vec<SmsOutcome>> = vec![Vec::new(); TEXTS];
    for task in tasks {
        let (i, outcome) = task.await.unwrap();
        outcomes[i].push(outcome);
    }
    for (i, pair) in outcomes.iter().enumerate() {
        assert_eq!(pair.len(), 2, "text {i}");
        assert_eq!(pair[0].reply, pair[1].reply, "text {i}: the same answer");
        let firsts = pair.iter().filter(|o| !o.repeated).count();
        assert_eq!(firsts, 1, "text {i}: one delivery is the first: {pair:?}");
    }
    let url = &database.url;
    let inbound = count(
        url,
        "SELECT count(*) FROM sms_messages WHERE direction = 'in'",
    )
    .await;
    let replies = count(
        url,
        "SELECT count(*) FROM sms_messages WHERE direction = 'out'",
    )
    .await;
    let tickets = count(url, "SELECT count(*) FROM tickets").await;
    assert_eq!(
        (inbound, replies, tickets),
        (TEXTS as i64, TEXTS as i64, TEXTS as i64)
    );
    finish(database, stores).await;
}

/// A ticket PostgreSQL refuses fails alone: the rest of its batch (the
/// failed statement aborted the transaction until the savepoint was rolled
/// back) commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_ticket_fails_alone_in_its_batch() {
    let Some((database, stores)) = gateways(1).await else {
        return;
    };
    fail_ticket_inserts(&database.url, "23514", 0).await;
    let created = create_many(&stores[0], 50, Some(17)).await;
    let failed: Vec<usize> = (0..created.len()).filter(|&i| !created[i]).collect();
    assert_eq!(failed, [17]);
    assert_eq!(
        count(&database.url, "SELECT count(*) FROM tickets").await,
        49
    );
    assert_eq!(
        count(&database.url, "SELECT count(*) FROM ticket_events").await,
        49
    );
    finish(database, stores).await;
}

/// Batches aborted by a deadlock (twice) run again: nobody hears of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_aborted_by_a_deadlock_runs_again() {
    let Some((database, stores)) = gateways(1).await else {
        return;
    };
    fail_ticket_inserts(&database.url, "40P01", 2).await;
    let created = create_many(&stores[0], 40, None).await;
    assert!(created.iter().all(|&ok| ok), "{created:?}");
    assert_eq!(
        count(&database.url, "SELECT count(*) FROM tickets").await,
        40
    );
    finish(database, stores).await;
}

/// A batch that keeps failing with serialization failures is tried a
/// bounded number of times, then its callers hear the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_keeps_failing_gives_up() {
    let Some((database, stores)) = gateways(1).await else {
        return;
    };
    fail_ticket_inserts(&database.url, "40001", 1_000_000).await;
    let started = Instant::now();
    let created = create_many(&stores[0], 5, None).await;
    assert!(created.iter().all(|&ok| !ok), "{created:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let attempts = count(
        &database.url,
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM injected_failures",
    )
    .await;
    // Five attempts per batch, one batch or a few.
    assert!((5..=25).contains(&attempts), "{attempts} attempts");
    assert_eq!(
        count(&database.url, "SELECT count(*) FROM tickets").await,
        0
    );
    finish(database, stores).await;
}

/// A writer whose connection PostgreSQL dropped (a restart, a failover)
/// opens a new one: the batch that met the dead connection fails, later
/// ones commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_reconnects_after_its_connection_is_dropped() {
    let Some((database, stores)) = gateways(1).await else {
        return;
    };
    let name = format!("hotline_reconnect_{}", std::process::id());
    let url = format!("{}&application_name={name}", database.url);
    let store = Store::open(&url, StoreOptions::new(Arc::new(SlaPolicy::builtin())))
        .await
        .expect("store opens");
    assert!(create_many(&store, 1, None).await[0]);
    let dropped = count(
        &database.url,
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = '{name}'"
        ),
    )
    .await;
    assert!(dropped >= 2, "{dropped} connections dropped");
    let mut created = false;
    for _ in 0..3 {
        created = create_many(&store, 1, None).await[0];
        if created {
            break;
        }
    }
    assert!(
        created,
        "no ticket created after the connection was dropped"
    );
    store.close().await;
    finish(database, stores).await;
}
