//! Outbound call jobs in the store, on SQLite and (with `DATABASE_URL`)
//! PostgreSQL: queued once per key, claimed under a lease, finished with
//! the schedule's decision, every attempt kept; two gateways never claim
//! one job twice.

#[macro_use]
mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use hotline::outbound::schedule::{CampaignRules, Cause, GiveUp, Next, Purpose};
use hotline::tickets::lifecycle::Action;
use hotline::tickets::model::{Actor, Channel, TicketType};
use hotline::tickets::store::{AttemptRecord, NewOutboundCall, NewTicket, OutboundState, Store};
use std::future::Future;
use support::database::{store_with, with_two_stores, Backend, ManualClock, ScratchDatabase};

type Clock = ManualClock;

fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, 2, 0, 0).unwrap()
}

/// Runs `scenario` with two stores on one fresh database ("two gateways").
async fn run<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(Store, Store, Clock) -> Fut,
    Fut: Future<Output = ()>,
{
    with_two_stores(backend, "outbound", start_time(), scenario).await;
}

on_both!(
    a_job_is_queued_once_claimed_retried_and_finished,
    a_lapsed_claim_cannot_finish_the_job,
    a_held_job_goes_back_uncounted_and_claims_keep_to_their_purposes,
);

fn confirm(key: &str, at: DateTime<Utc>) -> NewOutboundCall {
    NewOutboundCall {
        dedup_key: key.to_string(),
        purpose: Purpose::Confirm,
        ticket_id: None,
        number: "13800138000".to_string(),
        earliest_at: at,
    }
}

fn attempt(cause: Cause, status: Option<u16>, at: DateTime<Utc>) -> AttemptRecord {
    AttemptRecord {
        trunk: "trunk-a".to_string(),
        sip_call_id: format!("out-{}", at.timestamp()),
        started_at: at,
        ended_at: at + Duration::seconds(20),
        sip_status: status,
        cause,
        key_pressed: (cause == Cause::Completed).then(|| "1".to_string()),
    }
}

const LEASE: std::time::Duration = std::time::Duration::from_secs(120);

async fn a_job_is_queued_once_claimed_retried_and_finished(a: Store, _b: Store, clock: Clock) {
    let now = start_time();
    let id = a
        .queue_outbound_call(confirm("confirm:1:3", now))
        .await
        .unwrap();
    assert!(id.is_some());
    assert_eq!(
        a.queue_outbound_call(confirm("confirm:1:3", now))
            .await
            .unwrap(),
        None,
        "the same key is queued once"
    );
    a.queue_outbound_call(confirm("confirm:2:3", now + Duration::hours(1)))
        .await
        .unwrap();

    let claimed = a
        .claim_outbound_calls(&Purpose::ALL, 10, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the other is not due yet");
    let claim = &claimed[0];
    assert_eq!(claim.call.attempts, 1);
    assert_eq!(claim.call.state, OutboundState::Placing);
    assert!(a
        .claim_outbound_calls(&Purpose::ALL, 10, LEASE)
        .await
        .unwrap()
        .is_empty());

    // Busy: queued again for later, on trunk 0.
    let retry_at = now + Duration::minutes(10);
    let finished = a
        .finish_outbound_attempt(
            claim,
            attempt(Cause::Busy, Some(486), now),
            Next::Retry {
                at: retry_at,
                trunk: 0,
            },
        )
        .await
        .unwrap();
    assert!(finished);
    *clock.lock().unwrap() = retry_at;
    let again = a
        .claim_outbound_calls(&Purpose::ALL, 1, LEASE)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].call.id, again[0].call.attempts),
        (claim.call.id, 2)
    );
    assert_eq!(again[0].call.last_cause.as_deref(), Some("busy"));
    a.finish_outbound_attempt(
        &again[0],
        attempt(Cause::Completed, Some(200), retry_at),
        Next::Done,
    )
    .await
    .unwrap();

    let done = a
        .outbound_calls(Some(OutboundState::Done), 10)
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].outcome.as_deref(), Some("completed"));
    let attempts = a.outbound_attempts(done[0].id).await.unwrap();
    let summary: Vec<(u32, &str, Option<u16>, Option<&str>)> = attempts
        .iter()
        .map(|t| {
            (
                t.attempt,
                t.cause.as_str(),
                t.sip_status,
                t.key_pressed.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "busy", Some(486), None),
            (2, "completed", Some(200), Some("1"))
        ]
    );

    // The second job: declined, never again.
    *clock.lock().unwrap() = now + Duration::hours(1);
    let second = a
        .claim_outbound_calls(&Purpose::ALL, 10, LEASE)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    a.finish_outbound_attempt(
        &second[0],
        attempt(Cause::Declined, Some(603), now + Duration::hours(1)),
        Next::GiveUp(GiveUp::Final(Cause::Declined)),
    )
    .await
    .unwrap();
    let failed = a
        .outbound_calls(Some(OutboundState::Failed), 10)
        .await
        .unwrap();
    assert_eq!(failed[0].outcome.as_deref(), Some("declined"));
    assert_eq!(a.outbound_calls(None, 10).await.unwrap().len(), 2);
}

async fn a_lapsed_claim_cannot_finish_the_job(a: Store, b: Store, clock: Clock) {
    let now = start_time();
    a.queue_outbound_call(confirm("confirm:9:1", now))
        .await
        .unwrap();
    let first = a
        .claim_outbound_calls(&Purpose::ALL, 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    // The first gateway died; after the lease another claims the job.
    *clock.lock().unwrap() = now + Duration::minutes(3);
    let second = b
        .claim_outbound_calls(&Purpose::ALL, 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.call.attempts, 2);
    let late = a
        .finish_outbound_attempt(&first, attempt(Cause::NoAnswer, None, now), Next::Done)
        .await
        .unwrap();
    assert!(!late, "the lapsed claim does not decide");
    assert!(b
        .finish_outbound_attempt(
            &second,
            attempt(Cause::Completed, Some(200), now),
            Next::Done
        )
        .await
        .unwrap());
    let calls = b.outbound_calls(None, 10).await.unwrap();
    assert_eq!(calls[0].state, OutboundState::Done);
}

async fn a_held_job_goes_back_uncounted_and_claims_keep_to_their_purposes(
    a: Store,
    b: Store,
    clock: Clock,
) {
    let now = start_time();
    a.queue_outbound_call(confirm("confirm:5:1", now))
        .await
        .unwrap();
    assert!(
        a.claim_outbound_calls(&[Purpose::Survey], 10, LEASE)
            .await
            .unwrap()
            .is_empty(),
        "a survey worker does not take confirmation calls"
    );
    assert!(a
        .claim_outbound_calls(&[], 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    let claim = a
        .claim_outbound_calls(&[Purpose::Confirm], 10, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(claim.call.attempts, 1);
    // Outside the window: back, to wait for 09:00, no attempt counted.
    let opens = now + Duration::hours(7);
    assert!(a.release_outbound_call(&claim, opens).await.unwrap());
    assert!(
        !a.release_outbound_call(&claim, opens).await.unwrap(),
        "a claim is given back once"
    );
    let calls = a.outbound_calls(None, 10).await.unwrap();
    assert_eq!(calls[0].state, OutboundState::Queued);
    assert_eq!(calls[0].attempts, 0);
    assert_eq!(calls[0].earliest_at, opens);
    assert!(b
        .claim_outbound_calls(&Purpose::ALL, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    *clock.lock().unwrap() = opens;
    let again = b
        .claim_outbound_calls(&Purpose::ALL, 10, LEASE)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].call.attempts, 1,
        "the held claim was not an attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_claiming_at_once_never_share_a_job() {
    run(Backend::Postgres, |a, b, _clock| async move {
        for n in 0..30 {
            a.queue_outbound_call(confirm(&format!("confirm:{n}:1"), start_time()))
                .await
                .unwrap();
        }
        let mut ids = Vec::new();
        loop {
            let (x, y) = tokio::join!(
                a.claim_outbound_calls(&Purpose::ALL, 4, LEASE),
                b.claim_outbound_calls(&Purpose::ALL, 4, LEASE)
            );
            let (x, y) = (x.unwrap(), y.unwrap());
            if x.is_empty() && y.is_empty() {
                break;
            }
            ids.extend(x.into_iter().chain(y).map(|c| c.call.id));
        }
        let total = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!((ids.len(), total), (30, 30));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_waits_its_delay_and_the_window_and_one_waits_per_number() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(database) = ScratchDatabase::create(backend, "callback").await else {
            continue;
        };
        let clock: Clock = std::sync::Arc::new(std::sync::Mutex::new(start_time()));
        let rules = CampaignRules {
            first_delay: Duration::seconds(60),
            ..CampaignRules::default()
        };
        let store = store_with(&database.url, &clock, |options| {
            options.callback_calls = Some(rules);
        })
        .await;
        store.migrate().await.unwrap();
        callback_requests(&store, &clock).await;
        store.close().await;
        database.remove().await;
    }
}

async fn callback_requests(store: &Store, clock: &Clock) {
    let ticket = store
        .create_ticket(NewTicket::new(
            TicketType::Consultation,
            "bandwidth",
            "13800138000",
            "agents busy",
            Channel::Voice,
            Actor::customer("13800138000"),
        ))
        .await
        .unwrap();
    let number = ticket.number.to_string();
    let caller = || Actor::customer("13800138000");
    // 10:00 in Shanghai: inside 09:00-20:00, so the delay alone.
    let first = store
        .queue_callback(&number, "13800138000", caller())
        .await
        .unwrap()
        .expect("queued");
    assert_eq!(
        store
            .queue_callback(&number, "13800138000", caller())
            .await
            .unwrap(),
        None,
        "one waiting callback per ticket and number"
    );
    let other = store
        .queue_callback(&number, "13900139000", caller())
        .await
        .unwrap()
        .expect("another number is another callback");
    let job = store.outbound_call(first).await.unwrap().unwrap();
    assert_eq!(job.earliest_at, start_time() + Duration::seconds(60));
    assert_eq!(job.purpose, Purpose::Callback);
    let events = store.events(ticket.id).await.unwrap();
    let requested = events
        .iter()
        .filter(|e| e.kind == "callback_requested")
        .count();
    assert_eq!(requested, 2, "{events:?}");

    // Once the first is done, the same number can ask again; at 20:30 in
    // Shanghai it waits for 09:00 the next morning.
    *clock.lock().unwrap() = start_time() + Duration::minutes(5);
    let claimed = store
        .claim_outbound_calls(&[Purpose::Callback], 10, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    for claim in &claimed {
        let now = *clock.lock().unwrap();
        let done = store
            .finish_outbound_attempt(claim, attempt(Cause::Completed, Some(200), now), Next::Done)
            .await
            .unwrap();
        assert!(done);
    }
    let evening = Utc.with_ymd_and_hms(2026, 12, 4, 12, 30, 0).unwrap();
    *clock.lock().unwrap() = evening;
    let again = store
        .queue_callback(&number, "13800138000", caller())
        .await
        .unwrap()
        .expect("asked again after the first was done");
    assert_ne!(again, first);
    assert_ne!(again, other);
    let job = store.outbound_call(again).await.unwrap().unwrap();
    assert_eq!(
        job.earliest_at,
        Utc.with_ymd_and_hms(2026, 12, 5, 1, 0, 0).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_call_resolved_after_hours_waits_and_the_sla_report_says_so() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(database) = ScratchDatabase::create(backend, "window").await else {
            continue;
        };
        // 20:30 in Shanghai, after the 09:00-20:00 window.
        let evening = Utc.with_ymd_and_hms(2026, 12, 4, 12, 30, 0).unwrap();
        let clock: Clock = std::sync::Arc::new(std::sync::Mutex::new(evening));
        let store = store_with(&database.url, &clock, |options| {
            options.confirm_calls = Some(CampaignRules::default());
        })
        .await;
        store.migrate().await.unwrap();
        resolved_after_hours(&store, &clock, evening).await;
        store.close().await;
        database.remove().await;
    }
}

async fn resolved_after_hours(store: &Store, clock: &Clock, evening: DateTime<Utc>) {
    let staff = || Actor::staff("zhang.wei");
    let ticket = store
        .create_ticket(NewTicket::new(
            TicketType::FaultReport,
            "bandwidth",
            "13800138000",
            "no dial tone",
            Channel::Staff,
            staff(),
        ))
        .await
        .unwrap();
    let number = ticket.number.to_string();
    for action in [Action::Dispatch, Action::Accept, Action::Resolve] {
        store
            .transition(&number, action, staff(), None, None)
            .await
            .unwrap();
    }
    let next_morning = Utc.with_ymd_and_hms(2026, 12, 5, 1, 0, 0).unwrap();
    let jobs = store.outbound_calls(None, 10).await.unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].earliest_at, next_morning);
    let events = store.events(ticket.id).await.unwrap();
    let waiting: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "outbound_call_waiting")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(
        waiting,
        ["confirm call waits for the calling window: first attempt 2026-12-05 09:00 CST"]
    );

    let range = (evening - Duration::hours(1), evening + Duration::days(1));
    let confirm = |indicators: hotline::tickets::store::Indicators| {
        indicators
            .sla
            .into_iter()
            .find(|c| c.clock == "confirm")
            .expect("the confirm clock is reported")
    };
    let before = confirm(store.indicators(range.0, range.1).await.unwrap());
    assert_eq!(
        (
            before.waited_for_calling_window,
            before.breached_after_waiting
        ),
        (1, 0)
    );
    // The clock runs out while the call waits for the morning.
    *clock.lock().unwrap() = next_morning;
    store.mark_breaches(next_morning).await.unwrap();
    let after = confirm(store.indicators(range.0, range.1).await.unwrap());
    assert_eq!(
        (
            after.waited_for_calling_window,
            after.breached_after_waiting
        ),
        (1, 1)
    );
    let dispatch = store
        .indicators(range.0, range.1)
        .await
        .unwrap()
        .sla
        .into_iter()
        .find(|c| c.clock == "dispatch")
        .unwrap();
    assert_eq!(dispatch.waited_for_calling_window, 0);
}
