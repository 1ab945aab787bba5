//! One SIP connection over a byte stream, whatever carries it: a TCP
//! socket, or TLS over one (anything `AsyncRead + AsyncWrite`). The task that serves a connection reads it: it frames
//! messages (`framing`) and hands them to the endpoint's task; once the
//! connection is registered a writer task drains its queue. Everything a
//! connection may do once
//! admitted (`connections` decides whether it is) is bounded here:
//!
//! - a message must arrive whole within `message_timeout` of its first
//!   byte, and an accepted connection must bring its first message within
//!   `message_timeout` of being accepted (a TLS handshake, done before the
//!   stream reaches [`serve`], counts against the same clock);
//! - a connection that carries no dialog is closed after `idle_timeout`
//!   without a message; the endpoint's task marks the connections live
//!   calls and transactions use ([`Link::set_in_use`]), and those stay;
//! - the read side holds at most one largest message; the write queue at
//!   most `max_queued_bytes` (beyond, the endpoint's task closes the
//!   connection: the peer is not reading), and one write may take at most
//!   `message_timeout`.
//!
//! A connection is registered with the endpoint's task only when its
//! first message is complete, so connections that never send one cost
//! that task nothing. Every close is counted in `/metrics` by reason.

use super::connections::Permit;
use super::endpoint::{Flow, Transport};
use super::framing::{Frame, Framer};
use super::message::ParseError;
use super::transport::Inbound;
use bytes::{BufMut, Bytes};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// What every stream connection may do (`[sip_connections]`).
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub message_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_queued_bytes: usize,
}

/// Why a connection ended; each is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The peer closed it.
    Peer,
    ReadError,
    /// A message (or an accepted connection's first one) did not arrive
    /// whole in time.
    MessageTimeout,
    /// No message for `idle_timeout`, and no dialog on it.
    Idle,
    /// No message boundary could be found.
    Unframeable,
    /// More than the largest message without a boundary.
    TooLarge,
    WriteError,
    /// A write did not complete in time: the peer is not reading.
    WriteTimeout,
    /// The write queue passed its bound: the peer is not reading.
    WriteQueue,
    /// The gateway is stopping.
    Shutdown,
    /// The stream could not be set up (a TLS handshake failed or took
    /// longer than the message timeout).
    Handshake,
}

impl Close {
    pub fn label(self) -> &'static str {
        match self {
            Close::Peer => "peer",
            Close::ReadError => "read_error",
            Close::MessageTimeout => "message_timeout",
            Close::Idle => "idle",
            Close::Unframeable => "unframeable",
            Close::TooLarge => "too_large",
            Close::WriteError => "write_error",
            Close::WriteTimeout => "write_timeout",
            Close::WriteQueue => "write_queue",
            Close::Shutdown => "shutdown",
            Close::Handshake => "handshake",
        }
    }
}

/// The endpoint task's handle on one connection. Dropping it lets the
/// writer send what is queued and end.
#[derive(Debug)]
pub struct Link {
    pub remote: SocketAddr,
    pub transport: Transport,
    queue: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    in_use: Arc<AtomicBool>,
    close: watch::Sender<bool>,
}

/// The write queue would pass its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

impl Link {
    /// Queues `bytes` for the writer without waiting.
    pub fn send(&self, bytes: Bytes) -> Result<(), QueueFull> {
        let len = bytes.len();
        let queued = self.queued.fetch_add(len, Ordering::Relaxed);
        if queued + len > self.max_queued {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return Err(QueueFull);
        }
        // A writer that has ended already closed the connection; its
        // reader reports that.
        let _ = self.queue.send(bytes);
        Ok(())
    }

    /// Marks whether a live call or transaction uses this connection
    /// (then it is not closed for being idle).
    pub fn set_in_use(&self, in_use: bool) {
        self.in_use.store(in_use, Ordering::Relaxed);
    }

    /// Closes the connection now, dropping what is queued. The caller
    /// counts why.
    pub fn close(&self) {
        let _ = self.close.send(true);
    }
}

/// How a connection came to be.
#[derive(Debug)]
pub enum Origin {
    /// A peer connected to one of our listeners `at` (before any
    /// handshake): it owes us a whole message within the message timeout.
    Accepted { at: Instant },
    /// We connected to send `first`; the peer owes us nothing.
    Dialled { first: Bytes },
}

/// Serves `stream` as the connection `flow.connection` until it is
/// closed (the caller's task becomes its reader). `permit` is its place in
/// the connection counts, given back when it is closed.
pub async fn serve<S>(
    stream: S,
    flow: Flow,
    origin: Origin,
    permit: Permit,
    settings: StreamSettings,
    inbox: mpsc::Sender<Inbound>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let connection = Reader {
        flow,
        settings,
        inbox,
        permit: Arc::new(permit),
    };
    connection
        .run(reader, WriteSide::Waiting(writer), origin)
        .await;
}

/// Resolves when the link is closed, or dropped.
async fn closed(close: &mut watch::Receiver<bool>) {
    let _ = close.wait_for(|closed| *closed).await;
}

/// How the writer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterEnd {
    /// Its queue was closed and everything in it written.
    Drained,
    /// The endpoint's task closed the connection.
    Closed,
    Failed(Close),
}

/// Writes the queue out, each write bounded by `timeout`.
async fn write_queue<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
    mut close: watch::Receiver<bool>,
    timeout: Duration,
    _permit: Arc<Permit>,
) -> WriterEnd {
    // Only an explicit close stops the writer at once; a dropped link lets
    // it finish what is queued (the 400 before a close, for one).
    let closed = async {
        if close.wait_for(|closed| *closed).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(closed);
    loop {
        let bytes = tokio::select! {
            biased;
            _ = &mut closed => return WriterEnd::Closed,
            next = queue.recv() => match next {
                Some(bytes) => bytes,
                None => return WriterEnd::Drained,
            },
        };
        let write = async {
            writer.write_all(&bytes).await?;
            // A no-op on TCP; a TLS stream must push its records out.
            writer.flush().await
        };
        let written = tokio::select! {
            biased;
            _ = &mut closed => return WriterEnd::Closed,
            written = tokio::time::timeout(timeout, write) => written,
        };
        match written {
            Ok(Ok(())) => {
                queued.fetch_sub(bytes.len(), Ordering::Relaxed);
            }
            Ok(Err(_)) => return WriterEnd::Failed(Close::WriteError),
            Err(_) => return WriterEnd::Failed(Close::WriteTimeout),
        }
    }
}

/// The writing half of a connection. Until the connection is registered
/// nothing can be sent on it, so its writer task, queue and link are made
/// only then: a connection that never brings a whole message costs one
/// task and its read buffer.
enum WriteSide<W> {
    Waiting(W),
    Running {
        task: JoinHandle<WriterEnd>,
        close: watch::Receiver<bool>,
        in_use: Arc<AtomicBool>,
    },
    Gone,
}

impl<W> WriteSide<W> {
    /// Resolves when the connection can no longer send: the writer
    /// failed, or the endpoint's task closed the link (or is gone).
    /// Pending while the writer has not started.
    async fn ended(&mut self) -> Stop {
        let WriteSide::Running { task, close, .. } = self else {
            return std::future::pending().await;
        };
        tokio::select! {
            biased;
            _ = closed(close) => Stop::Silently,
            ended = task => match ended {
                Ok(WriterEnd::Failed(close)) => Stop::Close(close),
                Ok(WriterEnd::Closed) => Stop::Silently,
                Ok(WriterEnd::Drained) | Err(_) => Stop::Close(Close::WriteError),
            },
        }
    }

    /// True when live calls or transactions use the connection.
    fn in_use(&self) -> bool {
        matches!(self, WriteSide::Running { in_use, .. } if in_use.load(Ordering::Relaxed))
    }

    fn is_registered(&self) -> bool {
        !matches!(self, WriteSide::Waiting(_))
    }
}

/// The reading half of a connection and what it reports to.
struct Reader {
    flow: Flow,
    settings: StreamSettings,
    inbox: mpsc::Sender<Inbound>,
    permit: Arc<Permit>,
}

/// Why the reader stopped reading.
enum Stop {
    /// Counted and reported to the endpoint's task.
    Close(Close),
    /// The endpoint's task closed the connection (and counted why), or is
    /// gone: nothing to report.
    Silently,
}

impl Reader {
    async fn run<R, W>(self, mut reader: R, mut write: WriteSide<W>, origin: Origin)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let owed_since = match origin {
            Origin::Accepted { at } => Some(at),
            Origin::Dialled { first } => {
                if !self.register(&mut write, Some(first)).await {
                    return;
                }
                None
            }
        };
        let Stop::Close(close) = self.read(&mut reader, &mut write, owed_since).await else {
            return;
        };
        crate::metrics::sip_connection_closed(self.flow.transport, close.label());
        tracing::debug!(remote = %self.flow.remote, transport = self.flow.transport.via_token(), reason = close.label(), "connection closed");
        if write.is_registered() {
            let id = self.flow.connection.unwrap_or_default();
            let _ = self.inbox.send(Inbound::ConnectionClosed { id }).await;
        }
    }

    /// Reads until the connection must close. `owed_since`: when an
    /// accepted connection was accepted (it owes its first message from
    /// then); `None` for ours.
    async fn read<R, W>(
        &self,
        reader: &mut R,
        write: &mut WriteSide<W>,
        owed_since: Option<Instant>,
    ) -> Stop
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let settings = &self.settings;
        let mut framer = Framer::new();
        let mut seen_message = owed_since.is_none();
        let mut message_started = owed_since;
        let mut last_activity = Instant::now();
        loop {
            let deadline = match message_started {
                Some(started) => started + settings.message_timeout,
                None => last_activity + settings.idle_timeout,
            };
            let room = framer.room();
            let mut space = framer.buffer().limit(room);
            tokio::select! {
                biased;
                stop = write.ended() => return stop,
                _ = self.inbox.closed() => return Stop::Close(Close::Shutdown),
                read = reader.read_buf(&mut space) => {
                    match read {
                        Ok(0) => return Stop::Close(Close::Peer),
                        Ok(_) => {}
                        Err(_) => return Stop::Close(Close::ReadError),
                    }
                    let now = Instant::now();
                    last_activity = now;
                    let mut framed = false;
                    loop {
                        match framer.next_frame() {
                            Frame::Message(bytes) => {
                                if !self.deliver(write, bytes).await {
                                    return Stop::Silently;
                                }
                                framed = true;
                                seen_message = true;
                            }
                            Frame::Incomplete => break,
                            Frame::Unframeable(bytes, error) => {
                                // Handed over all the same, so that a 400 can
                                // be sent before the close.
                                tracing::debug!(remote = %self.flow.remote, %error, "unframeable stream input, closing");
                                if !self.deliver(write, bytes).await {
                                    return Stop::Silently;
                                }
                                return Stop::Close(match error {
                                    ParseError::TooLarge => Close::TooLarge,
                                    _ => Close::Unframeable,
                                });
                            }
                        }
                    }
                    let owed = framer.is_mid_message() || !seen_message;
                    message_started = match message_started {
                        _ if !owed => None,
                        Some(started) if !framed => Some(started),
                        _ => Some(now),
                    };
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if message_started.is_some() {
                        return Stop::Close(Close::MessageTimeout);
                    }
                    if !write.in_use() {
                        return Stop::Close(Close::Idle);
                    }
                    last_activity = Instant::now();
                }
            }
        }
    }

    /// Registers the connection if it is not yet, then hands `bytes` to
    /// the endpoint's task. False when that task is gone.
    async fn deliver<W>(&self, write: &mut WriteSide<W>, bytes: Bytes) -> bool
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        if !self.register(write, None).await {
            return false;
        }
        let message = Inbound::Message {
            bytes,
            flow: self.flow,
        };
        self.inbox.send(message).await.is_ok()
    }

    /// Starts the writer and hands the connection's link to the endpoint's
    /// task (with `first` queued on it), unless that was done already.
    /// False when that task is gone.
    async fn register<W>(&self, write: &mut WriteSide<W>, first: Option<Bytes>) -> bool
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        if write.is_registered() {
            return true;
        }
        let WriteSide::Waiting(writer) = std::mem::replace(write, WriteSide::Gone) else {
            return true;
        };
        let (queue, queue_rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let (close, close_rx) = watch::channel(false);
        let in_use = Arc::new(AtomicBool::new(false));
        let link = Link {
            remote: self.flow.remote,
            transport: self.flow.transport,
            queue,
            queued: queued.clone(),
            max_queued: self.settings.max_queued_bytes,
            in_use: in_use.clone(),
            close,
        };
        if let Some(first) = first {
            let _ = link.send(first);
        }
        let task = tokio::spawn(write_queue(
            writer,
            queue_rx,
            queued,
            close_rx.clone(),
            self.settings.message_timeout,
            self.permit.clone(),
        ));
        *write = WriteSide::Running {
            task,
            close: close_rx,
            in_use,
        };
        let id = self.flow.connection.unwrap_or_default();
        self.inbox
            .send(Inbound::ConnectionOpened { id, link })
            .await
            .is_ok()
    }
}
