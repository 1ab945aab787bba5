//! `GET /metrics` counts what was driven through a running gateway: calls
//! answered, transferred by REFER, hung up in the menu, refused by the
//! ACL, for a number without a dialplan and for want of a common codec;
//! RFC 4733 keys and the RTP packets that carried them; IVR node entries
//! and exits; tickets from a call and from a signed SMS webhook (a retry of
//! it counted once); SLA breaches; the outbox backlog. The output must
//! also parse as the Prometheus text format (CI runs `promtool check
//! metrics` on a release gateway's output too).
//!
//! The recorder is global to the process, so this file holds one test and
//! starts one gateway.

mod support;

use hotline::config::{TransferMode, TransferTarget};
use hotline::server::Server;
use hotline::sip::message::Message;
use hotline::sip::sdp;
use hotline::sms::signature;
use hotline::tickets::model::Channel;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::{http_get, http_request, start, test_config, Client};

const PLAN: &str = r##"
[dialplan]
name = "metrics"
entries = { "10000" = "main" }

[nodes.main]
kind = "menu"
say = ["welcome"]
keys = { "2" = "complaint" }
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
on_failure = "bye"

[nodes.bye]
kind = "hangup"
"##;

const SECRET: &str = "metrics-test-secret";

async fn gateway(plans: &Path) -> Server {
    std::fs::write(plans.join("metrics.toml"), PLAN).unwrap();
    let mut config = test_config();
    config.prompts.dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts")).to_path_buf();
    config.ivr.dialplans_dir = plans.to_path_buf();
    // A second listener on ::1, which is not trusted: its calls get 403.
    config.sip.udp.push("[::1]:0".parse().unwrap());
    config.sip.trusted_networks = vec!["127.0.0.0/8".parse().unwrap()];
    config.sms.generic_secret = SECRET.to_string();
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

/// A scrape: every sample by name and labels.
struct Scrape(BTreeMap<(String, BTreeMap<String, String>), f64>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            let value: f64 = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let labels = rest
                        .strip_suffix('}')
                        .expect("labels close")
                        .split(',')
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (key, value) = pair.split_once('=').expect("label=value");
                            (key.to_string(), value.trim_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
                None => (series.to_string(), BTreeMap::new()),
            };
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{name}"
            );
            samples.insert((name, labels), value);
        }
        Scrape(samples)
    }

    /// The sample with exactly these labels (0 when absent).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .get(&(name.to_string(), labels))
            .copied()
            .unwrap_or(0.0)
    }

    /// The sum over every label set of `name`.
    fn sum(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, v)| v)
            .sum()
    }
}

async fn scrape(server: &Server) -> (String, Scrape) {
    let (status, content_type, body) = http_get(server.http_addr, "/metrics", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let scrape = Scrape::parse(&body);
    (body, scrape)
}

/// Dials `number` from a client on `server_addr` with `offer`; the status.
async fn dial(server_addr: SocketAddr, number: &str, offer: Option<&str>) -> u16 {
    let mut client = Client::udp(server_addr).await;
    let offer = offer.map_or_else(|| client.g711_offer(), str::to_string);
    let (response, _) = client.invite(number, Some(offer)).await;
    response.status().unwrap()
}

async fn webhook(server: &Server, id: &str, text: &str) -> u16 {
    let body = serde_json::json!({
        "id": id,
        "from": "13700137000",
        "to": "10000",
        "text": text,
        "received_at": chrono::Utc::now().to_rfc3339(),
    })
    .to_string();
    let at = chrono::Utc::now().timestamp();
    let signed = signature::generic_signature(SECRET.as_bytes(), at, body.as_bytes());
    let (status, _, reply) = http_request(
        server.http_addr,
        "POST",
        "/sms/generic",
        &[
            ("Content-Type", "application/json".to_string()),
            (signature::TIMESTAMP_HEADER, at.to_string()),
            (signature::SIGNATURE_HEADER, signed),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_was_driven() {
    let plans = tempfile::tempdir().unwrap();
    let server = gateway(plans.path()).await;
    let (udp, udp6) = (server.udp_addrs[0], server.udp_addrs[1]);
    let (_, before) = scrape(&server).await;
    assert_eq!(before.get("hotline_calls_offered_total", &[]), 0.0);

    // A caller keys 2: a complaint ticket, then a REFER the caller takes.
    let mut client = Client::udp(udp).await;
    let offer = client.g711_offer();
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200));
    client.ack(&mut dialog).await;
    let audio = sdp::parse_body(&response.body).unwrap().audio.unwrap();
    let gateway_rtp = SocketAddr::new(audio.connection.unwrap(), audio.port);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut sequence, mut timestamp) = (100u16, 8_000u32);
    client
        .send_keys(gateway_rtp, "2", &mut sequence, &mut timestamp)
        .await;
    let key_packets = hotline::media::rfc4733::press_packets('2', 8_000, 100, 20)
        .unwrap()
        .len();
    // The media worker reads its socket every 20 ms: let it read them all
    // before the transfer ends the call.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refer = client
        .try_expect(Duration::from_secs(20), &|m: &Message| {
            m.method().is_some_and(|m| m.as_str() == "REFER")
        })
        .await
        .expect("REFER");
    client.reply(&refer, 202, "Accepted").await;
    client
        .notify_refer(
            &mut dialog,
            "SIP/2.0 200 OK",
            "terminated;reason=noresource",
        )
        .await;
    assert!(client.answer_bye(Duration::from_secs(5)).await.is_some());

    // A caller hangs up in the main menu.
    let mut client = Client::udp(udp).await;
    let offer = client.g711_offer();
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200));
    client.ack(&mut dialog).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(client.bye(&mut dialog).await, 200);

    // Refused: no dialplan, no common codec (G.729 only), untrusted source.
    assert_eq!(dial(udp, "99999", None).await, 404);
    let g729_only = Client::udp(udp)
        .await
        .offer("18", "a=rtpmap:18 G729/8000\r\n", "");
    assert_eq!(dial(udp, "10000", Some(&g729_only)).await, 488);
    assert_eq!(dial(udp6, "10000", None).await, 403);

    // SMS: a fault report, its retry, and a help request.
    webhook(&server, "m-1", "FAULT line down since noon").await;
    webhook(&server, "m-1", "FAULT line down since noon").await;
    webhook(&server, "m-2", "HELP").await;

    let store = server.store().clone();
    let breaches = store
        .mark_breaches(store.now() + chrono::Duration::days(365))
        .await
        .unwrap();
    assert!(!breaches.is_empty());
    // The call's record is written once the call has ended.
    for _ in 0..100 {
        if store.recent_calls(10).await.unwrap().len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (text, m) = scrape(&server).await;
    assert_eq!(m.get("hotline_calls_offered_total", &[]), 5.0, "{text}");
    assert_eq!(m.get("hotline_calls_answered_total", &[]), 2.0, "{text}");
    for reason in ["acl", "no_dialplan", "codec"] {
        assert_eq!(
            m.get("hotline_calls_rejected_total", &[("reason", reason)]),
            1.0,
            "{reason}: {text}"
        );
    }
    assert_eq!(
        m.get("hotline_calls_rejected_total", &[("reason", "rate")]),
        0.0
    );
    assert_eq!(m.get("hotline_calls_active", &[]), 0.0);
    // Set up by the call glue: two answered, two refused there.
    assert_eq!(
        m.get("hotline_call_setup_seconds_count", &[]),
        4.0,
        "{text}"
    );
    assert_eq!(
        m.get(
            "hotline_calls_ended_total",
            &[("disposition", "transferred")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "hotline_calls_ended_total",
            &[("disposition", "remote_bye")]
        ),
        1.0
    );
    assert_eq!(m.get("hotline_calls_contained_total", &[]), 1.0);
    assert_eq!(
        m.get("hotline_dtmf_keys_total", &[("source", "rfc4733")]),
        1.0
    );
    assert_eq!(m.sum("hotline_dtmf_keys_total"), 1.0);
    assert_eq!(
        m.get("hotline_rtp_packets_received_total", &[]),
        key_packets as f64,
        "{text}"
    );
    assert!(m.get("hotline_rtp_packets_sent_total", &[]) > 0.0);
    assert_eq!(m.get("hotline_rtp_packets_late_total", &[]), 0.0);
    let node = |name: &str, node: &str| m.get(name, &[("dialplan", "metrics"), ("node", node)]);
    assert_eq!(node("hotline_ivr_node_entries_total", "main"), 2.0);
    assert_eq!(node("hotline_ivr_node_entries_total", "complaint"), 1.0);
    assert_eq!(node("hotline_ivr_node_entries_total", "agent"), 1.0);
    assert_eq!(
        m.sum("hotline_ivr_node_entries_total"),
        m.sum("hotline_ivr_node_exits_total"),
        "every node entered was left: {text}"
    );
    assert_eq!(
        m.get(
            "hotline_transfers_total",
            &[("mode", "refer"), ("outcome", "accepted")]
        ),
        1.0
    );
    assert_eq!(m.sum("hotline_transfers_total"), 1.0);

    assert_eq!(m.get("hotline_sms_received_total", &[]), 2.0, "{text}");
    let sms_tickets = store
        .list_tickets(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.channel == Channel::Sms)
        .collect::<Vec<_>>();
    assert_eq!(sms_tickets.len(), 1);
    assert_eq!(
        m.get(
            "hotline_tickets_created_total",
            &[
                ("channel", "sms"),
                ("type", sms_tickets[0].ticket_type.code())
            ]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        m.get(
            "hotline_tickets_created_total",
            &[("channel", "voice"), ("type", "complaint")]
        ),
        1.0
    );
    for clock in ["dispatch", "accept", "repair"] {
        let marked = breaches.iter().filter(|b| b.clock.code() == clock).count();
        assert_eq!(
            m.get("hotline_sla_breaches_total", &[("clock", clock)]),
            marked as f64,
            "{clock}"
        );
    }
    assert_eq!(m.sum("hotline_sla_breaches_total"), breaches.len() as f64);
    let outbox = store.outbox_summary().await.unwrap();
    assert!(outbox.pending > 0, "texts wait: no provider is configured");
    assert_eq!(
        m.get("hotline_outbox_depth", &[]),
        (outbox.pending + outbox.sending) as f64
    );
    assert!(m.get("hotline_outbox_oldest_age_seconds", &[]) >= 0.0);
    assert!(m.get("hotline_db_write_seconds_count", &[("kind", "ticket")]) >= 1.0);
    assert!(m.get("hotline_db_write_seconds_count", &[("kind", "call_record")]) >= 4.0);
    assert!(m.get("hotline_db_ping_seconds", &[]) > 0.0);
    for name in ["hotline_calls_offered_total", "hotline_call_setup_seconds"] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name} has help");
    }
    server.shutdown().await;
}
