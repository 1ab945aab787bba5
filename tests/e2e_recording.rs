//! End-to-end recordings (issue 18) over loopback: a caller reaches a
//! `record` node after their ticket is made, hears the beep and speaks (a
//! shipped WAV, sent as µ-law RTP in real time), then is silent; the
//! gateway keeps exactly what arrived (G.711-decoded) as a WAV under the
//! recordings directory, on the ticket, before saying it is kept. Staff
//! list it and play it through the API (a play from the first byte is on
//! the ticket's history, later ranges are not), and retention deletes the
//! audio while the row stays. A caller who hangs up while speaking keeps
//! what they said. Bridged calls and IVR legs are recorded in stereo when
//! configured: one file per call, each side exactly as sent.

mod support;

use hotline::api::issue_token;
use hotline::config::Config;
use hotline::media::g711;
use hotline::recordings::Recordings;
use hotline::server::Server;
use hotline::sip::sdp;
use hotline::tickets::model::StaffRole;
use hotline::tickets::store::StoredRecording;
use std::net::SocketAddr;
use std::time::Duration;
use support::audio::{call, repo, say, wav};
use support::{start, test_config, Client};

const LONG: Duration = Duration::from_secs(20);

/// Creates a fault ticket, then records (the beep only, to be quick).
const PLAN: &str = r#"
[dialplan]
name = "describe"
entries = { "10000" = "create" }

[nodes.create]
kind = "ticket_create"
type = "fault_report"
category = "bandwidth"
description = "IVR fault report"
next = "describe"
on_error = "bye"

[nodes.describe]
kind = "record"
say = ["beep"]
max_secs = 30
silence_secs = 2
no_speech_secs = 5
after = ["description_recorded"]
next = "bye"
on_empty = "bye"
on_error = "bye"

[nodes.bye]
kind = "hangup"
say = ["goodbye"]
"#;

fn config(plans: &tempfile::TempDir) -> Config {
    let mut config = test_config();
    config.prompts.dir = repo("prompts");
    config.ivr.dialplans_dir = plans.path().to_path_buf();
    config
}

/// What the caller says: a shipped prompt, 8 kHz mono.
fn speech() -> Vec<i16> {
    wav("prompts/en/welcome.wav")
}

/// The ticket's recordings once `count` are kept.
async fn kept(server: &Server, ticket_id: i64, count: usize) -> Vec<StoredRecording> {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let found = server.store().ticket_recordings(ticket_id).await.unwrap();
        if found.len() >= count || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The one ticket the call made.
async fn the_ticket(server: &Server) -> (i64, String) {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let tickets = server
            .store()
            .list_tickets(&Default::default())
            .await
            .unwrap();
        if let Some(ticket) = tickets.first() {
            return (ticket.id, ticket.number.to_string());
        }
        assert!(tokio::time::Instant::now() < deadline, "no ticket");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn wav_samples(bytes: &[u8]) -> Vec<i16> {
    hound::WavReader::new(std::io::Cursor::new(bytes))
        .expect("a WAV")
        .samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect()
}

#[tokio::test]
async fn a_spoken_description_is_kept_exactly_served_to_staff_and_purged_by_retention() {
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(plans.path().join("describe.toml"), PLAN).unwrap();
    let config = config(&plans);
    let server = start(config.clone()).await;
    let (mut caller, _dialog, rtp) = call(&server).await;
    // The beep (0.45 s), then a little silence, the words, and silence
    // until the gateway says it is kept.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let words = speech();
    let mut next = say(&caller, rtp, &vec![0; 8 * 300], 0).await;
    next = say(&caller, rtp, &words, next).await;
    say(&caller, rtp, &vec![0; 8 * 3000], next).await;
    assert!(
        caller.answer_bye(LONG).await.is_some(),
        "\"recorded\", then goodbye"
    );

    let (ticket_id, number) = the_ticket(&server).await;
    let recordings = kept(&server, ticket_id, 1).await;
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let recording = &recordings[0];
    assert_eq!(recording.channels, 1);
    assert_eq!(recording.kind.code(), "description");

    // The file holds what arrived, sample for sample: the words through
    // µ-law and back, after the leading silence, with a short tail.
    let path = config
        .recordings
        .dir
        .join(format!("{}.wav", recording.token));
    let stored = wav_samples(&std::fs::read(&path).expect("the file"));
    let sent: Vec<i16> = words
        .iter()
        .map(|s| g711::ulaw_decode(g711::ulaw_encode(*s)))
        .collect();
    // Anchored on the first loud stretch (the WAV starts with silence).
    let loud = sent.iter().position(|s| s.unsigned_abs() > 1000).unwrap();
    let anchor = &sent[loud..loud + 400];
    let offset = (loud..stored.len().saturating_sub(sent.len() - loud))
        .find(|&at| &stored[at..at + 400] == anchor)
        .map(|at| at - loud)
        .expect("the words are in the recording");
    assert!(
        stored[offset..offset + sent.len()] == sent[..],
        "the recording differs from what was sent"
    );
    let tail = stored.len() - offset - sent.len();
    assert!(tail <= 8 * 1000, "{tail} samples after the words");
    assert_eq!(
        recording.duration_ms,
        stored.len() as u64 * 1000 / 8000,
        "the row says how long"
    );

    // Staff list and play it.
    let token = issue_token(server.store(), "li.na", StaffRole::Agent)
        .await
        .unwrap()
        .token;
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.http_addr);
    let listed: serde_json::Value = http
        .get(format!("{base}/api/v1/tickets/{number}/recordings"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let audio = listed[0]["audio"].as_str().expect("an audio address");
    assert_eq!(audio, format!("/api/v1/recordings/{}", recording.token));
    let whole = http
        .get(format!("{base}{audio}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(
        whole.headers()["content-type"].to_str().unwrap(),
        "audio/wav"
    );
    assert_eq!(
        whole.bytes().await.unwrap().to_vec(),
        std::fs::read(&path).unwrap()
    );
    let part = http
        .get(format!("{base}{audio}"))
        .bearer_auth(&token)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().len(), 100);
    let unauthenticated = http.get(format!("{base}{audio}")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let events = server.store().events(ticket_id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"recording"), "{kinds:?}");
    let plays: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "recording_played")
        .collect();
    assert_eq!(plays.len(), 1, "one play, its later range is not another");
    assert_eq!(plays[0].actor.to_string(), "staff:li.na");

    // Retention: 90 days later the audio is gone, the row stays.
    let retention = Recordings::new(&config.recordings, server.store().clone());
    let later = server.store().now() + chrono::Duration::days(91);
    assert_eq!(retention.purge(later).await.unwrap(), 1);
    assert!(!path.exists());
    let purged = kept(&server, ticket_id, 1).await;
    assert!(purged[0].purged_at.is_some());
    let gone = http
        .get(format!("{base}{audio}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 410);
    assert_eq!(retention.purge(later).await.unwrap(), 0, "once");
    server.shutdown().await;
}

#[tokio::test]
async fn a_caller_who_hangs_up_while_speaking_keeps_what_they_said() {
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(plans.path().join("describe.toml"), PLAN).unwrap();
    let server = start(config(&plans)).await;
    let (mut caller, mut dialog, rtp) = call(&server).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let words = speech();
    say(&caller, rtp, &words[..8 * 2000], 0).await;
    assert_eq!(caller.bye(&mut dialog).await, 200);

    let (ticket_id, _) = the_ticket(&server).await;
    let recordings = kept(&server, ticket_id, 1).await;
    assert_eq!(recordings.len(), 1, "kept after the hang-up");
    assert!(
        (1500..=2600).contains(&recordings[0].duration_ms),
        "{:?}",
        recordings[0]
    );
    server.shutdown().await;
}

/// Makes a ticket, then bridges the caller to the agents (who hear the
/// recording notice first when calls are recorded).
const BRIDGE_PLAN: &str = r#"
[dialplan]
name = "bridge"
entries = { "10000" = "create" }

[nodes.create]
kind = "ticket_create"
type = "consultation"
category = "bandwidth"
description = "IVR: an agent"
next = "notice"
on_error = "bye"

[nodes.notice]
kind = "branch"
cases = [{ variable = "recording.calls", equals = "on", goto = "tell" }]
else = "agents"

[nodes.tell]
kind = "play"
say = ["beep"]
next = "agents"

[nodes.agents]
kind = "transfer"
target = "agents"
on_failure = "bye"

[nodes.bye]
kind = "hangup"
say = ["goodbye"]
"#;

/// Where in `stored` the µ-law round trip of `sent` starts, if anywhere.
fn find(stored: &[i16], sent: &[i16]) -> Option<usize> {
    let sent: Vec<i16> = sent
        .iter()
        .map(|s| g711::ulaw_decode(g711::ulaw_encode(*s)))
        .collect();
    let loud = sent.iter().position(|s| s.unsigned_abs() > 1000)?;
    let anchor = &sent[loud..loud + 400];
    let at = (loud..stored.len().saturating_sub(sent.len() - loud))
        .find(|&at| &stored[at..at + 400] == anchor)?
        - loud;
    (stored[at..at + sent.len()] == sent[..]).then_some(at)
}

/// What a bridged call left: its ticket's recordings as (left, right)
/// channels with their history lines, and what the caller and the agent
/// said.
struct Bridged {
    /// The ticket's history lines about recordings.
    recording_events: Vec<String>,
    channels: Vec<(Vec<i16>, Vec<i16>)>,
    caller_words: Vec<i16>,
    agent_words: Vec<i16>,
}

/// A caller bridged to an agent, both talking at once, the agent hanging
/// up; `ivr_calls` and `bridged_calls` as given.
async fn bridged_call(ivr_calls: bool, bridged_calls: bool) -> Bridged {
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(plans.path().join("bridge.toml"), BRIDGE_PLAN).unwrap();
    let mut agent = Client::udp("127.0.0.1:9".parse().unwrap()).await;
    let mut config = config(&plans);
    config.recordings.bridged_calls = bridged_calls;
    config.recordings.ivr_calls = ivr_calls;
    config.recordings.ivr_notice = "beep".into();
    config.transfer.targets.insert(
        "agents".into(),
        hotline::config::TransferTarget {
            uri: format!("sip:agents@{}", agent.local),
            mode: hotline::config::TransferMode::Bridge,
            username: None,
            password: None,
            srtp: false,
        },
    );
    let server = start(config.clone()).await;
    agent.server = server.udp_addrs[0];
    let (caller, _dialog, caller_rtp) = call(&server).await;

    let invite = agent
        .request_named("INVITE", LONG)
        .await
        .expect("the gateway calls the agents");
    let offer = agent.offer(
        "0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        "a=sendrecv\r\n",
    );
    let mut agent_dialog = agent
        .respond(&invite, 200, "OK", "agent1", &[], Some(offer))
        .await;
    agent
        .request_named("ACK", Duration::from_secs(5))
        .await
        .expect("ACK");
    let leg = sdp::parse_body(&invite.body).unwrap().audio.unwrap();
    let agent_rtp = SocketAddr::new(leg.connection.unwrap(), leg.port);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Both talk at once, each their own words.
    let caller_words = speech();
    let agent_words = wav("prompts/en/goodbye.wav");
    tokio::join!(
        say(&caller, caller_rtp, &caller_words, 0),
        say(&agent, agent_rtp, &agent_words, 0),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(agent.bye(&mut agent_dialog).await, 200);

    let (ticket_id, _) = the_ticket(&server).await;
    let expected = usize::from(ivr_calls || bridged_calls);
    let recordings = kept(&server, ticket_id, expected).await;
    assert_eq!(recordings.len(), expected, "{recordings:?}");
    let mut channels = Vec::new();
    for recording in &recordings {
        assert_eq!((recording.kind.code(), recording.channels), ("call", 2));
        let path = config
            .recordings
            .dir
            .join(format!("{}.wav", recording.token));
        let interleaved = wav_samples(&std::fs::read(path).expect("the file"));
        let left: Vec<i16> = interleaved.iter().step_by(2).copied().collect();
        let right: Vec<i16> = interleaved.iter().skip(1).step_by(2).copied().collect();
        channels.push((left, right));
    }
    let recording_events = server
        .store()
        .events(ticket_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "recording")
        .map(|e| e.detail)
        .collect();
    server.shutdown().await;
    Bridged {
        recording_events,
        channels,
        caller_words,
        agent_words,
    }
}

#[tokio::test]
async fn a_bridged_call_is_recorded_in_stereo_each_side_exactly_as_sent() {
    let bridged = bridged_call(false, true).await;
    let (left, right) = &bridged.channels[0];
    let caller_at = find(left, &bridged.caller_words).expect("the caller's words, left");
    let agent_at = find(right, &bridged.agent_words).expect("the agent's words, right");
    // Said at the same moment, they sit at about the same place.
    let skew = caller_at.abs_diff(agent_at);
    assert!(skew <= 8 * 200, "{skew} samples apart");
    assert!(
        find(right, &bridged.caller_words).is_none(),
        "no caller on the right"
    );
    assert!(
        find(right, &wav("prompts/zh/beep.wav")).is_none(),
        "the IVR leg is not recorded"
    );
    assert!(
        bridged.recording_events[0].starts_with("the call recorded"),
        "{:?}",
        bridged.recording_events
    );
}

#[tokio::test]
async fn a_recorded_ivr_leg_goes_on_through_a_recorded_bridge_in_one_file() {
    let bridged = bridged_call(true, true).await;
    let (left, right) = &bridged.channels[0];
    let notice = find(right, &wav("prompts/zh/beep.wav")).expect("the IVR's notice, right");
    let agent_at = find(right, &bridged.agent_words).expect("then the agent, right");
    assert!(notice < agent_at);
    let caller_at = find(left, &bridged.caller_words).expect("the caller's words, left");
    assert!(caller_at.abs_diff(agent_at) <= 8 * 200);
}

#[tokio::test]
async fn a_recorded_ivr_leg_ends_at_a_bridge_that_is_not_recorded() {
    let bridged = bridged_call(true, false).await;
    let (left, right) = &bridged.channels[0];
    find(right, &wav("prompts/zh/beep.wav")).expect("the IVR's notice, right");
    assert!(find(right, &bridged.agent_words).is_none(), "no agent");
    assert!(
        find(left, &bridged.caller_words).is_none(),
        "no conversation"
    );
}

/// Makes a ticket, then plays the greeting as a menu that waits.
const IVR_PLAN: &str = r#"
[dialplan]
name = "ivr"
entries = { "10000" = "create" }

[nodes.create]
kind = "ticket_create"
type = "consultation"
category = "bandwidth"
description = "IVR: recorded"
next = "menu"
on_error = "bye"

[nodes.menu]
kind = "menu"
say = ["welcome"]
keys = { "1" = "bye" }
timeout_secs = 30
on_failure = "bye"

[nodes.bye]
kind = "hangup"
say = ["goodbye"]
"#;

#[tokio::test]
async fn a_recorded_ivr_leg_keeps_the_caller_left_and_what_the_ivr_played_right() {
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(plans.path().join("ivr.toml"), IVR_PLAN).unwrap();
    let mut config = config(&plans);
    config.recordings.ivr_calls = true;
    config.recordings.ivr_notice = "beep".into();
    let server = start(config.clone()).await;
    let (mut caller, mut dialog, rtp) = call(&server).await;
    let words = speech();
    say(&caller, rtp, &words, 0).await;
    // The greeting (5.9 s) ends while the caller is silent.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(caller.bye(&mut dialog).await, 200);

    let (ticket_id, _) = the_ticket(&server).await;
    let recordings = kept(&server, ticket_id, 1).await;
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let recording = &recordings[0];
    assert_eq!((recording.kind.code(), recording.channels), ("call", 2));
    assert!(
        (6500..=8500).contains(&recording.duration_ms),
        "from the answer to the hang-up: {recording:?}"
    );
    let path = config
        .recordings
        .dir
        .join(format!("{}.wav", recording.token));
    let interleaved = wav_samples(&std::fs::read(path).expect("the file"));
    let left: Vec<i16> = interleaved.iter().step_by(2).copied().collect();
    let right: Vec<i16> = interleaved.iter().skip(1).step_by(2).copied().collect();
    find(&left, &words).expect("the caller's words, left");
    let notice = find(&right, &wav("prompts/zh/beep.wav")).expect("the notice, right");
    let greeting = find(&right, &wav("prompts/zh/welcome.wav")).expect("the greeting, right");
    assert!(notice < greeting, "the notice first");
    assert!(find(&right, &words).is_none(), "no caller on the right");
    server.shutdown().await;
}
