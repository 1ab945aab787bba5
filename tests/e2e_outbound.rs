//! End-to-end outbound confirmation calls (修复确认): resolving a fault
//! ticket queues a call; the gateway's worker places it through the
//! configured trunk, here a Rust test client playing the customer's phone
//! on loopback. Answered with a key, the job is done; busy is retried;
//! never answered, the gateway CANCELs at the ring timeout, retries, and
//! falls back to the "is it restored?" text; 603 is never retried. Every
//! attempt is on the ticket's timeline.

mod support;

use hotline::config::Config;
use hotline::outbound::config::TrunkConfig;
use hotline::server::Server;
use hotline::sip::message::Message;
use hotline::sip::sdp;
use hotline::tickets::lifecycle::Action;
use hotline::tickets::model::{Actor, Channel, Status, TicketType};
use hotline::tickets::store::{
    CallDirection, NewTicket, OutboundCall, OutboundState, StoredAttempt, StoredCall,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use support::{start, test_config, Client};

const CUSTOMER: &str = "13800138000";
const LONG: Duration = Duration::from_secs(15);

fn repo(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"))).join(path)
}

/// A gateway whose confirm campaign calls `callee` through trunk "main"
/// (ring timeout 2 s), retrying at once, `attempts` times in all.
fn outbound_config(callee: &Client, attempts: u32) -> Config {
    let mut config = test_config();
    config.prompts.dir = repo("prompts");
    config.ivr.dialplans_dir = repo("dialplans");
    let outbound = &mut config.outbound;
    outbound.enabled = true;
    outbound.poll_secs = 1;
    outbound.trunks.insert(
        "main".into(),
        TrunkConfig {
            uri: format!("sip:{{number}}@{}", callee.local),
            max_concurrent: 4,
            calls_per_second: 10.0,
            ring_timeout_secs: 2,
            username: None,
            password: None,
        },
    );
    let confirm = &mut outbound.confirm;
    confirm.enabled = true;
    confirm.trunks = vec!["main".into()];
    confirm.window = "00:00-23:59".into();
    confirm.attempts = attempts;
    confirm.busy_retry_secs = 0;
    confirm.no_answer_retry_secs = 0;
    confirm.failure_retry_secs = 0;
    config
}

/// A callee client and a gateway calling it.
async fn gateway(attempts: u32) -> (Server, Client) {
    // The callee needs the gateway's address to answer requests; the
    // gateway needs the callee's for its trunk: bind first, point later.
    let mut callee = Client::udp("127.0.0.1:9".parse().unwrap()).await;
    let server = start(outbound_config(&callee, attempts)).await;
    callee.server = server.udp_addrs[0];
    (server, callee)
}

/// A fault ticket for the customer, taken to resolved by staff; returns
/// its number and id.
async fn resolved_fault(server: &Server) -> (String, i64) {
    let store = server.store();
    let new = NewTicket::new(
        TicketType::FaultReport,
        "bandwidth",
        CUSTOMER,
        "no dial tone",
        Channel::Staff,
        Actor::staff("zhang.wei"),
    );
    let ticket = store.create_ticket(new).await.unwrap();
    let number = ticket.number.to_string();
    for action in [Action::Dispatch, Action::Accept, Action::Resolve] {
        store
            .transition(&number, action, Actor::staff("zhang.wei"), None, None)
            .await
            .unwrap();
    }
    (number, ticket.id)
}

async fn expect_invite(callee: &mut Client) -> Message {
    callee
        .request_named("INVITE", LONG)
        .await
        .expect("the gateway calls the customer")
}

/// The callee's answer: PCMU with telephone-event.
fn answer(callee: &Client) -> String {
    callee.offer(
        "0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        "a=sendrecv\r\n",
    )
}

/// Answers `invite`, waits for the ACK, presses `keys` and waits for the
/// IVR to finish and hang up.
async fn answer_and_press(callee: &mut Client, invite: &Message, tag: &str, keys: &str) {
    callee
        .respond(invite, 200, "OK", tag, &[], Some(answer(callee)))
        .await;
    callee
        .request_named("ACK", Duration::from_secs(5))
        .await
        .expect("the gateway ACKs the 2xx");
    let offer = sdp::parse_body(&invite.body).unwrap().audio.unwrap();
    let gateway_rtp = SocketAddr::new(offer.connection.unwrap(), offer.port);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut sequence, mut timestamp) = (1u16, 8_000u32);
    callee
        .send_keys(gateway_rtp, keys, &mut sequence, &mut timestamp)
        .await;
    assert!(
        callee.answer_bye(LONG).await.is_some(),
        "the gateway hangs up once the plan is done"
    );
}

/// Waits until the job has left `placing`/`queued` for good (or `LONG`).
async fn settled(server: &Server) -> (OutboundCall, Vec<StoredAttempt>) {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let calls = server.store().outbound_calls(None, 10).await.unwrap();
        let call = calls.into_iter().next().expect("a job was queued");
        if matches!(call.state, OutboundState::Done | OutboundState::Failed)
            || tokio::time::Instant::now() > deadline
        {
            let attempts = server.store().outbound_attempts(call.id).await.unwrap();
            return (call, attempts);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The call records of outbound attempts, oldest first, once `count` are
/// written (an answered call's record is written when it ends).
async fn outbound_records(server: &Server, count: usize) -> Vec<StoredCall> {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let mut records: Vec<StoredCall> = server
            .store()
            .recent_calls(100)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.direction == CallDirection::Outbound)
            .collect();
        if records.len() >= count || tokio::time::Instant::now() > deadline {
            records.reverse();
            return records;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The "is it restored?" texts queued for ticket `id`.
async fn restored_texts(server: &Server, id: i64) -> usize {
    server
        .store()
        .notifications(id)
        .await
        .unwrap()
        .iter()
        .filter(|n| n.kind == "resolved")
        .count()
}

#[tokio::test]
async fn an_answered_confirmation_call_with_a_key_is_done_and_on_the_timeline() {
    let (server, mut callee) = gateway(3).await;
    let (number, id) = resolved_fault(&server).await;
    assert_eq!(
        restored_texts(&server, id).await,
        0,
        "the call replaces the text"
    );

    let invite = expect_invite(&mut callee).await;
    assert_eq!(
        invite.request_uri(),
        Some(format!("sip:{CUSTOMER}@{}", callee.local).as_str())
    );
    assert!(
        invite
            .header("From")
            .is_some_and(|from| from.contains("sip:10000@")),
        "{invite:?}"
    );
    assert_eq!(invite.header("X-Ticket-Number"), Some(number.as_str()));
    callee
        .respond(&invite, 180, "Ringing", "cust1", &[], None)
        .await;
    answer_and_press(&mut callee, &invite, "cust1", "1").await;

    let (call, attempts) = settled(&server).await;
    assert_eq!(call.state, OutboundState::Done, "{call:?} {attempts:?}");
    assert_eq!(call.outcome.as_deref(), Some("completed"));
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].cause, "completed");
    assert_eq!(attempts[0].key_pressed.as_deref(), Some("1"));
    assert_eq!(attempts[0].sip_status, Some(200));
    assert_eq!(
        attempts[0].sip_call_id,
        invite.header("Call-ID").unwrap_or_default()
    );
    let events = server.store().events(id).await.unwrap();
    assert!(
        events.iter().any(|e| e.kind == "outbound_call"
            && e.detail.contains("completed")
            && e.detail.contains("key 1")),
        "{events:?}"
    );
    assert_eq!(restored_texts(&server, id).await, 0);
    let ticket = server.store().ticket(&number).await.unwrap().unwrap();
    assert_eq!(ticket.status, Status::Confirmed, "key 1: restored");
    assert!(
        events.iter().any(|e| e.actor == Actor::customer(CUSTOMER)
            && e.to_status == Some(Status::Confirmed)),
        "{events:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_busy_customer_is_called_again_and_answers() {
    let (server, mut callee) = gateway(3).await;
    let (number, _) = resolved_fault(&server).await;

    let first = expect_invite(&mut callee).await;
    callee
        .respond(&first, 486, "Busy Here", "busy1", &[], None)
        .await;
    let second = expect_invite(&mut callee).await;
    assert_ne!(first.header("Call-ID"), second.header("Call-ID"));
    answer_and_press(&mut callee, &second, "cust2", "2").await;

    let (call, attempts) = settled(&server).await;
    assert_eq!(call.state, OutboundState::Done, "{call:?} {attempts:?}");
    let causes: Vec<&str> = attempts.iter().map(|a| a.cause.as_str()).collect();
    assert_eq!(causes, ["busy", "completed"]);
    assert_eq!(attempts[0].sip_status, Some(486));
    let ticket = server.store().ticket(&number).await.unwrap().unwrap();
    assert_eq!(ticket.status, Status::InProgress, "key 2: reopened");

    let records = outbound_records(&server, 2).await;
    assert_eq!(records.len(), 2, "a call record per attempt: {records:?}");
    let (busy, answered) = (&records[0], &records[1]);
    assert_eq!(Some(busy.sip_call_id.as_str()), first.header("Call-ID"));
    assert_eq!(busy.disposition.as_deref(), Some("busy"));
    assert_eq!(busy.reason.as_deref(), Some("486"));
    assert_eq!(busy.answered_at, None);
    assert_eq!(
        (busy.caller.as_str(), busy.dialled.as_str()),
        (CUSTOMER, "outbound:confirm")
    );
    assert_eq!(busy.tickets, std::slice::from_ref(&number));
    assert_eq!(
        Some(answered.sip_call_id.as_str()),
        second.header("Call-ID")
    );
    assert!(answered.answered_at.is_some(), "{answered:?}");
    assert_eq!(answered.dialled, "outbound:confirm");
    let indicators = server
        .store()
        .indicators(
            chrono::Utc::now() - chrono::Duration::hours(1),
            chrono::Utc::now() + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(
        indicators.calls.offered, 0,
        "outbound calls are not offered calls"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_call_never_answered_is_cancelled_retried_and_falls_back_to_the_text() {
    let (server, mut callee) = gateway(2).await;
    let (_, id) = resolved_fault(&server).await;

    for attempt in 1..=2 {
        let invite = expect_invite(&mut callee).await;
        let tag = format!("ring{attempt}");
        callee
            .respond(&invite, 180, "Ringing", &tag, &[], None)
            .await;
        let cancel = callee
            .request_named("CANCEL", Duration::from_secs(5))
            .await
            .expect("CANCEL at the ring timeout");
        callee.reply(&cancel, 200, "OK").await;
        callee
            .respond(&invite, 487, "Request Terminated", &tag, &[], None)
            .await;
    }

    let (call, attempts) = settled(&server).await;
    assert_eq!(call.state, OutboundState::Failed, "{call:?}");
    assert_eq!(call.outcome.as_deref(), Some("exhausted:no_answer"));
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(attempts.iter().all(|a| a.cause == "no_answer"));
    let records = outbound_records(&server, 2).await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(
        records
            .iter()
            .all(|r| r.disposition.as_deref() == Some("no_answer")
                && r.reason.as_deref() == Some("CANCEL at the ring timeout")),
        "{records:?}"
    );
    assert_eq!(
        restored_texts(&server, id).await,
        1,
        "the text goes out instead"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_declined_call_is_never_retried() {
    let (server, mut callee) = gateway(3).await;
    let (_, id) = resolved_fault(&server).await;

    let invite = expect_invite(&mut callee).await;
    callee
        .respond(&invite, 603, "Decline", "no1", &[], None)
        .await;
    let (call, attempts) = settled(&server).await;
    assert_eq!(call.state, OutboundState::Failed, "{call:?}");
    assert_eq!(call.outcome.as_deref(), Some("declined"));
    assert_eq!(attempts.len(), 1);
    assert!(
        callee
            .request_named("INVITE", Duration::from_secs(3))
            .await
            .is_none(),
        "no second call"
    );
    assert_eq!(restored_texts(&server, id).await, 1);
    server.shutdown().await;
}

/// A plan for the callback test: 10000's key 0 tries the agents; when they
/// are busy, 1 asks for a callback on a consultation ticket. Entry "cb" is
/// the callback itself: a short greeting, then the agents.
const CALLBACK_PLAN: &str = r##"
[dialplan]
name = "callback"
entries = { "10000" = "main", "cb" = "cb_start" }

[nodes.main]
kind = "menu"
say = ["welcome"]
keys = { "0" = "agent" }
on_failure = "bye"

[nodes.agent]
kind = "transfer"
target = "agents"
on_failure = "busy"

[nodes.busy]
kind = "menu"
say = ["agents_busy"]
keys = { "1" = "ticket" }
on_failure = "bye"

[nodes.ticket]
kind = "ticket_create"
type = "consultation"
category = "ict"
description = "IVR: every agent busy; the caller asked to be called back"
next = "request"
on_error = "bye"

[nodes.request]
kind = "callback_request"
next = "will_call"
on_error = "bye"

[nodes.will_call]
kind = "hangup"
say = ["agent_will_call_back"]

[nodes.cb_start]
kind = "play"
say = ["welcome"]
next = "cb_agents"

[nodes.cb_agents]
kind = "transfer"
target = "agents"
on_failure = "bye"

[nodes.bye]
kind = "hangup"
"##;

#[tokio::test]
async fn a_caller_who_found_the_agents_busy_is_called_back_and_bridged_to_an_agent() {
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(plans.path().join("callback.toml"), CALLBACK_PLAN).unwrap();
    let mut customer = Client::udp("127.0.0.1:9".parse().unwrap()).await;
    let mut agent = Client::udp("127.0.0.1:9".parse().unwrap()).await;
    let mut config = outbound_config(&customer, 3);
    config.ivr.dialplans_dir = plans.path().to_path_buf();
    config.outbound.confirm.enabled = false;
    let callback = &mut config.outbound.callback;
    callback.enabled = true;
    callback.trunks = vec!["main".into()];
    callback.window = "00:00-23:59".into();
    callback.entry = Some("cb".into());
    // Two seconds after the request (not the default minute), by when
    // the caller has heard the goodbye.
    callback.delay_secs = Some(2);
    if let Some(trunk) = config.outbound.trunks.get_mut("main") {
        trunk.ring_timeout_secs = 30;
    }
    config.transfer.ring_timeout_secs = 5;
    config.transfer.targets.insert(
        "agents".into(),
        hotline::config::TransferTarget {
            uri: format!("sip:agents@{}", agent.local),
            mode: hotline::config::TransferMode::Bridge,
            username: None,
            password: None,
            srtp: false,
        },
    );
    let server = start(config).await;
    customer.server = server.udp_addrs[0];
    agent.server = server.udp_addrs[0];

    // The caller keys 0; the agents are busy; the caller keys 1 and is
    // told they will be called back.
    let mut caller = Client::udp(server.udp_addrs[0]).await;
    let (response, mut dialog) = caller.invite("10000", Some(caller.g711_offer())).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    caller.ack(&mut dialog).await;
    let audio = sdp::parse_body(&response.body).unwrap().audio.unwrap();
    let gateway_rtp = SocketAddr::new(audio.connection.unwrap(), audio.port);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut sequence, mut timestamp) = (1u16, 8_000u32);
    caller
        .send_keys(gateway_rtp, "0", &mut sequence, &mut timestamp)
        .await;
    let busy = agent
        .request_named("INVITE", LONG)
        .await
        .expect("key 0 tries the agents");
    agent
        .respond(&busy, 486, "Busy Here", "busy", &[], None)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    caller
        .send_keys(gateway_rtp, "1", &mut sequence, &mut timestamp)
        .await;
    assert!(
        caller.answer_bye(LONG).await.is_some(),
        "the caller is told and hung up"
    );

    // The gateway calls the caller back and bridges them to an agent, who
    // gets the ticket with the call.
    let invite = expect_invite(&mut customer).await;
    let number = invite
        .header("X-Ticket-Number")
        .expect("the callback names its ticket")
        .to_string();
    customer
        .respond(&invite, 200, "OK", "back1", &[], Some(answer(&customer)))
        .await;
    customer
        .request_named("ACK", Duration::from_secs(5))
        .await
        .expect("ACK");
    let bridged = agent
        .request_named("INVITE", LONG)
        .await
        .expect("the callback is bridged to an agent");
    assert_eq!(bridged.header("X-Ticket-Number"), Some(number.as_str()));
    assert_eq!(bridged.header("X-Caller"), Some(CUSTOMER));
    let mut agent_dialog = agent
        .respond(&bridged, 200, "OK", "agent1", &[], Some(answer(&agent)))
        .await;
    agent
        .request_named("ACK", Duration::from_secs(5))
        .await
        .expect("ACK");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(agent.bye(&mut agent_dialog).await, 200);
    assert!(
        customer.answer_bye(LONG).await.is_some(),
        "the agent's BYE ends the customer's leg"
    );

    let (call, attempts) = settled(&server).await;
    assert_eq!(call.state, OutboundState::Done, "{call:?} {attempts:?}");
    assert_eq!(call.purpose.code(), "callback");
    assert!(
        call.earliest_at >= call.created_at + chrono::Duration::seconds(2),
        "the first attempt waits the delay: {call:?}"
    );
    assert_eq!(call.ticket_number.as_deref(), Some(number.as_str()));
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].cause, "completed");
    let ticket = server.store().ticket(&number).await.unwrap().unwrap();
    let events = server.store().events(ticket.id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"callback_requested"), "{kinds:?}");
    assert!(kinds.contains(&"outbound_call"), "{kinds:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_closed_ticket_gets_its_survey_call_and_the_score_is_stored() {
    let mut callee = Client::udp("127.0.0.1:9".parse().unwrap()).await;
    let mut config = outbound_config(&callee, 3);
    config.outbound.confirm.enabled = false;
    let survey = &mut config.outbound.survey;
    survey.enabled = true;
    survey.trunks = vec!["main".into()];
    survey.window = "00:00-23:59".into();
    survey.ticket_types = vec!["fault_report".into()];
    let server = start(config).await;
    callee.server = server.udp_addrs[0];
    let (number, id) = resolved_fault(&server).await;
    for action in [Action::Confirm, Action::Close] {
        server
            .store()
            .transition(&number, action, Actor::staff("zhang.wei"), None, None)
            .await
            .unwrap();
    }

    let invite = expect_invite(&mut callee).await;
    assert_eq!(invite.header("X-Ticket-Number"), Some(number.as_str()));
    answer_and_press(&mut callee, &invite, "survey1", "4").await;

    let (call, attempts) = settled(&server).await;
    assert_eq!(call.state, OutboundState::Done, "{call:?} {attempts:?}");
    assert_eq!(call.purpose.code(), "survey");
    let events = server.store().events(id).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "survey" && e.detail.starts_with("score 4")),
        "{events:?}"
    );
    server.shutdown().await;
}
