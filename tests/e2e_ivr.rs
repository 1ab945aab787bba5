//! End-to-end IVR calls: the test client dials a number, keys through a
//! dialplan by RFC 4733, and the ticket it reports exists in the store with
//! the right fields; the audio of the read-back is the ticket number's
//! digit prompts, byte for byte. Unknown numbers get 404.

mod support;

use hotline::media::prompt::PromptLibrary;
use hotline::sip::sdp::{self, Codec};
use hotline::tickets::model::{Channel, CustomerLevel, Status, TicketType};
use hotline::tickets::store::TicketQuery;
use rtp_rs::RtpReader;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::{start, test_config, Client};

const PLAN: &str = r##"
[dialplan]
name = "e2e"
entries = { "10000" = "main", "100009" = "service" }

[nodes.main]
kind = "menu"
say = ["welcome"]
keys = { "9" = "service" }
on_failure = "bye"

[nodes.service]
kind = "collect"
say = ["welcome"]
variable = "service_number"
min_digits = 5
max_digits = 12
terminator = "#"
confirm = { before = ["welcome"], after = ["goodbye"] }
next = "category"
on_failure = "bye"

[nodes.category]
kind = "set"
variable = "category"
value = "virtual_network"
next = "create"

[nodes.create]
kind = "ticket_create"
type = "fault_report"
category = "${category}"
service_number = "${service_number}"
description = "IVR fault report"
next = "read_back"
on_error = "bye"

[nodes.read_back]
kind = "play"
say = [{ digits = "${ticket.number}" }, { silence_ms = 200 }]
next = "bye"

[nodes.bye]
kind = "hangup"
"##;

fn repo_prompts() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts"))
}

fn ivr_config(plans: &Path) -> hotline::config::Config {
    let mut config = test_config();
    config.prompts.dir = repo_prompts().to_path_buf();
    config.ivr.dialplans_dir = plans.to_path_buf();
    config
}

fn gateway_rtp(answer: &[u8]) -> SocketAddr {
    let audio = sdp::parse_body(answer).unwrap().audio.unwrap();
    SocketAddr::new(audio.connection.unwrap(), audio.port)
}

/// Every PCMU payload byte heard until the stream stops (the gateway hangs
/// up after the read-back), then the gateway's BYE is answered.
async fn listen_until_bye(client: &mut Client, limit: Duration) -> Vec<u8> {
    let mut heard = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 2048];
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), client.rtp.recv_from(&mut buf)).await
        {
            Ok(Ok((len, _))) => {
                if let Ok(reader) = RtpReader::new(&buf[..len]) {
                    if reader.payload_type() == 0 {
                        heard.extend_from_slice(reader.payload());
                    }
                }
            }
            _ => break,
        }
    }
    assert!(
        client.answer_bye(Duration::from_secs(5)).await.is_some(),
        "the gateway hangs up after the read-back"
    );
    heard
}

async fn report_fault(
    dialled: &str,
    keys_first: &str,
) -> (hotline::tickets::store::Ticket, Vec<u8>) {
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(plans.path().join("e2e.toml"), PLAN).unwrap();
    let server = start(ivr_config(plans.path())).await;
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let offer = client.g711_offer();
    let (response, mut dialog) = client.invite(dialled, Some(offer)).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    client.ack(&mut dialog).await;
    let gateway = gateway_rtp(&response.body);
    let (mut sequence, mut timestamp) = (100u16, 8_000u32);
    // Keys typed over the prompts: barge-in and type-ahead take them all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .send_keys(
            gateway,
            &format!("{keys_first}55512345#"),
            &mut sequence,
            &mut timestamp,
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .send_keys(gateway, "1", &mut sequence, &mut timestamp)
        .await;
    let heard = listen_until_bye(&mut client, Duration::from_secs(30)).await;
    let tickets = server
        .store()
        .list_tickets(&TicketQuery {
            contact_phone: Some("13800138000".into()),
            ..TicketQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(tickets.len(), 1, "one ticket for the call");
    let ticket = tickets.into_iter().next().unwrap();
    // The call record holds the path and links the ticket.
    let mut records = Vec::new();
    for _ in 0..50 {
        records = server
            .store()
            .calls_by_sip_id(&dialog.call_id)
            .await
            .unwrap();
        if !records.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(records.len(), 1, "one call record");
    let (caller, number, disposition, path, linked) = &records[0];
    assert_eq!(caller, "13800138000");
    assert_eq!(number, dialled);
    assert_eq!(disposition, "ivr");
    assert!(path.contains("\"collected 55512345\""), "{path}");
    assert_eq!(linked, &vec![ticket.number.to_string()]);
    server.shutdown().await;
    (ticket, heard)
}

fn assert_read_back(ticket: &hotline::tickets::store::Ticket, heard: &[u8]) {
    let library = PromptLibrary::load_dir(repo_prompts()).unwrap();
    let expected: Vec<u8> = ticket
        .number
        .to_string()
        .chars()
        .flat_map(|d| {
            library
                .get(&format!("zh/digits/{d}"))
                .unwrap()
                .encoded(Codec::Pcmu)
                .to_vec()
        })
        .collect();
    assert!(
        heard
            .windows(expected.len())
            .any(|w| w == expected.as_slice()),
        "the read-back is the ticket number's digit prompts, byte for byte ({} bytes heard)",
        heard.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialling_10000_and_pressing_9_reports_a_fault_and_reads_the_number_back() {
    let (ticket, heard) = report_fault("10000", "9").await;
    assert_eq!(ticket.ticket_type, TicketType::FaultReport);
    assert_eq!(ticket.category, "virtual_network");
    assert_eq!(ticket.service_number.as_deref(), Some("55512345"));
    assert_eq!(ticket.channel, Channel::Voice);
    assert_eq!(ticket.status, Status::New);
    assert_eq!(ticket.level, CustomerLevel::LocalC);
    assert_eq!(
        ticket.due.repair,
        Some(ticket.created_at + chrono::Duration::hours(48))
    );
    assert_read_back(&ticket, &heard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialling_100009_goes_straight_to_fault_reporting() {
    let (ticket, heard) = report_fault("100009", "").await;
    assert_eq!(ticket.service_number.as_deref(), Some("55512345"));
    assert_read_back(&ticket, &heard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_without_a_dialplan_gets_404() {
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(plans.path().join("e2e.toml"), PLAN).unwrap();
    let server = start(ivr_config(plans.path())).await;
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let offer = client.g711_offer();
    let (response, _) = client.invite("12345", Some(offer)).await;
    assert_eq!(response.status(), Some(404));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_to_start_with_a_bad_dialplan_and_names_every_problem() {
    let plans = tempfile::tempdir().unwrap();
    let bad = PLAN
        .replace("next = \"read_back\"", "next = \"read_bak\"")
        .replace("say = [\"welcome\"]\nkeys", "say = [\"welcom\"]\nkeys");
    std::fs::write(plans.path().join("e2e.toml"), bad).unwrap();
    let Err(error) = hotline::server::Server::start(ivr_config(plans.path())).await else {
        panic!("a bad dialplan was accepted");
    };
    let message = format!("{error:#}");
    assert!(message.contains("e2e.toml line"), "{message}");
    assert!(message.contains("\"read_bak\""), "{message}");
    assert!(message.contains("\"welcom\""), "{message}");
}

/// Dials 10000, keys `keys` over the prompts and returns the client, its
/// dialog and the gateway's RTP address.
async fn dial_and_key(
    server: &hotline::server::Server,
    keys: &str,
) -> (Client, support::Dialog, SocketAddr) {
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let offer = client.g711_offer();
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    client.ack(&mut dialog).await;
    let gateway = gateway_rtp(&response.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut sequence, mut timestamp) = (100u16, 8_000u32);
    client
        .send_keys(gateway, keys, &mut sequence, &mut timestamp)
        .await;
    (client, dialog, gateway)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_new_calls_only_and_a_broken_plan_changes_nothing() {
    let plans = tempfile::tempdir().unwrap();
    let file = plans.path().join("e2e.toml");
    std::fs::write(&file, PLAN).unwrap();
    let server = start(ivr_config(plans.path())).await;

    // A call in progress on version 1: in the main menu.
    let mut old_call = Client::udp(server.udp_addrs[0]).await;
    let offer = old_call.g711_offer();
    let (response, mut old_dialog) = old_call.invite("10000", Some(offer)).await;
    old_call.ack(&mut old_dialog).await;
    let old_gateway = gateway_rtp(&response.body);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Version 2: key 9 now hangs up.
    let v2 = PLAN.replace(
        "keys = { \"9\" = \"service\" }",
        "keys = { \"9\" = \"bye\" }",
    );
    assert_ne!(v2, PLAN);
    std::fs::write(&file, &v2).unwrap();
    let summary = server.reload().await.expect("version 2 loads");
    assert!(summary.contains("10000"), "{summary}");

    // The old call still runs version 1: 9 leads to fault reporting.
    let (mut sequence, mut timestamp) = (100u16, 8_000u32);
    old_call
        .send_keys(old_gateway, "955512345#", &mut sequence, &mut timestamp)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    old_call
        .send_keys(old_gateway, "1", &mut sequence, &mut timestamp)
        .await;
    listen_until_bye(&mut old_call, Duration::from_secs(30)).await;
    let tickets = server
        .store()
        .list_tickets(&TicketQuery::default())
        .await
        .unwrap();
    assert_eq!(
        tickets.len(),
        1,
        "the call that started on version 1 kept it"
    );

    // A new call runs version 2: 9 hangs up at once, no ticket.
    let (mut new_call, _, _) = dial_and_key(&server, "9").await;
    assert!(new_call.answer_bye(Duration::from_secs(5)).await.is_some());

    // A broken version 3 is refused with its problems; version 2 stays.
    std::fs::write(
        &file,
        v2.replace("next = \"read_back\"", "next = \"nowhere\""),
    )
    .unwrap();
    let error = server.reload().await.expect_err("a broken plan is refused");
    assert!(format!("{error:#}").contains("\"nowhere\""), "{error:#}");
    let (mut third_call, _, _) = dial_and_key(&server, "9").await;
    assert!(third_call
        .answer_bye(Duration::from_secs(5))
        .await
        .is_some());
    let tickets = server
        .store()
        .list_tickets(&TicketQuery::default())
        .await
        .unwrap();
    assert_eq!(tickets.len(), 1);
    server.shutdown().await;
}
