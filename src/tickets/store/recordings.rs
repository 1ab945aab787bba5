//! Recording rows: what the caller said (a dialplan's `record` node), kept
//! on a ticket or, until the call creates one, on the call. The audio is a
//! file (`crate::recordings`); the row says which ticket and call it
//! belongs to, how long it is, and whether retention has purged it. Each
//! recording kept and each play by staff is on the ticket's history.

use super::tickets::{insert_event, load_for_change};
use super::{from_millis, to_millis, Store, StoreError};
use crate::tickets::model::Actor;
use crate::tickets::number::TicketNumber;
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

/// What a recording is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingKind {
    /// A caller's own words (a `record` node): a fault description.
    Description,
    /// A bridged agent call, the caller left and the agent right.
    Call,
}

impl RecordingKind {
    pub fn code(self) -> &'static str {
        match self {
            RecordingKind::Description => "description",
            RecordingKind::Call => "call",
        }
    }

    fn parse(code: &str) -> Option<RecordingKind> {
        [RecordingKind::Description, RecordingKind::Call]
            .into_iter()
            .find(|kind| kind.code() == code)
    }
}

/// A recording to keep (its file already written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecording {
    pub token: String,
    pub kind: RecordingKind,
    /// The ticket's number, when the call has one.
    pub ticket: Option<String>,
    pub sip_call_id: String,
    pub channels: u16,
    pub duration_ms: u64,
    pub bytes: u64,
}

/// A recording as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecording {
    pub id: i64,
    pub token: String,
    pub kind: RecordingKind,
    pub ticket_id: Option<i64>,
    pub sip_call_id: String,
    pub channels: u16,
    pub duration_ms: u64,
    pub bytes: u64,
    pub created_at: DateTime<Utc>,
    /// When retention deleted the audio.
    pub purged_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, token, kind, ticket_id, sip_call_id, channels, duration_ms, bytes, \
                       created_at, purged_at";

type Row = (
    i64,
    String,
    String,
    Option<i64>,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
);

fn stored(row: Row) -> Result<StoredRecording, StoreError> {
    let (id, token, kind, ticket_id, sip_call_id, channels, duration_ms, bytes, created, purged) =
        row;
    let corrupt = |what: &str| StoreError::Corrupt(format!("recording {id}: {what}"));
    Ok(StoredRecording {
        id,
        token,
        kind: RecordingKind::parse(&kind).ok_or_else(|| corrupt("kind"))?,
        ticket_id,
        sip_call_id,
        channels: u16::try_from(channels).map_err(|_| corrupt("channels"))?,
        duration_ms: u64::try_from(duration_ms).map_err(|_| corrupt("duration"))?,
        bytes: u64::try_from(bytes).map_err(|_| corrupt("size"))?,
        created_at: from_millis(created)?,
        purged_at: purged.map(from_millis).transpose()?,
    })
}

/// The ticket's history line for a recording put on it.
fn recorded_detail(kind: RecordingKind, duration_ms: u64) -> String {
    let seconds = duration_ms as f64 / 1000.0;
    match kind {
        RecordingKind::Description => {
            format!("the caller's description recorded ({seconds:.1} s)")
        }
        RecordingKind::Call => format!("the call recorded ({seconds:.1} s)"),
    }
}

/// Puts "recorded" on the ticket's history for each recording of
/// `sip_call_id` not yet on a ticket, and links them to `ticket_id`.
async fn link_call(
    conn: &mut AnyConnection,
    sip_call_id: &str,
    ticket_id: i64,
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let unlinked: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT id, kind, duration_ms FROM recordings WHERE sip_call_id = $1 \
         AND ticket_id IS NULL ORDER BY id",
    )
    .bind(sip_call_id)
    .fetch_all(&mut *conn)
    .await?;
    for (id, kind, duration_ms) in &unlinked {
        sqlx::query("UPDATE recordings SET ticket_id = $1 WHERE id = $2")
            .bind(ticket_id)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        let kind = RecordingKind::parse(kind)
            .ok_or_else(|| StoreError::Corrupt(format!("recording {id}: kind {kind:?}")))?;
        let detail = recorded_detail(kind, u64::try_from(*duration_ms).unwrap_or(0));
        insert_event(
            conn,
            ticket_id,
            at,
            &Actor::system("ivr"),
            "recording",
            None,
            None,
            &detail,
        )
        .await?;
    }
    Ok(unlinked.len() as u64)
}

impl Store {
    /// Keeps a recording whose file is written; on its ticket's history
    /// when it has one.
    pub async fn insert_recording(&self, new: NewRecording) -> Result<StoredRecording, StoreError> {
        let ticket: Option<TicketNumber> = new.ticket.as_deref().map(str::parse).transpose()?;
        let now = self.now();
        let id = self
            .write(move |conn| {
                Box::pin(async move {
                    let ticket_id = match &ticket {
                        Some(number) => Some(load_for_change(conn, number, None).await?.id),
                        None => None,
                    };
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO recordings (token, kind, ticket_id, sip_call_id, channels, \
                         duration_ms, bytes, created_at) VALUES ($1, $2, NULL, $3, $4, $5, $6, $7) \
                         RETURNING id",
                    )
                    .bind(&new.token)
                    .bind(new.kind.code())
                    .bind(&new.sip_call_id)
                    .bind(i64::from(new.channels))
                    .bind(i64::try_from(new.duration_ms).unwrap_or(i64::MAX))
                    .bind(i64::try_from(new.bytes).unwrap_or(i64::MAX))
                    .bind(to_millis(now))
                    .fetch_one(&mut *conn)
                    .await?;
                    if let Some(ticket_id) = ticket_id {
                        link_call(conn, &new.sip_call_id, ticket_id, now).await?;
                    }
                    Ok(id)
                })
            })
            .await?;
        self.recording_by_id(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("recording {id} vanished")))
    }

    /// Puts the recordings call `sip_call_id` made before it had a ticket
    /// on ticket `number`; returns how many.
    pub async fn link_call_recordings(
        &self,
        sip_call_id: &str,
        number: &str,
    ) -> Result<u64, StoreError> {
        let number: TicketNumber = number.parse()?;
        let sip_call_id = sip_call_id.to_string();
        let now = self.now();
        self.write(move |conn| {
            Box::pin(async move {
                let ticket = load_for_change(conn, &number, None).await?;
                link_call(conn, &sip_call_id, ticket.id, now).await
            })
        })
        .await
    }

    async fn recording_by_id(&self, id: i64) -> Result<Option<StoredRecording>, StoreError> {
        let row: Option<Row> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM recordings WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
        row.map(stored).transpose()
    }

    /// The recording with this token.
    pub async fn recording(&self, token: &str) -> Result<Option<StoredRecording>, StoreError> {
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE token = $1"
        ))
        .bind(token)
        .fetch_optional(self.reader())
        .await?;
        row.map(stored).transpose()
    }

    /// A ticket's recordings, oldest first.
    pub async fn ticket_recordings(
        &self,
        ticket_id: i64,
    ) -> Result<Vec<StoredRecording>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE ticket_id = $1 ORDER BY id"
        ))
        .bind(ticket_id)
        .fetch_all(self.reader())
        .await?;
        rows.into_iter().map(stored).collect()
    }

    /// Puts a play of `recording` by `actor` on its ticket's history (a
    /// recording not on a ticket has no history to put it on).
    pub async fn recording_played(
        &self,
        recording: &StoredRecording,
        actor: Actor,
    ) -> Result<(), StoreError> {
        let Some(ticket_id) = recording.ticket_id else {
            return Ok(());
        };
        let now = self.now();
        let detail = format!("recording {} played", recording.id);
        self.write(move |conn| {
            Box::pin(async move {
                insert_event(
                    conn,
                    ticket_id,
                    now,
                    &actor,
                    "recording_played",
                    None,
                    None,
                    &detail,
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// Recordings made before `before` whose audio is still kept, oldest
    /// first (at most `limit`).
    pub async fn recordings_to_purge(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<StoredRecording>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE created_at < $1 AND purged_at IS NULL \
             ORDER BY created_at LIMIT $2"
        ))
        .bind(to_millis(before))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.into_iter().map(stored).collect()
    }

    /// Marks a recording's audio deleted.
    pub async fn mark_recording_purged(&self, id: i64) -> Result<(), StoreError> {
        let now = to_millis(self.now());
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE recordings SET purged_at = $1 WHERE id = $2 AND purged_at IS NULL",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *conn)
                .await?;
                Ok(())
            })
        })
        .await
    }
}
