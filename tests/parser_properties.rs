//! Property tests for the SIP parsers: no input makes them panic (caller
//! identity headers included), what we build parses back to the same
//! message, and what we build is accepted by an independent SIP parser
//! (`rsip`); any phone number's normal form and older spellings read back
//! as the same number.

use bytes::Bytes;
use hotline::phone::PhoneNumber;
use hotline::sip::build::response_to;
use hotline::sip::headers::{AssertedIdentity, CSeq, NameAddr, Privacy, RemotePartyId, Uri, Via};
use hotline::sip::identity::caller_identity;
use hotline::sip::message::{stream_frame_len, Message, Method};
use hotline::sip::validate::check_request;
use proptest::prelude::*;

const INVITE: &str = "INVITE sip:10000@127.0.0.1 SIP/2.0\r\n\
    Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK776asdhds;rport\r\n\
    Max-Forwards: 70\r\nTo: <sip:10000@127.0.0.1>\r\n\
    From: \"Caller\" <sip:13800138000@127.0.0.1>;tag=1928301774\r\n\
    Call-ID: a84b4c76e66710@127.0.0.1\r\nCSeq: 314159 INVITE\r\n\
    Contact: <sip:13800138000@127.0.0.1:5061>\r\nContent-Type: application/sdp\r\n\
    Content-Length: 4\r\n\r\nv=0\n";

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,15}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(message) = Message::parse(&bytes) {
            let _ = check_request(&message);
            let _ = message.to_bytes();
        }
        let _ = stream_frame_len(&bytes);
    }

    #[test]
    fn mutated_requests_never_panic(position in 0usize..INVITE.len(), byte in any::<u8>(), cut in 0usize..INVITE.len()) {
        let mut bytes = INVITE.as_bytes().to_vec();
        bytes[position] = byte;
        bytes.truncate(cut.max(position + 1));
        if let Ok(message) = Message::parse(&bytes) {
            let _ = check_request(&message);
            let _ = response_to(&message, "127.0.0.1:5061".parse().unwrap(), 400, "Bad Request", Some("t"));
        }
    }

    #[test]
    fn header_values_never_panic(value in ".{0,200}") {
        let _ = Via::parse(&value);
        let _ = NameAddr::parse(&value);
        let _ = Uri::parse(&value);
        let _ = CSeq::parse(&value);
        let _ = AssertedIdentity::parse_list(&value);
        let _ = RemotePartyId::parse(&value);
        let _ = Privacy::parse(&value);
    }

    #[test]
    fn any_identity_headers_give_a_caller_without_panicking(
        from in ".{0,80}",
        asserted in ".{0,80}",
        party in ".{0,80}",
        privacy in ".{0,20}",
    ) {
        let mut invite = Message::parse(INVITE.as_bytes()).unwrap();
        invite.set_header("From", from);
        invite.push_header("P-Asserted-Identity", asserted);
        invite.push_header("Remote-Party-ID", party);
        invite.push_header("Privacy", privacy);
        let loopback = ["127.0.0.0/8".parse().unwrap()];
        let identity = caller_identity(&invite, "127.0.0.1".parse().unwrap(), &loopback);
        if let Some(phone) = identity.phone() {
            prop_assert!(phone.is_dialable());
        }
    }

    #[test]
    fn a_phone_number_is_its_own_normal_form(raw in "[+0-9 ()-]{0,24}") {
        if let Ok(phone) = PhoneNumber::parse(&raw) {
            let again = PhoneNumber::parse(phone.as_str()).unwrap();
            prop_assert_eq!(&again, &phone);
            for spelling in phone.spellings() {
                prop_assert_eq!(&PhoneNumber::parse(&spelling).unwrap(), &phone, "{}", spelling);
            }
        }
    }

    #[test]
    fn built_requests_parse_back_identically(
        method in token(),
        user in "[0-9]{1,15}",
        names in proptest::collection::vec(token(), 0..6),
        values in proptest::collection::vec("[ -~]{0,40}", 6),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut request = Message::request(Method::from_token(&method), format!("sip:{user}@127.0.0.1"));
        for (name, value) in names.iter().zip(&values) {
            request.push_header(&format!("X-{name}"), value.trim());
        }
        request.set_body("application/octet-stream", Bytes::from(body));
        let parsed = Message::parse(&request.to_bytes()).unwrap();
        prop_assert_eq!(parsed.method(), request.method());
        prop_assert_eq!(&parsed.body, &request.body);
        for (name, value) in names.iter().zip(&values) {
            let name = format!("X-{name}");
            prop_assert!(parsed.header_lines(&name).any(|v| v == value.trim()));
        }
    }
}

#[test]
fn our_responses_are_accepted_by_rsip() {
    let invite = Message::parse(INVITE.as_bytes()).unwrap();
    for code in [100, 180, 200, 400, 403, 481, 487, 488, 503] {
        let mut response = response_to(
            &invite,
            "127.0.0.1:5061".parse().unwrap(),
            code,
            "Reason",
            Some("abc"),
        );
        response.push_header("Contact", "<sip:10000@127.0.0.1:5060>");
        if code == 200 {
            response.set_body("application/sdp", Bytes::from_static(b"v=0\r\n"));
        }
        let bytes = response.to_bytes();
        let parsed = rsip::SipMessage::try_from(bytes.to_vec())
            .unwrap_or_else(|e| panic!("rsip rejects our {code}: {e:?}"));
        assert!(parsed.is_response());
    }
}

#[test]
fn our_requests_are_accepted_by_rsip() {
    let invite = Message::parse(INVITE.as_bytes()).unwrap();
    let mut dialog = hotline::sip::dialog::Dialog::from_invite(&invite, "ourtag").unwrap();
    let mut bye = dialog.new_request(Method::Bye);
    bye.headers.insert(
        0,
        hotline::sip::message::Header {
            name: "Via".into(),
            value: hotline::sip::build::our_via(
                "UDP",
                "127.0.0.1:5060".parse().unwrap(),
                "z9hG4bK1",
            ),
        },
    );
    let parsed = rsip::SipMessage::try_from(bye.to_bytes().to_vec()).expect("rsip parses our BYE");
    assert!(parsed.is_request());
}
