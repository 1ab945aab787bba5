//! Dialplan files as an operator writes them: any text must parse or be
//! refused with problems, never panic, and the checker must look at any
//! plan that parses. A plan the checker passes is then walked by the IVR
//! engine as a call would walk it, so that a plan the checker lets through
//! cannot crash a live call.
//!
//! Input: the TOML text, optionally followed by a NUL byte and a script of
//! what the caller and the store do (one byte per step).

#![no_main]

use hotline::ivr::check::check;
use hotline::ivr::dialplan::Dialplan;
use hotline::ivr::engine::{
    CallInfo, Engine, Input, Output, StoreReply, TicketDetails, TicketFacts, TransferFailure,
};
use hotline::media::recorder::RecordEnd;
use hotline::phone::PhoneNumber;
use hotline::tickets::calendar::BusinessCalendar;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

const KEYS: &[u8; 16] = b"0123456789*#ABCD";

fuzz_target!(|data: &[u8]| {
    let (text, script) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b"\x01\x0a\x10\x10"[..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let lines = text.lines().count().max(1);
    let plan = match Dialplan::parse(text, "fuzz.toml") {
        Ok(plan) => plan,
        Err(error) => {
            assert!(!error.problems.is_empty(), "refused without a reason");
            for problem in &error.problems {
                assert!(problem.line.unwrap_or(1) <= lines + 1, "{problem}");
            }
            let _ = error.to_string();
            return;
        }
    };
    let problems = check(std::slice::from_ref(&plan), &|_| true);
    for problem in &problems {
        let _ = problem.to_string();
    }
    if !problems.is_empty() {
        return;
    }
    let plan = Arc::new(plan);
    let calendar = Arc::new(BusinessCalendar::default());
    for entry in plan.entries.values() {
        walk(&plan, entry, &calendar, script);
    }
});

/// One call through the plan, driven by `script`.
fn walk(plan: &Arc<Dialplan>, entry: &str, calendar: &Arc<BusinessCalendar>, script: &[u8]) {
    // A caller with a number, and one without (anonymous), alternately.
    let known = script.first().is_some_and(|b| b & 1 == 0);
    let info = CallInfo {
        caller: if known { "13800138000" } else { "anonymous" }.into(),
        contact: known.then(|| PhoneNumber::parse("13800138000").ok()).flatten(),
        dialled: "10000".into(),
        customer: None,
        transferred: None,
    };
    let mut now = chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap();
    let mut engine = Engine::new(Arc::clone(plan), entry, info, Arc::clone(calendar));
    engine.handle(Input::Start, now);
    let mut timer = None;
    let mut recording = false;
    let mut script = script.iter().copied();
    for _ in 0..256 {
        let mut store_pending = false;
        let mut transfer_pending = false;
        while let Some(output) = engine.poll_output() {
            match output {
                Output::StartTimer { id, .. } => timer = Some(id),
                Output::Store(_) => store_pending = true,
                Output::Transfer { .. } => transfer_pending = true,
                Output::StartRecording(_) => recording = true,
                Output::Play { .. }
                | Output::StopPlayback
                | Output::Hangup { .. }
                | Output::StopRecording
                | Output::Listen(_)
                | Output::StopListening => {}
            }
        }
        if engine.is_finished() {
            return;
        }
        let Some(step) = script.next() else {
            return;
        };
        now += chrono::Duration::milliseconds(i64::from(step) * 100);
        let input = if store_pending {
            Input::Store(match step % 4 {
                0 => StoreReply::NotFound,
                1 => StoreReply::Failed("fuzz".into()),
                2 => StoreReply::Saved { id: "1".into() },
                _ => StoreReply::Ticket {
                    ticket: TicketFacts {
                        number: "2026010100017".into(),
                        status: "dispatched".into(),
                        // Withheld from strangers (tickets::privacy).
                        details: (step & 2 != 0).then(|| TicketDetails {
                            ticket_type: "fault_report".into(),
                            category: "broadband".into(),
                            created_at: now,
                            repair_due: (step & 8 != 0).then_some(now),
                        }),
                    },
                    open_count: usize::from(step >> 4),
                    position: (step & 4 != 0).then_some(1),
                },
            })
        } else if transfer_pending {
            Input::TransferFailed(if step & 1 == 0 {
                TransferFailure::Busy
            } else {
                TransferFailure::Unavailable
            })
        } else if recording && step & 3 != 3 {
            // A recording in progress: the caller starts talking, or it
            // ends with or without speech.
            match step & 3 {
                0 => Input::SpeechStarted,
                heard => {
                    recording = false;
                    Input::Recorded {
                        end: RecordEnd::Silence,
                        duration: std::time::Duration::from_millis(u64::from(step) * 50),
                        heard_speech: heard == 1,
                    }
                }
            }
        } else {
            match step >> 4 {
                0..=9 => Input::Key(char::from(KEYS[usize::from(step & 15)])),
                10..=11 => Input::PlaybackDone,
                // What a listening menu heard (speech menus).
                12 => Input::Speech(Some((
                    char::from(KEYS[usize::from(step & 15)]),
                    "fuzz".into(),
                    0.9,
                ))),
                13 => Input::Speech(None),
                _ => match timer {
                    Some(id) => Input::Timer(id),
                    None => Input::PlaybackDone,
                },
            }
        };
        engine.handle(input, now);
    }
}
