//! The staff web console against a running gateway over real HTTP on
//! loopback: login with a good and a bad token, the session cookie's
//! flags, logout and revocation, CSRF rejection, the board by status with
//! breached tickets and filters, a ticket resolved from its page queueing
//! the customer's text, role limits, and HTML escaping of what customers
//! and staff wrote. Each scenario runs on SQLite and, when `DATABASE_URL`
//! is set, on PostgreSQL (in its own schema).

#[macro_use]
mod support;

use bytes::Bytes;
use hotline::api::{hash_token, issue_token};
use hotline::server::Server;
use hotline::tickets::lifecycle::Action;
use hotline::tickets::model::{Actor, Channel, StaffRole, TicketType};
use hotline::tickets::store::{NewTicket, Store};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sqlx::Connection;
use std::future::Future;
use std::net::SocketAddr;
use support::database::{Backend, ScratchDatabase};

/// A running gateway with an agent's and a supervisor's token.
struct Console {
    server: Server,
    database: ScratchDatabase,
    agent: String,
    supervisor: String,
}

/// One HTTP answer.
#[derive(Debug)]
struct Page {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
}

impl Page {
    #[track_caller]
    fn expect(&self, status: u16) -> &str {
        assert_eq!(self.status, status, "{}", self.body);
        &self.body
    }

    fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    /// Every Set-Cookie header.
    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// The `name=value` of the Set-Cookie for `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_string())
    }

    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = self.body.find(marker).expect("a csrf field") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_string()
    }
}

/// A logged-in browser: its session cookie and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&[(&str, &str)]>,
) -> Page {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    let body = match form {
        Some(fields) => {
            builder = builder.header("content-type", "application/x-www-form-urlencoded");
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish()
        }
        None => String::new(),
    };
    let request = builder.body(Full::new(Bytes::from(body))).unwrap();
    let response = tokio::time::timeout(support::WAIT, sender.send_request(request))
        .await
        .expect("an answer in time")
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Page {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

impl Console {
    fn store(&self) -> &Store {
        self.server.store()
    }

    fn addr(&self) -> SocketAddr {
        self.server.http_addr
    }

    async fn get(&self, browser: Option<&Browser>, path: &str) -> Page {
        request(
            self.addr(),
            "GET",
            path,
            browser.map(|b| b.cookie.as_str()),
            None,
        )
        .await
    }

    async fn post(&self, browser: &Browser, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut fields = fields.to_vec();
        fields.push(("csrf", &browser.csrf));
        request(
            self.addr(),
            "POST",
            path,
            Some(&browser.cookie),
            Some(&fields),
        )
        .await
    }

    /// Fetches the login form, then posts `token` with its CSRF token.
    async fn try_login(&self, token: &str) -> Page {
        let form = self.get(None, "/console/login").await;
        form.expect(200);
        let login_cookie = form.cookie("hotline_console_login").expect("login cookie");
        request(
            self.addr(),
            "POST",
            "/console/login",
            Some(&login_cookie),
            Some(&[("token", token), ("csrf", &form.csrf())]),
        )
        .await
    }

    async fn login(&self, token: &str) -> Browser {
        let answer = self.try_login(token).await;
        answer.expect(303);
        assert_eq!(answer.location(), Some("/console/board"));
        let cookie = answer.cookie("hotline_console").expect("session cookie");
        let mut browser = Browser {
            cookie,
            csrf: String::new(),
        };
        let board = self.get(Some(&browser), "/console/board").await;
        board.expect(200);
        browser.csrf = board.csrf();
        browser
    }

    /// A fault ticket for `phone` with `description`, opened by staff.
    async fn ticket(&self, phone: &str, description: &str) -> String {
        let mut new = NewTicket::new(
            TicketType::FaultReport,
            "virtual_network",
            phone,
            description,
            Channel::Staff,
            Actor::staff("zhang.wei"),
        );
        new.service_number = Some("VN-0001".into());
        let ticket = self.store().create_ticket(new).await.unwrap();
        ticket.number.to_string()
    }

    async fn finish(self) {
        self.server.shutdown().await;
        self.database.remove().await;
    }
}

async fn console(db: Backend, tweak: impl FnOnce(&mut hotline::config::Config)) -> Option<Console> {
    let database = ScratchDatabase::create(db, "console").await?;
    let mut config = support::test_config();
    config.database.url = database.url.clone();
    tweak(&mut config);
    let server = support::start(config).await;
    let store = server.store().clone();
    let agent = issue_token(&store, "li.na", StaffRole::Agent)
        .await
        .unwrap()
        .token;
    let supervisor = issue_token(&store, "zhang.wei", StaffRole::Supervisor)
        .await
        .unwrap()
        .token;
    Some(Console {
        server,
        database,
        agent,
        supervisor,
    })
}

async fn run<F, Fut>(db: Backend, scenario: F)
where
    F: FnOnce(Console) -> Fut,
    Fut: Future<Output = Console>,
{
    let Some(console) = console(db, |_| {}).await else {
        return;
    };
    scenario(console).await.finish().await;
}

on_both!(
    a_good_token_logs_in_with_a_strict_http_only_cookie,
    a_bad_token_or_a_forged_login_form_opens_no_session,
    logout_and_revocation_end_the_session,
    posts_without_the_session_csrf_token_get_403_and_change_nothing,
    the_board_shows_tickets_by_status_highlights_breaches_and_filters,
    old_open_work_stays_on_the_board_under_a_flood_of_new_tickets,
    resolving_from_the_ticket_page_queues_the_customer_text,
    agents_work_tickets_but_assign_only_to_themselves,
    what_customers_and_staff_wrote_is_escaped,
    the_dashboard_charts_the_indicators_for_supervisors_only,
);

async fn a_good_token_logs_in_with_a_strict_http_only_cookie(console: Console) -> Console {
    // Without a session every page leads to the login.
    let anonymous = console.get(None, "/console/board").await;
    anonymous.expect(303);
    assert_eq!(anonymous.location(), Some("/console/login"));

    let form = console.get(None, "/console/login").await;
    let login_cookie = form
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("hotline_console_login="))
        .unwrap();
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"));

    let answer = console.try_login(&console.agent).await;
    answer.expect(303);
    let cookie = answer
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("hotline_console="))
        .expect("a session cookie");
    let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(attributes.contains(&flag), "{flag} missing in {cookie}");
    }
    assert!(attributes.iter().any(|a| a.starts_with("Max-Age=")));
    // The session id is random and stored only as its hash.
    let id = cookie["hotline_console=".len()..]
        .split(';')
        .next()
        .unwrap();
    assert_eq!(id.len(), 64);
    let mut conn = sqlx::AnyConnection::connect(&console.database.url)
        .await
        .unwrap();
    for (value, expected) in [(hash_token(id), 1), (id.to_string(), 0)] {
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM console_sessions WHERE id_hash = $1")
                .bind(value)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(count, expected);
    }
    conn.close().await.unwrap();

    let browser = console.login(&console.agent).await;
    let board = console.get(Some(&browser), "/console/board").await;
    let html = board.expect(200);
    assert!(html.contains("li.na (agent)"), "{html}");
    let csp = board.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(board.headers["x-frame-options"], "DENY");
    assert_eq!(board.headers["cache-control"], "no-store");
    // The assets are in the binary.
    let script = console.get(None, "/console/assets/console.js").await;
    assert!(script.expect(200).contains("countdown"));
    let style = console.get(None, "/console/assets/console.css").await;
    assert!(style.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    console
}

async fn a_bad_token_or_a_forged_login_form_opens_no_session(console: Console) -> Console {
    for token in ["hl_0000", ""] {
        let answer = console.try_login(token).await;
        assert!(answer.expect(401).contains("Unknown or revoked token"));
        assert_eq!(answer.cookie("hotline_console"), None);
    }
    // A login form posted without its cookie, or with another form's
    // token, is refused before the token is even looked at.
    let form = console.get(None, "/console/login").await;
    let fields = [("token", console.agent.as_str()), ("csrf", "0000")];
    let no_cookie = request(
        console.addr(),
        "POST",
        "/console/login",
        None,
        Some(&fields),
    )
    .await;
    assert!(no_cookie.expect(403).contains("CSRF"));
    let login_cookie = form.cookie("hotline_console_login").unwrap();
    let forged = request(
        console.addr(),
        "POST",
        "/console/login",
        Some(&login_cookie),
        Some(&fields),
    )
    .await;
    assert!(forged.expect(403).contains("CSRF"));
    assert_eq!(forged.cookie("hotline_console"), None);
    // A made-up session cookie is no session.
    let fake = Browser {
        cookie: format!("hotline_console={}", "ab".repeat(32)),
        csrf: String::new(),
    };
    let page = console.get(Some(&fake), "/console/board").await;
    assert_eq!(page.location(), Some("/console/login"));
    console
}

async fn logout_and_revocation_end_the_session(console: Console) -> Console {
    let browser = console.login(&console.agent).await;
    let out = console.post(&browser, "/console/logout", &[]).await;
    out.expect(303);
    assert_eq!(out.location(), Some("/console/login"));
    let cleared = out
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("hotline_console="))
        .unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let after = console.get(Some(&browser), "/console/board").await;
    after.expect(303);

    let issued = issue_token(console.store(), "temp", StaffRole::Supervisor)
        .await
        .unwrap();
    let browser = console.login(&issued.token).await;
    console
        .store()
        .revoke_api_token(issued.record.id)
        .await
        .unwrap();
    let after = console.get(Some(&browser), "/console/board").await;
    after.expect(303);
    console
}

async fn posts_without_the_session_csrf_token_get_403_and_change_nothing(
    console: Console,
) -> Console {
    let number = console.ticket("13800138000", "专线中断").await;
    let agent = console.login(&console.agent).await;
    let other = console.login(&console.supervisor).await;
    let path = format!("/console/tickets/{number}/transition");
    let dispatch = [("action", "dispatch")];

    let missing = request(
        console.addr(),
        "POST",
        &path,
        Some(&agent.cookie),
        Some(&dispatch),
    )
    .await;
    assert!(
        missing.expect(403).contains("the form has no CSRF token"),
        "{}",
        missing.body
    );
    for wrong in ["0".repeat(64), other.csrf.clone()] {
        let fields = [("action", "dispatch"), ("csrf", wrong.as_str())];
        let answer = request(
            console.addr(),
            "POST",
            &path,
            Some(&agent.cookie),
            Some(&fields),
        )
        .await;
        assert!(answer
            .expect(403)
            .contains("does not belong to this session"));
    }
    let note = request(
        console.addr(),
        "POST",
        &format!("/console/tickets/{number}/note"),
        Some(&agent.cookie),
        Some(&[("text", "x")]),
    )
    .await;
    note.expect(403);
    let logout = request(
        console.addr(),
        "POST",
        "/console/logout",
        Some(&agent.cookie),
        Some(&[]),
    )
    .await;
    logout.expect(403);

    let ticket = console.store().ticket(&number).await.unwrap().unwrap();
    assert_eq!(ticket.version, 1, "nothing changed");
    assert_eq!(console.store().events(ticket.id).await.unwrap().len(), 1);
    // The session is still there, and its own token works.
    let answer = console.post(&agent, &path, &dispatch).await;
    answer.expect(303);
    console
}

/// The markup of the board column for `status`.
fn column<'a>(board: &'a str, status: &str) -> &'a str {
    let start = board
        .find(&format!(r#"data-status="{status}""#))
        .unwrap_or_else(|| panic!("no {status} column"));
    let rest = &board[start..];
    let end = rest.find("</section>").unwrap();
    &rest[..end]
}

async fn the_board_shows_tickets_by_status_highlights_breaches_and_filters(
    console: Console,
) -> Console {
    let fresh = console.ticket("13800138000", "新装宽带").await;
    let dispatched = console.ticket("13900139000", "专线中断").await;
    let late = console.ticket("13700137000", "虚拟网短号无法呼通").await;
    console
        .store()
        .transition(&dispatched, Action::Dispatch, Actor::staff("x"), None, None)
        .await
        .unwrap();
    // Time passes for `late`: its dispatch deadline is an hour ago.
    let an_hour_ago = (console.store().now() - chrono::Duration::hours(1)).timestamp_millis();
    let mut conn = sqlx::AnyConnection::connect(&console.database.url)
        .await
        .unwrap();
    sqlx::query("UPDATE tickets SET dispatch_due = $1 WHERE number = $2")
        .bind(an_hour_ago)
        .bind(&late)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let browser = console.login(&console.agent).await;
    let board = console.get(Some(&browser), "/console/board").await;
    let board = board.expect(200);
    let new = column(board, "new");
    assert!(new.contains(&fresh) && new.contains(&late), "{new}");
    assert!(!new.contains(&dispatched));
    assert!(column(board, "dispatched").contains(&dispatched));
    assert!(!column(board, "closed").contains("article"));
    // Only the late ticket's card is highlighted, with its overdue countdown.
    let cards: Vec<&str> = board.split("<article").skip(1).collect();
    assert_eq!(cards.len(), 3);
    for card in cards {
        let highlighted = card.starts_with(r#" class="card breached""#);
        assert_eq!(highlighted, card.contains(&late), "{card}");
        assert!(
            card.contains(r#"<time class="countdown" datetime=""#),
            "{card}"
        );
        if highlighted {
            assert!(card.contains("overdue"), "{card}");
        }
    }

    // The filters are the API's.
    let numbers = |html: &str| -> Vec<String> {
        [&fresh, &dispatched, &late]
            .into_iter()
            .filter(|n| html.contains(&format!(r#"data-number="{n}""#)))
            .cloned()
            .collect()
    };
    for phone in ["13900139000", "%2B86+139+0013+9000", "0086-139-0013-9000"] {
        let filtered = console
            .get(Some(&browser), &format!("/console/board?phone={phone}"))
            .await;
        assert_eq!(
            numbers(filtered.expect(200)),
            vec![dispatched.clone()],
            "{phone}"
        );
    }
    let filtered = console
        .get(Some(&browser), "/console/board?q=%E4%B8%93%E7%BA%BF&level=")
        .await;
    assert_eq!(numbers(filtered.expect(200)), vec![dispatched.clone()]);
    console
        .store()
        .mark_breaches(console.store().now())
        .await
        .unwrap();
    let filtered = console
        .get(Some(&browser), "/console/board?breached=true")
        .await;
    assert_eq!(numbers(filtered.expect(200)), vec![late.clone()]);
    let filtered = console
        .get(Some(&browser), "/console/board?level=group")
        .await;
    assert!(numbers(filtered.expect(200)).is_empty());
    let bad = console
        .get(Some(&browser), "/console/board?channel=fax")
        .await;
    assert!(bad.expect(400).contains("unknown channel"));
    console
}

/// Tickets in the flood of [`old_open_work_stays_on_the_board_under_a_flood_of_new_tickets`]:
/// more than a column shows (200) and more than the whole board used to
/// load (the newest 500 of any status).
const FLOOD: usize = 501;

async fn old_open_work_stays_on_the_board_under_a_flood_of_new_tickets(
    console: Console,
) -> Console {
    let old = console.ticket("13900139000", "专线中断").await;
    console
        .store()
        .transition(&old, Action::Dispatch, Actor::staff("x"), None, None)
        .await
        .unwrap();
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..FLOOD {
        let store = console.store().clone();
        flood.spawn(async move {
            let new = NewTicket::new(
                TicketType::FaultReport,
                "virtual_network",
                "13800138000",
                format!("flood {i}"),
                Channel::Staff,
                Actor::staff("zhang.wei"),
            );
            store.create_ticket(new).await.unwrap();
        });
    }
    while let Some(created) = flood.join_next().await {
        created.unwrap();
    }

    let browser = console.login(&console.agent).await;
    let board = console.get(Some(&browser), "/console/board").await;
    let board = board.expect(200);
    let dispatched = column(board, "dispatched");
    assert!(dispatched.contains(&old), "{dispatched}");
    assert!(!dispatched.contains("capped"));
    let new = column(board, "new");
    assert_eq!(new.matches("<article").count(), 200);
    assert!(new.contains("the newest 200; filter to see others"));
    console
}

async fn resolving_from_the_ticket_page_queues_the_customer_text(console: Console) -> Console {
    let number = console.ticket("13800138000", "专线中断").await;
    let browser = console.login(&console.agent).await;
    let path = format!("/console/tickets/{number}");
    for action in ["dispatch", "accept", "resolve"] {
        let page = console.get(Some(&browser), &path).await;
        let html = page.expect(200);
        let button = format!(r#"name="action" value="{action}""#);
        assert!(html.contains(&button), "no {action} button: {html}");
        let version = console
            .store()
            .ticket(&number)
            .await
            .unwrap()
            .unwrap()
            .version;
        let answer = console
            .post(
                &browser,
                &format!("{path}/transition"),
                &[
                    ("action", action),
                    ("version", &version.to_string()),
                    ("note", ""),
                ],
            )
            .await;
        answer.expect(303);
        assert_eq!(answer.location(), Some(path.as_str()));
    }
    let ticket = console.store().ticket(&number).await.unwrap().unwrap();
    assert_eq!(ticket.status.code(), "resolved");
    let queued = console.store().notifications(ticket.id).await.unwrap();
    let resolved = queued
        .iter()
        .find(|n| n.kind == "resolved")
        .expect("the resolved text is queued");
    assert_eq!(resolved.recipient, "13800138000");

    let page = console.get(Some(&browser), &path).await;
    let html = page.expect(200);
    let outbox = &html[html.find(r#"id="outbox""#).unwrap()..];
    assert!(
        outbox.contains(r#"data-kind="resolved" data-status="pending""#),
        "{outbox}"
    );
    assert!(outbox.contains(&format!(
        ">{}<",
        maud::html! { (resolved.body) }.into_string()
    )));
    assert!(html.contains("by staff:li.na"), "{html}");
    // A stale version is refused with the reason.
    let stale = console
        .post(
            &browser,
            &format!("{path}/transition"),
            &[("action", "confirm"), ("version", "1")],
        )
        .await;
    assert!(stale.expect(409).contains("changed by someone else"));
    // An action the status does not allow names the allowed ones.
    let wrong = console
        .post(
            &browser,
            &format!("{path}/transition"),
            &[("action", "dispatch")],
        )
        .await;
    assert!(wrong
        .expect(409)
        .contains("allowed actions are: confirm, reopen"));
    console
}

async fn agents_work_tickets_but_assign_only_to_themselves(console: Console) -> Console {
    let number = console.ticket("13800138000", "专线中断").await;
    let agent = console.login(&console.agent).await;
    let path = format!("/console/tickets/{number}/assign");
    let denied = console
        .post(&agent, &path, &[("assignee", "someone.else")])
        .await;
    assert!(denied.expect(403).contains("only to themselves"));
    console
        .post(&agent, &path, &[("assignee", "li.na")])
        .await
        .expect(303);
    let supervisor = console.login(&console.supervisor).await;
    console
        .post(
            &supervisor,
            &path,
            &[("assignee", "wang.fang"), ("queue", "fault_vip")],
        )
        .await
        .expect(303);
    let ticket = console.store().ticket(&number).await.unwrap().unwrap();
    assert_eq!(ticket.assignee.as_deref(), Some("wang.fang"));
    assert_eq!(ticket.queue, "fault_vip");
    console
        .post(
            &agent,
            &format!("/console/tickets/{number}/note"),
            &[("text", "客户周一上午在")],
        )
        .await
        .expect(303);
    let page = console
        .get(Some(&agent), &format!("/console/tickets/{number}"))
        .await;
    assert!(page.expect(200).contains("客户周一上午在"));
    let empty = console
        .post(
            &agent,
            &format!("/console/tickets/{number}/note"),
            &[("text", " ")],
        )
        .await;
    empty.expect(422);
    // Unknown and mistyped numbers are told apart, as in the API.
    let unknown = console
        .get(Some(&agent), "/console/tickets/0000000000")
        .await;
    unknown.expect(404);
    let last = number.as_bytes()[9] - b'0';
    let mistyped = format!("{}{}", &number[..9], (last + 1) % 10);
    let page = console
        .get(Some(&agent), &format!("/console/tickets/{mistyped}"))
        .await;
    assert!(page.expect(400).contains("check digit"), "{}", page.body);
    console
}

async fn what_customers_and_staff_wrote_is_escaped(console: Console) -> Console {
    let script = "<script>alert('x')</script> & \"quotes\"";
    let number = console.ticket("13800138000", script).await;
    let browser = console.login(&console.agent).await;
    console
        .post(
            &browser,
            &format!("/console/tickets/{number}/note"),
            &[("text", "<img src=x onerror=alert(1)>")],
        )
        .await
        .expect(303);
    let board = console
        .get(Some(&browser), "/console/board?q=%3Cscript%3E")
        .await;
    let ticket = console
        .get(Some(&browser), &format!("/console/tickets/{number}"))
        .await;
    for html in [board.expect(200), ticket.expect(200)] {
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; &quot;quotes&quot;"));
    }
    let html = &ticket.body;
    assert!(!html.contains("<img src=x"));
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    // The filter's own value goes back into the form escaped too.
    assert!(board.body.contains(r#"value="&lt;script&gt;""#));
    console
}

async fn the_dashboard_charts_the_indicators_for_supervisors_only(console: Console) -> Console {
    console.ticket("13800138000", "专线中断").await;
    console.ticket("13900139000", "虚拟网短号无法呼通").await;
    let mut sms = NewTicket::new(
        TicketType::Complaint,
        "virtual_network",
        "13700137000",
        "短信投诉",
        Channel::Sms,
        Actor::customer("13700137000"),
    );
    sms.level = None;
    console.store().create_ticket(sms).await.unwrap();

    let agent = console.login(&console.agent).await;
    let board = console.get(Some(&agent), "/console/board").await;
    assert!(!board.expect(200).contains("/console/dashboard"));
    let denied = console.get(Some(&agent), "/console/dashboard").await;
    assert!(denied.expect(403).contains("supervisor role"));

    let supervisor = console.login(&console.supervisor).await;
    let page = console.get(Some(&supervisor), "/console/dashboard").await;
    let html = page.expect(200);
    for chart in [
        "calls-per-hour",
        "containment",
        "tickets-by-channel",
        "tickets-by-category",
        "sla-compliance",
    ] {
        let start = html
            .find(&format!(r#"id="{chart}""#))
            .unwrap_or_else(|| panic!("no {chart} chart"));
        assert!(html[start..].contains("<svg"), "{chart}");
    }
    // Three tickets: two by staff, one by SMS, all of one category.
    let section = |id: &str| {
        let start = html.find(&format!(r#"id="{id}""#)).unwrap();
        let rest = &html[start..];
        rest[..rest.find("</section>").unwrap()].to_string()
    };
    let channels = section("tickets-by-channel");
    assert!(channels.contains(r#"data-value="2""#), "{channels}");
    assert!(channels.contains(r#"data-value="1""#), "{channels}");
    assert!(section("tickets-by-category").contains(r#"data-value="3""#));
    // One column pair per hour of the last 24 hours.
    let calls = section("calls-per-hour");
    let bars = calls.matches("<rect").count();
    assert!((48..=50).contains(&bars), "{bars} bars");
    assert!(html.contains("<strong>3</strong>tickets created"), "{html}");

    let week = console
        .get(Some(&supervisor), "/console/dashboard?range=7d")
        .await;
    assert!(week.expect(200).contains("Last 7 days"));
    let bad = console
        .get(Some(&supervisor), "/console/dashboard?range=1y")
        .await;
    assert!(bad.expect(400).contains("is not one of 24h, 7d, 30d"));
    console
}

/// Reloads the live calls page until it holds `wanted` (bounded).
async fn live_page_until(console: &Console, browser: &Browser, wanted: &str) -> String {
    let mut html = String::new();
    for _ in 0..100 {
        let page = console.get(Some(browser), "/console/calls/live").await;
        html = page.expect(200).to_string();
        if html.contains(wanted) {
            return html;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the live calls page never showed {wanted:?}: {html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_calls_page_shows_the_node_each_caller_is_in() {
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(plans.path().join("live.toml"), support::dialplan::LIVE_PLAN).unwrap();
    let console = console(Backend::Sqlite, |config| {
        config.prompts.dir =
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts"));
        config.ivr.dialplans_dir = plans.path().to_path_buf();
    })
    .await
    .expect("SQLite always runs");
    let browser = console.login(&console.agent).await;
    let empty = live_page_until(&console, &browser, "Calls in the IVR now: 0 ").await;
    assert!(empty.contains(r#"<meta http-equiv="refresh" content="3">"#));

    let mut client = support::Client::udp(console.server.udp_addrs[0]).await;
    let offer = client.g711_offer();
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    client.ack(&mut dialog).await;
    let html = live_page_until(&console, &browser, r#"<td class="node">main</td>"#).await;
    assert!(html.contains("Calls in the IVR now: 1 ") && html.contains("13800138000"));
    assert!(html.contains(dialog.call_id.as_str()));

    let audio = hotline::sip::sdp::parse_body(&response.body)
        .unwrap()
        .audio
        .unwrap();
    let gateway = SocketAddr::new(audio.connection.unwrap(), audio.port);
    let (mut sequence, mut timestamp) = (100u16, 8_000u32);
    client
        .send_keys(gateway, "9", &mut sequence, &mut timestamp)
        .await;
    live_page_until(&console, &browser, r#"<td class="node">service</td>"#).await;
    assert_eq!(client.bye(&mut dialog).await, 200);
    live_page_until(&console, &browser, "Calls in the IVR now: 0 ").await;

    // Outbound calls are listed with their ticket.
    assert!(empty.contains("None queued."));
    let number = console.ticket("13900139000", "no dial tone").await;
    let ticket = console.store().ticket(&number).await.unwrap().unwrap();
    console
        .store()
        .queue_outbound_call(hotline::tickets::store::NewOutboundCall {
            dedup_key: "confirm:console".into(),
            purpose: hotline::outbound::schedule::Purpose::Confirm,
            ticket_id: Some(ticket.id),
            number: "13900139000".into(),
            earliest_at: console.store().now(),
        })
        .await
        .unwrap();
    let html = live_page_until(&console, &browser, "13900139000").await;
    assert!(html.contains(&format!(r#"<a href="/console/tickets/{number}">"#)));
    assert!(html.contains("<td>queued</td>"), "{html}");
    console.finish().await;
}
