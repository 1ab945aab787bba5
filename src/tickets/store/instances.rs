//! Gateway instances sharing the store, and the calls each has in its IVR
//! now: one row per instance, rewritten with its calls on every heartbeat
//! (`crate::instances` sends them). A reader counts an instance as alive
//! while its heartbeat is recent; one that stopped beating (killed, lost
//! its network) drops out by itself, and its rows are deleted once they
//! are old.

use super::{bind_in_order, from_millis, parameters, to_millis, Store, StoreError};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// Live calls per INSERT: six parameters each, far below both databases'
/// limits on parameters per statement.
const CALLS_PER_STATEMENT: usize = 500;

/// What one heartbeat says about an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceBeat {
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub sip_address: String,
    pub http_address: String,
    /// The loaded dialplans' version (a digest of their files).
    pub dialplan_version: String,
    pub draining: bool,
    /// Its calls in the IVR now.
    pub calls: Vec<LiveCallRow>,
}

/// A call in some instance's IVR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCallRow {
    /// The instance the call is on.
    pub instance: String,
    pub call_id: String,
    pub caller: String,
    pub dialled: String,
    pub node: Option<String>,
    pub since: DateTime<Utc>,
}

/// An instance as its last heartbeat left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub sip_address: String,
    pub http_address: String,
    pub dialplan_version: String,
    pub draining: bool,
    pub live_calls: i64,
}

impl Store {
    /// Records `beat` as its instance's state now, its calls replacing the
    /// ones it had, and deletes instances whose last heartbeat is before
    /// `forget_before` (with their calls).
    pub async fn beat(
        &self,
        beat: InstanceBeat,
        forget_before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = to_millis(self.now());
        self.write_timed("heartbeat", move |conn| {
            Box::pin(async move {
                sqlx::query("DELETE FROM gateway_instances WHERE heartbeat_at < $1")
                    .bind(to_millis(forget_before))
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(
                    "INSERT INTO gateway_instances (name, started_at, heartbeat_at, sip_address, \
                     http_address, dialplan_version, draining, live_calls) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, \
                     heartbeat_at = excluded.heartbeat_at, sip_address = excluded.sip_address, \
                     http_address = excluded.http_address, \
                     dialplan_version = excluded.dialplan_version, \
                     draining = excluded.draining, live_calls = excluded.live_calls",
                )
                .bind(&beat.name)
                .bind(to_millis(beat.started_at))
                .bind(now)
                .bind(&beat.sip_address)
                .bind(&beat.http_address)
                .bind(&beat.dialplan_version)
                .bind(i64::from(beat.draining))
                .bind(i64::try_from(beat.calls.len()).unwrap_or(i64::MAX))
                .execute(&mut *conn)
                .await?;
                sqlx::query("DELETE FROM gateway_live_calls WHERE instance = $1")
                    .bind(&beat.name)
                    .execute(&mut *conn)
                    .await?;
                for chunk in beat.calls.chunks(CALLS_PER_STATEMENT) {
                    let rows = (0..chunk.len())
                        .map(|i| format!("({})", parameters(i * 6 + 1, 6)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = bind_in_order(
                        conn,
                        format!(
                            "INSERT INTO gateway_live_calls (instance, call_id, caller, dialled, \
                             node, since) VALUES {rows}"
                        ),
                    );
                    let mut query = sqlx::query(&sql);
                    for call in chunk {
                        query = query
                            .bind(&beat.name)
                            .bind(&call.call_id)
                            .bind(&call.caller)
                            .bind(&call.dialled)
                            .bind(call.node.as_deref())
                            .bind(to_millis(call.since));
                    }
                    query.execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// Every instance that has beaten and not been forgotten, by name.
    pub async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, started_at, heartbeat_at, sip_address, http_address, \
             dialplan_version, draining, live_calls FROM gateway_instances ORDER BY name",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(InstanceRow {
                    name: row.try_get("name")?,
                    started_at: from_millis(row.try_get("started_at")?)?,
                    heartbeat_at: from_millis(row.try_get("heartbeat_at")?)?,
                    sip_address: row.try_get("sip_address")?,
                    http_address: row.try_get("http_address")?,
                    dialplan_version: row.try_get("dialplan_version")?,
                    draining: row.try_get::<i64, _>("draining")? != 0,
                    live_calls: row.try_get("live_calls")?,
                })
            })
            .collect()
    }

    /// The calls of instances other than `except` whose heartbeat is not
    /// before `alive_since`, longest-running first.
    pub async fn live_calls_elsewhere(
        &self,
        except: &str,
        alive_since: DateTime<Utc>,
    ) -> Result<Vec<LiveCallRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.instance, c.call_id, c.caller, c.dialled, c.node, c.since \
             FROM gateway_live_calls c JOIN gateway_instances i ON i.name = c.instance \
             WHERE c.instance <> $1 AND i.heartbeat_at >= $2 ORDER BY c.since, c.call_id",
        )
        .bind(except)
        .bind(to_millis(alive_since))
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LiveCallRow {
                    instance: row.try_get("instance")?,
                    call_id: row.try_get("call_id")?,
                    caller: row.try_get("caller")?,
                    dialled: row.try_get("dialled")?,
                    node: row.try_get("node")?,
                    since: from_millis(row.try_get("since")?)?,
                })
            })
            .collect()
    }

    /// Deletes `name`'s row and calls: it stopped cleanly.
    pub async fn remove_instance(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_string();
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query("DELETE FROM gateway_instances WHERE name = $1")
                    .bind(&name)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .await
    }
}
