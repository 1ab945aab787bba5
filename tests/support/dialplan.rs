//! Simulated calls through the shipped dialplans, for the tests that walk
//! every path of a plan (`tests/dialplan_*.rs`): a scratch store, one
//! simulated call, what the caller heard, and the coverage check that
//! derives every outcome a caller can cause from the plan itself.

use chrono::Utc;
use hotline::ivr::dialplan::{Dialplan, NodeKind};
use hotline::ivr::simulate::{simulate, Script};
use hotline::ivr::transferred::TransferContext;
use hotline::media::prompt::PromptLibrary;
use hotline::tickets::sla::SlaPolicy;
use hotline::tickets::store::{Store, StoreOptions};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// A plan whose main menu waits for a key, so that a caller stays in a
/// known node long enough to be seen among the live calls.
pub const LIVE_PLAN: &str = r##"
[dialplan]
name = "live"
entries = { "10000" = "main" }

[nodes.main]
kind = "menu"
say = ["welcome"]
keys = { "9" = "service" }
on_failure = "bye"

[nodes.service]
kind = "collect"
say = ["welcome"]
variable = "service_number"
min_digits = 5
max_digits = 12
terminator = "#"
next = "bye"
on_failure = "bye"

[nodes.bye]
kind = "hangup"
"##;

/// A shipped plan file.
pub fn shipped(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dialplans")
        .join(file)
}

/// A migrated scratch SQLite store, removed with its directory.
pub struct Scratch {
    pub store: Store,
    pub dir: tempfile::TempDir,
}

pub async fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sim.db", dir.path().display());
    let store = Store::open(&url, StoreOptions::new(Arc::new(SlaPolicy::builtin())))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Scratch { store, dir }
}

/// A store whose database was never migrated: every store request fails.
pub async fn broken_store(dir: &Path) -> Store {
    let url = format!("sqlite://{}/never-migrated.db", dir.display());
    Store::open(&url, StoreOptions::new(Arc::new(SlaPolicy::builtin())))
        .await
        .unwrap()
}

/// One simulated call from `from` to `dialled` of the plan in `plan`,
/// pressing the comma-separated key groups of `keys`, with what its
/// INVITE says about a transfer.
pub async fn simulate_call(
    store: &Store,
    plan: &Path,
    from: &str,
    dialled: &str,
    keys: &str,
    transfer: TransferContext,
) -> Vec<String> {
    let mut script = script(from, dialled, keys);
    script.transfer = transfer;
    simulate_script(store, plan, script).await
}

/// A script with the gateway's defaults (`Script::new`).
pub fn script(from: &str, dialled: &str, keys: &str) -> Script {
    let keys = keys
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    Script::new(from, dialled, keys, Utc::now())
}

/// One simulated call as `script` says, timed with the shipped prompts.
pub async fn simulate_script(store: &Store, plan: &Path, script: Script) -> Vec<String> {
    static PROMPTS: OnceLock<PromptLibrary> = OnceLock::new();
    let prompts = PROMPTS.get_or_init(|| {
        PromptLibrary::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts"))
            .expect("the shipped prompts load")
    });
    let plan = Dialplan::load(plan).unwrap();
    let entry = plan.entries[&script.dialled].clone();
    let calendar = Arc::new(store.sla().calendar().clone());
    simulate(Arc::new(plan), &entry, script, store, calendar, prompts).await
}

/// The "hears:" lines with digit, number and date prompts left out.
pub fn heard(transcript: &[String]) -> Vec<String> {
    transcript
        .iter()
        .filter_map(|line| line.strip_prefix("hears: "))
        .map(|line| {
            line.split(' ')
                .filter(|p| {
                    p.parse::<u64>().is_err()
                        && ![
                            "/digits/",
                            "/numbers/",
                            "/date/",
                            "/time/",
                            "(silence",
                            "ms)",
                        ]
                        .iter()
                        .any(|skip| p.contains(skip))
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

pub fn ends_with_hangup(transcript: &[String]) {
    assert!(
        transcript.iter().any(|l| l == "hangs up (dialplan)"),
        "{transcript:#?}"
    );
}

/// What a path step says happened, without its details: `invalid key 5`
/// and `invalid key 7` are one outcome.
fn outcome(event: &str) -> String {
    for prefix in [
        "invalid key",
        "invalid input",
        "collected",
        "confirmed",
        "re-enter",
        "store failed",
        "transfer to",
        "transfer failed",
        "not found",
        "hangup",
    ] {
        if event.starts_with(prefix) {
            return prefix.to_string();
        }
    }
    if event.starts_with("ticket ") {
        return "ticket".to_string();
    }
    event.to_string()
}

/// Every (node, outcome) the transcript's path went through.
fn walked(transcript: &[String]) -> BTreeSet<(String, String)> {
    let path = transcript
        .iter()
        .find_map(|l| l.strip_prefix("path: "))
        .expect("a path line");
    path.split(" | ")
        .map(|step| {
            let (node, event) = step.split_once(": ").expect("node: event");
            (node.to_string(), outcome(event))
        })
        .collect()
}

/// Every (node, outcome) a caller can cause in `plan`: each menu key, wrong
/// key, silence and running out of retries; each collect's good, bad and
/// missing input (and its confirmation's answers); each branch case and its
/// else; each store result; each transfer's failure.
fn possible(plan: &Dialplan) -> BTreeSet<(String, String)> {
    let mut all = BTreeSet::new();
    for node in plan.nodes.values() {
        let mut add = |outcome: &str| all.insert((node.name.clone(), outcome.to_string()));
        add("enter");
        match &node.kind {
            NodeKind::Menu(menu) => {
                for key in menu.keys.keys() {
                    add(&format!("key {key}"));
                }
                for outcome in ["invalid key", "no input", "retries exhausted"] {
                    add(outcome);
                }
            }
            NodeKind::Collect(collect) => {
                for outcome in [
                    "collected",
                    "invalid input",
                    "no input",
                    "retries exhausted",
                ] {
                    add(outcome);
                }
                if collect.confirm.is_some() {
                    for outcome in ["confirmed", "re-enter", "invalid key", "no confirmation"] {
                        add(outcome);
                    }
                }
            }
            NodeKind::Branch(branch) => {
                for case in 1..=branch.cases.len() {
                    add(&format!("case {case}"));
                }
                add("else");
            }
            NodeKind::TicketCreate(_) | NodeKind::TicketNote(_) | NodeKind::TicketSurvey(_) => {
                add("ticket");
                add("store failed");
            }
            NodeKind::TicketLookup(_) => {
                for outcome in ["ticket", "not found", "store failed"] {
                    add(outcome);
                }
            }
            NodeKind::Transfer(_) => {
                add("transfer to");
                add("transfer failed");
            }
            NodeKind::Hangup(_) => {
                add("hangup");
            }
            _ => {}
        }
    }
    all
}

/// Asserts that the transcripts walked every (node, outcome) of `plan`,
/// except those listed in `not_driven` (each with its reason where the
/// list is written).
pub fn assert_every_outcome_walked(
    plan: &Path,
    transcripts: &[Vec<String>],
    not_driven: &[(&str, &str)],
) {
    let plan = Dialplan::load(plan).unwrap();
    let seen: BTreeSet<(String, String)> = transcripts.iter().flat_map(|t| walked(t)).collect();
    let possible = possible(&plan);
    let missing: Vec<&(String, String)> = possible
        .difference(&seen)
        .filter(|(node, outcome)| !not_driven.contains(&(node.as_str(), outcome.as_str())))
        .collect();
    assert!(missing.is_empty(), "never walked: {missing:#?}");
}
