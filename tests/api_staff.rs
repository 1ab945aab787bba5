//! The staff REST API against a running gateway over real HTTP: every
//! route's happy path, 401 without, with a bad and with a revoked token,
//! 403 at each role boundary, the 400/404/409/422 error shapes, a caller
//! seen live in the IVR, and the OpenAPI document. Every scenario runs on
//! SQLite and, when `DATABASE_URL` is set, on PostgreSQL (each in its own
//! schema).

#[macro_use]
mod support;

use bytes::Bytes;
use hotline::api::issue_token;
use hotline::server::Server;
use hotline::tickets::model::{CustomerLevel, StaffRole};
use hotline::tickets::number::TicketNumber;
use hotline::tickets::store::{CallDirection, CallRecord, NewTransferContext, Store};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sqlx::Connection;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use support::database::{Backend, ScratchDatabase};

/// A running gateway with one token per role.
struct Api {
    server: Server,
    database: ScratchDatabase,
    agent: String,
    supervisor: String,
    admin: String,
}

async fn api(db: Backend, tweak: impl FnOnce(&mut hotline::config::Config)) -> Option<Api> {
    let database = ScratchDatabase::create(db, "api").await?;
    let mut config = support::test_config();
    config.database.url = database.url.clone();
    tweak(&mut config);
    let server = support::start(config).await;
    let token = |name: &'static str, role| {
        let store = server.store().clone();
        async move { issue_token(&store, name, role).await.unwrap().token }
    };
    let agent = token("li.na", StaffRole::Agent).await;
    let supervisor = token("zhang.wei", StaffRole::Supervisor).await;
    let admin = token("wang.fang", StaffRole::Admin).await;
    Some(Api {
        server,
        database,
        agent,
        supervisor,
        admin,
    })
}

impl Api {
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

    async fn get(&self, token: &str, path: &str) -> Reply {
        send(self.addr(), "GET", path, Some(token), None).await
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> Reply {
        send(self.addr(), "POST", path, Some(token), Some(body)).await
    }

    async fn put(&self, token: &str, path: &str, body: Value) -> Reply {
        send(self.addr(), "PUT", path, Some(token), Some(body)).await
    }

    async fn delete(&self, token: &str, path: &str) -> Reply {
        send(self.addr(), "DELETE", path, Some(token), None).await
    }

    /// A fault ticket opened by the supervisor; its number.
    async fn new_ticket(&self, phone: &str) -> String {
        let reply = self
            .post(
                &self.supervisor,
                "/api/v1/tickets",
                json!({
                    "type": "fault_report",
                    "category": "virtual_network",
                    "contact_phone": phone,
                    "description": "虚拟网短号无法呼通",
                    "service_number": "VN-0001",
                }),
            )
            .await;
        reply.expect(201);
        reply.body["number"].as_str().unwrap().to_string()
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: Value,
}

impl Reply {
    #[track_caller]
    fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{:#}", self.body);
        &self.body
    }

    /// Checks the one error shape, with its status and code.
    #[track_caller]
    fn expect_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status, status, "{:#}", self.body);
        let error = &self.body["error"];
        assert_eq!(error["code"], code, "{:#}", self.body);
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{:#}",
            self.body
        );
        error
    }
}

/// One HTTP/1.1 request over a fresh connection; the body as JSON (null
/// when empty).
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let headers: Vec<(&str, String)> = token
        .map(|t| ("authorization", format!("Bearer {t}")))
        .into_iter()
        .chain(
            body.is_some()
                .then(|| ("content-type", "application/json".to_string())),
        )
        .collect();
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    raw(addr, method, path, &headers, bytes).await
}

async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
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
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// `number` with its check digit broken.
fn mistyped(number: &str) -> String {
    let last = number.as_bytes()[9] - b'0';
    format!("{}{}", &number[..9], (last + 1) % 10)
}

async fn run<F, Fut>(db: Backend, scenario: F)
where
    F: FnOnce(Api) -> Fut,
    Fut: Future<Output = Api>,
{
    let Some(api) = api(db, |_| {}).await else {
        return;
    };
    scenario(api).await.finish().await;
}

on_both!(
    a_supervisor_opens_a_ticket_that_lists_and_shows_with_its_history,
    the_list_filters_by_every_field,
    transitions_walk_the_lifecycle_and_refuse_stale_versions_and_wrong_actions,
    agents_assign_to_themselves_and_supervisors_to_anyone,
    notes_are_added_to_the_history,
    mistyped_malformed_and_unknown_numbers_are_told_apart,
    requests_without_a_valid_token_get_401,
    each_role_boundary_gets_403,
    customers_are_created_read_replaced_and_deleted,
    call_records_show_their_menu_paths_and_tickets,
    a_transfer_context_token_resolves_until_it_expires,
    bad_bodies_and_queries_get_the_error_shape,
    the_openapi_document_is_served_without_a_token_and_lists_every_route,
);

async fn a_supervisor_opens_a_ticket_that_lists_and_shows_with_its_history(api: Api) -> Api {
    let reply = api
        .post(
            &api.supervisor,
            "/api/v1/tickets",
            json!({
                "type": "fault_report",
                "category": "virtual_network",
                "contact_phone": "138-0013-8000",
                "description": "专线中断",
            }),
        )
        .await;
    let ticket = reply.expect(201);
    let number = ticket["number"].as_str().unwrap().to_string();
    assert!(number.parse::<TicketNumber>().is_ok());
    assert_eq!(ticket["status"], "new");
    assert_eq!(ticket["version"], 1);
    assert_eq!(ticket["channel"], "staff");
    assert_eq!(ticket["contact_phone"], "13800138000");
    assert_eq!(ticket["allowed_actions"], json!(["dispatch", "cancel"]));
    assert!(ticket["due"]["dispatch"].is_string());

    let list = api.get(&api.agent, "/api/v1/tickets").await;
    let list = list.expect(200).as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["number"], number.as_str());

    let detail = api
        .get(&api.agent, &format!("/api/v1/tickets/{number}"))
        .await;
    let detail = detail.expect(200);
    assert_eq!(detail["ticket"]["number"], number.as_str());
    let events = detail["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "created");
    assert_eq!(events[0]["actor_kind"], "staff");
    assert_eq!(events[0]["actor_id"], "zhang.wei");
    // A mobile contact is told its number by text: the outbox row shows.
    let notifications = detail["notifications"].as_array().unwrap();
    assert_eq!(notifications.len(), 1, "{detail:#}");
    assert_eq!(notifications[0]["kind"], "ticket_created");
    assert_eq!(notifications[0]["recipient"], "13800138000");
    assert_eq!(detail["calls"], json!([]));
    assert_eq!(detail["texts"], json!([]));
    api
}

async fn the_list_filters_by_every_field(api: Api) -> Api {
    let fault = api.new_ticket("13800138000").await;
    let complaint = api
        .post(
            &api.supervisor,
            "/api/v1/tickets",
            json!({
                "type": "complaint",
                "category": "virtual_network",
                "contact_phone": "13900139000",
                "description": "客服态度 100% 不好",
                "level": "group",
                "channel": "api",
            }),
        )
        .await;
    let complaint = complaint.expect(201)["number"]
        .as_str()
        .unwrap()
        .to_string();
    api.post(
        &api.agent,
        &format!("/api/v1/tickets/{fault}/transitions"),
        json!({"action": "dispatch"}),
    )
    .await
    .expect(200);
    let numbers = |reply: Reply| -> Vec<String> {
        reply
            .expect(200)
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["number"].as_str().unwrap().to_string())
            .collect()
    };
    let cases = [
        ("status=dispatched", vec![fault.clone()]),
        ("status=new", vec![complaint.clone()]),
        ("level=group", vec![complaint.clone()]),
        ("level=local_c", vec![fault.clone()]),
        (
            "category=virtual_network&channel=api",
            vec![complaint.clone()],
        ),
        ("channel=staff", vec![fault.clone()]),
        ("phone=13800138000", vec![fault.clone()]),
        // Any spelling of the number is the same search.
        ("phone=%2B86%20138-0013-8000", vec![fault.clone()]),
        ("phone=8613800138000", vec![fault.clone()]),
        ("phone=008613800138000", vec![fault.clone()]),
        ("phone=sipp", vec![]),
        ("q=100%25", vec![complaint.clone()]),
        ("q=%E4%B8%93%E7%BA%BF", vec![]),
        ("breached=true", vec![]),
        ("breached=false&limit=1", vec![complaint.clone()]),
    ];
    for (query, expected) in cases {
        let found = numbers(
            api.get(&api.agent, &format!("/api/v1/tickets?{query}"))
                .await,
        );
        assert_eq!(found, expected, "{query}");
    }
    api
}

async fn transitions_walk_the_lifecycle_and_refuse_stale_versions_and_wrong_actions(
    api: Api,
) -> Api {
    let number = api.new_ticket("13800138000").await;
    let path = format!("/api/v1/tickets/{number}/transitions");
    let reply = api
        .post(
            &api.agent,
            &path,
            json!({"action": "dispatch", "version": 1, "note": "派单"}),
        )
        .await;
    let ticket = reply.expect(200);
    assert_eq!(ticket["status"], "dispatched");
    assert_eq!(ticket["version"], 2);

    let stale = api
        .post(&api.agent, &path, json!({"action": "accept", "version": 1}))
        .await;
    let error = stale.expect_error(409, "conflict");
    assert_eq!(error["current_version"], 2);

    let wrong = api
        .post(&api.agent, &path, json!({"action": "resolve"}))
        .await;
    let error = wrong.expect_error(409, "invalid_transition");
    assert_eq!(error["allowed_actions"], json!(["accept", "cancel"]));

    let unknown = api.post(&api.agent, &path, json!({"action": "fly"})).await;
    assert_eq!(
        unknown.expect_error(422, "invalid_field")["field"],
        "action"
    );

    for action in ["accept", "start", "resolve", "confirm", "close"] {
        api.post(&api.agent, &path, json!({"action": action}))
            .await
            .expect(200);
    }
    let detail = api
        .get(&api.agent, &format!("/api/v1/tickets/{number}"))
        .await;
    let detail = detail.expect(200);
    assert_eq!(detail["ticket"]["status"], "closed");
    assert_eq!(detail["ticket"]["allowed_actions"], json!([]));
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "transition").count(), 6);
    api
}

async fn agents_assign_to_themselves_and_supervisors_to_anyone(api: Api) -> Api {
    let number = api.new_ticket("13800138000").await;
    let path = format!("/api/v1/tickets/{number}/assign");
    let mine = api
        .post(&api.agent, &path, json!({"assignee": "li.na"}))
        .await;
    assert_eq!(mine.expect(200)["assignee"], "li.na");

    api.post(&api.agent, &path, json!({"assignee": "chen.jie"}))
        .await
        .expect_error(403, "forbidden");
    api.post(
        &api.agent,
        &path,
        json!({"assignee": "li.na", "queue": "vip"}),
    )
    .await
    .expect_error(403, "forbidden");

    let theirs = api
        .post(
            &api.supervisor,
            &path,
            json!({"assignee": "chen.jie", "queue": "fault_vip", "version": 2}),
        )
        .await;
    let ticket = theirs.expect(200);
    assert_eq!(ticket["assignee"], "chen.jie");
    assert_eq!(ticket["queue"], "fault_vip");
    assert_eq!(ticket["version"], 3);

    api.post(
        &api.supervisor,
        &path,
        json!({"assignee": "x", "version": 1}),
    )
    .await
    .expect_error(409, "conflict");
    let empty = api.post(&api.supervisor, &path, json!({})).await;
    assert_eq!(
        empty.expect_error(422, "invalid_field")["field"],
        "assignee"
    );
    api
}

async fn notes_are_added_to_the_history(api: Api) -> Api {
    let number = api.new_ticket("13800138000").await;
    let path = format!("/api/v1/tickets/{number}/notes");
    let note = api
        .post(&api.agent, &path, json!({"text": "客户说周一上午在"}))
        .await;
    let event = note.expect(201);
    assert_eq!(event["kind"], "note");
    assert_eq!(event["actor_id"], "li.na");
    assert_eq!(event["detail"], "客户说周一上午在");
    api.post(&api.agent, &path, json!({"text": "   "}))
        .await
        .expect_error(422, "invalid_field");
    let detail = api
        .get(&api.agent, &format!("/api/v1/tickets/{number}"))
        .await;
    assert_eq!(detail.expect(200)["events"].as_array().unwrap().len(), 2);
    api
}

async fn mistyped_malformed_and_unknown_numbers_are_told_apart(api: Api) -> Api {
    let number = api.new_ticket("13800138000").await;
    let unknown = loop {
        let candidate = TicketNumber::generate(&mut rand::rng()).to_string();
        if candidate != number {
            break candidate;
        }
    };
    for path in [
        format!("/api/v1/tickets/{}", mistyped(&number)),
        format!("/api/v1/tickets/{}/notes", mistyped(&number)),
    ] {
        let reply = if path.ends_with("notes") {
            api.post(&api.agent, &path, json!({"text": "x"})).await
        } else {
            api.get(&api.agent, &path).await
        };
        reply.expect_error(400, "mistyped_ticket_number");
    }
    api.get(&api.agent, "/api/v1/tickets/12ab")
        .await
        .expect_error(400, "invalid_ticket_number");
    api.get(&api.agent, &format!("/api/v1/tickets/{unknown}"))
        .await
        .expect_error(404, "ticket_not_found");
    api.post(
        &api.agent,
        &format!("/api/v1/tickets/{unknown}/transitions"),
        json!({"action": "dispatch"}),
    )
    .await
    .expect_error(404, "ticket_not_found");
    api.post(
        &api.supervisor,
        &format!("/api/v1/tickets/{unknown}/assign"),
        json!({"queue": "x"}),
    )
    .await
    .expect_error(404, "ticket_not_found");
    api
}

async fn requests_without_a_valid_token_get_401(api: Api) -> Api {
    let none = send(api.addr(), "GET", "/api/v1/tickets", None, None).await;
    none.expect_error(401, "unauthorized");
    assert_eq!(
        none.headers.get("www-authenticate").map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    api.get("hl_0000", "/api/v1/customers")
        .await
        .expect_error(401, "unauthorized");
    raw(
        api.addr(),
        "GET",
        "/api/v1/calls",
        &[("authorization", format!("Basic {}", api.agent))],
        Vec::new(),
    )
    .await
    .expect_error(401, "unauthorized");
    // 401 comes before anything else is looked at.
    send(
        api.addr(),
        "POST",
        "/api/v1/tickets",
        None,
        Some(json!({"nonsense": true})),
    )
    .await
    .expect_error(401, "unauthorized");

    let issued = issue_token(api.store(), "temp", StaffRole::Admin)
        .await
        .unwrap();
    api.get(&issued.token, "/api/v1/calls/live")
        .await
        .expect(200);
    api.store()
        .revoke_api_token(issued.record.id)
        .await
        .unwrap()
        .expect("revoked");
    api.get(&issued.token, "/api/v1/calls/live")
        .await
        .expect_error(401, "unauthorized");
    api
}

async fn each_role_boundary_gets_403(api: Api) -> Api {
    let number = api.new_ticket("13800138000").await;
    let customer = json!({"name": "Acme", "level": "local_a", "phones": ["13700137000"]});
    // Opening tickets and editing customers: supervisor and above.
    let new_ticket = json!({
        "type": "complaint",
        "category": "virtual_network",
        "contact_phone": "13800138000",
        "description": "x",
    });
    api.post(&api.agent, "/api/v1/tickets", new_ticket)
        .await
        .expect_error(403, "forbidden");
    api.post(&api.agent, "/api/v1/customers", customer.clone())
        .await
        .expect_error(403, "forbidden");
    let created = api
        .post(&api.supervisor, "/api/v1/customers", customer.clone())
        .await;
    let id = created.expect(201)["id"].as_i64().unwrap();
    let path = format!("/api/v1/customers/{id}");
    api.put(&api.agent, &path, customer.clone())
        .await
        .expect_error(403, "forbidden");
    // Assigning to someone else: supervisor and above.
    api.post(
        &api.agent,
        &format!("/api/v1/tickets/{number}/assign"),
        json!({"assignee": "someone.else"}),
    )
    .await
    .expect_error(403, "forbidden");
    // Deleting customers: admins only.
    api.delete(&api.agent, &path)
        .await
        .expect_error(403, "forbidden");
    api.delete(&api.supervisor, &path)
        .await
        .expect_error(403, "forbidden");
    let deleted = api.delete(&api.admin, &path).await;
    deleted.expect(204);
    api
}

async fn customers_are_created_read_replaced_and_deleted(api: Api) -> Api {
    let created = api
        .post(
            &api.supervisor,
            "/api/v1/customers",
            json!({
                "name": "某某集团",
                "level": "group",
                "language": "zh",
                "phones": ["010-8888 0000", "13900139000"],
                "products": [{"category": "virtual_network", "service_number": "VN-0001"}],
            }),
        )
        .await;
    let customer = created.expect(201).clone();
    let id = customer["id"].as_i64().unwrap();
    assert_eq!(customer["phones"], json!(["01088880000", "13900139000"]));
    let path = format!("/api/v1/customers/{id}");

    let shown = api.get(&api.agent, &path).await;
    assert_eq!(shown.expect(200)["name"], "某某集团");
    let listed = api
        .get(&api.agent, "/api/v1/customers?name=%E6%9F%90%E6%9F%90")
        .await;
    assert_eq!(listed.expect(200).as_array().unwrap().len(), 1);
    let none = api.get(&api.agent, "/api/v1/customers?name=Acme").await;
    assert_eq!(none.expect(200), &json!([]));

    // A ticket for one of the customer's phones takes their level.
    let number = api.new_ticket("13900139000").await;
    let ticket = api
        .get(&api.agent, &format!("/api/v1/tickets/{number}"))
        .await;
    assert_eq!(ticket.expect(200)["ticket"]["level"], "group");

    let replaced = api
        .put(
            &api.supervisor,
            &path,
            json!({"name": "某某集团有限公司", "level": "provincial", "language": "en", "phones": ["13900139000"]}),
        )
        .await;
    let replaced = replaced.expect(200);
    assert_eq!(replaced["level"], "provincial");
    assert_eq!(replaced["language"], "en");
    assert_eq!(replaced["phones"], json!(["13900139000"]));
    assert_eq!(replaced["products"], json!([]));

    // Another customer cannot take a phone that is on file.
    let taken = api
        .post(
            &api.supervisor,
            "/api/v1/customers",
            json!({"name": "Other", "level": "local_c", "phones": ["13900139000"]}),
        )
        .await;
    assert_eq!(taken.expect_error(422, "invalid_field")["field"], "phones");
    let bad_level = api
        .post(
            &api.supervisor,
            "/api/v1/customers",
            json!({"name": "Other", "level": "vip", "phones": ["13600136000"]}),
        )
        .await;
    assert_eq!(
        bad_level.expect_error(422, "invalid_field")["field"],
        "level"
    );
    let no_name = api
        .post(
            &api.supervisor,
            "/api/v1/customers",
            json!({"level": "local_c", "phones": ["13600136000"]}),
        )
        .await;
    assert_eq!(no_name.expect_error(422, "invalid_field")["field"], "name");

    api.get(&api.agent, "/api/v1/customers/abc")
        .await
        .expect_error(400, "invalid_customer_id");
    api.get(&api.agent, "/api/v1/customers/999999")
        .await
        .expect_error(404, "customer_not_found");
    api.put(
        &api.supervisor,
        "/api/v1/customers/999999",
        json!({"name": "x", "level": "local_c", "phones": ["13600136000"]}),
    )
    .await
    .expect_error(404, "customer_not_found");
    // The customer has a ticket now: kept.
    api.delete(&api.admin, &path)
        .await
        .expect_error(409, "customer_has_tickets");
    api.get(&api.agent, &path).await.expect(200);

    let spare = api
        .post(
            &api.supervisor,
            "/api/v1/customers",
            json!({"name": "Spare", "level": "local_b", "phones": ["13600136000"]}),
        )
        .await;
    let spare = spare.expect(201)["id"].as_i64().unwrap();
    api.delete(&api.admin, &format!("/api/v1/customers/{spare}"))
        .await
        .expect(204);
    api.get(&api.agent, &format!("/api/v1/customers/{spare}"))
        .await
        .expect_error(404, "customer_not_found");
    api.delete(&api.admin, &format!("/api/v1/customers/{spare}"))
        .await
        .expect_error(404, "customer_not_found");
    // Its phone is free again.
    api.post(
        &api.supervisor,
        "/api/v1/customers",
        json!({"name": "Spare again", "level": "local_b", "phones": ["13600136000"]}),
    )
    .await
    .expect(201);
    api
}

async fn call_records_show_their_menu_paths_and_tickets(api: Api) -> Api {
    let number = api.new_ticket("13800138000").await;
    let at = api.store().now();
    api.store()
        .record_call(CallRecord {
            sip_call_id: "call-1@test".into(),
            direction: CallDirection::Inbound,
            caller: "13800138000".into(),
            dialled: "10000".into(),
            offered_at: at,
            answered_at: Some(at),
            ended_at: at + chrono::Duration::seconds(40),
            disposition: "ivr".into(),
            reason: None,
            transfers: vec![hotline::tickets::store::CallTransfer {
                at,
                target: "agents".into(),
                mode: "refer".into(),
                outcome: "failed".into(),
            }],
            menu_path: vec![
                (at, "main".into(), "entered".into()),
                (at, "main".into(), "key 9".into()),
                (at, "service".into(), "entered".into()),
            ],
            tickets: vec![number.clone()],
        })
        .await
        .unwrap();
    let calls = api.get(&api.agent, "/api/v1/calls?limit=10").await;
    let calls = calls.expect(200).as_array().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["sip_call_id"], "call-1@test");
    assert_eq!(calls[0]["disposition"], "ivr");
    assert_eq!(calls[0]["tickets"], json!([number.as_str()]));
    let path = calls[0]["menu_path"].as_array().unwrap();
    assert_eq!(path.len(), 3);
    assert_eq!(path[1]["node"], "main");
    assert_eq!(path[1]["event"], "key 9");
    assert_eq!(calls[0]["reason"], Value::Null);
    let transfer = &calls[0]["transfers"][0];
    assert_eq!(
        (&transfer["target"], &transfer["mode"], &transfer["outcome"]),
        (&json!("agents"), &json!("refer"), &json!("failed"))
    );
    assert!(transfer["at"].is_string());

    let detail = api
        .get(&api.agent, &format!("/api/v1/tickets/{number}"))
        .await;
    let detail = detail.expect(200);
    assert_eq!(detail["calls"][0]["sip_call_id"], "call-1@test");
    assert_eq!(detail["calls"][0]["menu_path"][2]["node"], "service");

    // A text about the ticket shows in its history.
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&api.database.url)
        .await
        .unwrap();
    let ticket_id: i64 = sqlx::query_scalar("SELECT id FROM tickets WHERE number = $1")
        .bind(&number)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO sms_messages (direction, provider, provider_message_id, from_number, \
         to_number, body, ticket_id, reply_to, status, created_at) \
         VALUES ('in', 'generic', 'm-1', '13800138000', '10000', $1, $2, NULL, 'received', $3)",
    )
    .bind(format!("CX {number}"))
    .bind(ticket_id)
    .bind(at.timestamp_millis())
    .execute(&mut conn)
    .await
    .unwrap();
    let detail = api
        .get(&api.agent, &format!("/api/v1/tickets/{number}"))
        .await;
    let texts = detail.expect(200)["texts"].as_array().unwrap().clone();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0]["direction"], "in");
    assert_eq!(texts[0]["body"], format!("CX {number}"));

    let live = api.get(&api.agent, "/api/v1/calls/live").await;
    assert_eq!(live.expect(200), &json!([]));
    api.get(&api.agent, "/api/v1/calls?limit=0")
        .await
        .expect_error(422, "invalid_field");
    api
}

async fn a_transfer_context_token_resolves_until_it_expires(api: Api) -> Api {
    let new = |ttl: Duration| NewTransferContext {
        sip_call_id: "call-7@gateway".into(),
        caller: "13800138000".into(),
        level: CustomerLevel::LocalA,
        ticket_number: Some("2611230001".into()),
        target: "agents_priority".into(),
        ttl,
    };
    let live = api
        .store()
        .create_transfer_context(new(Duration::from_secs(600)))
        .await
        .unwrap();
    let path = format!("/api/v1/transfer-contexts/{}", live.token);
    let context = api.get(&api.agent, &path).await;
    let context = context.expect(200);
    assert_eq!(context["token"], live.token.as_str());
    assert_eq!(context["sip_call_id"], "call-7@gateway");
    assert_eq!(context["caller"], "13800138000");
    assert_eq!(context["level"], "local_a");
    assert_eq!(context["ticket_number"], "2611230001");
    assert_eq!(context["target"], "agents_priority");
    assert!(context["expires_at"].is_string());
    send(api.addr(), "GET", &path, None, None)
        .await
        .expect_error(401, "unauthorized");

    // A lifetime of zero has expired as soon as it is stored.
    let expired = api
        .store()
        .create_transfer_context(new(Duration::ZERO))
        .await
        .unwrap();
    for token in [expired.token.as_str(), "0123456789abcdef01234567", "x%20y"] {
        api.get(&api.agent, &format!("/api/v1/transfer-contexts/{token}"))
            .await
            .expect_error(404, "transfer_context_not_found");
    }
    api
}

async fn bad_bodies_and_queries_get_the_error_shape(api: Api) -> Api {
    let auth = ("authorization", format!("Bearer {}", api.supervisor));
    let json_type = ("content-type", "application/json".to_string());
    raw(
        api.addr(),
        "POST",
        "/api/v1/tickets",
        &[auth.clone(), json_type.clone()],
        b"{not json".to_vec(),
    )
    .await
    .expect_error(400, "invalid_json");
    raw(
        api.addr(),
        "POST",
        "/api/v1/tickets",
        std::slice::from_ref(&auth),
        b"{}".to_vec(),
    )
    .await
    .expect_error(415, "unsupported_media_type");
    let missing = api
        .post(
            &api.supervisor,
            "/api/v1/tickets",
            json!({"type": "complaint"}),
        )
        .await;
    assert_eq!(
        missing.expect_error(422, "invalid_field")["field"],
        "category"
    );
    let wrong_type = api
        .post(
            &api.supervisor,
            "/api/v1/tickets/0000000000/transitions",
            json!({"action": "dispatch", "version": "two"}),
        )
        .await;
    assert_eq!(
        wrong_type.expect_error(422, "invalid_field")["field"],
        "version"
    );
    let unknown_category = api
        .post(
            &api.supervisor,
            "/api/v1/tickets",
            json!({
                "type": "complaint",
                "category": "teleportation",
                "contact_phone": "13800138000",
                "description": "x",
            }),
        )
        .await;
    assert_eq!(
        unknown_category.expect_error(422, "invalid_field")["field"],
        "category"
    );
    let bad_phone = api
        .post(
            &api.supervisor,
            "/api/v1/tickets",
            json!({
                "type": "nonsense",
                "category": "virtual_network",
                "contact_phone": "13800138000",
                "description": "x",
            }),
        )
        .await;
    assert_eq!(
        bad_phone.expect_error(422, "invalid_field")["field"],
        "type"
    );
    let extension = api
        .post(
            &api.supervisor,
            "/api/v1/tickets",
            json!({
                "type": "complaint",
                "category": "virtual_network",
                "contact_phone": "8001",
                "description": "x",
            }),
        )
        .await;
    assert_eq!(
        extension.expect_error(422, "invalid_field")["field"],
        "contact phone",
        "an extension is no callback number"
    );
    let without = api
        .post(
            &api.supervisor,
            "/api/v1/tickets",
            json!({
                "type": "complaint",
                "category": "virtual_network",
                "description": "walk-in, no number given",
            }),
        )
        .await;
    assert_eq!(
        without.expect(201)["contact_phone"],
        Value::Null,
        "a ticket without a contact number"
    );
    for (query, field) in [
        ("status=lost", "status"),
        ("level=vip", "level"),
        ("channel=fax", "channel"),
        ("breached=maybe", "breached"),
        ("limit=0", "limit"),
        ("limit=many", "limit"),
    ] {
        let reply = api
            .get(&api.agent, &format!("/api/v1/tickets?{query}"))
            .await;
        assert_eq!(
            reply.expect_error(422, "invalid_field")["field"],
            field,
            "{query}"
        );
    }
    api.get(&api.agent, "/api/v1/nowhere")
        .await
        .expect_error(404, "not_found");
    api.delete(&api.admin, "/api/v1/tickets")
        .await
        .expect_error(405, "method_not_allowed");
    api
}

async fn the_openapi_document_is_served_without_a_token_and_lists_every_route(api: Api) -> Api {
    let reply = send(api.addr(), "GET", "/api/v1/openapi.json", None, None).await;
    let doc = reply.expect(200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')));
    let routes = [
        ("/api/v1/tickets", "get"),
        ("/api/v1/tickets", "post"),
        ("/api/v1/tickets/{number}", "get"),
        ("/api/v1/tickets/{number}/transitions", "post"),
        ("/api/v1/tickets/{number}/assign", "post"),
        ("/api/v1/tickets/{number}/notes", "post"),
        ("/api/v1/tickets/{number}/recordings", "get"),
        ("/api/v1/recordings/{token}", "get"),
        ("/api/v1/calls", "get"),
        ("/api/v1/calls/live", "get"),
        ("/api/v1/instances", "get"),
        ("/api/v1/outbound-calls", "get"),
        ("/api/v1/outbound-calls", "post"),
        ("/api/v1/outbound-calls/{id}", "get"),
        ("/api/v1/transfer-contexts/{token}", "get"),
        ("/api/v1/customers", "get"),
        ("/api/v1/customers", "post"),
        ("/api/v1/customers/{id}", "get"),
        ("/api/v1/customers/{id}", "put"),
        ("/api/v1/customers/{id}", "delete"),
        ("/api/v1/reports/indicators", "get"),
        ("/api/v1/admin/log-level", "get"),
        ("/api/v1/admin/log-level", "put"),
        ("/api/v1/openapi.json", "get"),
    ];
    for (path, method) in routes {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        if path != "/api/v1/openapi.json" {
            assert_eq!(
                operation["security"],
                json!([{"bearer": []}]),
                "{method} {path}"
            );
            assert!(
                operation["responses"]["401"].is_object(),
                "{method} {path} documents 401"
            );
        }
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        routes.len(),
        "no route is documented twice or left over"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer"})
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    api
}

/// A directory holding the live-calls plan (`support::dialplan::LIVE_PLAN`).
fn live_plan() -> tempfile::TempDir {
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(plans.path().join("live.toml"), support::dialplan::LIVE_PLAN).unwrap();
    plans
}

/// Points `config` at the shipped prompts and the plans in `plans`.
fn use_plans(config: &mut hotline::config::Config, plans: &tempfile::TempDir) {
    config.prompts.dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts"));
    config.ivr.dialplans_dir = plans.path().to_path_buf();
}

/// A call to 10000 on the gateway at `sip`, answered and acknowledged.
async fn call_10000(
    sip: SocketAddr,
) -> (
    support::Client,
    support::Dialog,
    hotline::sip::message::Message,
) {
    let mut client = support::Client::udp(sip).await;
    let offer = client.g711_offer();
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    client.ack(&mut dialog).await;
    (client, dialog, response)
}

/// Polls the live calls until `done` holds for them (bounded).
async fn live_calls_until(api: &Api, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut calls = Vec::new();
    for _ in 0..100 {
        let reply = api.get(&api.agent, "/api/v1/calls/live").await;
        calls = reply.expect(200).as_array().unwrap().clone();
        if done(&calls) {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("live calls never reached the expected state: {calls:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_in_the_ivr_is_listed_live_with_the_node_they_are_in() {
    let plans = live_plan();
    let api = api(Backend::Sqlite, |config| use_plans(config, &plans))
        .await
        .expect("SQLite always runs");
    let (mut client, mut dialog, response) = call_10000(api.server.udp_addrs[0]).await;

    let calls =
        live_calls_until(&api, |calls| calls.len() == 1 && calls[0]["node"] == "main").await;
    assert_eq!(calls[0]["call_id"], dialog.call_id.as_str());
    assert_eq!(calls[0]["caller"], "13800138000");
    assert_eq!(calls[0]["dialled"], "10000");

    let audio = hotline::sip::sdp::parse_body(&response.body)
        .unwrap()
        .audio
        .unwrap();
    let gateway = SocketAddr::new(audio.connection.unwrap(), audio.port);
    let (mut sequence, mut timestamp) = (100u16, 8_000u32);
    client
        .send_keys(gateway, "9", &mut sequence, &mut timestamp)
        .await;
    live_calls_until(&api, |calls| {
        calls.len() == 1 && calls[0]["node"] == "service"
    })
    .await;

    assert_eq!(client.bye(&mut dialog).await, 200);
    live_calls_until(&api, <[Value]>::is_empty).await;
    // The ended call is recorded with its path.
    let mut recorded = Vec::new();
    for _ in 0..100 {
        let reply = api.get(&api.agent, "/api/v1/calls").await;
        recorded = reply.expect(200).as_array().unwrap().clone();
        if !recorded.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(recorded.len(), 1);
    let nodes: Vec<&str> = recorded[0]["menu_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["node"].as_str().unwrap())
        .collect();
    assert!(
        nodes.contains(&"main") && nodes.contains(&"service"),
        "{nodes:?}"
    );
    api.finish().await;
}

/// Polls `path` on `api` until `done` holds for its JSON (bounded).
async fn poll_until(api: &Api, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = api.get(&api.agent, path).await.expect(200).clone();
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never reached the expected state: {last:#}");
}

/// One gateway alone: it lists itself as the one alive instance, names
/// itself and its dialplan version on /readyz, and marks its calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_lists_itself_and_marks_its_calls_with_its_name() {
    let plans = live_plan();
    let api = api(Backend::Sqlite, |config| {
        use_plans(config, &plans);
        config.instance.name = "gw-solo".into();
    })
    .await
    .expect("SQLite always runs");
    let (status, _, body) = support::http_get(api.addr(), "/readyz", None).await;
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(ready["instance"], "gw-solo");
    let version = ready["dialplan_version"].as_str().unwrap().to_string();
    assert_eq!(version.len(), 12, "{version}");
    let listed = poll_until(&api, "/api/v1/instances", |v| {
        v["instances"].as_array().is_some_and(|i| i.len() == 1)
    })
    .await;
    let me = &listed["instances"][0];
    assert_eq!(
        (&me["name"], &me["alive"], &me["this"], &me["draining"]),
        (&json!("gw-solo"), &json!(true), &json!(true), &json!(false))
    );
    assert_eq!(me["dialplan_version"], version.as_str());
    assert_eq!(listed["dialplans_agree"], true);

    let (mut client, mut dialog, _) = call_10000(api.server.udp_addrs[0]).await;
    let calls = live_calls_until(&api, |calls| calls.len() == 1).await;
    assert_eq!(calls[0]["instance"], "gw-solo");
    assert_eq!(client.bye(&mut dialog).await, 200);
    api.finish().await;
}

/// Two gateways on one PostgreSQL database (scale-out): each lists the
/// other's calls, marked with the other's name, from its heartbeat; the
/// instance list shows both and says when their dialplans differ; one that
/// stops is gone from the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_list_each_others_calls_and_dialplan_versions() {
    let plans = live_plan();
    let Some(first) = api(Backend::Postgres, |config| {
        config.instance.name = "gw-a".into();
        config.instance.heartbeat_secs = 1;
    })
    .await
    else {
        return;
    };
    let mut config = support::test_config();
    config.database.url = first.database.url.clone();
    config.instance.name = "gw-b".into();
    config.instance.heartbeat_secs = 1;
    use_plans(&mut config, &plans);
    let second = support::start(config).await;

    let listed = poll_until(&first, "/api/v1/instances", |v| {
        v["instances"].as_array().is_some_and(|i| i.len() == 2)
    })
    .await;
    let names: Vec<&str> = listed["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gw-a", "gw-b"]);
    assert_eq!(
        listed["dialplans_agree"], false,
        "gw-a has no dialplans: {listed:#}"
    );

    let (mut client, mut dialog, _) = call_10000(second.udp_addrs[0]).await;
    let calls = poll_until(&first, "/api/v1/calls/live", |calls| {
        calls
            .as_array()
            .is_some_and(|c| c.len() == 1 && c[0]["node"] == "main")
    })
    .await;
    assert_eq!(calls[0]["instance"], "gw-b");
    assert_eq!(calls[0]["call_id"], dialog.call_id.as_str());
    assert_eq!(client.bye(&mut dialog).await, 200);
    poll_until(&first, "/api/v1/calls/live", |calls| {
        calls.as_array().is_some_and(Vec::is_empty)
    })
    .await;

    second.shutdown().await;
    let reply = first.get(&first.agent, "/api/v1/instances").await;
    let listed = reply.expect(200);
    assert_eq!(
        listed["instances"].as_array().unwrap().len(),
        1,
        "{listed:#}"
    );
    assert_eq!(listed["instances"][0]["name"], "gw-a");
    first.finish().await;
}

/// A supervisor queues a confirmation call by hand; every role lists it
/// and reads it with its (so far no) attempts; agents may not queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_calls_are_queued_by_supervisors_and_listed_for_all() {
    let Some(api) = api(Backend::Sqlite, |_| {}).await else {
        return;
    };
    let number = api.new_ticket("13800138000").await;
    let request = json!({"purpose": "confirm", "ticket": number});
    api.post(&api.agent, "/api/v1/outbound-calls", request.clone())
        .await
        .expect_error(403, "forbidden");
    let reply = api
        .post(&api.supervisor, "/api/v1/outbound-calls", request)
        .await;
    let queued = reply.expect(201);
    assert_eq!(queued["purpose"], "confirm");
    assert_eq!(queued["ticket"], number.as_str());
    assert_eq!(
        queued["number"], "13800138000",
        "the ticket's contact phone"
    );
    assert_eq!(queued["state"], "queued");
    assert_eq!(queued["attempts"], 0);
    let id = queued["id"].as_i64().unwrap();

    let reply = api
        .get(&api.agent, "/api/v1/outbound-calls?state=queued")
        .await;
    let listed = reply.expect(200).as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id);
    let reply = api
        .get(&api.agent, &format!("/api/v1/outbound-calls/{id}"))
        .await;
    let detail = reply.expect(200);
    assert_eq!(detail["attempts"], json!([]));
    assert_eq!(detail["state"], "queued");

    api.get(&api.agent, "/api/v1/outbound-calls?state=ringing")
        .await
        .expect_error(422, "invalid_field");
    api.get(&api.agent, "/api/v1/outbound-calls/999999")
        .await
        .expect_error(404, "outbound_call_not_found");
    api.get(&api.agent, "/api/v1/outbound-calls/9223372036854775808")
        .await
        .expect_error(400, "invalid_outbound_call_id");
    api.post(
        &api.supervisor,
        "/api/v1/outbound-calls",
        json!({"purpose": "lottery", "ticket": number}),
    )
    .await
    .expect_error(422, "invalid_field");
    api.finish().await;
}
