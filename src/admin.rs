//! Command-line administration: `migrate`, `ticket …`, `customers import`,
//! `token create|list|revoke`, `dialplan check|simulate` and `report indicators`. Each command opens the configured database, does one
//! thing and prints a plain-text answer; the text is built here (and tested)
//! so that `main` stays a thin parser. Times are shown in the SLA
//! calendar's time zone with their offset, as the console and the texts to
//! customers show them, and tables are aligned by display width
//! (`admin::table`).

mod table;

use crate::config::Config;
use crate::outbound::schedule::Purpose;
use crate::tickets::lifecycle::{allowed_actions, Action};
use crate::tickets::model::{
    Actor, Channel, CustomerLevel, Language, StaffRole, Status, TicketType,
};
use crate::tickets::sla::SlaClock;
use crate::tickets::store::{
    NewTicket, Store, StoreError, StoreObserver, StoreOptions, Ticket, TicketEvent, Unobserved,
};
use anyhow::Context;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use std::fmt::Write;
use std::sync::Arc;
use table::{local_time, printable, truncate, Table};

/// Opens the configured store (without migrating), reporting to nobody.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    open_observed_store(config, Arc::new(Unobserved)).await
}

/// Opens the configured store (without migrating), reporting its work to
/// `observer`.
pub async fn open_observed_store(
    config: &Config,
    observer: Arc<dyn StoreObserver>,
) -> anyhow::Result<Store> {
    let sla = config
        .tickets
        .sla_policy()
        .context("cannot load the SLA rules")?;
    let mut options = StoreOptions::new(Arc::new(sla));
    options.max_connections = config.database.max_connections;
    options.writers = config.database.writers;
    options.observer = observer;
    let confirm = &config.outbound.confirm;
    options.confirm_calls = confirm
        .enabled
        .then(|| confirm.rules(Purpose::Confirm))
        .flatten();
    let callback = &config.outbound.callback;
    options.callback_calls = callback
        .enabled
        .then(|| callback.rules(Purpose::Callback))
        .flatten();
    let survey = &config.outbound.survey;
    options.survey_calls = survey
        .enabled
        .then(|| survey.rules(Purpose::Survey).zip(survey.types()))
        .flatten();
    Store::open(&config.database.url, options)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                crate::redact::url(&config.database.url)
            )
        })
}

/// Parses a vocabulary code for the command line.
pub fn parse_code<T: std::str::FromStr>(text: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| e.to_string())
}

/// A time given on the command line: an instant (RFC 3339, with its
/// offset), or a date, which means midnight in the SLA calendar's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CliTime {
    At(DateTime<Utc>),
    Date(NaiveDate),
}

impl CliTime {
    /// The instant: a date's start of day in `zone` (the first instant of
    /// it where a DST change skips midnight).
    pub fn resolve(self, zone: Tz) -> DateTime<Utc> {
        match self {
            CliTime::At(at) => at,
            CliTime::Date(date) => {
                let mut local = date.and_time(chrono::NaiveTime::MIN);
                // A zone whose clocks skip midnight: the day starts later.
                for _ in 0..24 * 4 {
                    if let Some(at) = zone.from_local_datetime(&local).earliest() {
                        return at.with_timezone(&Utc);
                    }
                    local += chrono::Duration::minutes(15);
                }
                date.and_time(chrono::NaiveTime::MIN).and_utc()
            }
        }
    }
}

/// A time on the command line: RFC 3339, or a date (midnight in the SLA
/// calendar's time zone, resolved with [`CliTime::resolve`]).
pub fn parse_time(text: &str) -> Result<CliTime, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(CliTime::At(time.with_timezone(&Utc)));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(CliTime::Date)
        .map_err(|_| format!("{text:?} is neither an RFC 3339 time nor a date (YYYY-MM-DD)"))
}

/// The SLA calendar's time zone: the one the CLI shows times in.
fn zone_of(store: &Store) -> Tz {
    store.sla().calendar().timezone()
}

/// How `report indicators` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Json,
    Csv,
}

/// `report indicators`: the indicators of [from, to) (defaults: the 24
/// hours up to now) as pretty JSON or CSV, times in the SLA calendar's
/// zone with their offset.
pub async fn indicators(
    store: &Store,
    from: Option<CliTime>,
    to: Option<CliTime>,
    format: ReportFormat,
) -> anyhow::Result<String> {
    let zone = zone_of(store);
    let to = to.map_or_else(|| store.now(), |to| to.resolve(zone));
    let from = from.map_or(to - chrono::Duration::hours(24), |from| from.resolve(zone));
    let report = store.indicators(from, to).await?;
    Ok(match format {
        ReportFormat::Json => {
            let mut json = serde_json::to_value(&report)?;
            local_times_in(&mut json, zone);
            let mut text = serde_json::to_string_pretty(&json)?;
            text.push('\n');
            text
        }
        ReportFormat::Csv => crate::tickets::report::indicators_csv(&report, zone),
    })
}

/// Every RFC 3339 UTC time in `json` (the report's range and hours)
/// rewritten in `zone`, with its offset.
fn local_times_in(json: &mut serde_json::Value, zone: Tz) {
    match json {
        serde_json::Value::String(text) if text.ends_with('Z') => {
            if let Ok(at) = DateTime::parse_from_rfc3339(text) {
                *text = at
                    .with_timezone(&zone)
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                local_times_in(item, zone);
            }
        }
        serde_json::Value::Object(fields) => {
            for value in fields.values_mut() {
                local_times_in(value, zone);
            }
        }
        _ => {}
    }
}

/// Filters for `ticket list`.
#[derive(Debug, Default, clap::Args)]
pub struct ListFilter {
    #[arg(long, value_parser = parse_code::<Status>)]
    pub status: Option<Status>,
    /// Only tickets that still need work.
    #[arg(long = "open")]
    pub open_only: bool,
    /// Contact phone number.
    #[arg(long)]
    pub phone: Option<String>,
    #[arg(long, value_parser = parse_code::<CustomerLevel>)]
    pub level: Option<CustomerLevel>,
    #[arg(long)]
    pub category: Option<String>,
    #[arg(long, value_parser = parse_code::<Channel>)]
    pub channel: Option<Channel>,
    /// Only tickets with a breached SLA clock.
    #[arg(long)]
    pub breached: bool,
    /// Text in the description.
    #[arg(long)]
    pub text: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

pub async fn list(store: &Store, filter: ListFilter) -> Result<String, StoreError> {
    let query = crate::tickets::store::TicketQuery {
        status: filter.status,
        open_only: filter.open_only,
        level: filter.level,
        category: filter.category,
        channel: filter.channel,
        contact_phone: filter.phone,
        customer_id: None,
        breached: filter.breached,
        due_before: None,
        text: filter.text,
        limit: Some(filter.limit),
    };
    let tickets = store.list_tickets(&query).await?;
    Ok(ticket_table(&tickets, zone_of(store)))
}

/// The most display columns of a description in the ticket list.
const LISTED_DESCRIPTION_WIDTH: usize = 30;

/// One line per ticket, with a header; times in `zone`.
pub fn ticket_table(tickets: &[Ticket], zone: Tz) -> String {
    let mut table = Table::new(&[
        "NUMBER",
        "STATUS",
        "TYPE",
        "CATEGORY",
        "LEVEL",
        "PHONE",
        "CREATED",
        "DESCRIPTION",
    ]);
    for t in tickets {
        table.row(vec![
            t.number.to_string(),
            t.status.to_string(),
            t.ticket_type.to_string(),
            t.category.clone(),
            t.level.to_string(),
            t.contact_phone.as_deref().unwrap_or("-").to_string(),
            local_time(t.created_at, zone),
            truncate(&printable(&t.description), LISTED_DESCRIPTION_WIDTH),
        ]);
    }
    let mut out = table.render();
    let _ = writeln!(out, "({} ticket(s))", tickets.len());
    out
}

pub async fn show(store: &Store, number: &str) -> Result<String, StoreError> {
    let ticket = store
        .ticket(number)
        .await?
        .ok_or_else(|| StoreError::TicketNotFound(number.to_string()))?;
    let events = store.events(ticket.id).await?;
    Ok(describe(&ticket, &events, zone_of(store)))
}

/// A ticket's fields, deadlines, allowed actions and history; times in
/// `zone`.
pub fn describe(ticket: &Ticket, events: &[TicketEvent], zone: Tz) -> String {
    let time = |at: DateTime<Utc>| local_time(at, zone);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ticket {}  (version {})",
        ticket.number, ticket.version
    );
    let field = |out: &mut String, name: &str, value: &str| {
        let _ = writeln!(out, "  {name:<15} {}", printable(value));
    };
    field(
        &mut out,
        "status",
        &format!("{} ({})", ticket.status, ticket.status.chinese_name()),
    );
    field(
        &mut out,
        "type",
        &format!(
            "{} ({})",
            ticket.ticket_type,
            ticket.ticket_type.chinese_name()
        ),
    );
    field(&mut out, "category", &ticket.category);
    if let Some(service) = &ticket.service_number {
        field(&mut out, "service number", service);
    }
    field(&mut out, "description", &ticket.description);
    field(
        &mut out,
        "contact phone",
        ticket.contact_phone.as_deref().unwrap_or("(none known)"),
    );
    if let Some(customer) = ticket.customer_id {
        field(&mut out, "customer", &customer.to_string());
    }
    field(
        &mut out,
        "level",
        &format!("{} ({})", ticket.level, ticket.level.chinese_name()),
    );
    field(&mut out, "language", ticket.language.code());
    field(&mut out, "channel", ticket.channel.code());
    field(&mut out, "queue", &ticket.queue);
    field(
        &mut out,
        "assignee",
        ticket.assignee.as_deref().unwrap_or("-"),
    );
    field(&mut out, "created", &time(ticket.created_at));
    for clock in SlaClock::ALL {
        if let (Some(due), met) = ticket.clock(*clock) {
            let state = match met {
                Some(met) if met <= due => format!("met {}", time(met)),
                Some(met) => format!("met late {}", time(met)),
                None => "running".to_string(),
            };
            field(
                &mut out,
                &format!("{clock} due"),
                &format!("{}  {state}", time(due)),
            );
        }
    }
    let actions: Vec<_> = allowed_actions(ticket.status)
        .iter()
        .map(|a| a.code())
        .collect();
    field(
        &mut out,
        "next actions",
        &if actions.is_empty() {
            "-".to_string()
        } else {
            actions.join(", ")
        },
    );
    let _ = writeln!(out, "history:");
    let mut history = Table::default();
    for event in events {
        let change = match (event.from_status, event.to_status) {
            (Some(from), Some(to)) => format!("{from} → {to}"),
            (None, Some(to)) => format!("→ {to}"),
            _ => String::new(),
        };
        history.row(vec![
            String::new(),
            time(event.at),
            event.kind.clone(),
            event.actor.to_string(),
            change,
            event.detail.clone(),
        ]);
    }
    out.push_str(&history.render());
    out
}

/// What `ticket create` needs.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[arg(long = "type", value_parser = parse_code::<TicketType>)]
    pub ticket_type: TicketType,
    #[arg(long)]
    pub category: String,
    /// Contact phone number (the customer is looked up by it).
    #[arg(long)]
    pub phone: String,
    #[arg(long)]
    pub description: String,
    /// The line or circuit concerned.
    #[arg(long)]
    pub service_number: Option<String>,
    /// Overrides the customer's level (default: theirs, or local_c).
    #[arg(long, value_parser = parse_code::<CustomerLevel>)]
    pub level: Option<CustomerLevel>,
    #[arg(long, value_parser = parse_code::<Language>)]
    pub language: Option<Language>,
    #[arg(long, default_value = "staff", value_parser = parse_code::<Channel>)]
    pub channel: Channel,
    /// Staff login recorded as the creator.
    #[arg(long, default_value = "cli")]
    pub by: String,
}

pub async fn create(store: &Store, args: CreateArgs) -> Result<String, StoreError> {
    let mut new = NewTicket::new(
        args.ticket_type,
        args.category,
        args.phone,
        args.description,
        args.channel,
        Actor::staff(args.by),
    );
    new.service_number = args.service_number;
    new.level = args.level;
    new.language = args.language;
    let ticket = store.create_ticket(new).await?;
    let events = store.events(ticket.id).await?;
    Ok(describe(&ticket, &events, zone_of(store)))
}

pub async fn transition(
    store: &Store,
    number: &str,
    action: Action,
    by: String,
    version: Option<i64>,
    note: Option<String>,
) -> Result<String, StoreError> {
    let ticket = store
        .transition(number, action, Actor::staff(by), version, note)
        .await?;
    let events = store.events(ticket.id).await?;
    Ok(describe(&ticket, &events, zone_of(store)))
}

/// `token create`: makes a staff API token and shows it, once.
pub async fn token_create(
    store: &Store,
    name: &str,
    role: StaffRole,
) -> Result<String, StoreError> {
    let issued = crate::api::issue_token(store, name, role).await?;
    Ok(format!(
        "token {id} for {name} ({role}); it is shown only now (the gateway keeps its SHA-256):\n\
         {token}\n\
         use it as:  Authorization: Bearer {token}\n",
        id = issued.record.id,
        name = issued.record.name,
        role = issued.record.role,
        token = issued.token,
    ))
}

/// `token list`: every token, revoked ones included (never the tokens).
pub async fn token_list(store: &Store) -> Result<String, StoreError> {
    let tokens = store.api_tokens().await?;
    let zone = zone_of(store);
    let time = |at: DateTime<Utc>| local_time(at, zone);
    let mut table = Table::new(&["ID", "NAME", "ROLE", "CREATED", "REVOKED"]);
    for t in &tokens {
        table.row(vec![
            t.id.to_string(),
            t.name.clone(),
            t.role.to_string(),
            time(t.created_at),
            t.revoked_at.map_or_else(|| "-".to_string(), time),
        ]);
    }
    let mut out = table.render();
    let _ = writeln!(out, "({} token(s))", tokens.len());
    Ok(out)
}

/// `token revoke ID`: the token stops working at once.
pub async fn token_revoke(store: &Store, id: i64) -> Result<String, StoreError> {
    let token = store
        .revoke_api_token(id)
        .await?
        .ok_or_else(|| StoreError::Invalid {
            field: "token id",
            reason: format!("there is no token {id} (see `hotline token list`)"),
        })?;
    let zone = zone_of(store);
    let at = token
        .revoked_at
        .map_or_else(|| "-".to_string(), |at| local_time(at, zone));
    Ok(format!(
        "token {} ({}, {}) revoked at {at}\n",
        token.id, token.name, token.role
    ))
}

fn prompt_library(config: &Config) -> anyhow::Result<crate::media::prompt::PromptLibrary> {
    crate::media::prompt::PromptLibrary::load_dir(&config.prompts.dir).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("bad prompts:\n  - {}", list.join("\n  - "))
    })
}

/// `dialplan check`: every problem, or a summary of what is good.
pub fn check_dialplans(config: &Config, dir: &std::path::Path) -> anyhow::Result<String> {
    let prompts = prompt_library(config)?;
    let plans = crate::ivr::check::load_dir(dir, &|name| prompts.get(name).is_some())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = String::new();
    for plan in &plans {
        let numbers: Vec<&str> = plan.entries.keys().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "{}: \"{}\", {} nodes, answers {}: ok",
            plan.file,
            plan.name,
            plan.nodes.len(),
            numbers.join(", ")
        );
    }
    for problem in crate::ivr::runner::unknown_transfer_targets(&plans, &config.transfer) {
        let _ = writeln!(out, "warning: {problem}");
    }
    if plans.is_empty() {
        let _ = writeln!(out, "no dialplans in {}", dir.display());
    }
    Ok(out)
}

/// What `dialplan simulate` is asked to play through.
pub struct SimulatedCall {
    /// Key groups, comma-separated.
    pub keys: String,
    /// Default: the plan's first entry.
    pub dialled: Option<String>,
    /// The From user part.
    pub caller: String,
    /// A number a trusted P-Asserted-Identity gives.
    pub asserted: Option<String>,
    /// Transfers fail busy rather than unavailable.
    pub busy_agents: bool,
}

/// `dialplan simulate`: the transcript of one simulated call, against a
/// scratch SQLite store that is removed afterwards.
pub async fn simulate_dialplan(
    config: Config,
    file: std::path::PathBuf,
    call: SimulatedCall,
) -> anyhow::Result<String> {
    let SimulatedCall {
        keys,
        dialled,
        caller,
        asserted,
        busy_agents,
    } = call;
    let prompts = prompt_library(&config)?;
    let plan = crate::ivr::dialplan::Dialplan::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let problems = crate::ivr::check::check(std::slice::from_ref(&plan), &|name| {
        prompts.get(name).is_some()
    });
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::bail!("{}", list.join("\n"));
    }
    let dialled = dialled
        .or_else(|| plan.entries.keys().next().cloned())
        .unwrap_or_default();
    let entry = plan
        .entries
        .get(&dialled)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("{} does not answer {dialled}", file.display()))?;
    let sla = Arc::new(config.tickets.sla_policy()?);
    let scratch = std::env::temp_dir().join(format!("hotline-simulate-{}.db", std::process::id()));
    let store = Store::open(
        &format!("sqlite://{}", scratch.display()),
        StoreOptions::new(sla.clone()),
    )
    .await?;
    store.migrate().await?;
    let keys = keys
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    let mut script = crate::ivr::simulate::Script::new(&caller, &dialled, keys, Utc::now());
    script.asserted = asserted;
    if busy_agents {
        script.transfers = crate::ivr::engine::TransferFailure::Busy;
    }
    script.limit = std::time::Duration::from_secs(config.calls.max_duration_secs);
    script.time_limit_prompt = config.calls.time_limit_prompt.clone();
    script.recorded_calls = config.recordings.bridged_calls;
    script.ivr_notice = (config.recordings.ivr_calls && !config.recordings.ivr_notice.is_empty())
        .then(|| config.recordings.ivr_notice.clone());
    let calendar = Arc::new(sla.calendar().clone());
    let lines =
        crate::ivr::simulate::simulate(Arc::new(plan), &entry, script, &store, calendar, &prompts)
            .await;
    store.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", scratch.display()));
    }
    Ok(lines.join("\n") + "\n")
}
