//! The gateway as a UAC: an outgoing INVITE to a transfer target (the
//! *bridge* transfer mode), as a pure state machine above the INVITE client
//! transaction. Responses and timer expiries go in; what to do comes out
//! ([`UacStep`]): report ringing or the answer, retry with digest
//! credentials, CANCEL, or give up with a [`UacFailure`].
//!
//! Also the pure builders of the requests such a call sends: the INVITE,
//! its CANCEL (RFC 3261 §9.1) and the ACK of a 2xx (§13.2.2.4). The
//! endpoint owns the transactions, the sockets' flows and the timers.

use super::digest::Challenge;
use super::headers::NameAddr;
use super::message::{Header, Message, Method};

/// How many times a challenged INVITE is sent again with credentials
/// (a second challenge is only answered when it says `stale=true`).
const MAX_AUTH_ATTEMPTS: u8 = 2;

/// Why an outgoing call did not reach the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UacFailure {
    /// 486 Busy Here or 600 Busy Everywhere.
    Busy(u16),
    /// Ringing for longer than the ring timeout (a CANCEL was sent).
    NotAnswered,
    /// No response at all (timer B) or the transport failed.
    Unreachable,
    /// Any other final response of 300 or more (a challenge we cannot
    /// answer included).
    Failed(u16),
}

/// Where the outgoing call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UacState {
    /// INVITE sent, nothing heard yet.
    Calling,
    /// A provisional response arrived (100 Trying or the target rings).
    Early,
    /// We gave up before any response: the CANCEL waits for the first
    /// provisional one (RFC 3261 §9.1: a CANCEL MUST NOT be sent before).
    CancelPending,
    /// A 2xx arrived: the call is up.
    Answered,
    /// We gave up (ring timeout or our side hung up) and sent CANCEL;
    /// a 2xx that still comes is acknowledged and ended with BYE.
    Cancelling,
    /// The call failed or was ended.
    Ended,
}

/// What the endpoint has to do after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UacStep {
    Nothing,
    /// The first provisional response above 100 (ringing, progress).
    Ringing,
    /// The target answered; ACK the 2xx and start the media.
    Answered,
    /// Send the INVITE again with this credentials header
    /// (`Authorization` or `Proxy-Authorization`) answering `challenge`.
    Authenticate {
        header: &'static str,
        challenge: Challenge,
    },
    /// Send CANCEL; when `report` holds a failure, tell the application.
    Cancel {
        report: Option<UacFailure>,
    },
    /// Like `Cancel`, but nothing has answered yet: the CANCEL is sent
    /// when a provisional response arrives (a `Cancel` step then).
    CancelLater {
        report: Option<UacFailure>,
    },
    /// A 2xx after we gave up: ACK it and send BYE at once.
    AckAndBye,
    /// The call failed.
    Failed(UacFailure),
}

/// One outgoing call's decisions.
#[derive(Debug, Clone)]
pub struct OutgoingInvite {
    pub state: UacState,
    has_credentials: bool,
    auth_attempts: u8,
    ringing_reported: bool,
}

impl OutgoingInvite {
    /// `has_credentials`: whether a username and password are configured
    /// for the target (without them a challenge is a failure).
    pub fn new(has_credentials: bool) -> OutgoingInvite {
        OutgoingInvite {
            state: UacState::Calling,
            has_credentials,
            auth_attempts: 0,
            ringing_reported: false,
        }
    }

    /// A response to our INVITE. `challenge` is the value of
    /// `WWW-Authenticate` (for 401) or `Proxy-Authenticate` (for 407).
    pub fn on_response(&mut self, code: u16, challenge: Option<&str>) -> UacStep {
        match (self.state, code) {
            (UacState::Ended | UacState::Answered, _) => UacStep::Nothing,
            (UacState::Cancelling, 200..=299) => {
                self.state = UacState::Ended;
                UacStep::AckAndBye
            }
            (UacState::Cancelling, 300..) => {
                self.state = UacState::Ended;
                UacStep::Nothing
            }
            (UacState::CancelPending, 100..=199) => {
                self.state = UacState::Cancelling;
                UacStep::Cancel { report: None }
            }
            (UacState::CancelPending, 200..=299) => {
                self.state = UacState::Ended;
                UacStep::AckAndBye
            }
            (UacState::CancelPending, _) => {
                self.state = UacState::Ended;
                UacStep::Nothing
            }
            (UacState::Calling, 100) => {
                self.state = UacState::Early;
                UacStep::Nothing
            }
            (UacState::Cancelling, _) | (_, 100) => UacStep::Nothing,
            (UacState::Calling | UacState::Early, 101..=199) => {
                self.state = UacState::Early;
                if self.ringing_reported {
                    UacStep::Nothing
                } else {
                    self.ringing_reported = true;
                    UacStep::Ringing
                }
            }
            (UacState::Calling | UacState::Early, 200..=299) => {
                self.state = UacState::Answered;
                UacStep::Answered
            }
            (UacState::Calling | UacState::Early, 401 | 407) => self.on_challenge(code, challenge),
            (UacState::Calling | UacState::Early, _) => {
                self.state = UacState::Ended;
                UacStep::Failed(match code {
                    486 | 600 => UacFailure::Busy(code),
                    _ => UacFailure::Failed(code),
                })
            }
        }
    }

    fn on_challenge(&mut self, code: u16, challenge: Option<&str>) -> UacStep {
        let parsed = challenge.and_then(|value| Challenge::parse(value).ok());
        let retry = match &parsed {
            Some(c) if self.has_credentials => {
                self.auth_attempts == 0 || (c.stale && self.auth_attempts < MAX_AUTH_ATTEMPTS)
            }
            _ => false,
        };
        match parsed {
            Some(challenge) if retry => {
                self.auth_attempts += 1;
                // A new INVITE transaction starts; 1xx are reported again.
                self.state = UacState::Calling;
                UacStep::Authenticate {
                    header: if code == 407 {
                        "Proxy-Authorization"
                    } else {
                        "Authorization"
                    },
                    challenge,
                }
            }
            _ => {
                self.state = UacState::Ended;
                UacStep::Failed(UacFailure::Failed(code))
            }
        }
    }

    /// The ring timeout expired before an answer.
    pub fn on_ring_timeout(&mut self) -> UacStep {
        self.give_up(Some(UacFailure::NotAnswered))
    }

    /// Our side gives up before the answer (the caller hung up).
    pub fn on_abandon(&mut self) -> UacStep {
        self.give_up(None)
    }

    /// Cancels the INVITE now, or once something has answered it.
    fn give_up(&mut self, report: Option<UacFailure>) -> UacStep {
        match self.state {
            UacState::Early => {
                self.state = UacState::Cancelling;
                UacStep::Cancel { report }
            }
            UacState::Calling => {
                self.state = UacState::CancelPending;
                UacStep::CancelLater { report }
            }
            _ => UacStep::Nothing,
        }
    }

    /// The INVITE transaction timed out (timer B) or its transport failed.
    pub fn on_transaction_timeout(&mut self) -> UacStep {
        match self.state {
            UacState::Calling | UacState::Early => {
                self.state = UacState::Ended;
                UacStep::Failed(UacFailure::Unreachable)
            }
            UacState::Cancelling | UacState::CancelPending => {
                self.state = UacState::Ended;
                UacStep::Nothing
            }
            _ => UacStep::Nothing,
        }
    }
}

/// What an outgoing INVITE carries.
#[derive(Debug, Clone)]
pub struct InviteParts<'a> {
    /// The target's URI (the Request-URI and the To).
    pub target: &'a str,
    /// Our From (a name-addr, without tag) and its tag.
    pub from: &'a str,
    pub from_tag: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    /// Our Contact value.
    pub contact: &'a str,
    pub user_agent: &'a str,
    /// Extra headers: the transfer context.
    pub headers: &'a [(String, String)],
    pub sdp: &'a [u8],
}

/// Builds the INVITE (without Via: the endpoint adds it per transport).
pub fn build_invite(parts: &InviteParts<'_>) -> Message {
    let target = parts.target;
    let mut invite = Message::request(Method::Invite, request_uri(target));
    invite.push_header("Max-Forwards", "70");
    invite.push_header("From", format!("{};tag={}", parts.from, parts.from_tag));
    invite.push_header("To", format!("<{}>", request_uri(target)));
    invite.push_header("Call-ID", parts.call_id);
    invite.push_header("CSeq", format!("{} INVITE", parts.cseq));
    invite.push_header("Contact", parts.contact);
    invite.push_header("User-Agent", parts.user_agent);
    invite.push_header(
        "Allow",
        "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, NOTIFY",
    );
    for (name, value) in parts.headers {
        invite.push_header(name, value.clone());
    }
    invite.set_body("application/sdp", parts.sdp.to_vec());
    invite
}

/// The Request-URI for a target URI: without its `?headers` part (those
/// are for a REFER's Refer-To, not for us to send on).
pub fn request_uri(target: &str) -> &str {
    target.split_once('?').map_or(target, |(uri, _)| uri)
}

/// The port a target URI without one is called on: 5061 when it is
/// reached over TLS (`sips:`, `;transport=tls`), else 5060 (RFC 3261
/// §19.1.2; no SRV lookup, RFC 3263).
pub fn default_port(uri: &super::headers::Uri) -> u16 {
    match super::endpoint::Transport::for_uri(uri) {
        super::endpoint::Transport::Tls => 5061,
        _ => 5060,
    }
}

/// The CANCEL of a sent INVITE (RFC 3261 §9.1): the same Request-URI, top
/// Via, Call-ID, From, To, Route and CSeq number.
pub fn build_cancel(invite: &Message) -> Message {
    let uri = invite.request_uri().unwrap_or_default().to_string();
    let mut cancel = Message::request(Method::Cancel, uri);
    if let Some(via) = invite.header_values("Via").next() {
        cancel.push_header("Via", via);
    }
    cancel.push_header("Max-Forwards", "70");
    for name in ["From", "To", "Call-ID"] {
        if let Some(value) = invite.header(name) {
            cancel.push_header(name, value);
        }
    }
    cancel.push_header("CSeq", format!("{} CANCEL", cseq_number(invite)));
    for route in invite.header_lines("Route") {
        cancel.push_header("Route", route);
    }
    cancel
}

/// The ACK of a non-2xx final response (RFC 3261 §17.1.1.3): the INVITE's
/// Request-URI, top Via, From, Call-ID and Route, the response's To.
pub fn build_error_ack(invite: &Message, response: &Message) -> Message {
    let uri = invite.request_uri().unwrap_or_default().to_string();
    let mut ack = Message::request(Method::Ack, uri);
    if let Some(via) = invite.header_values("Via").next() {
        ack.push_header("Via", via);
    }
    ack.push_header("Max-Forwards", "70");
    for (name, source) in [("From", invite), ("To", response), ("Call-ID", invite)] {
        if let Some(value) = source.header(name) {
            ack.push_header(name, value);
        }
    }
    ack.push_header("CSeq", format!("{} ACK", cseq_number(invite)));
    for route in invite.header_lines("Route") {
        ack.push_header("Route", route);
    }
    ack
}

fn cseq_number(request: &Message) -> u32 {
    request
        .header("CSeq")
        .and_then(|c| super::headers::CSeq::parse(c).ok())
        .map_or(1, |c| c.seq)
}

/// Copies every header but Via, and the body, of `invite` into a new
/// INVITE with CSeq `cseq` and the credentials header added: the retry
/// after a challenge (RFC 3261 §22.2).
pub fn reinvite_with_credentials(
    invite: &Message,
    cseq: u32,
    header: &str,
    credentials: String,
) -> Message {
    let uri = invite.request_uri().unwrap_or_default().to_string();
    let mut retry = Message::request(Method::Invite, uri);
    for Header { name, value } in &invite.headers {
        let skip = name.eq_ignore_ascii_case("Via")
            || name.eq_ignore_ascii_case("Authorization")
            || name.eq_ignore_ascii_case("Proxy-Authorization")
            || name.eq_ignore_ascii_case("Content-Length");
        if skip {
            continue;
        }
        if name.eq_ignore_ascii_case("CSeq") {
            retry.push_header("CSeq", format!("{cseq} INVITE"));
        } else {
            retry.push_header(name, value.clone());
        }
    }
    retry.push_header(header, credentials);
    retry.body = invite.body.clone();
    retry
}

/// The remote tag of a response's To, if it has one.
pub fn to_tag(response: &Message) -> Option<String> {
    NameAddr::parse(response.header("To")?)
        .ok()?
        .tag()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHALLENGE: &str = "Digest realm=\"pbx\", nonce=\"abc\", qop=\"auth\"";

    #[test]
    fn ringing_then_answer() {
        let mut uac = OutgoingInvite::new(false);
        assert_eq!(uac.on_response(100, None), UacStep::Nothing);
        assert_eq!(uac.on_response(180, None), UacStep::Ringing);
        assert_eq!(uac.on_response(183, None), UacStep::Nothing);
        assert_eq!(uac.on_response(200, None), UacStep::Answered);
        assert_eq!(uac.state, UacState::Answered);
        assert_eq!(uac.on_response(200, None), UacStep::Nothing);
        assert_eq!(uac.on_ring_timeout(), UacStep::Nothing);
    }

    #[test]
    fn busy_and_other_finals_fail() {
        for (code, failure) in [
            (486, UacFailure::Busy(486)),
            (600, UacFailure::Busy(600)),
            (404, UacFailure::Failed(404)),
            (603, UacFailure::Failed(603)),
            (302, UacFailure::Failed(302)),
            (503, UacFailure::Failed(503)),
        ] {
            let mut uac = OutgoingInvite::new(true);
            uac.on_response(180, None);
            assert_eq!(uac.on_response(code, None), UacStep::Failed(failure));
            assert_eq!(uac.state, UacState::Ended);
        }
    }

    #[test]
    fn a_challenge_is_answered_once_with_credentials() {
        let mut uac = OutgoingInvite::new(true);
        match uac.on_response(407, Some(CHALLENGE)) {
            UacStep::Authenticate { header, challenge } => {
                assert_eq!(header, "Proxy-Authorization");
                assert_eq!(challenge.realm, "pbx");
            }
            other => panic!("{other:?}"),
        }
        // Wrong password: the same challenge again is a failure.
        assert_eq!(
            uac.on_response(407, Some(CHALLENGE)),
            UacStep::Failed(UacFailure::Failed(407))
        );
    }

    #[test]
    fn a_stale_nonce_is_answered_again_and_401_uses_authorization() {
        let mut uac = OutgoingInvite::new(true);
        assert!(matches!(
            uac.on_response(401, Some(CHALLENGE)),
            UacStep::Authenticate {
                header: "Authorization",
                ..
            }
        ));
        let stale = format!("{CHALLENGE}, stale=true");
        assert!(matches!(
            uac.on_response(401, Some(&stale)),
            UacStep::Authenticate { .. }
        ));
        assert_eq!(uac.on_response(180, None), UacStep::Ringing);
        assert_eq!(uac.on_response(200, None), UacStep::Answered);
    }

    #[test]
    fn challenges_without_credentials_or_parsable_header_fail() {
        let mut uac = OutgoingInvite::new(false);
        assert_eq!(
            uac.on_response(401, Some(CHALLENGE)),
            UacStep::Failed(UacFailure::Failed(401))
        );
        let mut uac = OutgoingInvite::new(true);
        assert_eq!(
            uac.on_response(401, Some("Basic realm=\"x\"")),
            UacStep::Failed(UacFailure::Failed(401))
        );
        let mut uac = OutgoingInvite::new(true);
        assert_eq!(
            uac.on_response(407, None),
            UacStep::Failed(UacFailure::Failed(407))
        );
    }

    #[test]
    fn ring_timeout_cancels_and_a_late_answer_is_hung_up() {
        let mut uac = OutgoingInvite::new(false);
        uac.on_response(180, None);
        assert_eq!(
            uac.on_ring_timeout(),
            UacStep::Cancel {
                report: Some(UacFailure::NotAnswered)
            }
        );
        assert_eq!(uac.on_response(200, None), UacStep::AckAndBye);
        assert_eq!(uac.state, UacState::Ended);
        let mut uac = OutgoingInvite::new(false);
        uac.on_response(100, None);
        uac.on_ring_timeout();
        assert_eq!(uac.on_response(487, None), UacStep::Nothing);
        assert_eq!(uac.state, UacState::Ended);
    }

    #[test]
    fn giving_up_before_any_response_cancels_only_once_one_arrives() {
        let mut uac = OutgoingInvite::new(false);
        assert_eq!(
            uac.on_ring_timeout(),
            UacStep::CancelLater {
                report: Some(UacFailure::NotAnswered)
            }
        );
        assert_eq!(uac.on_ring_timeout(), UacStep::Nothing, "reported once");
        assert_eq!(uac.on_response(100, None), UacStep::Cancel { report: None });
        assert_eq!(uac.on_response(487, None), UacStep::Nothing);
        assert_eq!(uac.state, UacState::Ended);
        // Answered before anything else came: hung up at once.
        let mut uac = OutgoingInvite::new(false);
        assert_eq!(uac.on_abandon(), UacStep::CancelLater { report: None });
        assert_eq!(uac.on_response(200, None), UacStep::AckAndBye);
        // Never answered at all: timer B ends it quietly.
        let mut uac = OutgoingInvite::new(false);
        uac.on_abandon();
        assert_eq!(uac.on_transaction_timeout(), UacStep::Nothing);
        assert_eq!(uac.state, UacState::Ended);
    }

    #[test]
    fn abandon_cancels_silently_and_timer_b_is_unreachable() {
        let mut uac = OutgoingInvite::new(false);
        uac.on_response(100, None);
        assert_eq!(uac.on_abandon(), UacStep::Cancel { report: None });
        assert_eq!(uac.on_transaction_timeout(), UacStep::Nothing);
        let mut uac = OutgoingInvite::new(false);
        assert_eq!(
            uac.on_transaction_timeout(),
            UacStep::Failed(UacFailure::Unreachable)
        );
    }

    fn sent_invite() -> Message {
        let headers = vec![("X-Ticket-Number".to_string(), "2611230001".to_string())];
        let mut invite = build_invite(&InviteParts {
            target: "sip:agents@127.0.0.1:5070;transport=tcp?X-Skip=1",
            from: "<sip:13800138000@127.0.0.1:5060>",
            from_tag: "ft",
            call_id: "cid",
            cseq: 1,
            contact: "<sip:10000@127.0.0.1:5060>",
            user_agent: "hotline",
            headers: &headers,
            sdp: b"v=0\r\n",
        });
        invite.headers.insert(
            0,
            Header {
                name: "Via".into(),
                value: "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa;rport".into(),
            },
        );
        invite
    }

    #[test]
    fn invite_cancel_and_error_ack_are_built_from_one_another() {
        let invite = sent_invite();
        assert_eq!(
            invite.request_uri(),
            Some("sip:agents@127.0.0.1:5070;transport=tcp")
        );
        assert_eq!(
            invite.header("To"),
            Some("<sip:agents@127.0.0.1:5070;transport=tcp>")
        );
        assert_eq!(invite.header("X-Ticket-Number"), Some("2611230001"));
        assert_eq!(invite.header("Content-Type"), Some("application/sdp"));
        let cancel = build_cancel(&invite);
        assert_eq!(cancel.method(), Some(&Method::Cancel));
        assert_eq!(cancel.header("Via"), invite.header("Via"));
        assert_eq!(cancel.header("CSeq"), Some("1 CANCEL"));
        assert_eq!(cancel.header("To"), invite.header("To"));
        let response = Message::parse(
            b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa\r\n\
              From: <sip:13800138000@127.0.0.1:5060>;tag=ft\r\nTo: <sip:agents@127.0.0.1:5070>;tag=tt\r\n\
              Call-ID: cid\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let ack = build_error_ack(&invite, &response);
        assert_eq!(ack.header("To"), Some("<sip:agents@127.0.0.1:5070>;tag=tt"));
        assert_eq!(ack.header("CSeq"), Some("1 ACK"));
        assert_eq!(ack.header("Via"), invite.header("Via"));
        assert_eq!(to_tag(&response).as_deref(), Some("tt"));
    }

    #[test]
    fn the_retry_keeps_call_id_and_tag_and_bumps_cseq() {
        let invite = sent_invite();
        let retry = reinvite_with_credentials(&invite, 2, "Authorization", "Digest x".into());
        assert_eq!(retry.header("Via"), None);
        assert_eq!(retry.header("CSeq"), Some("2 INVITE"));
        assert_eq!(retry.header("From"), invite.header("From"));
        assert_eq!(retry.header("Call-ID"), Some("cid"));
        assert_eq!(retry.header("Authorization"), Some("Digest x"));
        assert_eq!(retry.header("X-Ticket-Number"), Some("2611230001"));
        assert_eq!(retry.body, invite.body);
    }
}
