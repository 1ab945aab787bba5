//! `[outbound]`: the trunks outbound calls leave by and each purpose's
//! campaign rules (docs/operations.md, "Outbound calls").
//!
//! ```toml
//! [outbound]
//! enabled = true
//! caller_id = "10000"
//!
//! [outbound.trunks.main]
//! uri = "sip:{number}@192.0.2.20"
//! max_concurrent = 30
//! calls_per_second = 5
//!
//! [outbound.confirm]
//! enabled = true
//! trunks = ["main"]
//! window = "09:00-20:00"
//! ```

use crate::outbound::gate::TrunkCaps;
use crate::outbound::schedule::{CampaignRules, Purpose};
use crate::tickets::model::TicketType;
use chrono::{Duration, NaiveTime};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The outbound side as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// This gateway places the queued calls. Several gateways may (they
    /// share the jobs through the store); with none, jobs wait.
    pub enabled: bool,
    /// The From user of our calls: what the customer's phone shows.
    pub caller_id: String,
    /// How often the worker looks for due calls.
    pub poll_secs: u64,
    /// Trunks by name: `[outbound.trunks.<name>]`.
    pub trunks: BTreeMap<String, TrunkConfig>,
    /// 修复确认 / 回访: the call after a fault ticket is resolved.
    pub confirm: CampaignConfig,
    /// 回呼: the call back to a caller who found every agent busy (a
    /// dialplan's `callback_request`), bridged to the agents.
    pub callback: CampaignConfig,
    /// 满意度调查: the survey call after a ticket is closed.
    pub survey: CampaignConfig,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            enabled: false,
            caller_id: "10000".into(),
            poll_secs: 2,
            trunks: BTreeMap::new(),
            confirm: CampaignConfig::default(),
            callback: CampaignConfig::default(),
            survey: CampaignConfig::default(),
        }
    }
}

/// One trunk (a carrier, an SBC, a PBX) calls leave by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// The Request-URI with `{number}` where the customer's number goes:
    /// `sip:{number}@192.0.2.20`, `sip:{number}@sbc.example;transport=tcp`.
    pub uri: String,
    /// Calls up (ringing or answered) on this trunk at once, per gateway.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: u32,
    /// New calls a second on this trunk, per gateway.
    #[serde(default = "default_calls_per_second")]
    pub calls_per_second: f64,
    /// Ringing longer than this is no answer: CANCEL.
    #[serde(default = "default_ring_timeout_secs")]
    pub ring_timeout_secs: u64,
    /// The user name for digest challenges (401/407).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

fn default_max_concurrent() -> u32 {
    30
}

fn default_calls_per_second() -> f64 {
    5.0
}

fn default_ring_timeout_secs() -> u64 {
    30
}

impl TrunkConfig {
    /// The Request-URI that calls `number`.
    pub fn uri_for(&self, number: &str) -> String {
        self.uri.replace("{number}", number)
    }

    pub fn caps(&self) -> TrunkCaps {
        TrunkCaps {
            max_concurrent: self.max_concurrent,
            calls_per_second: self.calls_per_second,
        }
    }

    pub fn credentials(&self) -> Option<(String, String)> {
        Some((self.username.clone()?, self.password.clone()?))
    }
}

/// A callback's first attempt waits this long by default: the caller who
/// asked for it is still on the line, hearing the goodbye.
const DEFAULT_CALLBACK_DELAY_SECS: i64 = 60;

/// One purpose's campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CampaignConfig {
    /// Calls of this purpose are queued (and, where `outbound.enabled`,
    /// placed).
    pub enabled: bool,
    /// The dialplan entry the answered call runs; default the purpose's
    /// name (`confirm`, `callback`: dialplans/outbound.toml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// Trunk names, tried in order after a trunk's failure.
    pub trunks: Vec<String>,
    /// Local calling hours every day, `HH:MM-HH:MM`, in the SLA
    /// calendar's time zone.
    pub window: String,
    /// Never call on the calendar's holidays.
    pub skip_holidays: bool,
    pub attempts: u32,
    /// Seconds before calling again after busy (486, 600).
    pub busy_retry_secs: i64,
    /// After no answer, or an answer without a key.
    pub no_answer_retry_secs: i64,
    /// After a trunk failure when there is no other trunk to try.
    pub failure_retry_secs: i64,
    /// Seconds from queueing to the first attempt; default 60 for
    /// callbacks (the caller hangs up first), 0 otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_secs: Option<i64>,
    /// Survey only: the ticket types whose closing queues a survey call
    /// (codes, e.g. `fault_report`; empty: every type).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ticket_types: Vec<String>,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        let rules = CampaignRules::default();
        CampaignConfig {
            enabled: false,
            entry: None,
            trunks: Vec::new(),
            window: "09:00-20:00".into(),
            skip_holidays: rules.skip_holidays,
            attempts: rules.attempts,
            busy_retry_secs: rules.busy_retry.num_seconds(),
            no_answer_retry_secs: rules.no_answer_retry.num_seconds(),
            failure_retry_secs: rules.failure_retry.num_seconds(),
            delay_secs: None,
            ticket_types: Vec::new(),
        }
    }
}

impl CampaignConfig {
    /// The ticket types of `ticket_types` (every type when empty); `None`
    /// when one is not a type (refused by [`OutboundConfig::problems`]).
    pub fn types(&self) -> Option<Vec<TicketType>> {
        if self.ticket_types.is_empty() {
            return Some(TicketType::ALL.to_vec());
        }
        self.ticket_types.iter().map(|t| t.parse().ok()).collect()
    }

    /// The dialplan entry a call of `purpose` runs.
    pub fn entry_for(&self, purpose: Purpose) -> String {
        self.entry
            .clone()
            .unwrap_or_else(|| purpose.code().to_string())
    }

    /// The schedule's rules for `purpose`'s calls; `None` when the window
    /// does not parse (refused by [`OutboundConfig::problems`] before the
    /// server starts).
    pub fn rules(&self, purpose: Purpose) -> Option<CampaignRules> {
        let default_delay = match purpose {
            Purpose::Callback => DEFAULT_CALLBACK_DELAY_SECS,
            Purpose::Confirm | Purpose::Survey => 0,
        };
        Some(CampaignRules {
            window: parse_window(&self.window)?,
            skip_holidays: self.skip_holidays,
            attempts: self.attempts,
            busy_retry: Duration::seconds(self.busy_retry_secs),
            no_answer_retry: Duration::seconds(self.no_answer_retry_secs),
            failure_retry: Duration::seconds(self.failure_retry_secs),
            trunks: self.trunks.len().max(1),
            first_delay: Duration::seconds(self.delay_secs.unwrap_or(default_delay)),
        })
    }
}

/// `HH:MM-HH:MM`, the first before the second.
fn parse_window(text: &str) -> Option<(NaiveTime, NaiveTime)> {
    let (open, close) = text.split_once('-')?;
    let open = NaiveTime::parse_from_str(open.trim(), "%H:%M").ok()?;
    let close = NaiveTime::parse_from_str(close.trim(), "%H:%M").ok()?;
    (open < close).then_some((open, close))
}

impl OutboundConfig {
    /// Each purpose's campaign.
    pub fn campaigns(&self) -> [(Purpose, &CampaignConfig); 3] {
        [
            (Purpose::Confirm, &self.confirm),
            (Purpose::Callback, &self.callback),
            (Purpose::Survey, &self.survey),
        ]
    }

    /// The campaign of `purpose`, if it has one.
    pub fn campaign(&self, purpose: Purpose) -> Option<&CampaignConfig> {
        self.campaigns()
            .into_iter()
            .find(|(p, _)| *p == purpose)
            .map(|(_, campaign)| campaign)
    }

    /// Everything wrong with the section, each a sentence naming the key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=60).contains(&self.poll_secs) {
            problems.push("outbound.poll_secs must be from 1 to 60".to_string());
        }
        if self.caller_id.is_empty() {
            problems.push("outbound.caller_id must not be empty".to_string());
        }
        for (name, trunk) in &self.trunks {
            if !trunk.uri.contains("{number}") {
                problems.push(format!(
                    "outbound.trunks.{name}.uri: {:?} has no {{number}} for the number to call",
                    trunk.uri
                ));
            }
            let sample = trunk.uri_for("10000");
            let parsed = crate::sip::headers::Uri::parse(crate::sip::uac::request_uri(&sample));
            if !parsed.is_ok_and(|uri| uri.is_sip()) {
                problems.push(format!(
                    "outbound.trunks.{name}.uri: {:?} is not a sip: or sips: URI",
                    trunk.uri
                ));
            }
            if trunk.max_concurrent == 0 {
                problems.push(format!(
                    "outbound.trunks.{name}.max_concurrent must be at least 1"
                ));
            }
            if !(trunk.calls_per_second > 0.0 && trunk.calls_per_second <= 1000.0) {
                problems.push(format!(
                    "outbound.trunks.{name}.calls_per_second must be above 0 and at most 1000"
                ));
            }
            if !(1..=300).contains(&trunk.ring_timeout_secs) {
                problems.push(format!(
                    "outbound.trunks.{name}.ring_timeout_secs must be from 1 to 300"
                ));
            }
        }
        if self.survey.types().is_none() {
            problems.push(format!(
                "outbound.survey.ticket_types: {:?} names an unknown ticket type (known: {})",
                self.survey.ticket_types,
                TicketType::ALL
                    .iter()
                    .map(|t| t.code())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for (purpose, campaign) in self.campaigns() {
            let name = purpose.code();
            if campaign.enabled {
                if campaign.trunks.is_empty() {
                    problems.push(format!(
                        "outbound.{name}.trunks must name at least one trunk"
                    ));
                }
                for trunk in &campaign.trunks {
                    if !self.trunks.contains_key(trunk) {
                        problems.push(format!(
                            "outbound.{name}.trunks: no [outbound.trunks.{trunk}]"
                        ));
                    }
                }
            }
            if campaign.rules(purpose).is_none() {
                problems.push(format!(
                    "outbound.{name}.window: {:?} is not HH:MM-HH:MM with the start first",
                    campaign.window
                ));
            }
            if !(1..=20).contains(&campaign.attempts) {
                problems.push(format!("outbound.{name}.attempts must be from 1 to 20"));
            }
            if [
                campaign.busy_retry_secs,
                campaign.no_answer_retry_secs,
                campaign.failure_retry_secs,
                campaign.delay_secs.unwrap_or(0),
            ]
            .iter()
            .any(|secs| !(0..=604_800).contains(secs))
            {
                problems.push(format!(
                    "outbound.{name} delays must be from 0 to 604800 seconds (a week)"
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> OutboundConfig {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn the_default_is_off_and_valid() {
        let config = OutboundConfig::default();
        assert!(!config.enabled);
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        assert_eq!(
            config.confirm.rules(Purpose::Confirm),
            Some(CampaignRules {
                trunks: 1,
                ..CampaignRules::default()
            })
        );
    }

    #[test]
    fn a_configured_campaign_gives_its_rules_and_trunk_uris() {
        let config = parsed(
            r#"
            enabled = true
            [trunks.main]
            uri = "sip:{number}@127.0.0.1:5070"
            max_concurrent = 2
            calls_per_second = 1.5
            [trunks.backup]
            uri = "sip:{number}@127.0.0.1:5080;transport=tcp"
            [confirm]
            enabled = true
            trunks = ["main", "backup"]
            window = "08:30-21:00"
            attempts = 4
            busy_retry_secs = 60
            "#,
        );
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        let rules = config.confirm.rules(Purpose::Confirm).expect("rules");
        assert_eq!(rules.trunks, 2);
        assert_eq!(rules.attempts, 4);
        assert_eq!(rules.busy_retry, Duration::seconds(60));
        assert_eq!(
            rules.window.0,
            NaiveTime::from_hms_opt(8, 30, 0).expect("time")
        );
        let main = &config.trunks["main"];
        assert_eq!(
            main.uri_for("13800138000"),
            "sip:13800138000@127.0.0.1:5070"
        );
        assert_eq!(main.caps().max_concurrent, 2);
        assert_eq!(config.trunks["backup"].ring_timeout_secs, 30);
    }

    #[test]
    fn a_callback_waits_a_minute_unless_told_and_other_calls_go_at_once() {
        let config = parsed(
            r#"
            [survey]
            delay_secs = 300
            "#,
        );
        let delay = |campaign: &CampaignConfig, purpose| {
            campaign.rules(purpose).expect("rules").first_delay
        };
        assert_eq!(
            delay(&config.callback, Purpose::Callback),
            Duration::seconds(60)
        );
        assert_eq!(delay(&config.confirm, Purpose::Confirm), Duration::zero());
        assert_eq!(
            delay(&config.survey, Purpose::Survey),
            Duration::seconds(300)
        );
        let negative = parsed("[callback]\ndelay_secs = -1\n");
        assert!(
            negative
                .problems()
                .iter()
                .any(|p| p.starts_with("outbound.callback delays must be")),
            "{:?}",
            negative.problems()
        );
    }

    #[test]
    fn mistakes_are_named_by_key() {
        let config = parsed(
            r#"
            poll_secs = 0
            [trunks.main]
            uri = "tel:10000"
            max_concurrent = 0
            calls_per_second = 0
            [confirm]
            enabled = true
            trunks = ["main", "nowhere"]
            window = "20:00-09:00"
            attempts = 0
            [survey]
            ticket_types = ["fault_report", "praise"]
            "#,
        );
        let problems = config.problems().join("\n");
        for expected in [
            "outbound.poll_secs",
            "outbound.trunks.main.uri: \"tel:10000\" has no {number}",
            "is not a sip: or sips: URI",
            "outbound.trunks.main.max_concurrent",
            "outbound.trunks.main.calls_per_second",
            "outbound.confirm.trunks: no [outbound.trunks.nowhere]",
            "outbound.confirm.window: \"20:00-09:00\"",
            "outbound.confirm.attempts",
            "outbound.survey.ticket_types: [\"fault_report\", \"praise\"] names an unknown ticket type",
        ] {
            assert!(
                problems.contains(expected),
                "{expected} missing in:\n{problems}"
            );
        }
    }
}
