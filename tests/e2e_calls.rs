//! End-to-end calls against a gateway on loopback ports, over UDP and TCP,
//! with the Rust test client in `support`.

mod support;

use bytes::Bytes;
use hotline::sip::message::Message;
use std::time::Duration;
use support::{rtp_seq_ts, start, test_config, Client};

fn is_method(name: &'static str) -> impl Fn(&Message) -> bool {
    move |m: &Message| m.method().is_some_and(|method| method.as_str() == name)
}

async fn answered_call_plays_silence_and_ends_with_bye(mut client: Client) {
    let offer = client.g711_offer();
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    let answer = std::str::from_utf8(&response.body).unwrap().to_string();
    assert!(answer.contains("m=audio "), "{answer}");
    assert!(
        answer.contains("RTP/AVP 0 101"),
        "PCMU preferred with telephone-event: {answer}"
    );
    assert!(response.header("Contact").is_some());
    client.ack(&mut dialog).await;

    let packets = client.receive_rtp(Duration::from_millis(500)).await;
    assert!(
        packets.len() >= 15,
        "got {} RTP packets in 500 ms",
        packets.len()
    );
    let (first_seq, first_ts, pt) = rtp_seq_ts(&packets[0]);
    assert_eq!(pt, 0, "PCMU payload type");
    assert_eq!(packets[0].len(), 12 + 160, "20 ms of G.711");
    assert!(packets[0][12..].iter().all(|&b| b == 0xFF), "u-law silence");
    for (i, packet) in packets.iter().enumerate().skip(1) {
        let (seq, ts, _) = rtp_seq_ts(packet);
        assert_eq!(
            seq,
            first_seq.wrapping_add(i as u16),
            "consecutive sequence numbers"
        );
        assert_eq!(
            ts,
            first_ts.wrapping_add(160 * i as u32),
            "timestamps advance by 160"
        );
    }

    assert_eq!(client.bye(&mut dialog).await, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = client.receive_rtp(Duration::from_millis(60)).await;
    let after = client.receive_rtp(Duration::from_millis(200)).await;
    assert!(after.is_empty(), "RTP must stop after BYE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_over_udp_is_answered_plays_silence_and_ends_on_bye() {
    let server = start(test_config()).await;
    answered_call_plays_silence_and_ends_with_bye(Client::udp(server.udp_addrs[0]).await).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_over_tcp_is_answered_plays_silence_and_ends_on_bye() {
    let server = start(test_config()).await;
    answered_call_plays_silence_and_ends_with_bye(Client::tcp(server.tcp_addrs[0]).await).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_over_ipv6_is_answered() {
    let mut config = test_config();
    config.sip.udp = vec!["[::1]:0".parse().unwrap()];
    config.sip.tcp = vec!["[::1]:0".parse().unwrap()];
    config.media.rtp_bind_v6 = "::1".parse().unwrap();
    let Ok(server) = hotline::server::Server::start(config).await else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let offer = client.g711_offer();
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200));
    assert!(std::str::from_utf8(&response.body)
        .unwrap()
        .contains("IN IP6 ::1"));
    client.ack(&mut dialog).await;
    assert_eq!(client.bye(&mut dialog).await, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_hangs_up_after_the_configured_time() {
    let mut config = test_config();
    config.calls.max_duration_secs = 1;
    let server = start(config).await;
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let offer = client.g711_offer();
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200));
    client.ack(&mut dialog).await;
    let bye = client
        .answer_bye(Duration::from_secs(3))
        .await
        .expect("gateway sends BYE");
    assert_eq!(bye.header("Call-ID"), Some(dialog.call_id.as_str()));
    assert_eq!(
        bye.header("To"),
        Some(dialog.local.as_str()),
        "BYE goes to the caller's From"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offerless_invite_gets_our_offer_and_the_answer_comes_in_the_ack() {
    let server = start(test_config()).await;
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let (response, mut dialog) = client.invite("10000", None).await;
    assert_eq!(response.status(), Some(200));
    let offer = std::str::from_utf8(&response.body).unwrap().to_string();
    assert!(offer.contains("RTP/AVP 0 8 101"), "{offer}");
    assert!(offer.contains("telephone-event/8000"), "{offer}");
    assert!(
        client
            .receive_rtp(Duration::from_millis(200))
            .await
            .is_empty(),
        "no RTP before the answer"
    );
    let mut ack = client.in_dialog(&mut dialog, "ACK");
    let answer = client.offer(
        "8 101",
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        "",
    );
    ack.set_body("application/sdp", Bytes::from(answer));
    client.send(&ack).await;
    let packets = client.receive_rtp(Duration::from_millis(300)).await;
    assert!(
        !packets.is_empty(),
        "RTP starts after the answer in the ACK"
    );
    assert_eq!(rtp_seq_ts(&packets[0]).2, 8, "PCMA as answered");
    assert!(packets[0][12..].iter().all(|&b| b == 0xD5), "A-law silence");
    assert_eq!(client.bye(&mut dialog).await, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinvite_to_hold_stops_rtp_and_resume_restarts_it() {
    let server = start(test_config()).await;
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let offer = client.g711_offer();
    let (_, mut dialog) = client.invite("10000", Some(offer)).await;
    client.ack(&mut dialog).await;
    assert!(!client
        .receive_rtp(Duration::from_millis(200))
        .await
        .is_empty());

    let mut hold = client.in_dialog(&mut dialog, "INVITE");
    let hold_sdp = client.offer(
        "0 101",
        "a=rtpmap:101 telephone-event/8000\r\n",
        "a=sendonly\r\n",
    );
    hold.set_body("application/sdp", Bytes::from(hold_sdp));
    let cseq = hold.header("CSeq").unwrap().to_string();
    client.send(&hold).await;
    let response = client.final_response(&cseq).await;
    assert_eq!(response.status(), Some(200));
    assert!(std::str::from_utf8(&response.body)
        .unwrap()
        .contains("a=recvonly"));
    client.ack(&mut dialog).await;
    let _ = client.receive_rtp(Duration::from_millis(100)).await;
    assert!(
        client
            .receive_rtp(Duration::from_millis(200))
            .await
            .is_empty(),
        "no RTP while held"
    );

    let mut resume = client.in_dialog(&mut dialog, "INVITE");
    let resume_sdp = client.g711_offer();
    resume.set_body("application/sdp", Bytes::from(resume_sdp));
    let cseq = resume.header("CSeq").unwrap().to_string();
    client.send(&resume).await;
    let response = client.final_response(&cseq).await;
    assert!(std::str::from_utf8(&response.body)
        .unwrap()
        .contains("a=sendrecv"));
    client.ack(&mut dialog).await;
    assert!(
        !client
            .receive_rtp(Duration::from_millis(200))
            .await
            .is_empty(),
        "RTP resumes"
    );
    assert_eq!(client.bye(&mut dialog).await, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_without_a_common_codec_gets_488() {
    let server = start(test_config()).await;
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let g729 = client.offer("18", "a=rtpmap:18 G729/8000\r\n", "");
    let (response, _) = client.invite("10000", Some(g729)).await;
    assert_eq!(response.status(), Some(488));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_capacity_get_503_with_retry_after() {
    let mut config = test_config();
    config.sip.max_calls = 1;
    let server = start(config).await;
    let mut first = Client::udp(server.udp_addrs[0]).await;
    let offer = first.g711_offer();
    let (response, mut dialog) = first.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200));
    first.ack(&mut dialog).await;
    let mut second = Client::tcp(server.tcp_addrs[0]).await;
    let offer = second.g711_offer();
    let (refused, refused_dialog) = second.invite("10000", Some(offer)).await;
    assert_eq!(refused.status(), Some(503));
    assert!(refused.header("Retry-After").is_some());
    assert_eq!(first.bye(&mut dialog).await, 200);
    // Both have their call record: the refused one with its reason, the
    // answered one (no dialplan loaded: it heard the greeting) as ended.
    let (caller, dialled, disposition, ..) = call_record(&server, &refused_dialog.call_id).await;
    assert_eq!(
        (caller.as_str(), dialled.as_str(), disposition.as_str()),
        ("13800138000", "10000", "rejected")
    );
    let (_, _, disposition, ..) = call_record(&server, &dialog.call_id).await;
    assert_eq!(disposition, "remote_bye");
    server.shutdown().await;
}

/// The record of the call `call_id` (caller, dialled, disposition, path,
/// tickets), once written.
async fn call_record(
    server: &hotline::server::Server,
    call_id: &str,
) -> (String, String, String, String, Vec<String>) {
    for _ in 0..100 {
        if let Some(record) = server.store().calls_by_sip_id(call_id).await.unwrap().pop() {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no call record for {call_id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_outside_the_trusted_networks_get_a_bare_403() {
    let mut config = test_config();
    config.sip.trusted_networks = vec!["127.0.0.2/32".parse().unwrap()];
    let server = start(config).await;
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let options = client.request("OPTIONS", "10000", "acl-1", 1);
    client.send(&options).await;
    let response = client.final_response("1 OPTIONS").await;
    assert_eq!(response.status(), Some(403));
    assert!(response.header("Allow").is_none() && response.header("Server").is_none());
    let offer = client.g711_offer();
    let (refused, _) = client.invite("10000", Some(offer)).await;
    assert_eq!(refused.status(), Some(403));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_is_answered_over_udp_and_tcp() {
    let server = start(test_config()).await;
    for mut client in [
        Client::udp(server.udp_addrs[0]).await,
        Client::tcp(server.tcp_addrs[0]).await,
    ] {
        let options = client.request("OPTIONS", "10000", &client_call_id(), 1);
        client.send(&options).await;
        let response = client.final_response("1 OPTIONS").await;
        assert_eq!(response.status(), Some(200));
        for header in ["Allow", "Accept", "Supported"] {
            assert!(response.has_header(header), "{header} missing");
        }
    }
    server.shutdown().await;
}

fn client_call_id() -> String {
    format!("opt-{}", rand::random::<u32>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_handles_several_messages_per_read_and_partial_reads() {
    let server = start(test_config()).await;
    let mut client = Client::tcp(server.tcp_addrs[0]).await;
    let first = client.request("OPTIONS", "10000", "tcp-a", 1).to_bytes();
    let second = client.request("OPTIONS", "10000", "tcp-b", 1).to_bytes();
    let mut both = first.to_vec();
    both.extend_from_slice(&second);
    client.send_raw(&both).await;
    let third = client.request("OPTIONS", "10000", "tcp-c", 1).to_bytes();
    let (head, tail) = third.split_at(third.len() / 2);
    client.send_raw(head).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.send_raw(tail).await;
    for call_id in ["tcp-a", "tcp-b", "tcp-c"] {
        let response = client
            .expect(call_id, move |m| m.header("Call-ID") == Some(call_id))
            .await;
        assert_eq!(response.status(), Some(200));
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bye_too_big_for_udp_goes_over_tcp() {
    let mut config = test_config();
    config.calls.max_duration_secs = 1;
    let server = start(config).await;
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let listener = support::tcp_listener_on(client.local)
        .await
        .expect("TCP on the client's port");
    let mut invite = client.request("INVITE", "10000", "big-bye", 1);
    // A long route set makes the gateway's BYE larger than 1300 bytes.
    let long = "x".repeat(200);
    for i in 0..8 {
        invite.push_header(
            "Record-Route",
            format!(
                "<sip:{}:{};lr;p{i}={long}>",
                client.local.ip(),
                client.local.port()
            ),
        );
    }
    let offer = client.g711_offer();
    invite.set_body("application/sdp", Bytes::from(offer));
    client.send(&invite).await;
    let response = client.final_response("1 INVITE").await;
    assert_eq!(response.status(), Some(200));
    let to = response.header("To").unwrap().to_string();
    let mut ack = client.request("ACK", "10000", "big-bye", 1);
    ack.set_header("From", invite.header("From").unwrap());
    ack.set_header("To", to);
    client.send(&ack).await;

    let (mut stream, _) = tokio::time::timeout(Duration::from_secs(4), listener.accept())
        .await
        .expect("gateway connects over TCP")
        .unwrap();
    let mut buffer = Vec::new();
    let bye = loop {
        if let Ok(Some(len)) = hotline::sip::message::stream_frame_len(&buffer) {
            break Message::parse(&buffer[..len]).unwrap();
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::io::AsyncReadExt::read(&mut stream, &mut chunk),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(n > 0, "connection closed before the BYE");
        buffer.extend_from_slice(&chunk[..n]);
    };
    assert!(is_method("BYE")(&bye));
    assert!(bye.header("Via").unwrap().starts_with("SIP/2.0/TCP"));
    assert!(bye.to_bytes().len() > 1300);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_refuses_new_calls_then_ends_live_ones_with_bye() {
    let mut config = test_config();
    config.shutdown.drain_timeout_secs = 1;
    let server = start(config).await;
    let udp = server.udp_addrs[0];
    let mut live = Client::udp(udp).await;
    let offer = live.g711_offer();
    let (response, mut dialog) = live.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200));
    live.ack(&mut dialog).await;

    let stopping = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut late = Client::udp(udp).await;
    let offer = late.g711_offer();
    let (refused, _) = late.invite("10000", Some(offer)).await;
    assert_eq!(
        refused.status(),
        Some(503),
        "new calls are refused while draining"
    );

    let bye = live.answer_bye(Duration::from_secs(3)).await;
    assert!(
        bye.is_some(),
        "the live call is ended with BYE after the drain timeout"
    );
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("the gateway stops after the drain")
        .unwrap();
}
