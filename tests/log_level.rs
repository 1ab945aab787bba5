//! The log level of a running gateway (the real binary) changes without a
//! restart: through `PUT /api/v1/admin/log-level` (admins only; a bad
//! filter is 422) and by signal (SIGUSR2 back to the configured level,
//! SIGUSR1 to debug). Evidence is the log itself: a datagram that is not
//! SIP is logged at debug only while debug is on.

mod support;

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{http_get, http_request};

const UNPARSEABLE: &str = "invalid request source=";

fn free_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

fn hotline(db: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hotline"));
    command
        .env("HOTLINE_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env_remove("HOTLINE_TICKETS_SLA_FILE")
        .env_remove("RUST_LOG")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

fn token(db: &Path, name: &str, role: &str) -> String {
    let output = hotline(db)
        .args(["token", "create", "--name", name, "--role", role])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.split_whitespace()
        .find(|word| word.starts_with("hl_"))
        .unwrap_or_else(|| panic!("no token in {text:?}"))
        .to_string()
}

/// The gateway's log so far.
fn log_of(path: &Path) -> String {
    let mut text = String::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// Sends a datagram that is not SIP and waits until the log has `want`
/// lines about it (or gives up after 3 s, so that "no new line" can be
/// checked too).
async fn garbage_logged(sip: SocketAddr, log: &Path, want: usize) -> usize {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"this is not SIP\r\n\r\n", sip)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let seen = log_of(log).matches(UNPARSEABLE).count();
        if seen >= want || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn level(http: SocketAddr, token: &str) -> String {
    let (status, _, body) = http_get(http, "/api/v1/admin/log-level", Some(token)).await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    body["level"].as_str().unwrap().to_string()
}

async fn put_level(http: SocketAddr, token: &str, level: &str) -> (u16, String) {
    let body = serde_json::json!({ "level": level }).to_string();
    let (status, _, reply) = http_request(
        http,
        "PUT",
        "/api/v1/admin/log-level",
        &[
            ("Authorization", format!("Bearer {token}")),
            ("Content-Type", "application/json".to_string()),
        ],
        body.as_bytes(),
    )
    .await;
    (status, reply)
}

fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_level_changes_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hotline.db");
    let log = dir.path().join("gateway.log");
    assert!(hotline(&db).arg("migrate").status().unwrap().success());
    let admin = token(&db, "wang.fang", "admin");
    let agent = token(&db, "li.na", "agent");
    let (sip_port, http_port) = (free_port(), free_port());
    let sip: SocketAddr = format!("127.0.0.1:{sip_port}").parse().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let mut child = hotline(&db)
        .arg("serve")
        .env("HOTLINE_SIP_UDP", sip.to_string())
        .env("HOTLINE_SIP_TCP", sip.to_string())
        .env("HOTLINE_HTTP_LISTEN", http.to_string())
        .env("HOTLINE_MEDIA_RTP_BIND", "127.0.0.1")
        .env("HOTLINE_IVR_DIALPLANS_DIR", dir.path().join("none"))
        .env("HOTLINE_LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(http).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the gateway did not start: {}",
            log_of(&log)
        );
        assert!(child.try_wait().unwrap().is_none(), "{}", log_of(&log));
        std::thread::sleep(Duration::from_millis(50));
    }

    assert_eq!(level(http, &admin).await, "info");
    assert_eq!(
        garbage_logged(sip, &log, 1).await,
        0,
        "info hides debug lines"
    );

    let (status, body) = put_level(http, &admin, "info,hotline::sip=debug").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(level(http, &admin).await, "info,hotline::sip=debug");
    assert_eq!(garbage_logged(sip, &log, 1).await, 1, "{}", log_of(&log));

    let (status, body) = put_level(http, &agent, "debug").await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = put_level(http, &admin, "hotline=[").await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("\"field\":\"level\""), "{body}");

    signal(&child, libc::SIGUSR2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while level(http, &admin).await != "info" {
        assert!(Instant::now() < deadline, "SIGUSR2 restores info");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(garbage_logged(sip, &log, 2).await, 1, "back at info");

    signal(&child, libc::SIGUSR1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while level(http, &admin).await != "debug" {
        assert!(Instant::now() < deadline, "SIGUSR1 turns debug on");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(garbage_logged(sip, &log, 2).await, 2);

    signal(&child, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the gateway stops on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{}", log_of(&log));
    assert!(log_of(&log).contains("log level changed"));
}
