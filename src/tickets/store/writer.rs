//! The SQLite writer: one connection, one task, group commit.
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync.
//! Rather than have many connections queue on the lock and fsync once each,
//! every write is sent here; the task takes all writes that have queued up
//! (up to a limit), runs each inside a savepoint of one transaction, commits
//! once, and only then tells each caller its result. Under load one fsync
//! carries hundreds of tickets; alone, a write commits at once.

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
            (Some(Ok(_)), Err(reason)) => Err(StoreError::Database(sqlx::Error::Protocol(
                format!("commit failed: {reason}"),
            ))),
            (None, _) => Err(StoreError::Closed),
        };
        let _ = self.reply.send(result);
    }
}

enum Message {
    Job(Box<dyn Job>),
    Close(oneshot::Sender<()>),
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
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    let mut closing = None;
    while closing.is_none() {
        let Some(first) = receiver.recv().await else {
            break;
        };
        match first {
            Message::Job(job) => batch.push(job),
            Message::Close(done) => closing = Some(done),
        }
        while batch.len() < max_batch && closing.is_none() {
            match receiver.try_recv() {
                Ok(Message::Job(job)) => batch.push(job),
                Ok(Message::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let commit = commit_batch(&mut conn, &mut batch)
                .await
                .map_err(|e| e.to_string());
            if let Err(reason) = &commit {
                tracing::error!(%reason, writes = batch.len(), "ticket store commit failed");
            }
            for job in batch.drain(..) {
                job.finish(commit.clone());
            }
        }
    }
    let _ = conn.close().await;
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Runs every job in one transaction, each in its own savepoint.
async fn commit_batch(
    conn: &mut AnyConnection,
    batch: &mut [Box<dyn Job>],
) -> Result<(), sqlx::Error> {
    conn.execute("BEGIN IMMEDIATE").await?;
    for job in batch.iter_mut() {
        if let Err(e) = conn.execute("SAVEPOINT write").await {
            let _ = conn.execute("ROLLBACK").await;
            return Err(e);
        }
        // A kept savepoint is left open rather than released: the COMMIT
        // keeps them all, and one statement less per write is measurable.
        // ROLLBACK TO names the innermost savepoint, which is this job's.
        if !job.run(conn).await {
            if let Err(e) = conn.execute("ROLLBACK TO write").await {
                let _ = conn.execute("ROLLBACK").await;
                return Err(e);
            }
        }
    }
    if let Err(e) = conn.execute("COMMIT").await {
        let _ = conn.execute("ROLLBACK").await;
        return Err(e);
    }
    Ok(())
}
