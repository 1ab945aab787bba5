//! What several gateways share through the store: instance heartbeats with
//! their live calls (both databases), and SMS rate limits (PostgreSQL,
//! where several gateways can share one database), with two stores on one
//! database standing for two gateways and a clock the test moves.

#[macro_use]
mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use hotline::tickets::store::{InstanceBeat, LiveCallRow, SharedTake, Store, StoreError};
use std::future::Future;
use support::database::{with_two_stores, Backend, ManualClock};

type Clock = ManualClock;

fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap()
}

/// Runs `scenario` with two stores on one fresh database ("two gateways").
async fn run<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(Store, Store, Clock) -> Fut,
    Fut: Future<Output = ()>,
{
    with_two_stores(backend, "shared", start_time(), scenario).await;
}

on_both!(heartbeats_show_each_instance_and_the_others_calls_until_they_stop,);

fn beat(name: &str, calls: &[&str], at: DateTime<Utc>) -> InstanceBeat {
    InstanceBeat {
        name: name.to_string(),
        started_at: at,
        sip_address: format!("{name}:5060"),
        http_address: format!("{name}:8080"),
        dialplan_version: "abc123".to_string(),
        draining: false,
        calls: calls
            .iter()
            .map(|id| LiveCallRow {
                instance: name.to_string(),
                call_id: id.to_string(),
                caller: "13800138000".to_string(),
                dialled: "10000".to_string(),
                node: Some("main".to_string()),
                since: at,
            })
            .collect(),
    }
}

async fn heartbeats_show_each_instance_and_the_others_calls_until_they_stop(
    a: Store,
    b: Store,
    clock: Clock,
) {
    let now = start_time();
    let long_ago = now - Duration::days(1);
    a.beat(beat("gw-a", &["a1"], now), long_ago).await.unwrap();
    b.beat(beat("gw-b", &["b1", "b2"], now), long_ago)
        .await
        .unwrap();
    let instances = a.instances().await.unwrap();
    let names: Vec<(&str, i64)> = instances
        .iter()
        .map(|i| (i.name.as_str(), i.live_calls))
        .collect();
    assert_eq!(names, [("gw-a", 1), ("gw-b", 2)]);
    let others = a.live_calls_elsewhere("gw-a", now).await.unwrap();
    let ids: Vec<(&str, &str)> = others
        .iter()
        .map(|c| (c.instance.as_str(), c.call_id.as_str()))
        .collect();
    assert_eq!(ids, [("gw-b", "b1"), ("gw-b", "b2")]);
    assert_eq!(others[0].node.as_deref(), Some("main"));

    // The next beat replaces the calls; draining shows.
    *clock.lock().unwrap() += Duration::seconds(5);
    let mut next = beat("gw-b", &["b3"], now);
    next.draining = true;
    b.beat(next, long_ago).await.unwrap();
    let others = a.live_calls_elsewhere("gw-a", now).await.unwrap();
    assert_eq!(others.len(), 1);
    assert_eq!(others[0].call_id, "b3");
    let gw_b = b.instances().await.unwrap().remove(1);
    assert!(gw_b.draining);
    assert_eq!(gw_b.heartbeat_at, now + Duration::seconds(5));

    // gw-a stops beating: its calls drop out for readers that ask for
    // instances alive since after its last beat, and a beat forgets it
    // once it is older than the cut-off.
    let alive_since = now + Duration::seconds(1);
    assert!(b
        .live_calls_elsewhere("gw-b", alive_since)
        .await
        .unwrap()
        .is_empty());
    b.beat(beat("gw-b", &[], now), alive_since).await.unwrap();
    let names: Vec<String> = b
        .instances()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["gw-b"]);

    // A clean stop removes the row and its calls.
    b.remove_instance("gw-b").await.unwrap();
    assert!(a.instances().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_limits_are_one_bucket_for_two_gateways() {
    run(Backend::Postgres, |a, b, clock| async move {
        let take = |store: Store, id: &'static str| async move {
            store
                .take_sms_token(
                    "texts",
                    "13800138000",
                    id,
                    3,
                    std::time::Duration::from_secs(60),
                )
                .await
                .unwrap()
        };
        assert_eq!(take(a.clone(), "m1").await, SharedTake::Token);
        assert_eq!(take(b.clone(), "m2").await, SharedTake::Token);
        assert_eq!(
            take(a.clone(), "m1").await,
            SharedTake::Free,
            "a retry is free"
        );
        assert_eq!(
            take(b.clone(), "m1").await,
            SharedTake::Free,
            "on either gateway"
        );
        assert_eq!(take(b.clone(), "m3").await, SharedTake::Token);
        let SharedTake::Refused(wait) = take(a.clone(), "m4").await else {
            panic!("the fourth text in a minute is over the limit of three");
        };
        assert!(
            wait > std::time::Duration::from_secs(19) && wait <= std::time::Duration::from_secs(20),
            "{wait:?}"
        );
        // Other senders and limits are apart.
        let other = a
            .take_sms_token(
                "texts",
                "13900139000",
                "m4",
                3,
                std::time::Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert_eq!(other, SharedTake::Token);

        // Told once per run of refusals, whichever gateway asks.
        assert!(a.tell_sms_sender("texts", "13800138000").await.unwrap());
        assert!(!b.tell_sms_sender("texts", "13800138000").await.unwrap());

        // A token given back (m3 was a retry after all) is there again, once.
        b.give_back_sms_token("texts", "13800138000", "m3", 3)
            .await
            .unwrap();
        b.give_back_sms_token("texts", "13800138000", "m3", 3)
            .await
            .unwrap();
        assert_eq!(take(a.clone(), "m4").await, SharedTake::Token);
        assert!(matches!(
            take(b.clone(), "m5").await,
            SharedTake::Refused(_)
        ));

        // Twenty seconds refill one token, and an accepted text starts a new
        // run of refusals.
        *clock.lock().unwrap() += Duration::seconds(20);
        assert_eq!(take(b.clone(), "m5").await, SharedTake::Token);
        assert!(matches!(
            take(a.clone(), "m6").await,
            SharedTake::Refused(_)
        ));
        assert!(b.tell_sms_sender("texts", "13800138000").await.unwrap());

        // Buckets untouched for a period are deleted; the sender starts full.
        *clock.lock().unwrap() += Duration::seconds(61);
        let purged = a
            .purge_sms_limits("texts", start_time() + Duration::seconds(30))
            .await
            .unwrap();
        assert_eq!(purged, 2);
        for id in ["n1", "n2", "n3"] {
            assert_eq!(take(b.clone(), id).await, SharedTake::Token);
        }
    })
    .await;
}

/// Concurrent takes for one sender from two gateways never pass more texts
/// than the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_takes_on_two_gateways_never_exceed_the_limit() {
    run(Backend::Postgres, |a, b, _clock| async move {
        let mut tasks = Vec::new();
        for n in 0..40 {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                store
                    .take_sms_token(
                        "texts",
                        "13800138000",
                        &format!("c{n}"),
                        10,
                        std::time::Duration::from_secs(3600),
                    )
                    .await
            }));
        }
        let mut tokens = 0;
        for task in tasks {
            if task.await.unwrap().unwrap() == SharedTake::Token {
                tokens += 1;
            }
        }
        assert_eq!(tokens, 10);
    })
    .await;
}

#[tokio::test]
async fn sqlite_keeps_sms_limits_in_memory_and_says_so() {
    run(Backend::Sqlite, |a, _b, _clock| async move {
        let refused = a
            .take_sms_token(
                "texts",
                "13800138000",
                "m1",
                3,
                std::time::Duration::from_secs(60),
            )
            .await;
        assert!(
            matches!(refused, Err(StoreError::Invalid { .. })),
            "{refused:?}"
        );
    })
    .await;
}

/// The background jobs under two gateways: the SLA breach job run by both
/// at once records each breach once, and outbox claims made at once by both
/// split the texts between them, none claimed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_split_background_work_without_doing_any_twice() {
    use hotline::tickets::model::{Actor, Channel, TicketType};
    use hotline::tickets::store::NewTicket;
    run(Backend::Postgres, |a, b, clock| async move {
        for n in 0..20 {
            let phone = format!("138001381{n:02}");
            let ticket = NewTicket::new(
                TicketType::FaultReport,
                "virtual_network",
                &phone,
                "虚拟网短号无法呼通",
                Channel::Voice,
                Actor::customer(&phone),
            );
            let store = if n % 2 == 0 { &a } else { &b };
            store.create_ticket(ticket).await.unwrap();
        }
        *clock.lock().unwrap() += Duration::minutes(16);
        let now = a.now();
        let (first, second) = tokio::join!(a.mark_breaches(now), b.mark_breaches(now));
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.len() + second.len(), 20, "each dispatch breach once");
        let mut numbers: Vec<&str> = first
            .iter()
            .chain(&second)
            .map(|b| b.number.as_str())
            .collect();
        numbers.sort();
        numbers.dedup();
        assert_eq!(numbers.len(), 20);

        let lease = std::time::Duration::from_secs(60);
        let mut claimed = Vec::new();
        loop {
            let (x, y) = tokio::join!(
                a.claim_notifications(now, 3, lease),
                b.claim_notifications(now, 3, lease)
            );
            let (x, y) = (x.unwrap(), y.unwrap());
            if x.is_empty() && y.is_empty() {
                break;
            }
            claimed.extend(x.into_iter().chain(y).map(|n| n.dedup_key));
        }
        let total = claimed.len();
        claimed.sort();
        claimed.dedup();
        assert_eq!(claimed.len(), total, "no text claimed by both");
        assert!(total >= 20, "every ticket's text claimed: {total}");
    })
    .await;
}
