//! The shipped 10000 hotline end to end, over real sockets: the test client
//! reports a fault through 10000 + 9 (service number, confirmation,
//! category) and through 100009, each ticket exists with its fields and SLA
//! deadline and its SMS confirmation queued, the caller hears its number as
//! the digit prompts byte for byte, and the status branch reads both
//! tickets back, latest first. A fault call's SMS confirmation then
//! reaches an SMS provider (a loopback Twilio-style endpoint) through the
//! outbox worker. A call an agent transfers to `survey` with the ticket in
//! `X-Ticket-Number` stores the caller's score on that ticket; one with a
//! mistyped number stores nothing.
//!
//! Callers whose From is no phone number (RFC 3323 `anonymous`, with and
//! without a trusted P-Asserted-Identity; SIPp's `sipp`; an extension
//! `8001`; none keyed at all) each make exactly one ticket with the best
//! contact number there is, and hear its number read back; a
//! P-Asserted-Identity from a source not trusted for it is ignored. A call
//! that reaches `calls.max_duration_secs` hears the time-limit prompt, then
//! BYE.

mod support;

use hotline::media::prompt::PromptLibrary;
use hotline::sip::sdp::{self, Codec};
use hotline::tickets::model::{Actor, Channel, CustomerLevel, Status, TicketType};
use hotline::tickets::sla::SlaClock;
use hotline::tickets::store::{NewTicket, Ticket, TicketQuery};
use rtp_rs::RtpReader;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::{start, test_config, Client};

const CALLER: &str = "13800138000";

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
}

/// A call in progress: the client, its dialog, where the gateway's RTP
/// goes, and the RFC 4733 counters of the keys sent so far.
struct Call {
    client: Client,
    dialog: support::Dialog,
    gateway: SocketAddr,
    sequence: u16,
    timestamp: u32,
}

impl Call {
    async fn dial(server: &hotline::server::Server, number: &str) -> Call {
        Call::dial_with(server, number, &[]).await
    }

    /// A call with extra INVITE headers (what an agent's transfer says).
    async fn dial_with(
        server: &hotline::server::Server,
        number: &str,
        headers: &[(&str, &str)],
    ) -> Call {
        Call::dial_from(server, number, None, headers).await
    }

    /// A call from another From (and extra INVITE headers).
    async fn dial_from(
        server: &hotline::server::Server,
        number: &str,
        from: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Call {
        let mut client = Client::udp(server.udp_addrs[0]).await;
        let offer = client.g711_offer();
        let (response, mut dialog) = client.invite_from(number, from, Some(offer), headers).await;
        assert_eq!(response.status(), Some(200), "{response:?}");
        client.ack(&mut dialog).await;
        let audio = sdp::parse_body(&response.body).unwrap().audio.unwrap();
        Call {
            client,
            dialog,
            gateway: SocketAddr::new(audio.connection.unwrap(), audio.port),
            sequence: 100,
            timestamp: 8_000,
        }
    }

    async fn press(&mut self, keys: &str) {
        self.client
            .send_keys(self.gateway, keys, &mut self.sequence, &mut self.timestamp)
            .await;
    }

    /// Listens until the PCMU audio heard contains `expected`; false if it
    /// did not within `limit`.
    async fn hears(&mut self, expected: &[u8], limit: Duration) -> bool {
        let mut heard: Vec<u8> = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        let mut buf = [0u8; 2048];
        while tokio::time::Instant::now() < deadline {
            let Ok(Ok((len, _))) =
                tokio::time::timeout(Duration::from_secs(2), self.client.rtp.recv_from(&mut buf))
                    .await
            else {
                return false;
            };
            if let Ok(reader) = RtpReader::new(&buf[..len]) {
                if reader.payload_type() == 0 {
                    heard.extend_from_slice(reader.payload());
                    if heard.len() >= expected.len()
                        && heard[heard.len().saturating_sub(expected.len() + 160)..]
                            .windows(expected.len())
                            .any(|w| w == expected)
                    {
                        return true;
                    }
                }
            }
        }
        false
    }

    async fn hang_up(mut self) {
        assert_eq!(self.client.bye(&mut self.dialog).await, 200);
    }
}

/// The PCMU bytes of these prompts, one after the other.
fn prompts(library: &PromptLibrary, names: &[String]) -> Vec<u8> {
    names
        .iter()
        .flat_map(|name| {
            library
                .get(name)
                .unwrap_or_else(|| panic!("no prompt {name}"))
                .encoded(Codec::Pcmu)
                .to_vec()
        })
        .collect()
}

fn digit_prompts(ticket: &Ticket) -> Vec<String> {
    ticket
        .number
        .to_string()
        .chars()
        .map(|d| format!("zh/digits/{d}"))
        .collect()
}

/// The caller's tickets, newest first, once there are `count` of them.
async fn tickets(server: &hotline::server::Server, count: usize) -> Vec<Ticket> {
    let mut tickets = Vec::new();
    for _ in 0..100 {
        tickets = server
            .store()
            .list_tickets(&TicketQuery {
                contact_phone: Some(CALLER.into()),
                ..TicketQuery::default()
            })
            .await
            .unwrap();
        if tickets.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tickets.len(), count, "one ticket per fault call");
    tickets
}

fn assert_fault_ticket(ticket: &Ticket, category: &str) {
    assert_eq!(ticket.ticket_type, TicketType::FaultReport);
    assert_eq!(ticket.category, category);
    assert_eq!(ticket.service_number.as_deref(), Some("55512345"));
    assert_eq!(ticket.channel, Channel::Voice);
    assert_eq!(ticket.status, Status::New);
    assert_eq!(ticket.level, CustomerLevel::LocalC);
    let sla = hotline::tickets::sla::SlaPolicy::builtin();
    for clock in [SlaClock::Dispatch, SlaClock::Repair] {
        let expected = sla.deadline(clock, ticket.created_at, category, CustomerLevel::LocalC);
        let actual = match clock {
            SlaClock::Dispatch => ticket.due.dispatch,
            _ => ticket.due.repair,
        };
        assert_eq!(actual, expected, "{clock:?} deadline");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_hotline_takes_fault_reports_and_reads_their_status_back() {
    let mut config = test_config();
    config.prompts.dir = repo("prompts");
    config.ivr.dialplans_dir = repo("dialplans");
    let server = start(config).await;
    let library = PromptLibrary::load_dir(&repo("prompts")).unwrap();
    let limit = Duration::from_secs(40);

    // 10000, 9, the service number and # over the greeting, 1 to confirm,
    // then 2 (toll-free) at the category menu.
    let mut call = Call::dial(&server, "10000").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.press("955512345#1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.press("2").await;
    let first = tickets(&server, 1).await.remove(0);
    assert_fault_ticket(&first, "toll_free");
    let texts = server.store().notifications(first.id).await.unwrap();
    assert_eq!(texts.len(), 1, "the SMS confirmation is queued");
    assert_eq!(texts[0].recipient, CALLER);
    assert!(texts[0].body.contains(&first.number.to_string()));
    let mut read_back = vec!["zh/your_ticket_number_is".to_string()];
    read_back.extend(digit_prompts(&first));
    assert!(
        call.hears(&prompts(&library, &read_back), limit).await,
        "the fault call reads the ticket number back"
    );
    call.hang_up().await;

    // 100009: straight to the service number; 5 (bandwidth).
    let mut call = Call::dial(&server, "100009").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.press("55512345#1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.press("5").await;
    let second = tickets(&server, 2).await.remove(0);
    assert_fault_ticket(&second, "bandwidth");
    let mut read_back = vec!["zh/your_ticket_number_is".to_string()];
    read_back.extend(digit_prompts(&second));
    assert!(call.hears(&prompts(&library, &read_back), limit).await);
    call.hang_up().await;

    // Status: 1 reads the latest ticket (the 100009 one), 3 the next.
    let mut call = Call::dial(&server, "10000").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.press("1").await;
    let mut latest = vec!["zh/ticket".to_string()];
    latest.extend(digit_prompts(&second));
    assert!(
        call.hears(&prompts(&library, &latest), limit).await,
        "status reads the latest ticket's number"
    );
    let state = ["zh/status_is".to_string(), "zh/status/new".to_string()];
    assert!(call.hears(&prompts(&library, &state), limit).await);
    call.press("3").await;
    let mut next = vec!["zh/ticket".to_string()];
    next.extend(digit_prompts(&first));
    assert!(
        call.hears(&prompts(&library, &next), limit).await,
        "3 reads the caller's next open ticket"
    );
    call.hang_up().await;
    server.shutdown().await;
}

/// What the loopback SMS provider received: (To, Body) per request.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

async fn sms_provider() -> (SocketAddr, Received, tokio::task::JoinHandle<()>) {
    use axum::routing::post;
    let received = Received::default();
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            post(
                |axum::extract::State(received): axum::extract::State<Received>,
                 body: axum::body::Bytes| async move {
                    let form: std::collections::HashMap<String, String> =
                        form_urlencoded::parse(&body).into_owned().collect();
                    let to = form.get("To").cloned().unwrap_or_default();
                    let text = form.get("Body").cloned().unwrap_or_default();
                    received.lock().unwrap().push((to, text));
                    (
                        axum::http::StatusCode::CREATED,
                        r#"{"sid": "SM1", "status": "queued"}"#,
                    )
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, received, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_call_s_sms_confirmation_is_delivered() {
    let (provider, received, provider_task) = sms_provider().await;
    let mut config = test_config();
    config.prompts.dir = repo("prompts");
    config.ivr.dialplans_dir = repo("dialplans");
    // The gateway's own outbox worker, pointed at the loopback provider.
    config.sms_outbox = hotline::config::SmsOutboxConfig {
        provider: "twilio".into(),
        api_base: format!("http://{provider}"),
        account_sid: "ACtest".into(),
        auth_token: "token".into(),
        from: "10000".into(),
        poll_interval_ms: 20,
        ..hotline::config::SmsOutboxConfig::default()
    };
    let server = start(config).await;

    let mut call = Call::dial(&server, "100009").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.press("55512345#1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.press("5").await;
    let ticket = tickets(&server, 1).await.remove(0);
    call.hang_up().await;

    let key = format!("ticket_created:{}", ticket.number);
    let mut status = None;
    for _ in 0..200 {
        status = server
            .store()
            .notification(&key)
            .await
            .unwrap()
            .map(|n| n.status);
        if status == Some(hotline::tickets::store::DeliveryStatus::Sent) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status, Some(hotline::tickets::store::DeliveryStatus::Sent));
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "one text: {received:?}");
    assert_eq!(
        received[0].0,
        format!("+86{CALLER}"),
        "providers get E.164 numbers"
    );
    assert!(
        received[0].1.contains(&ticket.number.to_string()),
        "{}",
        received[0].1
    );
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("the gateway, its worker included, stops");
    provider_task.abort();
}

/// The ticket's `survey` events, once there are `count` of them (or after
/// a few seconds).
async fn survey_events(
    server: &hotline::server::Server,
    ticket: &Ticket,
    count: usize,
) -> Vec<hotline::tickets::store::TicketEvent> {
    let mut events = Vec::new();
    for _ in 0..100 {
        events = server
            .store()
            .events(ticket.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "survey")
            .collect();
        if events.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    events
}

/// The call's record (caller, dialled, disposition, path, tickets), once
/// written.
async fn call_record(
    server: &hotline::server::Server,
    sip_call_id: &str,
) -> (String, String, String, String, Vec<String>) {
    for _ in 0..100 {
        let mut records = server.store().calls_by_sip_id(sip_call_id).await.unwrap();
        if let Some(record) = records.pop() {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no call record for {sip_call_id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_transferred_to_survey_with_a_ticket_header_stores_the_score_on_that_ticket() {
    let mut config = test_config();
    config.prompts.dir = repo("prompts");
    config.ivr.dialplans_dir = repo("dialplans");
    let server = start(config).await;
    let library = PromptLibrary::load_dir(&repo("prompts")).unwrap();
    let ticket = server
        .store()
        .create_ticket(NewTicket::new(
            TicketType::FaultReport,
            "virtual_network",
            CALLER,
            "line down",
            Channel::Staff,
            Actor::staff("agent7"),
        ))
        .await
        .unwrap();
    let number = ticket.number.to_string();

    // The agent transfers the caller to "survey" with the ticket; the
    // caller presses 4 over the welcome.
    let mut call = Call::dial_with(
        &server,
        "survey",
        &[
            ("X-Ticket-Number", number.as_str()),
            ("Referred-By", "<sip:agent7@pbx.example>"),
        ],
    )
    .await;
    let sip_call_id = call.dialog.call_id.clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.press("4").await;
    let events = survey_events(&server, &ticket, 1).await;
    assert_eq!(events.len(), 1, "the score is stored on the ticket");
    assert_eq!(events[0].detail, "score 4, transferred by agent7");
    assert_eq!(events[0].actor.id, CALLER);
    let surveys = server.store().surveys(ticket.id).await.unwrap();
    assert_eq!(surveys.len(), 1);
    assert_eq!(surveys[0].score, 4);
    assert_eq!(surveys[0].agent.as_deref(), Some("agent7"));
    let thanks = prompts(&library, &["zh/survey/thanks".to_string()]);
    assert!(
        call.hears(&thanks, Duration::from_secs(40)).await,
        "the caller is thanked"
    );
    assert!(
        call.client
            .answer_bye(Duration::from_secs(20))
            .await
            .is_some(),
        "then the IVR hangs up"
    );
    let (_, dialled, _, path, tickets) = call_record(&server, &sip_call_id).await;
    assert_eq!(dialled, "survey");
    assert!(
        path.contains(&format!("transferred in by agent7 with ticket {number}")),
        "{path}"
    );
    assert_eq!(
        tickets,
        [number.as_str()],
        "the call is linked to the ticket"
    );

    // A mistyped number (wrong check digit): nothing is loaded, the caller
    // hears that the call cannot be rated, and no score is stored.
    let check = number.as_bytes()[9] - b'0';
    let mistyped = format!("{}{}", &number[..9], (check + 1) % 10);
    let mut call =
        Call::dial_with(&server, "survey", &[("X-Ticket-Number", mistyped.as_str())]).await;
    let sip_call_id = call.dialog.call_id.clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.press("4").await;
    let unavailable = prompts(&library, &["zh/survey/unavailable".to_string()]);
    assert!(call.hears(&unavailable, Duration::from_secs(40)).await);
    assert!(call
        .client
        .answer_bye(Duration::from_secs(20))
        .await
        .is_some());
    let (_, _, _, path, tickets) = call_record(&server, &sip_call_id).await;
    assert!(path.contains("ticket not loaded: mistyped"), "{path}");
    assert!(tickets.is_empty());
    assert_eq!(survey_events(&server, &ticket, 2).await.len(), 1);
    assert_eq!(server.store().surveys(ticket.id).await.unwrap().len(), 1);
    server.shutdown().await;
}

/// Every ticket, newest first, once there are `count` of them.
async fn all_tickets(server: &hotline::server::Server, count: usize) -> Vec<Ticket> {
    let mut tickets = Vec::new();
    for _ in 0..100 {
        tickets = server
            .store()
            .list_tickets(&TicketQuery::default())
            .await
            .unwrap();
        if tickets.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tickets
}

const ANONYMOUS: &str = "\"Anonymous\" <sip:anonymous@anonymous.invalid>";

/// One fault report at 10000 from `from` with `headers`: 9 and the service
/// number with its confirmation over the greeting, then the category, then
/// `then` (a callback number and its confirmation, or wrong ones). Returns
/// the new ticket, once the caller has heard its number read back.
async fn report_fault(
    server: &hotline::server::Server,
    library: &PromptLibrary,
    before: usize,
    (from, headers): (Option<&str>, &[(&str, &str)]),
    service: &str,
    then: &str,
) -> Ticket {
    let mut call = Call::dial_from(server, "10000", from, headers).await;
    let sip_call_id = call.dialog.call_id.clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.press(&format!("9{service}#1")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.press("1").await;
    if !then.is_empty() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        call.press(then).await;
    }
    let tickets = all_tickets(server, before + 1).await;
    assert_eq!(
        tickets.len(),
        before + 1,
        "exactly one ticket for the call from {from:?}"
    );
    let ticket = tickets[0].clone();
    assert_eq!(ticket.ticket_type, TicketType::FaultReport);
    assert_eq!(ticket.service_number.as_deref(), Some(service));
    let mut read_back = vec!["zh/your_ticket_number_is".to_string()];
    read_back.extend(digit_prompts(&ticket));
    assert!(
        call.hears(&prompts(library, &read_back), Duration::from_secs(60))
            .await,
        "the call from {from:?} hears its ticket number"
    );
    call.hang_up().await;
    let (_, _, _, path, linked) = call_record(server, &sip_call_id).await;
    assert_eq!(linked, [ticket.number.to_string()], "{path}");
    assert_eq!(
        all_tickets(server, before + 1).await.len(),
        before + 1,
        "and no second ticket"
    );
    ticket
}

/// The shipped prompts and plans, and the default time-limit prompt.
fn shipped_hotline() -> hotline::config::Config {
    let mut config = test_config();
    config.prompts.dir = repo("prompts");
    config.ivr.dialplans_dir = repo("dialplans");
    config.calls.time_limit_prompt = "time_limit".into();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_whose_from_is_no_number_each_report_one_fault_with_the_best_contact_number() {
    // Loopback is where asserted identities are trusted by default.
    let server = start(shipped_hotline()).await;
    let library = PromptLibrary::load_dir(&repo("prompts")).unwrap();

    // RFC 3323 anonymous with the trunk's P-Asserted-Identity: no
    // question, the asserted number is the contact.
    let asserted = report_fault(
        &server,
        &library,
        0,
        (
            Some(ANONYMOUS),
            &[
                ("P-Asserted-Identity", "<tel:+86-139-0013-9000>"),
                ("Privacy", "id"),
            ],
        ),
        "12345",
        "",
    )
    .await;
    assert_eq!(asserted.contact_phone.as_deref(), Some("13900139000"));
    let texts = server.store().notifications(asserted.id).await.unwrap();
    assert_eq!(texts.len(), 1, "the asserted mobile gets the SMS");
    assert_eq!(texts[0].recipient, "13900139000");

    // Anonymous without one: asked, keys a callback number, confirms.
    let keyed = report_fault(
        &server,
        &library,
        1,
        (Some(ANONYMOUS), &[]),
        "12345",
        "13700137000#1",
    )
    .await;
    assert_eq!(keyed.contact_phone.as_deref(), Some("13700137000"));

    // SIPp's From user and the issue's keys: the service number is a
    // phone number, so it is the contact.
    let sipp = report_fault(
        &server,
        &library,
        2,
        (Some("<sip:sipp@127.0.0.1>"), &[]),
        "13800138000",
        "",
    )
    .await;
    assert_eq!(sipp.contact_phone.as_deref(), Some("13800138000"));

    // A PBX extension reporting a fixed line: that line is the contact
    // (and gets no SMS).
    let extension = report_fault(
        &server,
        &library,
        3,
        (Some("<sip:8001@127.0.0.1>"), &[]),
        "55512345",
        "",
    )
    .await;
    assert_eq!(extension.contact_phone.as_deref(), Some("55512345"));
    assert!(server
        .store()
        .notifications(extension.id)
        .await
        .unwrap()
        .is_empty());

    // No number at all (three wrong ones): the ticket is kept anyway.
    let none = report_fault(
        &server,
        &library,
        4,
        (Some("<sip:linphone@127.0.0.1>"), &[]),
        "12345",
        "123#123#123#",
    )
    .await;
    assert_eq!(none.contact_phone, None);
    assert!(server
        .store()
        .notifications(none.id)
        .await
        .unwrap()
        .is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asserted_identity_from_an_untrusted_source_is_ignored() {
    let mut config = shipped_hotline();
    config.sip.asserted_identity_from = vec!["192.0.2.0/24".parse().unwrap()];
    let server = start(config).await;
    let library = PromptLibrary::load_dir(&repo("prompts")).unwrap();
    let ticket = report_fault(
        &server,
        &library,
        0,
        (
            Some(ANONYMOUS),
            &[("P-Asserted-Identity", "<tel:+8613900139000>")],
        ),
        "12345",
        "13700137000#1",
    )
    .await;
    assert_eq!(
        ticket.contact_phone.as_deref(),
        Some("13700137000"),
        "the caller was asked: the assertion did not count"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_at_its_time_limit_hears_goodbye_then_bye() {
    let mut config = shipped_hotline();
    config.calls.max_duration_secs = 2;
    let server = start(config).await;
    let library = PromptLibrary::load_dir(&repo("prompts")).unwrap();
    let mut call = Call::dial(&server, "10000").await;
    let sip_call_id = call.dialog.call_id.clone();
    let goodbye = prompts(&library, &["zh/time_limit".to_string()]);
    assert!(
        call.hears(&goodbye, Duration::from_secs(15)).await,
        "the time-limit prompt plays in full"
    );
    // Keys now change nothing.
    call.press("9").await;
    let bye = call.client.answer_bye(Duration::from_secs(5)).await;
    assert!(bye.is_some(), "then BYE");
    let (_, _, disposition, path, _) = call_record(&server, &sip_call_id).await;
    assert_eq!(disposition, "time_limit");
    assert!(path.contains("time limit reached"), "{path}");
    assert!(!path.contains("key 9"), "{path}");
    server.shutdown().await;
}
