//! The centre's indicators, on SQLite and (with `DATABASE_URL`) on
//! PostgreSQL: real calls through a running gateway (one transferred by
//! REFER, one whose transfer fails and ends in the IVR, one the caller
//! hangs up in the main menu, one to a number with no dialplan), tickets
//! from the call and the store taken through their lifecycle, SLA breaches
//! marked by the SLA job, and survey scores; then the report from the
//! store, from `GET /api/v1/reports/indicators` (JSON and CSV, roles, bad
//! input) and from `hotline report indicators` must count exactly that.

mod support;

use chrono::{DateTime, Duration as Span, Utc};
use hotline::api::issue_token;
use hotline::config::{TransferMode, TransferTarget};
use hotline::server::Server;
use hotline::sip::message::Message;
use hotline::sip::sdp;
use hotline::tickets::lifecycle::Action;
use hotline::tickets::model::{Actor, Channel, CustomerLevel, StaffRole, TicketType};
use hotline::tickets::sla::SlaClock;
use hotline::tickets::store::{Indicators, NewTicket, Ticket};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::database::{Backend, ScratchDatabase};
use support::{http_get, start, test_config, Client};

const PLAN: &str = r##"
[dialplan]
name = "indicators"
entries = { "10000" = "main" }

[nodes.main]
kind = "menu"
say = ["welcome"]
keys = { "0" = "agent", "2" = "complaint" }
on_failure = "bye"

[nodes.complaint]
kind = "ticket_create"
type = "complaint"
category = "ict"
description = "IVR complaint"
next = "agent"
on_error = "bye"

[nodes.agent]
kind = "transfer"
target = "agents"
on_failure = "busy"

[nodes.busy]
kind = "hangup"
say = ["agents_busy"]

[nodes.bye]
kind = "hangup"
"##;

async fn gateway(db: &ScratchDatabase, plans: &Path) -> Server {
    std::fs::write(plans.join("indicators.toml"), PLAN).unwrap();
    let mut config = test_config();
    config.database.url = db.url.clone();
    config.prompts.dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts")).to_path_buf();
    config.ivr.dialplans_dir = plans.to_path_buf();
    config.transfer.timeout_secs = 10;
    config.transfer.targets.insert(
        "agents".into(),
        TransferTarget {
            uri: "sip:queue@127.0.0.1:5070".into(),
            mode: TransferMode::Refer,
            username: None,
            password: None,
            srtp: false,
        },
    );
    start(config).await
}

/// Dials `number` (from `caller`); the answer's status, and for 200 the
/// client, dialog and the gateway's RTP address.
async fn dial(
    server: &Server,
    number: &str,
) -> (u16, Option<(Client, support::Dialog, SocketAddr)>) {
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let offer = client.g711_offer();
    let (response, mut dialog) = client.invite(number, Some(offer)).await;
    let status = response.status().unwrap();
    if status != 200 {
        return (status, None);
    }
    client.ack(&mut dialog).await;
    let audio = sdp::parse_body(&response.body).unwrap().audio.unwrap();
    let gateway = SocketAddr::new(audio.connection.unwrap(), audio.port);
    (status, Some((client, dialog, gateway)))
}

/// Dials 10000, presses `key` and answers the gateway's REFER with 202
/// and a NOTIFY carrying `sipfrag`. Returns the call's Call-ID.
async fn transfer_call(server: &Server, key: &str, sipfrag: &str) -> String {
    let (_, answered) = dial(server, "10000").await;
    let (mut client, mut dialog, gateway) = answered.expect("10000 answers");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut sequence, mut timestamp) = (100u16, 8_000u32);
    client
        .send_keys(gateway, key, &mut sequence, &mut timestamp)
        .await;
    let refer = client
        .try_expect(Duration::from_secs(20), &|m: &Message| {
            m.method().is_some_and(|m| m.as_str() == "REFER")
        })
        .await
        .expect("the gateway sends REFER");
    client.reply(&refer, 202, "Accepted").await;
    let _ = client.receive_rtp(Duration::from_millis(100)).await;
    assert_eq!(
        client
            .notify_refer(&mut dialog, sipfrag, "terminated;reason=noresource")
            .await,
        200
    );
    assert!(
        client.answer_bye(Duration::from_secs(15)).await.is_some(),
        "the gateway hangs up (transferred, or after the fallback)"
    );
    dialog.call_id
}

/// Waits until `count` call records exist.
async fn wait_for_records(server: &Server, count: usize) {
    for _ in 0..200 {
        if server.store().recent_calls(100).await.unwrap().len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} call records were written");
}

fn ticket(kind: TicketType, category: &str, channel: Channel, level: CustomerLevel) -> NewTicket {
    let mut new = NewTicket::new(
        kind,
        category,
        "13900139000",
        "indicator test",
        channel,
        Actor::staff("zhang.wei"),
    );
    new.service_number = Some("VN-0001".into());
    new.level = Some(level);
    new
}

fn seconds_between(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<f64> {
    Some((b? - a?).num_milliseconds() as f64 / 1000.0)
}

fn count_of(list: &Value, key_field: &str, key: &str) -> u64 {
    list.as_array()
        .unwrap()
        .iter()
        .find(|entry| entry[key_field] == key)
        .map_or(0, |entry| entry["count"].as_u64().unwrap())
}

async fn the_report_counts_what_was_driven(backend: Backend) {
    let Some(db) = ScratchDatabase::create(backend, "indicators").await else {
        return;
    };
    let plans = tempfile::tempdir().unwrap();
    let server = gateway(&db, plans.path()).await;
    let store = server.store().clone();
    let from = store.now() - Span::seconds(1);

    // Calls: a complaint handed over by REFER (200), a transfer refused
    // (486) whose fallback ends the call in the IVR, a caller hanging up in
    // the main menu, and a number nobody answers (404).
    transfer_call(&server, "2", "SIP/2.0 200 OK").await;
    transfer_call(&server, "0", "SIP/2.0 486 Busy Here").await;
    let (_, answered) = dial(&server, "10000").await;
    let (mut client, mut dialog, _) = answered.expect("10000 answers");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(client.bye(&mut dialog).await, 200);
    let (status, _) = dial(&server, "99999").await;
    assert_eq!(status, 404);
    wait_for_records(&server, 4).await;

    // Tickets: the call's complaint (voice, ict, local_c), one worked to
    // the end at once (sms), one left alone (api); then the SLA job, run
    // as if a year had passed, marks every clock still running.
    let worked = store
        .create_ticket(ticket(
            TicketType::FaultReport,
            "virtual_network",
            Channel::Sms,
            CustomerLevel::Group,
        ))
        .await
        .unwrap();
    let number = worked.number.to_string();
    for action in [
        Action::Dispatch,
        Action::Accept,
        Action::Start,
        Action::Resolve,
        Action::Confirm,
    ] {
        store
            .transition(&number, action, Actor::staff("li.na"), None, None)
            .await
            .unwrap();
    }
    let idle = store
        .create_ticket(ticket(
            TicketType::FaultReport,
            "bandwidth",
            Channel::Api,
            CustomerLevel::LocalA,
        ))
        .await
        .unwrap();
    let breaches = store
        .mark_breaches(store.now() + Span::days(365))
        .await
        .unwrap();
    let tickets: Vec<Ticket> = store.list_tickets(&Default::default()).await.unwrap();
    assert_eq!(tickets.len(), 3);
    let complaint = tickets
        .iter()
        .find(|t| t.channel == Channel::Voice)
        .expect("the call's complaint ticket");
    assert_eq!(complaint.category, "ict");

    // Survey scores for two of them.
    store
        .record_survey(&number, 5, Actor::staff("li.na"), None)
        .await
        .unwrap();
    store
        .record_survey(&idle.number.to_string(), 2, Actor::staff("li.na"), None)
        .await
        .unwrap();
    let to = store.now() + Span::seconds(1);

    let report = store.indicators(from, to).await.unwrap();
    let calls = &report.calls;
    assert_eq!(
        (
            calls.offered,
            calls.answered,
            calls.rejected,
            calls.abandoned,
            calls.transferred,
            calls.contained
        ),
        (4, 3, 1, 1, 1, 1),
        "the failed transfer is not contained: {calls:#?}"
    );
    assert_eq!(calls.containment_rate, Some(1.0 / 3.0));
    assert_eq!(calls.per_hour.iter().map(|h| h.offered).sum::<u64>(), 4);
    assert_eq!(calls.per_hour.iter().map(|h| h.answered).sum::<u64>(), 3);
    assert_eq!(calls.abandoned_by_node.len(), 1);
    assert_eq!(
        (
            calls.abandoned_by_node[0].node.as_str(),
            calls.abandoned_by_node[0].count
        ),
        ("main", 1)
    );
    let transfers: Vec<(&str, &str, &str, u64)> = report
        .transfers
        .iter()
        .map(|t| {
            (
                t.target.as_str(),
                t.mode.as_str(),
                t.outcome.as_str(),
                t.count,
            )
        })
        .collect();
    assert_eq!(
        transfers,
        vec![
            ("agents", "refer", "accepted", 1),
            ("agents", "refer", "failed", 1)
        ]
    );

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["tickets"]["created"], 3);
    let by_channel = &json["tickets"]["by_channel"];
    assert_eq!(
        ["voice", "sms", "api", "staff"].map(|c| count_of(by_channel, "key", c)),
        [1, 1, 1, 0]
    );
    let by_category = &json["tickets"]["by_category"];
    assert_eq!(
        ["ict", "virtual_network", "bandwidth", "toll_free"].map(|c| count_of(
            by_category,
            "key",
            c
        )),
        [1, 1, 1, 0]
    );
    let by_level = &json["tickets"]["by_level"];
    assert_eq!(count_of(by_level, "key", "group"), 1);
    assert_eq!(count_of(by_level, "key", "local_a"), 1);
    assert_eq!(count_of(by_level, "key", complaint.level.code()), 1);

    // SLA: met is the worked ticket's clocks done in time; breached is
    // what the SLA job marked.
    for clock in [
        SlaClock::Dispatch,
        SlaClock::Accept,
        SlaClock::Repair,
        SlaClock::Confirm,
    ] {
        let met = tickets
            .iter()
            .filter(|t| matches!(t.clock(clock), (Some(due), Some(done)) if done <= due))
            .count() as u64;
        let breached = breaches.iter().filter(|b| b.clock == clock).count() as u64;
        let row = report
            .sla
            .iter()
            .find(|s| s.clock == clock.code())
            .expect("every reported clock");
        assert_eq!((row.met, row.breached), (met, breached), "{clock:?}");
        let compliance = (met + breached > 0).then(|| met as f64 / (met + breached) as f64);
        assert_eq!(row.compliance, compliance, "{clock:?}");
    }
    let dispatch = &report.sla[0];
    assert_eq!((dispatch.met, dispatch.breached), (1, 2));

    // Mean time per stage: only the worked ticket finished any stage.
    let worked = store.ticket(&number).await.unwrap().unwrap();
    let expected = [
        (
            "dispatch",
            seconds_between(Some(worked.created_at), worked.dispatched_at),
        ),
        (
            "accept",
            seconds_between(worked.dispatched_at, worked.accepted_at),
        ),
        (
            "repair",
            seconds_between(Some(worked.created_at), worked.resolved_at),
        ),
        (
            "confirm",
            seconds_between(worked.resolved_at, worked.confirmed_at),
        ),
    ];
    for ((stage, want), got) in expected.iter().zip(&report.stage_mean_secs) {
        assert_eq!(got.stage, *stage);
        let got = got.mean_secs.expect("the stage was completed");
        assert!(
            (got - want.unwrap()).abs() < 1e-6,
            "{stage}: {got} vs {want:?}"
        );
    }

    assert_eq!(report.survey.responses, 2);
    assert_eq!(report.survey.mean_score, Some(3.5));
    let scores: Vec<u64> = report.survey.by_score.iter().map(|s| s.count).collect();
    assert_eq!(scores, vec![0, 1, 0, 0, 1]);

    // A range before all of it is empty, with nulls for the rates.
    let empty = store
        .indicators(from - Span::hours(3), from - Span::hours(1))
        .await
        .unwrap();
    assert_eq!(empty.calls.offered, 0);
    assert_eq!(empty.calls.containment_rate, None);
    assert!((2..=3).contains(&empty.calls.per_hour.len()));
    assert_eq!(empty.tickets.created, 0);
    assert!(empty.sla.iter().all(|s| s.compliance.is_none()));
    assert!(empty.stage_mean_secs.iter().all(|s| s.mean_secs.is_none()));
    assert_eq!(empty.survey.mean_score, None);

    api_serves_it(&server, &report, from, to).await;
    if backend == Backend::Sqlite {
        cli_prints_it(&db, &report, from, to);
    }
    server.shutdown().await;
    db.remove().await;
}

async fn api_serves_it(
    server: &Server,
    report: &Indicators,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    let store = server.store();
    let supervisor = issue_token(store, "zhang.wei", StaffRole::Supervisor)
        .await
        .unwrap()
        .token;
    let agent = issue_token(store, "li.na", StaffRole::Agent)
        .await
        .unwrap()
        .token;
    let range = format!(
        "from={}&to={}",
        from.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    );
    let path = format!("/api/v1/reports/indicators?{range}");
    let addr = server.http_addr;

    let (status, content_type, body) = http_get(addr, &path, Some(&supervisor)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let served: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(served, serde_json::to_value(report).unwrap());

    let (status, content_type, csv) =
        http_get(addr, &format!("{path}&format=csv"), Some(&supervisor)).await;
    assert_eq!(status, 200, "{csv}");
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert!(csv.starts_with("indicator,key,value\n"), "{csv}");
    for line in [
        "calls.offered,,4\n",
        "calls.rejected,,1\n",
        "calls.abandoned_by_node,main,1\n",
        "transfers,agents/refer/accepted,1\n",
        "tickets.by_channel,voice,1\n",
        "sla.dispatch.met,,1\n",
        "survey.mean_score,,3.5\n",
    ] {
        assert!(csv.contains(line), "{line:?} in\n{csv}");
    }

    // The default range is the last 24 hours, which holds all of it.
    let (status, _, body) = http_get(addr, "/api/v1/reports/indicators", Some(&supervisor)).await;
    assert_eq!(status, 200, "{body}");
    let recent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(recent["calls"]["offered"], 4);
    let hours = recent["calls"]["per_hour"].as_array().unwrap().len();
    assert!((24..=25).contains(&hours), "{hours} hours listed");

    let (status, _, body) = http_get(addr, &path, Some(&agent)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"forbidden\""), "{body}");
    let (status, _, _) = http_get(addr, &path, None).await;
    assert_eq!(status, 401);
    for (query, field) in [
        ("from=yesterday", "from"),
        ("format=xml", "format"),
        ("from=2026-12-01T00:00:00Z&to=2026-11-30T00:00:00Z", "range"),
        ("from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "range"),
    ] {
        let (status, _, body) = http_get(
            addr,
            &format!("/api/v1/reports/indicators?{query}"),
            Some(&supervisor),
        )
        .await;
        assert_eq!(status, 422, "{query}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], "invalid_field", "{body}");
        assert_eq!(error["error"]["field"], field, "{body}");
    }
}

fn cli_prints_it(
    db: &ScratchDatabase,
    report: &Indicators,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    let run = |format: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
            .args([
                "report",
                "indicators",
                "--from",
                &from.to_rfc3339(),
                "--to",
                &to.to_rfc3339(),
                "--format",
                format,
            ])
            .env("HOTLINE_DATABASE_URL", &db.url)
            .env_remove("HOTLINE_TICKETS_SLA_FILE")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("hotline runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let printed: Value = serde_json::from_str(&run("json")).unwrap();
    // The same report, its times in the SLA calendar's zone with the offset.
    let local = |at: DateTime<Utc>| {
        at.with_timezone(&chrono_tz::Asia::Shanghai)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
    };
    let mut expected = serde_json::to_value(report).unwrap();
    expected["from"] = local(report.from).into();
    expected["to"] = local(report.to).into();
    for (i, hour) in report.calls.per_hour.iter().enumerate() {
        expected["calls"]["per_hour"][i]["hour"] = local(hour.hour).into();
    }
    assert_eq!(printed, expected);
    assert!(
        printed["from"].as_str().unwrap().ends_with("+08:00"),
        "{printed}"
    );
    let csv = run("csv");
    assert!(csv.contains("calls.offered,,4\n"), "{csv}");
    assert!(csv.contains("tickets.created,,3\n"), "{csv}");
    assert!(csv.contains(&format!("from,,{}\n", local(from))), "{csv}");
}

/// A call the gateway cuts off at `calls.max_duration_secs` was not
/// served by the IVR: answered, not contained.
async fn a_call_cut_off_at_its_time_limit_is_not_contained(backend: Backend) {
    let Some(db) = ScratchDatabase::create(backend, "indicators_limit").await else {
        return;
    };
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(plans.path().join("indicators.toml"), PLAN).unwrap();
    let mut config = test_config();
    config.database.url = db.url.clone();
    config.prompts.dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts")).to_path_buf();
    config.ivr.dialplans_dir = plans.path().to_path_buf();
    config.calls.max_duration_secs = 1;
    let server = start(config).await;
    let store = server.store().clone();
    let from = store.now() - Span::seconds(1);
    let (_, answered) = dial(&server, "10000").await;
    let (mut client, _, _) = answered.expect("10000 answers");
    assert!(
        client.answer_bye(Duration::from_secs(20)).await.is_some(),
        "the gateway ends the call at its limit"
    );
    wait_for_records(&server, 1).await;
    let calls = store
        .indicators(from, store.now() + Span::seconds(1))
        .await
        .unwrap()
        .calls;
    assert_eq!(
        (calls.answered, calls.contained, calls.containment_rate),
        (1, 0, Some(0.0)),
        "{calls:#?}"
    );
    let records = store.recent_calls(10).await.unwrap();
    assert_eq!(records[0].disposition.as_deref(), Some("time_limit"));
    server.shutdown().await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_time_limited_call_is_not_contained() {
    a_call_cut_off_at_its_time_limit_is_not_contained(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_time_limited_call_is_not_contained() {
    a_call_cut_off_at_its_time_limit_is_not_contained(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_report_counts_what_was_driven() {
    the_report_counts_what_was_driven(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_report_counts_what_was_driven() {
    the_report_counts_what_was_driven(Backend::Postgres).await;
}
