//! The gateway's one typed configuration: built-in defaults, then the TOML
//! file (`hotline.toml` in the working directory, or `--config FILE`),
//! then environment variables named `HOTLINE_<SECTION>_<KEY>` (for example
//! `HOTLINE_DATABASE_URL` or `HOTLINE_SIP_MAX_CALLS`). Everything is
//! validated before the server starts, and every problem is reported at
//! once with where it came from.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file read when no `--config` is given (absent is fine).
pub const DEFAULT_CONFIG_FILE: &str = "hotline.toml";
const ENV_PREFIX: &str = "HOTLINE_";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub sip: SipConfig,
    pub sip_connections: SipConnectionsConfig,
    pub media: MediaConfig,
    pub calls: CallsConfig,
    pub prompts: PromptsConfig,
    pub http: HttpConfig,
    pub sms: SmsConfig,
    pub database: DatabaseConfig,
    pub tickets: TicketsConfig,
    pub ivr: IvrConfig,
    pub transfer: TransferConfig,
    pub sms_outbox: SmsOutboxConfig,
    pub log: LogConfig,
    pub shutdown: ShutdownConfig,
    pub instance: InstanceConfig,
    pub outbound: crate::outbound::config::OutboundConfig,
    pub recordings: RecordingsConfig,
    pub speech: SpeechConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// UDP listening addresses (IPv4 and/or IPv6).
    pub udp: Vec<SocketAddr>,
    /// TCP listening addresses.
    pub tcp: Vec<SocketAddr>,
    /// TLS listening addresses (SIP over TLS, port 5061 by convention);
    /// need `tls_cert_file` and `tls_key_file`.
    pub tls: Vec<SocketAddr>,
    /// PEM file with our certificate, then its intermediates. Read again
    /// on SIGHUP. Also offered to TLS servers that ask for a client
    /// certificate (mutual TLS trunks).
    pub tls_cert_file: PathBuf,
    /// PEM file with the certificate's private key (unencrypted).
    pub tls_key_file: PathBuf,
    /// PEM file of the CAs that sign the certificates of TLS servers we
    /// connect to (transfer targets); empty: the system's CA bundle.
    pub tls_ca_file: PathBuf,
    /// The IP put in Via, Contact and SDP. Empty: the listening address, or
    /// when that is a wildcard, the local address the kernel routes to each
    /// peer from.
    pub advertised_address: String,
    pub user_agent: String,
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
    /// Concurrent calls beyond which new INVITEs get 503.
    pub max_calls: usize,
    /// Sources allowed to send SIP; others get 403.
    pub trusted_networks: Vec<IpNet>,
    /// Sources whose P-Asserted-Identity and Remote-Party-ID headers are
    /// believed (RFC 3325's trust domain: the carrier's SBCs); from others
    /// those headers are ignored and the caller's number comes from From.
    pub asserted_identity_from: Vec<IpNet>,
    /// New INVITEs per second per source address (0: no limit).
    pub invites_per_second_per_source: u32,
}

/// SIP stream connections the gateway opens itself (to transfer targets,
/// for requests too big for UDP), all together: the one connection limit
/// that is not configured. Counted in the descriptor budget.
pub const OWN_SIP_CONNECTIONS: u64 = 128;

/// Limits on SIP stream connections (TCP, and TLS alike), so that no
/// amount of connections can use up the descriptors calls need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConnectionsConfig {
    /// Incoming connections from all sources together; more are closed
    /// at once. Counted in the descriptor budget.
    pub max_connections: usize,
    /// Incoming connections from one source address.
    pub max_per_source: usize,
    /// Sources that carry many callers' dialogs (a SIP proxy, an SBC): each
    /// may hold `max_per_proxy` connections.
    pub proxy_networks: Vec<IpNet>,
    pub max_per_proxy: usize,
    /// A message must arrive whole within this long of its first byte, and
    /// an accepted connection's first message within this long of the
    /// accept; a write may take this long.
    pub message_timeout_secs: u64,
    /// A connection that carries no call is closed after this long
    /// without a message.
    pub idle_timeout_secs: u64,
    /// Bytes waiting to be sent on one connection beyond which it is
    /// closed (the peer is not reading).
    pub max_queued_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Address RTP sockets of IPv4 calls bind to.
    pub rtp_bind: IpAddr,
    /// Address RTP sockets of IPv6 calls bind to.
    pub rtp_bind_v6: IpAddr,
    /// Even port range for RTP (port+1 is left for RTCP).
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Codec preference, from `PCMU` and `PCMA`.
    pub codecs: Vec<String>,
    pub telephone_event_payload_type: u8,
    pub ptime_ms: u32,
    /// Media worker threads; each serves many calls on one timer. 0: one
    /// per core.
    pub workers: usize,
    /// Run the media workers at this real-time priority (SCHED_FIFO,
    /// 1–99), so that other work on the machine cannot delay a packet;
    /// 0 leaves them as ordinary threads. Needs CAP_SYS_NICE.
    pub realtime_priority: u8,
    /// Send to where the caller's RTP really comes from (callers behind NAT).
    pub symmetric_rtp: bool,
    /// End a call that sends no RTP for this long (0: never); not while
    /// the caller holds the call.
    pub timeout_secs: u64,
    /// SRTP (SDES keys, RFC 4568): `off`, `optional` (when the offer asks)
    /// or `required` (plain offers get 488).
    pub srtp: crate::sip::sdp::SrtpMode,
    /// The addresses put in SDP for media, at most one IPv4 and one IPv6.
    /// For a family not listed: `sip.advertised_address` when it is of that
    /// family, else the RTP bind address when it is not a wildcard, else the
    /// local address the kernel routes towards the caller's media from.
    pub advertised_addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallsConfig {
    /// An answered call is ended after this long: it hears
    /// `time_limit_prompt`, then gets BYE.
    pub max_duration_secs: u64,
    /// The prompt a call hears when it reaches `max_duration_secs`, by name
    /// in the call's language (`time_limit`: `prompts/zh/time_limit.wav`
    /// for a Mandarin call); empty: BYE at once.
    pub time_limit_prompt: String,
    /// Prompts (names under `prompts.dir`, without `.wav`) played when a
    /// call is answered; a key stops them.
    pub greeting: Vec<String>,
    /// Play the greeting over and over until a key or the end of the call.
    pub loop_greeting: bool,
}

/// Speech as another way to press a key (a menu's `listen` phrases).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpeechConfig {
    /// Off by default: the measured accuracy is far from what callers
    /// deserve (docs/benchmarks.md). Without the library, speech stays
    /// off with a warning and menus take keys.
    pub enabled: bool,
    /// PocketSphinx's shared library (Debian: libpocketsphinx3).
    pub library: String,
    /// Its model directory (Debian: pocketsphinx-en-us).
    pub model_dir: PathBuf,
    /// A phrase recognised with less confidence (0 to 1) counts as no
    /// match: the menu's invalid-key path.
    pub min_confidence: f32,
    /// Recognitions at once (each decoder holds the model's search state).
    pub decoders: usize,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        SpeechConfig {
            enabled: false,
            library: crate::speech::sphinx::LIBRARY.to_string(),
            model_dir: PathBuf::from(crate::speech::sphinx::MODEL_DIR),
            min_confidence: 0.5,
            decoders: 1,
        }
    }
}

/// Where callers' recordings (a dialplan's `record` node) are kept, and
/// for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingsConfig {
    /// Directory of the WAV files (created when missing); each file is
    /// named by an unguessable token.
    pub dir: PathBuf,
    /// Audio older than this many days is deleted (its row stays, marked
    /// purged); 0 keeps it for ever.
    pub retention_days: u32,
    /// How often the retention is applied.
    pub purge_check_secs: u64,
    /// Record bridged agent calls (quality inspection, 质检) as stereo
    /// WAV, the caller left and the agent right. Off by default; dialplans
    /// see `recording.calls` = `on` to play their consent notice first.
    pub bridged_calls: bool,
    /// Record IVR legs too (quality inspection of the menus): stereo WAV
    /// from the answer, the caller left and what the IVR played right;
    /// with `bridged_calls` the same recording goes on through the bridge.
    pub ivr_calls: bool,
    /// The prompt played before the dialplan's first node while IVR legs
    /// are recorded (the consent notice, relative to the call's language);
    /// empty plays none.
    pub ivr_notice: String,
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        RecordingsConfig {
            dir: PathBuf::from("data/recordings"),
            retention_days: 90,
            purge_check_secs: 3600,
            bridged_calls: false,
            ivr_calls: false,
            ivr_notice: "call_recording_notice".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptsConfig {
    /// Directory of WAV prompts; `zh/welcome.wav` there is the prompt
    /// named `zh/welcome`.
    pub dir: PathBuf,
}

impl Default for PromptsConfig {
    fn default() -> Self {
        PromptsConfig {
            dir: PathBuf::from("prompts"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Webhooks, staff API, console and metrics.
    pub listen: SocketAddr,
    /// Connections served at once; more are closed at once. Counted in
    /// the descriptor budget.
    pub max_connections: usize,
}

/// The inbound SMS webhooks (`docs/sms.md`). Each endpoint is off until
/// its secret is set; the outbound side has its own `[sms_outbox]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// The Twilio account's auth token, which signs `X-Twilio-Signature`.
    /// Empty: `POST /sms/twilio` is off (404).
    pub twilio_auth_token: String,
    /// The public base URL the provider calls, as configured there
    /// (`https://gw.example.com:8443`): the signed URL is this, then the
    /// request's path and query. Needed with `twilio_auth_token`.
    pub public_url: String,
    /// The generic JSON provider's shared secret (HMAC-SHA256). Empty:
    /// `POST /sms/generic` is off (404).
    pub generic_secret: String,
    /// How far a generic webhook's timestamp may be from now, either way.
    pub replay_window_secs: u64,
    /// Larger webhook bodies get 413.
    pub max_body_bytes: usize,
    /// Texts one sender may send per minute; more are recorded, not acted
    /// on, and answered "try again in N minutes" (0: no limit).
    pub max_per_sender_per_minute: u32,
    /// Tickets one sender may open by SMS per hour; more are answered the
    /// same way and open nothing (0: no limit).
    pub max_new_tickets_per_sender_per_hour: u32,
    /// Our SMS number, the `from` of replies (empty: the number the
    /// sender texted).
    pub sender_number: String,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            twilio_auth_token: String::new(),
            public_url: String::new(),
            generic_secret: String::new(),
            replay_window_secs: 300,
            max_body_bytes: 16 * 1024,
            max_per_sender_per_minute: 10,
            max_new_tickets_per_sender_per_hour: 5,
            sender_number: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (created on first run) or `postgres://…`.
    pub url: String,
    /// Bring the schema up to date when `serve` starts.
    pub migrate_on_start: bool,
    /// Connections in the pool (reads on SQLite; reads and the writes that
    /// are not batched on PostgreSQL).
    pub max_connections: u32,
    /// PostgreSQL only: writer connections, each group-committing ticket
    /// creations, call records and texts that open tickets.
    pub writers: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TicketsConfig {
    /// The SLA rules (deadlines, business calendar). When this is the
    /// default `sla.toml` and the file is absent, the built-in rules apply.
    pub sla_file: PathBuf,
    /// How often the SLA job looks for deadlines that passed.
    pub breach_check_secs: u64,
}

/// Delivery of the notification outbox (texts about tickets) through an
/// SMS provider. Empty strings mean "not set" (so that every key can be
/// overridden from the environment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsOutboxConfig {
    /// `none` (texts stay queued; no worker runs), `twilio` (the
    /// Twilio-compatible Messages API) or `generic` (a signed JSON webhook).
    pub provider: String,
    /// Twilio: the API's base URL.
    pub api_base: String,
    /// Twilio: the account SID (the basic-auth user and part of the URL).
    pub account_sid: String,
    /// Twilio: the auth token (basic-auth password; also checks the
    /// signature of delivery-status callbacks).
    pub auth_token: String,
    /// The sender number (Twilio `From`, generic `from`).
    pub from: String,
    /// Twilio: send through this messaging service instead of `from`.
    pub messaging_service_sid: String,
    /// Generic: the URL messages are POSTed to.
    pub url: String,
    /// Generic: the shared secret of the `X-Hotline-Signature` HMAC, both
    /// on our requests and on its delivery-status callbacks.
    pub secret: String,
    /// The public URL of `POST /sms/status` as the provider calls it (Twilio
    /// signs it); empty: ask for no status callbacks.
    pub status_callback_url: String,
    /// Attempts before a notification is marked failed.
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt, with full jitter.
    pub backoff_base_ms: u64,
    /// The longest retry delay.
    pub backoff_max_secs: u64,
    /// How often the worker looks for due notifications.
    pub poll_interval_ms: u64,
    /// Notifications claimed (and sent concurrently) per round.
    pub batch_size: usize,
    /// How long a claim lasts: a gateway that dies mid-send leaves its
    /// notifications to others after this.
    pub lease_secs: u64,
    /// Limit for one request to the provider, connecting included.
    pub request_timeout_ms: u64,
}

impl Default for SmsOutboxConfig {
    fn default() -> Self {
        SmsOutboxConfig {
            provider: "none".to_string(),
            api_base: "https://api.twilio.com".to_string(),
            account_sid: String::new(),
            auth_token: String::new(),
            from: String::new(),
            messaging_service_sid: String::new(),
            url: String::new(),
            secret: String::new(),
            status_callback_url: String::new(),
            max_attempts: 8,
            backoff_base_ms: 1000,
            backoff_max_secs: 600,
            poll_interval_ms: 500,
            batch_size: 50,
            lease_secs: 60,
            request_timeout_ms: 5000,
        }
    }
}

/// The longest retry delay allowed (a day).
const MAX_BACKOFF_SECS: u64 = 86_400;
/// A bound on `database.writers`: more writers make smaller batches and
/// more work for the database per write (docs/design.md), and each holds
/// a connection.
const MAX_DATABASE_WRITERS: usize = 16;

/// A secret as printed: `(set)`, or empty when it is not set.
fn mask_secret(value: &str) -> String {
    if value.is_empty() {
        String::new()
    } else {
        "(set)".to_string()
    }
}

impl SmsOutboxConfig {
    /// These settings with the auth token and secret masked, and any
    /// credentials in the URLs, for printing.
    pub fn redacted(&self) -> SmsOutboxConfig {
        SmsOutboxConfig {
            auth_token: mask_secret(&self.auth_token),
            secret: mask_secret(&self.secret),
            api_base: crate::redact::url(&self.api_base),
            url: crate::redact::url(&self.url),
            status_callback_url: crate::redact::url(&self.status_callback_url),
            ..self.clone()
        }
    }

    /// Every problem with these settings, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let missing = |problems: &mut Vec<String>, key: &str, value: &str, why: &str| {
            if value.trim().is_empty() {
                problems.push(format!("sms_outbox.{key} must be set {why}"));
            }
        };
        let url_ok = |value: &str| value.starts_with("http://") || value.starts_with("https://");
        match self.provider.as_str() {
            "none" => {}
            "twilio" => {
                let why = "when sms_outbox.provider is \"twilio\"";
                missing(&mut problems, "account_sid", &self.account_sid, why);
                missing(&mut problems, "auth_token", &self.auth_token, why);
                if self.from.trim().is_empty() && self.messaging_service_sid.trim().is_empty() {
                    problems.push(format!(
                        "sms_outbox: one of from or messaging_service_sid must be set {why}"
                    ));
                }
                if !url_ok(&self.api_base) {
                    problems.push(format!(
                        "sms_outbox.api_base: {:?} must be an http:// or https:// URL",
                        crate::redact::url(&self.api_base)
                    ));
                }
            }
            "generic" => {
                let why = "when sms_outbox.provider is \"generic\"";
                missing(&mut problems, "url", &self.url, why);
                missing(&mut problems, "secret", &self.secret, why);
                if !self.url.trim().is_empty() && !url_ok(&self.url) {
                    problems.push(format!(
                        "sms_outbox.url: {:?} must be an http:// or https:// URL",
                        crate::redact::url(&self.url)
                    ));
                }
            }
            other => problems.push(format!(
                "sms_outbox.provider: {other:?} must be \"none\", \"twilio\" or \"generic\""
            )),
        }
        if !self.status_callback_url.is_empty() && !url_ok(&self.status_callback_url) {
            problems.push(format!(
                "sms_outbox.status_callback_url: {:?} must be an http:// or https:// URL",
                crate::redact::url(&self.status_callback_url)
            ));
        }
        for (key, value) in [
            ("max_attempts", u64::from(self.max_attempts)),
            ("backoff_base_ms", self.backoff_base_ms),
            ("poll_interval_ms", self.poll_interval_ms),
            ("batch_size", self.batch_size as u64),
            ("lease_secs", self.lease_secs),
            ("request_timeout_ms", self.request_timeout_ms),
        ] {
            if value == 0 {
                problems.push(format!("sms_outbox.{key} must be at least 1"));
            }
        }
        if self.backoff_max_secs > MAX_BACKOFF_SECS {
            problems.push(format!(
                "sms_outbox.backoff_max_secs ({}) must be at most {MAX_BACKOFF_SECS} (a day)",
                self.backoff_max_secs
            ));
        }
        if self.backoff_max_secs.saturating_mul(1000) < self.backoff_base_ms {
            problems.push(format!(
                "sms_outbox.backoff_max_secs ({}) must not be below backoff_base_ms ({} ms)",
                self.backoff_max_secs, self.backoff_base_ms
            ));
        }
        if self.lease_secs.saturating_mul(1000) <= self.request_timeout_ms {
            problems.push(format!(
                "sms_outbox.lease_secs ({} s) must be longer than request_timeout_ms ({} ms), \
                 or a slow send could be claimed again while it is still running",
                self.lease_secs, self.request_timeout_ms
            ));
        }
        problems
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (human-readable) or `json`.
    pub format: String,
    /// A `tracing` filter such as `info` or `info,hotline::sip=debug`.
    pub level: String,
}

/// This gateway among others sharing one database (scale-out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstanceConfig {
    /// The instance's name in the console, the API and `/readyz`; unique
    /// among the gateways on one database. Empty: the host name and the
    /// SIP address, e.g. `gw1/10.0.0.11:5060`.
    pub name: String,
    /// How often the instance writes its state and live calls to the
    /// store; after three missed heartbeats it counts as gone.
    pub heartbeat_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// After SIGTERM, how long live calls may go on before they get BYE.
    pub drain_timeout_secs: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        let any = SocketAddr::from(([0, 0, 0, 0], 5060));
        SipConfig {
            udp: vec![any],
            tcp: vec![any],
            tls: Vec::new(),
            tls_cert_file: PathBuf::new(),
            tls_key_file: PathBuf::new(),
            tls_ca_file: PathBuf::new(),
            advertised_address: String::new(),
            user_agent: format!("hotline/{}", env!("CARGO_PKG_VERSION")),
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            max_calls: 5000,
            trusted_networks: loopback(),
            asserted_identity_from: loopback(),
            invites_per_second_per_source: 200,
        }
    }
}

impl Default for SipConnectionsConfig {
    fn default() -> Self {
        SipConnectionsConfig {
            max_connections: 4096,
            max_per_source: 256,
            proxy_networks: Vec::new(),
            max_per_proxy: 4096,
            message_timeout_secs: 10,
            idle_timeout_secs: 120,
            max_queued_bytes: 1 << 20,
        }
    }
}

/// This machine only: what the gateway trusts out of the box.
fn loopback() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .map(|net| net.parse().expect("built-in network is valid"))
        .collect()
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_bind: IpAddr::from([0, 0, 0, 0]),
            rtp_bind_v6: IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED),
            rtp_port_min: 10000,
            rtp_port_max: 29998,
            codecs: vec!["PCMU".to_string(), "PCMA".to_string()],
            telephone_event_payload_type: 101,
            ptime_ms: 20,
            workers: 0,
            realtime_priority: 0,
            symmetric_rtp: true,
            timeout_secs: 30,
            srtp: crate::sip::sdp::SrtpMode::Optional,
            advertised_addresses: Vec::new(),
        }
    }
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            // Half an hour: far longer than any menu walk (a fault report
            // keyed at a normal pace takes about a minute), short enough
            // that a line left open by a broken phone is freed.
            max_duration_secs: 1800,
            time_limit_prompt: "time_limit".to_string(),
            greeting: vec!["zh/welcome".to_string()],
            loop_greeting: false,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_connections: 1024,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://data/hotline.db".to_string(),
            migrate_on_start: true,
            max_connections: 16,
            writers: crate::tickets::store::DEFAULT_WRITERS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IvrConfig {
    /// Every `*.toml` here is a dialplan; their `entries` map dialled
    /// numbers to menus, and other numbers get 404. With none (or no such
    /// directory) every call just hears `calls.greeting`.
    pub dialplans_dir: PathBuf,
}

impl Default for IvrConfig {
    fn default() -> Self {
        IvrConfig {
            dialplans_dir: PathBuf::from("dialplans"),
        }
    }
}

/// Transfers to agents (`docs/staff-transfer.md`): the targets that
/// dialplan `transfer` nodes name, and how long a transfer and its context
/// last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransferConfig {
    /// A transfer without a final outcome (the caller's final NOTIFY) this
    /// long after the REFER fails, and the dialplan's `on_failure` runs.
    pub timeout_secs: u64,
    /// How long an agent's desktop can resolve a transfer's context token.
    pub context_ttl_secs: u64,
    /// Bridge mode: how long the target may ring before we CANCEL and the
    /// dialplan's `on_failure` runs.
    pub ring_timeout_secs: u64,
    /// Targets by the name dialplans use:
    /// `[transfer.targets.agents]` `uri = "sip:queue@192.0.2.10"`.
    pub targets: BTreeMap<String, TransferTarget>,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            timeout_secs: 30,
            context_ttl_secs: 600,
            ring_timeout_secs: 25,
            targets: BTreeMap::new(),
        }
    }
}

/// One place callers can be transferred to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferTarget {
    /// A `sip:` or `sips:` URI (a queue, a hunt group, an agent).
    pub uri: String,
    #[serde(default)]
    pub mode: TransferMode,
    /// Bridge mode: the user name for digest challenges (401/407).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Bridge mode: the password for digest challenges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Bridge mode: offer SRTP (`RTP/SAVP`, SDES keys) to the target, and
    /// accept only an SRTP answer. Independent of `sips:`, which secures
    /// the signalling only (RFC 5630): many TLS trunks still carry RTP.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub srtp: bool,
}

impl TransferTarget {
    /// The digest credentials, when both parts are configured.
    pub fn credentials(&self) -> Option<(String, String)> {
        Some((self.username.clone()?, self.password.clone()?))
    }
}

/// How a caller is handed over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferMode {
    /// A blind transfer (RFC 3515): REFER to the caller, who calls the
    /// target with the context in the Refer-To's headers.
    #[default]
    Refer,
    /// The gateway calls the target itself (an INVITE with the context
    /// headers) and relays the media between the two legs.
    Bridge,
}

impl TransferMode {
    /// The mode's name, as in the config file and in call records.
    pub fn code(self) -> &'static str {
        match self {
            TransferMode::Refer => "refer",
            TransferMode::Bridge => "bridge",
        }
    }
}

/// The longest context token lifetime allowed (a day).
const MAX_CONTEXT_TTL_SECS: u64 = 86_400;

impl TransferConfig {
    /// A copy fit to print: target passwords shown only as set.
    pub fn redacted(&self) -> TransferConfig {
        let mut shown = self.clone();
        for target in shown.targets.values_mut() {
            if target.password.is_some() {
                target.password = Some("(set)".to_string());
            }
        }
        shown
    }

    /// Every problem with these settings, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.timeout_secs == 0 {
            problems.push("transfer.timeout_secs must be at least 1".to_string());
        }
        if self.ring_timeout_secs == 0 {
            problems.push("transfer.ring_timeout_secs must be at least 1".to_string());
        }
        if self.context_ttl_secs == 0 || self.context_ttl_secs > MAX_CONTEXT_TTL_SECS {
            problems.push(format!(
                "transfer.context_ttl_secs ({}) must be between 1 and {MAX_CONTEXT_TTL_SECS} (a day)",
                self.context_ttl_secs
            ));
        }
        for (name, target) in &self.targets {
            let sip = crate::sip::headers::Uri::parse(&target.uri).is_ok_and(|uri| uri.is_sip());
            if !sip {
                problems.push(format!(
                    "transfer.targets.{name}.uri: {:?} is not a sip: or sips: URI \
                     (for example \"sip:queue@192.0.2.10:5060\")",
                    target.uri
                ));
            }
            if target.mode == TransferMode::Bridge {
                let dialable =
                    crate::sip::headers::Uri::parse(crate::sip::uac::request_uri(&target.uri))
                        .is_ok_and(|uri| uri.is_sip() && !uri.host.is_empty());
                if sip && !dialable {
                    problems.push(format!(
                        "transfer.targets.{name}.uri: {:?}: mode \"bridge\" needs a sip: or \
                         sips: URI with a host, for example \"sip:queue@192.0.2.10:5060\" or \
                         \"sips:queue@pbx.example.com\"",
                        target.uri
                    ));
                }
            }
            if target.username.is_some() != target.password.is_some() {
                problems.push(format!(
                    "transfer.targets.{name}: username and password go together"
                ));
            }
        }
        problems
    }
}

/// The default SLA file, which may be absent.
pub const DEFAULT_SLA_FILE: &str = "sla.toml";

impl Default for TicketsConfig {
    fn default() -> Self {
        TicketsConfig {
            sla_file: PathBuf::from(DEFAULT_SLA_FILE),
            breach_check_secs: 30,
        }
    }
}

impl SipConfig {
    /// The TLS settings' problems: files that must go together. Whether
    /// the files load is checked by `check-config` and at start (reading a
    /// key is not every command's business).
    fn tls_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let set = |path: &PathBuf| !path.as_os_str().is_empty();
        let identity = set(&self.tls_cert_file) && set(&self.tls_key_file);
        if !self.tls.is_empty() && !identity {
            problems.push(
                "sip.tls lists listeners: sip.tls_cert_file and sip.tls_key_file must name the \
                 certificate and key files (PEM)"
                    .to_string(),
            );
        } else if set(&self.tls_cert_file) != set(&self.tls_key_file) {
            problems.push("sip.tls_cert_file and sip.tls_key_file go together".to_string());
        }
        problems
    }

    /// Where the TLS files are.
    pub fn tls_settings(&self) -> crate::sip::tls::TlsSettings {
        crate::sip::tls::TlsSettings {
            cert_file: self.tls_cert_file.clone(),
            key_file: self.tls_key_file.clone(),
            ca_file: self.tls_ca_file.clone(),
        }
    }
}

impl SipConnectionsConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("max_connections", self.max_connections),
            ("max_per_source", self.max_per_source),
            ("max_per_proxy", self.max_per_proxy),
        ] {
            if value == 0 {
                problems.push(format!("sip_connections.{key} must be at least 1"));
            }
        }
        if !(1..=60).contains(&self.message_timeout_secs) {
            problems.push(format!(
                "sip_connections.message_timeout_secs ({}) must be between 1 and 60",
                self.message_timeout_secs
            ));
        }
        if self.idle_timeout_secs < self.message_timeout_secs {
            problems.push(format!(
                "sip_connections.idle_timeout_secs ({}) must be at least message_timeout_secs ({})",
                self.idle_timeout_secs, self.message_timeout_secs
            ));
        }
        // One largest message must fit, or a big response could never go.
        if self.max_queued_bytes < crate::sip::message::MAX_MESSAGE_SIZE {
            problems.push(format!(
                "sip_connections.max_queued_bytes ({}) must be at least {}",
                self.max_queued_bytes,
                crate::sip::message::MAX_MESSAGE_SIZE
            ));
        }
        problems
    }
}

impl TicketsConfig {
    /// Loads the SLA rules this configuration names.
    pub fn sla_policy(
        &self,
    ) -> Result<crate::tickets::sla::SlaPolicy, crate::tickets::sla::SlaError> {
        if self.sla_file == Path::new(DEFAULT_SLA_FILE) && !self.sla_file.exists() {
            return Ok(crate::tickets::sla::SlaPolicy::builtin());
        }
        crate::tickets::sla::SlaPolicy::load(&self.sla_file)
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".to_string(),
            level: "info".to_string(),
        }
    }
}

impl Default for InstanceConfig {
    fn default() -> Self {
        InstanceConfig {
            name: String::new(),
            heartbeat_secs: 5,
        }
    }
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_timeout_secs: 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl Config {
    /// A copy fit to print (`check-config`): every secret shown only as
    /// `(set)`, and credentials in URLs masked (`crate::redact`).
    pub fn redacted(&self) -> Config {
        let mut shown = self.clone();
        shown.database.url = crate::redact::url(&self.database.url);
        shown.sms.twilio_auth_token = mask_secret(&self.sms.twilio_auth_token);
        shown.sms.generic_secret = mask_secret(&self.sms.generic_secret);
        shown.sms.public_url = crate::redact::url(&self.sms.public_url);
        shown.sms_outbox = self.sms_outbox.redacted();
        shown.transfer = self.transfer.redacted();
        shown
    }

    /// Loads defaults, the file and the environment, then validates.
    /// `explicit` is the `--config` path: it must exist; the default file
    /// may be absent.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Config::load_from(explicit, &env)
    }

    /// `load` with the environment passed in (for tests).
    pub fn load_from(
        explicit: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let path = explicit.map_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE), Path::to_path_buf);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if explicit.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
                String::new()
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Applies `HOTLINE_<SECTION>_<KEY>` overrides. Names are matched
    /// against the known keys, so a typo is an error rather than silence.
    fn apply_env(&mut self, env: &[(String, String)]) -> Result<(), ConfigError> {
        let overrides: Vec<&(String, String)> = env
            .iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        if overrides.is_empty() {
            return Ok(());
        }
        let mut tree =
            toml::Value::try_from(&*self).map_err(|e| ConfigError::Invalid(vec![e.to_string()]))?;
        let sections = tree
            .as_table_mut()
            .ok_or_else(|| ConfigError::Invalid(vec!["config is not a table".into()]))?;
        for (name, raw) in overrides {
            let key = &name[ENV_PREFIX.len()..];
            let slot = sections.iter_mut().find_map(|(section, table)| {
                let rest = key
                    .strip_prefix(&section.to_ascii_uppercase())?
                    .strip_prefix('_')?;
                table
                    .as_table_mut()?
                    .iter_mut()
                    .find(|(field, _)| field.to_ascii_uppercase() == rest)
                    .map(|(_, value)| value)
            });
            let Some(slot) = slot else {
                return Err(ConfigError::Env {
                    name: name.clone(),
                    message: "no such setting".to_string(),
                });
            };
            *slot = env_value(slot, raw).map_err(|message| ConfigError::Env {
                name: name.clone(),
                message,
            })?;
        }
        *self = tree
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Env {
                name: "HOTLINE_*".to_string(),
                message: e.message().to_string(),
            })?;
        Ok(())
    }

    /// Checks every rule and reports all problems together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let sip = &self.sip;
        if sip.udp.is_empty() && sip.tcp.is_empty() && sip.tls.is_empty() {
            problems.push(
                "sip: at least one of sip.udp, sip.tcp or sip.tls must list an address".to_string(),
            );
        }
        problems.extend(sip.tls_problems());
        if !sip.advertised_address.is_empty() && sip.advertised_address.parse::<IpAddr>().is_err() {
            problems.push(format!(
                "sip.advertised_address: {:?} is not an IP address",
                sip.advertised_address
            ));
        }
        if sip.t1_ms == 0 || sip.t2_ms < sip.t1_ms || sip.t4_ms == 0 {
            problems.push("sip timers: need 0 < t1_ms <= t2_ms and t4_ms > 0".to_string());
        }
        if sip.max_calls == 0 {
            problems.push("sip.max_calls must be at least 1".to_string());
        }
        if !(1..=300).contains(&self.instance.heartbeat_secs) {
            problems.push("instance.heartbeat_secs must be from 1 to 300".to_string());
        }
        problems.extend(self.sip_connections.problems());
        problems.extend(self.outbound.problems());
        for proxy in &self.sip_connections.proxy_networks {
            if !sip.trusted_networks.iter().any(|net| net.contains(proxy)) {
                problems.push(format!(
                    "sip_connections.proxy_networks: {proxy} is not inside sip.trusted_networks \
                     (connections from it would be refused)"
                ));
            }
        }
        if self.http.max_connections == 0 {
            problems.push("http.max_connections must be at least 1".to_string());
        }
        let media = &self.media;
        if media.rtp_port_min % 2 != 0 || media.rtp_port_min == 0 {
            problems.push(format!(
                "media.rtp_port_min ({}) must be even and non-zero",
                media.rtp_port_min
            ));
        }
        if !media.rtp_bind.is_ipv4() {
            problems.push(format!(
                "media.rtp_bind ({}) must be an IPv4 address",
                media.rtp_bind
            ));
        }
        if !media.rtp_bind_v6.is_ipv6() {
            problems.push(format!(
                "media.rtp_bind_v6 ({}) must be an IPv6 address",
                media.rtp_bind_v6
            ));
        }
        for family in [false, true] {
            let listed: Vec<&IpAddr> = media
                .advertised_addresses
                .iter()
                .filter(|a| a.is_ipv6() == family)
                .collect();
            if listed.len() > 1 {
                problems.push(format!(
                    "media.advertised_addresses: {listed:?}: at most one {} address",
                    if family { "IPv6" } else { "IPv4" }
                ));
            }
        }
        if let Some(bad) = media
            .advertised_addresses
            .iter()
            .find(|a| a.is_unspecified() || a.is_multicast())
        {
            problems.push(format!(
                "media.advertised_addresses: {bad} is not a unicast address"
            ));
        }
        if media.rtp_port_max <= media.rtp_port_min {
            problems.push(format!(
                "media.rtp_port_max ({}) must be above media.rtp_port_min ({})",
                media.rtp_port_max, media.rtp_port_min
            ));
        }
        if let Err(e) = self.media_policy() {
            problems.push(format!("media: {e}"));
        }
        if self.media.workers > 64 {
            problems.push(format!(
                "media.workers ({}) must be between 0 (one per core) and 64",
                self.media.workers
            ));
        }
        if self.media.realtime_priority > 99 {
            problems.push(format!(
                "media.realtime_priority ({}) must be between 0 (off) and 99",
                self.media.realtime_priority
            ));
        }
        if self.calls.max_duration_secs == 0 {
            problems.push("calls.max_duration_secs must be at least 1".to_string());
        }
        let url = &self.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            problems.push(format!(
                "database.url: {:?} must start with sqlite: or postgres://",
                crate::redact::url(url)
            ));
        }
        let sms = &self.sms;
        if !sms.twilio_auth_token.is_empty() {
            let url = sms.public_url.as_str();
            if url.is_empty() {
                problems.push(
                    "sms.public_url must be set with sms.twilio_auth_token (Twilio signs the public URL)"
                        .to_string(),
                );
            } else if !(url.starts_with("https://") || url.starts_with("http://"))
                || url.contains('?')
                || url.contains('#')
            {
                problems.push(format!(
                    "sms.public_url: {:?} must be an http:// or https:// base URL without query",
                    crate::redact::url(url)
                ));
            }
        }
        if sms.replay_window_secs == 0 {
            problems.push("sms.replay_window_secs must be at least 1".to_string());
        }
        if sms.max_body_bytes < 1024 {
            problems.push(format!(
                "sms.max_body_bytes ({}) must be at least 1024",
                sms.max_body_bytes
            ));
        }
        if self.database.max_connections == 0 {
            problems.push("database.max_connections must be at least 1".to_string());
        }
        if !(1..=MAX_DATABASE_WRITERS).contains(&self.database.writers) {
            problems.push(format!(
                "database.writers must be between 1 and {MAX_DATABASE_WRITERS}"
            ));
        }
        if self.tickets.breach_check_secs == 0 {
            problems.push("tickets.breach_check_secs must be at least 1".to_string());
        }
        problems.extend(self.sms_outbox.problems());
        problems.extend(self.transfer.problems());
        if !["text", "json"].contains(&self.log.format.as_str()) {
            problems.push(format!(
                "log.format: {:?} must be \"text\" or \"json\"",
                self.log.format
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            problems.push(format!(
                "log.level: {:?} is not a valid filter",
                self.log.level
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    pub fn timer_values(&self) -> crate::sip::transaction::TimerValues {
        crate::sip::transaction::TimerValues {
            t1: Duration::from_millis(self.sip.t1_ms),
            t2: Duration::from_millis(self.sip.t2_ms),
            t4: Duration::from_millis(self.sip.t4_ms),
        }
    }

    pub fn media_policy(&self) -> Result<crate::sip::sdp::MediaPolicy, String> {
        use crate::sip::sdp::{Codec, MediaPolicy};
        let codecs = self
            .media
            .codecs
            .iter()
            .map(|name| {
                Codec::from_name(name)
                    .ok_or_else(|| format!("unknown codec {name:?} (use PCMU or PCMA)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let policy = MediaPolicy {
            codecs,
            telephone_event_pt: self.media.telephone_event_payload_type,
            ptime_ms: self.media.ptime_ms,
            srtp: self.media.srtp,
        };
        policy.validate().map_err(|e| e.to_string())?;
        Ok(policy)
    }

    /// The limits every SIP stream connection is held to.
    pub fn stream_limits(&self) -> crate::sip::transport::StreamLimits {
        let limits = &self.sip_connections;
        crate::sip::transport::StreamLimits {
            policy: crate::sip::connections::ConnectionPolicy {
                trusted_networks: self.sip.trusted_networks.clone(),
                max_connections: limits.max_connections,
                max_per_source: limits.max_per_source,
                proxy_networks: limits.proxy_networks.clone(),
                max_per_proxy: limits.max_per_proxy,
                max_outgoing: OWN_SIP_CONNECTIONS as usize,
            },
            settings: crate::sip::stream::StreamSettings {
                message_timeout: Duration::from_secs(limits.message_timeout_secs),
                idle_timeout: Duration::from_secs(limits.idle_timeout_secs),
                max_queued_bytes: limits.max_queued_bytes,
            },
        }
    }

    pub fn admission_policy(&self) -> crate::sip::admission::AdmissionPolicy {
        crate::sip::admission::AdmissionPolicy {
            trusted_networks: self.sip.trusted_networks.clone(),
            max_calls: self.sip.max_calls,
            invites_per_second_per_source: self.sip.invites_per_second_per_source,
        }
    }
}

/// Converts an environment string to the type of the value it replaces.
/// Lists are comma-separated.
fn env_value(current: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    use toml::Value;
    Ok(match current {
        Value::Integer(_) => Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("{raw:?} is not an integer"))?,
        ),
        Value::Boolean(_) => Value::Boolean(
            raw.trim()
                .parse()
                .map_err(|_| format!("{raw:?} is not true or false"))?,
        ),
        Value::Float(_) => Value::Float(
            raw.trim()
                .parse()
                .map_err(|_| format!("{raw:?} is not a number"))?,
        ),
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        _ => Value::String(raw.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn missing_default_file() -> Option<&'static Path> {
        None
    }

    #[test]
    fn the_printed_config_shows_no_secret() {
        let mut config = Config::default();
        config.database.url = "postgres://hotline:TOPSECRET1@db/hotline".into();
        config.sms.twilio_auth_token = "TOPSECRET2".into();
        config.sms.generic_secret = "TOPSECRET3".into();
        config.sms.public_url = "https://u:TOPSECRET4@gw.example.com".into();
        config.sms_outbox.provider = "generic".into();
        config.sms_outbox.url = "https://relay.example.com/send?token=TOPSECRET5".into();
        config.sms_outbox.secret = "TOPSECRET6".into();
        config.sms_outbox.auth_token = "TOPSECRET7".into();
        let shown = toml::to_string_pretty(&config.redacted()).unwrap();
        assert!(!shown.contains("TOPSECRET"), "{shown}");
        assert!(
            shown.contains("postgres://hotline:***@db/hotline"),
            "{shown}"
        );
        assert!(shown.contains("twilio_auth_token = \"(set)\""), "{shown}");
        let unset = toml::to_string_pretty(&Config::default().redacted()).unwrap();
        assert!(unset.contains("generic_secret = \"\""), "{unset}");
    }

    #[test]
    fn problems_name_a_bad_url_without_its_password() {
        let mut config = Config::default();
        config.database.url = "mysql://root:TOPSECRET@db/x".into();
        let problems = config.validate().unwrap_err().to_string();
        assert!(
            problems.contains("database.url: \"mysql://root:***@db/x\" must start with"),
            "{problems}"
        );
        assert!(!problems.contains("TOPSECRET"), "{problems}");
    }

    #[test]
    fn defaults_are_valid_and_match_the_documented_ones() {
        let config = Config::default();
        config.validate().unwrap();
        assert_eq!(config.sip.udp, vec!["0.0.0.0:5060".parse().unwrap()]);
        assert_eq!(config.http.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.database.url, "sqlite://data/hotline.db");
        let trusted: Vec<String> = config
            .sip
            .trusted_networks
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(trusted, vec!["127.0.0.0/8", "::1/128"]);
        assert_eq!(
            config.sip.asserted_identity_from,
            config.sip.trusted_networks
        );
        assert_eq!(config.calls.max_duration_secs, 1800, "half an hour");
        assert_eq!(config.calls.time_limit_prompt, "time_limit");
    }

    #[test]
    fn environment_overrides_file_values() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "[sip]\nmax_calls = 10\n[database]\nurl = \"sqlite://x.db\""
        )
        .unwrap();
        let config = Config::load_from(
            Some(file.path()),
            &env(&[
                ("HOTLINE_DATABASE_URL", "postgres://localhost/test"),
                ("HOTLINE_SIP_INVITES_PER_SECOND_PER_SOURCE", "7"),
                ("HOTLINE_SIP_UDP", "127.0.0.1:5070, [::1]:5070"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(config.sip.max_calls, 10);
        assert_eq!(config.database.url, "postgres://localhost/test");
        assert_eq!(config.sip.invites_per_second_per_source, 7);
        assert_eq!(config.sip.udp.len(), 2);
    }

    #[test]
    fn connection_limits_come_from_their_section_and_are_checked() {
        let config = Config::load_from(
            missing_default_file(),
            &env(&[
                ("HOTLINE_SIP_CONNECTIONS_MAX_PER_SOURCE", "4"),
                ("HOTLINE_SIP_CONNECTIONS_PROXY_NETWORKS", "127.0.0.9/32"),
                ("HOTLINE_SIP_MAX_CALLS", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(config.sip_connections.max_per_source, 4);
        assert_eq!(config.sip.max_calls, 3);
        let limits = config.stream_limits();
        assert_eq!(limits.policy.proxy_networks.len(), 1);
        assert_eq!(limits.settings.message_timeout, Duration::from_secs(10));

        let mut config = Config::default();
        config.sip_connections.max_connections = 0;
        config.sip_connections.message_timeout_secs = 0;
        config.sip_connections.idle_timeout_secs = 0;
        config.sip_connections.max_queued_bytes = 100;
        config.sip_connections.proxy_networks = vec!["192.0.2.0/24".parse().unwrap()];
        let Err(ConfigError::Invalid(problems)) = config.validate() else {
            panic!("invalid limits accepted");
        };
        for expected in [
            "sip_connections.max_connections must be at least 1",
            "sip_connections.message_timeout_secs (0)",
            "sip_connections.max_queued_bytes (100)",
            "192.0.2.0/24 is not inside sip.trusted_networks",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{expected:?} not in {problems:#?}"
            );
        }
    }

    #[test]
    fn database_writers_are_between_1_and_16() {
        for (writers, valid) in [(0, false), (1, true), (16, true), (17, false)] {
            let mut config = Config::default();
            config.database.writers = writers;
            let refused = match config.validate() {
                Err(ConfigError::Invalid(problems)) => problems
                    .iter()
                    .any(|p| p.contains("database.writers must be between 1 and 16")),
                _ => false,
            };
            assert_eq!(refused, !valid, "{writers} writers");
        }
    }

    #[test]
    fn sms_secrets_come_from_the_environment() {
        let config = Config::load_from(
            missing_default_file(),
            &env(&[
                ("HOTLINE_SMS_TWILIO_AUTH_TOKEN", "tok"),
                ("HOTLINE_SMS_PUBLIC_URL", "https://gw.example.com:8443"),
                ("HOTLINE_SMS_MAX_PER_SENDER_PER_MINUTE", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(config.sms.twilio_auth_token, "tok");
        assert_eq!(config.sms.public_url, "https://gw.example.com:8443");
        assert_eq!(config.sms.max_per_sender_per_minute, 3);
        assert_eq!(config.sms.generic_secret, "");
    }

    #[test]
    fn tls_listeners_need_a_certificate_and_key_from_file_or_environment() {
        let mut config = Config::default();
        config.sip.tls = vec!["0.0.0.0:5061".parse().unwrap()];
        let error = config.validate().unwrap_err().to_string();
        assert!(
            error.contains("sip.tls lists listeners: sip.tls_cert_file and sip.tls_key_file"),
            "{error}"
        );
        config.sip.tls.clear();
        config.sip.tls_cert_file = PathBuf::from("/etc/hotline/cert.pem");
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("go together"), "{error}");
        let config = Config::load_from(
            missing_default_file(),
            &env(&[
                ("HOTLINE_SIP_TLS", "0.0.0.0:5061, [::]:5061"),
                ("HOTLINE_SIP_TLS_CERT_FILE", "/etc/hotline/cert.pem"),
                ("HOTLINE_SIP_TLS_KEY_FILE", "/etc/hotline/key.pem"),
                ("HOTLINE_SIP_TLS_CA_FILE", "/etc/hotline/trunk-ca.pem"),
            ]),
        )
        .unwrap();
        assert_eq!(config.sip.tls.len(), 2);
        let settings = config.sip.tls_settings();
        assert_eq!(settings.key_file, PathBuf::from("/etc/hotline/key.pem"));
        assert_eq!(settings.ca_file, PathBuf::from("/etc/hotline/trunk-ca.pem"));
        let mut only_tls = Config::default();
        only_tls.sip.udp.clear();
        only_tls.sip.tcp.clear();
        only_tls.sip.tls = config.sip.tls.clone();
        only_tls.sip.tls_cert_file = settings.cert_file;
        only_tls.sip.tls_key_file = settings.key_file;
        only_tls.validate().unwrap();
    }

    #[test]
    fn a_twilio_token_needs_a_public_url() {
        let mut config = Config::default();
        config.sms.twilio_auth_token = "tok".into();
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("sms.public_url must be set"), "{error}");
        config.sms.public_url = "gw.example.com/?x=1".into();
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("without query"), "{error}");
    }

    #[test]
    fn unknown_environment_setting_is_an_error() {
        let error = Config::load_from(
            missing_default_file(),
            &env(&[("HOTLINE_SIP_MAX_CALS", "1")]),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable HOTLINE_SIP_MAX_CALS: no such setting"
        );
    }

    #[test]
    fn bad_file_reports_the_line() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "[sip]\nmax_calls = \"many\"").unwrap();
        let error = Config::load_from(Some(file.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("line 2"), "{error}");
        assert!(error.contains("max_calls"), "{error}");
    }

    #[test]
    fn unknown_file_key_is_rejected() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "[sip]\nmax_call = 3").unwrap();
        let error = Config::load_from(Some(file.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `max_call`"), "{error}");
    }

    #[test]
    fn every_validation_problem_is_listed() {
        let mut config = Config::default();
        config.media.rtp_port_min = 10001;
        config.media.codecs = vec!["G729".into()];
        config.log.format = "xml".into();
        let error = config.validate().unwrap_err().to_string();
        assert!(
            error.contains("rtp_port_min (10001) must be even"),
            "{error}"
        );
        assert!(error.contains("unknown codec \"G729\""), "{error}");
        assert!(error.contains("log.format"), "{error}");
    }

    #[test]
    fn sms_outbox_settings_come_from_the_environment_and_are_checked() {
        let config = Config::load_from(
            missing_default_file(),
            &env(&[
                ("HOTLINE_SMS_OUTBOX_PROVIDER", "twilio"),
                ("HOTLINE_SMS_OUTBOX_ACCOUNT_SID", "AC123"),
                ("HOTLINE_SMS_OUTBOX_AUTH_TOKEN", "secret"),
                ("HOTLINE_SMS_OUTBOX_FROM", "+15005550006"),
                ("HOTLINE_SMS_OUTBOX_MAX_ATTEMPTS", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(config.sms_outbox.provider, "twilio");
        assert_eq!(config.sms_outbox.account_sid, "AC123");
        assert_eq!(config.sms_outbox.max_attempts, 3);
        assert_eq!(config.sms_outbox.api_base, "https://api.twilio.com");

        let error = Config::load_from(
            missing_default_file(),
            &env(&[("HOTLINE_SMS_OUTBOX_PROVIDER", "twilio")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains(
                "sms_outbox.account_sid must be set when sms_outbox.provider is \"twilio\""
            ),
            "{error}"
        );
        assert!(
            error.contains("one of from or messaging_service_sid"),
            "{error}"
        );

        let mut config = Config::default();
        config.sms_outbox.provider = "generic".into();
        config.sms_outbox.url = "ftp://x".into();
        config.sms_outbox.batch_size = 0;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("sms_outbox.secret must be set"), "{error}");
        assert!(error.contains("sms_outbox.url: \"ftp://x\""), "{error}");
        assert!(
            error.contains("sms_outbox.batch_size must be at least 1"),
            "{error}"
        );
        config.sms_outbox.provider = "smpp".into();
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("sms_outbox.provider: \"smpp\""), "{error}");
        config.sms_outbox.secret = "hunter2".into();
        let shown = config.sms_outbox.redacted();
        assert_eq!(shown.secret, "(set)");
        assert_eq!(shown.auth_token, "");
    }

    #[test]
    fn transfer_targets_are_read_and_checked() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "[transfer]\ntimeout_secs = 20\n\
             [transfer.targets.agents]\nuri = \"sip:queue@127.0.0.1:5070\"\nmode = \"refer\"\n\
             [transfer.targets.vip]\nuri = \"sips:vip@agents.example.com\""
        )
        .unwrap();
        let config = Config::load_from(Some(file.path()), &[]).unwrap();
        assert_eq!(config.transfer.timeout_secs, 20);
        assert_eq!(config.transfer.context_ttl_secs, 600);
        let agents = &config.transfer.targets["agents"];
        assert_eq!(agents.uri, "sip:queue@127.0.0.1:5070");
        assert_eq!(agents.mode, TransferMode::Refer);
        assert_eq!(config.transfer.targets["vip"].mode, TransferMode::Refer);

        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "[transfer.targets.agents]\nuri = \"sip:queue@127.0.0.1\"\nmode = \"carrier-pigeon\""
        )
        .unwrap();
        let error = Config::load_from(Some(file.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("unknown variant `carrier-pigeon`"),
            "{error}"
        );
        assert!(error.contains("line 3"), "{error}");

        let mut config = Config::default();
        config.transfer.timeout_secs = 0;
        for (name, uri) in [
            ("a", "queue@127.0.0.1"),
            ("b", "tel:+861010000"),
            ("c", "sip:"),
        ] {
            config.transfer.targets.insert(
                name.into(),
                TransferTarget {
                    uri: uri.into(),
                    mode: TransferMode::Refer,
                    username: None,
                    password: None,
                    srtp: false,
                },
            );
        }
        let error = config.validate().unwrap_err().to_string();
        assert!(
            error.contains("transfer.timeout_secs must be at least 1"),
            "{error}"
        );
        for name in ["a", "b", "c"] {
            assert!(
                error.contains(&format!("transfer.targets.{name}.uri")),
                "{error}"
            );
        }
    }

    #[test]
    fn bridge_targets_need_an_ip_address_and_both_credentials() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "[transfer]\nring_timeout_secs = 12\n\
             [transfer.targets.agents]\nuri = \"sip:queue@127.0.0.1:5070;transport=tcp\"\n\
             mode = \"bridge\"\nusername = \"hotline\"\npassword = \"s3cret\""
        )
        .unwrap();
        let config = Config::load_from(Some(file.path()), &[]).unwrap();
        assert_eq!(config.transfer.ring_timeout_secs, 12);
        let agents = &config.transfer.targets["agents"];
        assert_eq!(agents.mode, TransferMode::Bridge);
        assert_eq!(
            agents.credentials(),
            Some(("hotline".to_string(), "s3cret".to_string()))
        );
        let shown = config.transfer.redacted();
        assert_eq!(shown.targets["agents"].password.as_deref(), Some("(set)"));

        let mut config = Config::default();
        config.transfer.ring_timeout_secs = 0;
        config.transfer.targets.insert(
            "pbx".into(),
            TransferTarget {
                uri: "sip:600@pbx.example.com".into(),
                mode: TransferMode::Bridge,
                username: Some("u".into()),
                password: None,
                srtp: false,
            },
        );
        config.transfer.targets.insert(
            "secure".into(),
            TransferTarget {
                uri: "sips:600@pbx.example.com".into(),
                mode: TransferMode::Bridge,
                username: None,
                password: None,
                srtp: false,
            },
        );
        let error = config.validate().unwrap_err().to_string();
        assert!(
            error.contains("transfer.ring_timeout_secs must be at least 1"),
            "{error}"
        );
        assert!(
            !error.contains("secure.uri"),
            "sips: is dialled over TLS: {error}"
        );
        assert!(!error.contains("pbx.uri"), "a host name is fine: {error}");
        assert!(
            error.contains("transfer.targets.pbx: username and password go together"),
            "{error}"
        );
    }

    #[test]
    fn srtp_and_media_addresses_from_the_environment_and_checked() {
        let loaded = Config::load_from(
            None,
            &env(&[
                ("HOTLINE_MEDIA_SRTP", "required"),
                (
                    "HOTLINE_MEDIA_ADVERTISED_ADDRESSES",
                    "203.0.113.5, 2001:db8::5",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.media.srtp, crate::sip::sdp::SrtpMode::Required);
        assert_eq!(
            loaded.media_policy().unwrap().srtp,
            crate::sip::sdp::SrtpMode::Required
        );
        assert_eq!(loaded.media.advertised_addresses.len(), 2);
        let error = Config::load_from(None, &env(&[("HOTLINE_MEDIA_SRTP", "mandatory")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("mandatory"), "{error}");
        let mut config = Config::default();
        config.media.advertised_addresses = vec![
            "203.0.113.5".parse().unwrap(),
            "203.0.113.6".parse().unwrap(),
            "::".parse().unwrap(),
        ];
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("at most one IPv4 address"), "{error}");
        assert!(error.contains(":: is not a unicast address"), "{error}");
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("hotline.example.toml");
        Config::load_from(Some(&path), &[]).unwrap();
    }

    /// The commented target blocks are what the start-up warning asks for:
    /// uncommented, they define the targets the shipped plans name.
    #[test]
    fn the_examples_commented_targets_work_uncommented() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("hotline.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let mut in_transfer = false;
        let uncommented: String = text
            .lines()
            .map(|line| {
                if line.starts_with('[') {
                    in_transfer = line == "[transfer]";
                }
                match line.strip_prefix("#   ") {
                    Some(block) if in_transfer => block,
                    _ => line,
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let config: Config = toml::from_str(&uncommented).unwrap();
        config.validate().unwrap();
        let names: Vec<&str> = config.transfer.targets.keys().map(String::as_str).collect();
        assert_eq!(names, ["agents", "agents_priority"]);
    }
}
