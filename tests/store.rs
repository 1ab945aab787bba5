//! The ticket store, one suite for both databases: every scenario runs on
//! a fresh SQLite file, and on PostgreSQL when `DATABASE_URL` points at one
//! (each run in its own schema, dropped afterwards). Without `DATABASE_URL`
//! the PostgreSQL half says so and passes, so plain `cargo test` works on
//! any machine; `.ci/run` sets it.

#[macro_use]
mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use hotline::tickets::lifecycle::Action;
use hotline::tickets::model::{Actor, Channel, CustomerLevel, Language, Status, TicketType};
use hotline::tickets::sla::{SlaClock, SlaPolicy};
use hotline::tickets::store::{
    NewCustomer, NewTicket, NewTransferContext, Product, Store, StoreError, StoreOptions,
    TicketQuery,
};
use sqlx::{Connection, Executor};
use std::future::Future;
use std::sync::{Arc, Mutex};
use support::database::{Backend, ScratchDatabase};

/// A clock the test moves by hand.
#[derive(Clone)]
struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

struct Harness {
    store: Store,
    clock: TestClock,
    database: ScratchDatabase,
}

/// Monday 2026-11-23 10:00 in Shanghai (02:00 UTC): inside working hours.
fn monday_morning() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap()
}

async fn harness(backend: Backend) -> Option<Harness> {
    let database = ScratchDatabase::create(backend, "store").await?;
    let clock = TestClock(Arc::new(Mutex::new(monday_morning())));
    let mut options = StoreOptions::new(Arc::new(SlaPolicy::builtin()));
    let handle = clock.clone();
    options.clock = Arc::new(move || *handle.0.lock().unwrap());
    let store = Store::open(&database.url, options)
        .await
        .expect("store opens");
    store.migrate().await.expect("migrations run");
    Some(Harness {
        store,
        clock,
        database,
    })
}

impl Harness {
    async fn finish(self) {
        self.store.close().await;
        self.database.remove().await;
    }
}

async fn run<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(Store, TestClock, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(harness) = harness(backend).await else {
        return;
    };
    scenario(
        harness.store.clone(),
        harness.clock.clone(),
        harness.database.url.clone(),
    )
    .await;
    harness.finish().await;
}

on_both!(
    a_new_ticket_has_a_valid_number_deadlines_and_its_first_event,
    the_customer_is_found_by_phone_and_sets_level_and_language,
    the_whole_lifecycle_is_recorded_in_order,
    a_wrong_action_names_the_state_and_the_allowed_ones,
    a_stale_version_is_a_conflict_and_changes_nothing,
    concurrent_transitions_let_exactly_one_win,
    concurrent_creations_all_commit_with_distinct_numbers,
    breaches_are_marked_once_however_often_the_job_runs,
    a_late_transition_records_its_breach,
    lists_filter_by_phone_status_breach_and_text,
    a_mistyped_number_is_an_error_not_a_miss,
    events_are_append_only,
    a_bad_customer_file_imports_nothing,
    notes_and_assignment_are_recorded,
    a_new_ticket_queues_its_text_in_the_same_commit,
    concurrent_call_records_keep_their_own_tickets,
    a_survey_score_is_an_event_and_a_row_and_only_1_to_5,
    a_transfer_context_resolves_by_its_token_until_it_expires,
    every_spelling_of_a_number_is_one_customer_and_one_search,
    rows_written_before_the_normal_form_are_found_under_every_spelling,
    a_report_without_a_contact_number_is_kept_and_not_texted,
);

fn fault(phone: &str) -> NewTicket {
    NewTicket::new(
        TicketType::FaultReport,
        "virtual_network",
        phone,
        "虚拟网短号无法呼通",
        Channel::Voice,
        Actor::customer(phone),
    )
}

async fn a_new_ticket_has_a_valid_number_deadlines_and_its_first_event(
    store: Store,
    _clock: TestClock,
    _url: String,
) {
    let ticket = store.create_ticket(fault("13800138000")).await.unwrap();
    let now = monday_morning();
    assert_eq!(ticket.status, Status::New);
    assert_eq!(ticket.version, 1);
    assert!(ticket
        .number
        .to_string()
        .parse::<hotline::tickets::number::TicketNumber>()
        .is_ok());
    assert_eq!(ticket.level, CustomerLevel::LocalC);
    assert_eq!(ticket.due.dispatch, Some(now + Duration::minutes(15)));
    // virtual network, local C: 48 hours around the clock.
    assert_eq!(ticket.due.repair, Some(now + Duration::hours(48)));
    assert_eq!(ticket.due.accept, None);
    let stored = store
        .ticket(&ticket.number.to_string())
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored, ticket);
    let events = store.events(ticket.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "created");
    assert_eq!(events[0].actor, Actor::customer("13800138000"));
    assert_eq!(events[0].to_status, Some(Status::New));
    assert_eq!(events[0].at, now);
}

async fn the_customer_is_found_by_phone_and_sets_level_and_language(
    store: Store,
    _clock: TestClock,
    _url: String,
) {
    let customer = store
        .create_customer(NewCustomer {
            name: "某某集团".into(),
            level: CustomerLevel::Group,
            language: Language::En,
            phones: vec!["010-8888 0000".into(), "13900139000".into()],
            products: vec![Product {
                category: "virtual_network".into(),
                service_number: "VPN-0001".into(),
            }],
        })
        .await
        .unwrap();
    assert_eq!(customer.phones, ["01088880000", "13900139000"]);
    let found = store
        .customer_by_phone("139-0013-9000")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, customer);
    let ticket = store.create_ticket(fault("13900139000")).await.unwrap();
    assert_eq!(ticket.customer_id, Some(customer.id));
    assert_eq!(ticket.level, CustomerLevel::Group);
    assert_eq!(ticket.language, Language::En);
    assert_eq!(
        ticket.due.repair,
        Some(monday_morning() + Duration::hours(20))
    );
}

async fn the_whole_lifecycle_is_recorded_in_order(store: Store, clock: TestClock, _url: String) {
    let ticket = store.create_ticket(fault("13800138001")).await.unwrap();
    let number = ticket.number.to_string();
    let steps = [
        (Action::Dispatch, Status::Dispatched),
        (Action::Accept, Status::Accepted),
        (Action::Start, Status::InProgress),
        (Action::Resolve, Status::Resolved),
        (Action::Reopen, Status::InProgress),
        (Action::Resolve, Status::Resolved),
        (Action::Confirm, Status::Confirmed),
        (Action::Close, Status::Closed),
    ];
    for (action, status) in steps {
        clock.advance(Duration::minutes(5));
        let changed = store
            .transition(&number, action, Actor::staff("wang"), None, None)
            .await
            .unwrap();
        assert_eq!(changed.status, status, "after {action}");
    }
    let ticket = store.ticket(&number).await.unwrap().unwrap();
    assert_eq!(ticket.version, 9);
    assert_eq!(
        ticket.dispatched_at,
        Some(monday_morning() + Duration::minutes(5))
    );
    assert_eq!(
        ticket.due.accept,
        Some(monday_morning() + Duration::minutes(35))
    );
    assert_eq!(
        ticket.resolved_at,
        Some(monday_morning() + Duration::minutes(30))
    );
    assert_eq!(
        ticket.due.confirm,
        Some(monday_morning() + Duration::minutes(45))
    );
    assert_eq!(
        ticket.closed_at,
        Some(monday_morning() + Duration::minutes(40))
    );
    let events = store.events(ticket.id).await.unwrap();
    let kinds: Vec<_> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.to_status))
        .collect();
    assert_eq!(kinds.len(), 9);
    assert_eq!(kinds[0], ("created", Some(Status::New)));
    assert_eq!(kinds[8], ("transition", Some(Status::Closed)));
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(events[1..].iter().all(|e| e.actor == Actor::staff("wang")));
}

async fn a_wrong_action_names_the_state_and_the_allowed_ones(
    store: Store,
    _clock: TestClock,
    _url: String,
) {
    let ticket = store.create_ticket(fault("13800138002")).await.unwrap();
    let error = store
        .transition(
            &ticket.number.to_string(),
            Action::Resolve,
            Actor::staff("li"),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot resolve a ticket that is new; from new the allowed actions are: dispatch, cancel"
    );
    let events = store.events(ticket.id).await.unwrap();
    assert_eq!(events.len(), 1, "a refused action writes nothing");
}

async fn a_stale_version_is_a_conflict_and_changes_nothing(
    store: Store,
    _clock: TestClock,
    _url: String,
) {
    let ticket = store.create_ticket(fault("13800138003")).await.unwrap();
    let number = ticket.number.to_string();
    store
        .transition(&number, Action::Dispatch, Actor::staff("a"), Some(1), None)
        .await
        .unwrap();
    let error = store
        .transition(&number, Action::Cancel, Actor::staff("b"), Some(1), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Conflict {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{error}"
    );
    let ticket = store.ticket(&number).await.unwrap().unwrap();
    assert_eq!(ticket.status, Status::Dispatched);
    assert_eq!(store.events(ticket.id).await.unwrap().len(), 2);
}

async fn concurrent_transitions_let_exactly_one_win(store: Store, _clock: TestClock, _url: String) {
    for round in 0..5 {
        let ticket = store
            .create_ticket(fault(&format!("1380013810{round}")))
            .await
            .unwrap();
        let number = ticket.number.to_string();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (store, number) = (store.clone(), number.clone());
                let action = if i % 2 == 0 {
                    Action::Dispatch
                } else {
                    Action::Cancel
                };
                tokio::spawn(async move {
                    store
                        .transition(
                            &number,
                            action,
                            Actor::staff(format!("s{i}")),
                            Some(1),
                            None,
                        )
                        .await
                })
            })
            .collect();
        let mut wins = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => wins += 1,
                Err(StoreError::Conflict { .. }) => {}
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
        let ticket = store.ticket(&number).await.unwrap().unwrap();
        assert_eq!(ticket.version, 2);
        assert_eq!(store.events(ticket.id).await.unwrap().len(), 2);
    }
}

async fn concurrent_creations_all_commit_with_distinct_numbers(
    store: Store,
    _clock: TestClock,
    _url: String,
) {
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.create_ticket(fault(&format!("1370000{i:04}"))).await })
        })
        .collect();
    let mut numbers = std::collections::HashSet::new();
    for task in tasks {
        let ticket = task.await.unwrap().unwrap();
        assert!(numbers.insert(ticket.number));
    }
    let listed = store
        .list_tickets(&TicketQuery {
            limit: Some(1000),
            ..TicketQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 200);
}

async fn breaches_are_marked_once_however_often_the_job_runs(
    store: Store,
    clock: TestClock,
    _url: String,
) {
    let ticket = store.create_ticket(fault("13800138004")).await.unwrap();
    assert!(store.mark_breaches(store.now()).await.unwrap().is_empty());
    clock.advance(Duration::minutes(16));
    // Several gateways running the job at once still record one breach.
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.mark_breaches(store.now()).await })
        })
        .collect();
    let mut recorded = Vec::new();
    for run in runs {
        recorded.extend(run.await.unwrap().unwrap());
    }
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].clock, SlaClock::Dispatch);
    assert_eq!(recorded[0].number, ticket.number.to_string());
    assert!(store.mark_breaches(store.now()).await.unwrap().is_empty());
    let breaches: Vec<_> = store
        .events(ticket.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "sla_breach")
        .collect();
    assert_eq!(breaches.len(), 1);
    assert_eq!(breaches[0].actor, Actor::system("sla"));
    // Two days later the 48-hour repair clock has run out too.
    clock.advance(Duration::hours(48));
    let later = store.mark_breaches(store.now()).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].clock, SlaClock::Repair);
}

async fn a_late_transition_records_its_breach(store: Store, clock: TestClock, _url: String) {
    let ticket = store.create_ticket(fault("13800138005")).await.unwrap();
    clock.advance(Duration::minutes(20));
    let number = ticket.number.to_string();
    store
        .transition(&number, Action::Dispatch, Actor::staff("z"), None, None)
        .await
        .unwrap();
    let kinds: Vec<_> = store
        .events(ticket.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["created", "transition", "sla_breach"]);
    // The job does not mark the same clock again.
    clock.advance(Duration::minutes(1));
    let again = store.mark_breaches(store.now()).await.unwrap();
    assert!(again.iter().all(|b| b.clock != SlaClock::Dispatch));
}

async fn lists_filter_by_phone_status_breach_and_text(
    store: Store,
    clock: TestClock,
    _url: String,
) {
    let a = store.create_ticket(fault("13600000001")).await.unwrap();
    let mut complaint = fault("13600000002");
    complaint.ticket_type = TicketType::Complaint;
    complaint.description = "100% 不满意_客服".into();
    complaint.channel = Channel::Sms;
    let b = store.create_ticket(complaint).await.unwrap();
    store
        .transition(
            &a.number.to_string(),
            Action::Cancel,
            Actor::customer("13600000001"),
            None,
            None,
        )
        .await
        .unwrap();
    let by_phone = store
        .list_tickets(&TicketQuery {
            contact_phone: Some("136-0000-0001".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_phone.iter().map(|t| t.id).collect::<Vec<_>>(), [a.id]);
    let open = store
        .list_tickets(&TicketQuery {
            open_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(open.iter().map(|t| t.id).collect::<Vec<_>>(), [b.id]);
    let text = store
        .list_tickets(&TicketQuery {
            text: Some("100%".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(text.iter().map(|t| t.id).collect::<Vec<_>>(), [b.id]);
    let none = store
        .list_tickets(&TicketQuery {
            text: Some("0_不".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty(), "_ is not a wildcard");
    let sms = store
        .list_tickets(&TicketQuery {
            channel: Some(Channel::Sms),
            status: Some(Status::New),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sms.len(), 1);
    let due_soon = |minutes| TicketQuery {
        due_before: Some(monday_morning() + Duration::minutes(minutes)),
        ..Default::default()
    };
    assert!(store.list_tickets(&due_soon(10)).await.unwrap().is_empty());
    let urgent = store.list_tickets(&due_soon(20)).await.unwrap();
    assert_eq!(urgent.iter().map(|t| t.id).collect::<Vec<_>>(), [b.id]);
    clock.advance(Duration::minutes(30));
    store.mark_breaches(store.now()).await.unwrap();
    let breached = store
        .list_tickets(&TicketQuery {
            breached: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        breached.iter().map(|t| t.id).collect::<Vec<_>>(),
        [b.id],
        "the cancelled ticket's clocks stopped"
    );
}

async fn a_mistyped_number_is_an_error_not_a_miss(store: Store, _clock: TestClock, _url: String) {
    let ticket = store.create_ticket(fault("13800138006")).await.unwrap();
    let number = ticket.number.to_string();
    // The same number with its check digit changed: always invalid.
    let last = number.as_bytes()[9] - b'0';
    let mistyped = format!("{}{}", &number[..9], (last + 1) % 10);
    assert!(matches!(
        store.ticket(&mistyped).await,
        Err(StoreError::InvalidNumber(_))
    ));
    // A well-formed number nobody was given is simply not found.
    let other = std::iter::repeat_with(|| {
        hotline::tickets::number::TicketNumber::generate(&mut rand::rng()).to_string()
    })
    .find(|candidate| *candidate != number)
    .unwrap();
    assert_eq!(store.ticket(&other).await.unwrap(), None);
}

/// The spellings one mainland mobile reaches the gateway in: from trunks,
/// SMS providers, staff and customer files.
const SPELLINGS: [&str; 7] = [
    "13800138000",
    "+8613800138000",
    "8613800138000",
    "008613800138000",
    "+86 138-0013-8000",
    "138 0013 8000",
    "(+86) 138.0013.8000",
];

async fn every_spelling_of_a_number_is_one_customer_and_one_search(
    store: Store,
    _clock: TestClock,
    _url: String,
) {
    let customer = store
        .create_customer(NewCustomer {
            name: "某某集团".into(),
            level: CustomerLevel::Group,
            language: Language::Zh,
            phones: vec!["+86 138-0013-8000".into(), "+86 (0)10 1234 5678".into()],
            products: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(customer.phones, ["13800138000", "01012345678"]);
    for spelling in SPELLINGS {
        let found = store.customer_by_phone(spelling).await.unwrap();
        assert_eq!(found.map(|c| c.id), Some(customer.id), "{spelling}");
    }
    for spelling in ["010-12345678", "861012345678", "+861012345678"] {
        let found = store.customer_by_phone(spelling).await.unwrap();
        assert_eq!(found.map(|c| c.id), Some(customer.id), "{spelling}");
    }
    let taken = store
        .create_customer(NewCustomer {
            name: "另一个".into(),
            level: CustomerLevel::LocalC,
            language: Language::Zh,
            phones: vec!["008613800138000".into()],
            products: Vec::new(),
        })
        .await
        .unwrap_err();
    assert!(
        taken.to_string().contains("already belongs to customer"),
        "{taken}"
    );
    for spelling in SPELLINGS {
        let ticket = store.create_ticket(fault(spelling)).await.unwrap();
        assert_eq!(ticket.contact_phone.as_deref(), Some("13800138000"));
        assert_eq!(ticket.customer_id, Some(customer.id), "{spelling}");
        assert_eq!(ticket.level, CustomerLevel::Group);
    }
    for spelling in SPELLINGS {
        let found = store
            .list_tickets(&TicketQuery {
                contact_phone: Some(spelling.into()),
                ..TicketQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), SPELLINGS.len(), "{spelling}");
    }
    let extension = store.create_ticket(fault("8001")).await.unwrap_err();
    assert!(
        extension.to_string().contains("cannot be called back"),
        "{extension}"
    );
}

async fn rows_written_before_the_normal_form_are_found_under_every_spelling(
    store: Store,
    _clock: TestClock,
    url: String,
) {
    // Older versions kept caller IDs and imported phones as they came.
    let ticket = store.create_ticket(fault("13900139000")).await.unwrap();
    let customer = store
        .create_customer(NewCustomer {
            name: "Acme".into(),
            level: CustomerLevel::LocalA,
            language: Language::En,
            phones: vec!["13700137000".into()],
            products: Vec::new(),
        })
        .await
        .unwrap();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    conn.execute(
        format!(
            "UPDATE tickets SET contact_phone = '+8613900139000' WHERE id = {}",
            ticket.id
        )
        .as_str(),
    )
    .await
    .unwrap();
    conn.execute("UPDATE customer_phones SET phone = '008613700137000'")
        .await
        .unwrap();
    for spelling in ["13900139000", "8613900139000", "+86 139 0013 9000"] {
        let found = store
            .list_tickets(&TicketQuery {
                contact_phone: Some(spelling.into()),
                ..TicketQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{spelling}");
    }
    for spelling in ["13700137000", "+8613700137000"] {
        let found = store.customer_by_phone(spelling).await.unwrap();
        assert_eq!(found.map(|c| c.id), Some(customer.id), "{spelling}");
    }
    let linked = store.create_ticket(fault("13700137000")).await.unwrap();
    assert_eq!(linked.customer_id, Some(customer.id));
    assert_eq!(linked.level, CustomerLevel::LocalA);
    let taken = store
        .create_customer(NewCustomer {
            name: "Copy".into(),
            level: CustomerLevel::LocalC,
            language: Language::Zh,
            phones: vec!["13700137000".into()],
            products: Vec::new(),
        })
        .await
        .unwrap_err();
    assert!(
        taken.to_string().contains("already belongs to customer"),
        "{taken}"
    );
}

async fn a_report_without_a_contact_number_is_kept_and_not_texted(
    store: Store,
    _clock: TestClock,
    _url: String,
) {
    let mut anonymous = fault("13800138000");
    anonymous.contact_phone = None;
    anonymous.actor = Actor::customer("anonymous");
    let ticket = store.create_ticket(anonymous).await.unwrap();
    assert_eq!(ticket.contact_phone, None);
    assert_eq!(ticket.customer_id, None);
    let read = store
        .ticket(&ticket.number.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.contact_phone, None, "read back without a contact");
    assert!(store.notifications(ticket.id).await.unwrap().is_empty());
    let resolved = async {
        for action in [Action::Dispatch, Action::Accept, Action::Resolve] {
            store
                .transition(
                    &ticket.number.to_string(),
                    action,
                    Actor::staff("a1"),
                    None,
                    None,
                )
                .await
                .unwrap();
        }
    };
    resolved.await;
    assert!(
        store.notifications(ticket.id).await.unwrap().is_empty(),
        "no dispatch or restoration text without a number"
    );
    let none = store
        .list_tickets(&TicketQuery {
            contact_phone: Some(String::new()),
            ..TicketQuery::default()
        })
        .await
        .unwrap();
    assert!(
        none.is_empty(),
        "an empty search finds no contactless ticket"
    );
}

async fn events_are_append_only(store: Store, _clock: TestClock, url: String) {
    let ticket = store.create_ticket(fault("13800138007")).await.unwrap();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let update = conn
        .execute(
            format!(
                "UPDATE ticket_events SET detail = 'x' WHERE ticket_id = {}",
                ticket.id
            )
            .as_str(),
        )
        .await;
    assert!(update.is_err(), "an event was changed");
    let delete = conn
        .execute(format!("DELETE FROM ticket_events WHERE ticket_id = {}", ticket.id).as_str())
        .await;
    assert!(delete.is_err(), "an event was deleted");
    assert_eq!(store.events(ticket.id).await.unwrap().len(), 1);
}

async fn a_bad_customer_file_imports_nothing(store: Store, _clock: TestClock, _url: String) {
    store
        .create_customer(NewCustomer {
            name: "existing".into(),
            level: CustomerLevel::LocalB,
            language: Language::Zh,
            phones: vec!["13500000000".into()],
            products: vec![],
        })
        .await
        .unwrap();
    let clash = "name,level,language,phones,products\n\
                 new one,local_a,zh,13500000001,\n\
                 clash,local_a,zh,13500000000,\n";
    let error = store.import_customers(clash).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("line 3: phone 13500000000 already belongs to customer"),
        "{error}"
    );
    assert_eq!(store.customer_by_phone("13500000001").await.unwrap(), None);
    let bad = "name,level,language,phones,products\nx,vip,zh,13500000002,\n";
    assert!(store.import_customers(bad).await.is_err());
    let good = "name,level,language,phones,products\n\
                甲,省级,zh,13500000003;13500000004,virtual_network:V-1\n\
                乙,local_c,en,13500000005,\n";
    assert_eq!(store.import_customers(good).await.unwrap(), 2);
    let customer = store
        .customer_by_phone("13500000004")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(customer.level, CustomerLevel::Provincial);
    assert_eq!(customer.products.len(), 1);
}

async fn notes_and_assignment_are_recorded(store: Store, _clock: TestClock, _url: String) {
    let ticket = store.create_ticket(fault("13800138008")).await.unwrap();
    let number = ticket.number.to_string();
    store
        .add_note(&number, Actor::staff("zhao"), "客户要求下午上门".into())
        .await
        .unwrap();
    let assigned = store
        .assign(
            &number,
            Some("engineer-7".into()),
            Some("network".into()),
            Actor::staff("lead"),
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!(assigned.assignee.as_deref(), Some("engineer-7"));
    assert_eq!(assigned.queue, "network");
    assert_eq!(assigned.version, 2);
    let events = store.events(ticket.id).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["created", "note", "assigned"]);
    assert_eq!(events[1].detail, "客户要求下午上门");
    assert!(store
        .add_note(&number, Actor::staff("zhao"), "  ".into())
        .await
        .is_err());
}

async fn a_survey_score_is_an_event_and_a_row_and_only_1_to_5(
    store: Store,
    _clock: TestClock,
    _url: String,
) {
    let ticket = store.create_ticket(fault("13800138009")).await.unwrap();
    let number = ticket.number.to_string();
    let event = store
        .record_survey(
            &number,
            4,
            Actor::customer("13800138009"),
            Some("agent7".into()),
        )
        .await
        .unwrap();
    assert_eq!(event.kind, "survey");
    assert_eq!(event.detail, "score 4, transferred by agent7");
    store
        .record_survey(&number, 5, Actor::customer("13800138009"), None)
        .await
        .unwrap();
    for refused in [0, 6] {
        let error = store
            .record_survey(&number, refused, Actor::customer("13800138009"), None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::Invalid {
                    field: "survey score",
                    ..
                }
            ),
            "{error}"
        );
    }
    let surveys = store.surveys(ticket.id).await.unwrap();
    let stored: Vec<(u8, Option<&str>)> = surveys
        .iter()
        .map(|s| (s.score, s.agent.as_deref()))
        .collect();
    assert_eq!(stored, [(4, Some("agent7")), (5, None)]);
    assert_eq!(surveys[0].event_id, event.id);
    assert_eq!(surveys[0].at, monday_morning());
    let events = store.events(ticket.id).await.unwrap();
    let details: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "survey")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(details, ["score 4, transferred by agent7", "score 5"]);
    assert!(matches!(
        store
            .record_survey("1234567890", 3, Actor::customer("1"), None)
            .await,
        Err(StoreError::InvalidNumber(_) | StoreError::TicketNotFound(_))
    ));
}

async fn a_new_ticket_queues_its_text_in_the_same_commit(
    store: Store,
    _clock: TestClock,
    _url: String,
) {
    let mut english = fault("+86 138-0013-8000");
    english.language = Some(Language::En);
    let mobile = store.create_ticket(english).await.unwrap();
    let queued = store.notifications(mobile.id).await.unwrap();
    assert_eq!(queued.len(), 1);
    let number = mobile.number.to_string();
    assert_eq!(queued[0].kind, "ticket_created");
    assert_eq!(queued[0].dedup_key, format!("ticket_created:{number}"));
    assert_eq!(queued[0].recipient, "13800138000", "the phone normal form");
    assert_eq!(queued[0].attempts, 0);
    assert_eq!(queued[0].sent_at, None);
    assert!(
        queued[0].body.starts_with(&format!(
            "10000: your fault report ticket {number} is open. Repair promised by "
        )),
        "{}",
        queued[0].body
    );
    let landline = store.create_ticket(fault("010-12345678")).await.unwrap();
    assert!(store.notifications(landline.id).await.unwrap().is_empty());

    // Many at once (one SQLite group commit carries them): one text each.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.create_ticket(fault(&format!("1390000{i:04}"))).await })
        })
        .collect();
    for task in tasks {
        let ticket = task.await.unwrap().unwrap();
        let queued = store.notifications(ticket.id).await.unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(Some(&queued[0].recipient), ticket.contact_phone.as_ref());
        assert!(queued[0].body.contains(&ticket.number.to_string()));
        assert!(
            queued[0].body.starts_with("【10000】"),
            "{}",
            queued[0].body
        );
    }
}

async fn concurrent_call_records_keep_their_own_tickets(
    store: Store,
    _clock: TestClock,
    _url: String,
) {
    let first = store.create_ticket(fault("13700000001")).await.unwrap();
    let second = store.create_ticket(fault("13700000002")).await.unwrap();
    let now = Utc::now();
    // Many at once (one SQLite batch takes them together), some with the
    // same Call-ID, with no ticket, one ticket or both.
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let store = store.clone();
            let tickets: Vec<String> = match i % 3 {
                0 => vec![],
                1 => vec![first.number.to_string()],
                _ => vec![first.number.to_string(), second.number.to_string()],
            };
            tokio::spawn(async move {
                let record = hotline::tickets::store::CallRecord {
                    sip_call_id: format!("call-{}", i / 2),
                    direction: hotline::tickets::store::CallDirection::Inbound,
                    caller: format!("1370000{i:04}"),
                    dialled: "10000".into(),
                    offered_at: now,
                    answered_at: Some(now),
                    ended_at: now + Duration::milliseconds(i),
                    disposition: "ivr".into(),
                    reason: None,
                    transfers: Vec::new(),
                    menu_path: vec![(now, "main".into(), format!("key {}", i % 10))],
                    tickets: tickets.clone(),
                };
                (i, tickets, store.record_call(record).await.unwrap())
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let (i, tickets, id) = task.await.unwrap();
        assert!(ids.insert(id), "ids are distinct");
        let records = store
            .calls_by_sip_id(&format!("call-{}", i / 2))
            .await
            .unwrap();
        let mine = records
            .iter()
            .find(|(caller, ..)| *caller == format!("1370000{i:04}"))
            .expect("the record is stored");
        let mut expected = tickets;
        expected.sort();
        assert_eq!(mine.4, expected, "call {i} links its own tickets");
        assert!(mine.3.contains(&format!("key {}", i % 10)));
    }
}

/// Both migrations produce the same tables with the same columns.
#[tokio::test]
async fn sqlite_and_postgres_schemas_match() {
    let Some(sqlite) = harness(Backend::Sqlite).await else {
        return;
    };
    let Some(postgres) = harness(Backend::Postgres).await else {
        sqlite.finish().await;
        return;
    };
    let mut lite = sqlx::AnyConnection::connect(&sqlite.database.url)
        .await
        .unwrap();
    let mut sqlite_columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations' \
         ORDER BY m.name, p.name",
    )
    .fetch_all(&mut lite)
    .await
    .unwrap();
    let mut pg = sqlx::AnyConnection::connect(&postgres.database.url)
        .await
        .unwrap();
    let mut postgres_columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations' \
         ORDER BY table_name, column_name",
    )
    .fetch_all(&mut pg)
    .await
    .unwrap();
    // Sorted here: the two databases collate '_' differently.
    sqlite_columns.sort();
    postgres_columns.sort();
    assert!(sqlite_columns.len() > 50);
    assert_eq!(sqlite_columns, postgres_columns);
    sqlite.finish().await;
    postgres.finish().await;
}

async fn a_transfer_context_resolves_by_its_token_until_it_expires(
    store: Store,
    clock: TestClock,
    _url: String,
) {
    let new = |caller: &str, ticket: Option<&str>| NewTransferContext {
        sip_call_id: format!("call-{caller}"),
        caller: caller.to_string(),
        level: CustomerLevel::LocalA,
        ticket_number: ticket.map(str::to_string),
        target: "agents_priority".to_string(),
        ttl: std::time::Duration::from_secs(600),
    };
    let first = store
        .create_transfer_context(new("13800138000", Some("2611230001")))
        .await
        .unwrap();
    assert_eq!(first.token.len(), 24);
    assert_eq!(first.created_at, monday_morning());
    assert_eq!(first.expires_at, monday_morning() + Duration::minutes(10));
    let found = store.transfer_context(&first.token).await.unwrap();
    assert_eq!(found.as_ref(), Some(&first));
    assert_eq!(store.transfer_context("not-a-token").await.unwrap(), None);

    clock.advance(Duration::minutes(9));
    let second = store
        .create_transfer_context(new("13900139000", None))
        .await
        .unwrap();
    assert_ne!(second.token, first.token);
    let found = store
        .transfer_context(&second.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.ticket_number, None);
    assert_eq!(found.level, CustomerLevel::LocalA);
    assert!(store
        .transfer_context(&first.token)
        .await
        .unwrap()
        .is_some());

    clock.advance(Duration::minutes(1));
    assert_eq!(
        store.transfer_context(&first.token).await.unwrap(),
        None,
        "expired after ten minutes"
    );
    assert!(store
        .transfer_context(&second.token)
        .await
        .unwrap()
        .is_some());
}
