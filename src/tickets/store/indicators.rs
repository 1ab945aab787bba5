//! The centre's daily monitoring indicators (domain.md, "23 daily
//! monitoring indicators") over a time range: calls offered, answered,
//! rejected, abandoned (and in which menu node), IVR containment,
//! transfers by target, mode and outcome, tickets by channel, category and
//! level, SLA compliance per clock, mean time per stage and survey scores.
//!
//! Every count is over `[from, to)`: calls by when they were offered,
//! tickets (and their clocks and stages) by when they were created, survey
//! scores by when they were given. The definitions, for operators, are in
//! docs/operations.md ("Indicators").

use super::calls::{parse_transfers, MenuStep, CONTAINED_DISPOSITIONS, REJECTED, TRANSFERRED};
use super::outbound::WAITING_FOR_WINDOW;
use super::sla_job::clock_columns;
use super::{to_millis, Store, StoreError};
use crate::outbound::schedule::Purpose;
use crate::tickets::model::{Channel, CustomerLevel};
use crate::tickets::sla::SlaClock;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The longest range a report covers (a leap year).
pub const MAX_RANGE_DAYS: i64 = 366;

/// The disposition of an answered call the caller hung up on in the IVR.
const CALLER_HUNG_UP: &str = "remote_bye";

/// The clocks the centre's indicators report (the feedback clock applies
/// to a few categories only and is left out).
const REPORTED_CLOCKS: [SlaClock; 4] = [
    SlaClock::Dispatch,
    SlaClock::Accept,
    SlaClock::Repair,
    SlaClock::Confirm,
];

/// The indicators of one time range.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Indicators {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub calls: CallIndicators,
    /// Transfers tried, by target, mode and outcome.
    pub transfers: Vec<TransferCount>,
    pub tickets: TicketIndicators,
    /// Compliance per SLA clock: dispatch, accept, repair, confirm.
    pub sla: Vec<SlaCompliance>,
    /// Mean time per stage: dispatch (created → dispatched), accept
    /// (dispatched → accepted), repair (created → resolved), confirm
    /// (resolved → confirmed).
    pub stage_mean_secs: Vec<StageMean>,
    pub survey: SurveyIndicators,
}

/// Calls offered in the range.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CallIndicators {
    /// Every call that reached the gateway's call handling.
    pub offered: u64,
    pub answered: u64,
    /// Refused before answer (no dialplan, no codec, no RTP port).
    pub rejected: u64,
    /// Answered calls the caller hung up on while in the IVR.
    pub abandoned: u64,
    /// Answered calls served by the IVR alone: ended by the plan or the
    /// caller, with no transfer tried (a failed transfer, a call cut off at
    /// its time limit or by a media timeout is not contained).
    pub contained: u64,
    /// contained / answered; null when nothing was answered.
    pub containment_rate: Option<f64>,
    /// Answered calls handed over to a transfer target.
    pub transferred: u64,
    /// Every hour of the range (UTC, starting on the hour), oldest first.
    pub per_hour: Vec<HourCount>,
    /// Abandoned calls by the menu node the caller was in, most first.
    pub abandoned_by_node: Vec<NodeCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct HourCount {
    pub hour: DateTime<Utc>,
    pub offered: u64,
    pub answered: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NodeCount {
    /// The node's name; empty when the call had entered none.
    pub node: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TransferCount {
    pub target: String,
    /// `refer`, `bridge`, or `none` (target missing from the config).
    pub mode: String,
    /// `accepted`, `failed` or `abandoned` (the call ended first).
    pub outcome: String,
    pub count: u64,
}

/// Tickets created in the range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TicketIndicators {
    pub created: u64,
    /// Every channel, zeros included.
    pub by_channel: Vec<KeyCount>,
    /// Every category of the SLA rules, zeros included, and any other
    /// found.
    pub by_category: Vec<KeyCount>,
    /// Every customer level, zeros included.
    pub by_level: Vec<KeyCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct KeyCount {
    pub key: String,
    pub count: u64,
}

/// One SLA clock of the tickets created in the range. A clock still
/// running before its deadline counts in neither; one that ran out counts
/// as breached once the SLA job has marked it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SlaCompliance {
    pub clock: String,
    pub met: u64,
    pub breached: u64,
    /// met / (met + breached); null when both are 0.
    pub compliance: Option<f64>,
    /// `confirm` only (0 for the other clocks): tickets whose confirmation
    /// call was queued outside the calling window and waited for it.
    pub waited_for_calling_window: u64,
    /// Of those, the ones whose clock was breached.
    pub breached_after_waiting: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StageMean {
    pub stage: String,
    /// Null when no ticket of the range completed the stage.
    pub mean_secs: Option<f64>,
}

/// Satisfaction survey scores given in the range.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SurveyIndicators {
    pub responses: u64,
    /// Null when there was no response.
    pub mean_score: Option<f64>,
    /// Every score 1 to 5, zeros included.
    pub by_score: Vec<ScoreCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ScoreCount {
    pub score: u8,
    pub count: u64,
}

impl Store {
    /// The indicators of `[from, to)`, which must be at most
    /// [`MAX_RANGE_DAYS`] long and not end before it starts.
    pub async fn indicators(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Indicators, StoreError> {
        if to < from || to - from > Duration::days(MAX_RANGE_DAYS) {
            return Err(StoreError::Invalid {
                field: "range",
                reason: format!(
                    "from {} to {} is not a range of 0 to {MAX_RANGE_DAYS} days",
                    from.to_rfc3339(),
                    to.to_rfc3339()
                ),
            });
        }
        let range = (to_millis(from), to_millis(to));
        Ok(Indicators {
            from,
            to,
            calls: self.call_indicators(from, to, range).await?,
            transfers: self.transfer_counts(range).await?,
            tickets: self.ticket_indicators(range).await?,
            sla: self.sla_compliance(range).await?,
            stage_mean_secs: self.stage_means(range).await?,
            survey: self.survey_indicators(range).await?,
        })
    }

    async fn call_indicators(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        (start, end): (i64, i64),
    ) -> Result<CallIndicators, StoreError> {
        // Contained: as `calls::is_contained` decides it for the metrics.
        let (offered, answered, rejected, abandoned, transferred, contained): (
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = sqlx::query_as(
            "SELECT COUNT(*), \
             COALESCE(SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN disposition = $3 THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN answered_at IS NOT NULL AND disposition = $4 \
               THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN answered_at IS NOT NULL AND disposition = $5 \
               THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN answered_at IS NOT NULL AND disposition IN ($6, $7) \
               AND transfers = '[]' THEN 1 ELSE 0 END), 0) \
             FROM calls WHERE direction = 'inbound' AND offered_at >= $1 AND offered_at < $2",
        )
        .bind(start)
        .bind(end)
        .bind(REJECTED)
        .bind(CALLER_HUNG_UP)
        .bind(TRANSFERRED)
        .bind(CONTAINED_DISPOSITIONS[0])
        .bind(CONTAINED_DISPOSITIONS[1])
        .fetch_one(self.reader())
        .await?;
        let hours: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT offered_at / 3600000, COUNT(*), \
             COALESCE(SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END), 0) \
             FROM calls WHERE direction = 'inbound' AND offered_at >= $1 AND offered_at < $2 \
             GROUP BY offered_at / 3600000",
        )
        .bind(start)
        .bind(end)
        .fetch_all(self.reader())
        .await?;
        let paths: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, menu_path FROM calls WHERE direction = 'inbound' AND offered_at >= $1 AND offered_at < $2 \
             AND answered_at IS NOT NULL AND disposition = $3",
        )
        .bind(start)
        .bind(end)
        .bind(CALLER_HUNG_UP)
        .fetch_all(self.reader())
        .await?;
        let mut by_node: BTreeMap<String, u64> = BTreeMap::new();
        for (id, path) in paths {
            let steps: Vec<MenuStep> = serde_json::from_str(&path)
                .map_err(|e| StoreError::Corrupt(format!("menu path of call {id}: {e}")))?;
            let node = steps.last().map(|s| s.node.clone()).unwrap_or_default();
            *by_node.entry(node).or_default() += 1;
        }
        let mut abandoned_by_node: Vec<NodeCount> = by_node
            .into_iter()
            .map(|(node, count)| NodeCount { node, count })
            .collect();
        abandoned_by_node.sort_by(|a, b| b.count.cmp(&a.count).then(a.node.cmp(&b.node)));
        let answered = count(answered);
        let contained = count(contained);
        Ok(CallIndicators {
            offered: count(offered),
            answered,
            rejected: count(rejected),
            abandoned: count(abandoned),
            contained,
            containment_rate: ratio(contained, answered),
            transferred: count(transferred),
            per_hour: per_hour(from, to, &hours),
            abandoned_by_node,
        })
    }

    async fn transfer_counts(
        &self,
        (start, end): (i64, i64),
    ) -> Result<Vec<TransferCount>, StoreError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, transfers FROM calls WHERE direction = 'inbound' AND offered_at >= $1 AND offered_at < $2 \
             AND transfers <> '[]'",
        )
        .bind(start)
        .bind(end)
        .fetch_all(self.reader())
        .await?;
        let mut counts: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for (id, json) in rows {
            for transfer in parse_transfers(id, &json)? {
                *counts
                    .entry((transfer.target, transfer.mode, transfer.outcome))
                    .or_default() += 1;
            }
        }
        Ok(counts
            .into_iter()
            .map(|((target, mode, outcome), count)| TransferCount {
                target,
                mode,
                outcome,
                count,
            })
            .collect())
    }

    async fn ticket_indicators(
        &self,
        (start, end): (i64, i64),
    ) -> Result<TicketIndicators, StoreError> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT channel, category, level, COUNT(*) FROM tickets \
             WHERE created_at >= $1 AND created_at < $2 GROUP BY channel, category, level",
        )
        .bind(start)
        .bind(end)
        .fetch_all(self.reader())
        .await?;
        let zeros = |keys: Vec<&str>| -> BTreeMap<String, u64> {
            keys.into_iter().map(|k| (k.to_string(), 0)).collect()
        };
        let mut by_channel = zeros(Channel::ALL.iter().map(|c| c.code()).collect());
        let mut by_category = zeros(self.sla().categories());
        let mut by_level = zeros(CustomerLevel::ALL.iter().map(|l| l.code()).collect());
        let mut created = 0;
        for (channel, category, level, n) in rows {
            let n = count(n);
            created += n;
            *by_channel.entry(channel).or_default() += n;
            *by_category.entry(category).or_default() += n;
            *by_level.entry(level).or_default() += n;
        }
        let listed = |map: BTreeMap<String, u64>| -> Vec<KeyCount> {
            map.into_iter()
                .map(|(key, count)| KeyCount { key, count })
                .collect()
        };
        Ok(TicketIndicators {
            created,
            by_channel: listed(by_channel),
            by_category: listed(by_category),
            by_level: listed(by_level),
        })
    }

    async fn sla_compliance(
        &self,
        (start, end): (i64, i64),
    ) -> Result<Vec<SlaCompliance>, StoreError> {
        let mut out = Vec::with_capacity(REPORTED_CLOCKS.len());
        for clock in REPORTED_CLOCKS {
            let (due, met, _) = clock_columns(clock);
            // Breached: marked by the SLA job, or met after the deadline
            // before the job saw it. Met: done in time and never marked.
            let (met_count, breached): (i64, i64) = sqlx::query_as(&format!(
                "SELECT \
                 COALESCE(SUM(CASE WHEN b.ticket_id IS NULL AND t.{met} IS NOT NULL \
                   AND t.{met} <= t.{due} THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN b.ticket_id IS NOT NULL OR t.{met} > t.{due} \
                   THEN 1 ELSE 0 END), 0) \
                 FROM tickets t LEFT JOIN sla_breaches b ON b.ticket_id = t.id AND b.clock = $3 \
                 WHERE t.created_at >= $1 AND t.created_at < $2 AND t.{due} IS NOT NULL"
            ))
            .bind(start)
            .bind(end)
            .bind(clock.code())
            .fetch_one(self.reader())
            .await?;
            let (met_count, breached) = (count(met_count), count(breached));
            let (waited, breached_after_waiting) = if clock == SlaClock::Confirm {
                self.confirm_calls_that_waited((start, end)).await?
            } else {
                (0, 0)
            };
            out.push(SlaCompliance {
                clock: clock.code().to_string(),
                met: met_count,
                breached,
                compliance: ratio(met_count, met_count + breached),
                waited_for_calling_window: waited,
                breached_after_waiting,
            });
        }
        Ok(out)
    }

    /// Tickets of the range whose confirmation call waited for the calling
    /// window, and how many of them breached the confirm clock.
    async fn confirm_calls_that_waited(
        &self,
        (start, end): (i64, i64),
    ) -> Result<(u64, u64), StoreError> {
        let (due, met, _) = clock_columns(SlaClock::Confirm);
        let (waited, breached): (i64, i64) = sqlx::query_as(&format!(
            "SELECT COUNT(*), \
             COALESCE(SUM(CASE WHEN b.ticket_id IS NOT NULL OR t.{met} > t.{due} \
               THEN 1 ELSE 0 END), 0) \
             FROM tickets t LEFT JOIN sla_breaches b ON b.ticket_id = t.id AND b.clock = $3 \
             WHERE t.created_at >= $1 AND t.created_at < $2 AND t.{due} IS NOT NULL \
             AND EXISTS (SELECT 1 FROM ticket_events e WHERE e.ticket_id = t.id \
               AND e.kind = $4 AND e.detail LIKE $5)"
        ))
        .bind(start)
        .bind(end)
        .bind(SlaClock::Confirm.code())
        .bind(WAITING_FOR_WINDOW)
        .bind(format!("{} %", Purpose::Confirm.code()))
        .fetch_one(self.reader())
        .await?;
        Ok((count(waited), count(breached)))
    }

    async fn stage_means(&self, (start, end): (i64, i64)) -> Result<Vec<StageMean>, StoreError> {
        let stages: [(&str, &str, &str); 4] = [
            ("dispatch", "created_at", "dispatched_at"),
            ("accept", "dispatched_at", "accepted_at"),
            ("repair", "created_at", "resolved_at"),
            ("confirm", "resolved_at", "confirmed_at"),
        ];
        let averages = stages
            .iter()
            .map(|(_, begin, done)| {
                format!("CAST(AVG(CAST({done} - {begin} AS DOUBLE PRECISION)) AS DOUBLE PRECISION)")
            })
            .collect::<Vec<_>>()
            .join(", ");
        let means: (Option<f64>, Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(&format!(
            "SELECT {averages} FROM tickets WHERE created_at >= $1 AND created_at < $2"
        ))
        .bind(start)
        .bind(end)
        .fetch_one(self.reader())
        .await?;
        let means = [means.0, means.1, means.2, means.3];
        Ok(stages
            .iter()
            .zip(means)
            .map(|((stage, _, _), millis)| StageMean {
                stage: stage.to_string(),
                mean_secs: millis.map(|ms| ms / 1000.0),
            })
            .collect())
    }

    async fn survey_indicators(
        &self,
        (start, end): (i64, i64),
    ) -> Result<SurveyIndicators, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT score, COUNT(*) FROM ticket_surveys WHERE at >= $1 AND at < $2 GROUP BY score",
        )
        .bind(start)
        .bind(end)
        .fetch_all(self.reader())
        .await?;
        let by_score: Vec<ScoreCount> = super::SURVEY_SCORES
            .map(|score| ScoreCount {
                score,
                count: rows
                    .iter()
                    .find(|(s, _)| *s == i64::from(score))
                    .map_or(0, |(_, n)| count(*n)),
            })
            .collect();
        let responses: u64 = by_score.iter().map(|s| s.count).sum();
        let total: u64 = by_score.iter().map(|s| u64::from(s.score) * s.count).sum();
        Ok(SurveyIndicators {
            responses,
            mean_score: ratio(total, responses),
            by_score,
        })
    }
}

/// Every hour from the one `from` falls in up to `to` (exclusive), with the
/// counts found for it.
fn per_hour(from: DateTime<Utc>, to: DateTime<Utc>, found: &[(i64, i64, i64)]) -> Vec<HourCount> {
    let hour = Duration::hours(1);
    let mut at = from.duration_trunc(hour).unwrap_or(from);
    let mut out = Vec::new();
    while at < to {
        let bucket = at.timestamp() / 3600;
        let (offered, answered) = found
            .iter()
            .find(|(b, _, _)| *b == bucket)
            .map_or((0, 0), |(_, o, a)| (count(*o), count(*a)));
        out.push(HourCount {
            hour: at,
            offered,
            answered,
        });
        at += hour;
    }
    out
}

/// A database count as unsigned (counts are never negative).
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `part / whole`, or None when `whole` is 0.
fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn every_hour_of_the_range_is_listed_with_its_counts() {
        let from = Utc.with_ymd_and_hms(2026, 11, 30, 10, 30, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 11, 30, 13, 0, 0).unwrap();
        let eleven = Utc.with_ymd_and_hms(2026, 11, 30, 11, 0, 0).unwrap();
        let hours = per_hour(from, to, &[(eleven.timestamp() / 3600, 3, 2)]);
        let listed: Vec<(u32, u64, u64)> = hours
            .iter()
            .map(|h| (chrono::Timelike::hour(&h.hour), h.offered, h.answered))
            .collect();
        assert_eq!(listed, vec![(10, 0, 0), (11, 3, 2), (12, 0, 0)]);
    }

    #[test]
    fn ratios_are_null_without_a_denominator() {
        assert_eq!(ratio(0, 0), None);
        assert_eq!(ratio(1, 4), Some(0.25));
    }
}
