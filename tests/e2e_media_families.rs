//! Media address families end to end: a caller whose SDP `c=` is of the
//! other IP family than its signalling (IPv6 media over IPv4 SIP and the
//! reverse), or whose RTP comes from another family or address than its
//! SDP says, hears audio and has its keys read. The gateway answers with a
//! media address of the offer's family when it has one configured, else in
//! the signalling's family and latches to where the caller's RTP comes from;
//! with symmetric RTP off and no such address it refuses with 488 rather
//! than send nothing.

mod support;

use hotline::call::CallEvent;
use hotline::config::Config;
use hotline::sip::sdp;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use support::{start, test_config, Client, Dialog};
use tokio::net::UdpSocket;
use tokio::sync::broadcast;

/// A gateway listening for SIP on 127.0.0.1 and ::1.
fn dual_stack() -> Config {
    let mut config = test_config();
    config.sip.udp = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
    config.sip.tcp = Vec::new();
    config
}

/// A client signalling to the gateway's IPv4 or IPv6 listener, with its
/// RTP socket on `rtp` (`127.0.0.1:0` or `[::1]:0`).
async fn client(server: &hotline::server::Server, ipv6: bool, rtp: &str) -> Client {
    let target = *server
        .udp_addrs
        .iter()
        .find(|address| address.is_ipv6() == ipv6)
        .unwrap();
    let mut client = Client::udp(target).await;
    client.rtp = UdpSocket::bind(rtp).await.unwrap();
    client
}

/// A PCMU + telephone-event offer whose c= is `connection` (or our RTP
/// socket's address when `None`) and whose port is our RTP socket's.
fn offer(client: &Client, connection: Option<IpAddr>) -> String {
    let text = client.offer(
        "0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        "a=sendrecv\r\n",
    );
    let Some(address) = connection else {
        return text;
    };
    let ours = client.rtp.local_addr().unwrap();
    let family = |ip: IpAddr| if ip.is_ipv4() { "IP4" } else { "IP6" };
    let (old, new) = (
        format!("IN {} {}", family(ours.ip()), ours.ip()),
        format!("IN {} {}", family(address), address),
    );
    text.replace(&old, &new)
}

/// Places the call: the gateway's RTP address from its answer.
async fn call(client: &mut Client, offer: String) -> (Dialog, SocketAddr) {
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    client.ack(&mut dialog).await;
    let audio = sdp::parse_body(&response.body).unwrap().audio.unwrap();
    (
        dialog,
        SocketAddr::new(audio.connection.unwrap(), audio.port),
    )
}

/// RTP packets the client receives from `gateway` within `window`.
async fn heard(client: &Client, gateway: SocketAddr, window: Duration) -> usize {
    let mut buf = [0u8; 2048];
    let mut count = 0;
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Ok((_, from))) =
        tokio::time::timeout_at(deadline, client.rtp.recv_from(&mut buf)).await
    {
        assert_eq!(
            from, gateway,
            "RTP comes from the address the gateway answered with"
        );
        count += 1;
    }
    count
}

/// A few packets of silence from the client, then the key 7 as RFC 4733
/// events; the key must be read once.
async fn talk_and_key(
    client: &Client,
    gateway: SocketAddr,
    events: &mut broadcast::Receiver<CallEvent>,
) {
    for n in 0..5u16 {
        let packet = rtp_rs::RtpPacketBuilder::new()
            .payload_type(0)
            .ssrc(0xCAFE)
            .sequence(rtp_rs::Seq::from(n))
            .timestamp(u32::from(n) * 160)
            .payload(&[0xFF; 160])
            .build()
            .unwrap();
        client.rtp.send_to(&packet, gateway).await.unwrap();
    }
    let (mut sequence, mut timestamp) = (5u16, 800u32);
    client
        .send_keys(gateway, "7", &mut sequence, &mut timestamp)
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut keys = String::new();
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if let CallEvent::Dtmf { digit, .. } = event {
            keys.push(digit);
        }
    }
    assert_eq!(keys, "7", "the key is read once");
}

/// One combination: the gateway's answer family, audio before the caller
/// sends (`false` when it can only come after latching) and after, and the
/// key.
async fn check(
    config: Config,
    sip_v6: bool,
    rtp: &str,
    connection: Option<&str>,
    answer_v6: bool,
    audio_before_latching: bool,
) {
    let server = start(config).await;
    let mut events = server.events();
    let mut client = client(&server, sip_v6, rtp).await;
    let offer = offer(&client, connection.map(|c| c.parse().unwrap()));
    let (mut dialog, gateway) = call(&mut client, offer).await;
    assert_eq!(
        gateway.is_ipv6(),
        answer_v6,
        "answer family for {rtp} / {connection:?}"
    );
    let before = heard(&client, gateway, Duration::from_millis(400)).await;
    if audio_before_latching {
        assert!(before >= 10, "audio to the SDP address at once: {before}");
    } else {
        assert_eq!(before, 0, "the SDP address is not ours to reach");
    }
    talk_and_key(&client, gateway, &mut events).await;
    let after = heard(&client, gateway, Duration::from_millis(400)).await;
    assert!(after >= 10, "audio after the caller's RTP: {after}");
    assert_eq!(client.bye(&mut dialog).await, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_signalling_with_ipv4_media() {
    check(dual_stack(), false, "127.0.0.1:0", None, false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_signalling_with_ipv6_media() {
    check(dual_stack(), true, "[::1]:0", None, true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_media_over_ipv4_signalling_gets_an_ipv6_socket_when_configured() {
    // The IPv6 media address comes from media.advertised_addresses (the
    // bind address is the wildcard).
    let mut config = dual_stack();
    config.media.rtp_bind_v6 = "::".parse().unwrap();
    config.media.advertised_addresses = vec!["::1".parse().unwrap()];
    check(config, false, "[::1]:0", None, true, true).await;
    // Or from a specific bind address.
    check(dual_stack(), false, "[::1]:0", None, true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_media_over_ipv4_signalling_latches_to_ipv4_rtp_without_an_ipv6_address() {
    // linphonec's case: c=IN IP6 (its interface) while its RTP reaches us
    // over IPv4. No IPv6 media address is configured (wildcard bind, none
    // advertised): the answer stays IPv4 and latches to the caller's RTP,
    // here from an address that is neither the SDP's nor the signalling's.
    let mut config = dual_stack();
    config.media.rtp_bind_v6 = "::".parse().unwrap();
    check(config, false, "127.0.0.3:0", Some("::1"), false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_media_over_ipv6_signalling_gets_an_ipv4_socket_when_configured() {
    check(dual_stack(), true, "127.0.0.1:0", None, false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_media_over_ipv6_signalling_latches_to_ipv6_rtp_without_an_ipv4_address() {
    let mut config = dual_stack();
    config.media.rtp_bind = "0.0.0.0".parse().unwrap();
    check(config, true, "[::1]:0", Some("127.0.0.1"), true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_from_the_signalling_address_rather_than_the_sdp_one_is_latched() {
    // Behind NAT: the SDP names another address of the same family; the
    // RTP comes from where the signalling came from.
    check(
        dual_stack(),
        false,
        "127.0.0.1:0",
        Some("127.0.0.5"),
        false,
        false,
    )
    .await;
    check(dual_stack(), true, "[::1]:0", Some("fd00::5"), true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_take_the_stream_before_the_caller() {
    let server = start(dual_stack()).await;
    let mut events = server.events();
    let mut caller = client(&server, false, "127.0.0.1:0").await;
    let offer = offer(&caller, Some("127.0.0.5".parse().unwrap()));
    let (mut dialog, gateway) = call(&mut caller, offer).await;
    let stranger = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let packet = rtp_rs::RtpPacketBuilder::new()
        .payload_type(0)
        .ssrc(0xBAD)
        .payload(&[0xFF; 160])
        .build()
        .unwrap();
    stranger.send_to(&packet, gateway).await.unwrap();
    talk_and_key(&caller, gateway, &mut events).await;
    assert!(heard(&caller, gateway, Duration::from_millis(400)).await >= 10);
    let mut buf = [0u8; 2048];
    let stolen =
        tokio::time::timeout(Duration::from_millis(200), stranger.recv_from(&mut buf)).await;
    assert!(stolen.is_err(), "nothing went to the stranger");
    assert_eq!(caller.bye(&mut dialog).await, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_symmetric_rtp_and_an_address_of_the_family_the_call_is_refused() {
    let mut config = dual_stack();
    config.media.rtp_bind_v6 = "::".parse().unwrap();
    config.media.symmetric_rtp = false;
    let server = start(config).await;
    let mut client = client(&server, false, "127.0.0.1:0").await;
    let offer = offer(&client, Some("::1".parse().unwrap()));
    let (response, _) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(488));
    assert_eq!(
        response.header("Warning"),
        Some("301 hotline \"Incompatible network address formats\"")
    );
    server.shutdown().await;
}
