//! What the store reports as it works: how long its writes take, the texts
//! it recorded, the tickets it created and the SLA deadlines it marked
//! breached.
//!
//! The store reports to a [`StoreObserver`] rather than calling the metrics
//! exporter, because the exporter depends on the store (its `/metrics`
//! route reads the outbox and pings the database) and the store must not
//! depend on it in turn. The server gives the store the exporter's observer
//! (`metrics::StoreMetrics`) when it opens it; a store opened on its own
//! (tests, the command line, the load tools) reports to [`Unobserved`].

use crate::tickets::model::{Channel, TicketType};
use crate::tickets::sla::SlaClock;
use std::time::Duration;

/// Told of the store's work as it happens, on the task that did it.
pub trait StoreObserver: Send + Sync {
    /// A write of `kind` (`ticket`, `call_record`, `heartbeat`, `other`)
    /// ended, committed or not, `took` after it was asked for.
    fn db_write(&self, kind: &'static str, took: Duration);
    /// An inbound text was recorded (a retry of one already recorded is
    /// not).
    fn sms_received(&self);
    fn ticket_created(&self, channel: Channel, ticket_type: TicketType);
    fn sla_breached(&self, clock: SlaClock);
}

/// Reports to nobody: the observer of a store opened on its own.
pub struct Unobserved;

impl StoreObserver for Unobserved {
    fn db_write(&self, _kind: &'static str, _took: Duration) {}
    fn sms_received(&self) {}
    fn ticket_created(&self, _channel: Channel, _ticket_type: TicketType) {}
    fn sla_breached(&self, _clock: SlaClock) {}
}
