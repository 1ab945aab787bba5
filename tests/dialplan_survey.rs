//! The shipped satisfaction survey (dialplans/survey.toml), simulated path
//! by path against a scratch SQLite store: calls an agent transferred in
//! with a ticket rate it 1 to 5 and the score is stored on that ticket;
//! wrong keys and silence are asked again, then thanked with nothing
//! stored; calls without a ticket hear a polite goodbye.

mod support;

use hotline::ivr::transferred::{TicketReference, TransferContext};
use hotline::tickets::model::{Actor, Channel, TicketType};
use hotline::tickets::number::TicketNumberError;
use hotline::tickets::store::{NewTicket, Store};
use sqlx::Connection;
use std::path::PathBuf;
use support::dialplan::{
    assert_every_outcome_walked, ends_with_hangup, heard, scratch, shipped, simulate_call, Scratch,
};

const CALLER: &str = "13800138000";

fn plan() -> PathBuf {
    shipped("survey.toml")
}

async fn ticket(store: &Store) -> String {
    store
        .create_ticket(NewTicket::new(
            TicketType::FaultReport,
            "virtual_network",
            CALLER,
            "line down",
            Channel::Staff,
            Actor::staff("agent7"),
        ))
        .await
        .unwrap()
        .number
        .to_string()
}

/// What an agent's transfer with this ticket number says.
fn with_ticket(number: &str) -> TransferContext {
    TransferContext {
        ticket: TicketReference::Valid(number.parse().unwrap()),
        referred_by: Some("agent7".into()),
    }
}

async fn survey(store: &Store, transfer: TransferContext, keys: &str) -> Vec<String> {
    simulate_call(store, &plan(), CALLER, "survey", keys, transfer).await
}

/// The ticket's survey events' details and its stored scores.
async fn scores(store: &Store, number: &str) -> (Vec<String>, Vec<u8>) {
    let ticket = store.ticket(number).await.unwrap().unwrap();
    let events = store
        .events(ticket.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "survey")
        .map(|e| e.detail)
        .collect();
    let scores = store
        .surveys(ticket.id)
        .await
        .unwrap()
        .iter()
        .map(|s| s.score)
        .collect();
    (events, scores)
}

#[tokio::test]
async fn a_transferred_caller_rates_the_ticket_and_is_thanked() {
    let s = scratch().await;
    let number = ticket(&s.store).await;
    let t = survey(&s.store, with_ticket(&number), "4").await;
    assert_eq!(
        heard(&t),
        ["zh/survey/welcome", "zh/survey/rate", "zh/survey/thanks"]
    );
    ends_with_hangup(&t);
    let (events, stored) = scores(&s.store, &number).await;
    assert_eq!(events, ["score 4, transferred by agent7"]);
    assert_eq!(stored, [4]);
    let ticket = s.store.ticket(&number).await.unwrap().unwrap();
    let survey = &s.store.surveys(ticket.id).await.unwrap()[0];
    assert_eq!(survey.agent.as_deref(), Some("agent7"));
    let path = t.iter().find(|l| l.starts_with("path: ")).unwrap();
    assert!(
        path.contains(&format!(
            "survey_start: transferred in by agent7 with ticket {number}"
        )),
        "{path}"
    );
}

#[tokio::test]
async fn every_key_from_1_to_5_stores_its_own_score() {
    let s = scratch().await;
    let number = ticket(&s.store).await;
    for key in ["1", "2", "3", "4", "5"] {
        survey(&s.store, with_ticket(&number), key).await;
    }
    assert_eq!(scores(&s.store, &number).await.1, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn a_wrong_key_asks_again() {
    let s = scratch().await;
    let number = ticket(&s.store).await;
    let h = heard(&survey(&s.store, with_ticket(&number), "9,5").await);
    assert_eq!(
        h[1..],
        [
            "zh/survey/rate",
            "zh/invalid_key zh/survey/rate",
            "zh/survey/thanks"
        ]
    );
    assert_eq!(scores(&s.store, &number).await.1, [5]);
}

#[tokio::test]
async fn retries_exhausted_thanks_the_caller_and_stores_nothing() {
    let s = scratch().await;
    let number = ticket(&s.store).await;
    let t = survey(&s.store, with_ticket(&number), "").await;
    assert_eq!(
        heard(&t)[1..],
        [
            "zh/survey/rate",
            "zh/no_input zh/survey/rate",
            "zh/no_input zh/survey/rate",
            "zh/goodbye"
        ]
    );
    ends_with_hangup(&t);
    assert_eq!(scores(&s.store, &number).await, (vec![], vec![]));
}

#[tokio::test]
async fn without_a_ticket_the_caller_hears_a_polite_goodbye_and_nothing_is_stored() {
    let s = scratch().await;
    let number = ticket(&s.store).await;
    let mut mistyped: Vec<char> = number.chars().collect();
    mistyped[9] = char::from_digit((mistyped[9].to_digit(10).unwrap() + 1) % 10, 10).unwrap();
    let mistyped: String = mistyped.into_iter().collect();
    let nobody = {
        // A valid number that no ticket has.
        let other = ticket(&scratch().await.store).await;
        assert_ne!(other, number);
        other
    };
    for transfer in [
        TransferContext::default(),
        TransferContext {
            ticket: TicketReference::Mistyped {
                source: "X-Ticket-Number",
                text: mistyped,
                reason: TicketNumberError::CheckDigit,
            },
            referred_by: Some("agent7".into()),
        },
        with_ticket(&nobody),
    ] {
        let t = survey(&s.store, transfer.clone(), "4").await;
        assert_eq!(heard(&t), ["zh/survey/unavailable"], "{transfer:?}");
        ends_with_hangup(&t);
    }
    assert_eq!(scores(&s.store, &number).await, (vec![], vec![]));
}

/// A scratch store whose survey table is gone: storing a score fails,
/// while the ticket itself still loads.
async fn survey_table_dropped(scratch: &Scratch) {
    let url = format!("sqlite://{}/sim.db", scratch.dir.path().display());
    let mut connection = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::query("DROP TABLE ticket_surveys")
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
}

#[tokio::test]
async fn a_store_failure_while_storing_the_score_says_the_call_cannot_be_rated() {
    let s = scratch().await;
    let number = ticket(&s.store).await;
    survey_table_dropped(&s).await;
    let t = survey(&s.store, with_ticket(&number), "3").await;
    assert_eq!(
        heard(&t),
        [
            "zh/survey/welcome",
            "zh/survey/rate",
            "zh/survey/unavailable"
        ]
    );
    let ticket = s.store.ticket(&number).await.unwrap().unwrap();
    let events = s.store.events(ticket.id).await.unwrap();
    assert!(
        events.iter().all(|e| e.kind != "survey"),
        "the event rolled back with the score: {events:?}"
    );
}

#[tokio::test]
async fn every_key_timeout_wrong_key_case_and_store_result_of_the_survey_is_walked() {
    let s = scratch().await;
    let number = ticket(&s.store).await;
    let mut transcripts = Vec::new();
    for keys in ["1", "2", "3", "4", "5", "9,9,9", ""] {
        transcripts.push(survey(&s.store, with_ticket(&number), keys).await);
    }
    transcripts.push(survey(&s.store, TransferContext::default(), "").await);
    let failing = scratch().await;
    let other = ticket(&failing.store).await;
    survey_table_dropped(&failing).await;
    transcripts.push(survey(&failing.store, with_ticket(&other), "4").await);
    for t in &transcripts {
        ends_with_hangup(t);
    }
    assert_every_outcome_walked(&plan(), &transcripts, &[]);
}
