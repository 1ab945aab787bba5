//! Prometheus metrics: every metric name is here, with its help text, and
//! each is recorded by a one-line call where the thing happens (the call
//! glue, the media workers, the IVR engine and runner, the SMS webhooks and
//! outbox; the ticket store reports to [`StoreMetrics`], its observer).
//! `GET /metrics` renders them in the Prometheus text format.
//!
//! Built on the `metrics` facade with `metrics-exporter-prometheus` as
//! the recorder (docs/design.md says why). The recorder is global to the
//! process; [`install`] is idempotent, so several gateways in one test
//! process share one set of counters.

use crate::media::session::{DtmfSource, MediaStats};
use crate::sip::endpoint::{Stats as SipStats, Transport};
use crate::tickets::model::{Channel, TicketType};
use crate::tickets::sla::SlaClock;
use crate::tickets::store::{Store, StoreObserver};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

pub const CALLS_OFFERED: &str = "hotline_calls_offered_total";
pub const CALLS_ANSWERED: &str = "hotline_calls_answered_total";
pub const CALLS_REJECTED: &str = "hotline_calls_rejected_total";
pub const CALLS_ENDED: &str = "hotline_calls_ended_total";
pub const CALLS_CONTAINED: &str = "hotline_calls_contained_total";
pub const CALLS_ACTIVE: &str = "hotline_calls_active";
pub const CALL_SETUP_SECONDS: &str = "hotline_call_setup_seconds";
pub const SIP_RETRANSMISSIONS: &str = "hotline_sip_retransmissions_total";
pub const RTP_PACKETS_SENT: &str = "hotline_rtp_packets_sent_total";
pub const RTP_PACKETS_RECEIVED: &str = "hotline_rtp_packets_received_total";
pub const RTP_PACKETS_LATE: &str = "hotline_rtp_packets_late_total";
pub const RTP_PACKETS_DROPPED: &str = "hotline_rtp_packets_dropped_total";
pub const DTMF_KEYS: &str = "hotline_dtmf_keys_total";
pub const IVR_NODE_ENTRIES: &str = "hotline_ivr_node_entries_total";
pub const IVR_NODE_EXITS: &str = "hotline_ivr_node_exits_total";
pub const TRANSFERS: &str = "hotline_transfers_total";
pub const TICKETS_CREATED: &str = "hotline_tickets_created_total";
pub const SLA_BREACHES: &str = "hotline_sla_breaches_total";
pub const SMS_RECEIVED: &str = "hotline_sms_received_total";
pub const SMS_SENT: &str = "hotline_sms_sent_total";
pub const SMS_FAILED: &str = "hotline_sms_failed_total";
pub const SMS_RATE_LIMITED: &str = "hotline_sms_rate_limited_total";
pub const OUTBOUND_ATTEMPTS: &str = "hotline_outbound_attempts_total";
pub const OUTBOUND_OUTCOMES: &str = "hotline_outbound_outcomes_total";
pub const RECORDINGS: &str = "hotline_recordings_total";
pub const RECORDINGS_PURGED: &str = "hotline_recordings_purged_total";
pub const OUTBOX_DEPTH: &str = "hotline_outbox_depth";
pub const OUTBOX_OLDEST_AGE_SECONDS: &str = "hotline_outbox_oldest_age_seconds";
pub const DB_WRITE_SECONDS: &str = "hotline_db_write_seconds";
pub const DB_PING_SECONDS: &str = "hotline_db_ping_seconds";
pub const HEARTBEATS: &str = "hotline_instance_heartbeats_total";
pub const MEDIA_PANICS: &str = "hotline_media_packet_panics_total";
pub const MEDIA_WORKER_RESTARTS: &str = "hotline_media_worker_restarts_total";
pub const SIP_CONNECTIONS: &str = "hotline_sip_connections";
pub const SIP_CONNECTIONS_LIMIT: &str = "hotline_sip_connections_limit";
pub const SIP_CONNECTIONS_REFUSED: &str = "hotline_sip_connections_refused_total";
pub const SIP_CONNECTIONS_CLOSED: &str = "hotline_sip_connections_closed_total";
pub const SIP_ACCEPT_FAILURES: &str = "hotline_sip_accept_failures_total";
pub const SIP_TLS_CERTIFICATE_EXPIRY: &str = "hotline_sip_tls_certificate_expiry_timestamp_seconds";
// The process collector's standard names, so that existing dashboards and
// alerts on descriptors and memory work unchanged.
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
pub const PROCESS_MAX_FDS: &str = "process_max_fds";
pub const PROCESS_RESIDENT_MEMORY: &str = "process_resident_memory_bytes";

/// Histogram buckets in seconds: from a fast database write to a slow call
/// setup.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Installs the process's recorder (once) and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness
            // of its own); then this handle renders nothing, which the
            // metrics tests would notice.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        OUTBOUND_ATTEMPTS,
        "Outbound calls placed, by purpose: confirm"
    );
    describe_counter!(
        RECORDINGS,
        "Callers' recordings (record nodes), by outcome: kept, failed (not stored: disk or database)"
    );
    describe_counter!(
        RECORDINGS_PURGED,
        "Recordings whose audio the retention deleted"
    );
    describe_counter!(
        OUTBOUND_OUTCOMES,
        "Outbound call attempts ended, by purpose and cause: completed, answered_silent, busy, no_answer, declined, unreachable, trunk_failure"
    );
    describe_counter!(
        CALLS_OFFERED,
        "New calls (INVITEs) received, refused ones included"
    );
    describe_counter!(CALLS_ANSWERED, "Calls answered with 200");
    describe_counter!(
        CALLS_REJECTED,
        "Calls refused, by reason: acl, capacity, rate, draining (SIP admission), codec, no_dialplan, no_port"
    );
    describe_counter!(CALLS_ENDED, "Answered calls ended, by disposition");
    describe_counter!(
        CALLS_CONTAINED,
        "Answered calls served by the IVR alone: ended by the plan or the caller, no transfer tried"
    );
    describe_gauge!(CALLS_ACTIVE, "Calls in progress");
    describe_histogram!(
        CALL_SETUP_SECONDS,
        metrics::Unit::Seconds,
        "From a new INVITE to the gateway's answer (200 or refusal)"
    );
    describe_counter!(
        SIP_RETRANSMISSIONS,
        "SIP retransmissions, by direction: sent, received"
    );
    describe_counter!(
        RTP_PACKETS_SENT,
        "RTP packets sent to callers (counted when a call ends)"
    );
    describe_counter!(
        RTP_PACKETS_RECEIVED,
        "RTP packets accepted from callers (counted when a call ends)"
    );
    describe_counter!(
        RTP_PACKETS_LATE,
        "RTP packets from callers older than one already received (counted when a call ends)"
    );
    describe_counter!(
        RTP_PACKETS_DROPPED,
        "RTP packets from callers dropped, by reason: source, payload_type, malformed, unauthenticated (SRTP/SRTCP tag), replayed (SRTP/SRTCP) (counted when a call ends)"
    );
    describe_counter!(DTMF_KEYS, "Keys read, by source: rfc4733, sip_info, inband");
    describe_counter!(
        IVR_NODE_ENTRIES,
        "Dialplan node entries, by dialplan and node"
    );
    describe_counter!(
        IVR_NODE_EXITS,
        "Dialplan node exits (to another node or by the call ending), by dialplan and node"
    );
    describe_counter!(
        TRANSFERS,
        "Transfers to agents, by mode and outcome: accepted, failed, abandoned"
    );
    describe_counter!(TICKETS_CREATED, "Tickets created, by channel and type");
    describe_counter!(SLA_BREACHES, "SLA deadlines marked breached, by clock");
    describe_counter!(
        SMS_RECEIVED,
        "Inbound texts accepted by the webhooks (retries not counted)"
    );
    describe_counter!(SMS_SENT, "Notifications the SMS provider took");
    describe_counter!(SMS_FAILED, "Notifications that failed for good");
    describe_counter!(
        SMS_RATE_LIMITED,
        "Inbound texts refused by a per-sender rate limit (recorded and answered, nothing done), by limit"
    );
    describe_gauge!(
        OUTBOX_DEPTH,
        "Notifications waiting to be sent (pending or sending), at scrape time"
    );
    describe_gauge!(
        OUTBOX_OLDEST_AGE_SECONDS,
        metrics::Unit::Seconds,
        "Age of the oldest notification waiting to be sent, at scrape time (0 when none)"
    );
    describe_histogram!(
        DB_WRITE_SECONDS,
        metrics::Unit::Seconds,
        "Database write latency, by kind: ticket, call_record, other (until committed)"
    );
    describe_counter!(
        MEDIA_PANICS,
        "Media packets whose handling panicked (a parser bug a peer reached); each was dropped and the call went on"
    );
    describe_counter!(
        MEDIA_WORKER_RESTARTS,
        "Times a media worker was more than a second behind its schedule (the machine stalled) and dropped the audio it owed"
    );
    describe_counter!(
        HEARTBEATS,
        "This instance's heartbeats to the shared store (its state and live calls), by result: ok, failed"
    );
    describe_gauge!(
        DB_PING_SECONDS,
        metrics::Unit::Seconds,
        "Round trip of SELECT 1 to the database at scrape time"
    );
    describe_gauge!(
        SIP_CONNECTIONS,
        "SIP stream connections open, by transport and direction: in (accepted), out (ours)"
    );
    describe_gauge!(
        SIP_CONNECTIONS_LIMIT,
        "Incoming SIP stream connections allowed from all sources together"
    );
    describe_counter!(
        SIP_CONNECTIONS_REFUSED,
        "SIP stream connections refused, by transport and reason: untrusted, source_limit, total_limit, outgoing_limit"
    );
    describe_counter!(
        SIP_CONNECTIONS_CLOSED,
        "SIP stream connections closed, by transport and reason: peer, message_timeout, idle, unframeable, too_large, read_error, write_error, write_timeout, write_queue, shutdown, handshake"
    );
    describe_counter!(
        SIP_ACCEPT_FAILURES,
        "Failed accepts on SIP listeners, by transport and kind: descriptors (out of file descriptors or memory), other"
    );
    describe_gauge!(
        SIP_TLS_CERTIFICATE_EXPIRY,
        metrics::Unit::Seconds,
        "When the TLS certificate in use expires (Unix time), set at load and each reload"
    );
    describe_gauge!(PROCESS_OPEN_FDS, "Open file descriptors, at scrape time");
    describe_gauge!(
        PROCESS_MAX_FDS,
        "The open-file limit (soft RLIMIT_NOFILE), at scrape time"
    );
    describe_gauge!(
        PROCESS_RESIDENT_MEMORY,
        metrics::Unit::Bytes,
        "Resident memory, at scrape time"
    );
}

/// The SIP endpoint's counters as they are now (it keeps the totals).
pub fn sip_stats(stats: &SipStats, active_calls: usize) {
    let refused =
        stats.refused_acl + stats.refused_capacity + stats.refused_rate + stats.refused_draining;
    counter!(CALLS_OFFERED).absolute(stats.calls_offered + refused);
    counter!(CALLS_ANSWERED).absolute(stats.calls_answered);
    for (reason, count) in [
        ("acl", stats.refused_acl),
        ("capacity", stats.refused_capacity),
        ("rate", stats.refused_rate),
        ("draining", stats.refused_draining),
    ] {
        counter!(CALLS_REJECTED, "reason" => reason).absolute(count);
    }
    counter!(SIP_RETRANSMISSIONS, "direction" => "sent").absolute(stats.retransmissions_sent);
    counter!(SIP_RETRANSMISSIONS, "direction" => "received")
        .absolute(stats.retransmissions_received);
    gauge!(CALLS_ACTIVE).set(active_calls as f64);
}

/// The call glue refused a call that passed SIP admission.
pub fn call_rejected(reason: &'static str) {
    counter!(CALLS_REJECTED, "reason" => reason).increment(1);
}

pub fn call_setup(took: Duration) {
    histogram!(CALL_SETUP_SECONDS).record(took.as_secs_f64());
}

/// An answered call ended with `disposition`, having tried
/// `transfers_tried` transfers; contained in the IVR as the indicators
/// define it (`tickets::store::is_contained`).
pub fn call_ended(disposition: &str, transfers_tried: usize) {
    counter!(CALLS_ENDED, "disposition" => disposition.to_string()).increment(1);
    if crate::tickets::store::is_contained(disposition, transfers_tried) {
        counter!(CALLS_CONTAINED).increment(1);
    }
}

/// A call's media ended with these totals.
pub fn media_ended(stats: &MediaStats) {
    counter!(RTP_PACKETS_SENT).increment(stats.packets_sent);
    counter!(RTP_PACKETS_RECEIVED).increment(stats.packets_received);
    counter!(RTP_PACKETS_LATE).increment(stats.late);
    for (reason, count) in [
        ("source", stats.dropped_source),
        ("payload_type", stats.dropped_payload_type),
        ("malformed", stats.dropped_malformed),
        ("unauthenticated", stats.dropped_unauthenticated),
        ("replayed", stats.dropped_replayed),
    ] {
        counter!(RTP_PACKETS_DROPPED, "reason" => reason).increment(count);
    }
}

pub fn dtmf(source: DtmfSource) {
    counter!(DTMF_KEYS, "source" => source.label()).increment(1);
}

pub fn ivr_node_entered(dialplan: &str, node: &str) {
    counter!(IVR_NODE_ENTRIES, "dialplan" => dialplan.to_string(), "node" => node.to_string())
        .increment(1);
}

pub fn ivr_node_exited(dialplan: &str, node: &str) {
    counter!(IVR_NODE_EXITS, "dialplan" => dialplan.to_string(), "node" => node.to_string())
        .increment(1);
}

pub fn transfer(mode: &str, outcome: &str) {
    counter!(TRANSFERS, "mode" => mode.to_string(), "outcome" => outcome.to_string()).increment(1);
}

/// A text (not a retry) refused by the rate `limit` (`texts`,
/// `new_tickets`): recorded and answered, nothing done.
pub fn sms_rate_limited(limit: &'static str) {
    counter!(SMS_RATE_LIMITED, "limit" => limit).increment(1);
}

/// An outbound call of `purpose` is being placed.
pub fn outbound_attempt(purpose: &'static str) {
    counter!(OUTBOUND_ATTEMPTS, "purpose" => purpose).increment(1);
}

/// An outbound call attempt of `purpose` ended with `cause`.
pub fn outbound_outcome(purpose: &'static str, cause: &'static str) {
    counter!(OUTBOUND_OUTCOMES, "purpose" => purpose, "cause" => cause).increment(1);
}

/// A caller's recording was kept, or could not be.
pub fn recording(kept: bool) {
    let outcome = if kept { "kept" } else { "failed" };
    counter!(RECORDINGS, "outcome" => outcome).increment(1);
}

pub fn recordings_purged(count: usize) {
    counter!(RECORDINGS_PURGED).increment(count as u64);
}

pub fn sms_sent() {
    counter!(SMS_SENT).increment(1);
}

pub fn sms_failed() {
    counter!(SMS_FAILED).increment(1);
}

/// A stream connection was admitted (`direction` "in") or opened by us ("out").
pub fn sip_connection_opened(transport: Transport, direction: &'static str) {
    gauge!(SIP_CONNECTIONS, "transport" => transport.label(), "direction" => direction)
        .increment(1.0);
}

/// A connection counted by `sip_connection_opened` is gone.
pub fn sip_connection_gone(transport: Transport, direction: &'static str) {
    gauge!(SIP_CONNECTIONS, "transport" => transport.label(), "direction" => direction)
        .decrement(1.0);
}

pub fn sip_connections_limit(limit: usize) {
    gauge!(SIP_CONNECTIONS_LIMIT).set(limit as f64);
}

pub fn sip_connection_refused(transport: Transport, reason: &'static str) {
    counter!(SIP_CONNECTIONS_REFUSED, "transport" => transport.label(), "reason" => reason)
        .increment(1);
}

pub fn sip_connection_closed(transport: Transport, reason: &'static str) {
    counter!(SIP_CONNECTIONS_CLOSED, "transport" => transport.label(), "reason" => reason)
        .increment(1);
}

pub fn sip_accept_failed(transport: Transport, kind: &'static str) {
    counter!(SIP_ACCEPT_FAILURES, "transport" => transport.label(), "kind" => kind).increment(1);
}

/// The TLS certificate now in use expires at `not_after` (Unix seconds).
pub fn sip_tls_certificate_expiry(not_after: i64) {
    gauge!(SIP_TLS_CERTIFICATE_EXPIRY).set(not_after as f64);
}

/// The ticket store's reports, recorded: the observer the server opens the
/// store with (`tickets::store::StoreObserver` says why it is one).
pub struct StoreMetrics;

impl StoreObserver for StoreMetrics {
    fn db_write(&self, kind: &'static str, took: Duration) {
        histogram!(DB_WRITE_SECONDS, "kind" => kind).record(took.as_secs_f64());
    }

    fn sms_received(&self) {
        counter!(SMS_RECEIVED).increment(1);
    }

    fn ticket_created(&self, channel: Channel, ticket_type: TicketType) {
        counter!(TICKETS_CREATED, "channel" => channel.code(), "type" => ticket_type.code())
            .increment(1);
    }

    fn sla_breached(&self, clock: SlaClock) {
        counter!(SLA_BREACHES, "clock" => clock.code()).increment(1);
    }
}

/// A media packet's handling panicked and the packet was dropped.
pub fn media_panic() {
    counter!(MEDIA_PANICS).increment(1);
}

/// A media worker dropped its backlog after a stall.
pub fn media_worker_restarted() {
    counter!(MEDIA_WORKER_RESTARTS).increment(1);
}

/// One heartbeat written to the store, or not.
pub fn heartbeat(written: bool) {
    let result = if written { "ok" } else { "failed" };
    counter!(HEARTBEATS, "result" => result).increment(1);
}

/// The process's descriptors and memory, where the system tells them.
fn sample_process() {
    if let Some(open) = crate::resources::open_count() {
        gauge!(PROCESS_OPEN_FDS).set(open as f64);
    }
    if let Some(limit) = crate::resources::soft_limit() {
        gauge!(PROCESS_MAX_FDS).set(limit as f64);
    }
    if let Some(bytes) = crate::resources::resident_bytes() {
        gauge!(PROCESS_RESIDENT_MEMORY).set(bytes as f64);
    }
}

/// `GET /metrics`.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state((store, install()))
}

/// Samples what is only known by asking (the outbox, the database's round
/// trip), then renders every metric.
async fn render(State((store, handle)): State<(Store, PrometheusHandle)>) -> impl IntoResponse {
    let started = std::time::Instant::now();
    match store.ping().await {
        Ok(()) => gauge!(DB_PING_SECONDS).set(started.elapsed().as_secs_f64()),
        Err(e) => tracing::warn!(error = %e, "metrics: the database does not answer"),
    }
    sample_process();
    match store.outbox_backlog().await {
        Ok((depth, oldest)) => {
            gauge!(OUTBOX_DEPTH).set(depth as f64);
            let age = oldest.map_or(0.0, |at| {
                (store.now() - at).num_milliseconds().max(0) as f64 / 1000.0
            });
            gauge!(OUTBOX_OLDEST_AGE_SECONDS).set(age);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the outbox"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
}
