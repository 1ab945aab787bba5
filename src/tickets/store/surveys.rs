//! Satisfaction surveys (满意度调查): a caller's score for a ticket, stored
//! as a `survey` event in the ticket's history and as a row of
//! `ticket_surveys` (for averages per agent and period), in one
//! transaction. Allowed in every status, like a note.

use super::tickets::{insert_event, load_for_change, TicketEvent};
use super::{from_millis, to_millis, Store, StoreError};
use crate::tickets::model::Actor;
use crate::tickets::number::TicketNumber;
use chrono::{DateTime, Utc};

/// The scores a survey takes.
pub const SURVEY_SCORES: std::ops::RangeInclusive<u8> = 1..=5;

/// The longest agent name kept (a Referred-By is the peer's to choose).
const MAX_AGENT: usize = 128;

/// One score as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survey {
    pub ticket_id: i64,
    /// The `survey` event in the ticket's history.
    pub event_id: i64,
    pub score: u8,
    /// Who transferred the caller to the survey, when known.
    pub agent: Option<String>,
    pub at: DateTime<Utc>,
}

impl Store {
    /// Records `score` (1–5) for ticket `number`, given by `actor`, after a
    /// call `agent` transferred (if known). Returns the history event.
    pub async fn record_survey(
        &self,
        number: &str,
        score: u8,
        actor: Actor,
        agent: Option<String>,
    ) -> Result<TicketEvent, StoreError> {
        let number: TicketNumber = number.parse()?;
        if !SURVEY_SCORES.contains(&score) {
            return Err(StoreError::Invalid {
                field: "survey score",
                reason: format!("{score} is not 1 to 5"),
            });
        }
        if agent
            .as_ref()
            .is_some_and(|a| a.chars().count() > MAX_AGENT)
        {
            return Err(StoreError::Invalid {
                field: "survey agent",
                reason: format!("longer than {MAX_AGENT} characters"),
            });
        }
        let detail = match &agent {
            Some(agent) => format!("score {score}, transferred by {agent}"),
            None => format!("score {score}"),
        };
        let now = self.now();
        self.write(move |conn| {
            Box::pin(async move {
                let ticket = load_for_change(conn, &number, None).await?;
                let id = insert_event(conn, ticket.id, now, &actor, "survey", None, None, &detail)
                    .await?;
                sqlx::query(
                    "INSERT INTO ticket_surveys (ticket_id, event_id, score, agent, at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(ticket.id)
                .bind(id)
                .bind(i64::from(score))
                .bind(agent.as_deref())
                .bind(to_millis(now))
                .execute(&mut *conn)
                .await?;
                Ok(TicketEvent {
                    id,
                    ticket_id: ticket.id,
                    at: now,
                    actor,
                    kind: "survey".into(),
                    from_status: None,
                    to_status: None,
                    detail,
                })
            })
        })
        .await
    }

    /// The scores given for a ticket, oldest first.
    pub async fn surveys(&self, ticket_id: i64) -> Result<Vec<Survey>, StoreError> {
        let rows: Vec<(i64, i64, i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT ticket_id, event_id, score, agent, at FROM ticket_surveys \
             WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(ticket_id)
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(
                |(ticket_id, event_id, score, agent, at)| -> Result<Survey, StoreError> {
                    Ok(Survey {
                        ticket_id,
                        event_id,
                        score: u8::try_from(score)
                            .ok()
                            .filter(|s| SURVEY_SCORES.contains(s))
                            .ok_or_else(|| StoreError::Corrupt(format!("survey score {score}")))?,
                        agent,
                        at: from_millis(at)?,
                    })
                },
            )
            .collect()
    }
}
