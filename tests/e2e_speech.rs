//! Speech as another way to press (issue 18), over loopback, when
//! Debian's PocketSphinx is installed (CI installs it; without it the
//! tests say so and pass): a caller says 故障 (a test-set file the
//! recogniser gets right) during a listening menu and lands where 9 goes,
//! the prompt cut short by their voice, and the call record says the
//! choice came from speech; line noise is no choice, and keys still work.

mod support;

use hotline::config::Config;
use hotline::server::Server;
use hotline::speech::sphinx::{default_model, Sphinx, LIBRARY};
use std::time::Duration;
use support::audio::{call, repo, say, wav};
use support::{start, test_config};

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
    say(&caller, rtp, &wav("tests/data/speech/001-zh-9.wav"), 0).await;
    say(&caller, rtp, &vec![0; 8 * 1500], 0).await;
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
    say(&caller, rtp, &wav("tests/data/speech/151-noise.wav"), 0).await;
    say(&caller, rtp, &vec![0; 8 * 1000], 0).await;
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
