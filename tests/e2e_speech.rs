//! Speech as another way to press (issue 18), over loopback, when
//! Debian's PocketSphinx is installed (CI installs it; without it the
//! tests say so and pass): a caller says 故障 (a test-set file the
//! recogniser gets right) during a listening menu and lands where 9 goes,
//! the prompt cut short by their voice, and the call record says the
//! choice came from speech; line noise is no choice, and keys still work.

mod support;

use hotline::config::Config;
use hotline::media::g711;
use hotline::server::Server;
use hotline::sip::sdp;
use hotline::speech::sphinx::{default_model, Sphinx, LIBRARY};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use support::{start, test_config, Client};

const LONG: Duration = Duration::from_secs(20);

const PLAN: &str = r#"
[dialplan]
name = "speech"
entries = { "10000" = "main" }

[nodes.main]
kind = "menu"
say = ["main_menu"]
keys = { "9" = "fault", "1" = "status" }
listen = { "9" = ["故障", "报障", "fault"], "1" = ["查询", "status"] }
timeout_secs = 8
retries = 1
invalid = ["invalid_key"]
on_failure = "bye"

[nodes.fault]
kind = "hangup"
say = ["fault_intro"]

[nodes.status]
kind = "hangup"
say = ["goodbye"]

[nodes.bye]
kind = "hangup"
say = ["goodbye"]
"#;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn speech_available() -> bool {
    match Sphinx::load(LIBRARY, &default_model(), 1) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("PocketSphinx is not installed here, nothing to test: {e}");
            false
        }
    }
}

fn config(plans: &tempfile::TempDir) -> Config {
    let mut config = test_config();
    config.prompts.dir = repo("prompts");
    config.ivr.dialplans_dir = plans.path().to_path_buf();
    config.speech.enabled = true;
    config
}

fn test_set(file: &str) -> Vec<i16> {
    hound::WavReader::open(repo("tests/data/speech").join(file))
        .expect("a test-set file")
        .samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect()
}

async fn call(server: &Server) -> (Client, support::Dialog, SocketAddr) {
    let mut caller = Client::udp(server.udp_addrs[0]).await;
    let (response, mut dialog) = caller.invite("10000", Some(caller.g711_offer())).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    caller.ack(&mut dialog).await;
    let audio = sdp::parse_body(&response.body).unwrap().audio.unwrap();
    let rtp = SocketAddr::new(audio.connection.unwrap(), audio.port);
    (caller, dialog, rtp)
}

/// Sends `pcm` as 20 ms µ-law packets in real time.
async fn say(caller: &Client, to: SocketAddr, pcm: &[i16]) {
    let frames: Vec<Vec<u8>> = pcm
        .chunks(160)
        .map(|chunk| {
            let mut frame = chunk.to_vec();
            frame.resize(160, 0);
            frame.iter().map(|s| g711::ulaw_encode(*s)).collect()
        })
        .collect();
    let count = u16::try_from(frames.len()).unwrap();
    caller
        .send_audio(to, 0, 0xBEEF, count, |i| frames[usize::from(i)].clone())
        .await;
}

/// The menu path of the call's record, once written.
async fn path_of(server: &Server) -> String {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let calls = server.store().recent_calls(10).await.unwrap();
        if let Some(call) = calls.first() {
            return call
                .menu_path
                .iter()
                .map(|s| format!("{}: {}", s.node, s.event))
                .collect::<Vec<_>>()
                .join(" | ");
        }
        assert!(tokio::time::Instant::now() < deadline, "no call record");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_spoken_choice_presses_its_key_and_the_record_says_so() {
    if !speech_available() {
        return;
    }
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(plans.path().join("speech.toml"), PLAN).unwrap();
    let server = start(config(&plans)).await;
    let (mut caller, _dialog, rtp) = call(&server).await;
    // During the 18 s menu prompt: the caller's voice cuts it short.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    say(&caller, rtp, &test_set("001-zh-9.wav")).await;
    say(&caller, rtp, &vec![0; 8 * 1500]).await;
    assert!(
        caller.answer_bye(LONG).await.is_some(),
        "fault_intro, then BYE"
    );
    let path = path_of(&server).await;
    assert!(
        path.contains("main: speech: 故障 (") && path.contains("as key 9"),
        "{path}"
    );
    assert!(path.contains("fault: enter"), "{path}");
    server.shutdown().await;
}

#[tokio::test]
async fn noise_is_no_choice_and_keys_still_work() {
    if !speech_available() {
        return;
    }
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(plans.path().join("speech.toml"), PLAN).unwrap();
    let server = start(config(&plans)).await;
    let (mut caller, _dialog, rtp) = call(&server).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    say(&caller, rtp, &test_set("151-noise.wav")).await;
    say(&caller, rtp, &vec![0; 8 * 1000]).await;
    let (mut sequence, mut timestamp) = (2000u16, 400_000u32);
    caller
        .send_keys(rtp, "1", &mut sequence, &mut timestamp)
        .await;
    assert!(caller.answer_bye(LONG).await.is_some());
    let path = path_of(&server).await;
    assert!(
        path.contains("main: key 1") && path.contains("status: enter"),
        "{path}"
    );
    assert!(!path.contains("as key 9"), "{path}");
    server.shutdown().await;
}
