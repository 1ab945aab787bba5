//! The outbound worker: claims due calls from the store, holds each to its
//! campaign's calling window and its trunk's caps, asks the call loop to
//! place it ([`PlaceCall`]), and records how each attempt ended
//! ([`AttemptEnded`]) with what the schedule decides next. Any number of
//! gateways run one each; claims skip each other's rows.
//!
//! A claim counts an attempt; a call held back (outside the window, or its
//! trunk at a cap) is given back uncounted. A gateway that dies mid-call
//! leaves its claims to expire: another gateway retakes them after the
//! lease, as a new attempt.

use super::config::OutboundConfig;
use super::gate::{Start, TrunkGates};
use super::schedule::{CampaignRules, Cause, GiveUp, Next, Purpose};
use crate::tickets::number::TicketNumber;
use crate::tickets::store::{AttemptRecord, ClaimedCall, Store};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// A call for the call loop to place.
#[derive(Debug, Clone)]
pub struct PlaceCall {
    /// The job's id (`outbound_calls.id`).
    pub job: i64,
    pub purpose: Purpose,
    /// The Request-URI (the trunk's template with the number).
    pub uri: String,
    pub addresses: Vec<SocketAddr>,
    pub credentials: Option<(String, String)>,
    pub ring_timeout: Duration,
    /// Our From user.
    pub caller_id: String,
    /// Whom we call.
    pub number: String,
    /// The dialplan entry the answered call runs.
    pub entry: String,
    /// The ticket the call is about.
    pub ticket: Option<TicketNumber>,
}

/// How a placed call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEnded {
    pub job: i64,
    pub sip_call_id: String,
    /// The final response to the INVITE, when one came.
    pub sip_status: Option<u16>,
    pub cause: Cause,
    pub key_pressed: Option<char>,
}

/// Where the worker talks to the call loop.
pub struct CallLoop {
    pub place: mpsc::UnboundedSender<PlaceCall>,
    pub ended: mpsc::UnboundedReceiver<AttemptEnded>,
}

/// Starts the worker when `config.enabled` and a campaign is on.
pub fn spawn(
    store: Store,
    config: OutboundConfig,
    lease: Duration,
    calls: CallLoop,
    stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if !config.enabled {
        return None;
    }
    let campaigns: HashMap<Purpose, CampaignRules> = config
        .campaigns()
        .into_iter()
        .filter(|(_, campaign)| campaign.enabled)
        .filter_map(|(purpose, campaign)| Some((purpose, campaign.rules(purpose)?)))
        .collect();
    if campaigns.is_empty() {
        tracing::info!("outbound calls enabled but no campaign is: the worker does not start");
        return None;
    }
    tracing::info!(purposes = ?campaigns.keys().map(|p| p.code()).collect::<Vec<_>>(), "outbound worker started");
    let worker = Worker {
        store,
        config,
        campaigns,
        lease,
        gates: TrunkGates::default(),
        in_flight: HashMap::new(),
    };
    Some(tokio::spawn(worker.run(calls, stop)))
}

/// A call placed and not yet ended.
struct InFlight {
    claim: ClaimedCall,
    trunk: String,
    started_at: DateTime<Utc>,
}

struct Worker {
    store: Store,
    config: OutboundConfig,
    campaigns: HashMap<Purpose, CampaignRules>,
    lease: Duration,
    gates: TrunkGates,
    in_flight: HashMap<i64, InFlight>,
}

impl Worker {
    async fn run(mut self, mut calls: CallLoop, mut stop: watch::Receiver<bool>) {
        let poll = Duration::from_secs(self.config.poll_secs.max(1));
        let mut stopping = false;
        let mut next_poll = tokio::time::Instant::now();
        loop {
            tokio::select! {
                ended = calls.ended.recv() => match ended {
                    Some(ended) => self.finish(ended).await,
                    // The call loop stopped: nothing more will end.
                    None => break,
                },
                _ = tokio::time::sleep_until(next_poll), if !stopping => {
                    self.place_due(&calls.place).await;
                    next_poll = tokio::time::Instant::now() + poll;
                }
                _ = stop.changed(), if !stopping => {
                    // Calls up end as the gateway drains; their outcomes
                    // are still recorded. Nothing new is claimed.
                    stopping = true;
                }
            }
            if stopping && self.in_flight.is_empty() {
                break;
            }
        }
        tracing::info!(unfinished = self.in_flight.len(), "outbound worker stopped");
    }

    /// Claims what the trunks have room for and places it.
    async fn place_due(&mut self, place: &mpsc::UnboundedSender<PlaceCall>) {
        let room: u32 = self
            .config
            .trunks
            .iter()
            .map(|(name, trunk)| trunk.max_concurrent.saturating_sub(self.gates.active(name)))
            .sum();
        if room == 0 {
            return;
        }
        let purposes: Vec<Purpose> = self.campaigns.keys().copied().collect();
        let limit = usize::try_from(room).unwrap_or(usize::MAX).min(100);
        let claimed = match self
            .store
            .claim_outbound_calls(&purposes, limit, self.lease)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim outbound calls");
                return;
            }
        };
        for claim in claimed {
            self.place_one(claim, place).await;
        }
    }

    async fn place_one(&mut self, claim: ClaimedCall, place: &mpsc::UnboundedSender<PlaceCall>) {
        let call = &claim.call;
        let Some(rules) = self.campaigns.get(&call.purpose).cloned() else {
            return;
        };
        let now = self.store.now();
        let calendar = self.store.sla().calendar();
        let opens = rules.in_window(calendar, now);
        match opens {
            None => {
                // Recorded as an attempt that was never placed, so that
                // the job says why it ended.
                let record = self.record("-", now, None, Cause::NoWindow);
                let next = Next::GiveUp(GiveUp::NoWindow);
                if let Err(e) = self
                    .store
                    .finish_outbound_attempt(&claim, record, next)
                    .await
                {
                    tracing::warn!(job = call.id, error = %e, "cannot record an outbound call");
                }
                return;
            }
            Some(at) if at > now => {
                tracing::info!(job = call.id, %at, "outside the calling window: waiting");
                self.release(&claim, at).await;
                return;
            }
            Some(_) => {}
        }
        let trunks = &self.campaign_trunks(call.purpose);
        let Some(trunk_name) = trunks.get(call.trunk % trunks.len().max(1)).cloned() else {
            return;
        };
        let Some(trunk) = self.config.trunks.get(&trunk_name).cloned() else {
            return;
        };
        loop {
            match self
                .gates
                .try_start(&trunk_name, trunk.caps(), Instant::now())
            {
                Start::Started => break,
                // Paced: the wait is at most one call's interval.
                Start::Wait(wait) => tokio::time::sleep(wait).await,
                Start::Full => {
                    self.release(&claim, now + chrono::Duration::seconds(1))
                        .await;
                    return;
                }
            }
        }
        let uri = trunk.uri_for(&call.number);
        let request = PlaceCall {
            job: call.id,
            purpose: call.purpose,
            addresses: crate::sip::resolve::target_addresses(&uri).await,
            uri,
            credentials: trunk.credentials(),
            ring_timeout: Duration::from_secs(trunk.ring_timeout_secs),
            caller_id: self.config.caller_id.clone(),
            number: call.number.clone(),
            entry: self.entry(call.purpose),
            ticket: call.ticket_number.as_deref().and_then(|n| n.parse().ok()),
        };
        tracing::info!(job = call.id, purpose = call.purpose.code(), attempt = call.attempts, trunk = %trunk_name, "placing an outbound call");
        crate::metrics::outbound_attempt(call.purpose.code());
        let job = call.id;
        self.in_flight.insert(
            job,
            InFlight {
                claim,
                trunk: trunk_name.clone(),
                started_at: self.store.now(),
            },
        );
        if place.send(request).is_err() {
            self.in_flight.remove(&job);
            self.gates.finished(&trunk_name);
        }
    }

    fn campaign_trunks(&self, purpose: Purpose) -> Vec<String> {
        self.config
            .campaign(purpose)
            .map(|campaign| campaign.trunks.clone())
            .unwrap_or_default()
    }

    fn entry(&self, purpose: Purpose) -> String {
        self.config
            .campaign(purpose)
            .map_or_else(|| purpose.code().to_string(), |c| c.entry_for(purpose))
    }

    async fn release(&self, claim: &ClaimedCall, at: DateTime<Utc>) {
        if let Err(e) = self.store.release_outbound_call(claim, at).await {
            tracing::warn!(job = claim.call.id, error = %e, "cannot give an outbound call back");
        }
    }

    fn record(
        &self,
        trunk: &str,
        started_at: DateTime<Utc>,
        ended: Option<&AttemptEnded>,
        cause: Cause,
    ) -> AttemptRecord {
        AttemptRecord {
            trunk: trunk.to_string(),
            sip_call_id: ended.map(|e| e.sip_call_id.clone()).unwrap_or_default(),
            started_at,
            ended_at: self.store.now(),
            sip_status: ended.and_then(|e| e.sip_status),
            cause,
            key_pressed: ended.and_then(|e| e.key_pressed).map(String::from),
        }
    }

    /// Records how a placed call ended and what comes next.
    async fn finish(&mut self, ended: AttemptEnded) {
        let Some(flight) = self.in_flight.remove(&ended.job) else {
            return;
        };
        self.gates.finished(&flight.trunk);
        let Some(rules) = self.campaigns.get(&flight.claim.call.purpose) else {
            return;
        };
        let call = &flight.claim.call;
        let now = self.store.now();
        let next = rules.after_attempt(
            self.store.sla().calendar(),
            ended.cause,
            call.attempts,
            call.trunk,
            now,
        );
        tracing::info!(
            job = call.id,
            cause = ended.cause.code(),
            status = ?ended.sip_status,
            key = ?ended.key_pressed,
            ?next,
            "outbound call ended"
        );
        crate::metrics::outbound_outcome(call.purpose.code(), ended.cause.code());
        let record = self.record(&flight.trunk, flight.started_at, Some(&ended), ended.cause);
        match self
            .store
            .finish_outbound_attempt(&flight.claim, record, next)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    job = call.id,
                    "the claim lapsed before the call ended; another gateway owns the job now"
                )
            }
            Err(e) => tracing::warn!(job = call.id, error = %e, "cannot record an outbound call"),
        }
    }
}
