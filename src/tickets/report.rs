//! The centre's indicators as CSV, for spreadsheets: one row per figure,
//! `indicator,key,value`, where `key` names the hour, channel, node, … of
//! a breakdown (empty for a single figure) and an empty `value` is a rate
//! or mean without data (null in the JSON).

use super::store::Indicators;
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;

/// The indicators as CSV text with a header row; times (the range, the
/// hours) in `zone`, RFC 3339 with its offset.
pub fn indicators_csv(report: &Indicators, zone: Tz) -> String {
    let time = |at: DateTime<Utc>| {
        at.with_timezone(&zone)
            .to_rfc3339_opts(SecondsFormat::AutoSi, false)
    };
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut row = |indicator: &str, key: &str, value: String| {
        rows.push((indicator.to_string(), key.to_string(), value));
    };
    row("from", "", time(report.from));
    row("to", "", time(report.to));
    let calls = &report.calls;
    row("calls.offered", "", calls.offered.to_string());
    row("calls.answered", "", calls.answered.to_string());
    row("calls.rejected", "", calls.rejected.to_string());
    row("calls.abandoned", "", calls.abandoned.to_string());
    row("calls.contained", "", calls.contained.to_string());
    row(
        "calls.containment_rate",
        "",
        optional(calls.containment_rate),
    );
    row("calls.transferred", "", calls.transferred.to_string());
    for hour in &calls.per_hour {
        let key = time(hour.hour);
        row("calls.per_hour.offered", &key, hour.offered.to_string());
        row("calls.per_hour.answered", &key, hour.answered.to_string());
    }
    for node in &calls.abandoned_by_node {
        row(
            "calls.abandoned_by_node",
            &node.node,
            node.count.to_string(),
        );
    }
    for t in &report.transfers {
        let key = format!("{}/{}/{}", t.target, t.mode, t.outcome);
        row("transfers", &key, t.count.to_string());
    }
    let tickets = &report.tickets;
    row("tickets.created", "", tickets.created.to_string());
    for (name, counts) in [
        ("tickets.by_channel", &tickets.by_channel),
        ("tickets.by_category", &tickets.by_category),
        ("tickets.by_level", &tickets.by_level),
    ] {
        for c in counts {
            row(name, &c.key, c.count.to_string());
        }
    }
    for clock in &report.sla {
        row(
            &format!("sla.{}.met", clock.clock),
            "",
            clock.met.to_string(),
        );
        row(
            &format!("sla.{}.breached", clock.clock),
            "",
            clock.breached.to_string(),
        );
        row(
            &format!("sla.{}.compliance", clock.clock),
            "",
            optional(clock.compliance),
        );
    }
    for stage in &report.stage_mean_secs {
        row(
            &format!("stage_mean_secs.{}", stage.stage),
            "",
            optional(stage.mean_secs),
        );
    }
    let survey = &report.survey;
    row("survey.responses", "", survey.responses.to_string());
    row("survey.mean_score", "", optional(survey.mean_score));
    for s in &survey.by_score {
        row("survey.by_score", &s.score.to_string(), s.count.to_string());
    }
    let mut out = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail but for a bug; rows that fail are left out.
    let _ = out.write_record(["indicator", "key", "value"]);
    for (indicator, key, value) in &rows {
        let _ = out.write_record([indicator, key, value]);
    }
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn optional(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}
