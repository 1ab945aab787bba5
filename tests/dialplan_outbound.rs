//! The shipped outbound plan (dialplans/outbound.toml), simulated path by
//! path against a scratch SQLite store. The confirmation call: the
//! customer of a resolved fault ticket hears the number, presses 1 and the
//! ticket is confirmed (its confirm clock met), or 2 and it goes back to
//! repair with an event saying why; silence asks once more, then ends with
//! nothing changed; a ticket that cannot be confirmed, or no ticket, gets
//! a polite goodbye. The callback: who calls, then the agents.

mod support;

use hotline::ivr::engine::TransferFailure;
use hotline::ivr::transferred::{TicketReference, TransferContext};
use hotline::tickets::lifecycle::Action;
use hotline::tickets::model::{Actor, Channel, Status, TicketType};
use hotline::tickets::store::{NewTicket, Store};
use std::path::PathBuf;
use support::dialplan::{
    assert_every_outcome_walked, ends_with_hangup, heard, scratch, script, shipped, simulate_call,
    simulate_script,
};

const CUSTOMER: &str = "13800138000";

fn plan() -> PathBuf {
    shipped("outbound.toml")
}

/// A fault ticket of the customer's, repaired and resolved.
async fn resolved_ticket(store: &Store) -> String {
    let number = store
        .create_ticket(NewTicket::new(
            TicketType::FaultReport,
            "virtual_network",
            CUSTOMER,
            "line down",
            Channel::Staff,
            Actor::staff("agent7"),
        ))
        .await
        .unwrap()
        .number
        .to_string();
    for action in [
        Action::Dispatch,
        Action::Accept,
        Action::Start,
        Action::Resolve,
    ] {
        store
            .transition(&number, action, Actor::staff("agent7"), None, None)
            .await
            .unwrap();
    }
    number
}

/// What the outbound worker starts the IVR with.
fn outbound(number: &str) -> TransferContext {
    TransferContext {
        ticket: TicketReference::Valid(number.parse().unwrap()),
        referred_by: Some("outbound".into()),
    }
}

async fn confirmation_call(store: &Store, transfer: TransferContext, keys: &str) -> Vec<String> {
    simulate_call(store, &plan(), CUSTOMER, "confirm", keys, transfer).await
}

#[tokio::test]
async fn the_customer_presses_1_and_the_ticket_is_confirmed() {
    let s = scratch().await;
    let number = resolved_ticket(&s.store).await;
    let t = confirmation_call(&s.store, outbound(&number), "1").await;
    let h = heard(&t);
    assert_eq!(
        h[0], "zh/outbound/confirm_intro zh/outbound/confirm_ask",
        "who calls, (the ticket number), the question"
    );
    assert!(
        t.iter().any(|line| line.contains(&format!(
            "zh/digits/{}",
            number.chars().last().unwrap_or('0')
        ))),
        "the ticket number is said: {t:#?}"
    );
    assert_eq!(h[1..], ["zh/outbound/confirmed"]);
    ends_with_hangup(&t);
    let ticket = s.store.ticket(&number).await.unwrap().unwrap();
    assert_eq!(ticket.status, Status::Confirmed);
    assert!(ticket.confirmed_at.is_some(), "the confirm clock is met");
}

#[tokio::test]
async fn the_customer_presses_2_and_the_ticket_goes_back_to_repair() {
    let s = scratch().await;
    let number = resolved_ticket(&s.store).await;
    let t = confirmation_call(&s.store, outbound(&number), "2").await;
    assert_eq!(heard(&t)[1..], ["zh/outbound/reopened"]);
    ends_with_hangup(&t);
    let ticket = s.store.ticket(&number).await.unwrap().unwrap();
    assert_eq!(ticket.status, Status::InProgress);
    let events = s.store.events(ticket.id).await.unwrap();
    let last = events.last().unwrap();
    assert!(
        last.detail.contains("not restored"),
        "the reopen event says why: {last:?}"
    );
}

#[tokio::test]
async fn silence_asks_twice_then_says_goodbye_and_changes_nothing() {
    let s = scratch().await;
    let number = resolved_ticket(&s.store).await;
    let t = confirmation_call(&s.store, outbound(&number), "").await;
    let h = heard(&t);
    assert_eq!(h.len(), 3, "{h:?}");
    assert!(
        h[1].starts_with("zh/no_input zh/outbound/confirm_intro"),
        "the question again: {h:?}"
    );
    assert_eq!(h[2], "zh/goodbye");
    ends_with_hangup(&t);
    let ticket = s.store.ticket(&number).await.unwrap().unwrap();
    assert_eq!(ticket.status, Status::Resolved);
}

#[tokio::test]
async fn an_already_confirmed_ticket_is_not_confirmed_again() {
    let s = scratch().await;
    let number = resolved_ticket(&s.store).await;
    confirmation_call(&s.store, outbound(&number), "1").await;
    let t = confirmation_call(&s.store, outbound(&number), "1").await;
    assert_eq!(heard(&t)[1..], ["zh/outbound/unavailable"]);
    ends_with_hangup(&t);
}

#[tokio::test]
async fn without_a_ticket_the_customer_hears_a_goodbye() {
    let s = scratch().await;
    let t = confirmation_call(&s.store, TransferContext::default(), "1").await;
    assert_eq!(heard(&t), ["zh/outbound/unavailable"]);
    ends_with_hangup(&t);
}

#[tokio::test]
async fn every_path_of_the_confirmation_call_is_walked() {
    let s = scratch().await;
    let mut transcripts = Vec::new();
    for keys in ["1", "2", "9,9", ""] {
        let number = resolved_ticket(&s.store).await;
        transcripts.push(confirmation_call(&s.store, outbound(&number), keys).await);
    }
    let confirmed = resolved_ticket(&s.store).await;
    confirmation_call(&s.store, outbound(&confirmed), "1").await;
    transcripts.push(confirmation_call(&s.store, outbound(&confirmed), "1").await);
    transcripts.push(confirmation_call(&s.store, outbound(&confirmed), "2").await);
    transcripts.push(confirmation_call(&s.store, TransferContext::default(), "").await);
    // The callback: its transfer succeeds or fails.
    let number = resolved_ticket(&s.store).await;
    for transfers in [TransferFailure::Busy, TransferFailure::Unavailable] {
        let mut call = script(CUSTOMER, "callback", "");
        call.transfers = transfers;
        call.transfer = outbound(&number);
        transcripts.push(simulate_script(&s.store, &plan(), call).await);
    }
    for t in &transcripts {
        ends_with_hangup(t);
    }
    assert_every_outcome_walked(&plan(), &transcripts, &[]);
}
