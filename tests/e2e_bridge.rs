//! End-to-end bridged transfers (`mode = "bridge"`): the Rust test client
//! is the caller, presses the menu key whose node transfers to "agents",
//! and a second test client plays the agent's phone (a UAS on loopback).
//! The gateway must call the agent itself with the context headers, play
//! ringback to the caller meanwhile, answer digest challenges, relay the
//! audio both ways once answered (transcoding the caller's PCMU to the
//! agent's PCMA and back), end both legs when either hangs up, and take
//! the dialplan's fallback when the agent is busy or does not answer.

mod support;

use hotline::config::{Config, TransferMode, TransferTarget};
use hotline::media::g711;
use hotline::media::prompt::PromptLibrary;
use hotline::server::Server;
use hotline::sip::message::Message;
use hotline::sip::sdp::{self, Codec};
use md5::{Digest, Md5};
use rtp_rs::RtpReader;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::{start, test_config, Client, Dialog};

const PLAN: &str = r##"
[dialplan]
name = "bridge"
entries = { "10000" = "main" }

[nodes.main]
kind = "menu"
say = ["welcome"]
keys = { "0" = "agent" }
on_failure = "bye"

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

const CALLER: &str = "13800138000";
const CALLER_SSRC: u32 = 0x00CA_11E5;
const AGENT_SSRC: u32 = 0x00A6_E270;
const LONG: Duration = Duration::from_secs(20);

fn repo_prompts() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts"))
}

/// A gateway whose target "agents" is `agent`, at `sip:agents@HOST:PORT`
/// with HOST its IP address, or `localhost` (a name the gateway resolves)
/// when `by_name`.
async fn gateway(
    plans: &Path,
    agent: &Client,
    credentials: Option<(&str, &str)>,
    ring_timeout_secs: u64,
    by_name: bool,
) -> Server {
    let uri = if by_name {
        format!("sip:agents@localhost:{}", agent.local.port())
    } else {
        format!("sip:agents@{}", agent.local)
    };
    gateway_for(plans, uri, credentials, ring_timeout_secs).await
}

/// A gateway whose target "agents" is `uri`.
async fn gateway_for(
    plans: &Path,
    uri: String,
    credentials: Option<(&str, &str)>,
    ring_timeout_secs: u64,
) -> Server {
    start(bridge_config(plans, uri, credentials, ring_timeout_secs)).await
}

/// The configuration of [`gateway_for`].
fn bridge_config(
    plans: &Path,
    uri: String,
    credentials: Option<(&str, &str)>,
    ring_timeout_secs: u64,
) -> Config {
    std::fs::write(plans.join("bridge.toml"), PLAN).unwrap();
    let mut config = test_config();
    config.prompts.dir = repo_prompts().to_path_buf();
    config.ivr.dialplans_dir = plans.to_path_buf();
    config.transfer.ring_timeout_secs = ring_timeout_secs;
    config.transfer.targets.insert(
        "agents".into(),
        TransferTarget {
            uri,
            mode: TransferMode::Bridge,
            username: credentials.map(|(u, _)| u.to_string()),
            password: credentials.map(|(_, p)| p.to_string()),
            srtp: false,
        },
    );
    config
}

/// Dials 10000 with PCMU only and presses 0; returns the caller, its
/// dialog and the gateway's RTP address for it.
async fn dial_and_press_0(server: &Server) -> (Client, Dialog, SocketAddr) {
    dial_from_and_press_0(server, None, &[]).await
}

/// `dial_and_press_0` with another From and extra INVITE headers.
async fn dial_from_and_press_0(
    server: &Server,
    from: Option<&str>,
    headers: &[(&str, &str)],
) -> (Client, Dialog, SocketAddr) {
    let mut caller = Client::udp(server.udp_addrs[0]).await;
    let offer = caller.offer(
        "0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        "a=sendrecv\r\n",
    );
    let (response, mut dialog) = caller
        .invite_from("10000", from, Some(offer), headers)
        .await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    caller.ack(&mut dialog).await;
    let audio = sdp::parse_body(&response.body).unwrap().audio.unwrap();
    let gateway_rtp = SocketAddr::new(audio.connection.unwrap(), audio.port);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut sequence, mut timestamp) = (100u16, 8_000u32);
    caller
        .send_keys(gateway_rtp, "0", &mut sequence, &mut timestamp)
        .await;
    (caller, dialog, gateway_rtp)
}

async fn expect_invite(agent: &mut Client) -> Message {
    agent
        .request_named("INVITE", LONG)
        .await
        .expect("the gateway calls the agent")
}

/// The agent's answer: PCMA only, so the gateway must transcode.
fn agent_answer(agent: &Client) -> String {
    agent.offer(
        "8 101",
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        "a=sendrecv\r\n",
    )
}

/// 20 ms of a sine tone at `hz`, packet `index` of a continuous stream.
fn tone(codec: Codec, hz: f64, index: u16) -> Vec<u8> {
    let pcm: Vec<i16> = (0..160)
        .map(|i| {
            let n = f64::from(u32::from(index) * 160 + i);
            (8000.0 * (2.0 * std::f64::consts::PI * hz * n / 8000.0).sin()) as i16
        })
        .collect();
    let mut out = Vec::new();
    g711::encode(codec, &pcm, &mut out);
    out
}

/// The frequency of the tone in `payloads` by counting zero crossings
/// (with a little hysteresis so that silence counts for nothing).
fn frequency(codec: Codec, payloads: &[Vec<u8>]) -> f64 {
    let mut samples = Vec::new();
    let mut decoded = Vec::new();
    for payload in payloads {
        g711::decode(codec, payload, &mut decoded);
        samples.extend_from_slice(&decoded);
    }
    let mut crossings = 0;
    let mut positive: Option<bool> = None;
    for sample in samples.iter().copied() {
        if sample.abs() < 500 {
            continue;
        }
        let now = sample > 0;
        if positive.is_some_and(|was| was != now) {
            crossings += 1;
        }
        positive = Some(now);
    }
    f64::from(crossings) / 2.0 / (samples.len() as f64 / 8000.0)
}

/// The packets that carry sound (RMS above 2000), not silence.
fn loud(codec: Codec, payloads: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut decoded = Vec::new();
    payloads
        .iter()
        .filter(|payload| {
            g711::decode(codec, payload, &mut decoded);
            let energy: f64 = decoded.iter().map(|&s| f64::from(s).powi(2)).sum();
            (energy / decoded.len().max(1) as f64).sqrt() > 2000.0
        })
        .cloned()
        .collect()
}

/// Payloads (of `payload_type`) and SSRCs of received RTP packets.
fn audio_of(packets: &[Vec<u8>], payload_type: u8) -> (Vec<Vec<u8>>, Vec<u32>, Vec<u16>) {
    let mut payloads = Vec::new();
    let mut ssrcs = Vec::new();
    let mut sequences = Vec::new();
    for packet in packets {
        if let Ok(reader) = RtpReader::new(packet) {
            if reader.payload_type() == payload_type {
                payloads.push(reader.payload().to_vec());
                ssrcs.push(reader.ssrc());
                sequences.push(u16::from(reader.sequence_number()));
            }
        }
    }
    (payloads, ssrcs, sequences)
}

fn gateway_rtp_in(invite: &Message) -> SocketAddr {
    let audio = sdp::parse_body(&invite.body).unwrap().audio.unwrap();
    SocketAddr::new(audio.connection.unwrap(), audio.port)
}

/// The call's record (caller, dialled, disposition, path, tickets).
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

/// Waits for the fallback: the caller hears "agents are busy" and is hung up.
async fn expect_fallback(server: &Server, caller: &mut Client, dialog: &Dialog) {
    expect_fallback_within(server, caller, dialog, Duration::from_secs(8)).await
}

/// [`expect_fallback`], the whole "agents are busy" prompt heard within `within`.
async fn expect_fallback_within(
    server: &Server,
    caller: &mut Client,
    dialog: &Dialog,
    within: Duration,
) {
    let mut heard = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = tokio::time::Instant::now() + within;
    let library = PromptLibrary::load_dir(repo_prompts()).unwrap();
    let busy = library
        .get("zh/agents_busy")
        .unwrap()
        .encoded(Codec::Pcmu)
        .to_vec();
    while tokio::time::Instant::now() < deadline {
        if let Ok(Ok((len, _))) =
            tokio::time::timeout(Duration::from_millis(500), caller.rtp.recv_from(&mut buf)).await
        {
            if let Ok(reader) = RtpReader::new(&buf[..len]) {
                if reader.payload_type() == 0 {
                    heard.extend_from_slice(reader.payload());
                }
            }
        }
        if heard.windows(busy.len()).any(|w| w == busy.as_slice()) {
            break;
        }
    }
    assert!(
        heard.windows(busy.len()).any(|w| w == busy.as_slice()),
        "the caller hears the fallback prompt ({} bytes heard)",
        heard.len()
    );
    assert!(
        caller.answer_bye(Duration::from_secs(5)).await.is_some(),
        "the fallback hangs up"
    );
    let (_, _, disposition, path, _) = call_record(server, &dialog.call_id).await;
    assert_eq!(disposition, "ivr");
    assert!(path.contains("\"transfer failed: "), "{path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_bridge_relays_audio_both_ways_and_the_agents_bye_ends_the_caller() {
    let plans = tempfile::tempdir().unwrap();
    // The agent needs the gateway's address to answer requests; the gateway
    // needs the agent's for its config: bind the agent on a placeholder
    // server address first, then point it at the gateway.
    let mut agent = Client::udp("127.0.0.1:9".parse().unwrap()).await;
    let server = gateway(plans.path(), &agent, None, 20, false).await;
    agent.server = server.udp_addrs[0];
    let (mut caller, dialog, caller_rtp_at_gateway) = dial_and_press_0(&server).await;

    let invite = expect_invite(&mut agent).await;
    assert_eq!(
        invite.request_uri(),
        Some(format!("sip:agents@{}", agent.local).as_str())
    );
    assert!(
        invite
            .header("From")
            .is_some_and(|from| from.contains(&format!("sip:{CALLER}@"))),
        "the agent sees the caller's number: {invite:?}"
    );
    assert_eq!(
        invite.header("P-Asserted-Identity"),
        Some("<tel:+8613800138000>")
    );
    assert_eq!(invite.header("Privacy"), None);
    assert_eq!(invite.header("X-Customer-Level"), Some("local_c"));
    assert_eq!(invite.header("X-Caller"), Some(CALLER));
    let token = invite
        .header("X-Context-Token")
        .expect("a context token")
        .to_string();
    let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        invite.header("User-to-User"),
        Some(format!("{hex};encoding=hex").as_str())
    );
    let context = server
        .store()
        .transfer_context(&token)
        .await
        .unwrap()
        .expect("the token resolves");
    assert_eq!(context.target, "agents");
    let offer = sdp::parse_body(&invite.body).unwrap().audio.unwrap();
    for pt in [0u8, 8, 101] {
        assert!(offer.formats.contains(&pt), "{:?}", offer.formats);
    }
    let agent_rtp_at_gateway = gateway_rtp_in(&invite);
    assert_ne!(agent_rtp_at_gateway, caller_rtp_at_gateway, "a fresh port");

    agent
        .respond(&invite, 180, "Ringing", "agent1", &[], None)
        .await;
    // Whatever played before the INVITE is queued first; the last 200 ms
    // the caller heard while the agent rang are the 450 Hz ringback.
    let ringing = caller.receive_rtp(Duration::from_millis(500)).await;
    let (payloads, _, _) = audio_of(&ringing, 0);
    let last = &payloads[payloads.len().saturating_sub(10)..];
    let ringback = frequency(Codec::Pcmu, last);
    assert!(
        (430.0..470.0).contains(&ringback),
        "ringback at {ringback} Hz"
    );

    let mut agent_dialog = agent
        .respond(
            &invite,
            200,
            "OK",
            "agent1",
            &[],
            Some(agent_answer(&agent)),
        )
        .await;
    let ack = agent
        .request_named("ACK", Duration::from_secs(5))
        .await
        .expect("the gateway ACKs the 2xx");
    assert_eq!(ack.header("CSeq"), Some("1 ACK"));
    assert!(ack.header("To").is_some_and(|to| to.contains("tag=agent1")));

    let (_, caller_heard, agent_heard) = tokio::join!(
        async {
            tokio::join!(
                caller.send_audio(caller_rtp_at_gateway, 0, CALLER_SSRC, 75, |i| {
                    tone(Codec::Pcmu, 400.0, i)
                }),
                agent.send_audio(agent_rtp_at_gateway, 8, AGENT_SSRC, 75, |i| {
                    tone(Codec::Pcma, 1000.0, i)
                }),
            )
        },
        caller.receive_rtp(Duration::from_millis(1600)),
        agent.receive_rtp(Duration::from_millis(1600)),
    );
    let (to_caller, caller_ssrcs, _) = audio_of(&caller_heard, 0);
    let (to_agent, agent_ssrcs, agent_sequences) = audio_of(&agent_heard, 8);
    assert!(
        to_caller.len() >= 50,
        "{} packets to the caller",
        to_caller.len()
    );
    assert!(
        to_agent.len() >= 50,
        "{} packets to the agent",
        to_agent.len()
    );
    let caller_hears = frequency(Codec::Pcmu, &loud(Codec::Pcmu, &to_caller));
    let agent_hears = frequency(Codec::Pcma, &loud(Codec::Pcma, &to_agent));
    assert!(
        (960.0..1040.0).contains(&caller_hears),
        "the caller hears the agent's 1000 Hz as PCMU: {caller_hears} Hz"
    );
    assert!(
        (380.0..420.0).contains(&agent_hears),
        "the agent hears the caller's 400 Hz as PCMA: {agent_hears} Hz"
    );
    // Each leg is its own RTP stream: the gateway's SSRC, consecutive numbers.
    assert!(caller_ssrcs
        .iter()
        .all(|&s| s == caller_ssrcs[0] && s != AGENT_SSRC));
    assert!(agent_ssrcs
        .iter()
        .all(|&s| s == agent_ssrcs[0] && s != CALLER_SSRC));
    assert!(agent_sequences
        .windows(2)
        .all(|w| w[1] == w[0].wrapping_add(1)));

    // The agent's PBX puts the caller on hold and back (re-INVITEs on the
    // agent leg): both answered from the leg's media, and the caller's
    // audio reaches the agent again after the resume.
    let held = agent_reinvite(&mut agent, &mut agent_dialog, "sendonly").await;
    assert_eq!(held.status(), Some(200), "{held:?}");
    let held_sdp = String::from_utf8_lossy(&held.body).to_string();
    assert!(held_sdp.contains("a=recvonly"), "{held_sdp}");
    assert!(
        held_sdp.contains(&format!(" {} ", agent_rtp_at_gateway.port())),
        "the same media port: {held_sdp}"
    );
    let resumed = agent_reinvite(&mut agent, &mut agent_dialog, "sendrecv").await;
    assert_eq!(resumed.status(), Some(200), "{resumed:?}");
    assert!(String::from_utf8_lossy(&resumed.body).contains("a=sendrecv"));
    let (_, agent_heard) = tokio::join!(
        caller.send_audio(caller_rtp_at_gateway, 0, CALLER_SSRC + 1, 40, |i| {
            tone(Codec::Pcmu, 400.0, i)
        }),
        agent.receive_rtp(Duration::from_millis(900)),
    );
    let (to_agent, _, _) = audio_of(&agent_heard, 8);
    let loud_after_resume = loud(Codec::Pcma, &to_agent);
    assert!(
        loud_after_resume.len() >= 20,
        "{} loud packets to the agent after the resume",
        loud_after_resume.len()
    );

    assert_eq!(agent.bye(&mut agent_dialog).await, 200);
    let bye = caller
        .answer_bye(Duration::from_secs(5))
        .await
        .expect("the agent's BYE ends the caller's leg");
    assert_eq!(bye.header("Call-ID"), Some(dialog.call_id.as_str()));
    let (caller_number, _, disposition, path, _) = call_record(&server, &dialog.call_id).await;
    assert_eq!(caller_number, CALLER);
    assert_eq!(disposition, "transferred");
    assert!(path.contains("transferred to agents (bridged, "), "{path}");
    server.shutdown().await;
}

/// The agent's re-INVITE offering PCMA with `direction` (`sendonly` puts
/// the caller on hold, `sendrecv` resumes); returns the final response,
/// ACKed.
async fn agent_reinvite(agent: &mut Client, dialog: &mut Dialog, direction: &str) -> Message {
    let mut invite = agent.in_dialog(dialog, "INVITE");
    invite.push_header("Contact", format!("<sip:agents@{}>", agent.local));
    let offer = agent.offer(
        "8 101",
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        &format!("a={direction}\r\n"),
    );
    invite.set_body("application/sdp", bytes::Bytes::from(offer));
    let cseq = invite.header("CSeq").unwrap().to_string();
    agent.send(&invite).await;
    let response = agent.final_response(&cseq).await;
    agent.ack(dialog).await;
    response
}

/// The `name="value"` (or bare) parameter of a credentials header.
fn param(header: &str, name: &str) -> String {
    header
        .trim_start_matches("Digest")
        .split(',')
        .filter_map(|part| part.trim().split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("no {name} in {header}"))
}

fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_challenge_is_answered_and_the_callers_bye_ends_the_agent() {
    let plans = tempfile::tempdir().unwrap();
    let mut agent = Client::udp("127.0.0.1:9".parse().unwrap()).await;
    let server = gateway(plans.path(), &agent, Some(("hotline", "s3cret")), 20, true).await;
    agent.server = server.udp_addrs[0];
    let (mut caller, mut dialog, _) = dial_and_press_0(&server).await;

    // The target is named by host name: the gateway resolved it.
    let invite = expect_invite(&mut agent).await;
    assert_eq!(
        invite.request_uri(),
        Some(format!("sip:agents@localhost:{}", agent.local.port()).as_str())
    );
    assert_eq!(invite.header("CSeq"), Some("1 INVITE"));
    agent
        .respond(
            &invite,
            407,
            "Proxy Authentication Required",
            "auth1",
            &[(
                "Proxy-Authenticate",
                "Digest realm=\"pbx.example\", nonce=\"5f1a9c\", qop=\"auth\", algorithm=MD5, opaque=\"op\"",
            )],
            None,
        )
        .await;
    let ack = agent
        .request_named("ACK", Duration::from_secs(5))
        .await
        .expect("the 407 is ACKed");
    assert_eq!(ack.header("CSeq"), Some("1 ACK"));
    assert_eq!(ack.header("Via"), invite.header("Via"), "same transaction");

    let retry = expect_invite(&mut agent).await;
    assert_eq!(retry.header("CSeq"), Some("2 INVITE"));
    assert_eq!(retry.header("Call-ID"), invite.header("Call-ID"));
    assert_eq!(retry.header("From"), invite.header("From"));
    assert_ne!(retry.header("Via"), invite.header("Via"), "a new branch");
    assert_eq!(retry.header("X-Caller"), Some(CALLER));
    let credentials = retry
        .header("Proxy-Authorization")
        .expect("credentials for the proxy")
        .to_string();
    assert_eq!(param(&credentials, "username"), "hotline");
    assert_eq!(param(&credentials, "realm"), "pbx.example");
    assert_eq!(param(&credentials, "opaque"), "op");
    assert_eq!(param(&credentials, "qop"), "auth");
    let uri = param(&credentials, "uri");
    assert_eq!(Some(uri.as_str()), retry.request_uri());
    let ha1 = md5_hex("hotline:pbx.example:s3cret");
    let ha2 = md5_hex(&format!("INVITE:{uri}"));
    let expected = md5_hex(&format!(
        "{ha1}:5f1a9c:{}:{}:auth:{ha2}",
        param(&credentials, "nc"),
        param(&credentials, "cnonce")
    ));
    assert_eq!(param(&credentials, "response"), expected);

    agent
        .respond(&retry, 200, "OK", "agent2", &[], Some(agent_answer(&agent)))
        .await;
    let ack = agent
        .request_named("ACK", Duration::from_secs(5))
        .await
        .expect("the 2xx is ACKed");
    assert_eq!(ack.header("CSeq"), Some("2 ACK"));

    assert_eq!(caller.bye(&mut dialog).await, 200);
    let bye = agent
        .answer_bye(Duration::from_secs(5))
        .await
        .expect("the caller's BYE ends the agent's leg");
    assert_eq!(bye.header("Call-ID"), invite.header("Call-ID"));
    let (_, _, disposition, path, _) = call_record(&server, &dialog.call_id).await;
    assert_eq!(disposition, "transferred");
    assert!(path.contains("transferred to agents (bridged, "), "{path}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_number_reaches_the_agent_only_as_a_private_asserted_identity() {
    let plans = tempfile::tempdir().unwrap();
    let mut agent = Client::udp("127.0.0.1:9".parse().unwrap()).await;
    let server = gateway(plans.path(), &agent, None, 20, false).await;
    agent.server = server.udp_addrs[0];
    // An RFC 3323 anonymous caller whose trunk (loopback: trusted by
    // default) asserts the number.
    let (mut caller, dialog, _) = dial_from_and_press_0(
        &server,
        Some("\"Anonymous\" <sip:anonymous@anonymous.invalid>"),
        &[
            ("P-Asserted-Identity", "<tel:+86-139-0013-9000>"),
            ("Privacy", "id"),
        ],
    )
    .await;
    let invite = expect_invite(&mut agent).await;
    let from = invite.header("From").unwrap();
    assert!(from.contains("sip:anonymous@"), "{from}");
    assert!(!from.contains("13900139000"), "{from}");
    assert_eq!(
        invite.header("P-Asserted-Identity"),
        Some("<tel:+8613900139000>")
    );
    assert_eq!(invite.header("Privacy"), Some("id"));
    assert_eq!(invite.header("X-Caller"), Some("13900139000"));
    let _ = caller.receive_rtp(Duration::from_millis(100)).await;
    agent
        .respond(&invite, 486, "Busy Here", "busy2", &[], None)
        .await;
    expect_fallback(&server, &mut caller, &dialog).await;
    let (caller_label, _, _, _, _) = call_record(&server, &dialog.call_id).await;
    assert_eq!(caller_label, "13900139000", "the record names the number");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_agent_sends_the_caller_to_the_fallback() {
    let plans = tempfile::tempdir().unwrap();
    let mut agent = Client::udp("127.0.0.1:9".parse().unwrap()).await;
    let server = gateway(plans.path(), &agent, None, 20, false).await;
    agent.server = server.udp_addrs[0];
    let (mut caller, dialog, _) = dial_and_press_0(&server).await;

    let invite = expect_invite(&mut agent).await;
    // Drain what played so far, so that the socket's buffer has room for
    // the fallback.
    let _ = caller.receive_rtp(Duration::from_millis(100)).await;
    agent
        .respond(&invite, 486, "Busy Here", "busy1", &[], None)
        .await;
    let ack = agent
        .request_named("ACK", Duration::from_secs(5))
        .await
        .expect("the 486 is ACKed");
    assert!(ack.header("To").is_some_and(|to| to.contains("tag=busy1")));
    expect_fallback(&server, &mut caller, &dialog).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_agent_is_cancelled_and_the_caller_goes_to_the_fallback() {
    let plans = tempfile::tempdir().unwrap();
    let mut agent = Client::udp("127.0.0.1:9".parse().unwrap()).await;
    let server = gateway(plans.path(), &agent, None, 1, false).await;
    agent.server = server.udp_addrs[0];
    let (mut caller, dialog, _) = dial_and_press_0(&server).await;

    let invite = expect_invite(&mut agent).await;
    let _ = caller.receive_rtp(Duration::from_millis(100)).await;
    agent
        .respond(&invite, 180, "Ringing", "ring1", &[], None)
        .await;
    let cancel = agent
        .request_named("CANCEL", Duration::from_secs(5))
        .await
        .expect("CANCEL after the ring timeout");
    assert_eq!(cancel.header("CSeq"), Some("1 CANCEL"));
    assert_eq!(cancel.header("Via"), invite.header("Via"));
    assert_eq!(cancel.request_uri(), invite.request_uri());
    agent.respond(&cancel, 200, "OK", "ring1", &[], None).await;
    agent
        .respond(&invite, 487, "Request Terminated", "ring1", &[], None)
        .await;
    let ack = agent
        .request_named("ACK", Duration::from_secs(5))
        .await
        .expect("the 487 is ACKed");
    assert_eq!(ack.header("CSeq"), Some("1 ACK"));
    expect_fallback(&server, &mut caller, &dialog).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_refuses_tcp_sends_the_caller_to_the_fallback_at_once() {
    let plans = tempfile::tempdir().unwrap();
    // A TCP port nobody listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = bridge_config(
        plans.path(),
        format!("sip:agents@{closed};transport=tcp"),
        None,
        30,
    );
    // The ring timeout (30 s) and timer B (64·T1, 32 s) both end past the
    // fallback's deadline (20 s from the key, which covers the menu's and
    // the transfer's prompts): only the refused connection can end the
    // transfer in time.
    config.sip.t1_ms = 500;
    config.sip.t2_ms = 4_000;
    let server = start(config).await;
    let (mut caller, dialog, _) = dial_and_press_0(&server).await;
    expect_fallback_within(&server, &mut caller, &dialog, Duration::from_secs(20)).await;
    server.shutdown().await;
}

/// libsrtp contexts for the agent: `send` with its key, `receive` with the
/// gateway's.
fn agent_srtp(
    ours: &hotline::sip::sdes::MasterKey,
    gateways: &hotline::sip::sdes::MasterKey,
) -> (libsrtp::SendSession, libsrtp::RecvSession) {
    let config = |key: &hotline::sip::sdes::MasterKey| {
        libsrtp::StreamConfig::new(
            vec![libsrtp::MasterKey::new(key.key(), key.salt(), &None)],
            &libsrtp::ProtectionProfile::Aes128CmHmacSha180,
            &libsrtp::ProtectionProfile::Aes128CmHmacSha180,
        )
    };
    let mut send = libsrtp::SendSession::new();
    send.add_stream(None, &config(ours)).unwrap();
    let mut receive = libsrtp::RecvSession::new();
    receive.add_stream(None, &config(gateways)).unwrap();
    (send, receive)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_configured_for_srtp_gets_an_srtp_leg_and_the_audio_crosses_it() {
    use hotline::sip::sdes::{CryptoAttribute, CryptoSuite, MasterKey};
    let plans = tempfile::tempdir().unwrap();
    let mut agent = Client::udp("127.0.0.1:9".parse().unwrap()).await;
    let mut config = bridge_config(
        plans.path(),
        format!("sip:agents@{}", agent.local),
        None,
        20,
    );
    if let Some(target) = config.transfer.targets.get_mut("agents") {
        target.srtp = true;
    }
    let server = start(config).await;
    agent.server = server.udp_addrs[0];
    // The caller's own leg is plain RTP (media.srtp is optional).
    let (mut caller, mut dialog, caller_rtp_at_gateway) = dial_and_press_0(&server).await;

    let invite = expect_invite(&mut agent).await;
    let offer = sdp::parse_body(&invite.body).unwrap();
    let audio = offer.audio_streams[0].clone();
    assert_eq!(audio.protocol, "RTP/SAVP");
    assert_eq!(audio.crypto.len(), 1);
    assert_eq!(audio.crypto[0].tag, 1);
    let (suite, gateways) = audio.crypto[0].usable().expect("a usable crypto line");
    assert_eq!(suite, CryptoSuite::AesCm128HmacSha1_80);
    let agent_rtp_at_gateway = SocketAddr::new(audio.connection.unwrap(), audio.port);

    // What played before (prompt, ringback) is not the agent's audio.
    let _ = caller.receive_rtp(Duration::from_millis(500)).await;
    let ours = MasterKey::generate();
    let answer = agent_answer(&agent).replace("RTP/AVP", "RTP/SAVP").replace(
        "a=sendrecv\r\n",
        &format!(
            "a=crypto:{}\r\na=sendrecv\r\n",
            CryptoAttribute::ours(1, suite, &ours)
        ),
    );
    let mut agent_dialog = agent
        .respond(&invite, 200, "OK", "agent1", &[], Some(answer))
        .await;
    agent
        .request_named("ACK", Duration::from_secs(5))
        .await
        .expect("the gateway ACKs the 2xx");

    let (mut agent_send, mut agent_receive) = agent_srtp(&ours, &gateways);
    let agent_packets: Vec<Vec<u8>> = (0..75u16)
        .map(|i| {
            let plain = rtp_rs::RtpPacketBuilder::new()
                .payload_type(8)
                .ssrc(AGENT_SSRC)
                .sequence(rtp_rs::Seq::from(i))
                .timestamp(u32::from(i) * 160)
                .payload(&tone(Codec::Pcma, 1000.0, i))
                .build()
                .unwrap();
            agent_send.rtp_protect(plain).unwrap()
        })
        .collect();
    let (_, caller_heard, agent_heard) = tokio::join!(
        async {
            tokio::join!(
                caller.send_audio(caller_rtp_at_gateway, 0, CALLER_SSRC, 75, |i| {
                    tone(Codec::Pcmu, 400.0, i)
                }),
                async {
                    let mut interval = tokio::time::interval(Duration::from_millis(20));
                    for packet in &agent_packets {
                        interval.tick().await;
                        agent
                            .rtp
                            .send_to(packet, agent_rtp_at_gateway)
                            .await
                            .unwrap();
                    }
                },
            )
        },
        caller.receive_rtp(Duration::from_millis(1600)),
        agent.receive_rtp(Duration::from_millis(1600)),
    );
    let agent_plain: Vec<Vec<u8>> = agent_heard
        .into_iter()
        .map(|packet| {
            agent_receive
                .rtp_unprotect(packet)
                .expect("the agent leg is SRTP with the gateway's key")
        })
        .collect();
    let (to_agent, _, _) = audio_of(&agent_plain, 8);
    let (to_caller, _, _) = audio_of(&caller_heard, 0);
    assert!(
        to_agent.len() >= 50,
        "{} packets to the agent",
        to_agent.len()
    );
    let agent_hears = frequency(Codec::Pcma, &loud(Codec::Pcma, &to_agent));
    let caller_hears = frequency(Codec::Pcmu, &loud(Codec::Pcmu, &to_caller));
    assert!(
        (380.0..420.0).contains(&agent_hears),
        "the agent hears the caller's 400 Hz: {agent_hears} Hz"
    );
    assert!(
        (960.0..1040.0).contains(&caller_hears),
        "the caller hears the agent's 1000 Hz, decrypted: {caller_hears} Hz"
    );
    let bye = agent.in_dialog(&mut agent_dialog, "BYE");
    agent.send(&bye).await;
    assert!(caller.answer_bye(Duration::from_secs(5)).await.is_some());
    let _ = &mut dialog;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_answer_to_our_srtp_offer_fails_the_transfer() {
    let plans = tempfile::tempdir().unwrap();
    let mut agent = Client::udp("127.0.0.1:9".parse().unwrap()).await;
    let mut config = bridge_config(
        plans.path(),
        format!("sip:agents@{}", agent.local),
        None,
        20,
    );
    if let Some(target) = config.transfer.targets.get_mut("agents") {
        target.srtp = true;
    }
    let server = start(config).await;
    agent.server = server.udp_addrs[0];
    let (mut caller, dialog, _) = dial_and_press_0(&server).await;
    let invite = expect_invite(&mut agent).await;
    let _ = caller.receive_rtp(Duration::from_millis(100)).await;
    agent
        .respond(
            &invite,
            200,
            "OK",
            "agent1",
            &[],
            Some(agent_answer(&agent)),
        )
        .await;
    assert!(
        agent
            .request_named("BYE", Duration::from_secs(5))
            .await
            .is_some(),
        "the leg is ended"
    );
    expect_fallback(&server, &mut caller, &dialog).await;
    server.shutdown().await;
}
