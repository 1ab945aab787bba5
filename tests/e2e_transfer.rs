//! End-to-end blind transfers: the Rust test client is the caller, presses
//! a menu key whose node transfers to the configured target "agents", and
//! plays the transferee's part of RFC 3515: it receives the gateway's
//! REFER, checks the context in the Refer-To's URI headers (and that the
//! context token resolves in the store), answers 202 and reports by NOTIFY.
//! A 200 sipfrag makes the gateway hang up with BYE and record the call as
//! transferred; a 486 sends the caller to the transfer node's fallback.

mod support;

use hotline::config::{TransferMode, TransferTarget};
use hotline::media::prompt::PromptLibrary;
use hotline::server::Server;
use hotline::sip::headers::{percent_decode, NameAddr, Uri};
use hotline::sip::message::Message;
use hotline::sip::sdp::{self, Codec};
use hotline::tickets::store::TicketQuery;
use rtp_rs::RtpReader;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::{start, test_config, Client};

const PLAN: &str = r##"
[dialplan]
name = "transfer"
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
say = ["transferring"]
on_failure = "busy"

[nodes.busy]
kind = "hangup"
say = ["agents_busy"]

[nodes.bye]
kind = "hangup"
"##;

const QUEUE: &str = "sip:queue@127.0.0.1:5070";
const CALLER: &str = "13800138000";

fn repo_prompts() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts"))
}

async fn gateway_with_plan(plans: &Path) -> Server {
    std::fs::write(plans.join("transfer.toml"), PLAN).unwrap();
    let mut config = test_config();
    config.prompts.dir = repo_prompts().to_path_buf();
    config.ivr.dialplans_dir = plans.to_path_buf();
    config.transfer.timeout_secs = 10;
    config.transfer.targets.insert(
        "agents".into(),
        TransferTarget {
            uri: QUEUE.into(),
            mode: TransferMode::Refer,
            username: None,
            password: None,
            srtp: false,
        },
    );
    start(config).await
}

/// Dials 10000, presses `key` over the welcome prompt and waits for the
/// gateway's REFER.
async fn press_and_get_referred(server: &Server, key: &str) -> (Client, support::Dialog, Message) {
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let offer = client.g711_offer();
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    client.ack(&mut dialog).await;
    let audio = sdp::parse_body(&response.body).unwrap().audio.unwrap();
    let gateway = SocketAddr::new(audio.connection.unwrap(), audio.port);
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
        .expect("the gateway sends REFER after the transferring prompt");
    (client, dialog, refer)
}

/// The Refer-To's target and its URI headers, unescaped.
fn refer_to_parts(refer: &Message) -> (String, BTreeMap<String, String>) {
    let value = refer.header("Refer-To").expect("Refer-To");
    let address = NameAddr::parse(value).expect("Refer-To is a name-addr");
    let uri = Uri::parse(&address.uri).unwrap();
    let target = address.uri.split('?').next().unwrap().to_string();
    let headers = uri
        .headers
        .unwrap_or_default()
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            (
                percent_decode(name).unwrap(),
                percent_decode(value).unwrap(),
            )
        })
        .collect();
    (target, headers)
}

/// The call's record (caller, dialled, disposition, path, tickets), once
/// written.
async fn call_record(
    server: &Server,
    call_id: &str,
) -> (String, String, String, String, Vec<String>) {
    for _ in 0..100 {
        let mut records = server.store().calls_by_sip_id(call_id).await.unwrap();
        if let Some(record) = records.pop() {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no call record for {call_id}");
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_with_a_ticket_is_referred_with_its_context_and_hung_up_after_a_200_notify() {
    let plans = tempfile::tempdir().unwrap();
    let server = gateway_with_plan(plans.path()).await;
    let (mut client, mut dialog, refer) = press_and_get_referred(&server, "2").await;

    let tickets = server
        .store()
        .list_tickets(&TicketQuery {
            contact_phone: Some(CALLER.into()),
            ..TicketQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        tickets.len(),
        1,
        "the complaint ticket exists before the REFER"
    );
    let number = tickets[0].number.to_string();

    assert_eq!(
        refer.request_uri(),
        Some(format!("sip:{CALLER}@{}", client.local).as_str()),
        "REFER goes to the caller's Contact"
    );
    assert_eq!(refer.header("Call-ID"), Some(dialog.call_id.as_str()));
    assert_eq!(refer.header("To"), Some(dialog.local.as_str()));
    assert!(refer
        .header("Referred-By")
        .is_some_and(|by| by.starts_with("<sip:10000@")));
    let (target, headers) = refer_to_parts(&refer);
    assert_eq!(target, QUEUE);
    assert_eq!(headers.get("X-Ticket-Number"), Some(&number), "{headers:?}");
    assert_eq!(
        headers.get("X-Customer-Level").map(String::as_str),
        Some("local_c")
    );
    assert_eq!(headers.get("X-Caller").map(String::as_str), Some(CALLER));
    let token = headers.get("X-Context-Token").expect("a context token");
    assert_eq!(
        headers.get("User-to-User"),
        Some(&format!("{};encoding=hex", hex(token)))
    );
    let context = server
        .store()
        .transfer_context(token)
        .await
        .unwrap()
        .expect("the token resolves");
    assert_eq!(context.ticket_number.as_deref(), Some(number.as_str()));
    assert_eq!(context.caller, CALLER);
    assert_eq!(context.target, "agents");
    assert_eq!(context.sip_call_id, dialog.call_id);

    client.reply(&refer, 202, "Accepted").await;
    assert_eq!(
        client
            .notify_refer(&mut dialog, "SIP/2.0 100 Trying", "active;expires=60")
            .await,
        200
    );
    assert_eq!(
        client
            .notify_refer(
                &mut dialog,
                "SIP/2.0 200 OK",
                "terminated;reason=noresource"
            )
            .await,
        200
    );
    let bye = client
        .answer_bye(Duration::from_secs(5))
        .await
        .expect("the gateway hangs up the transferred caller");
    assert_eq!(bye.header("Call-ID"), Some(dialog.call_id.as_str()));

    let (caller, dialled, disposition, path, linked) = call_record(&server, &dialog.call_id).await;
    assert_eq!((caller.as_str(), dialled.as_str()), (CALLER, "10000"));
    assert_eq!(disposition, "transferred");
    assert!(path.contains("\"transfer to agents\""), "{path}");
    assert!(path.contains("\"transferred to agents\""), "{path}");
    assert_eq!(linked, vec![number]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_486_notify_sends_the_caller_to_the_fallback_which_they_hear() {
    let plans = tempfile::tempdir().unwrap();
    let server = gateway_with_plan(plans.path()).await;
    let (mut client, mut dialog, refer) = press_and_get_referred(&server, "0").await;
    let (_, headers) = refer_to_parts(&refer);
    assert_eq!(headers.get("X-Ticket-Number"), None, "no ticket yet");
    assert_eq!(
        headers.get("X-Customer-Level").map(String::as_str),
        Some("local_c")
    );
    assert!(headers.contains_key("X-Context-Token"), "{headers:?}");

    client.reply(&refer, 202, "Accepted").await;
    // Drain what played so far (welcome, transferring, silence), so that
    // the socket's buffer has room for the fallback.
    let _ = client.receive_rtp(Duration::from_millis(100)).await;
    assert_eq!(
        client
            .notify_refer(
                &mut dialog,
                "SIP/2.0 486 Busy Here",
                "terminated;reason=noresource"
            )
            .await,
        200
    );

    let mut heard = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(Ok((len, _))) =
        tokio::time::timeout(Duration::from_millis(500), client.rtp.recv_from(&mut buf)).await
    {
        if let Ok(reader) = RtpReader::new(&buf[..len]) {
            if reader.payload_type() == 0 {
                heard.extend_from_slice(reader.payload());
            }
        }
    }
    let library = PromptLibrary::load_dir(repo_prompts()).unwrap();
    let busy = library
        .get("zh/agents_busy")
        .unwrap()
        .encoded(Codec::Pcmu)
        .to_vec();
    assert!(
        heard.windows(busy.len()).any(|w| w == busy.as_slice()),
        "the caller hears the fallback prompt ({} bytes heard)",
        heard.len()
    );
    assert!(
        client.answer_bye(Duration::from_secs(5)).await.is_some(),
        "the fallback hangs up"
    );

    let (_, _, disposition, path, _) = call_record(&server, &dialog.call_id).await;
    assert_eq!(disposition, "ivr");
    assert!(path.contains("\"transfer failed: busy\""), "{path}");
    assert!(path.contains("\"node\":\"busy\""), "{path}");
    server.shutdown().await;
}
