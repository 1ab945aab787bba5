//! The inbound SMS webhooks against a running gateway over real HTTP:
//! signatures (Twilio's scheme over the configured public URL, the generic
//! HMAC-SHA256 scheme with its replay window), every command in Chinese
//! and English, the privacy rule, rate limits, retries and malformed
//! input. Scenarios that touch the store run on SQLite and, when
//! `DATABASE_URL` is set, on PostgreSQL (each in its own schema).

#[macro_use]
mod support;

use bytes::Bytes;
use hotline::config::Config;
use hotline::server::Server;
use hotline::sms::signature;
use hotline::tickets::lifecycle::Action;
use hotline::tickets::model::{Actor, Channel, CustomerLevel, Language, Status, TicketType};
use hotline::tickets::store::{NewCustomer, Store, Ticket, TicketQuery};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sqlx::{Connection, Executor};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::database::{Backend, ScratchDatabase};

const TOKEN: &str = "12345";
const PUBLIC_URL: &str = "https://gw.example.com:8443";
const SECRET: &str = "whsec_test";
const OUR_NUMBER: &str = "+8610000";
const FORM: &str = "application/x-www-form-urlencoded";

/// A gateway with both SMS endpoints on, and its database.
struct Gateway {
    server: Server,
    database: ScratchDatabase,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The SMS settings of every test: both endpoints on, limits out of the
/// way unless a test lowers them.
fn sms_config(db_url: String) -> Config {
    let mut config = support::test_config();
    config.database.url = db_url;
    config.sms.twilio_auth_token = TOKEN.to_string();
    config.sms.public_url = PUBLIC_URL.to_string();
    config.sms.generic_secret = SECRET.to_string();
    config.sms.max_per_sender_per_minute = 1000;
    config.sms.max_new_tickets_per_sender_per_hour = 1000;
    config
}

async fn gateway(db: Backend, tweak: impl FnOnce(&mut Config)) -> Option<Gateway> {
    let database = ScratchDatabase::create(db, "sms").await?;
    let mut config = sms_config(database.url.clone());
    tweak(&mut config);
    let server = support::start(config).await;
    Some(Gateway { server, database })
}

impl Gateway {
    fn store(&self) -> &Store {
        self.server.store()
    }

    fn addr(&self) -> SocketAddr {
        self.server.http_addr
    }

    async fn finish(self) {
        self.server.shutdown().await;
        self.database.remove().await;
    }

    /// Runs a statement or count on the gateway's database.
    async fn count(&self, sql: &str) -> i64 {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.database.url)
            .await
            .unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
    }

    /// A text column of the one row `sql` selects.
    async fn text_of(&self, sql: &str) -> String {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.database.url)
            .await
            .unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
    }

    async fn execute(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.database.url)
            .await
            .unwrap();
        conn.execute(sql).await.unwrap();
    }

    async fn stored_texts(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM sms_messages").await
    }

    async fn tickets_of(&self, phone: &str) -> Vec<Ticket> {
        self.store()
            .list_tickets(&TicketQuery {
                contact_phone: Some(phone.to_string()),
                ..TicketQuery::default()
            })
            .await
            .unwrap()
    }

    /// Sends a signed Twilio form webhook and returns the reply.
    async fn twilio(&self, from: &str, text: &str, sid: &str) -> Reply {
        let params = twilio_params(from, text, sid);
        let url = format!("{PUBLIC_URL}/sms/twilio");
        let signature = signature::twilio_signature(TOKEN, &url, &params);
        post(
            self.addr(),
            "/sms/twilio",
            &[
                ("content-type", FORM.to_string()),
                ("x-twilio-signature", signature),
            ],
            form(&params),
        )
        .await
    }

    /// Sends `text` from `from` with a fresh message id; the reply's text.
    async fn text(&self, from: &str, text: &str) -> String {
        let sid = format!("SM{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let reply = self.twilio(from, text, &sid).await;
        assert_eq!(reply.status, 200, "{text}: {}", reply.body);
        reply.twiml_message()
    }

    /// Sends a signed generic JSON webhook.
    async fn generic(&self, body: &str, signed_at: i64) -> Reply {
        let signature = signature::generic_signature(SECRET.as_bytes(), signed_at, body.as_bytes());
        post(
            self.addr(),
            "/sms/generic",
            &[
                ("content-type", "application/json".to_string()),
                (signature::TIMESTAMP_HEADER, signed_at.to_string()),
                (signature::SIGNATURE_HEADER, signature),
            ],
            body.as_bytes().to_vec(),
        )
        .await
    }
}

fn twilio_params(from: &str, text: &str, sid: &str) -> Vec<(String, String)> {
    [
        ("ToCountry", "CN"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("Body", text),
        ("To", OUR_NUMBER),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect()
}

fn form(params: &[(String, String)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
        .into_bytes()
}

#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
}

impl Reply {
    /// The text of a TwiML `<Message>`.
    fn twiml_message(&self) -> String {
        let start = self.body.find("<Message>").expect("a TwiML message") + "<Message>".len();
        let end = self.body.find("</Message>").expect("a TwiML message end");
        self.body[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
    }
}

/// One HTTP/1.1 POST over a fresh connection.
async fn post(addr: SocketAddr, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::post(path).header("host", "gw.example.com:8443");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request.body(Full::new(Bytes::from(body))).unwrap();
    let response = tokio::time::timeout(support::WAIT, sender.send_request(request))
        .await
        .expect("a reply in time")
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn full_width(ascii: &str) -> String {
    ascii
        .chars()
        .map(|c| match c {
            ' ' => '\u{3000}',
            '!'..='~' => char::from_u32(c as u32 + 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// `number` with its check digit broken.
fn mistyped(number: &str) -> String {
    let last = number.as_bytes()[9] - b'0';
    format!("{}{}", &number[..9], (last + 1) % 10)
}

/// Opens a ticket by SMS and returns it.
async fn fault_by_sms(gw: &Gateway, from: &str, text: &str) -> Ticket {
    let before = gw
        .tickets_of(
            &hotline::phone::PhoneNumber::parse(from)
                .unwrap()
                .to_string(),
        )
        .await
        .len();
    gw.text(from, text).await;
    let tickets = gw
        .tickets_of(
            &hotline::phone::PhoneNumber::parse(from)
                .unwrap()
                .to_string(),
        )
        .await;
    assert_eq!(tickets.len(), before + 1, "{text} opened a ticket");
    tickets[0].clone()
}

async fn run<F, Fut>(db: Backend, scenario: F)
where
    F: FnOnce(Gateway) -> Fut,
    Fut: Future<Output = Gateway>,
{
    let Some(gw) = gateway(db, |_| {}).await else {
        return;
    };
    scenario(gw).await.finish().await;
}

on_both!(
    twilio_signatures_are_checked_over_the_public_url,
    a_signed_twilio_json_webhook_binds_its_body,
    the_generic_endpoint_checks_its_signature_and_replay_window,
    status_queries_in_both_languages_and_full_width,
    a_bare_status_lists_the_senders_open_tickets,
    faults_and_complaints_open_tickets_for_the_sender,
    a_known_customer_texting_from_plus_86_gets_their_level,
    cancel_works_on_own_open_tickets_only,
    answers_confirm_or_reopen_the_ticket_asked_about,
    help_unknown_and_mistyped_numbers_get_their_texts,
    details_go_only_to_the_tickets_own_number,
    five_concurrent_retries_make_one_ticket_and_five_identical_replies,
    faults_that_name_their_product_get_its_category,
    a_burst_of_reports_and_their_retries_opens_one_ticket_each,
    a_generic_retry_gets_the_same_reply,
    malformed_requests_are_refused_and_store_nothing,
);

async fn twilio_signatures_are_checked_over_the_public_url(gw: Gateway) -> Gateway {
    let params = twilio_params("+8613800138000", "STATUS", "SMsig1");
    let url = format!("{PUBLIC_URL}/sms/twilio?tenant=a%20b");
    let good = signature::twilio_signature(TOKEN, &url, &params);
    let headers = |signature: &str| {
        vec![
            ("content-type", FORM.to_string()),
            ("x-twilio-signature", signature.to_string()),
        ]
    };
    // Signed over the public URL (scheme, port, path and query as the
    // provider requested them), not the address the gateway listens on.
    let reply = post(
        gw.addr(),
        "/sms/twilio?tenant=a%20b",
        &headers(&good),
        form(&params),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/xml"));
    assert!(reply
        .body
        .starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>"));
    assert_eq!(gw.stored_texts().await, 2, "the text and its reply");

    let mut tampered = twilio_params("+8613800138000", "STATUS", "SMsig2");
    let signature = signature::twilio_signature(TOKEN, &url, &tampered);
    tampered[5].1 = "FAULT fake".to_string();
    let reply = post(
        gw.addr(),
        "/sms/twilio?tenant=a%20b",
        &headers(&signature),
        form(&tampered),
    )
    .await;
    assert_eq!(reply.status, 403, "tampered body: {}", reply.body);
    assert!(reply.body.contains("does not match"), "{}", reply.body);

    let params = twilio_params("+8613800138000", "STATUS", "SMsig3");
    let signature = signature::twilio_signature(TOKEN, &url, &params);
    for path in ["/sms/twilio?tenant=other", "/sms/twilio"] {
        let reply = post(gw.addr(), path, &headers(&signature), form(&params)).await;
        assert_eq!(reply.status, 403, "tampered URL {path}: {}", reply.body);
    }
    for other_url in [
        "http://gw.example.com:8443/sms/twilio?tenant=a%20b",
        "https://gw.example.com/sms/twilio?tenant=a%20b",
    ] {
        let signature = signature::twilio_signature(TOKEN, other_url, &params);
        let reply = post(
            gw.addr(),
            "/sms/twilio?tenant=a%20b",
            &headers(&signature),
            form(&params),
        )
        .await;
        assert_eq!(reply.status, 403, "signed for {other_url}");
    }
    let wrong_token = signature::twilio_signature("54321", &url, &params);
    let reply = post(
        gw.addr(),
        "/sms/twilio?tenant=a%20b",
        &headers(&wrong_token),
        form(&params),
    )
    .await;
    assert_eq!(reply.status, 403, "wrong token");
    let reply = post(
        gw.addr(),
        "/sms/twilio?tenant=a%20b",
        &[("content-type", FORM.to_string())],
        form(&params),
    )
    .await;
    assert_eq!(reply.status, 401, "no signature: {}", reply.body);
    assert!(reply.body.contains("X-Twilio-Signature"), "{}", reply.body);
    let reply = post(
        gw.addr(),
        "/sms/twilio?tenant=a%20b",
        &headers("not base64!"),
        form(&params),
    )
    .await;
    assert_eq!(reply.status, 403, "garbage signature");

    assert_eq!(gw.stored_texts().await, 2, "refused requests store nothing");
    assert_eq!(gw.count("SELECT COUNT(*) FROM tickets").await, 0);
    gw
}

async fn a_signed_twilio_json_webhook_binds_its_body(gw: Gateway) -> Gateway {
    let body = r#"{"MessageSid":"SMjson1","From":"+8613800138000","To":"+8610000","Body":"HELP"}"#;
    let hash = hex_sha256(body.as_bytes());
    let path = format!("/sms/twilio?bodySHA256={hash}");
    let signature = signature::twilio_signature(TOKEN, &format!("{PUBLIC_URL}{path}"), &[]);
    let headers = [
        ("content-type", "application/json".to_string()),
        ("x-twilio-signature", signature),
    ];
    let reply = post(gw.addr(), &path, &headers, body.as_bytes().to_vec()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.twiml_message().contains("STATUS <ticket>"));
    let tampered = body.replace("HELP", "FAULT x");
    let reply = post(gw.addr(), &path, &headers, tampered.into_bytes()).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(gw.stored_texts().await, 2);
    gw
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn the_generic_endpoint_checks_its_signature_and_replay_window(gw: Gateway) -> Gateway {
    let now = chrono::Utc::now().timestamp();
    let body = r#"{"id":"g-1","from":"+8613800138000","to":"10000","text":"帮助","received_at":"2026-11-30T10:00:00+08:00"}"#;
    let reply = gw.generic(body, now).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(json["id"], "g-1");
    assert_eq!(json["reply"]["to"], "+8613800138000");
    assert_eq!(json["reply"]["from"], "10000");
    assert!(json["reply"]["text"]
        .as_str()
        .unwrap()
        .starts_with("10000短信服务"));
    assert_eq!(json["reply"]["segments"], 2);

    let stale = gw.generic(&body.replace("g-1", "g-2"), now - 301).await;
    assert_eq!(stale.status, 403, "{}", stale.body);
    assert!(stale.body.contains("replay"), "{}", stale.body);
    // Signed for one body, sent with another.
    let signature = signature::generic_signature(SECRET.as_bytes(), now, body.as_bytes());
    let headers = |signature: String| {
        vec![
            ("content-type", "application/json".to_string()),
            (signature::TIMESTAMP_HEADER, now.to_string()),
            (signature::SIGNATURE_HEADER, signature),
        ]
    };
    let reply = post(
        gw.addr(),
        "/sms/generic",
        &headers(signature),
        body.replace("帮助", "报障 x").into_bytes(),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let wrong = signature::generic_signature(b"other secret", now, body.as_bytes());
    let reply = post(
        gw.addr(),
        "/sms/generic",
        &headers(wrong),
        body.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(reply.status, 403);
    let reply = post(
        gw.addr(),
        "/sms/generic",
        &[("content-type", "application/json".to_string())],
        body.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(gw.stored_texts().await, 2);
    gw
}

async fn status_queries_in_both_languages_and_full_width(gw: Gateway) -> Gateway {
    let ticket = fault_by_sms(&gw, "+8613800138000", "报障 宽带断了").await;
    let number = ticket.number.to_string();
    let zh = gw.text("+8613800138000", &format!("查询 {number}")).await;
    assert!(
        zh.starts_with(&format!("工单{number}（客户报障）：已受理，承诺修复时间")),
        "{zh}"
    );
    let en = gw.text("13800138000", &format!("STATUS {number}")).await;
    assert!(
        en.starts_with(&format!(
            "Ticket {number} (fault report): received. Repair promised by "
        )),
        "{en}"
    );
    let wide = gw
        .text("+8613800138000", &full_width(&format!("STATUS {number}")))
        .await;
    assert_eq!(
        wide, en,
        "full-width letters, digits and spaces read the same"
    );
    let grouped = format!("{}-{}-{}", &number[..3], &number[3..7], &number[7..]);
    let zh_wide = gw
        .text(
            "+8613800138000",
            &format!("请帮我查询{}，谢谢", full_width(&grouped)),
        )
        .await;
    assert_eq!(zh_wide, zh);
    gw
}

async fn a_bare_status_lists_the_senders_open_tickets(gw: Gateway) -> Gateway {
    let none = gw.text("+8613700137000", "status").await;
    assert_eq!(
        none,
        "You have no open tickets. Reply HELP for the commands."
    );
    let first = fault_by_sms(&gw, "+8613700137000", "FAULT no dial tone").await;
    let second = fault_by_sms(&gw, "+8613700137000", "报障 网络时断时续").await;
    gw.store()
        .transition(
            &first.number.to_string(),
            Action::Dispatch,
            Actor::staff("wang"),
            None,
            None,
        )
        .await
        .unwrap();
    let en = gw.text("+8613700137000", "STATUS").await;
    assert_eq!(
        en,
        format!(
            "Your open tickets: {} received; {} dispatched.",
            second.number, first.number
        )
    );
    let zh = gw.text("+8613700137000", "查询").await;
    assert_eq!(
        zh,
        format!(
            "您未完成的工单：{} 已受理；{} 已派单。",
            second.number, first.number
        )
    );
    // Many tickets: as many as fit in 3 segments, and how many more.
    for n in 0..12 {
        fault_by_sms(&gw, "+8613700137000", &format!("FAULT line {n}")).await;
    }
    let many = gw.text("+8613700137000", "查询").await;
    assert!(hotline::sms::segments::segments(&many) <= 3, "{many}");
    assert!(many.contains("；另有"), "{many}");
    let other = gw.text("+8613600136000", "STATUS").await;
    assert!(other.starts_with("You have no open tickets"), "{other}");
    gw
}

async fn faults_and_complaints_open_tickets_for_the_sender(gw: Gateway) -> Gateway {
    let zh = fault_by_sms(&gw, "+8613800138001", "报障：宽带断了，灯一直闪").await;
    assert_eq!(zh.ticket_type, TicketType::FaultReport);
    assert_eq!(zh.channel, Channel::Sms);
    assert_eq!(zh.contact_phone.as_deref(), Some("13800138001"));
    assert_eq!(zh.description, "宽带断了,灯一直闪");
    assert_eq!(zh.language, Language::Zh);
    assert_eq!(zh.category, "bandwidth", "宽带 names the product");
    assert_eq!(zh.level, CustomerLevel::LocalC);
    assert!(zh.due.repair.is_some());
    let events = gw.store().events(zh.id).await.unwrap();
    assert_eq!(events[0].kind, "created");
    assert_eq!(events[0].actor, Actor::customer("13800138001"));
    assert!(
        gw.store().notifications(zh.id).await.unwrap().is_empty(),
        "the reply carries the number: no second text about the new ticket"
    );

    let reply = gw.text("+8613800138001", "FAULT Router is DOWN").await;
    let en = &gw.tickets_of("13800138001").await[0];
    assert_eq!(en.language, Language::En);
    assert_eq!(en.description, "Router is DOWN");
    assert_eq!(en.category, gw.store().sla().default_category());
    assert!(
        reply.starts_with(&format!(
            "Your fault report is ticket {}. Repair promised by ",
            en.number
        )),
        "{reply}"
    );
    assert!(reply.ends_with(&format!("Reply STATUS {} for progress.", en.number)));

    let reply = gw.text("+8613800138001", "我要投诉。。。维修员没来").await;
    let complaint = &gw.tickets_of("13800138001").await[0];
    assert_eq!(complaint.ticket_type, TicketType::Complaint);
    assert_eq!(complaint.description, "维修员没来");
    assert_eq!(
        reply,
        format!(
            "您的投诉已受理，工单号{}。查询进度请回复：查询 {}",
            complaint.number, complaint.number
        )
    );
    let reply = gw.text("+8613800138001", "Complaint: nobody came").await;
    let complaint = &gw.tickets_of("13800138001").await[0];
    assert_eq!(complaint.language, Language::En);
    assert_eq!(
        reply,
        format!(
            "Your complaint is ticket {}. Reply STATUS {} for progress.",
            complaint.number, complaint.number
        )
    );
    let wide = gw
        .text("+8613800138001", "ｆａｕｌｔ　ｎｏ　ｄｉａｌ　ｔｏｎｅ")
        .await;
    assert!(wide.starts_with("Your fault report is ticket"), "{wide}");
    assert_eq!(
        gw.tickets_of("13800138001").await[0].description,
        "no dial tone"
    );

    // Without a description nothing is opened; the sender is told how.
    let count = gw.tickets_of("13800138001").await.len();
    assert_eq!(
        gw.text("+8613800138001", "报障").await,
        "请说明故障情况，例如：报障 宽带无法上网"
    );
    assert!(gw
        .text("+8613800138001", "complaint:")
        .await
        .starts_with("Please say what happened"));
    assert_eq!(gw.tickets_of("13800138001").await.len(), count);
    gw
}

/// The product words of `sla.toml`'s categories decide an SMS fault's
/// category; a fault that names none gets the default.
async fn faults_that_name_their_product_get_its_category(gw: Gateway) -> Gateway {
    let phone = "+8613800138030";
    for (text, category) in [
        ("报障 专线中断，客户无法访问总部", "bandwidth"),
        ("报障：我们的800号码打不进来", "toll_free"),
        ("报障 4008热线无人接听", "toll_free"),
        ("报障 虚拟网短号拨不通", "virtual_network"),
        ("报障 物流E通登录失败", "industry_app"),
        ("报障 无线宽带没有信号", "ict"),
        ("FAULT the leased line drops every evening", "bandwidth"),
        ("FAULT our BROADBAND is down", "bandwidth"),
        ("FAULT call me back on 18001234567", "ict"),
        ("报障 电话没有拨号音", "ict"),
    ] {
        let ticket = fault_by_sms(&gw, phone, text).await;
        assert_eq!(ticket.category, category, "{text}");
        assert!(ticket.due.repair.is_some(), "{text}");
    }
    // A complaint keeps the default category: the words name faults.
    gw.text(phone, "投诉 专线维修太慢").await;
    let complaint = &gw.tickets_of("13800138030").await[0];
    assert_eq!(complaint.ticket_type, TicketType::Complaint);
    assert_eq!(complaint.category, gw.store().sla().default_category());
    gw
}

async fn a_known_customer_texting_from_plus_86_gets_their_level(gw: Gateway) -> Gateway {
    gw.store()
        .create_customer(NewCustomer {
            name: "某某集团".into(),
            level: CustomerLevel::Group,
            language: Language::Zh,
            phones: vec!["+8613900139000".into()],
            products: Vec::new(),
        })
        .await
        .unwrap();
    let ticket = fault_by_sms(&gw, "+86 139-0013-9000", "报障 专线中断").await;
    assert_eq!(ticket.level, CustomerLevel::Group);
    assert!(ticket.customer_id.is_some());
    assert_eq!(ticket.contact_phone.as_deref(), Some("13900139000"));
    gw
}

async fn cancel_works_on_own_open_tickets_only(gw: Gateway) -> Gateway {
    let mine = fault_by_sms(&gw, "+8613800138002", "FAULT slow line").await;
    let number = mine.number.to_string();
    let others = gw.text("+8613800138099", &format!("CANCEL {number}")).await;
    assert_eq!(
        others,
        "No such ticket of yours: only a ticket's contact number can cancel it."
    );
    let unknown = loop {
        let candidate = hotline::tickets::number::TicketNumber::generate(&mut rand::rng());
        if candidate != mine.number {
            break candidate.to_string();
        }
    };
    let missing = gw
        .text("+8613800138099", &format!("CANCEL {unknown}"))
        .await;
    assert_eq!(missing, others, "not yours and not there read the same");
    let zh_others = gw.text("+8613800138099", &format!("取消 {number}")).await;
    assert_eq!(
        zh_others,
        "未找到您名下的这张工单：只有工单的联系号码可以取消它。"
    );
    let still = gw.store().ticket(&number).await.unwrap().unwrap();
    assert_eq!(still.status, Status::New);

    let done = gw.text("8613800138002", &format!("取消 {number}")).await;
    assert_eq!(done, format!("工单{number}已取消。"));
    let cancelled = gw.store().ticket(&number).await.unwrap().unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    let events = gw.store().events(cancelled.id).await.unwrap();
    assert_eq!(events.last().unwrap().actor, Actor::customer("13800138002"));
    let again = gw.text("+8613800138002", &format!("CANCEL {number}")).await;
    assert_eq!(
        again,
        format!("Ticket {number} is cancelled and can no longer be cancelled.")
    );
    let english = fault_by_sms(&gw, "+8613800138002", "FAULT again").await;
    let reply = gw
        .text(
            "+8613800138002",
            &format!("please cancel {}", english.number),
        )
        .await;
    assert_eq!(reply, format!("Ticket {} is cancelled.", english.number));
    assert_eq!(
        gw.text("+8613800138002", "取消").await,
        "取消工单请回复：取消 工单号"
    );
    assert!(gw
        .text("+8613800138002", "cancel it")
        .await
        .starts_with("To cancel a ticket, reply CANCEL"));
    gw
}

/// Takes `ticket` to resolved and queues the restoration question, as the
/// SMS outbox does when a ticket is resolved.
async fn resolve_and_ask(gw: &Gateway, ticket: &Ticket) {
    let number = ticket.number.to_string();
    for action in [Action::Dispatch, Action::Accept, Action::Resolve] {
        gw.store()
            .transition(&number, action, Actor::staff("li"), None, None)
            .await
            .unwrap();
    }
    gw.execute(&format!(
        "INSERT INTO outbox (dedup_key, kind, recipient, body, ticket_id, created_at, \
         next_attempt_at, attempts) VALUES ('resolved:{number}', 'resolved', '{}', \
         'reply 1 if service is restored, 2 if not', {}, 0, 0, 0)",
        ticket.contact_phone.as_deref().unwrap_or_default(),
        ticket.id
    ))
    .await;
}

async fn answers_confirm_or_reopen_the_ticket_asked_about(gw: Gateway) -> Gateway {
    let phone = "+8613800138003";
    assert_eq!(
        gw.text(phone, "1").await,
        gw.text(phone, "HELP").await,
        "no question waiting: the help text"
    );
    let first = fault_by_sms(&gw, phone, "FAULT one").await;
    resolve_and_ask(&gw, &first).await;
    let reply = gw.text(phone, "1").await;
    assert_eq!(
        reply,
        format!("Thank you: ticket {} is confirmed restored.", first.number)
    );
    let first = gw
        .store()
        .ticket(&first.number.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status, Status::Confirmed);

    let second = fault_by_sms(&gw, phone, "报障 二").await;
    resolve_and_ask(&gw, &second).await;
    let reply = gw.text(phone, "否").await;
    assert_eq!(
        reply,
        format!(
            "很抱歉故障仍未恢复，工单{}已重新处理，工程师会再次跟进。",
            second.number
        )
    );
    let second = gw
        .store()
        .ticket(&second.number.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.status, Status::InProgress);

    let third = fault_by_sms(&gw, phone, "FAULT three").await;
    resolve_and_ask(&gw, &third).await;
    assert!(gw.text(phone, "是").await.starts_with("感谢您的确认"));
    let fourth = fault_by_sms(&gw, phone, "FAULT four").await;
    resolve_and_ask(&gw, &fourth).await;
    assert!(gw.text(phone, "２").await.starts_with("Sorry the service"));
    let fifth = fault_by_sms(&gw, phone, "FAULT five").await;
    resolve_and_ask(&gw, &fifth).await;
    assert!(gw.text(phone, "Y").await.starts_with("Thank you"));
    let sixth = fault_by_sms(&gw, phone, "FAULT six").await;
    resolve_and_ask(&gw, &sixth).await;
    assert!(gw.text(phone, "n").await.starts_with("Sorry"));
    // A bare digit says no language: the reply is in the question's, the
    // ticket's (Chinese here, English for "FAULT four" above).
    let eighth = fault_by_sms(&gw, phone, "报障 八").await;
    resolve_and_ask(&gw, &eighth).await;
    assert_eq!(
        gw.text(phone, "1").await,
        format!("感谢您的确认，工单{}已确认恢复。", eighth.number)
    );
    let ninth = fault_by_sms(&gw, phone, "报障 九").await;
    resolve_and_ask(&gw, &ninth).await;
    assert_eq!(
        gw.text(phone, "2").await,
        format!(
            "很抱歉故障仍未恢复，工单{}已重新处理，工程师会再次跟进。",
            ninth.number
        )
    );
    // Nobody else can answer for the sender.
    let seventh = fault_by_sms(&gw, phone, "FAULT seven").await;
    resolve_and_ask(&gw, &seventh).await;
    gw.text("+8613800138098", "1").await;
    let seventh = gw
        .store()
        .ticket(&seventh.number.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seventh.status, Status::Resolved);
    gw
}

async fn help_unknown_and_mistyped_numbers_get_their_texts(gw: Gateway) -> Gateway {
    let phone = "+8613800138004";
    let en_help = gw.text(phone, "HELP").await;
    assert_eq!(
        en_help,
        "10000 by SMS: STATUS <ticket> for progress; STATUS for your open tickets; \
         FAULT <text> to report a fault; COMPLAINT <text>; CANCEL <ticket>."
    );
    assert_eq!(gw.text(phone, "？").await, en_help);
    let zh_help = gw.text(phone, "帮助").await;
    assert!(
        zh_help.starts_with("10000短信服务：查询 工单号"),
        "{zh_help}"
    );
    assert_eq!(gw.text(phone, "ｈｅｌｐ").await, en_help);
    assert_eq!(
        gw.text(phone, "hello there").await,
        format!("Sorry, we did not understand that. {en_help}")
    );
    assert_eq!(
        gw.text(phone, "你好").await,
        format!("抱歉，未能识别您的短信。{zh_help}")
    );
    let ticket = fault_by_sms(&gw, phone, "FAULT x").await;
    let typo = mistyped(&ticket.number.to_string());
    assert_eq!(
        gw.text(phone, &format!("STATUS {typo}")).await,
        format!("Ticket number {typo} looks mistyped (its check digit is wrong). Please check it and try again.")
    );
    assert_eq!(
        gw.text(phone, &format!("查询 {}", full_width(&typo))).await,
        format!("工单号{typo}似乎输错了（校验位不符），请核对后重发。")
    );
    assert_eq!(
        gw.text(phone, &format!("取消 {typo}")).await,
        format!("工单号{typo}似乎输错了（校验位不符），请核对后重发。")
    );
    assert_eq!(
        gw.text(phone, "STATUS 555-1234").await,
        "A ticket number has 10 digits; 5551234 has 7. Please check it and try again."
    );
    let unknown = loop {
        let candidate = hotline::tickets::number::TicketNumber::generate(&mut rand::rng());
        if candidate != ticket.number {
            break candidate.to_string();
        }
    };
    assert_eq!(
        gw.text(phone, &format!("STATUS {unknown}")).await,
        format!("No ticket {unknown} was found. Please check the number.")
    );
    assert_eq!(
        gw.text(phone, &format!("查询 {unknown}")).await,
        format!("未找到工单{unknown}，请核对工单号。")
    );
    gw
}

async fn details_go_only_to_the_tickets_own_number(gw: Gateway) -> Gateway {
    let ticket = fault_by_sms(&gw, "+8613800138005", "报障 专线中断").await;
    let number = ticket.number.to_string();
    let own = gw.text("+8613800138005", &format!("STATUS {number}")).await;
    assert!(
        own.contains("fault report") && own.contains("Repair promised by"),
        "{own}"
    );
    let stranger = gw.text("+8613800138077", &format!("STATUS {number}")).await;
    assert_eq!(
        stranger,
        format!("Ticket {number}: received. Details go only to the ticket's contact number.")
    );
    let stranger_zh = gw.text("+8613800138077", &format!("查询 {number}")).await;
    assert_eq!(
        stranger_zh,
        format!("工单{number}：已受理。详情只发送给该工单的联系号码。")
    );
    for reply in [&stranger, &stranger_zh] {
        assert!(!reply.contains("专线"), "{reply}");
        assert!(!reply.contains("13800138005"), "{reply}");
    }
    gw
}

/// Sender `sender`'s fault report of the burst below (the same message id
/// every time it is delivered).
async fn burst_report(gw: &Gateway, sender: usize) -> Reply {
    gw.twilio(
        &format!("+86139001{sender:05}"),
        &format!("报障 宽带断了 {sender}"),
        &format!("SMburst{sender}"),
    )
    .await
}

/// Many reports at once, each delivered twice at the same moment: they
/// meet in the writer's batches (a retry can share a batch, and a
/// multi-row statement, with its first delivery), yet each opens one
/// ticket, both deliveries get the same reply, and both texts are linked.
/// The first few were delivered once before: in the burst they are
/// retries of an earlier batch, beside fresh texts: a batch holding one
/// rolls back the tickets it made first and records its texts the other
/// way round, and no ticket is left over.
async fn a_burst_of_reports_and_their_retries_opens_one_ticket_each(gw: Gateway) -> Gateway {
    const SENDERS: usize = 40;
    const EARLIER: usize = 10;
    for sender in 0..EARLIER {
        let reply = burst_report(&gw, sender).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let gw = std::sync::Arc::new(gw);
    let tasks: Vec<_> = (0..SENDERS * 2)
        .map(|i| {
            let gw = gw.clone();
            let sender = i / 2;
            tokio::spawn(async move {
                let reply = burst_report(&gw, sender).await;
                (sender, reply)
            })
        })
        .collect();
    let mut replies: Vec<Vec<String>> = vec![Vec::new(); SENDERS];
    for task in tasks {
        let (sender, reply) = task.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        replies[sender].push(reply.body);
    }
    for (sender, pair) in replies.iter().enumerate() {
        assert_eq!(pair[0], pair[1], "sender {sender}");
        let tickets = gw.tickets_of(&format!("139001{sender:05}")).await;
        assert_eq!(tickets.len(), 1, "sender {sender}");
        let ticket = &tickets[0];
        assert!(pair[0].contains(&ticket.number.to_string()), "{}", pair[0]);
        assert!(ticket.description.ends_with(&format!(" {sender}")));
        let texts = gw.store().texts_of_ticket(ticket.id).await.unwrap();
        let directions: Vec<&str> = texts.iter().map(|t| t.direction.as_str()).collect();
        assert_eq!(directions, ["in", "out"], "sender {sender}");
        assert!(pair[0].contains(&texts[1].body), "{}", pair[0]);
    }
    std::sync::Arc::into_inner(gw).expect("no task holds the gateway")
}

async fn five_concurrent_retries_make_one_ticket_and_five_identical_replies(
    gw: Gateway,
) -> Gateway {
    let gw = std::sync::Arc::new(gw);
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move {
                gw.twilio("+8613800138006", "报障 光猫红灯", "SMretry")
                    .await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        replies.push(reply.body);
    }
    assert!(
        replies.iter().all(|reply| *reply == replies[0]),
        "{replies:#?}"
    );
    let tickets = gw.tickets_of("13800138006").await;
    assert_eq!(tickets.len(), 1, "one ticket");
    assert!(replies[0].contains(&tickets[0].number.to_string()));
    assert!(gw
        .store()
        .notifications(tickets[0].id)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(gw.stored_texts().await, 2, "one text and one reply stored");
    // A later retry: the same reply again, nothing new.
    let later = gw
        .twilio("+8613800138006", "报障 光猫红灯", "SMretry")
        .await;
    assert_eq!(later.body, replies[0]);
    assert_eq!(gw.stored_texts().await, 2);
    let Ok(gw) = std::sync::Arc::try_unwrap(gw) else {
        panic!("tasks still hold the gateway");
    };
    gw
}

async fn a_generic_retry_gets_the_same_reply(gw: Gateway) -> Gateway {
    let now = chrono::Utc::now().timestamp();
    let body = r#"{"id":"g-retry","from":"+8613800138007","to":"10000","text":"FAULT no signal","received_at":"2026-11-30T02:00:00Z"}"#;
    let first = gw.generic(body, now).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second = gw.generic(body, now + 1).await;
    assert_eq!(second.body, first.body);
    assert_eq!(gw.tickets_of("13800138007").await.len(), 1);
    // The same id from another provider is another message.
    let twilio = gw.twilio("+8613800138007", "STATUS", "g-retry").await;
    assert_eq!(twilio.status, 200);
    assert!(twilio.twiml_message().starts_with("Your open tickets: "));
    gw
}

async fn malformed_requests_are_refused_and_store_nothing(gw: Gateway) -> Gateway {
    let params = twilio_params("+8613800138008", "STATUS", "SMbad");
    let url = format!("{PUBLIC_URL}/sms/twilio");
    let signed = |params: &[(String, String)]| signature::twilio_signature(TOKEN, &url, params);
    let reply = post(
        gw.addr(),
        "/sms/twilio",
        &[
            ("content-type", "text/plain".to_string()),
            ("x-twilio-signature", signed(&params)),
        ],
        form(&params),
    )
    .await;
    assert_eq!(reply.status, 415, "{}", reply.body);
    assert!(reply
        .body
        .contains("expected application/x-www-form-urlencoded"));
    let reply = post(gw.addr(), "/sms/twilio", &[], form(&params)).await;
    assert_eq!(reply.status, 415, "no content type");

    let big = "x".repeat(20 * 1024);
    let large = twilio_params("+8613800138008", &big, "SMbig");
    let reply = post(
        gw.addr(),
        "/sms/twilio",
        &[
            ("content-type", FORM.to_string()),
            ("x-twilio-signature", signed(&large)),
        ],
        form(&large),
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.body);

    let missing: Vec<(String, String)> = params
        .iter()
        .filter(|(key, _)| key != "From")
        .cloned()
        .collect();
    let reply = post(
        gw.addr(),
        "/sms/twilio",
        &[
            ("content-type", FORM.to_string()),
            ("x-twilio-signature", signed(&missing)),
        ],
        form(&missing),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.body.contains("the field From is missing"),
        "{}",
        reply.body
    );

    let not_a_phone = twilio_params("hello", "STATUS", "SMnotaphone");
    let reply = post(
        gw.addr(),
        "/sms/twilio",
        &[
            ("content-type", FORM.to_string()),
            ("x-twilio-signature", signed(&not_a_phone)),
        ],
        form(&not_a_phone),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);

    let now = chrono::Utc::now().timestamp();
    for (body, needle) in [
        ("{not json", "not the expected JSON"),
        (r#"{"id":"g","to":"1","text":"x"}"#, "missing field `from`"),
        (
            r#"{"id":"","from":"+8613800138008","to":"1","text":"x"}"#,
            "the field id is empty",
        ),
        (
            r#"{"id":"g","from":"+8613800138008","to":"1","text":"x","received_at":"yesterday"}"#,
            "received_at",
        ),
    ] {
        let reply = gw.generic(body, now).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert!(reply.body.contains(needle), "{body}: {}", reply.body);
    }
    let reply = post(
        gw.addr(),
        "/sms/generic",
        &[("content-type", FORM.to_string())],
        b"id=1".to_vec(),
    )
    .await;
    assert_eq!(reply.status, 415);
    assert_eq!(gw.stored_texts().await, 0);
    assert_eq!(gw.count("SELECT COUNT(*) FROM tickets").await, 0);
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_without_a_secret_are_off() {
    let Some(gw) = gateway(Backend::Sqlite, |config| {
        config.sms.twilio_auth_token.clear();
        config.sms.generic_secret.clear();
    })
    .await
    else {
        return;
    };
    let params = twilio_params("+8613800138000", "STATUS", "SMoff");
    let reply = post(
        gw.addr(),
        "/sms/twilio",
        &[
            ("content-type", FORM.to_string()),
            (
                "x-twilio-signature",
                signature::twilio_signature("", &format!("{PUBLIC_URL}/sms/twilio"), &params),
            ),
        ],
        form(&params),
    )
    .await;
    assert_eq!(reply.status, 404);
    assert!(
        reply.body.contains("sms.twilio_auth_token"),
        "{}",
        reply.body
    );
    let reply = gw.generic("{}", chrono::Utc::now().timestamp()).await;
    assert_eq!(reply.status, 404);
    assert!(reply.body.contains("sms.generic_secret"), "{}", reply.body);
    assert_eq!(gw.stored_texts().await, 0);
    gw.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_answers_ok() {
    let Some(gw) = gateway(Backend::Sqlite, |_| {}).await else {
        return;
    };
    let stream = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get("/healthz")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
    gw.finish().await;
}

/// A retry meets the rate limits before the store finds it is a retry: the
/// token it took is given back, and one the limits refuse is answered from
/// the store. Its id is forgotten by the limits here (they remember the
/// last 16 per sender), as after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_the_limits_forgot_are_answered_and_not_counted() {
    let Some(gw) = gateway(Backend::Sqlite, |config| {
        config.sms.max_per_sender_per_minute = 18;
    })
    .await
    else {
        return;
    };
    let from = "+8613800138013";
    let first = gw.twilio(from, "FAULT no dial tone", "SMf0").await;
    assert_eq!(first.status, 200, "{}", first.body);
    for n in 0..16 {
        assert_eq!(
            gw.twilio(from, "HELP", &format!("SMh{n}")).await.status,
            200
        );
    }
    // One token left; the retry takes it and gives it back.
    let retry = gw.twilio(from, "FAULT no dial tone", "SMf0").await;
    assert_eq!((retry.status, &retry.body), (200, &first.body));
    assert_eq!(gw.twilio(from, "HELP", "SMh16").await.status, 200);
    let over = gw.twilio(from, "HELP", "SMh17").await;
    assert_eq!(over.status, 200);
    assert!(over.twiml_message().starts_with("Too many messages"));
    let refused_but_answered = gw.twilio(from, "FAULT no dial tone", "SMf0").await;
    assert_eq!(
        (refused_but_answered.status, &refused_but_answered.body),
        (200, &first.body)
    );
    assert_eq!(gw.tickets_of("13800138013").await.len(), 1);
    assert_eq!(gw.stored_texts().await, 2 * 19, "18 answered, 1 refused");
    gw.finish().await;
}

/// A text over a sender's limit gets a 200 and a reply in its language
/// saying when to try again (a 4xx would show the customer nothing); it is
/// recorded with that outcome and nothing it asks is done. Told once per
/// run of refusals; a retry of a refused text gets the same answer and is
/// not counted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_over_their_limits_are_told_when_to_try_again() {
    told_when_to_try_again(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_over_their_limits_are_told_when_to_try_again_on_postgres() {
    told_when_to_try_again(Backend::Postgres).await;
}

/// Two gateways on one PostgreSQL database (scale-out): a sender whose
/// texts alternate between them gets the limit once, not once per gateway,
/// is told once, and a provider's retry to the other gateway is not
/// counted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_gets_the_limit_once_across_two_gateways() {
    let Some(first) = gateway(Backend::Postgres, |config| {
        config.sms.max_per_sender_per_minute = 4;
        config.instance.name = "gw-a".into();
    })
    .await
    else {
        return;
    };
    let mut config = sms_config(first.database.url.clone());
    config.sms.max_per_sender_per_minute = 4;
    config.instance.name = "gw-b".into();
    let second = support::start(config).await;
    let both = [first.addr(), second.http_addr];
    let send = |n: usize, sid: String| async move {
        let params = twilio_params("+8613800138020", "HELP", &sid);
        let signature =
            signature::twilio_signature(TOKEN, &format!("{PUBLIC_URL}/sms/twilio"), &params);
        let headers = [
            ("content-type", FORM.to_string()),
            ("x-twilio-signature", signature),
        ];
        post(both[n % 2], "/sms/twilio", &headers, form(&params)).await
    };
    for n in 0..4 {
        let reply = send(n, format!("SMx{n}")).await;
        assert_eq!(reply.status, 200);
        assert!(
            !reply.twiml_message().starts_with("Too many"),
            "text {n} is within the limit"
        );
    }
    // A retry of the first, delivered to the other gateway: answered, not counted.
    let retry = send(1, "SMx0".into()).await;
    assert!(!retry.twiml_message().starts_with("Too many"));
    let over = send(0, "SMx4".into()).await;
    assert!(
        over.twiml_message().starts_with("Too many messages"),
        "{}",
        over.body
    );
    let quiet = send(1, "SMx5".into()).await;
    assert_eq!(
        quiet.body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
        "told once, on whichever gateway"
    );
    assert_eq!(
        first
            .count("SELECT COUNT(*) FROM sms_messages WHERE status = 'rate_limited'")
            .await,
        2
    );
    second.shutdown().await;
    first.finish().await;
}

async fn told_when_to_try_again(db: Backend) {
    let Some(gw) = gateway(db, |config| {
        config.sms.max_per_sender_per_minute = 3;
        config.sms.max_new_tickets_per_sender_per_hour = 1;
    })
    .await
    else {
        return;
    };
    let status_of =
        |sid: &str| format!("SELECT status FROM sms_messages WHERE provider_message_id = '{sid}'");
    for n in 0..3 {
        let reply = gw
            .twilio("+8613800138010", "HELP", &format!("SMlim{n}"))
            .await;
        assert_eq!(reply.status, 200);
    }
    let stored = gw.stored_texts().await;
    let over = gw
        .twilio("+8613800138010", "FAULT no dial tone", "SMlim3")
        .await;
    assert_eq!(over.status, 200, "{}", over.body);
    assert_eq!(
        over.twiml_message(),
        "Too many messages from this number. Please try again in 1 minute."
    );
    assert_eq!(
        gw.stored_texts().await,
        stored + 2,
        "the text and its reply"
    );
    assert_eq!(gw.text_of(&status_of("SMlim3")).await, "rate_limited");
    assert!(
        gw.tickets_of("13800138010").await.is_empty(),
        "nothing done"
    );
    // The provider retries it: the same answer, nothing more stored.
    let retry = gw
        .twilio("+8613800138010", "FAULT no dial tone", "SMlim3")
        .await;
    assert_eq!((retry.status, &retry.body), (200, &over.body));
    assert_eq!(gw.stored_texts().await, stored + 2);
    // Told once: the next refused text (the same number, another
    // spelling) is recorded and gets no reply, and so do its retries.
    let quiet = gw.twilio("13800138010", "HELP", "SMlim4").await;
    assert_eq!(quiet.status, 200);
    assert_eq!(
        quiet.body,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>"
    );
    assert_eq!(gw.stored_texts().await, stored + 4);
    assert_eq!(
        gw.text_of(
            "SELECT o.status FROM sms_messages o JOIN sms_messages i ON o.reply_to = i.id \
             WHERE i.provider_message_id = 'SMlim4'"
        )
        .await,
        "withheld"
    );
    assert_eq!(
        gw.twilio("13800138010", "HELP", "SMlim4").await.body,
        quiet.body
    );
    // A retry of a text answered before the limit is not refused.
    let retry = gw.twilio("+8613800138010", "HELP", "SMlim0").await;
    assert!(
        retry.twiml_message().starts_with("10000 by SMS"),
        "{}",
        retry.body
    );
    // Others are not held back.
    assert_eq!(
        gw.twilio("+8613800138011", "HELP", "SMother").await.status,
        200
    );

    // Chinese for a Chinese text, generic provider.
    let now = chrono::Utc::now().timestamp();
    let generic = |id: &str, text: &str| {
        serde_json::json!({"id": id, "from": "+8613800138014", "to": "10000", "text": text})
            .to_string()
    };
    for n in 0..3 {
        let reply = gw
            .generic(&generic(&format!("g-lim{n}"), "帮助"), now)
            .await;
        assert_eq!(reply.status, 200);
    }
    let over = gw.generic(&generic("g-lim3", "报障 宽带断了"), now).await;
    assert_eq!(over.status, 200, "{}", over.body);
    let json: serde_json::Value = serde_json::from_str(&over.body).unwrap();
    assert_eq!(json["reply"]["text"], "您发送短信过于频繁，请1分钟后再试。");
    assert_eq!(json["reply"]["to"], "+8613800138014");
    let quiet = gw.generic(&generic("g-lim4", "查询"), now).await;
    let json: serde_json::Value = serde_json::from_str(&quiet.body).unwrap();
    assert_eq!(json["reply"], serde_json::Value::Null, "{}", quiet.body);
    assert!(gw.tickets_of("13800138014").await.is_empty());

    // Tickets are limited apart: one new ticket per hour here.
    assert_eq!(
        gw.twilio("+8613800138012", "FAULT one", "SMt1")
            .await
            .status,
        200
    );
    let second = gw.twilio("+8613800138012", "报障 二", "SMt2").await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(
        second.twiml_message(),
        "您通过短信提交的报障和投诉过多，请60分钟后再试，或拨打10000。"
    );
    assert_eq!(gw.text_of(&status_of("SMt2")).await, "rate_limited");
    let retry = gw.twilio("+8613800138012", "报障 二", "SMt2").await;
    assert_eq!(retry.body, second.body, "a retry: the same reply");
    assert_eq!(gw.tickets_of("13800138012").await.len(), 1);
    let status = gw.twilio("+8613800138012", "STATUS", "SMt3").await;
    assert!(
        status.twiml_message().starts_with("Your open tickets"),
        "other commands still work: {}",
        status.body
    );
    gw.finish().await;
}

/// Twilio keeps the port when the URL in its console has one, and its own
/// validators accept the URL with and without the scheme's default port:
/// so does the gateway, for those two spellings only. Tampered requests
/// are still refused and store nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_signatures_with_and_without_the_default_port_are_accepted() {
    for public_url in ["https://gw.example.com", "https://gw.example.com:443"] {
        let Some(gw) = gateway(Backend::Sqlite, |config| {
            config.sms.public_url = public_url.to_string();
        })
        .await
        else {
            return;
        };
        let send = |signed_for: &'static str, params: Vec<(String, String)>| {
            let signature = signature::twilio_signature(TOKEN, signed_for, &params);
            let addr = gw.addr();
            async move {
                post(
                    addr,
                    "/sms/twilio",
                    &[
                        ("content-type", FORM.to_string()),
                        ("x-twilio-signature", signature),
                    ],
                    form(&params),
                )
                .await
            }
        };
        for (n, signed_for) in [
            "https://gw.example.com:443/sms/twilio",
            "https://gw.example.com/sms/twilio",
        ]
        .into_iter()
        .enumerate()
        {
            let params = twilio_params("+8613800138020", "HELP", &format!("SMport{n}"));
            let reply = send(signed_for, params).await;
            assert_eq!(
                reply.status, 200,
                "{public_url}, signed for {signed_for}: {}",
                reply.body
            );
            assert!(reply.twiml_message().contains("STATUS <ticket>"));
        }
        assert_eq!(gw.stored_texts().await, 4, "two texts, two replies");
        for signed_for in [
            "https://gw.example.com:8443/sms/twilio",
            "http://gw.example.com:443/sms/twilio",
            "https://gw.example.com:80/sms/twilio",
            "https://other.example.com:443/sms/twilio",
        ] {
            let params = twilio_params("+8613800138020", "FAULT x", "SMportbad");
            let reply = send(signed_for, params).await;
            assert_eq!(reply.status, 403, "{public_url}, signed for {signed_for}");
        }
        // Signed with the port, then the body changed on the way.
        let params = twilio_params("+8613800138020", "HELP", "SMporttampered");
        let signature =
            signature::twilio_signature(TOKEN, "https://gw.example.com:443/sms/twilio", &params);
        let mut tampered = params.clone();
        tampered[5].1 = "FAULT fake".to_string();
        let reply = post(
            gw.addr(),
            "/sms/twilio",
            &[
                ("content-type", FORM.to_string()),
                ("x-twilio-signature", signature),
            ],
            form(&tampered),
        )
        .await;
        assert_eq!(reply.status, 403, "tampered: {}", reply.body);
        assert_eq!(gw.stored_texts().await, 4, "refused requests store nothing");
        assert_eq!(gw.count("SELECT COUNT(*) FROM tickets").await, 0);
        gw.finish().await;
    }
}

/// `hotline sms test` (the real binary) posts a signed text to a running
/// gateway as the provider would, and prints the reply; a retry with the
/// same id gets the same reply; without the secret it says what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sms_test_command_posts_a_signed_text_and_prints_the_reply() {
    let Some(gw) = gateway(Backend::Sqlite, |_| {}).await else {
        return;
    };
    let url = format!("http://{}", gw.addr());
    let run = move |env: Vec<(&'static str, &'static str)>, args: Vec<String>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"));
        command
            .arg("sms")
            .arg("test")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("HOTLINE_SMS_GENERIC_SECRET")
            .env_remove("HOTLINE_SMS_TWILIO_AUTH_TOKEN")
            .env_remove("HOTLINE_SMS_PUBLIC_URL");
        for (name, value) in env {
            command.env(name, value);
        }
        tokio::task::spawn_blocking(move || command.output().expect("hotline runs"))
    };
    let out = |output: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let generic = vec![("HOTLINE_SMS_GENERIC_SECRET", SECRET)];
    let args = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = vec!["--url".into(), url.clone()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    let first = run(
        generic.clone(),
        args(&["--from", "+8613800138040", "--id", "cli-1", "报障 专线中断"]),
    )
    .await
    .unwrap();
    assert!(first.status.success(), "{}", out(&first));
    let tickets = gw.tickets_of("13800138040").await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].category, "bandwidth");
    let printed = out(&first);
    assert!(
        printed.contains(&format!(
            "reply: 您的客户报障已受理，工单号{}",
            tickets[0].number
        )),
        "{printed}"
    );
    let again = run(
        generic.clone(),
        args(&["--from", "+8613800138040", "--id", "cli-1", "报障 专线中断"]),
    )
    .await
    .unwrap();
    assert_eq!(out(&again), printed, "a retry: the same reply");
    assert_eq!(gw.tickets_of("13800138040").await.len(), 1);

    let twilio = run(
        vec![
            ("HOTLINE_SMS_TWILIO_AUTH_TOKEN", TOKEN),
            ("HOTLINE_SMS_PUBLIC_URL", PUBLIC_URL),
        ],
        args(&["--from", "+8613800138040", "STATUS"]),
    )
    .await
    .unwrap();
    assert!(twilio.status.success(), "{}", out(&twilio));
    assert!(
        out(&twilio).contains("reply: Your open tickets:"),
        "{}",
        out(&twilio)
    );

    let off = run(Vec::new(), args(&["HELP"])).await.unwrap();
    assert!(!off.status.success());
    assert!(
        out(&off).contains("HOTLINE_SMS_GENERIC_SECRET"),
        "{}",
        out(&off)
    );
    let wrong = run(
        vec![("HOTLINE_SMS_GENERIC_SECRET", "not-the-secret")],
        args(&["HELP"]),
    )
    .await
    .unwrap();
    assert!(!wrong.status.success());
    assert!(out(&wrong).contains("answered 403"), "{}", out(&wrong));
    gw.finish().await;
}
