//! The SQLite writer: one connection, one task, group commit.
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync.
//! Rather than have many connections queue on the lock and fsync once each,
//! every write is sent here; the task takes all writes that have queued up
//! (up to a limit), runs each inside a savepoint of one transaction, commits
//! once, and only then tells each caller its result. Under load one fsync
//! carries hundreds of tickets; alone, a write commits at once.
//!
//! Ticket creations, call records and texts that open tickets, the hot
//! paths (one creation and one record per IVR call, one text per SMS
//! report), are batched further: all of a batch's creations go in with a
//! few multi-row statements, and so do its call records and its texts. If
//! that fails, each is retried alone in its own savepoint, so one bad item
//! fails alone.

use super::calls::{insert_call_records, CallRecord};
use super::sms::{receive_text_tickets, SmsOutcome, TextTicket};
use super::tickets::{insert_tickets, PreparedTicket, Ticket};
use super::{sqlite_pragmas, StoreError};
use futures_core::future::BoxFuture;
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions, Connection, Executor};
use tokio::sync::{mpsc, oneshot};

/// One write: runs against the connection, then hears whether its
/// transaction committed.
trait Job: Send {
    /// Runs the write; true when it succeeded (its savepoint is kept).
    fn run<'c>(&'c mut self, conn: &'c mut AnyConnection) -> BoxFuture<'c, bool>;
    /// Delivers the result: the write's own, or the commit's failure.
    fn finish(self: Box<Self>, commit: Result<(), String>);
}

struct TypedJob<T, F> {
    op: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, StoreError>>
        + Send
        + 'static,
{
    fn run<'c>(&'c mut self, conn: &'c mut AnyConnection) -> BoxFuture<'c, bool> {
        Box::pin(async move {
            let Some(op) = self.op.take() else {
                return false;
            };
            let result = op(conn).await;
            let ok = result.is_ok();
            self.result = Some(result);
            ok
        })
    }

    fn finish(self: Box<Self>, commit: Result<(), String>) {
        let result = match (self.result, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(reason)) => Err(commit_failed(&reason)),
            (None, _) => Err(StoreError::Closed),
        };
        let _ = self.reply.send(result);
    }
}

type CreateReply = oneshot::Sender<Result<Ticket, StoreError>>;
type RecordReply = oneshot::Sender<Result<i64, StoreError>>;
type TextReply = oneshot::Sender<Result<SmsOutcome, StoreError>>;

enum Message {
    Job(Box<dyn Job>),
    Create(Box<PreparedTicket>, CreateReply),
    Record(Box<CallRecord>, RecordReply),
    Text(Box<TextTicket>, TextReply),
    Close(oneshot::Sender<()>),
}

/// What one commit carries.
#[derive(Default)]
struct Batch {
    creates: Vec<PreparedTicket>,
    create_replies: Vec<CreateReply>,
    records: Vec<CallRecord>,
    record_replies: Vec<RecordReply>,
    texts: Vec<TextTicket>,
    text_replies: Vec<TextReply>,
    jobs: Vec<Box<dyn Job>>,
}

impl Batch {
    fn len(&self) -> usize {
        self.creates.len() + self.records.len() + self.texts.len() + self.jobs.len()
    }

    fn add(&mut self, message: Message) -> Option<oneshot::Sender<()>> {
        match message {
            Message::Job(job) => self.jobs.push(job),
            Message::Create(ticket, reply) => {
                self.creates.push(*ticket);
                self.create_replies.push(reply);
            }
            Message::Record(record, reply) => {
                self.records.push(*record);
                self.record_replies.push(reply);
            }
            Message::Text(text, reply) => {
                self.texts.push(*text);
                self.text_replies.push(reply);
            }
            Message::Close(done) => return Some(done),
        }
        None
    }
}

/// The handle the store submits writes through.
pub(super) struct Writer {
    sender: mpsc::UnboundedSender<Message>,
}

impl Writer {
    /// Opens the writer's connection and starts its task.
    pub(super) async fn start(
        options: AnyConnectOptions,
        max_batch: usize,
    ) -> Result<Writer, StoreError> {
        let mut conn = options.connect().await?;
        sqlite_pragmas(&mut conn).await?;
        // Each batch runs its writes in savepoints, and SQLite keeps what a
        // savepoint would roll back in a subjournal: a temporary file by
        // default, which cost more CPU than SQLite's own work under load
        // (a write, close and unlink of a file per batch). In memory it
        // holds at most the pages one batch changes; it plays no part in
        // recovery (the WAL does), so durability is unchanged.
        conn.execute("PRAGMA temp_store = MEMORY").await?;
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(conn, receiver, max_batch));
        Ok(Writer { sender })
    }

    pub(super) async fn submit<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job = TypedJob {
            op: Some(op),
            result: None,
            reply,
        };
        self.sender
            .send(Message::Job(Box::new(job)))
            .map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }

    /// Creates a ticket in the next batch.
    pub(super) async fn create(&self, ticket: PreparedTicket) -> Result<Ticket, StoreError> {
        let (reply, result) = oneshot::channel();
        self.sender
            .send(Message::Create(Box::new(ticket), reply))
            .map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }

    /// Writes a call record in the next batch.
    pub(super) async fn record_call(&self, record: CallRecord) -> Result<i64, StoreError> {
        let (reply, result) = oneshot::channel();
        self.sender
            .send(Message::Record(Box::new(record), reply))
            .map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }

    /// Records a text that opens a ticket, the ticket and the reply, in the
    /// next batch.
    pub(super) async fn receive_text_ticket(
        &self,
        text: TextTicket,
    ) -> Result<SmsOutcome, StoreError> {
        let (reply, result) = oneshot::channel();
        self.sender
            .send(Message::Text(Box::new(text), reply))
            .map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }

    /// Lets queued writes finish, then closes the connection.
    pub(super) async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.sender.send(Message::Close(done)).is_ok() {
            let _ = finished.await;
        }
    }
}

async fn run(
    mut conn: AnyConnection,
    mut receiver: mpsc::UnboundedReceiver<Message>,
    max_batch: usize,
) {
    let mut closing = None;
    while closing.is_none() {
        let Some(first) = receiver.recv().await else {
            break;
        };
        let mut batch = Batch::default();
        closing = batch.add(first);
        while batch.len() < max_batch && closing.is_none() {
            match receiver.try_recv() {
                Ok(message) => closing = batch.add(message),
                Err(_) => break,
            }
        }
        if batch.len() == 0 {
            continue;
        }
        let mut results = BatchResults::default();
        let commit = commit_batch(&mut conn, &mut batch, &mut results)
            .await
            .map_err(|e| e.to_string());
        if let Err(reason) = &commit {
            tracing::error!(%reason, writes = batch.len(), "ticket store commit failed");
        }
        answer(batch.create_replies, results.created, &commit);
        answer(batch.record_replies, results.recorded, &commit);
        answer(batch.text_replies, results.texted, &commit);
        for job in batch.jobs {
            job.finish(commit.clone());
        }
    }
    let _ = conn.close().await;
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Rows per multi-row statement. sqlx binds each numbered parameter by
/// asking SQLite for its name, which scans the statement's parameter list,
/// so binding one statement cost the square of its parameters: 512 tickets
/// in one INSERT took seconds under load. The statements now bind
/// anonymous parameters (`bind_in_order`), but a few dozen rows still keep
/// each statement, and the number of distinct ones sqlx prepares and
/// caches, small while one commit carries the whole batch.
const ROWS_PER_STATEMENT: usize = 32;

/// Inserts `items` in a savepoint with one call of `insert` per
/// [`ROWS_PER_STATEMENT`] items; if any fails, each item alone in its own
/// savepoint, so one bad item fails alone. `results` gets one result per
/// item, in order.
async fn insert_together_or_alone<T, R>(
    conn: &mut AnyConnection,
    items: &[T],
    results: &mut Vec<Result<R, StoreError>>,
    insert: impl for<'c> Fn(&'c mut AnyConnection, &'c [T]) -> BoxFuture<'c, Result<Vec<R>, StoreError>>,
) -> Result<(), sqlx::Error> {
    if items.is_empty() {
        return Ok(());
    }
    conn.execute("SAVEPOINT write").await?;
    let mut together = Vec::with_capacity(items.len());
    for chunk in items.chunks(ROWS_PER_STATEMENT) {
        match insert(conn, chunk).await {
            Ok(done) => together.extend(done),
            Err(_) => break,
        }
    }
    if together.len() == items.len() {
        results.extend(together.into_iter().map(Ok));
        return Ok(());
    }
    conn.execute("ROLLBACK TO write").await?;
    for item in items {
        conn.execute("SAVEPOINT write").await?;
        let result = insert(conn, std::slice::from_ref(item)).await;
        if result.is_err() {
            conn.execute("ROLLBACK TO write").await?;
        }
        results.push(result.and_then(|mut one| one.pop().ok_or(StoreError::Closed)));
    }
    Ok(())
}

/// Each batched item's own result, in the order of the batch.
#[derive(Default)]
struct BatchResults {
    created: Vec<Result<Ticket, StoreError>>,
    recorded: Vec<Result<i64, StoreError>>,
    texted: Vec<Result<SmsOutcome, StoreError>>,
}

/// Tells each batched item's caller its result, unless the commit failed.
fn answer<T>(
    replies: Vec<oneshot::Sender<Result<T, StoreError>>>,
    results: Vec<Result<T, StoreError>>,
    commit: &Result<(), String>,
) {
    for (reply, result) in replies.into_iter().zip(results) {
        let result = match (commit, result) {
            (Ok(()), result) => result,
            (Err(_), Err(e)) => Err(e),
            (Err(reason), Ok(_)) => Err(commit_failed(reason)),
        };
        let _ = reply.send(result);
    }
}

fn commit_failed(reason: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!("commit failed: {reason}")))
}

/// Runs the batch in one transaction: creations together (or one by one
/// if together fails), call records and texts likewise, then each job in
/// its own savepoint. `results` gets one result per batched item, in order.
async fn commit_batch(
    conn: &mut AnyConnection,
    batch: &mut Batch,
    results: &mut BatchResults,
) -> Result<(), sqlx::Error> {
    let result = run_batch(conn, batch, results).await;
    if result.is_err() {
        let _ = conn.execute("ROLLBACK").await;
    }
    // Every batched item gets an answer, even when the batch stopped early.
    fill(&mut results.created, batch.creates.len());
    fill(&mut results.recorded, batch.records.len());
    fill(&mut results.texted, batch.texts.len());
    result
}

fn fill<T>(results: &mut Vec<Result<T, StoreError>>, len: usize) {
    while results.len() < len {
        results.push(Err(StoreError::Closed));
    }
}

async fn run_batch(
    conn: &mut AnyConnection,
    batch: &mut Batch,
    results: &mut BatchResults,
) -> Result<(), sqlx::Error> {
    conn.execute("BEGIN IMMEDIATE").await?;
    insert_together_or_alone(conn, &batch.creates, &mut results.created, |conn, items| {
        Box::pin(insert_tickets(conn, items))
    })
    .await?;
    insert_together_or_alone(
        conn,
        &batch.records,
        &mut results.recorded,
        |conn, items| Box::pin(insert_call_records(conn, items)),
    )
    .await?;
    insert_together_or_alone(conn, &batch.texts, &mut results.texted, |conn, items| {
        Box::pin(receive_text_tickets(conn, items))
    })
    .await?;
    for job in batch.jobs.iter_mut() {
        conn.execute("SAVEPOINT write").await?;
        // A kept savepoint is left open rather than released: the COMMIT
        // keeps them all, and one statement less per write is measurable.
        // ROLLBACK TO names the innermost savepoint, which is this job's.
        if !job.run(conn).await {
            conn.execute("ROLLBACK TO write").await?;
        }
    }
    conn.execute("COMMIT").await?;
    Ok(())
}
