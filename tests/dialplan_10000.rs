//! The shipped 10000 dialplan, simulated branch by branch against a real
//! (scratch SQLite) store: what the caller hears, in order, for each path,
//! including wrong keys and silence.

use chrono::Utc;
use hotline::ivr::dialplan::Dialplan;
use hotline::ivr::simulate::{simulate, Script};
use hotline::tickets::model::{CustomerLevel, Language};
use hotline::tickets::sla::SlaPolicy;
use hotline::tickets::store::{NewCustomer, Store, StoreOptions};
use std::sync::Arc;

const PLAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dialplans/10000.toml");

struct Caller {
    store: Store,
    _dir: tempfile::TempDir,
}

async fn caller() -> Caller {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sim.db", dir.path().display());
    let store = Store::open(&url, StoreOptions::new(Arc::new(SlaPolicy::builtin())))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Caller { store, _dir: dir }
}

impl Caller {
    async fn dial(&self, dialled: &str, keys: &str) -> Vec<String> {
        let plan = Dialplan::load(PLAN.as_ref()).unwrap();
        let entry = plan.entries[dialled].clone();
        let script = Script {
            caller: "13800138000".into(),
            dialled: dialled.into(),
            keys: keys
                .split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect(),
            now: Utc::now(),
        };
        let calendar = Arc::new(self.store.sla().calendar().clone());
        simulate(Arc::new(plan), &entry, script, &self.store, calendar).await
    }
}

/// The "hears:" lines with digit, number and date prompts left out.
fn heard(transcript: &[String]) -> Vec<String> {
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

fn ends_with_hangup(transcript: &[String]) {
    assert!(
        transcript.iter().any(|l| l == "hangs up (dialplan)"),
        "{transcript:#?}"
    );
}

#[tokio::test]
async fn fault_report_by_an_unknown_caller_asks_for_the_service_number() {
    let c = caller().await;
    let t = c.dial("10000", "9,55512345#,1,1").await;
    let h = heard(&t);
    assert_eq!(h[2], "zh/fault_intro");
    assert_eq!(h[3], "zh/enter_service_number");
    assert_eq!(h[4], "zh/you_entered zh/confirm_or_reenter");
    assert_eq!(h[5], "zh/fault_category_menu");
    assert!(
        h[6].starts_with("zh/fault_reported zh/your_ticket_number_is"),
        "{h:?}"
    );
    assert!(h[6].contains("zh/repair_due_is"), "{h:?}");
    ends_with_hangup(&t);
    let tickets = c.store.list_tickets(&Default::default()).await.unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].service_number.as_deref(), Some("55512345"));
    assert_eq!(tickets[0].category, "virtual_network");
}

#[tokio::test]
async fn a_known_caller_goes_straight_to_the_category() {
    let c = caller().await;
    c.store
        .create_customer(NewCustomer {
            name: "某某集团".into(),
            level: CustomerLevel::Group,
            language: Language::Zh,
            phones: vec!["13800138000".into()],
            products: vec![],
        })
        .await
        .unwrap();
    let t = c.dial("100009", "5").await;
    let h = heard(&t);
    assert_eq!(h[0], "zh/fault_intro");
    assert_eq!(h[1], "zh/fault_category_menu");
    let tickets = c.store.list_tickets(&Default::default()).await.unwrap();
    assert_eq!(tickets[0].category, "bandwidth");
    assert_eq!(tickets[0].level, CustomerLevel::Group);
}

#[tokio::test]
async fn status_reads_the_callers_latest_ticket_then_another_by_number() {
    let c = caller().await;
    c.dial("10000", "3").await; // a consultation ticket for this caller
    let t = c.dial("10000", "1").await;
    let h = heard(&t);
    assert!(h[2].starts_with("zh/your_latest_ticket"), "{h:?}");
    assert!(h[2].contains("zh/status_is zh/status/new"), "{h:?}");
    ends_with_hangup(&t);
}

#[tokio::test]
async fn a_mistyped_ticket_number_is_asked_again() {
    let c = caller().await;
    // No open tickets: the caller is asked for a number, first with a
    // wrong check digit, then right (but nobody has that ticket).
    let check = hotline::tickets::number::damm_digit([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let keys = format!("1,123456789{},123456789{check}", (check + 1) % 10);
    let t = c.dial("10000", &keys).await;
    let h = heard(&t);
    assert_eq!(h[2], "zh/enter_ticket_number");
    assert_eq!(h[3], "zh/ticket_number_mistyped zh/enter_ticket_number");
    assert_eq!(h[4], "zh/no_such_ticket");
}

#[tokio::test]
async fn complaint_and_consultation_create_tickets_of_their_type() {
    let c = caller().await;
    let complaint = heard(&c.dial("10000", "2").await);
    assert!(
        complaint[2].starts_with("zh/complaint_recorded"),
        "{complaint:?}"
    );
    let consultation = heard(&c.dial("10000", "3").await);
    assert!(
        consultation[2].starts_with("zh/consultation_recorded"),
        "{consultation:?}"
    );
    let types: Vec<String> = c
        .store
        .list_tickets(&Default::default())
        .await
        .unwrap()
        .iter()
        .map(|t| t.ticket_type.code().to_string())
        .collect();
    assert_eq!(types, ["consultation", "complaint"]);
}

#[tokio::test]
async fn self_help_reads_each_code_and_returns_to_its_menu() {
    let c = caller().await;
    let t = c.dial("10000", "4,1,2,3,4,5,*,0").await;
    let h = heard(&t);
    for (i, topic) in [
        "forward_busy",
        "forward_no_answer",
        "forward_unconditional",
        "forward_all",
        "do_not_disturb",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(h[3 + 2 * i], format!("zh/selfhelp/{topic}"), "{h:?}");
        assert_eq!(h[4 + 2 * i], "zh/selfhelp/menu");
    }
    assert!(t.iter().any(|l| l.starts_with("transfer to agents")));
    assert_eq!(h.last().unwrap(), "zh/agents_busy zh/goodbye");
}

#[tokio::test]
async fn wrong_keys_and_silence_run_out_the_main_menu() {
    let c = caller().await;
    let wrong = heard(&c.dial("10000", "5,5,5,5").await);
    assert_eq!(
        wrong[1..],
        [
            "zh/main_menu zh/language_switch",
            "zh/invalid_key zh/main_menu zh/language_switch",
            "zh/invalid_key zh/main_menu zh/language_switch",
            "zh/invalid_key zh/main_menu zh/language_switch",
            "zh/goodbye"
        ]
    );
    let silent = heard(&c.dial("10000", "").await);
    assert_eq!(silent.len(), 6);
    assert_eq!(silent[2], "zh/no_input zh/main_menu zh/language_switch");
    assert_eq!(silent[5], "zh/goodbye");
}

#[tokio::test]
async fn star_switches_to_english_and_back() {
    let c = caller().await;
    let h = heard(&c.dial("10000", "*,*,5,5,5,5").await);
    assert_eq!(h[2], "en/main_menu en/language_switch");
    assert_eq!(h[3], "zh/main_menu zh/language_switch");
}

#[tokio::test]
async fn a_silent_caller_at_the_service_number_is_sent_to_an_agent() {
    let c = caller().await;
    let t = c.dial("100009", "").await;
    assert!(
        t.iter().any(|l| l.starts_with("transfer to agents")),
        "{t:#?}"
    );
    assert_eq!(heard(&t).last().unwrap(), "zh/agents_busy zh/goodbye");
}
