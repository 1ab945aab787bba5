//! This gateway among the others that share its store (scale-out behind a
//! SIP proxy): a heartbeat that writes, every few seconds, this
//! instance's state (addresses, dialplan version, draining) and the calls
//! in its IVR to the store, and [`Cluster`], the view staff see: every
//! alive instance's calls, each marked with its instance, and the
//! instances themselves, with a warning when their dialplans differ.
//!
//! An instance counts as alive while its last heartbeat is younger than
//! [`Cluster::expiry`] (three heartbeats): one killed outright drops out of
//! the view within that time, one that stops cleanly removes its row.

use crate::health::Readiness;
use crate::ivr::runner::LiveCalls;
use crate::tickets::store::{InstanceBeat, InstanceRow, LiveCallRow, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Heartbeats an instance may miss before it counts as gone.
const MISSED_BEATS: u32 = 3;
/// How long the rows of a gone instance are kept (shown as gone).
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Who this instance is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub sip_address: String,
    pub http_address: String,
    pub started_at: DateTime<Utc>,
}

impl Identity {
    /// `configured`, or when empty the host's name and the SIP address
    /// (unique for instances sharing a host on different addresses).
    pub fn name_for(configured: &str, sip_address: &str) -> String {
        if !configured.is_empty() {
            return configured.to_string();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "gateway".to_string());
        format!("{host}/{sip_address}")
    }
}

/// The instances sharing the store and their live calls, as this instance
/// sees them. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    store: Store,
    identity: Identity,
    local: LiveCalls,
    heartbeat: Duration,
}

/// An instance and whether it is alive now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    pub row: InstanceRow,
    pub alive: bool,
    /// This instance (the one answering).
    pub this: bool,
}

impl Cluster {
    pub fn new(store: Store, identity: Identity, local: LiveCalls, heartbeat: Duration) -> Self {
        Cluster {
            store,
            identity,
            local,
            heartbeat,
        }
    }

    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// How long after its last heartbeat an instance counts as gone.
    pub fn expiry(&self) -> Duration {
        self.heartbeat * MISSED_BEATS
    }

    fn alive_since(&self) -> DateTime<Utc> {
        self.store.now() - chrono::Duration::from_std(self.expiry()).unwrap_or_default()
    }

    /// The calls in every alive instance's IVR, longest-running first:
    /// this instance's from memory (current to the moment), the others' as
    /// of their last heartbeat.
    pub async fn live_calls(&self) -> Result<Vec<LiveCallRow>, StoreError> {
        let mut calls: Vec<LiveCallRow> = self
            .local
            .snapshot()
            .into_iter()
            .map(|call| call_row(&self.identity.name, call))
            .collect();
        calls.extend(
            self.store
                .live_calls_elsewhere(&self.identity.name, self.alive_since())
                .await?,
        );
        calls.sort_by(|a, b| (a.since, &a.call_id).cmp(&(b.since, &b.call_id)));
        Ok(calls)
    }

    /// Every instance the store knows, alive or recently gone, by name.
    pub async fn instances(&self) -> Result<Vec<InstanceStatus>, StoreError> {
        let alive_since = self.alive_since();
        Ok(self
            .store
            .instances()
            .await?
            .into_iter()
            .map(|row| InstanceStatus {
                alive: row.heartbeat_at >= alive_since,
                this: row.name == self.identity.name,
                row,
            })
            .collect())
    }

    /// The distinct dialplan versions of the alive instances (more than
    /// one: a reload reached some instances and not others).
    pub fn versions(instances: &[InstanceStatus]) -> BTreeSet<&str> {
        instances
            .iter()
            .filter(|i| i.alive)
            .map(|i| i.row.dialplan_version.as_str())
            .collect()
    }

    /// Writes a heartbeat every `heartbeat` until `stop` says so, then
    /// removes this instance's row. A heartbeat the store refuses is logged
    /// and tried again at the next beat; the gateway serves on.
    pub fn spawn_heartbeat(
        &self,
        readiness: Readiness,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let cluster = self.clone();
        tokio::spawn(async move {
            let mut versions_seen = String::new();
            loop {
                cluster.beat(&readiness).await;
                cluster.warn_of_versions(&mut versions_seen).await;
                tokio::select! {
                    _ = tokio::time::sleep(cluster.heartbeat) => {}
                    _ = stop.changed() => break,
                }
                if *stop.borrow() {
                    break;
                }
            }
            if let Err(e) = cluster.store.remove_instance(&cluster.identity.name).await {
                tracing::warn!(error = %e, "cannot remove this instance's heartbeat row");
            }
        })
    }

    async fn beat(&self, readiness: &Readiness) {
        let calls = self
            .local
            .snapshot()
            .into_iter()
            .map(|call| call_row(&self.identity.name, call))
            .collect();
        let beat = InstanceBeat {
            name: self.identity.name.clone(),
            started_at: self.identity.started_at,
            sip_address: self.identity.sip_address.clone(),
            http_address: self.identity.http_address.clone(),
            dialplan_version: readiness.dialplan_version(),
            draining: readiness.draining(),
            calls,
        };
        let forget_before =
            self.store.now() - chrono::Duration::from_std(FORGET_AFTER).unwrap_or_default();
        match self.store.beat(beat, forget_before).await {
            Ok(()) => crate::metrics::heartbeat(true),
            Err(e) => {
                crate::metrics::heartbeat(false);
                tracing::warn!(error = %e, "heartbeat not written; other instances' consoles will miss this one's calls");
            }
        }
    }

    /// Logs once per change when alive instances run different dialplans.
    async fn warn_of_versions(&self, seen: &mut String) {
        let Ok(instances) = self.instances().await else {
            return;
        };
        let versions = Cluster::versions(&instances);
        let now: String = versions.iter().copied().collect::<Vec<_>>().join(",");
        if now == *seen {
            return;
        }
        if versions.len() > 1 {
            let detail: Vec<String> = instances
                .iter()
                .filter(|i| i.alive)
                .map(|i| format!("{} has {}", i.row.name, i.row.dialplan_version))
                .collect();
            tracing::warn!(
                instances = %detail.join("; "),
                "instances run different dialplans: reload the others (SIGHUP) or roll back"
            );
        }
        *seen = now;
    }
}

/// A call of `instance` as the store keeps it.
fn call_row(instance: &str, call: crate::ivr::runner::LiveCall) -> LiveCallRow {
    LiveCallRow {
        instance: instance.to_string(),
        call_id: call.call_id,
        caller: call.caller,
        dialled: call.dialled,
        node: call.node,
        since: call.since,
    }
}
