//! `/readyz` against a running gateway: ready while it runs; not ready
//! (503, "draining") once a stop has begun while a call is still up, and
//! still serving HTTP until that call ends; and, on PostgreSQL (with
//! `DATABASE_URL`), not ready once the gateway's database is dropped under
//! it (`DROP DATABASE … WITH (FORCE)`, which also ends its connections),
//! while `/healthz` stays 200.

mod support;

use serde_json::Value;
use sqlx::{Connection, Executor};
use std::time::Duration;
use support::{http_get, start, test_config, Client};

async fn readyz(addr: std::net::SocketAddr) -> (u16, Value) {
    let (status, _, body) = http_get(addr, "/readyz", None).await;
    (status, serde_json::from_str(&body).expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_is_not_ready_while_calls_finish() {
    let mut config = test_config();
    config.shutdown.drain_timeout_secs = 30;
    let server = start(config).await;
    let http = server.http_addr;
    let (status, body) = readyz(http).await;
    assert_eq!(
        (status, &body["ready"]),
        (200, &Value::Bool(true)),
        "{body}"
    );

    let mut client = Client::udp(server.udp_addrs[0]).await;
    let offer = client.g711_offer();
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200));
    client.ack(&mut dialog).await;

    server.stopper().send(true).unwrap();
    let mut answer = (0, Value::Null);
    for _ in 0..50 {
        answer = readyz(http).await;
        if answer.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = answer;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert!(body["problems"].to_string().contains("draining"), "{body}");
    // New calls are refused while the call in progress goes on.
    let mut late = Client::udp(server.udp_addrs[0]).await;
    let offer = late.g711_offer();
    let (refused, _) = late.invite("10000", Some(offer)).await;
    assert_eq!(refused.status(), Some(503));
    let (status, _, _) = http_get(http, "/healthz", None).await;
    assert_eq!(status, 200, "the process still serves HTTP while draining");

    assert_eq!(client.bye(&mut dialog).await, 200);
    tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .expect("the gateway stops once its last call has ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_database_is_not_ready() {
    let Ok(base) = std::env::var("DATABASE_URL") else {
        eprintln!("DATABASE_URL is not set: skipping the PostgreSQL run");
        return;
    };
    let name = format!("hotline_readyz_{}", std::process::id());
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(&base).await.expect("connect");
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let (prefix, _) = base
        .rsplit_once('/')
        .expect("a database name in DATABASE_URL");
    let mut config = test_config();
    config.database.url = format!("{prefix}/{name}");
    let server = start(config).await;
    let http = server.http_addr;
    let (status, body) = readyz(http).await;
    assert_eq!(status, 200, "{body}");

    admin
        .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
    let (status, body) = readyz(http).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["problems"].to_string().contains("database"), "{body}");
    let (status, _, _) = http_get(http, "/healthz", None).await;
    assert_eq!(status, 200);
    server.shutdown().await;
}
