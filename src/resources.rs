//! The process's file descriptors and memory: the open-file limit raised
//! at start, the descriptor budget that keeps room for every call, memory
//! given back after a flood, and the counts `/metrics` shows.
//!
//! Every call holds descriptors (its RTP sockets), and so does every SIP
//! connection, HTTP connection and database connection. Were they drawn
//! from one pool first come first served, a flood of connections would
//! leave calls without an RTP socket. So the budget reserves
//! `sip.max_calls` × [`PER_CALL`] for calls, caps each kind of connection
//! at its configured maximum, keeps [`BASE`] for the gateway itself, and
//! the gateway refuses to start when the limit cannot hold all of that
//! ([`plan`], with a message saying what to change).

use crate::config::{Config, OWN_SIP_CONNECTIONS};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors one call may hold: its RTP socket, and a bridged call's
/// agent leg's (`media::ports` binds one socket per leg).
pub const PER_CALL: u64 = 2;
/// The gateway's own use apart from calls and connections: listeners, the
/// runtime's event descriptors, the log, database and prompt files, and
/// what a reload reads.
pub const BASE: u64 = 256;

/// What the configuration asks for, in descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    pub calls: u64,
    pub sip_connections: u64,
    pub http_connections: u64,
    pub database: u64,
}

impl Demand {
    pub fn of(config: &Config) -> Demand {
        Demand {
            calls: config.sip.max_calls as u64,
            sip_connections: config.sip_connections.max_connections as u64,
            http_connections: config.http.max_connections as u64,
            database: u64::from(config.database.max_connections)
                + config.database.writers as u64
                + u64::from(crate::tickets::store::SMS_LIMIT_CONNECTIONS),
        }
    }

    /// Descriptors needed beyond the calls'.
    fn besides_calls(&self) -> u64 {
        self.sip_connections + OWN_SIP_CONNECTIONS + self.http_connections + self.database + BASE
    }

    pub fn total(&self) -> u64 {
        self.calls.saturating_mul(PER_CALL) + self.besides_calls()
    }
}

/// The open-file limit cannot hold what the configuration asks for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not enough file descriptors: the open-file limit is {limit} but this configuration needs {needed}: \
     {calls_part} for sip.max_calls = {calls} ({PER_CALL} RTP sockets each), \
     {sip} for sip_connections.max_connections, {OWN_SIP_CONNECTIONS} for the gateway's own SIP connections, \
     {http} for http.max_connections, {database} for database.max_connections + database.writers + the SMS limits' {limits} and {BASE} for the gateway itself. \
     Raise the limit to at least {needed} (LimitNOFILE= in the systemd unit, `ulimit -n` in a shell; \
     the hard limit is {hard}), or lower sip.max_calls (at most {calls_that_fit} calls fit) \
     or the connection limits",
    needed = demand.total(),
    calls_part = demand.calls.saturating_mul(PER_CALL),
    limits = crate::tickets::store::SMS_LIMIT_CONNECTIONS,
    calls = demand.calls,
    sip = demand.sip_connections,
    http = demand.http_connections,
    database = demand.database,
    calls_that_fit = limit.saturating_sub(demand.besides_calls()) / PER_CALL
)]
pub struct Shortfall {
    pub limit: u64,
    pub hard: u64,
    pub demand: Demand,
}

/// Checks that `limit` descriptors hold `demand`; returns the spare ones.
pub fn plan(limit: u64, hard: u64, demand: Demand) -> Result<u64, Shortfall> {
    limit.checked_sub(demand.total()).ok_or(Shortfall {
        limit,
        hard,
        demand,
    })
}

/// The open-file limit, after [`raise_open_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    pub soft: u64,
    pub hard: u64,
    /// The soft limit before it was raised, if it was.
    pub raised_from: Option<u64>,
}

/// Where an unlimited hard limit puts the soft one (the kernel's default
/// `fs.nr_open`).
const UNLIMITED: u64 = 1 << 20;

/// Raises the soft open-file limit to the hard one (systemd starts
/// services at 1024 soft whatever `LimitNOFILE` allows).
pub fn raise_open_file_limit() -> OpenFileLimit {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let hard = maximum.unwrap_or(UNLIMITED);
    let soft = current.unwrap_or(UNLIMITED);
    if soft >= hard {
        return OpenFileLimit {
            soft,
            hard,
            raised_from: None,
        };
    }
    let raised = Rlimit {
        current: Some(hard),
        maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => OpenFileLimit {
            soft: hard,
            hard,
            raised_from: Some(soft),
        },
        Err(error) => {
            tracing::warn!(%error, soft, hard, "cannot raise the open-file limit");
            OpenFileLimit {
                soft,
                hard,
                raised_from: None,
            }
        }
    }
}

/// Raises the limit and checks the configuration's budget against it;
/// logs the budget. The error says what to change.
pub fn reserve(config: &Config) -> Result<OpenFileLimit, Shortfall> {
    let limit = raise_open_file_limit();
    let demand = Demand::of(config);
    let spare = plan(limit.soft, limit.hard, demand)?;
    tracing::info!(
        limit = limit.soft,
        raised_from = limit.raised_from,
        calls = demand.calls * PER_CALL,
        sip_connections = demand.sip_connections,
        own_sip_connections = OWN_SIP_CONNECTIONS,
        http_connections = demand.http_connections,
        database = demand.database,
        gateway = BASE,
        spare,
        open_now = open_count(),
        "file descriptor budget"
    );
    Ok(limit)
}

/// Gives memory that is free inside the allocator back to the system.
/// glibc's malloc keeps what a burst of small allocations freed (a flood
/// of connections, each a few KiB) in its arenas, so the resident size
/// would stay at the burst's peak; `malloc_trim` hands the free pages back.
/// Elsewhere a no-op.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it walks glibc's own arenas
    // under their locks, which is safe while other threads allocate.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The soft open-file limit now.
pub fn soft_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// Descriptors open now (Linux: the entries of /proc/self/fd, less the
/// one reading it).
pub fn open_count() -> Option<usize> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(entries.count().saturating_sub(1))
}

/// Resident memory now (Linux: VmRSS of /proc/self/status).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(calls: u64) -> Demand {
        Demand {
            calls,
            sip_connections: 4096,
            http_connections: 1024,
            database: 16,
        }
    }

    #[test]
    fn the_default_configuration_fits_a_limit_of_20000() {
        let demand = Demand::of(&Config::default());
        assert!(
            demand.total() <= 20_000,
            "{demand:?} needs {}",
            demand.total()
        );
        assert!(plan(20_000, 20_000, demand).is_ok());
    }

    #[test]
    fn calls_are_reserved_two_descriptors_each() {
        let needed = demand(5000).total();
        assert_eq!(
            needed,
            10_000 + 4096 + OWN_SIP_CONNECTIONS + 1024 + 16 + BASE
        );
        assert_eq!(plan(needed, needed, demand(5000)), Ok(0));
        assert_eq!(plan(needed + 7, needed, demand(5000)), Ok(7));
    }

    #[test]
    fn a_limit_too_small_is_refused_with_what_to_change() {
        let error = plan(1024, 4096, demand(5000)).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("the open-file limit is 1024"), "{text}");
        assert!(text.contains("needs 15520"), "{text}");
        assert!(text.contains("LimitNOFILE"), "{text}");
        assert!(text.contains("the hard limit is 4096"), "{text}");
        // 1024 leaves nothing for calls once the connections are counted.
        assert!(text.contains("at most 0 calls fit"), "{text}");
        let roomy = plan(20_000, 20_000, demand(5000)).unwrap();
        let fits = (20_000 - (needed_besides_calls())) / PER_CALL;
        assert!(roomy > 0 && fits >= 5000);
    }

    fn needed_besides_calls() -> u64 {
        demand(0).total()
    }

    #[test]
    fn the_process_can_count_its_descriptors_and_memory() {
        // Other tests open and close files meanwhile: only sanity here.
        let open = open_count().expect("/proc/self/fd");
        assert!(open >= 3, "stdin, stdout and stderr at least: {open}");
        assert!(resident_bytes().unwrap() > 1 << 20);
        assert!(soft_limit().unwrap() >= open as u64);
    }
}
