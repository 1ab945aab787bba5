//! The running gateway: binds the transports, owns the SIP endpoint in one
//! task, glues calls to media, and starts the HTTP side (`http`). This
//! file, `sip/transport.rs` and `sip/stream.rs` hold every network
//! `await` of the signalling path. Before binding anything it checks the
//! file descriptor budget (`resources`): a configuration whose calls and
//! connections the open-file limit cannot hold does not start.
//!
//! Shutdown is designed in: [`Server::shutdown`] (or SIGTERM in `main`)
//! makes new calls get 503, lets live calls run up to the drain timeout,
//! then ends them with BYE, waits briefly for the BYEs to be answered and
//! returns.

use crate::call::{CallEvent, CallReports, CallSettings, Calls};
use crate::config::Config;
use crate::health::Readiness;
use crate::instances::{Cluster, Identity};
use crate::ivr::runner::{Dialplans, IvrCalls, IvrMessage, LiveCalls};
use crate::media::ports::RtpPortPool;
use crate::media::prompt::PromptLibrary;
use crate::media::worker::{CallMediaEvent, MediaWorkers};
use crate::recordings::Recordings;
use crate::sip::endpoint::{Endpoint, EndpointConfig};
use crate::sip::tls::TlsContext;
use crate::sip::transport::{Inbound, SipAddresses, Transports};
use crate::tickets::store::Store;
use anyhow::Context;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

/// How many inbound items the endpoint's task takes per wake-up.
const BATCH: usize = 256;
/// After the final BYEs, how long to wait for their answers.
const BYE_GRACE: Duration = Duration::from_secs(2);

/// A started gateway: its bound addresses and a way to stop it.
pub struct Server {
    pub udp_addrs: Vec<SocketAddr>,
    pub tcp_addrs: Vec<SocketAddr>,
    pub tls_addrs: Vec<SocketAddr>,
    /// Where the HTTP side (webhooks) listens.
    pub http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    events: broadcast::Sender<CallEvent>,
    store: Store,
    reloader: Reloader,
}

/// Reloads dialplans and prompts, and the TLS certificates, into a running
/// gateway (for SIGHUP).
#[derive(Clone)]
pub struct Reloader {
    config: Config,
    reloads: mpsc::UnboundedSender<Reload>,
    tls: Arc<TlsContext>,
}

impl Reloader {
    /// Loads and checks the dialplans and prompts again, and swaps them in
    /// for new calls; calls in progress keep what they started with. With
    /// any problem nothing changes and every problem is returned.
    pub async fn reload(&self) -> anyhow::Result<String> {
        let config = self.config.clone();
        let (dialplans, prompts, version) = tokio::task::spawn_blocking(move || {
            let prompts = load_prompts(&config)?;
            let (dialplans, version) = load_dialplans(&config, &prompts)?;
            anyhow::Ok((dialplans, prompts, version))
        })
        .await??;
        let summary = format!(
            "reloaded: {} prompts; dialplans answer {:?}; dialplan version {version}",
            prompts.len(),
            dialplans.numbers().collect::<Vec<_>>()
        );
        self.reloads
            .send(Reload {
                dialplans: Arc::new(dialplans),
                prompts: Arc::new(prompts),
                version,
            })
            .map_err(|_| anyhow::anyhow!("the gateway is stopping"))?;
        tracing::info!("{summary}");
        Ok(summary)
    }

    /// Reads the TLS certificate, key and CA files again: connections made
    /// from now on use them, open ones keep theirs. With any problem
    /// nothing changes and the problem is returned.
    pub async fn reload_tls(&self) -> anyhow::Result<String> {
        let tls = self.tls.clone();
        let summary = tokio::task::spawn_blocking(move || tls.reload()).await??;
        Ok(summary)
    }
}

/// New dialplans and prompts, checked, for the server's task to swap in.
struct Reload {
    dialplans: Arc<Dialplans>,
    prompts: Arc<PromptLibrary>,
    /// The dialplans' version, for `/readyz` and the heartbeat.
    version: String,
}

impl Server {
    /// Binds every socket and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        let policy = config.media_policy().map_err(anyhow::Error::msg)?;
        let prompts = Arc::new(load_prompts(&config)?);
        let store =
            crate::admin::open_observed_store(&config, Arc::new(crate::metrics::StoreMetrics))
                .await?;
        if config.database.migrate_on_start {
            store
                .migrate()
                .await
                .context("cannot migrate the database")?;
        }
        // The URL is not logged: a PostgreSQL URL may carry a password.
        tracing::info!(
            backend = ?store.backend(),
            migrated = config.database.migrate_on_start,
            "ticket store ready"
        );
        let advertised = match config.sip.advertised_address.as_str() {
            "" => None,
            ip => Some(ip.parse::<IpAddr>().context("sip.advertised_address")?),
        };
        crate::resources::reserve(&config)?;
        let tls = Arc::new(TlsContext::load(config.sip.tls_settings())?);
        let (inbox_tx, inbox) = mpsc::channel(16_384);
        let transports = Transports::bind_all(
            &SipAddresses {
                udp: config.sip.udp.clone(),
                tcp: config.sip.tcp.clone(),
                tls: config.sip.tls.clone(),
            },
            advertised,
            config.stream_limits(),
            Some(tls.clone()),
            inbox_tx,
        )?;
        warn_of_unreachable_tls_targets(&config);
        crate::metrics::sip_connections_limit(config.sip_connections.max_connections);
        let readiness = Readiness::default();
        readiness.set_sip_bound(true);
        let mut endpoint = Endpoint::new(EndpointConfig {
            timers: config.timer_values(),
            user_agent: config.sip.user_agent.clone(),
            admission: config.admission_policy(),
        });
        endpoint.set_tls_listeners(transports.tls_addrs.clone());
        let (media_tx, media_events) = mpsc::unbounded_channel();
        let workers = MediaWorkers::start(
            config.media.workers,
            config.media.realtime_priority,
            media_tx,
        )
        .context("cannot start media workers")?;
        let (events, _) = broadcast::channel(1024);
        let (dialplans, dialplan_version) = load_dialplans(&config, &prompts)?;
        let dialplans = Arc::new(dialplans);
        readiness.set_dialplans_loaded(&dialplan_version);
        if dialplans.is_empty() {
            tracing::info!(dir = %config.ivr.dialplans_dir.display(), "no dialplans: every call hears the greeting");
        } else {
            tracing::info!(numbers = ?dialplans.numbers().collect::<Vec<_>>(), version = %dialplan_version, "dialplans loaded");
        }
        let (ivr_tx, ivr_messages) = mpsc::unbounded_channel();
        let (place_outbound, outbound_requests) = mpsc::unbounded_channel();
        let (outbound_ended, outbound_results) = mpsc::unbounded_channel();
        let live_calls = LiveCalls::default();
        let recordings = Recordings::new(&config.recordings, store.clone());
        if let Err(e) = recordings.prepare() {
            tracing::warn!(error = %e, "callers' recordings cannot be kept (record nodes take on_error)");
        }
        let mut ivr = IvrCalls::new(
            store.clone(),
            prompts.clone(),
            config.transfer.clone(),
            ivr_tx,
            live_calls.clone(),
            recordings.clone(),
        );
        if config.speech.enabled {
            let speech = &config.speech;
            match crate::speech::sphinx::Sphinx::load(
                &speech.library,
                &speech.model_dir,
                speech.decoders,
            ) {
                Ok(sphinx) => {
                    tracing::info!(library = %speech.library, "speech recognition on: menus with listen phrases take speech");
                    ivr.use_speech(Arc::new(sphinx), speech.min_confidence);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "speech recognition off: menus take keys only")
                }
            }
        }
        let calls = Calls::new(
            CallSettings {
                policy,
                advertised,
                media_addresses: config.media.advertised_addresses.clone(),
                srtp_targets: config
                    .transfer
                    .targets
                    .iter()
                    .filter(|(_, target)| target.srtp)
                    .map(|(name, _)| name.clone())
                    .collect(),
                max_duration: Duration::from_secs(config.calls.max_duration_secs),
                time_limit_prompt: config.calls.time_limit_prompt.clone(),
                asserted_identity_from: config.sip.asserted_identity_from.clone(),
                media_timeout: Duration::from_secs(config.media.timeout_secs),
                symmetric_rtp: config.media.symmetric_rtp,
                greeting: config.calls.greeting.clone(),
                loop_greeting: config.calls.loop_greeting,
                record_bridged_calls: config.recordings.bridged_calls,
                record_ivr_calls: config.recordings.ivr_calls,
            },
            dialplans,
            ivr,
            prompts,
            RtpPortPool::new(
                config.media.rtp_bind,
                config.media.rtp_bind_v6,
                config.media.rtp_port_min,
                config.media.rtp_port_max,
            ),
            workers,
            CallReports {
                events: events.clone(),
                outbound_ended,
            },
        );
        let (stop, stopped) = watch::channel(false);
        let (udp_addrs, tcp_addrs, tls_addrs) = (
            transports.udp_addrs.clone(),
            transports.tcp_addrs.clone(),
            transports.tls_addrs.clone(),
        );
        tracing::info!(udp = ?udp_addrs, tcp = ?tcp_addrs, tls = ?tls_addrs, "SIP listening");
        let http_listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("cannot listen for HTTP on {}", config.http.listen))?;
        let http_addr = http_listener.local_addr()?;
        tracing::info!(http = %http_addr, "HTTP listening");
        // HTTP keeps serving while calls drain (so that /readyz can say
        // so), and stops once the SIP side has.
        let (http_stop, http_stopped) = watch::channel(false);
        let sip_address = sip_identity(&udp_addrs, &tcp_addrs, &tls_addrs, advertised);
        let cluster = Cluster::new(
            store.clone(),
            Identity {
                name: Identity::name_for(&config.instance.name, &sip_address),
                sip_address,
                http_address: http_addr.to_string(),
                started_at: store.now(),
            },
            live_calls,
            Duration::from_secs(config.instance.heartbeat_secs),
        );
        readiness.set_instance(cluster.name());
        tracing::info!(instance = %cluster.name(), "instance");
        // The heartbeat goes on while calls drain, like HTTP.
        let heartbeat = cluster.spawn_heartbeat(readiness.clone(), http_stopped.clone());
        let http = tokio::spawn(crate::http::serve(
            http_listener,
            config.http.max_connections,
            crate::http::router(&config, store.clone(), cluster, recordings.clone())
                .merge(crate::health::router(store.clone(), readiness.clone())),
            http_stopped,
        ));
        let core = Core {
            endpoint,
            transports,
            calls,
            drain_timeout: Duration::from_secs(config.shutdown.drain_timeout_secs),
            readiness,
        };
        let breach_job = tokio::spawn(crate::tickets::jobs::mark_breaches_every(
            store.clone(),
            Duration::from_secs(config.tickets.breach_check_secs),
            stopped.clone(),
        ));
        let retention_job = tokio::spawn(crate::recordings::purge_every(
            recordings.clone(),
            Duration::from_secs(config.recordings.purge_check_secs.max(1)),
            stopped.clone(),
        ));
        let outbox_worker = crate::sms::outbox::spawn_worker(
            store.clone(),
            config.sms_outbox.clone(),
            stopped.clone(),
        );
        let outbound_worker = crate::outbound::worker::spawn(
            store.clone(),
            config.outbound.clone(),
            outbound_lease(&config),
            crate::outbound::worker::CallLoop {
                place: place_outbound,
                ended: outbound_results,
            },
            stopped.clone(),
        );
        let (reloads, reload_requests) = mpsc::unbounded_channel();
        let core_task = tokio::spawn(core.run(
            Queues {
                inbox,
                media: media_events,
                ivr: ivr_messages,
                reloads: reload_requests,
                outbound: outbound_requests,
            },
            stopped,
        ));
        let closing = store.clone();
        let task = tokio::spawn(async move {
            let _ = core_task.await;
            let _ = http_stop.send(true);
            let _ = breach_job.await;
            let _ = retention_job.await;
            let _ = http.await;
            let _ = heartbeat.await;
            if let Some(worker) = outbox_worker {
                let _ = worker.await;
            }
            if let Some(worker) = outbound_worker {
                let _ = worker.await;
            }
            closing.close().await;
        });
        Ok(Server {
            udp_addrs,
            tcp_addrs,
            tls_addrs,
            http_addr,
            stop,
            task,
            events,
            store,
            reloader: Reloader {
                config,
                reloads,
                tls,
            },
        })
    }

    /// Starts the graceful stop and waits until it is complete.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// A handle that starts the graceful stop (for signal handlers).
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// See [`Reloader::reload`].
    pub async fn reload(&self) -> anyhow::Result<String> {
        self.reloader.reload().await
    }

    /// See [`Reloader::reload_tls`].
    pub async fn reload_tls(&self) -> anyhow::Result<String> {
        self.reloader.reload_tls().await
    }

    /// A handle that reloads dialplans, prompts and TLS files (for signal
    /// handlers).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The ticket store the gateway uses.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Call events from now on (key presses, playback, ends).
    pub fn events(&self) -> broadcast::Receiver<CallEvent> {
        self.events.subscribe()
    }
}

/// Bridge targets reached over TLS get our Contact with the port of a TLS
/// listener; without one, they can reach us only on the connection we
/// opened (fine while it stays up, which it does for the call).
fn warn_of_unreachable_tls_targets(config: &Config) {
    if !config.sip.tls.is_empty() {
        return;
    }
    for (name, target) in &config.transfer.targets {
        let tls = crate::sip::headers::Uri::parse(crate::sip::uac::request_uri(&target.uri))
            .is_ok_and(|uri| {
                crate::sip::endpoint::Transport::for_uri(&uri)
                    == crate::sip::endpoint::Transport::Tls
            });
        if tls && target.mode == crate::config::TransferMode::Bridge {
            tracing::warn!(
                target = %name,
                "transfer target {name} is called over TLS but sip.tls lists no listener: \
                 it can reach us only on the connection we open (list one, e.g. \"0.0.0.0:5061\")"
            );
        }
    }
}

/// Loads and checks every dialplan in the configured directory (none if
/// it does not exist); refuses to start with any problem, naming every one.
/// A transfer to a target the config does not define is only warned about
/// (it fails to the node's fallback on every call).
/// The dialplans, checked, and their version (`ivr::check::dir_version`).
fn load_dialplans(config: &Config, prompts: &PromptLibrary) -> anyhow::Result<(Dialplans, String)> {
    let dir = &config.ivr.dialplans_dir;
    let version = crate::ivr::check::dir_version(dir)
        .with_context(|| format!("cannot read the dialplans in {}", dir.display()))?;
    if !dir.is_dir() {
        return Ok((Dialplans::default(), version));
    }
    let plans = crate::ivr::check::load_dir(dir, &|name| prompts.get(name).is_some())
        .map_err(|e| anyhow::anyhow!("bad dialplans:\n{e}"))?;
    for problem in crate::ivr::runner::unknown_transfer_targets(&plans, &config.transfer) {
        tracing::warn!("{problem}");
    }
    let goodbye = &config.calls.time_limit_prompt;
    let languages: std::collections::BTreeSet<&str> = plans
        .iter()
        .flat_map(|plan| plan.languages.iter().map(|l| l.code()))
        .collect();
    for language in languages {
        let name = format!("{language}/{goodbye}");
        if !goodbye.is_empty() && prompts.get(&name).is_none() {
            tracing::warn!(
                "calls.time_limit_prompt: there is no prompt {name} in {}; {language} calls \
                 that reach calls.max_duration_secs are hung up on without it",
                config.prompts.dir.display()
            );
        }
    }
    Ok((Dialplans::new(plans), version))
}

/// The address other instances and staff know this one's SIP side by:
/// the first listener (UDP, else TCP, else TLS), with the advertised
/// address in place of its IP when one is set.
fn sip_identity(
    udp: &[SocketAddr],
    tcp: &[SocketAddr],
    tls: &[SocketAddr],
    advertised: Option<IpAddr>,
) -> String {
    let Some(first) = udp.iter().chain(tcp).chain(tls).next() else {
        return String::new();
    };
    match advertised {
        Some(ip) => SocketAddr::new(ip, first.port()).to_string(),
        None => first.to_string(),
    }
}

/// Loads every prompt and checks that the greeting's prompts exist;
/// reports every problem at once.
fn load_prompts(config: &Config) -> anyhow::Result<PromptLibrary> {
    let library = PromptLibrary::load_dir(&config.prompts.dir).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("bad prompts:\n  - {}", list.join("\n  - "))
    })?;
    let missing: Vec<&str> = config
        .calls
        .greeting
        .iter()
        .map(String::as_str)
        .filter(|name| library.get(name).is_none())
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "calls.greeting names prompts that are not in {}: {}",
            config.prompts.dir.display(),
            missing.join(", ")
        );
    }
    tracing::info!(count = library.len(), dir = %config.prompts.dir.display(), "prompts loaded");
    Ok(library)
}

/// What the call loop serves.
struct Queues {
    inbox: mpsc::Receiver<Inbound>,
    media: mpsc::UnboundedReceiver<CallMediaEvent>,
    ivr: mpsc::UnboundedReceiver<IvrMessage>,
    reloads: mpsc::UnboundedReceiver<Reload>,
    /// Calls the outbound worker asks for.
    outbound: mpsc::UnboundedReceiver<crate::outbound::worker::PlaceCall>,
}

/// How long an outbound call's claim lasts: the longest ring, the longest
/// call and a minute's margin, so that only a gateway that died loses it.
fn outbound_lease(config: &Config) -> Duration {
    let ring = config
        .outbound
        .trunks
        .values()
        .map(|t| t.ring_timeout_secs)
        .max()
        .unwrap_or(0);
    Duration::from_secs(ring + config.calls.max_duration_secs + 60)
}

struct Core {
    endpoint: Endpoint,
    transports: Transports,
    calls: Calls,
    drain_timeout: Duration,
    readiness: Readiness,
}

impl Core {
    async fn run(mut self, queues: Queues, mut stop: watch::Receiver<bool>) {
        let Queues {
            mut inbox,
            mut media,
            mut ivr,
            mut reloads,
            mut outbound,
        } = queues;
        let mut batch = Vec::with_capacity(BATCH);
        let mut media_batch = Vec::with_capacity(BATCH);
        let mut drain_deadline: Option<Instant> = None;
        let mut exit_deadline: Option<Instant> = None;
        let mut mark_connections = Instant::now();
        loop {
            let wake = [
                self.endpoint.poll_timeout(),
                self.calls.next_deadline(),
                drain_deadline,
                exit_deadline,
                self.transports
                    .has_connections()
                    .then_some(mark_connections),
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                received = inbox.recv_many(&mut batch, BATCH) => {
                    if received == 0 {
                        break;
                    }
                    let now = Instant::now();
                    for item in batch.drain(..) {
                        self.handle_inbound(item, now);
                    }
                }
                received = media.recv_many(&mut media_batch, BATCH) => {
                    let now = Instant::now();
                    for event in media_batch.drain(..received) {
                        self.calls.on_media_event(&mut self.endpoint, event, now);
                    }
                }
                Some(reload) = reloads.recv() => {
                    self.calls.reload(reload.dialplans, reload.prompts);
                    self.readiness.set_dialplans_loaded(&reload.version);
                }
                Some(message) = ivr.recv() => {
                    self.calls.on_ivr_message(&mut self.endpoint, message, Instant::now());
                }
                Some(place) = outbound.recv(), if drain_deadline.is_none() => {
                    let transport = crate::sip::headers::Uri::parse(crate::sip::uac::request_uri(&place.uri))
                        .map_or(crate::sip::endpoint::Transport::Udp, |uri| crate::sip::endpoint::Transport::for_uri(&uri));
                    let origin = place
                        .addresses
                        .first()
                        .and_then(|remote| self.transports.origin_for(transport, *remote));
                    self.calls.place_outbound(&mut self.endpoint, place, origin, Instant::now());
                }
                _ = sleep_until(wake) => {}
                // A dropped `Server` handle stops the gateway too.
                _ = stop.changed(), if drain_deadline.is_none() => {
                    tracing::info!(active_calls = self.endpoint.active_calls(), "draining: new calls get 503");
                    self.readiness.set_draining();
                    self.endpoint.set_draining(true);
                    drain_deadline = Some(Instant::now() + self.drain_timeout);
                }
            }
            let now = Instant::now();
            self.endpoint.handle_timeout(now);
            self.calls.enforce_limits(&mut self.endpoint, now);
            self.flush(now);
            if now >= mark_connections {
                // Connections that carry calls are kept however idle.
                self.transports
                    .mark_in_use(&self.endpoint.connections_in_use());
                mark_connections = now + self.transports.in_use_interval();
            }
            crate::metrics::sip_stats(self.endpoint.stats(), self.endpoint.active_calls());
            if let Some(deadline) = drain_deadline {
                if exit_deadline.is_none() && (self.endpoint.active_calls() == 0 || now >= deadline)
                {
                    if self.endpoint.active_calls() > 0 {
                        tracing::info!(
                            active_calls = self.endpoint.active_calls(),
                            "drain timeout: ending live calls"
                        );
                    }
                    self.endpoint.hangup_all(now);
                    self.flush(now);
                    exit_deadline = Some(now + BYE_GRACE);
                }
            }
            if let Some(deadline) = exit_deadline {
                // Leave once our BYEs are answered or the grace period is over
                // (server transactions left only absorb retransmissions).
                if now >= deadline || !self.endpoint.has_client_transactions() {
                    break;
                }
            }
        }
        self.calls.shutdown();
        self.readiness.set_sip_bound(false);
        tracing::info!("stopped");
    }

    fn handle_inbound(&mut self, item: Inbound, now: Instant) {
        match item {
            Inbound::Message { bytes, flow } => self.endpoint.handle_message(&bytes, flow, now),
            Inbound::ConnectionOpened { id, link } => self.transports.on_opened(id, link),
            Inbound::ConnectionClosed { id } => {
                // Answers to what this connection sent last (often a 400
                // for unframeable input, handed over just before the close)
                // must be queued on it before it is forgotten; otherwise
                // they would go out on a new connection to the peer's
                // ephemeral port and be lost.
                self.flush(now);
                self.transports.on_closed(id)
            }
            Inbound::TcpConnectFailed { remote } => self.endpoint.handle_tcp_failure(remote, now),
        }
    }

    /// Sends what the endpoint produced and acts on its events until both
    /// queues are empty.
    fn flush(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(transmit) = self.endpoint.poll_transmit() {
                self.transports.send(transmit);
                progressed = true;
            }
            while let Some(event) = self.endpoint.poll_event() {
                self.calls.on_endpoint_event(&mut self.endpoint, event, now);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
