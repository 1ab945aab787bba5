//! Bytes from the wire to the transaction layer: any input, over UDP or
//! TCP framing, followed by the timers firing, must never panic.

#![no_main]

use hotline::sip::admission::AdmissionPolicy;
use hotline::sip::endpoint::{Endpoint, EndpointConfig, Event, Flow, Transport};
use hotline::sip::message::stream_frame_len;
use hotline::sip::transaction::TimerValues;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let mut endpoint = Endpoint::new(EndpointConfig {
        timers: TimerValues::default(),
        user_agent: "fuzz".into(),
        admission: AdmissionPolicy {
            trusted_networks: vec!["127.0.0.0/8".parse().unwrap()],
            max_calls: 4,
            invites_per_second_per_source: 0,
        },
    });
    let start = Instant::now();
    let udp = Flow {
        transport: Transport::Udp,
        listener: 0,
        connection: None,
        local: "127.0.0.1:5060".parse().unwrap(),
        remote: "127.0.0.1:5061".parse().unwrap(),
    };
    let tcp = Flow {
        transport: Transport::Tcp,
        connection: Some(1),
        ..udp
    };
    // The input may hold several messages separated by a NUL byte: the
    // first goes in as a datagram, the rest through TCP framing, so that
    // dialog and transaction state built by one is hit by the next.
    let mut parts = data.split(|&b| b == 0);
    if let Some(first) = parts.next() {
        endpoint.handle_message(first, udp, start);
    }
    let mut stream: Vec<u8> = parts.flat_map(|p| p.iter().copied()).collect();
    while let Ok(Some(len)) = stream_frame_len(&stream) {
        endpoint.handle_message(&stream[..len], tcp, start);
        stream.drain(..len);
    }
    let mut now = start;
    for _ in 0..64 {
        while let Some(event) = endpoint.poll_event() {
            if let Event::IncomingCall(call) = event {
                let _ = endpoint.accept(call.call, b"v=0\r\n".to_vec().into(), now);
            }
        }
        while endpoint.poll_transmit().is_some() {}
        match endpoint.poll_timeout() {
            Some(at) => now = at.max(now),
            None => break,
        }
        endpoint.handle_timeout(now);
        now += Duration::from_millis(1);
    }
});
