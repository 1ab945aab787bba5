//! The endpoint over TLS (RFC 3261 §26, RFC 5630), with the harness of
//! `endpoint::tests`: Via `SIP/2.0/TLS`, a `sips:` or `;transport=tls`
//! Contact, answers and in-dialog requests on the caller's connection,
//! secure dialogs that never leave TLS, and calls to TLS targets that
//! carry the name their certificate is checked against.

use super::*;

const TLS_LISTENER: &str = "127.0.0.1:5061";

fn tls_flow(connection: u64) -> Flow {
    Flow {
        transport: Transport::Tls,
        listener: 0,
        connection: Some(connection),
        local: TLS_LISTENER.parse().unwrap(),
        remote: "127.0.0.1:40999".parse().unwrap(),
    }
}

fn tls_invite(branch: &str, uri: &str, contact: &str) -> Req {
    invite(branch)
        .uri(uri)
        .via(&format!("SIP/2.0/TLS 127.0.0.1:5063;branch={branch}"))
        .contact(contact)
}

/// A call over TLS connection 9, answered and acknowledged; the 200.
fn establish_tls(h: &mut Harness, uri: &str, contact: &str) -> (Established, Message) {
    let call = h.offer(&tls_invite("z9hG4bK-tls", uri, contact));
    let ok = h.accept(call);
    let our_tag = to_tag(&ok).unwrap();
    h.receive(
        &ack("z9hG4bK-tls-ack", &our_tag, 1).via("SIP/2.0/TLS 127.0.0.1:5063;branch=z9hG4bK-a"),
    );
    h.events();
    (Established { call, our_tag }, ok)
}

/// Every transmit with the name a new TLS connection would check.
fn transmits_with_names(h: &mut Harness) -> Vec<(Transmit, Message)> {
    std::iter::from_fn(|| h.endpoint.poll_transmit())
        .map(|t| {
            let message = Message::parse(&t.bytes).unwrap();
            (t, message)
        })
        .collect()
}

#[test]
fn a_call_over_tls_is_answered_on_its_connection_with_a_tls_contact() {
    let mut h = Harness::over(tls_flow(9));
    h.receive(&tls_invite(
        "z9hG4bK-tls",
        "sip:10000@127.0.0.1:5061",
        "<sip:alice@127.0.0.1:5063;transport=tls>",
    ));
    let sent = h.transmits();
    assert_eq!(status(&sent[0].message), 100);
    assert_eq!(sent[0].flow.transport, Transport::Tls);
    assert_eq!(sent[0].flow.connection, Some(9));
    let call = match h.events().as_slice() {
        [Event::IncomingCall(incoming)] => incoming.call,
        other => panic!("{other:#?}"),
    };
    let ok = h.accept(call);
    assert_eq!(
        ok.header("Contact"),
        Some("<sip:10000@127.0.0.1:5061;transport=tls>"),
        "a sip: dialog over TLS"
    );
    assert_eq!(
        ok.header("Via"),
        Some("SIP/2.0/TLS 127.0.0.1:5063;branch=z9hG4bK-tls")
    );
    // The UAS core repeats its 2xx until the ACK on any transport (RFC
    // 3261 §13.3.1.4): always on the caller's connection.
    let log = h.advance_to(ms(600));
    assert!(log
        .iter()
        .all(|s| s.flow.transport == Transport::Tls && s.flow.connection == Some(9)));
}

#[test]
fn a_sips_call_gets_a_sips_contact_and_our_bye_over_tls() {
    let mut h = Harness::over(tls_flow(9));
    let (call, ok) = establish_tls(
        &mut h,
        "sips:10000@127.0.0.1:5061",
        "<sips:alice@127.0.0.1:5063>",
    );
    assert_eq!(ok.header("Contact"), Some("<sips:10000@127.0.0.1:5061>"));
    h.endpoint.hangup(call.call, h.now).unwrap();
    let sent = h.transmits();
    let bye = sent
        .iter()
        .find(|s| is_request(&s.message, "BYE"))
        .expect("BYE");
    assert_eq!(bye.message.request_uri(), Some("sips:alice@127.0.0.1:5063"));
    assert!(bye
        .message
        .header("Via")
        .is_some_and(|v| v.starts_with("SIP/2.0/TLS 127.0.0.1:5061;")));
    assert_eq!(bye.flow.transport, Transport::Tls);
    assert_eq!(bye.flow.connection, Some(9), "the caller's connection");
    assert_eq!(bye.flow.remote, "127.0.0.1:5063".parse().unwrap());
}

#[test]
fn a_dialog_over_tls_never_goes_out_in_clear_text() {
    let mut h = Harness::over(tls_flow(9));
    let (call, _) = establish_tls(
        &mut h,
        "sip:10000@127.0.0.1:5061",
        "<sip:alice@127.0.0.1:5063;transport=tcp>",
    );
    h.endpoint.hangup(call.call, h.now).unwrap();
    let sent = h.transmits();
    let bye = sent.iter().find(|s| is_request(&s.message, "BYE")).unwrap();
    assert_eq!(bye.flow.transport, Transport::Tls);
    assert!(bye
        .message
        .header("Via")
        .is_some_and(|v| v.starts_with("SIP/2.0/TLS ")));
}

#[test]
fn a_caller_with_a_sips_contact_gets_our_requests_over_tls_from_our_tls_port() {
    let mut h = Harness::new();
    h.endpoint
        .set_tls_listeners(vec![TLS_LISTENER.parse().unwrap()]);
    let call = h.offer(&invite("z9hG4bK-invite").contact("<sips:alice@127.0.0.1:5063>"));
    let ok = h.accept(call);
    assert_eq!(
        ok.header("Contact"),
        Some("<sip:10000@127.0.0.1:5060>"),
        "the answer stays on the INVITE's transport"
    );
    let our_tag = to_tag(&ok).unwrap();
    h.receive(&ack("z9hG4bK-ack", &our_tag, 1));
    h.endpoint.hangup(call, h.now).unwrap();
    let sent = h.transmits();
    let bye = sent.iter().find(|s| is_request(&s.message, "BYE")).unwrap();
    assert_eq!(bye.flow.transport, Transport::Tls);
    assert_eq!(bye.flow.connection, None, "a new connection");
    assert_eq!(bye.flow.remote, "127.0.0.1:5063".parse().unwrap());
    assert!(bye
        .message
        .header("Via")
        .is_some_and(|v| v.starts_with("SIP/2.0/TLS 127.0.0.1:5061;")));
}

fn call_tls_agent(h: &mut Harness, target: &str, address: &str) -> (CallHandle, Transmit, Message) {
    h.endpoint
        .set_tls_listeners(vec![TLS_LISTENER.parse().unwrap()]);
    let caller = h.establish().call;
    let leg = h
        .endpoint
        .call_out(
            OutgoingRequest {
                target: target.into(),
                addresses: vec![address.parse().unwrap()],
                from_user: "13800138000".into(),
                headers: Vec::new(),
                sdp: Bytes::from_static(ANSWER.as_bytes()),
                credentials: None,
                ring_timeout: ms(10_000),
                origin: Origin::Call(caller),
            },
            h.now,
        )
        .unwrap();
    let mut sent = transmits_with_names(h);
    assert_eq!(sent.len(), 1);
    let (transmit, invite) = sent.remove(0);
    (leg, transmit, invite)
}

#[test]
fn a_sips_target_is_called_over_tls_checked_against_its_host_name() {
    let mut h = Harness::new();
    let (_, transmit, invite) =
        call_tls_agent(&mut h, "sips:agents@agents.example.com", "127.0.0.1:5071");
    assert_eq!(transmit.flow.transport, Transport::Tls);
    assert_eq!(transmit.flow.connection, None);
    assert_eq!(transmit.flow.remote, "127.0.0.1:5071".parse().unwrap());
    assert_eq!(transmit.server_name.as_deref(), Some("agents.example.com"));
    assert_eq!(invite.request_uri(), Some("sips:agents@agents.example.com"));
    assert!(invite
        .header("Via")
        .is_some_and(|v| v.starts_with("SIP/2.0/TLS 127.0.0.1:5061;")));
    assert_eq!(
        invite.header("Contact"),
        Some("<sips:13800138000@127.0.0.1:5061>")
    );
    assert!(invite
        .header("From")
        .is_some_and(|f| f.starts_with("<sips:13800138000@127.0.0.1:5061>;tag=")));
    // Reliable: no timer A.
    let log = h.advance_to(ms(5_000));
    assert!(offsets(&log, |m| is_request(m, "INVITE")).is_empty());
}

#[test]
fn a_transport_tls_target_with_an_ip_is_checked_against_the_ip() {
    let mut h = Harness::new();
    let (leg, transmit, invite) = call_tls_agent(
        &mut h,
        "sip:agents@127.0.0.1:5071;transport=tls",
        "127.0.0.1:5071",
    );
    assert_eq!(transmit.flow.transport, Transport::Tls);
    assert_eq!(transmit.server_name, None, "the IP itself");
    assert_eq!(
        invite.header("Contact"),
        Some("<sip:13800138000@127.0.0.1:5061;transport=tls>")
    );
    // The answer comes back on the connection opened for the INVITE; the
    // ACK and our BYE go on that transport.
    let mut answer = String::from("SIP/2.0 200 OK\r\n");
    answer.push_str(&format!("Via: {}\r\n", invite.header("Via").unwrap()));
    for name in ["From", "Call-ID", "CSeq"] {
        answer.push_str(&format!("{name}: {}\r\n", invite.header(name).unwrap()));
    }
    answer.push_str(&format!(
        "To: {};tag=agent\r\nContact: <sip:a7@127.0.0.1:5071;transport=tls>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
        invite.header("To").unwrap(),
        OFFER.len()
    ));
    let connection = Flow {
        connection: Some(31),
        ..transmit.flow
    };
    h.endpoint
        .handle_message(answer.as_bytes(), connection, h.now);
    let sent = transmits_with_names(&mut h);
    let (ack_transmit, ack) = &sent[0];
    assert!(is_request(ack, "ACK"));
    assert_eq!(ack_transmit.flow.transport, Transport::Tls);
    h.events();
    h.endpoint.hangup(leg, h.now).unwrap();
    let sent = transmits_with_names(&mut h);
    let (bye_transmit, bye) = &sent[0];
    assert!(is_request(bye, "BYE"));
    assert_eq!(bye_transmit.flow.transport, Transport::Tls);
    assert!(bye
        .header("Via")
        .is_some_and(|v| v.starts_with("SIP/2.0/TLS ")));
}

#[test]
fn a_tls_target_that_cannot_be_reached_fails_the_call_at_once() {
    let mut h = Harness::new();
    let (leg, transmit, _) = call_tls_agent(
        &mut h,
        "sips:agents@agents.example.com:5071",
        "127.0.0.1:5071",
    );
    h.events();
    h.endpoint.handle_tcp_failure(transmit.flow.remote, h.now);
    assert!(h.events().iter().any(|e| matches!(
        e,
        Event::OutgoingFailed { leg: l, failure: UacFailure::Unreachable } if *l == leg
    )));
}

#[test]
fn transports_follow_the_uri() {
    let of = |text: &str| Transport::for_uri(&Uri::parse(text).unwrap());
    assert_eq!(of("sips:a@example.com"), Transport::Tls);
    assert_eq!(of("sips:a@example.com;transport=tcp"), Transport::Tls);
    assert_eq!(of("sip:a@example.com;transport=TLS"), Transport::Tls);
    assert_eq!(of("sip:a@example.com;transport=tcp"), Transport::Tcp);
    assert_eq!(of("sip:a@example.com"), Transport::Udp);
    assert_eq!(Transport::Tls.via_token(), "TLS");
    assert!(Transport::Tls.is_reliable());
}
