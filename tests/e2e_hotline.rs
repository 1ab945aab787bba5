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
        let mut client = Client::udp(server.udp_addrs[0]).await;
        let offer = client.g711_offer();
        let (response, mut dialog) = client.invite_with(number, Some(offer), headers).await;
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
    assert_eq!(received[0].0, CALLER);
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
