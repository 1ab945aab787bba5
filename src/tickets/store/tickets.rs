//! Ticket operations: create, read, list, transition, assign and note.
//! Each write is one transaction that changes the ticket and appends its
//! event together.

use super::outbound::{first_attempt, insert_outbound_call, NewOutboundCall};
use super::outbox::{queue_notifications, QueuedNotification};
use super::rows::{EventRow, TicketRow, EVENT_COLUMNS, TICKET_COLUMNS};
use super::sla_job::record_breach;
use super::{bind_in_order, to_millis, Store, StoreError};
use crate::outbound::schedule::{CampaignRules, Purpose};
use crate::phone::{search_spellings, PhoneNumber};
use crate::tickets::lifecycle::{self, Action};
use crate::tickets::model::{Actor, Channel, CustomerLevel, Language, Status, TicketType};
use crate::tickets::notifications::{self, NotificationKind};
use crate::tickets::number::TicketNumber;
use crate::tickets::sla::{SlaClock, SlaPolicy};
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

/// How many fresh numbers to try before giving up (a collision needs the
/// same 9 random digits twice, so a second try is already rare).
const NUMBER_ATTEMPTS: usize = 8;
const MAX_DESCRIPTION: usize = 4_000;

/// A ticket as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub id: i64,
    pub number: TicketNumber,
    pub ticket_type: TicketType,
    /// A product category code from `sla.toml`.
    pub category: String,
    /// The line or circuit the ticket is about.
    pub service_number: Option<String>,
    pub description: String,
    /// The number to call or text back, in the phone normal form; none
    /// when the caller's number was unknown and none was keyed in (stored
    /// as an empty string).
    pub contact_phone: Option<String>,
    pub customer_id: Option<i64>,
    pub level: CustomerLevel,
    pub language: Language,
    pub channel: Channel,
    pub queue: String,
    pub assignee: Option<String>,
    pub status: Status,
    /// Bumped by every change; the optimistic-locking token.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub due: Deadlines,
}

/// The SLA deadlines, each set when its clock starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadlines {
    pub dispatch: Option<DateTime<Utc>>,
    pub accept: Option<DateTime<Utc>>,
    pub feedback: Option<DateTime<Utc>>,
    pub repair: Option<DateTime<Utc>>,
    pub confirm: Option<DateTime<Utc>>,
}

impl Ticket {
    /// The deadline of `clock` and when it was met, if it was.
    pub fn clock(&self, clock: SlaClock) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        match clock {
            SlaClock::Dispatch => (self.due.dispatch, self.dispatched_at),
            SlaClock::Accept => (self.due.accept, self.accepted_at),
            // Feedback is given when an engineer takes the ticket on.
            SlaClock::Feedback => (self.due.feedback, self.accepted_at),
            SlaClock::Repair => (self.due.repair, self.resolved_at),
            SlaClock::Confirm => (self.due.confirm, self.confirmed_at),
        }
    }
}

/// One entry in a ticket's history.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketEvent {
    pub id: i64,
    pub ticket_id: i64,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    /// `created`, `transition`, `assigned`, `note`, `sla_breach` or `survey`.
    pub kind: String,
    pub from_status: Option<Status>,
    pub to_status: Option<Status>,
    pub detail: String,
}

/// What a new ticket needs. The customer (and with it the level and
/// language) is looked up by the contact phone when not given.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub ticket_type: TicketType,
    pub category: String,
    pub service_number: Option<String>,
    pub description: String,
    /// Any spelling of a number that can be called back (stored in the
    /// phone normal form), or none: a report is never refused for want of
    /// a number, it is then only not texted.
    pub contact_phone: Option<String>,
    pub customer_id: Option<i64>,
    pub level: Option<CustomerLevel>,
    pub language: Option<Language>,
    pub channel: Channel,
    /// Default: the ticket type's code.
    pub queue: Option<String>,
    pub actor: Actor,
}

impl NewTicket {
    /// A ticket of `ticket_type` with the other fields at their defaults.
    pub fn new(
        ticket_type: TicketType,
        category: impl Into<String>,
        contact_phone: impl Into<String>,
        description: impl Into<String>,
        channel: Channel,
        actor: Actor,
    ) -> NewTicket {
        NewTicket {
            ticket_type,
            category: category.into(),
            service_number: None,
            description: description.into(),
            contact_phone: Some(contact_phone.into()),
            customer_id: None,
            level: None,
            language: None,
            channel,
            queue: None,
            actor,
        }
    }
}

/// Filters for listing tickets; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct TicketQuery {
    pub status: Option<Status>,
    /// Only tickets that still need work (see `lifecycle::is_open`).
    pub open_only: bool,
    pub level: Option<CustomerLevel>,
    pub category: Option<String>,
    pub channel: Option<Channel>,
    pub contact_phone: Option<String>,
    pub customer_id: Option<i64>,
    /// Only tickets with at least one recorded SLA breach.
    pub breached: bool,
    /// Only tickets with a clock still running whose deadline is before
    /// this time (the work queue ordered by urgency).
    pub due_before: Option<DateTime<Utc>>,
    /// Text contained in the description.
    pub text: Option<String>,
    pub limit: Option<i64>,
}

/// Whether the process clocks beyond dispatch and accept (feedback, repair,
/// confirm) apply: they are the fault clocks of the after-sales rules.
fn has_fault_clocks(ticket_type: TicketType) -> bool {
    matches!(
        ticket_type,
        TicketType::FaultReport | TicketType::TerminalRepair
    )
}

/// A `LIKE … ESCAPE '\'` pattern for text containing `text` literally.
pub(super) fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// `phone` in the one phone normal form, as a contact or customer phone
/// must be: a number a person can be called back on.
pub(super) fn contact_number(field: &'static str, phone: &str) -> Result<String, StoreError> {
    PhoneNumber::contact(phone)
        .map(|phone| phone.to_string())
        .map_err(|e| StoreError::Invalid {
            field,
            reason: e.to_string(),
        })
}

impl NewTicket {
    pub(super) fn validate(&mut self, sla: &SlaPolicy) -> Result<(), StoreError> {
        if let Some(phone) = &self.contact_phone {
            self.contact_phone = Some(contact_number("contact phone", phone)?);
        }
        if !sla.has_category(&self.category) {
            return Err(StoreError::Invalid {
                field: "category",
                reason: format!(
                    "unknown product category {:?} (known: {})",
                    self.category,
                    sla.categories().join(", ")
                ),
            });
        }
        if self.description.chars().count() > MAX_DESCRIPTION {
            return Err(StoreError::Invalid {
                field: "description",
                reason: format!("longer than {MAX_DESCRIPTION} characters"),
            });
        }
        Ok(())
    }
}

impl Store {
    /// Creates a ticket with a fresh number, its SLA deadlines and its
    /// `created` event, in one transaction.
    pub async fn create_ticket(&self, mut new: NewTicket) -> Result<Ticket, StoreError> {
        new.validate(self.sla())?;
        let customer = customer_of(self.reader(), &new).await?;
        let prepared = prepare_ticket(new, customer, self.sla(), self.now())?;
        let started = std::time::Instant::now();
        let ticket = self.inner.writer.create(prepared).await;
        self.observer().db_write("ticket", started.elapsed());
        let ticket = ticket?;
        self.observer()
            .ticket_created(ticket.channel, ticket.ticket_type);
        Ok(ticket)
    }

    /// The ticket with this number, if any. A number with a wrong check
    /// digit is an error, not "not found".
    pub async fn ticket(&self, number: &str) -> Result<Option<Ticket>, StoreError> {
        let number: TicketNumber = number.parse()?;
        let row: Option<TicketRow> = sqlx::query_as(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE number = $1"
        ))
        .bind(number.to_string())
        .fetch_optional(self.reader())
        .await?;
        row.map(Ticket::try_from).transpose()
    }

    /// Tickets matching `query`, newest first.
    pub async fn list_tickets(&self, query: &TicketQuery) -> Result<Vec<Ticket>, StoreError> {
        let mut sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE 1 = 1");
        let mut binds: Vec<Bind> = Vec::new();
        let mut add = |sql: &mut String, condition: &str, value: Bind| {
            binds.push(value);
            sql.push_str(&condition.replace('?', &format!("${}", binds.len())));
        };
        if let Some(status) = query.status {
            add(
                &mut sql,
                " AND status = ?",
                Bind::Text(status.code().into()),
            );
        }
        if query.open_only {
            sql.push_str(" AND status NOT IN ('resolved', 'confirmed', 'closed', 'cancelled')");
        }
        if let Some(level) = query.level {
            add(&mut sql, " AND level = ?", Bind::Text(level.code().into()));
        }
        if let Some(category) = &query.category {
            add(&mut sql, " AND category = ?", Bind::Text(category.clone()));
        }
        if let Some(channel) = query.channel {
            add(
                &mut sql,
                " AND channel = ?",
                Bind::Text(channel.code().into()),
            );
        }
        if let Some(phone) = &query.contact_phone {
            // Every spelling older rows may hold (crate::phone); text that
            // is no phone number matches nothing.
            let spellings = search_spellings(phone);
            match spellings.split_first() {
                None => sql.push_str(" AND 1 = 0"),
                Some((first, rest)) => {
                    add(
                        &mut sql,
                        " AND contact_phone IN (?",
                        Bind::Text(first.clone()),
                    );
                    for spelling in rest {
                        add(&mut sql, ", ?", Bind::Text(spelling.clone()));
                    }
                    sql.push(')');
                }
            }
        }
        if let Some(customer) = query.customer_id {
            add(&mut sql, " AND customer_id = ?", Bind::Int(customer));
        }
        if query.breached {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM sla_breaches b WHERE b.ticket_id = tickets.id)",
            );
        }
        if let Some(due) = query.due_before {
            let due = to_millis(due);
            add(
                &mut sql,
                " AND status NOT IN ('closed', 'cancelled') AND (\
                 (dispatched_at IS NULL AND dispatch_due < ?) OR \
                 (accepted_at IS NULL AND accept_due < ?) OR \
                 (accepted_at IS NULL AND feedback_due < ?) OR \
                 (resolved_at IS NULL AND repair_due < ?) OR \
                 (confirmed_at IS NULL AND status = 'resolved' AND confirm_due < ?))",
                Bind::Int(due),
            );
        }
        if let Some(text) = &query.text {
            add(
                &mut sql,
                " AND description LIKE ? ESCAPE '\\'",
                Bind::Text(contains_pattern(text)),
            );
        }
        let limit = query.limit.unwrap_or(100).clamp(1, 10_000);
        add(
            &mut sql,
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            Bind::Int(limit),
        );
        let mut select = sqlx::query_as::<_, TicketRow>(&sql);
        for bind in binds {
            select = match bind {
                Bind::Text(text) => select.bind(text),
                Bind::Int(value) => select.bind(value),
            };
        }
        let rows = select.fetch_all(self.reader()).await?;
        rows.into_iter().map(Ticket::try_from).collect()
    }

    /// The ticket's history, oldest first.
    pub async fn events(&self, ticket_id: i64) -> Result<Vec<TicketEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT {EVENT_COLUMNS} FROM ticket_events WHERE ticket_id = $1 ORDER BY id"
        ))
        .bind(ticket_id)
        .fetch_all(self.reader())
        .await?;
        rows.into_iter().map(TicketEvent::try_from).collect()
    }

    /// Applies a lifecycle action. With `expected_version`, the change is
    /// refused with [`StoreError::Conflict`] if the ticket changed since
    /// the caller read it; without, it applies to the current version.
    pub async fn transition(
        &self,
        number: &str,
        action: Action,
        actor: Actor,
        expected_version: Option<i64>,
        note: Option<String>,
    ) -> Result<Ticket, StoreError> {
        let number: TicketNumber = number.parse()?;
        let now = self.now();
        let store = self.clone();
        self.write(move |conn| {
            Box::pin(async move {
                let ticket = load_for_change(conn, &number, expected_version).await?;
                let inner = &store.inner;
                let effects = Effects {
                    sla: &inner.sla,
                    confirm_calls: inner.confirm_calls.as_ref(),
                    survey_calls: inner
                        .survey_calls
                        .as_ref()
                        .map(|(rules, types)| (rules, types.as_slice())),
                };
                apply_transition(conn, &ticket, action, &actor, note, effects, now).await
            })
        })
        .await
    }

    /// Assigns the ticket to a person and/or a queue.
    pub async fn assign(
        &self,
        number: &str,
        assignee: Option<String>,
        queue: Option<String>,
        actor: Actor,
        expected_version: Option<i64>,
    ) -> Result<Ticket, StoreError> {
        let number: TicketNumber = number.parse()?;
        let now = self.now();
        self.write(move |conn| {
            Box::pin(async move {
                let ticket = load_for_change(conn, &number, expected_version).await?;
                let mut changed = ticket.clone();
                if let Some(queue) = queue {
                    changed.queue = queue;
                }
                changed.assignee = assignee.or(ticket.assignee.clone());
                changed.version += 1;
                changed.updated_at = now;
                save_change(conn, &ticket, &changed).await?;
                let detail = format!(
                    "queue {}, assignee {}",
                    changed.queue,
                    changed.assignee.as_deref().unwrap_or("(none)")
                );
                insert_event(
                    conn, ticket.id, now, &actor, "assigned", None, None, &detail,
                )
                .await?;
                Ok(changed)
            })
        })
        .await
    }

    /// Adds a note to the ticket's history (allowed in every status).
    pub async fn add_note(
        &self,
        number: &str,
        actor: Actor,
        text: String,
    ) -> Result<TicketEvent, StoreError> {
        let number: TicketNumber = number.parse()?;
        if text.trim().is_empty() || text.chars().count() > MAX_DESCRIPTION {
            return Err(StoreError::Invalid {
                field: "note",
                reason: format!("must have 1 to {MAX_DESCRIPTION} characters"),
            });
        }
        let now = self.now();
        self.write(move |conn| {
            Box::pin(async move {
                let ticket = load_for_change(conn, &number, None).await?;
                let id =
                    insert_event(conn, ticket.id, now, &actor, "note", None, None, &text).await?;
                Ok(TicketEvent {
                    id,
                    ticket_id: ticket.id,
                    at: now,
                    actor,
                    kind: "note".into(),
                    from_status: None,
                    to_status: None,
                    detail: text,
                })
            })
        })
        .await
    }
}

/// A value bound to a dynamically built query.
enum Bind {
    Text(String),
    Int(i64),
}

/// The clocks an action stops.
fn clock_met_by(action: Action) -> &'static [SlaClock] {
    match action {
        Action::Dispatch => &[SlaClock::Dispatch],
        Action::Accept => &[SlaClock::Accept, SlaClock::Feedback],
        Action::Resolve => &[SlaClock::Repair],
        Action::Confirm => &[SlaClock::Confirm],
        _ => &[],
    }
}

/// What a transition consults besides the ticket.
#[derive(Clone, Copy)]
pub(super) struct Effects<'a> {
    pub sla: &'a SlaPolicy,
    /// `[outbound.confirm]` when enabled (see [`queue_ticket_call`]).
    pub confirm_calls: Option<&'a CampaignRules>,
    /// `[outbound.survey]` when enabled, with the ticket types surveyed.
    pub survey_calls: Option<(&'a CampaignRules, &'a [TicketType])>,
}

impl<'a> Effects<'a> {
    /// A transition that never resolves (texts: cancel, confirm, reopen).
    pub fn of(sla: &'a SlaPolicy) -> Effects<'a> {
        Effects {
            sla,
            confirm_calls: None,
            survey_calls: None,
        }
    }
}

/// Applies `action` to `ticket` (as just read in this transaction): the
/// change, its event, any clock it met late, and what it tells the
/// customer (a text, or a confirmation call), in the caller's transaction.
pub(super) async fn apply_transition(
    conn: &mut AnyConnection,
    ticket: &Ticket,
    action: Action,
    actor: &Actor,
    note: Option<String>,
    effects: Effects<'_>,
    now: DateTime<Utc>,
) -> Result<Ticket, StoreError> {
    let sla = effects.sla;
    let status = lifecycle::apply(ticket.status, action)?;
    let changed = apply_action(ticket, action, status, sla, now);
    save_change(conn, ticket, &changed).await?;
    insert_event(
        conn,
        ticket.id,
        now,
        actor,
        "transition",
        Some(ticket.status),
        Some(status),
        &note.unwrap_or_else(|| action.code().to_string()),
    )
    .await?;
    for clock in clock_met_by(action) {
        if let (Some(due), Some(met)) = changed.clock(*clock) {
            if met > due {
                record_breach(conn, ticket.id, *clock, due, now).await?;
            }
        }
    }
    let called = match effects.confirm_calls {
        Some(rules)
            if action == Action::Resolve && changed.ticket_type == TicketType::FaultReport =>
        {
            queue_ticket_call(conn, &changed, Purpose::Confirm, rules, sla, now).await?
        }
        _ => false,
    };
    if let Some((rules, _)) = effects
        .survey_calls
        .filter(|(_, types)| action == Action::Close && types.contains(&changed.ticket_type))
    {
        queue_ticket_call(conn, &changed, Purpose::Survey, rules, sla, now).await?;
    }
    // A confirmation call replaces the "is it restored?" text, which
    // becomes its fallback.
    let queued = transition_notification(&changed, action).filter(|_| !called);
    queue_notifications(conn, now, queued.into_iter().collect()).await?;
    Ok(changed)
}

/// Queues a call of `purpose` to the contact of `changed` (confirmation
/// after a resolution, survey after closing), one per change (keyed by the
/// new version), at the first moment inside `rules`' calling window. True
/// when queued; a ticket without a contact phone gets none.
async fn queue_ticket_call(
    conn: &mut AnyConnection,
    changed: &Ticket,
    purpose: Purpose,
    rules: &CampaignRules,
    sla: &SlaPolicy,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let Some(contact) = changed.contact_phone.as_deref() else {
        return Ok(false);
    };
    let earliest_at = first_attempt(conn, changed.id, purpose, rules, sla.calendar(), now).await?;
    let call = NewOutboundCall {
        dedup_key: format!("{}:{}:{}", purpose.code(), changed.id, changed.version),
        purpose,
        ticket_id: Some(changed.id),
        number: contact.to_string(),
        earliest_at,
    };
    insert_outbound_call(conn, &call, now).await?;
    Ok(true)
}

/// The ticket after `action` took it to `status` at `now`: timestamps set,
/// clocks started or cleared.
fn apply_action(
    ticket: &Ticket,
    action: Action,
    status: Status,
    sla: &SlaPolicy,
    now: DateTime<Utc>,
) -> Ticket {
    let mut changed = ticket.clone();
    changed.status = status;
    changed.version += 1;
    changed.updated_at = now;
    let fault = has_fault_clocks(ticket.ticket_type);
    let deadline = |clock| sla.deadline(clock, now, &ticket.category, ticket.level);
    match action {
        Action::Dispatch => {
            changed.dispatched_at = Some(now);
            changed.due.accept = deadline(SlaClock::Accept);
        }
        Action::Accept => changed.accepted_at = Some(now),
        Action::Start => {}
        Action::Resolve => {
            changed.resolved_at = Some(now);
            if fault {
                changed.due.confirm = deadline(SlaClock::Confirm);
            }
        }
        Action::Confirm => changed.confirmed_at = Some(now),
        Action::Close | Action::Cancel => changed.closed_at = Some(now),
        Action::Reopen => {
            changed.resolved_at = None;
            changed.confirmed_at = None;
            changed.due.confirm = None;
        }
    }
    changed
}

pub(super) async fn load_for_change(
    conn: &mut AnyConnection,
    number: &TicketNumber,
    expected_version: Option<i64>,
) -> Result<Ticket, StoreError> {
    let row: Option<TicketRow> = sqlx::query_as(&format!(
        "SELECT {TICKET_COLUMNS} FROM tickets WHERE number = $1"
    ))
    .bind(number.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let ticket = row
        .map(Ticket::try_from)
        .transpose()?
        .ok_or_else(|| StoreError::TicketNotFound(number.to_string()))?;
    if let Some(expected) = expected_version {
        if expected != ticket.version {
            return Err(StoreError::Conflict {
                number: number.to_string(),
                expected,
                actual: ticket.version,
            });
        }
    }
    Ok(ticket)
}

/// Writes `changed` over `before`, only if nobody changed it meanwhile.
async fn save_change(
    conn: &mut AnyConnection,
    before: &Ticket,
    changed: &Ticket,
) -> Result<(), StoreError> {
    let millis = |t: Option<DateTime<Utc>>| t.map(to_millis);
    let result = sqlx::query(
        "UPDATE tickets SET status = $1, version = $2, updated_at = $3, dispatched_at = $4, \
         accepted_at = $5, resolved_at = $6, confirmed_at = $7, closed_at = $8, accept_due = $9, \
         confirm_due = $10, queue = $11, assignee = $12 WHERE id = $13 AND version = $14",
    )
    .bind(changed.status.code())
    .bind(changed.version)
    .bind(to_millis(changed.updated_at))
    .bind(millis(changed.dispatched_at))
    .bind(millis(changed.accepted_at))
    .bind(millis(changed.resolved_at))
    .bind(millis(changed.confirmed_at))
    .bind(millis(changed.closed_at))
    .bind(millis(changed.due.accept))
    .bind(millis(changed.due.confirm))
    .bind(&changed.queue)
    .bind(&changed.assignee)
    .bind(before.id)
    .bind(before.version)
    .execute(&mut *conn)
    .await?;
    if result.rows_affected() == 0 {
        let actual: i64 = sqlx::query_scalar("SELECT version FROM tickets WHERE id = $1")
            .bind(before.id)
            .fetch_one(&mut *conn)
            .await?;
        return Err(StoreError::Conflict {
            number: before.number.to_string(),
            expected: before.version,
            actual,
        });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn insert_event(
    conn: &mut AnyConnection,
    ticket_id: i64,
    at: DateTime<Utc>,
    actor: &Actor,
    kind: &str,
    from_status: Option<Status>,
    to_status: Option<Status>,
    detail: &str,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO ticket_events (ticket_id, at, actor_kind, actor_id, kind, from_status, \
         to_status, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(ticket_id)
    .bind(to_millis(at))
    .bind(actor.kind.code())
    .bind(&actor.id)
    .bind(kind)
    .bind(from_status.map(|s| s.code()))
    .bind(to_status.map(|s| s.code()))
    .bind(detail)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// The customer a new ticket belongs to: the one named, or the one on
/// file for the contact phone. Read outside the write transaction (from
/// the read pool) so that the single SQLite writer does less per ticket; a
/// customer edited at the same moment is the only thing this can miss.
async fn customer_of(
    reader: &sqlx::AnyPool,
    new: &NewTicket,
) -> Result<Option<(i64, String, String)>, StoreError> {
    match new.customer_id {
        Some(id) => sqlx::query_as::<_, (i64, String, String)>(
            "SELECT id, level, language FROM customers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(reader)
        .await?
        .map(Some)
        .ok_or(StoreError::Invalid {
            field: "customer",
            reason: format!("no customer {id}"),
        }),
        None => match &new.contact_phone {
            Some(phone) => super::customers::customer_by_spellings(reader, phone).await,
            None => Ok(None),
        },
    }
}

/// A new ticket with everything decided but its number and id.
#[derive(Clone)]
pub(super) struct PreparedTicket {
    new: NewTicket,
    customer_id: Option<i64>,
    level: CustomerLevel,
    language: Language,
    queue: String,
    due: Deadlines,
    now: DateTime<Utc>,
    /// The SLA calendar's zone, for times in the customer's notification.
    zone: chrono_tz::Tz,
}

pub(super) fn prepare_ticket(
    new: NewTicket,
    customer: Option<(i64, String, String)>,
    sla: &SlaPolicy,
    now: DateTime<Utc>,
) -> Result<PreparedTicket, StoreError> {
    let (customer_id, level, language) = match customer {
        Some((id, level, language)) => (
            Some(id),
            new.level.unwrap_or(super::parse_code(&level)?),
            new.language.unwrap_or(super::parse_code(&language)?),
        ),
        None => (
            None,
            new.level.unwrap_or(CustomerLevel::LocalC),
            new.language.unwrap_or(Language::Zh),
        ),
    };
    let fault = has_fault_clocks(new.ticket_type);
    let deadline = |clock| sla.deadline(clock, now, &new.category, level);
    let due = Deadlines {
        dispatch: deadline(SlaClock::Dispatch),
        accept: None,
        feedback: if fault {
            deadline(SlaClock::Feedback)
        } else {
            None
        },
        repair: if fault {
            deadline(SlaClock::Repair)
        } else {
            None
        },
        confirm: None,
    };
    let queue = new
        .queue
        .clone()
        .unwrap_or_else(|| new.ticket_type.code().to_string());
    Ok(PreparedTicket {
        new,
        customer_id,
        level,
        language,
        queue,
        due,
        now,
        zone: sla.calendar().timezone(),
    })
}

const TICKET_INSERT_COLUMNS: &str = "number, ticket_type, category, service_number, description, \
    contact_phone, customer_id, level, language, channel, queue, status, version, created_at, \
    updated_at, dispatch_due, feedback_due, repair_due";
const TICKET_INSERT_PARAMS: usize = 18;
const EVENT_INSERT_PARAMS: usize = 8;

/// "($1, …, $n), ($n+1, …)" for `rows` rows of `columns` parameters.
pub(super) fn placeholders(rows: usize, columns: usize) -> String {
    let mut text = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        text.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                text.push_str(", ");
            }
            text.push_str(&format!("${}", row * columns + column + 1));
        }
        text.push(')');
    }
    text
}

/// Inserts the tickets and their `created` events with two multi-row
/// statements (whatever the count, which is what lets one SQLite commit
/// carry hundreds of tickets cheaply). Each gets a fresh random number; the
/// rare collision inserts nothing (rather than failing, which would abort
/// a PostgreSQL transaction) and is retried with another number.
pub(super) async fn insert_tickets(
    conn: &mut AnyConnection,
    prepared: &[PreparedTicket],
) -> Result<Vec<Ticket>, StoreError> {
    let mut numbers: Vec<Option<(i64, TicketNumber)>> = vec![None; prepared.len()];
    for _ in 0..NUMBER_ATTEMPTS {
        let pending: Vec<usize> = (0..prepared.len())
            .filter(|&i| numbers[i].is_none())
            .collect();
        if pending.is_empty() {
            break;
        }
        let candidates: Vec<TicketNumber> = {
            let mut rng = rand::rng();
            pending
                .iter()
                .map(|_| TicketNumber::generate(&mut rng))
                .collect()
        };
        let sql = format!(
            "INSERT INTO tickets ({TICKET_INSERT_COLUMNS}) VALUES {} \
             ON CONFLICT (number) DO NOTHING RETURNING id, number",
            placeholders(pending.len(), TICKET_INSERT_PARAMS)
        );
        let sql = bind_in_order(conn, sql);
        let mut insert = sqlx::query_as::<_, (i64, String)>(&sql);
        for (&index, number) in pending.iter().zip(&candidates) {
            let p = &prepared[index];
            let millis = |t: Option<DateTime<Utc>>| t.map(to_millis);
            insert = insert
                .bind(number.to_string())
                .bind(p.new.ticket_type.code())
                .bind(p.new.category.clone())
                .bind(p.new.service_number.clone())
                .bind(p.new.description.clone())
                .bind(p.new.contact_phone.clone().unwrap_or_default())
                .bind(p.customer_id)
                .bind(p.level.code())
                .bind(p.language.code())
                .bind(p.new.channel.code())
                .bind(p.queue.clone())
                .bind(Status::New.code())
                .bind(1_i64)
                .bind(to_millis(p.now))
                .bind(to_millis(p.now))
                .bind(millis(p.due.dispatch))
                .bind(millis(p.due.feedback))
                .bind(millis(p.due.repair));
        }
        // RETURNING order is not guaranteed: match rows by number. A number
        // drawn twice in one statement is inserted once; the other retries.
        for (id, number) in insert.fetch_all(&mut *conn).await? {
            if let Some(position) = candidates.iter().position(|c| c.to_string() == number) {
                let index = pending[position];
                numbers[index] = Some((id, candidates[position]));
            }
        }
    }
    let numbers: Vec<(i64, TicketNumber)> =
        numbers
            .into_iter()
            .collect::<Option<_>>()
            .ok_or(StoreError::Invalid {
                field: "ticket number",
                reason: "no free number found; the number space is nearly full".into(),
            })?;
    let sql = format!(
        "INSERT INTO ticket_events (ticket_id, at, actor_kind, actor_id, kind, from_status, \
         to_status, detail) VALUES {}",
        placeholders(prepared.len(), EVENT_INSERT_PARAMS)
    );
    let sql = bind_in_order(conn, sql);
    let mut events = sqlx::query(&sql);
    for (p, (id, _)) in prepared.iter().zip(&numbers) {
        events = events
            .bind(*id)
            .bind(to_millis(p.now))
            .bind(p.new.actor.kind.code())
            .bind(p.new.actor.id.clone())
            .bind("created")
            .bind(None::<String>)
            .bind(Status::New.code())
            .bind(format!("{} via {}", p.new.ticket_type, p.new.channel));
    }
    events.execute(&mut *conn).await?;
    insert_created_notifications(conn, prepared, &numbers).await?;
    Ok(prepared
        .iter()
        .zip(numbers)
        .map(|(p, (id, number))| Ticket {
            id,
            number,
            ticket_type: p.new.ticket_type,
            category: p.new.category.clone(),
            service_number: p.new.service_number.clone(),
            description: p.new.description.clone(),
            contact_phone: p.new.contact_phone.clone(),
            customer_id: p.customer_id,
            level: p.level,
            language: p.language,
            channel: p.new.channel,
            queue: p.queue.clone(),
            assignee: None,
            status: Status::New,
            version: 1,
            created_at: p.now,
            updated_at: p.now,
            dispatched_at: None,
            accepted_at: None,
            resolved_at: None,
            confirmed_at: None,
            closed_at: None,
            due: p.due,
        })
        .collect())
}

/// Queues "your ticket is open" for every new ticket (whose contact can
/// receive a text), in the transaction that creates it, so that a ticket is
/// never without its notification nor a notification without its ticket.
async fn insert_created_notifications(
    conn: &mut AnyConnection,
    prepared: &[PreparedTicket],
    numbers: &[(i64, TicketNumber)],
) -> Result<(), StoreError> {
    let Some(now) = prepared.first().map(|p| p.now) else {
        return Ok(());
    };
    let queued = prepared
        .iter()
        .zip(numbers)
        // A ticket opened by text has its number in the webhook's reply
        // already: a second text saying the same would only be noise.
        .filter(|(p, _)| p.new.channel != Channel::Sms)
        .filter_map(|(p, number)| Some((p, number, p.new.contact_phone.as_deref()?)))
        .map(|(p, (id, number), contact)| {
            let body = notifications::ticket_created(
                p.language,
                number,
                p.new.ticket_type,
                p.due.repair,
                p.zone,
            );
            QueuedNotification::about_ticket(
                NotificationKind::TicketCreated,
                &number.to_string(),
                None,
                *id,
                contact,
                body,
            )
        })
        .collect();
    queue_notifications(conn, now, queued).await
}

/// The text a transition sends the customer, if it sends one: dispatch and
/// resolve do. Keyed by the new version, so a ticket resolved, reopened and
/// resolved again is told twice, but one change never twice.
pub(super) fn transition_notification(
    changed: &Ticket,
    action: Action,
) -> Option<QueuedNotification> {
    let (kind, body) = match action {
        Action::Dispatch => (
            NotificationKind::Dispatched,
            notifications::dispatched(changed.language, &changed.number),
        ),
        Action::Resolve => (
            NotificationKind::Resolved,
            notifications::resolved(changed.language, &changed.number),
        ),
        _ => return None,
    };
    Some(QueuedNotification::about_ticket(
        kind,
        &changed.number.to_string(),
        Some(&changed.version.to_string()),
        changed.id,
        changed.contact_phone.as_deref()?,
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_numbers_are_stored_in_the_phone_normal_form() {
        assert_eq!(
            contact_number("p", "+86 138-0013 (8000)").unwrap(),
            "13800138000"
        );
        assert!(contact_number("p", "138a").is_err());
        assert!(contact_number("p", "").is_err());
        assert!(contact_number("p", "8001").is_err());
    }

    #[test]
    fn placeholders_number_every_parameter_once() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }

    #[test]
    fn only_faults_carry_repair_clocks() {
        assert!(has_fault_clocks(TicketType::FaultReport));
        assert!(!has_fault_clocks(TicketType::Complaint));
    }
}
