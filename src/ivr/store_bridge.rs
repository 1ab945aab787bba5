//! Carries out the engine's store requests against the ticket store, and
//! turns the results into the facts a dialplan can say, as much of them
//! as the privacy rule lets the asker hear (`tickets::privacy`); looks up
//! the ticket a transferred call names before its engine starts (the
//! agent who names it vouches for the caller). Used by the call glue and
//! by `dialplan simulate` alike.

use super::dialplan::CustomerAction;
use super::engine::{
    Asker, StoreReply, StoreRequest, TicketDetails, TicketFacts, Transferred, TransferredTicket,
};
use super::transferred::{TicketReference, TransferContext};
use crate::phone::PhoneNumber;
use crate::tickets::lifecycle::Action;
use crate::tickets::model::{Actor, Channel};
use crate::tickets::privacy::{self, Disclosure};
use crate::tickets::store::{NewTicket, Store, StoreError, Ticket, TicketQuery};

/// How many open tickets a caller lookup counts at most.
const OPEN_TICKETS_LIMIT: i64 = 20;

/// What `asker` may hear of `ticket`.
pub fn facts(ticket: &Ticket, asker: &Asker) -> TicketFacts {
    let disclosure = privacy::disclosure(
        ticket.contact_phone.as_deref(),
        asker.phone.as_ref(),
        asker.vouched,
    );
    TicketFacts {
        number: ticket.number.to_string(),
        status: ticket.status.code().to_string(),
        details: (disclosure == Disclosure::Details).then(|| TicketDetails {
            ticket_type: ticket.ticket_type.code().to_string(),
            category: ticket.category.clone(),
            created_at: ticket.created_at,
            repair_due: ticket.due.repair,
        }),
    }
}

/// The caller, asking about the tickets that carry their number.
fn own(phone: &str) -> Asker {
    Asker {
        phone: PhoneNumber::parse(phone).ok(),
        vouched: false,
    }
}

/// What a transferred call comes with, its ticket looked up (`None` for a
/// call that was not transferred). A number with a wrong check digit is
/// not looked up; it and an unknown number are logged and load nothing.
pub async fn arrival(store: &Store, context: &TransferContext) -> Option<Transferred> {
    if !context.is_transfer() {
        return None;
    }
    let ticket = match &context.ticket {
        TicketReference::None => None,
        TicketReference::Valid(number) => {
            let number = number.to_string();
            let request = StoreRequest::LookupNumber {
                number: number.clone(),
                asker: Asker {
                    phone: None,
                    vouched: true,
                },
            };
            let lookup = execute(store, request).await;
            match &lookup {
                StoreReply::NotFound => {
                    tracing::info!(ticket = %number, "transferred call names an unknown ticket; none loaded")
                }
                StoreReply::Failed(reason) => {
                    tracing::warn!(ticket = %number, %reason, "cannot load the transferred call's ticket")
                }
                StoreReply::Ticket { .. } | StoreReply::Saved { .. } => {}
            }
            Some(TransferredTicket {
                reference: number,
                lookup: Some(lookup),
            })
        }
        TicketReference::Mistyped {
            source,
            text,
            reason,
        } => {
            tracing::info!(%source, reference = %text, %reason, "transferred call names a mistyped ticket number; none loaded");
            Some(TransferredTicket {
                reference: text.clone(),
                lookup: None,
            })
        }
    };
    Some(Transferred {
        by: context.referred_by.clone(),
        ticket,
    })
}

/// Runs one request. Failures become `StoreReply::Failed` with the reason,
/// which the dialplan's `on_error` path handles.
pub async fn execute(store: &Store, request: StoreRequest) -> StoreReply {
    match run(store, request).await {
        Ok(reply) => reply,
        Err(e) => StoreReply::Failed(e.to_string()),
    }
}

async fn run(store: &Store, request: StoreRequest) -> Result<StoreReply, StoreError> {
    match request {
        StoreRequest::CreateTicket {
            ticket_type,
            category,
            service_number,
            description,
            contact_phone,
            reporter,
            language,
        } => {
            let mut new = NewTicket::new(
                ticket_type,
                category,
                String::new(),
                description,
                Channel::Voice,
                Actor::customer(&reporter),
            );
            new.contact_phone = contact_phone;
            new.service_number = service_number;
            new.language = Some(language);
            let ticket = store.create_ticket(new).await?;
            // The caller just reported it: they hear it in full, with or
            // without a number.
            let creator = Asker {
                phone: None,
                vouched: true,
            };
            reply(store, &ticket, &creator).await
        }
        StoreRequest::LookupNumber { number, asker } => match store.ticket(&number).await {
            Ok(Some(ticket)) => reply(store, &ticket, &asker).await,
            Ok(None) | Err(StoreError::InvalidNumber(_)) => Ok(StoreReply::NotFound),
            Err(e) => Err(e),
        },
        StoreRequest::LookupCaller { phone, position } => {
            let open = open_tickets(store, &phone).await?;
            Ok(match open.get(position) {
                Some(ticket) => StoreReply::Ticket {
                    ticket: facts(ticket, &own(&phone)),
                    open_count: open.len(),
                    position: Some(position + 1),
                },
                None => StoreReply::NotFound,
            })
        }
        StoreRequest::AddNote {
            number,
            text,
            asker,
        } => {
            let event = store.add_note(&number, Actor::system("ivr"), text).await?;
            ticket_of(store, number, event.ticket_id, &asker).await
        }
        StoreRequest::RecordSurvey {
            number,
            score,
            phone,
            agent,
            asker,
        } => {
            let event = store
                .record_survey(&number, score, Actor::customer(&phone), agent)
                .await?;
            ticket_of(store, number, event.ticket_id, &asker).await
        }
        StoreRequest::QueueCallback {
            number,
            phone,
            reporter,
            asker,
        } => {
            store
                .queue_callback(&number, &phone, Actor::customer(&reporter))
                .await?;
            let ticket = store
                .ticket(&number)
                .await?
                .ok_or(StoreError::TicketNotFound(number))?;
            Ok(StoreReply::Ticket {
                ticket: facts(&ticket, &asker),
                open_count: 0,
                position: None,
            })
        }
        // The runner keeps recordings itself (it holds the audio).
        StoreRequest::SaveRecording { .. } => Ok(StoreReply::Failed(
            "a recording is kept by the IVR runner".into(),
        )),
        StoreRequest::ApplyAction {
            number,
            action,
            phone,
            asker,
        } => {
            let (action, note) = match action {
                CustomerAction::Confirm => (
                    Action::Confirm,
                    "the customer confirmed by phone that service is restored",
                ),
                CustomerAction::Reopen => (
                    Action::Reopen,
                    "the customer said by phone that service is not restored",
                ),
            };
            let ticket = store
                .transition(
                    &number,
                    action,
                    Actor::customer(&phone),
                    None,
                    Some(note.to_string()),
                )
                .await?;
            Ok(StoreReply::Ticket {
                ticket: facts(&ticket, &asker),
                open_count: 0,
                position: None,
            })
        }
    }
}

/// `ticket` as the engine's reply to `asker`, with its contact's open
/// tickets counted when the details may be heard.
async fn reply(store: &Store, ticket: &Ticket, asker: &Asker) -> Result<StoreReply, StoreError> {
    let facts = facts(ticket, asker);
    let open_count = match (&facts.details, &ticket.contact_phone) {
        (Some(_), Some(contact)) => open_count(store, contact).await?,
        _ => 0,
    };
    Ok(StoreReply::Ticket {
        ticket: facts,
        open_count,
        position: None,
    })
}

/// The ticket an event was just written for, as the engine's reply.
async fn ticket_of(
    store: &Store,
    number: String,
    id: i64,
    asker: &Asker,
) -> Result<StoreReply, StoreError> {
    let ticket = store
        .ticket(&number)
        .await?
        .filter(|t| t.id == id)
        .ok_or(StoreError::TicketNotFound(number))?;
    Ok(StoreReply::Ticket {
        ticket: facts(&ticket, asker),
        open_count: 0,
        position: None,
    })
}

async fn open_tickets(store: &Store, phone: &str) -> Result<Vec<Ticket>, StoreError> {
    store
        .list_tickets(&TicketQuery {
            contact_phone: Some(phone.to_string()),
            open_only: true,
            limit: Some(OPEN_TICKETS_LIMIT),
            ..TicketQuery::default()
        })
        .await
}

async fn open_count(store: &Store, phone: &str) -> Result<usize, StoreError> {
    Ok(open_tickets(store, phone).await?.len())
}
