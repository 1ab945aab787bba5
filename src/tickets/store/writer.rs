//! The writer: group commit on one connection per writer task.
//!
//! A durable commit costs an fsync (SQLite) or a WAL flush and a round trip
//! (PostgreSQL). Rather than have every write pay for its own, writes that
//! come often are sent here; a writer task takes all writes that have
//! queued up (up to a limit), runs them in one transaction, commits once,
//! and only then tells each caller its result. Under load one commit
//! carries hundreds of tickets; alone, a write commits at once.
//!
//! Ticket creations, call records and texts that open tickets, the hot
//! paths (one creation and one record per IVR call, one text per SMS
//! report), are batched further: all of a batch's creations go in with a
//! few multi-row statements, and so do its call records and its texts. If
//! that fails, each is retried alone in its own savepoint, so one bad item
//! fails alone (on PostgreSQL a failed statement aborts the transaction,
//! and `ROLLBACK TO` the savepoint is what makes it usable again).
//!
//! SQLite has one writer task: it allows one writer at a time, so every
//! write goes through it, other writes as jobs in savepoints of the same
//! transaction. PostgreSQL has a few (`database.writers`) sharing one
//! queue: while one commits, the next gathers its batch. Only the batched
//! items go through them there; other writes are transactions of their own
//! on the pool, since PostgreSQL runs those side by side. Gateways sharing
//! one PostgreSQL can make two batches wait on each other (the same text
//! delivered to two of them): texts are inserted in message id order so
//! that two batches wait in one direction only, and a batch that still
//! ends in a deadlock or serialization failure is run again, up to
//! [`MAX_ATTEMPTS`] times, rather than failing all of its callers.

use super::calls::{insert_call_records, CallRecord};
use super::sms::{receive_text_tickets, SmsOutcome, TextTicket};
use super::tickets::{insert_tickets, PreparedTicket, Ticket};
use super::{sqlite_pragmas, Backend, StoreError};
use futures_core::future::BoxFuture;
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions, Connection, Executor};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};

/// How many times a batch (or the SMS limits' statement) runs when
/// PostgreSQL aborts it for a deadlock or a serialization failure before
/// its callers hear the error.
pub(super) const MAX_ATTEMPTS: u32 = 5;

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
            (Some(Ok(_)) | None, Err(reason)) => Err(commit_failed(&reason)),
            (None, Ok(())) => Err(StoreError::Closed),
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

    /// Puts the texts in message id order, the order their rows are
    /// inserted and so locked in: two batches holding the same two texts
    /// then wait on each other in one direction only.
    fn sort_texts(&mut self) {
        let mut texts: Vec<(TextTicket, TextReply)> = self
            .texts
            .drain(..)
            .zip(self.text_replies.drain(..))
            .collect();
        texts.sort_by(|(a, _), (b, _)| a.key().cmp(&b.key()));
        (self.texts, self.text_replies) = texts.into_iter().unzip();
    }
}

/// The handle the store submits writes through.
pub(super) struct Writer {
    sender: mpsc::UnboundedSender<Message>,
    /// Writer tasks, each told to close once.
    tasks: usize,
}

impl Writer {
    /// Opens the writers' connections (one on SQLite, `writers` on
    /// PostgreSQL) and starts their tasks.
    pub(super) async fn start(
        options: AnyConnectOptions,
        backend: Backend,
        writers: usize,
        max_batch: usize,
    ) -> Result<Writer, StoreError> {
        let tasks = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => writers.max(1),
        };
        let mut conns = Vec::with_capacity(tasks);
        for _ in 0..tasks {
            conns.push(WriterConnection::open(options.clone(), backend).await?);
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(receiver));
        for conn in conns {
            tokio::spawn(run(conn, backend, receiver.clone(), max_batch));
        }
        Ok(Writer { sender, tasks })
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

    /// Lets queued writes finish, then closes the connections.
    pub(super) async fn close(&self) {
        let mut closed = Vec::with_capacity(self.tasks);
        for _ in 0..self.tasks {
            let (done, finished) = oneshot::channel();
            if self.sender.send(Message::Close(done)).is_ok() {
                closed.push(finished);
            }
        }
        for finished in closed {
            let _ = finished.await;
        }
    }
}

/// Takes the writes queued on `receiver` (waiting for the first), at most
/// `max_batch`, and whether one of them asked this task to close.
async fn gather(
    receiver: &Mutex<mpsc::UnboundedReceiver<Message>>,
    max_batch: usize,
) -> Option<(Batch, Option<oneshot::Sender<()>>)> {
    // Held while gathering only: the next task gathers while this one commits.
    let mut receiver = receiver.lock().await;
    let first = receiver.recv().await?;
    let mut batch = Batch::default();
    let mut closing = batch.add(first);
    while batch.len() < max_batch && closing.is_none() {
        match receiver.try_recv() {
            Ok(message) => closing = batch.add(message),
            Err(_) => break,
        }
    }
    Some((batch, closing))
}

/// A writer task's connection, opened again when it broke (a PostgreSQL
/// restart, a dropped network connection), as a pool would.
struct WriterConnection {
    options: AnyConnectOptions,
    backend: Backend,
    conn: Option<AnyConnection>,
}

impl WriterConnection {
    async fn open(
        options: AnyConnectOptions,
        backend: Backend,
    ) -> Result<WriterConnection, sqlx::Error> {
        let mut writer = WriterConnection {
            options,
            backend,
            conn: None,
        };
        writer.get().await?;
        Ok(writer)
    }

    /// The connection, opened if there is none.
    async fn get(&mut self) -> Result<&mut AnyConnection, sqlx::Error> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => connect(&self.options, self.backend).await?,
        };
        Ok(self.conn.insert(conn))
    }

    /// After a failed batch: drops the connection if it no longer answers,
    /// so that the next batch opens a new one.
    async fn check(&mut self) {
        if let Some(conn) = &mut self.conn {
            if conn.ping().await.is_err() {
                self.conn = None;
            }
        }
    }

    async fn close(self) {
        if let Some(conn) = self.conn {
            let _ = conn.close().await;
        }
    }
}

/// Opens a writer's connection (with SQLite's settings on SQLite).
async fn connect(
    options: &AnyConnectOptions,
    backend: Backend,
) -> Result<AnyConnection, sqlx::Error> {
    let mut conn = options.connect().await?;
    if backend == Backend::Sqlite {
        sqlite_pragmas(&mut conn).await?;
        // Each batch runs its writes in savepoints, and SQLite keeps what a
        // savepoint would roll back in a subjournal: a temporary file by
        // default, which cost more CPU than SQLite's own work under load (a
        // write, close and unlink of a file per batch). In memory it holds
        // at most the pages one batch changes; it plays no part in recovery
        // (the WAL does), so durability is unchanged.
        conn.execute("PRAGMA temp_store = MEMORY").await?;
    }
    Ok(conn)
}

async fn run(
    mut conn: WriterConnection,
    backend: Backend,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<Message>>>,
    max_batch: usize,
) {
    let mut closing = None;
    while closing.is_none() {
        let Some((mut batch, close)) = gather(&receiver, max_batch).await else {
            break;
        };
        closing = close;
        if batch.len() == 0 {
            continue;
        }
        batch.sort_texts();
        let mut results = BatchResults::default();
        let commit = match conn.get().await {
            Ok(open) => commit_batch(open, backend, &mut batch, &mut results).await,
            Err(e) => Err(e),
        }
        .map_err(|e| e.to_string());
        if let Err(reason) = &commit {
            tracing::error!(%reason, writes = batch.len(), "ticket store commit failed");
            conn.check().await;
        }
        // Every batched item gets an answer, even when the batch stopped early.
        fill(&mut results.created, batch.creates.len(), &commit);
        fill(&mut results.recorded, batch.records.len(), &commit);
        fill(&mut results.texted, batch.texts.len(), &commit);
        answer(batch.create_replies, results.created, &commit);
        answer(batch.record_replies, results.recorded, &commit);
        answer(batch.text_replies, results.texted, &commit);
        for job in batch.jobs {
            job.finish(commit.clone());
        }
    }
    conn.close().await;
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
/// item, in order. A deadlock or serialization failure is the batch's, not
/// the item's: it ends the batch, to be run again.
async fn insert_together_or_alone<T, R>(
    conn: &mut AnyConnection,
    opening: &mut Option<&'static str>,
    items: &[T],
    results: &mut Vec<Result<R, StoreError>>,
    insert: impl for<'c> Fn(&'c mut AnyConnection, &'c [T]) -> BoxFuture<'c, Result<Vec<R>, StoreError>>,
) -> Result<(), sqlx::Error> {
    if items.is_empty() {
        return Ok(());
    }
    savepoint(conn, opening).await?;
    let mut together = Vec::with_capacity(items.len());
    for chunk in items.chunks(ROWS_PER_STATEMENT) {
        match insert(conn, chunk).await {
            Ok(done) => together.extend(done),
            Err(e) => {
                whole_batch_failure(e)?;
                break;
            }
        }
    }
    if together.len() == items.len() {
        results.extend(together.into_iter().map(Ok));
        return Ok(());
    }
    conn.execute("ROLLBACK TO write").await?;
    for item in items {
        conn.execute("SAVEPOINT write").await?;
        let result = match insert(conn, std::slice::from_ref(item)).await {
            Ok(mut one) => one.pop().ok_or(StoreError::Closed),
            Err(e) => {
                conn.execute("ROLLBACK TO write").await?;
                Err(whole_batch_failure(e)?)
            }
        };
        results.push(result);
    }
    Ok(())
}

/// Opens a savepoint, sending the transaction's `BEGIN` with it if it has
/// not been sent yet: one round trip less per batch, which on PostgreSQL
/// is one of nine.
async fn savepoint(
    conn: &mut AnyConnection,
    opening: &mut Option<&'static str>,
) -> Result<(), sqlx::Error> {
    match opening.take() {
        Some(begin) => {
            let both = format!("{begin}; SAVEPOINT write");
            conn.execute(both.as_str()).await?
        }
        None => conn.execute("SAVEPOINT write").await?,
    };
    Ok(())
}

/// `error` back when it is the item's own; as the batch's error when it is
/// a deadlock (40P01) or serialization failure (40001), which say nothing
/// about the item and end the whole transaction.
fn whole_batch_failure(error: StoreError) -> Result<StoreError, sqlx::Error> {
    match error {
        StoreError::Database(e) if worth_retrying(&e) => Err(e),
        other => Ok(other),
    }
}

/// A deadlock (40P01) or serialization failure (40001): the transaction's
/// bad luck, not its callers' fault; running it again may succeed.
pub(super) fn worth_retrying(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(e) = error else {
        return false;
    };
    matches!(e.code().as_deref(), Some("40P01" | "40001"))
}

/// Each batched item's own result, in the order of the batch.
#[derive(Default)]
struct BatchResults {
    created: Vec<Result<Ticket, StoreError>>,
    recorded: Vec<Result<i64, StoreError>>,
    texted: Vec<Result<SmsOutcome, StoreError>>,
}

impl BatchResults {
    fn clear(&mut self) {
        self.created.clear();
        self.recorded.clear();
        self.texted.clear();
    }
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
/// A batch PostgreSQL aborted for a deadlock or serialization failure runs
/// again, from the start, a few times; a batch with jobs cannot (a job
/// runs once), but only SQLite's carry jobs, and SQLite fails neither way.
async fn commit_batch(
    conn: &mut AnyConnection,
    backend: Backend,
    batch: &mut Batch,
    results: &mut BatchResults,
) -> Result<(), sqlx::Error> {
    let mut attempt = 1;
    loop {
        let result = run_batch(conn, backend, batch, results).await;
        if result.is_err() {
            let _ = conn.execute("ROLLBACK").await;
        }
        match result {
            Err(e) if worth_retrying(&e) && batch.jobs.is_empty() && attempt < MAX_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, writes = batch.len(), "ticket store batch aborted by the database; running it again");
                results.clear();
                // A short pause, different for each batch, so that two
                // batches that deadlocked do not meet again at once.
                let pause = rand::random_range(1..=10 * u64::from(attempt));
                tokio::time::sleep(Duration::from_millis(pause)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Answers for the items a batch stopped before: why it stopped.
fn fill<T>(results: &mut Vec<Result<T, StoreError>>, len: usize, commit: &Result<(), String>) {
    while results.len() < len {
        results.push(Err(match commit {
            Err(reason) => commit_failed(reason),
            Ok(()) => StoreError::Closed,
        }));
    }
}

async fn run_batch(
    conn: &mut AnyConnection,
    backend: Backend,
    batch: &mut Batch,
    results: &mut BatchResults,
) -> Result<(), sqlx::Error> {
    // SQLite takes its write lock at once rather than on the first write
    // (which could fail on a lock a reader upgraded); PostgreSQL locks rows.
    // Sent with the first savepoint.
    let mut opening = Some(match backend {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    });
    insert_together_or_alone(
        conn,
        &mut opening,
        &batch.creates,
        &mut results.created,
        |conn, items| Box::pin(insert_tickets(conn, items)),
    )
    .await?;
    insert_together_or_alone(
        conn,
        &mut opening,
        &batch.records,
        &mut results.recorded,
        |conn, items| Box::pin(insert_call_records(conn, items)),
    )
    .await?;
    insert_together_or_alone(
        conn,
        &mut opening,
        &batch.texts,
        &mut results.texted,
        |conn, items| Box::pin(receive_text_tickets(conn, items)),
    )
    .await?;
    for job in batch.jobs.iter_mut() {
        savepoint(conn, &mut opening).await?;
        // A kept savepoint is left open rather than released: the COMMIT
        // keeps them all, and one statement less per write is measurable.
        // ROLLBACK TO names the innermost savepoint, which is this job's.
        if !job.run(conn).await {
            conn.execute("ROLLBACK TO write").await?;
        }
    }
    if let Some(begin) = opening {
        conn.execute(begin).await?;
    }
    conn.execute("COMMIT").await?;
    Ok(())
}
