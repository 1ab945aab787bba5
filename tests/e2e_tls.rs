//! SIP over TLS end to end, over real loopback sockets with a CA and
//! certificates made at test time: OPTIONS and a call over TLS (IPv4 and
//! IPv6) that hears its greeting; the gateway's own BYE on the caller's
//! connection; a bridged transfer to an agent reached over TLS (SNI,
//! certificate checked against the target's name or IP, refused when it
//! does not match or is not trusted); handshakes that stall are closed
//! within the time limit, untrusted sources get no handshake at all; and
//! the real binary reloads its certificate on SIGHUP (new connections get
//! the new one, a broken one is refused and the old one kept).

mod support;

use hotline::config::{Config, TransferMode, TransferTarget};
use hotline::media::prompt::PromptLibrary;
use hotline::server::Server;
use hotline::sip::message::Message;
use hotline::sip::sdp::{self, Codec};
use rtp_rs::RtpReader;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::tls::{Leaf, TestPki};
use support::{start, test_config, Client, Dialog};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn repo_prompts() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts"))
}

/// A gateway config with a TLS listener on 127.0.0.1 (and ::1 when
/// `ipv6`), serving `leaf`, trusting the test CA for targets.
fn tls_config(pki: &TestPki, leaf: &Leaf, ipv6: bool) -> Config {
    let (cert, key) = pki.write_leaf("gateway", leaf);
    let mut config = test_config();
    config.sip.tls = vec!["127.0.0.1:0".parse().unwrap()];
    if ipv6 {
        config.sip.tls.push("[::1]:0".parse().unwrap());
        config.sip.udp.push("[::1]:0".parse().unwrap());
    }
    config.sip.tls_cert_file = cert;
    config.sip.tls_key_file = key;
    config.sip.tls_ca_file = pki.ca_file();
    // Calls left up at the end of a test are ended at once.
    config.shutdown.drain_timeout_secs = 1;
    config
}

fn gateway_leaf(pki: &TestPki) -> Leaf {
    pki.leaf(&["localhost", "127.0.0.1", "::1"], "hotline gateway")
}

/// The first `len` bytes of a prompt as PCMU.
fn prompt_start(name: &str, len: usize) -> Vec<u8> {
    let library = PromptLibrary::load_dir(repo_prompts()).unwrap();
    library.get(name).unwrap().encoded(Codec::Pcmu)[..len].to_vec()
}

/// PCMU payloads the client receives within `window`, concatenated.
async fn heard(client: &Client, window: Duration) -> Vec<u8> {
    let mut audio = Vec::new();
    for packet in client.receive_rtp(window).await {
        if let Ok(reader) = RtpReader::new(&packet) {
            if reader.payload_type() == 0 {
                audio.extend_from_slice(reader.payload());
            }
        }
    }
    audio
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn gateway_rtp(answer: &[u8]) -> SocketAddr {
    let audio = sdp::parse_body(answer).unwrap().audio.unwrap();
    SocketAddr::new(audio.connection.unwrap(), audio.port)
}

async fn options_over(client: &mut Client) -> Message {
    let call_id = client.unique("options-");
    let options = client.request("OPTIONS", "10000", &call_id, 1);
    client.send(&options).await;
    client.final_response("1 OPTIONS").await
}

/// OPTIONS, then a call that hears the greeting, then BYE, over TLS to
/// `server`.
async fn call_over_tls(server: SocketAddr, pki: &TestPki) {
    let mut client = Client::tls(server, pki.client_config()).await;
    let pong = options_over(&mut client).await;
    assert_eq!(pong.status(), Some(200), "{pong:?}");
    assert!(pong
        .header("Via")
        .is_some_and(|v| v.starts_with("SIP/2.0/TLS ")));

    let offer = client.g711_offer();
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    let contact = response.header("Contact").unwrap();
    assert_eq!(
        contact,
        format!("<sip:10000@{server};transport=tls>"),
        "our Contact names the TLS listener"
    );
    client.ack(&mut dialog).await;
    let _ = client
        .send_audio(gateway_rtp(&response.body), 0, 0x7151, 1, |_| {
            vec![0xff; 160]
        })
        .await;
    let audio = heard(&client, Duration::from_millis(1500)).await;
    assert!(
        contains(&audio, &prompt_start("zh/welcome", 1600)),
        "the caller hears the greeting ({} bytes heard)",
        audio.len()
    );
    assert_eq!(client.bye(&mut dialog).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_and_a_call_over_tls_are_answered_and_hear_the_greeting_on_ipv4_and_ipv6() {
    let pki = TestPki::new("hotline test CA");
    let mut config = tls_config(&pki, &gateway_leaf(&pki), true);
    config.prompts.dir = repo_prompts().to_path_buf();
    config.calls.greeting = vec!["zh/welcome".into()];
    let server = start(config).await;
    assert_eq!(server.tls_addrs.len(), 2);
    call_over_tls(server.tls_addrs[0], &pki).await;
    call_over_tls(server.tls_addrs[1], &pki).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_own_bye_comes_over_the_callers_tls_connection() {
    let pki = TestPki::new("hotline test CA");
    let mut config = tls_config(&pki, &gateway_leaf(&pki), false);
    config.calls.max_duration_secs = 1;
    let server = start(config).await;
    let mut client = Client::tls(server.tls_addrs[0], pki.client_config()).await;
    let offer = client.g711_offer();
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200));
    client.ack(&mut dialog).await;
    let bye = client
        .answer_bye(Duration::from_secs(4))
        .await
        .expect("the time limit ends the call with BYE on our connection");
    assert!(bye
        .header("Via")
        .is_some_and(|v| v.starts_with("SIP/2.0/TLS ")));
    assert!(bye
        .request_uri()
        .is_some_and(|uri| uri.ends_with(";transport=tls")));
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// Handshake limits.
// ---------------------------------------------------------------------------

/// How long until the gateway closes `stream` (reads until EOF or error).
async fn closed_after(mut stream: TcpStream, since: Instant, limit: Duration) -> Duration {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return since.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("still open after {limit:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_are_closed_within_the_message_timeout() {
    let pki = TestPki::new("hotline test CA");
    let mut config = tls_config(&pki, &gateway_leaf(&pki), false);
    config.sip_connections.message_timeout_secs = 1;
    config.sip_connections.idle_timeout_secs = 30;
    let server = start(config).await;
    let tls = server.tls_addrs[0];

    // Connects and never says a word.
    let silent_at = Instant::now();
    let silent = TcpStream::connect(tls).await.unwrap();
    // Starts a TLS record (a handshake of 512 bytes) and stops after 5.
    let partial_at = Instant::now();
    let mut partial = TcpStream::connect(tls).await.unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    // Finishes the handshake and then sends no SIP: the handshake's time
    // counted, it is closed 1 s after the connect, not after the handshake.
    let quiet_at = Instant::now();
    let quiet = tokio_rustls::TlsConnector::from(pki.client_config())
        .connect(
            ServerName::IpAddress(tls.ip().into()),
            TcpStream::connect(tls).await.unwrap(),
        )
        .await
        .unwrap();
    let limit = Duration::from_secs(4);
    let quiet_closed = async {
        let mut quiet = quiet;
        let mut buf = [0u8; 64];
        let _ = tokio::time::timeout(limit, quiet.read(&mut buf)).await;
        quiet_at.elapsed()
    };
    let (silent, partial, quiet) = tokio::join!(
        closed_after(silent, silent_at, limit),
        closed_after(partial, partial_at, limit),
        quiet_closed,
    );
    for (what, took) in [("silent", silent), ("partial", partial), ("quiet", quiet)] {
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(1800),
            "{what} connection closed after {took:?}"
        );
    }
    // The listener still serves a real client.
    let mut client = Client::tls(tls, pki.client_config()).await;
    assert_eq!(options_over(&mut client).await.status(), Some(200));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_sources_are_refused_before_any_handshake() {
    let pki = TestPki::new("hotline test CA");
    let mut config = tls_config(&pki, &gateway_leaf(&pki), false);
    config.sip.trusted_networks = vec!["::1/128".parse().unwrap()];
    let server = start(config).await;
    let tls = server.tls_addrs[0];
    let started = Instant::now();
    let handshake = async {
        // The reset may already meet the connect.
        let stream = TcpStream::connect(tls).await?;
        tokio_rustls::TlsConnector::from(pki.client_config())
            .connect(ServerName::IpAddress(tls.ip().into()), stream)
            .await
    };
    let outcome = tokio::time::timeout(Duration::from_secs(2), handshake)
        .await
        .expect("refused at once, not left to time out");
    assert!(outcome.is_err(), "no handshake for an untrusted source");
    assert!(started.elapsed() < Duration::from_millis(500));
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// Bridged transfers to an agent over TLS.
// ---------------------------------------------------------------------------

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
on_failure = "busy"

[nodes.busy]
kind = "hangup"
say = ["agents_busy"]

[nodes.bye]
kind = "hangup"
"##;

/// A TLS agent: a listener on 127.0.0.1 presenting `leaf`; what the
/// gateway's connection asked for (the SNI) and the agent's client side.
struct TlsAgent {
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
}

impl TlsAgent {
    async fn new(pki: &TestPki, leaf: &Leaf) -> TlsAgent {
        TlsAgent {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            config: pki.server_config(leaf),
        }
    }

    /// An agent that asks for a client certificate of `pki`'s CA (a
    /// mutual TLS trunk) and refuses connections without one.
    async fn mutual(pki: &TestPki, leaf: &Leaf) -> TlsAgent {
        TlsAgent {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            config: pki.mutual_server_config(leaf),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    /// The gateway's connection: its handshake's outcome and SNI.
    async fn accept(&self) -> Result<(Client, Option<String>), String> {
        self.accept_with_client_certificate()
            .await
            .map(|(client, sni, _)| (client, sni))
    }

    /// [`TlsAgent::accept`], with the certificate the gateway presented.
    async fn accept_with_client_certificate(
        &self,
    ) -> Result<(Client, Option<String>, Option<CertificateDer<'static>>), String> {
        let (stream, peer) = tokio::time::timeout(Duration::from_secs(10), self.listener.accept())
            .await
            .map_err(|_| "no connection".to_string())?
            .unwrap();
        let secured = tokio_rustls::TlsAcceptor::from(self.config.clone())
            .accept(stream)
            .await
            .map_err(|e| e.to_string())?;
        let sni = secured.get_ref().1.server_name().map(str::to_string);
        let presented = secured
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first().cloned());
        let client = Client::over_tls(Box::new(secured), self.addr(), peer).await;
        Ok((client, sni, presented))
    }
}

async fn bridge_gateway(pki: &TestPki, plans: &Path, target: String) -> Server {
    bridge_gateway_with(pki, &gateway_leaf(pki), plans, target).await
}

async fn bridge_gateway_with(pki: &TestPki, leaf: &Leaf, plans: &Path, target: String) -> Server {
    std::fs::write(plans.join("bridge.toml"), PLAN).unwrap();
    let mut config = tls_config(pki, leaf, false);
    config.prompts.dir = repo_prompts().to_path_buf();
    config.ivr.dialplans_dir = plans.to_path_buf();
    config.transfer.targets.insert(
        "agents".into(),
        TransferTarget {
            uri: target,
            mode: TransferMode::Bridge,
            username: None,
            password: None,
            srtp: false,
        },
    );
    start(config).await
}

/// A caller over TLS dials 10000 and presses 0.
async fn dial_and_press_0(server: &Server, pki: &TestPki) -> (Client, Dialog) {
    let mut caller = Client::tls(server.tls_addrs[0], pki.client_config()).await;
    let offer = caller.offer(
        "0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        "a=sendrecv\r\n",
    );
    let (response, mut dialog) = caller.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    caller.ack(&mut dialog).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut sequence, mut timestamp) = (100u16, 8_000u32);
    caller
        .send_keys(
            gateway_rtp(&response.body),
            "0",
            &mut sequence,
            &mut timestamp,
        )
        .await;
    (caller, dialog)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridged_transfer_calls_a_tls_agent_by_name_with_sni_and_either_bye_crosses() {
    let pki = TestPki::new("hotline test CA");
    let plans = tempfile::tempdir().unwrap();
    let agent = TlsAgent::new(&pki, &pki.leaf(&["localhost"], "agent")).await;
    let target = format!("sips:agents@localhost:{}", agent.addr().port());
    let server = bridge_gateway(&pki, plans.path(), target.clone()).await;
    let (mut caller, _) = dial_and_press_0(&server, &pki).await;

    let (mut agent_side, sni) = agent.accept().await.expect("the handshake succeeds");
    assert_eq!(sni.as_deref(), Some("localhost"), "SNI names the target");
    let invite = agent_side
        .request_named("INVITE", Duration::from_secs(10))
        .await
        .expect("the INVITE over TLS");
    assert_eq!(invite.request_uri(), Some(target.as_str()));
    assert!(invite
        .header("Via")
        .is_some_and(|v| v.starts_with(&format!("SIP/2.0/TLS {};", server.tls_addrs[0]))));
    assert_eq!(
        invite.header("Contact"),
        Some(format!("<sips:13800138000@{}>", server.tls_addrs[0]).as_str()),
        "a sips: Request-URI gets a sips: Contact at our TLS listener"
    );
    let answer = agent_side.offer(
        "0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        "a=sendrecv\r\n",
    );
    let mut agent_dialog = agent_side
        .respond(&invite, 200, "OK", "agent1", &[], Some(answer))
        .await;
    let ack = agent_side
        .request_named("ACK", Duration::from_secs(5))
        .await
        .expect("the ACK on the same connection");
    assert!(ack
        .header("Via")
        .is_some_and(|v| v.starts_with("SIP/2.0/TLS ")));
    // The agent hangs up: its BYE over TLS is answered, and the caller's
    // leg gets the gateway's BYE on the caller's TLS connection.
    assert_eq!(agent_side.bye(&mut agent_dialog).await, 200);
    assert!(caller
        .answer_bye(Duration::from_secs(5))
        .await
        .is_some_and(|bye| bye
            .header("Via")
            .is_some_and(|v| v.starts_with("SIP/2.0/TLS "))));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bye_to_an_agent_whose_connection_is_gone_opens_a_new_checked_one() {
    let pki = TestPki::new("hotline test CA");
    let plans = tempfile::tempdir().unwrap();
    let agent = TlsAgent::new(&pki, &pki.leaf(&["localhost", "127.0.0.1"], "agent")).await;
    let target = format!("sips:agents@localhost:{}", agent.addr().port());
    let server = bridge_gateway(&pki, plans.path(), target).await;
    let (mut caller, mut caller_dialog) = dial_and_press_0(&server, &pki).await;
    let (mut agent_side, _) = agent.accept().await.expect("the first connection");
    let invite = agent_side
        .request_named("INVITE", Duration::from_secs(10))
        .await
        .unwrap();
    let answer = agent_side.offer("0", "a=rtpmap:0 PCMU/8000\r\n", "a=sendrecv\r\n");
    agent_side
        .respond(&invite, 200, "OK", "agent1", &[], Some(answer))
        .await;
    assert!(agent_side
        .request_named("ACK", Duration::from_secs(5))
        .await
        .is_some());
    // The agent's side of the connection goes away (a restart, a NAT
    // binding lost); the call stays up.
    drop(agent_side);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The caller hangs up: the gateway must reach the agent on a new TLS
    // connection to its Contact, checking its certificate again.
    assert_eq!(caller.bye(&mut caller_dialog).await, 200);
    let (mut again, sni) = agent.accept().await.expect("a new TLS connection");
    assert_eq!(sni.as_deref(), Some("localhost"), "the name we called");
    let bye = again
        .request_named("BYE", Duration::from_secs(5))
        .await
        .expect("the BYE on the new connection");
    assert!(bye
        .header("Via")
        .is_some_and(|v| v.starts_with("SIP/2.0/TLS ")));
    again.reply(&bye, 200, "OK").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutual_tls_agent_gets_the_gateways_certificate() {
    let pki = TestPki::new("hotline test CA");
    let plans = tempfile::tempdir().unwrap();
    let agent = TlsAgent::mutual(&pki, &pki.leaf(&["localhost"], "agent")).await;
    let gateway = gateway_leaf(&pki);
    let target = format!("sips:agents@localhost:{}", agent.addr().port());
    let server = bridge_gateway_with(&pki, &gateway, plans.path(), target).await;
    let (_caller, _) = dial_and_press_0(&server, &pki).await;
    let (mut agent_side, _, presented) = agent
        .accept_with_client_certificate()
        .await
        .expect("the handshake with a client certificate succeeds");
    assert_eq!(presented, Some(gateway.der.clone()), "our own certificate");
    assert!(agent_side
        .request_named("INVITE", Duration::from_secs(10))
        .await
        .is_some());
    server.shutdown().await;
}

/// The caller hears the fallback ("agents are busy") and no INVITE
/// reaches the agent: its connection's handshake fails.
async fn expect_refused_agent(agent_leaf: Leaf, target_host: &str, pki: &TestPki) {
    let plans = tempfile::tempdir().unwrap();
    let agent = TlsAgent::new(pki, &agent_leaf).await;
    let target = format!("sips:agents@{target_host}:{}", agent.addr().port());
    let server = bridge_gateway(pki, plans.path(), target).await;
    let started = Instant::now();
    let (mut caller, _) = dial_and_press_0(&server, pki).await;
    let refused = agent.accept().await;
    assert!(
        refused.is_err(),
        "the gateway refuses the agent's certificate"
    );
    let busy = prompt_start("zh/agents_busy", 1600);
    let mut audio = Vec::new();
    while !contains(&audio, &busy) && started.elapsed() < Duration::from_secs(10) {
        audio.extend(heard(&caller, Duration::from_millis(300)).await);
    }
    assert!(
        contains(&audio, &busy),
        "the fallback is heard at once, not after timer B"
    );
    assert!(caller.answer_bye(Duration::from_secs(8)).await.is_some());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_target_needs_the_ip_in_the_agents_certificate() {
    let pki = TestPki::new("hotline test CA");
    expect_refused_agent(pki.leaf(&["localhost"], "agent"), "127.0.0.1", &pki).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_a_certificate_of_an_untrusted_ca_is_refused() {
    let pki = TestPki::new("hotline test CA");
    let other = TestPki::new("somebody else's CA");
    expect_refused_agent(other.leaf(&["localhost"], "agent"), "localhost", &pki).await;
    expect_refused_agent(
        TestPki::self_signed(&["localhost"], "agent"),
        "localhost",
        &pki,
    )
    .await;
}

// ---------------------------------------------------------------------------
// Reload on SIGHUP, with the real binary.
// ---------------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The certificate a new TLS connection to `addr` is shown, and the
/// connection (still open).
async fn served_certificate(
    addr: SocketAddr,
    pki: &TestPki,
) -> Option<(CertificateDer<'static>, Client)> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let local = stream.local_addr().ok()?;
    let secured = tokio_rustls::TlsConnector::from(pki.client_config())
        .connect(ServerName::IpAddress(addr.ip().into()), stream)
        .await
        .ok()?;
    let served = secured.get_ref().1.peer_certificates()?.first()?.clone();
    Some((
        served,
        Client::over_tls(Box::new(secured), local, addr).await,
    ))
}

fn hangup(pid: u32) {
    // SAFETY: kill(2) with a pid we started and a valid signal number.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
}

async fn wait_for_log(log: &Path, needle: &str, count: usize) -> bool {
    for _ in 0..100 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(needle).count() >= count {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_for_new_connections_and_keeps_it_when_broken() {
    let pki = TestPki::new("hotline test CA");
    let first = gateway_leaf(&pki);
    let second = pki.leaf(&["127.0.0.1"], "renewed gateway");
    let (cert, key) = pki.write_leaf("gateway", &first);
    let db = tempfile::NamedTempFile::new().unwrap();
    let log_file = tempfile::NamedTempFile::new().unwrap();
    let (udp, tls, http) = (free_port(), free_port(), free_port());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
        .arg("serve")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env(
            "HOTLINE_DATABASE_URL",
            format!("sqlite://{}", db.path().display()),
        )
        .env("HOTLINE_SIP_UDP", format!("127.0.0.1:{udp}"))
        .env("HOTLINE_SIP_TCP", "")
        .env("HOTLINE_SIP_TLS", format!("127.0.0.1:{tls}"))
        .env("HOTLINE_SIP_TLS_CERT_FILE", &cert)
        .env("HOTLINE_SIP_TLS_KEY_FILE", &key)
        .env("HOTLINE_HTTP_LISTEN", format!("127.0.0.1:{http}"))
        .env(
            "HOTLINE_IVR_DIALPLANS_DIR",
            "/nonexistent/hotline-dialplans",
        )
        .stdout(log_file.reopen().unwrap())
        .stderr(log_file.reopen().unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let addr: SocketAddr = format!("127.0.0.1:{tls}").parse().unwrap();
    let result = async {
        let mut before = None;
        for _ in 0..100 {
            before = served_certificate(addr, &pki).await;
            if before.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (served, mut open) = before.expect("the gateway serves TLS");
        assert_eq!(served, first.der, "the configured certificate");

        // Renewed files, SIGHUP: new connections get the new certificate.
        pki.write_leaf("gateway", &second);
        hangup(pid);
        assert!(wait_for_log(log_file.path(), "TLS reloaded", 1).await);
        let (served, _) = served_certificate(addr, &pki).await.unwrap();
        assert_eq!(served, second.der, "the renewed certificate");
        // The connection made before the reload keeps working.
        assert_eq!(options_over(&mut open).await.status(), Some(200));

        // A broken certificate, then a key that does not match: refused,
        // logged, and the renewed certificate still served.
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
        hangup(pid);
        assert!(wait_for_log(log_file.path(), "TLS reload refused", 1).await);
        pki.write("gateway-key.pem", &first.key_pem);
        pki.write("gateway.pem", &second.cert_pem);
        hangup(pid);
        assert!(wait_for_log(log_file.path(), "TLS reload refused", 2).await);
        let log = std::fs::read_to_string(log_file.path()).unwrap();
        assert!(
            log.contains("does not hold the private key of the certificate"),
            "{log}"
        );
        let (served, _) = served_certificate(addr, &pki).await.unwrap();
        assert_eq!(served, second.der, "the old certificate is kept");
    };
    let outcome = tokio::time::timeout(Duration::from_secs(60), result).await;
    // SAFETY: as in `hangup`.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = child.wait();
    outcome.expect("the reload test finishes in time");
}
