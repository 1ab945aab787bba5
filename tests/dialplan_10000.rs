//! The shipped 10000 dialplan, simulated branch by branch against a real
//! (scratch SQLite) store: what the caller hears, in order, for each path,
//! including wrong keys and silence.

mod support;

use hotline::ivr::engine::TransferFailure;
use hotline::ivr::simulate::Script;
use hotline::ivr::transferred::{TicketReference, TransferContext};
use hotline::tickets::lifecycle::Action;
use hotline::tickets::model::{Actor, Channel, CustomerLevel, Language, TicketType};
use hotline::tickets::number::damm_digit;
use hotline::tickets::store::{NewCustomer, NewTicket, Store};
use std::path::PathBuf;
use std::time::Duration;
use support::dialplan::{
    assert_every_outcome_walked, broken_store, ends_with_hangup, heard, scratch, script, shipped,
    simulate_call, simulate_script, Scratch,
};

fn plan() -> PathBuf {
    shipped("10000.toml")
}

struct Caller {
    store: Store,
    _scratch: Scratch,
}

async fn caller() -> Caller {
    let scratch = scratch().await;
    Caller {
        store: scratch.store.clone(),
        _scratch: scratch,
    }
}

impl Caller {
    async fn dial(&self, dialled: &str, keys: &str) -> Vec<String> {
        self.walk("13800138000", dialled, keys).await
    }

    async fn walk(&self, from: &str, dialled: &str, keys: &str) -> Vec<String> {
        simulate_call(
            &self.store,
            &plan(),
            from,
            dialled,
            keys,
            TransferContext::default(),
        )
        .await
    }

    async fn walk_script(&self, script: Script) -> Vec<String> {
        simulate_script(&self.store, &plan(), script).await
    }

    /// A call whose transfers to agents fail busy (tried, nobody answered).
    async fn walk_busy(&self, from: &str, dialled: &str, keys: &str) -> Vec<String> {
        let mut script = script(from, dialled, keys);
        script.transfers = TransferFailure::Busy;
        self.walk_script(script).await
    }

    /// The tickets, newest first.
    async fn tickets(&self) -> Vec<hotline::tickets::store::Ticket> {
        self.store.list_tickets(&Default::default()).await.unwrap()
    }

    /// A call an agent transferred to `dialled` with `ticket`.
    async fn transferred(
        &self,
        from: &str,
        dialled: &str,
        ticket: &str,
        keys: &str,
    ) -> Vec<String> {
        let transfer = TransferContext {
            ticket: TicketReference::Valid(ticket.parse().unwrap()),
            referred_by: Some("agent7".into()),
        };
        simulate_call(&self.store, &plan(), from, dialled, keys, transfer).await
    }
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
    // The ticket is made; the caller describes the fault after the tone
    // (the simulated caller speaks), then hears the read-back.
    assert_eq!(h[6], "zh/describe_fault zh/beep");
    assert_eq!(h[7], "zh/description_recorded");
    assert!(
        h[8].starts_with("zh/fault_reported zh/your_ticket_number_is"),
        "{h:?}"
    );
    assert!(h[8].contains("zh/repair_due_is"), "{h:?}");
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
async fn status_reads_the_callers_open_tickets_latest_first_then_says_there_are_no_more() {
    let c = caller().await;
    c.dial("10000", "3").await; // a consultation ticket: no repair clock
    c.dial("10000", "9,55512345#,1,1").await; // a fault ticket: repair by a deadline
    let t = c.dial("10000", "1,3,3").await;
    let h = heard(&t);
    assert_eq!(h[2], "zh/you_have zh/open_tickets", "{h:?}");
    assert!(
        h[3].starts_with("zh/ticket zh/status_is zh/status/new zh/repair_due_is"),
        "the latest (the fault) with its deadline: {h:?}"
    );
    assert!(h[3].ends_with("zh/status_options_next"), "{h:?}");
    assert_eq!(
        h[4], "zh/ticket zh/status_is zh/status/new zh/status_options_next",
        "then the consultation, which has no deadline"
    );
    assert_eq!(h[5], "zh/no_more_tickets");
    let tickets = c.store.list_tickets(&Default::default()).await.unwrap();
    let numbers: Vec<String> = t
        .iter()
        .filter_map(|l| l.strip_prefix("store: "))
        .filter(|l| l.contains("position: Some"))
        .map(|l| l.split("number: \"").nth(1).unwrap()[..10].to_string())
        .collect();
    assert_eq!(
        numbers,
        [tickets[0].number.to_string(), tickets[1].number.to_string()]
    );
}

#[tokio::test]
async fn status_by_number_reads_a_finished_ticket_without_a_deadline() {
    let c = caller().await;
    c.dial("10000", "9,55512345#,1,1").await;
    let number = c.tickets().await[0].number.to_string();
    // The ticket's own caller, keying its number (2 at their list).
    let t = c.dial("10000", &format!("1,2,{number}")).await;
    let h = heard(&t);
    assert_eq!(h[4], "zh/enter_ticket_number", "{h:?}");
    assert!(
        h[5].starts_with("zh/ticket zh/status_is zh/status/new zh/repair_due_is"),
        "{h:?}"
    );
    for action in [Action::Dispatch, Action::Accept, Action::Resolve] {
        c.store
            .transition(&number, action, Actor::staff("t"), None, None)
            .await
            .unwrap();
    }
    // Resolved, it is no longer among the open ones: 1 asks for a number.
    let h = heard(&c.dial("10000", &format!("1,{number}")).await);
    assert_eq!(
        h[3], "zh/ticket zh/status_is zh/status/resolved zh/status_options",
        "{h:?}"
    );
}

#[tokio::test]
async fn a_stranger_keying_a_ticket_number_hears_only_its_state() {
    let c = caller().await;
    c.dial("10000", "9,55512345#,1,1").await;
    let number = c.tickets().await[0].number.to_string();
    for stranger in ["13700000000", "anonymous", "8001"] {
        let t = c.walk(stranger, "10000", &format!("1,{number}")).await;
        let h = heard(&t);
        let read = h
            .iter()
            .find(|l| l.starts_with("zh/ticket "))
            .unwrap_or_else(|| panic!("{h:?}"));
        assert_eq!(
            read,
            "zh/ticket zh/status_is zh/status/new zh/details_only_to_contact zh/status_options",
            "no deadline, no type: {stranger}"
        );
        assert!(
            t.iter().any(|l| l.contains("details withheld")),
            "{stranger}: {t:#?}"
        );
    }
    // The same number in another spelling is the owner.
    let h = heard(
        &c.walk("+86 138-0013-8000", "10000", &format!("1,2,{number}"))
            .await,
    );
    assert!(h[5].contains("zh/repair_due_is"), "{h:?}");
}

#[tokio::test]
async fn a_transfer_to_status_reads_the_ticket_it_names_at_once() {
    let c = caller().await;
    c.dial("10000", "9,55512345#,1,1").await;
    let number = c.store.list_tickets(&Default::default()).await.unwrap()[0]
        .number
        .to_string();
    // Another caller (the agent's customer need not be the contact).
    let t = c.transferred("13700000000", "status", &number, "").await;
    let h = heard(&t);
    assert!(
        h[0].starts_with("zh/ticket zh/status_is zh/status/new zh/repair_due_is"),
        "no greeting, no menu: the ticket at once: {h:?}"
    );
    assert!(t.iter().any(|l| l.contains(number.as_str())));
    // Without a ticket: the caller's own open tickets (none: enter one).
    let h = heard(&c.walk("13700000000", "status", "").await);
    assert_eq!(h[0], "zh/enter_ticket_number");
}

#[tokio::test]
async fn a_mistyped_ticket_number_is_asked_again() {
    let c = caller().await;
    // No open tickets: the caller is asked for a number, first with a
    // wrong check digit, then right (but nobody has that ticket).
    let check = damm_digit([1, 2, 3, 4, 5, 6, 7, 8, 9]);
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
    assert_eq!(
        h[h.len() - 2..],
        [
            "zh/request_recorded zh/your_ticket_number_is zh/agent_will_call_back \
             zh/repeat_or_hang_up",
            "zh/goodbye"
        ],
        "no agent could be reached: a callback request"
    );
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
    let t = c.walk_busy("13800138000", "100009", "").await;
    assert!(
        t.iter().any(|l| l.starts_with("transfer to agents")),
        "{t:#?}"
    );
    let h = heard(&t);
    assert_eq!(h[h.len() - 2], "zh/agents_busy zh/press_1_for_callback");
    assert_eq!(h.last().unwrap(), "zh/goodbye");
}

#[tokio::test]
async fn agents_busy_only_when_agents_were_tried_else_a_callback_is_recorded() {
    let c = caller().await;
    let busy = c.walk_busy("13800138000", "10000", "0").await;
    let h = heard(&busy);
    assert_eq!(h[h.len() - 2], "zh/agents_busy zh/press_1_for_callback");
    assert_eq!(h.last().unwrap(), "zh/goodbye");
    assert!(
        c.tickets().await.is_empty(),
        "busy agents, no key: nothing recorded"
    );

    let unavailable = c.dial("10000", "0").await;
    let h = heard(&unavailable);
    assert_eq!(h[2], "zh/transferring", "{h:?}");
    assert_eq!(h[3], "zh/agent_unavailable", "{h:?}");
    assert_eq!(
        h[4],
        "zh/request_recorded zh/your_ticket_number_is zh/agent_will_call_back \
         zh/repeat_or_hang_up"
    );
    let tickets = c.tickets().await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].ticket_type, TicketType::Consultation);
    assert_eq!(tickets[0].contact_phone.as_deref(), Some("13800138000"));

    // With a ticket of their own (read in this call): a note on it, no
    // new ticket.
    let t = c.dial("10000", "1,*,0").await;
    assert!(t.iter().any(|l| l.contains("AddNote")), "{t:#?}");
    assert_eq!(c.tickets().await.len(), 1);
    let events = c.store.events(tickets[0].id).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.kind == "note" && e.detail.contains("call back")));

    // Busy agents and 1: the callback request is recorded as for an
    // unreachable agent (and queued for the gateway's callback when
    // [outbound.callback] is on: tests/e2e_outbound.rs).
    let asked = c.walk_busy("13500000000", "10000", "0,1").await;
    assert!(
        heard(&asked)
            .iter()
            .any(|l| l.starts_with("zh/request_recorded")),
        "{asked:#?}"
    );
    let asked_tickets = c.tickets().await;
    assert_eq!(asked_tickets[0].ticket_type, TicketType::Consultation);
    assert_eq!(
        asked_tickets[0].contact_phone.as_deref(),
        Some("13500000000")
    );
}

#[tokio::test]
async fn a_caller_without_a_number_keys_a_callback_number_for_the_fault_ticket() {
    let c = caller().await;
    for from in ["anonymous", "sipp", "linphone", "8001"] {
        let t = c.walk(from, "10000", "9,12345#,1,1,13700137000#,1").await;
        let h = heard(&t);
        assert_eq!(h[6], "zh/enter_callback_number", "{from}: {h:?}");
        assert_eq!(h[7], "zh/you_entered zh/confirm_or_reenter");
        assert_eq!(h[8], "zh/describe_fault zh/beep");
        assert!(h[10].starts_with("zh/fault_reported zh/your_ticket_number_is"));
        assert!(!h[10].contains("no_callback_number"));
        let ticket = &c.tickets().await[0];
        assert_eq!(
            ticket.contact_phone.as_deref(),
            Some("13700137000"),
            "{from}"
        );
        assert_eq!(ticket.service_number.as_deref(), Some("12345"));
    }
    assert_eq!(c.tickets().await.len(), 4, "one ticket per call");
}

#[tokio::test]
async fn a_dialable_service_number_becomes_the_contact_without_asking() {
    let c = caller().await;
    // The call: SIPp (From user sipp), 9, 13800138000#, 1, 1.
    let t = c.walk("sipp", "10000", "9,13800138000#,1,1").await;
    assert!(!heard(&t)
        .iter()
        .any(|l| l.contains("enter_callback_number")));
    let tickets = c.tickets().await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].contact_phone.as_deref(), Some("13800138000"));
    assert!(
        t.iter().any(|l| l.contains("reporter: \"sipp\"")),
        "the history names who called: {t:#?}"
    );
}

#[tokio::test]
async fn an_asserted_number_is_the_contact_of_an_anonymous_caller() {
    let c = caller().await;
    let mut script = script("anonymous", "10000", "9,12345#,1,1");
    script.asserted = Some("+86 139 0013 9000".into());
    let t = c.walk_script(script).await;
    assert!(!heard(&t)
        .iter()
        .any(|l| l.contains("enter_callback_number")));
    let tickets = c.tickets().await;
    assert_eq!(tickets[0].contact_phone.as_deref(), Some("13900139000"));
}

#[tokio::test]
async fn a_caller_who_keys_no_number_still_gets_the_ticket_and_hears_why_no_callback() {
    let c = caller().await;
    let t = c.walk("anonymous", "100009", "12345#,1,1").await;
    let h = heard(&t);
    let read = h
        .iter()
        .find(|l| l.starts_with("zh/fault_reported"))
        .unwrap();
    assert!(read.contains("zh/no_callback_number"), "{h:?}");
    ends_with_hangup(&t);
    let tickets = c.tickets().await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].contact_phone, None);
    assert!(c
        .store
        .notifications(tickets[0].id)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn the_call_length_is_modelled_and_the_time_limit_says_goodbye() {
    let c = caller().await;
    let t = c.dial("10000", "9,55512345#,1,1").await;
    let length = t
        .iter()
        .find_map(|l| l.strip_prefix("call length: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap();
    assert!((60.0..300.0).contains(&length), "{length}");
    assert!(c.tickets().await.len() == 1);
    // The old default of 30 s cut this report off before its ticket.
    let mut short = script("13800138000", "10000", "9,55512345#,1,1");
    short.limit = Duration::from_secs(30);
    let t = c.walk_script(short).await;
    let tail: Vec<&String> = t.iter().rev().take(5).collect();
    assert!(
        t.contains(&"hears: zh/time_limit".to_string())
            && t.contains(&"hangs up (time_limit)".to_string()),
        "{tail:#?}"
    );
    assert!(t.iter().any(|l| l.contains("time limit reached")));
    assert_eq!(
        c.tickets().await.len(),
        1,
        "no ticket from the cut-off call"
    );
}

/// Store failures these lookups cannot meet in a simulation: the store is
/// either up for the whole call or down from its start, and a call only
/// reaches them after `status_by_caller` has used the store. Their
/// `on_error` is the same `system_error` that every other store node's
/// failure walks.
const NOT_DRIVEN: &[(&str, &str)] = &[
    ("status_next", "store failed"),
    ("status_by_number", "store failed"),
    // Reached only with the caller's own ticket just read from the store.
    ("callback_note", "store failed"),
];

#[tokio::test]
async fn every_key_timeout_wrong_key_case_and_store_result_of_the_shipped_plan_is_walked() {
    const UNKNOWN: &str = "13800138000";
    const GROUP: &str = "13900000001";
    const STRANGER: &str = "13700000000";
    const OWNER: &str = "13600000000";
    const ANONYMOUS: &str = "anonymous";
    let c = caller().await;
    c.store
        .create_customer(NewCustomer {
            name: "某某集团".into(),
            level: CustomerLevel::Group,
            language: Language::Zh,
            phones: vec![GROUP.into()],
            products: vec![],
        })
        .await
        .unwrap();
    let mut transcripts = Vec::new();
    let mut run = |t: Vec<String>| {
        assert!(
            t.iter().any(|l| l.starts_with("hangs up")),
            "every call ends: {t:#?}"
        );
        transcripts.push(t);
    };

    // Main menu, language switch, tiered agents (busy: no callback
    // tickets yet, so that the status walks below start without tickets).
    for keys in ["5,5,5,5", "", "*,*,0"] {
        run(c.walk_busy(UNKNOWN, "10000", keys).await);
    }
    run(c.walk_busy(GROUP, "10000", "0").await);
    // With bridged calls recorded, the caller hears so first.
    let mut recorded = script(UNKNOWN, "10000", "0");
    recorded.recorded_calls = true;
    recorded.transfers = TransferFailure::Busy;
    let t = c.walk_script(recorded).await;
    assert!(
        t.iter().any(|l| l == "hears: zh/call_recording_notice"),
        "{t:#?}"
    );
    run(t);
    // Status by number, before this caller has tickets: silence, and
    // three mistyped numbers.
    let check = damm_digit([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let mistyped = format!("123456789{}", (check + 1) % 10);
    run(c.walk(UNKNOWN, "10000", "1").await);
    run(c
        .walk(
            UNKNOWN,
            "10000",
            &format!("1,{mistyped},{mistyped},{mistyped}"),
        )
        .await);
    run(c
        .walk(UNKNOWN, "10000", &format!("1,123456789{check}"))
        .await);
    // No transfer can be made: a callback request for a caller with a
    // number.
    run(c.walk(UNKNOWN, "10000", "0").await);
    // Complaint, consultation, self-help.
    for keys in ["2,1,5", "3,1,5", "4,1,2,3,4,5,9,*,4,0", "4"] {
        run(c.walk(UNKNOWN, "10000", keys).await);
    }
    // A caller without a number: the callback number asked for by the
    // complaint, the consultation and the callback request (0), with
    // every answer; none keyed, or only wrong ones.
    for first in ["2", "3", "0"] {
        for keys in [
            format!("{first},123#,13700137000#,7,2,13700137000#,1,1,5"),
            format!("{first},123#,123#,123#,1,5"),
            format!("{first},13700137000#"),
            first.to_string(),
        ] {
            run(c.walk(ANONYMOUS, "10000", &keys).await);
        }
    }
    // The caller's own ticket read, then 0: a callback note on it.
    run(c.walk(UNKNOWN, "10000", "1,*,0").await);
    // Fault report: the service number with every answer at its
    // confirmation, every category, silence everywhere.
    for (dialled, keys) in [
        ("10000", "9,123#,55512345#,7,2,55512345#,1,8,1,1,5"),
        ("100009", "55512345#"),
    ] {
        run(c.walk(UNKNOWN, dialled, keys).await);
    }
    // Without the caller's number: a service number that is a phone
    // number, a callback number with every answer, none.
    for keys in [
        "13800138000#,1,1",
        "12345#,1,1,123#,13700137000#,7,2,13700137000#,1,1,5",
        "12345#,1,1,123#,123#,123#,1,5",
        "12345#,1,1,13700137000#",
        "12345#,1,1",
    ] {
        run(c.walk(ANONYMOUS, "100009", keys).await);
    }
    for keys in ["2", "3", "4", "5", "0", ""] {
        run(c.walk_busy(GROUP, "100009", keys).await);
    }
    // The group caller now has open fault tickets; a complaint last makes
    // the latest one a ticket without a deadline.
    run(c.walk(GROUP, "10000", "2").await);
    for keys in [
        "1,1,5",
        "1,2",
        "1,*",
        "1,3,1,5",
        "1,3,2",
        "1,3,*",
        "1,3,3,3,3,3,3",
    ] {
        run(c.walk(GROUP, "10000", keys).await);
    }
    // Status by number in every state the read-back tells apart.
    let mut numbers = Vec::new();
    for (ticket_type, actions) in [
        (TicketType::FaultReport, &[][..]),
        (TicketType::Complaint, &[][..]),
        (
            TicketType::FaultReport,
            &[Action::Dispatch, Action::Accept, Action::Resolve][..],
        ),
        (
            TicketType::FaultReport,
            &[
                Action::Dispatch,
                Action::Accept,
                Action::Resolve,
                Action::Confirm,
            ][..],
        ),
        (
            TicketType::FaultReport,
            &[
                Action::Dispatch,
                Action::Accept,
                Action::Resolve,
                Action::Confirm,
                Action::Close,
            ][..],
        ),
        (TicketType::FaultReport, &[Action::Cancel][..]),
    ] {
        let ticket = c
            .store
            .create_ticket(NewTicket::new(
                ticket_type,
                "virtual_network",
                "13600000000",
                "simulated",
                Channel::Staff,
                Actor::staff("t"),
            ))
            .await
            .unwrap();
        let number = ticket.number.to_string();
        for action in actions {
            c.store
                .transition(&number, *action, Actor::staff("t"), None, None)
                .await
                .unwrap();
        }
        numbers.push(number);
    }
    // Their owner keys them (2 at the owner's list of open ones)...
    for number in &numbers {
        run(c.walk(OWNER, "10000", &format!("1,2,{number},1,5")).await);
    }
    for number in &numbers[..2] {
        for then in ["2", "*"] {
            run(c
                .walk(OWNER, "10000", &format!("1,2,{number},{then}"))
                .await);
        }
    }
    // ...and a stranger, who hears the state only.
    for then in ["1,5", "2", "*"] {
        run(c
            .walk(STRANGER, "10000", &format!("1,{},{then}", numbers[0]))
            .await);
    }
    // A store that is down: every store node takes its error path.
    let down = tempfile::tempdir().unwrap();
    let broken = broken_store(down.path()).await;
    for (dialled, keys) in [
        ("10000", "1"),
        ("10000", "2"),
        ("10000", "3"),
        ("100009", "55512345#,1,1"),
        ("10000", "0"),
    ] {
        run(simulate_call(
            &broken,
            &plan(),
            UNKNOWN,
            dialled,
            keys,
            TransferContext::default(),
        )
        .await);
    }
    // Busy agents: 1 asks for a callback, another key ends the call.
    for keys in ["0,1", "0,7"] {
        run(c.walk_busy("13500000000", "10000", keys).await);
    }
    // Transferred in to "status": with the ticket, and without one.
    run(c.transferred(STRANGER, "status", &numbers[0], "5").await);
    run(c.walk(GROUP, "status", "5").await);

    assert_every_outcome_walked(&plan(), &transcripts, NOT_DRIVEN);
}
