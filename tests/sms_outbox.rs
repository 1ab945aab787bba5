//! The SMS outbox end to end: tickets queue their texts in the store, the
//! outbox worker sends them to a provider simulator (a real HTTP server on
//! loopback that answers Twilio-style and generic requests, checks their
//! credentials, and fails at random: 500s, 429s, answers slower than the
//! client waits, and messages accepted but answered with 500), and the
//! delivery-status routes record what the provider reports.
//!
//! Delivery is at least once with an idempotency key; the simulator dedupes
//! by it, as a real provider does, and counts what reached it. Every
//! scenario runs on a fresh SQLite file, and on PostgreSQL when
//! `DATABASE_URL` is set (each run in its own schema). Every wait is bounded.

#[macro_use]
mod support;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use chrono::Utc;
use hotline::config::SmsOutboxConfig;
use hotline::sms::signature::{
    generic_signature, twilio_signature, verify_generic, SIGNATURE_HEADER, TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
};
use hotline::tickets::lifecycle::Action;
use hotline::tickets::model::{Actor, Channel, Language, TicketType};
use hotline::tickets::sla::SlaPolicy;
use hotline::tickets::store::{
    DeliveryStatus, NewTicket, OutboxSummary, Store, StoreOptions, Ticket,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::database::{Backend, ScratchDatabase};
use tokio::sync::watch;

const ACCOUNT_SID: &str = "ACtest";
const AUTH_TOKEN: &str = "twilio-token";
const SECRET: &str = "generic-secret";
/// The client's limit per request; the simulator's slow answers take longer.
const REQUEST_TIMEOUT_MS: u64 = 300;
const SLOW_MS: u64 = 600;

// ---------------------------------------------------------------- harness

/// A gateway's store on a scratch database (the wall clock: the worker's
/// backoff runs in real, short, time).
async fn open(database: &ScratchDatabase) -> Store {
    let store = Store::open(
        &database.url,
        StoreOptions::new(Arc::new(SlaPolicy::builtin())),
    )
    .await
    .expect("store opens");
    store.migrate().await.expect("migrations run");
    store
}

async fn run<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(Arc<ScratchDatabase>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(database) = ScratchDatabase::create(backend, "outbox").await else {
        return;
    };
    let database = Arc::new(database);
    tokio::time::timeout(Duration::from_secs(50), scenario(database.clone()))
        .await
        .expect("the scenario finishes in time");
    if let Ok(database) = Arc::try_unwrap(database) {
        database.remove().await;
    }
}

on_both!(
    every_notification_reaches_a_flaky_twilio_once,
    every_notification_reaches_a_flaky_generic_webhook_once,
    a_restart_with_texts_pending_loses_none,
    a_refused_text_fails_at_once,
    retries_back_off_and_then_give_up,
    status_callbacks_update_the_row_when_signed,
    status_callbacks_signed_with_or_without_the_default_port_are_taken,
    transitions_and_the_breach_job_queue_their_texts_in_their_transaction,
);

fn fault(phone: &str, language: Language) -> NewTicket {
    let mut ticket = NewTicket::new(
        TicketType::FaultReport,
        "virtual_network",
        phone,
        "专线中断",
        Channel::Voice,
        Actor::customer(phone),
    );
    ticket.language = Some(language);
    ticket
}

/// `count` tickets from distinct mobiles, half in each language.
async fn create_tickets(store: &Store, count: usize) -> Vec<Ticket> {
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let store = store.clone();
            let language = if i % 2 == 0 {
                Language::Zh
            } else {
                Language::En
            };
            tokio::spawn(async move {
                store
                    .create_ticket(fault(&format!("1390000{i:04}"), language))
                    .await
            })
        })
        .collect();
    let mut tickets = Vec::new();
    for task in tasks {
        tickets.push(task.await.expect("task").expect("ticket created"));
    }
    tickets
}

/// Waits (bounded) until `done` holds for the outbox summary.
async fn wait_for_outbox(store: &Store, what: &str, done: impl Fn(&OutboxSummary) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let summary = store.outbox_summary().await.expect("summary");
        if done(&summary) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {summary:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn twilio_config(simulator: &Simulator) -> SmsOutboxConfig {
    SmsOutboxConfig {
        provider: "twilio".into(),
        api_base: format!("http://{}", simulator.addr),
        account_sid: ACCOUNT_SID.into(),
        auth_token: AUTH_TOKEN.into(),
        from: "+15005550006".into(),
        max_attempts: 40,
        backoff_base_ms: 10,
        backoff_max_secs: 1,
        poll_interval_ms: 20,
        batch_size: 50,
        lease_secs: 1,
        request_timeout_ms: REQUEST_TIMEOUT_MS,
        ..SmsOutboxConfig::default()
    }
}

fn generic_config(simulator: &Simulator) -> SmsOutboxConfig {
    SmsOutboxConfig {
        provider: "generic".into(),
        url: format!("http://{}/generic", simulator.addr),
        secret: SECRET.into(),
        from: "10000".into(),
        ..twilio_config(simulator)
    }
}

// -------------------------------------------------------------- simulator

/// How the simulator answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// ~30 % 500, ~10 % 429, ~7 % slow, ~8 % accepted-then-500, else 201.
    Flaky,
    /// 400 with Twilio's "invalid To" error.
    Refuse,
    /// 429 always.
    Busy,
}

/// A message the simulator took (once per idempotency key).
#[derive(Debug, Clone)]
struct Accepted {
    to: String,
    text: String,
    ticket: Option<String>,
    message_id: String,
}

struct SimState {
    mode: Mode,
    rng: StdRng,
    /// Deduplicated by idempotency key.
    accepted: HashMap<String, Accepted>,
    /// Every request for each key, when it came.
    requests: HashMap<String, Vec<Instant>>,
    /// Requests refused for bad credentials.
    unauthorized: usize,
}

struct Simulator {
    addr: SocketAddr,
    state: Arc<Mutex<SimState>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

enum Outcome {
    Fail,
    Busy,
    Slow,
    AcceptThenFail,
    Accept,
    Refuse,
}

impl Simulator {
    async fn start(mode: Mode, seed: u64) -> Simulator {
        let state = Arc::new(Mutex::new(SimState {
            mode,
            rng: StdRng::seed_from_u64(seed),
            accepted: HashMap::new(),
            requests: HashMap::new(),
            unauthorized: 0,
        }));
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(twilio_messages),
            )
            .route("/generic", post(generic_messages))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Simulator {
            addr,
            state,
            server,
        }
    }

    fn accepted(&self) -> HashMap<String, Accepted> {
        self.state.lock().unwrap().accepted.clone()
    }

    fn requests(&self) -> HashMap<String, Vec<Instant>> {
        self.state.lock().unwrap().requests.clone()
    }

    fn unauthorized(&self) -> usize {
        self.state.lock().unwrap().unauthorized
    }
}

type Sim = Arc<Mutex<SimState>>;

/// Counts the request, then decides the answer.
fn decide(state: &Sim, key: &str) -> Outcome {
    let mut state = state.lock().unwrap();
    state
        .requests
        .entry(key.to_string())
        .or_default()
        .push(Instant::now());
    match state.mode {
        Mode::Refuse => Outcome::Refuse,
        Mode::Busy => Outcome::Busy,
        Mode::Flaky => {
            let roll: f64 = state.rng.random();
            match roll {
                r if r < 0.30 => Outcome::Fail,
                r if r < 0.40 => Outcome::Busy,
                r if r < 0.47 => Outcome::Slow,
                r if r < 0.55 => Outcome::AcceptThenFail,
                _ => Outcome::Accept,
            }
        }
    }
}

/// Takes the message unless its key was taken before; the message id.
fn accept(state: &Sim, key: &str, message: Accepted) -> String {
    let mut state = state.lock().unwrap();
    let count = state.accepted.len();
    state
        .accepted
        .entry(key.to_string())
        .or_insert(Accepted {
            message_id: format!("SM{count:06}"),
            ..message
        })
        .message_id
        .clone()
}

async fn answer(state: &Sim, key: &str, message: Accepted, id_field: &str) -> (StatusCode, String) {
    let outcome = decide(state, key);
    let taken = |state: &Sim| {
        let id = accept(state, key, message.clone());
        serde_json::json!({ id_field: id, "status": "queued" }).to_string()
    };
    match outcome {
        Outcome::Fail => (StatusCode::INTERNAL_SERVER_ERROR, "oops".into()),
        Outcome::Busy => (StatusCode::TOO_MANY_REQUESTS, "slow down".into()),
        Outcome::Refuse => (
            StatusCode::BAD_REQUEST,
            r#"{"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}"#.into(),
        ),
        Outcome::AcceptThenFail => {
            taken(state);
            (StatusCode::INTERNAL_SERVER_ERROR, "lost the answer".into())
        }
        Outcome::Slow => {
            let body = taken(state);
            tokio::time::sleep(Duration::from_millis(SLOW_MS)).await;
            (StatusCode::CREATED, body)
        }
        Outcome::Accept => (StatusCode::CREATED, taken(state)),
    }
}

async fn twilio_messages(
    State(state): State<Sim>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    if authorization != Some(expected.as_str()) {
        state.lock().unwrap().unauthorized += 1;
        return (StatusCode::UNAUTHORIZED, "bad credentials".into());
    }
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) else {
        return (StatusCode::BAD_REQUEST, "no idempotency key".into());
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let (Some(to), Some(text)) = (form.get("To"), form.get("Body")) else {
        return (StatusCode::BAD_REQUEST, "To and Body are required".into());
    };
    if form.get("From").map(String::as_str) != Some("+15005550006") {
        return (StatusCode::BAD_REQUEST, "wrong From".into());
    }
    let message = Accepted {
        to: to.clone(),
        text: text.clone(),
        ticket: None,
        message_id: String::new(),
    };
    answer(&state, key, message, "sid").await
}

#[derive(serde::Deserialize)]
struct GenericMessage {
    id: String,
    to: String,
    from: String,
    text: String,
    ticket: Option<String>,
}

async fn generic_messages(
    State(state): State<Sim>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if verify_generic(
        SECRET.as_bytes(),
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        Utc::now().timestamp(),
        300,
    )
    .is_err()
    {
        state.lock().unwrap().unauthorized += 1;
        return (StatusCode::UNAUTHORIZED, "bad signature".into());
    }
    let Ok(message) = serde_json::from_slice::<GenericMessage>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad JSON".into());
    };
    if header("idempotency-key") != Some(message.id.as_str()) || message.from != "10000" {
        return (StatusCode::BAD_REQUEST, "key or from wrong".into());
    }
    let accepted = Accepted {
        to: message.to,
        text: message.text,
        ticket: message.ticket,
        message_id: String::new(),
    };
    answer(&state, &message.id, accepted, "message_id").await
}

// -------------------------------------------------------------- scenarios

fn stop_signal() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}

/// Every ticket's notifications are each exactly once in the simulator,
/// with the stored recipient and text; the stored rows are sent with the
/// simulator's message id.
async fn assert_all_delivered_once(store: &Store, simulator: &Simulator, tickets: &[Ticket]) {
    let accepted = simulator.accepted();
    let mut expected = 0;
    for ticket in tickets {
        for notification in store.notifications(ticket.id).await.unwrap() {
            expected += 1;
            let taken = accepted
                .get(&notification.dedup_key)
                .unwrap_or_else(|| panic!("{} never reached the provider", notification.dedup_key));
            assert_eq!(
                taken.to,
                hotline::sms::provider::international(&notification.recipient)
            );
            assert_eq!(taken.text, notification.body);
            if let Some(number) = &taken.ticket {
                assert_eq!(number, &ticket.number.to_string());
            }
            assert_eq!(notification.status, DeliveryStatus::Sent);
            assert_eq!(
                notification.provider_message_id.as_ref(),
                Some(&taken.message_id)
            );
            assert!(notification.sent_at.is_some());
        }
    }
    assert_eq!(accepted.len(), expected, "the provider took nothing else");
    assert_eq!(simulator.unauthorized(), 0);
}

async fn every_notification_reaches_a_flaky_twilio_once(database: Arc<ScratchDatabase>) {
    let store = open(&database).await;
    let simulator = Simulator::start(Mode::Flaky, 7).await;
    let tickets = create_tickets(&store, 200).await;
    let (stop, stopped) = stop_signal();
    let worker =
        hotline::sms::outbox::spawn_worker(store.clone(), twilio_config(&simulator), stopped)
            .expect("a provider is configured");
    wait_for_outbox(&store, "200 sent", |s| s.sent == 200).await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("the worker stops")
        .unwrap();
    assert_all_delivered_once(&store, &simulator, &tickets).await;
    let requests: usize = simulator.requests().values().map(Vec::len).sum();
    assert!(
        requests > 200,
        "the simulator failed nothing: {requests} requests"
    );
    store.close().await;
}

async fn every_notification_reaches_a_flaky_generic_webhook_once(database: Arc<ScratchDatabase>) {
    let store = open(&database).await;
    let simulator = Simulator::start(Mode::Flaky, 11).await;
    let tickets = create_tickets(&store, 100).await;
    let (stop, stopped) = stop_signal();
    let worker =
        hotline::sms::outbox::spawn_worker(store.clone(), generic_config(&simulator), stopped)
            .expect("a provider is configured");
    wait_for_outbox(&store, "100 sent", |s| s.sent == 100).await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("the worker stops")
        .unwrap();
    assert_all_delivered_once(&store, &simulator, &tickets).await;
    assert!(simulator
        .accepted()
        .values()
        .all(|taken| taken.ticket.is_some()));
    store.close().await;
}

async fn a_restart_with_texts_pending_loses_none(database: Arc<ScratchDatabase>) {
    let store = open(&database).await;
    let simulator = Simulator::start(Mode::Flaky, 23).await;
    let tickets = create_tickets(&store, 150).await;
    let config = SmsOutboxConfig {
        batch_size: 10,
        ..twilio_config(&simulator)
    };
    // The first gateway dies abruptly part-way: its sends in flight are cut
    // off and its claims are left to expire.
    let (_stop_first, stopped) = stop_signal();
    let first = hotline::sms::outbox::spawn_worker(store.clone(), config.clone(), stopped)
        .expect("a provider is configured");
    wait_for_outbox(&store, "some sent", |s| s.sent >= 30).await;
    first.abort();
    let _ = first.await;
    let at_crash = store.outbox_summary().await.unwrap();
    assert!(
        at_crash.pending + at_crash.sending > 0,
        "texts were still pending at the crash: {at_crash:?}"
    );
    store.close().await;

    // Two gateways start on the same database and compete for the rest.
    let one = open(&database).await;
    let two = open(&database).await;
    let (stop, stopped) = stop_signal();
    let workers = [
        hotline::sms::outbox::spawn_worker(one.clone(), config.clone(), stopped.clone()),
        hotline::sms::outbox::spawn_worker(two.clone(), config, stopped),
    ];
    wait_for_outbox(&one, "150 sent", |s| s.sent == 150).await;
    stop.send(true).unwrap();
    for worker in workers.into_iter().flatten() {
        tokio::time::timeout(Duration::from_secs(5), worker)
            .await
            .expect("the worker stops")
            .unwrap();
    }
    assert_all_delivered_once(&one, &simulator, &tickets).await;
    one.close().await;
    two.close().await;
}

async fn a_refused_text_fails_at_once(database: Arc<ScratchDatabase>) {
    let store = open(&database).await;
    let simulator = Simulator::start(Mode::Refuse, 1).await;
    let tickets = create_tickets(&store, 3).await;
    let (stop, stopped) = stop_signal();
    let worker =
        hotline::sms::outbox::spawn_worker(store.clone(), twilio_config(&simulator), stopped)
            .expect("a provider is configured");
    wait_for_outbox(&store, "3 failed", |s| s.failed == 3).await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("the worker stops")
        .unwrap();
    for ticket in &tickets {
        let notification = store.notifications(ticket.id).await.unwrap().remove(0);
        assert_eq!(notification.status, DeliveryStatus::Failed);
        assert_eq!(notification.attempts, 1);
        assert!(notification.failed_at.is_some());
        let error = notification.last_error.unwrap_or_default();
        assert!(
            error.contains("400") && error.contains("21211"),
            "the provider's code is kept: {error}"
        );
        assert_eq!(simulator.requests()[&notification.dedup_key].len(), 1);
    }
    store.close().await;
}

async fn retries_back_off_and_then_give_up(database: Arc<ScratchDatabase>) {
    let store = open(&database).await;
    let simulator = Simulator::start(Mode::Busy, 1).await;
    let tickets = create_tickets(&store, 20).await;
    let config = SmsOutboxConfig {
        max_attempts: 4,
        backoff_base_ms: 100,
        poll_interval_ms: 5,
        ..twilio_config(&simulator)
    };
    let (stop, stopped) = stop_signal();
    let worker = hotline::sms::outbox::spawn_worker(store.clone(), config, stopped)
        .expect("a provider is configured");
    wait_for_outbox(&store, "20 failed", |s| s.failed == 20).await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("the worker stops")
        .unwrap();
    // gaps[i]: the waits before attempt i + 2, over all notifications.
    let mut gaps: Vec<Vec<Duration>> = vec![Vec::new(); 3];
    for ticket in &tickets {
        let notification = store.notifications(ticket.id).await.unwrap().remove(0);
        assert_eq!(notification.status, DeliveryStatus::Failed);
        assert_eq!(notification.attempts, 4);
        let error = notification.last_error.unwrap_or_default();
        assert!(
            error.starts_with("gave up after 4 attempts: HTTP 429"),
            "{error}"
        );
        let times = &simulator.requests()[&notification.dedup_key];
        assert_eq!(times.len(), 4, "one request per attempt");
        for (i, pair) in times.windows(2).enumerate() {
            let gap = pair[1] - pair[0];
            // Full jitter: never above the ceiling (100, 200, 400 ms), plus
            // the poll interval and scheduling slack on a busy machine.
            let ceiling = Duration::from_millis(100 << i);
            assert!(
                gap <= ceiling + Duration::from_millis(500),
                "wait {gap:?} before attempt {} is above {ceiling:?}",
                i + 2
            );
            gaps[i].push(gap);
        }
    }
    let mean = |gaps: &[Duration]| gaps.iter().sum::<Duration>() / gaps.len() as u32;
    assert!(
        mean(&gaps[2]) > mean(&gaps[0]),
        "waits grow: {:?} then {:?}",
        mean(&gaps[0]),
        mean(&gaps[2])
    );
    store.close().await;
}

/// A status callback server for `store`, on a loopback port.
async fn status_server(
    store: Store,
    configure: impl FnOnce(&str) -> SmsOutboxConfig,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = hotline::sms::status::router(store, configure(&base));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (base, server)
}

async fn status_callbacks_update_the_row_when_signed(database: Arc<ScratchDatabase>) {
    let store = open(&database).await;
    let tickets = create_tickets(&store, 4).await;
    let claims = store
        .claim_notifications(Utc::now(), 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claims.len(), 4);
    for (i, claim) in claims.iter().enumerate() {
        assert!(store
            .mark_sent(claim, Some(format!("SM{i}")))
            .await
            .unwrap());
    }
    let (base, server) = status_server(store.clone(), |base| SmsOutboxConfig {
        auth_token: AUTH_TOKEN.into(),
        status_callback_url: format!("{base}/sms/status"),
        secret: SECRET.into(),
        ..SmsOutboxConfig::default()
    })
    .await;
    let client = reqwest::Client::new();
    let key_of = |i: usize| claims[i].dedup_key.clone();
    let status_of = |key: String| {
        let store = store.clone();
        async move { store.notification(&key).await.unwrap().unwrap() }
    };
    let twilio =
        |url: String, params: Vec<(&'static str, &'static str)>, signature: Option<String>| {
            let client = client.clone();
            async move {
                let mut request = client.post(&url).form(&params);
                if let Some(signature) = signature {
                    request = request.header(TWILIO_SIGNATURE_HEADER, signature);
                }
                request.send().await.unwrap().status()
            }
        };
    let signed = |url: &str, params: &[(&str, &str)]| {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        twilio_signature(AUTH_TOKEN, url, &owned)
    };

    // Twilio, found by the key in the callback URL: delivered.
    let url =
        hotline::sms::provider::status_callback_for(&format!("{base}/sms/status"), &key_of(0));
    let params = vec![("MessageSid", "SM0"), ("MessageStatus", "delivered")];
    let signature = signed(&url, &params);
    assert_eq!(
        twilio(url.clone(), params.clone(), Some(signature)).await,
        StatusCode::OK
    );
    let row = status_of(key_of(0)).await;
    assert_eq!(row.status, DeliveryStatus::Delivered);
    assert!(row.delivered_at.is_some());
    // A late "sent" does not move it back.
    let late = vec![("MessageSid", "SM0"), ("MessageStatus", "sent")];
    let signature = signed(&url, &late);
    assert_eq!(twilio(url, late, Some(signature)).await, StatusCode::OK);
    assert_eq!(status_of(key_of(0)).await.status, DeliveryStatus::Delivered);

    // Twilio, found by its MessageSid: undelivered, with the error code.
    let url = format!("{base}/sms/status");
    let params = vec![
        ("MessageSid", "SM1"),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ];
    let signature = signed(&url, &params);
    assert_eq!(
        twilio(url.clone(), params, Some(signature)).await,
        StatusCode::OK
    );
    let row = status_of(key_of(1)).await;
    assert_eq!(row.status, DeliveryStatus::Failed);
    assert_eq!(
        row.last_error.as_deref(),
        Some("provider reported: undelivered (error 30003)")
    );

    // Bad signature: 403; none: 401; either way nothing changes.
    let params = vec![("MessageSid", "SM2"), ("MessageStatus", "delivered")];
    assert_eq!(
        twilio(url.clone(), params.clone(), Some("AAAA".into())).await,
        StatusCode::FORBIDDEN
    );
    let forged = twilio_signature("wrong-token", &url, &[]);
    assert_eq!(
        twilio(url.clone(), params.clone(), Some(forged)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        twilio(url.clone(), params, None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status_of(key_of(2)).await.status, DeliveryStatus::Sent);
    // Signed but malformed: 400; signed but unknown: 404.
    let params = vec![("MessageSid", "SM2")];
    let signature = signed(&url, &params);
    assert_eq!(
        twilio(url.clone(), params, Some(signature)).await,
        StatusCode::BAD_REQUEST
    );
    let params = vec![("MessageSid", "SM404"), ("MessageStatus", "delivered")];
    let signature = signed(&url, &params);
    assert_eq!(
        twilio(url, params, Some(signature)).await,
        StatusCode::NOT_FOUND
    );

    // Generic: signed JSON by our id.
    let generic = |body: String, secret: &str| {
        let client = client.clone();
        let url = format!("{base}/sms/status/generic");
        let timestamp = Utc::now().timestamp();
        let signature = generic_signature(secret.as_bytes(), timestamp, body.as_bytes());
        async move {
            client
                .post(url)
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(SIGNATURE_HEADER, signature)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let body = serde_json::json!({"id": key_of(2), "status": "delivered"}).to_string();
    assert_eq!(
        generic(body.clone(), "not-the-secret").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status_of(key_of(2)).await.status, DeliveryStatus::Sent);
    assert_eq!(generic(body, SECRET).await, StatusCode::OK);
    assert_eq!(status_of(key_of(2)).await.status, DeliveryStatus::Delivered);
    let body = serde_json::json!({"message_id": "SM3", "status": "failed", "error": "blocked"})
        .to_string();
    assert_eq!(generic(body, SECRET).await, StatusCode::OK);
    assert_eq!(status_of(key_of(3)).await.status, DeliveryStatus::Failed);
    let body = serde_json::json!({"status": "delivered"}).to_string();
    assert_eq!(generic(body, SECRET).await, StatusCode::BAD_REQUEST);
    assert_eq!(
        generic("not json".into(), SECRET).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(tickets.len(), 4);
    server.abort();
    store.close().await;
}

/// The callback URL as configured has no port; Twilio may sign it with the
/// scheme's default port written out. Both spellings are taken, another
/// port is not, and a refused report changes nothing.
async fn status_callbacks_signed_with_or_without_the_default_port_are_taken(
    database: Arc<ScratchDatabase>,
) {
    let store = open(&database).await;
    create_tickets(&store, 2).await;
    let claims = store
        .claim_notifications(Utc::now(), 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claims.len(), 2);
    for (i, claim) in claims.iter().enumerate() {
        assert!(store
            .mark_sent(claim, Some(format!("SMp{i}")))
            .await
            .unwrap());
    }
    const PUBLIC: &str = "https://hooks.example.com/sms/status";
    let (base, server) = status_server(store.clone(), |_| SmsOutboxConfig {
        auth_token: AUTH_TOKEN.into(),
        status_callback_url: PUBLIC.into(),
        ..SmsOutboxConfig::default()
    })
    .await;
    let client = reqwest::Client::new();
    let report = |signed_base: &str, i: usize| {
        let key = claims[i].dedup_key.clone();
        let signed_url = hotline::sms::provider::status_callback_for(signed_base, &key);
        let query = signed_url.split_once('?').unwrap().1.to_string();
        let sid = format!("SMp{i}");
        let params = vec![
            ("MessageSid".to_string(), sid),
            ("MessageStatus".to_string(), "delivered".to_string()),
        ];
        let signature = twilio_signature(AUTH_TOKEN, &signed_url, &params);
        let request = client
            .post(format!("{base}/sms/status?{query}"))
            .form(&params)
            .header(TWILIO_SIGNATURE_HEADER, signature);
        async move { request.send().await.unwrap().status() }
    };
    let status_of = |i: usize| {
        let store = store.clone();
        let key = claims[i].dedup_key.clone();
        async move { store.notification(&key).await.unwrap().unwrap().status }
    };
    for wrong in [
        "https://hooks.example.com:8443/sms/status",
        "http://hooks.example.com:443/sms/status",
    ] {
        assert_eq!(report(wrong, 0).await, StatusCode::FORBIDDEN, "{wrong}");
    }
    assert_eq!(status_of(0).await, DeliveryStatus::Sent);
    assert_eq!(
        report("https://hooks.example.com:443/sms/status", 0).await,
        StatusCode::OK
    );
    assert_eq!(status_of(0).await, DeliveryStatus::Delivered);
    assert_eq!(report(PUBLIC, 1).await, StatusCode::OK);
    assert_eq!(status_of(1).await, DeliveryStatus::Delivered);
    server.abort();
    store.close().await;
}

async fn transitions_and_the_breach_job_queue_their_texts_in_their_transaction(
    database: Arc<ScratchDatabase>,
) {
    let store = open(&database).await;
    let ticket = store
        .create_ticket(fault("13800138000", Language::Zh))
        .await
        .unwrap();
    let number = ticket.number.to_string();
    let staff = || Actor::staff("zhao");
    let kinds = |store: Store, id: i64| async move {
        store
            .notifications(id)
            .await
            .unwrap()
            .into_iter()
            .map(|n| (n.kind, n.dedup_key))
            .collect::<Vec<_>>()
    };

    // A refused transition and a stale version queue nothing.
    assert!(store
        .transition(&number, Action::Resolve, staff(), None, None)
        .await
        .is_err());
    assert!(store
        .transition(&number, Action::Dispatch, staff(), Some(7), None)
        .await
        .is_err());
    assert_eq!(kinds(store.clone(), ticket.id).await.len(), 1);

    let dispatched = store
        .transition(&number, Action::Dispatch, staff(), None, None)
        .await
        .unwrap();
    for action in [Action::Accept, Action::Start] {
        store
            .transition(&number, action, staff(), None, None)
            .await
            .unwrap();
    }
    let resolved = store
        .transition(&number, Action::Resolve, staff(), None, None)
        .await
        .unwrap();
    store
        .transition(&number, Action::Reopen, staff(), None, None)
        .await
        .unwrap();
    let again = store
        .transition(&number, Action::Resolve, staff(), None, None)
        .await
        .unwrap();
    let queued = store.notifications(ticket.id).await.unwrap();
    let listed: Vec<(String, String)> = queued
        .iter()
        .map(|n| (n.kind.clone(), n.dedup_key.clone()))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("ticket_created".into(), format!("ticket_created:{number}")),
            (
                "dispatched".into(),
                format!("dispatched:{number}:{}", dispatched.version)
            ),
            (
                "resolved".into(),
                format!("resolved:{number}:{}", resolved.version)
            ),
            (
                "resolved".into(),
                format!("resolved:{number}:{}", again.version)
            ),
        ]
    );
    assert!(
        queued[1].body.contains("已派发给维修人员"),
        "{}",
        queued[1].body
    );
    assert_eq!(
        queued[2].body,
        format!("【10000】您的工单{number}已处理完毕。服务已恢复请回复1，未恢复请回复2。")
    );
    assert!(queued.iter().all(|n| n.status == DeliveryStatus::Pending));

    // The breach job: one apology per ticket for the repair clock, however
    // often it runs; English for an English ticket; none for a landline.
    let late = store
        .create_ticket(fault("+14155550100", Language::En))
        .await
        .unwrap();
    let landline = store
        .create_ticket(fault("010-12345678", Language::Zh))
        .await
        .unwrap();
    let later = Utc::now() + chrono::Duration::days(30);
    for _ in 0..3 {
        store.mark_breaches(later).await.unwrap();
    }
    let apologies: Vec<_> = store
        .notifications(late.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.kind == "sla_breached")
        .collect();
    assert_eq!(apologies.len(), 1);
    assert_eq!(
        apologies[0].dedup_key,
        format!("sla_breached:{}:repair", late.number)
    );
    assert!(
        apologies[0]
            .body
            .starts_with("10000: we are sorry that ticket"),
        "{}",
        apologies[0].body
    );
    assert!(kinds(store.clone(), landline.id).await.is_empty());
    // The resolved ticket met its repair clock: no apology.
    assert!(kinds(store.clone(), ticket.id)
        .await
        .iter()
        .all(|(kind, _)| kind != "sla_breached"));
    store.close().await;
}
