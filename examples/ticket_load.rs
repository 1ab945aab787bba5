//! Ticket creation load: W concurrent writers create N tickets in all
//! through the store API (each one a durable commit as far as the caller
//! knows) and the tool reports creations per second and latency
//! percentiles.
//!
//!     cargo run --release --example ticket_load -- URL WRITERS COUNT
//!
//! URL is `sqlite://PATH` (the file should not exist) or `postgres://…`.
//! `HOTLINE_DATABASE_WRITERS`, as for the gateway, sets the store's
//! PostgreSQL writer connections.

use hotline::tickets::model::{Actor, Channel, TicketType};
use hotline::tickets::sla::SlaPolicy;
use hotline::tickets::store::{NewTicket, Store, StoreOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: ticket_load URL WRITERS COUNT";
    let url = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let writers: usize = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let count: usize = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let mut options = StoreOptions::new(Arc::new(SlaPolicy::builtin()));
    options.max_connections = writers.clamp(1, 64) as u32;
    if let Ok(store_writers) = std::env::var("HOTLINE_DATABASE_WRITERS") {
        options.writers = store_writers.parse()?;
    }
    let store = Store::open(&url, options).await?;
    store.migrate().await?;

    let per_writer = count.div_ceil(writers.max(1));
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers.max(1))
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    let phone = format!("13{writer:03}{i:06}");
                    let new = NewTicket::new(
                        TicketType::FaultReport,
                        "bandwidth",
                        &phone,
                        "专线中断，无法上网 / leased line down",
                        Channel::Api,
                        Actor::customer(&phone),
                    );
                    let start = Instant::now();
                    store.create_ticket(new).await?;
                    latencies.push(start.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = Vec::with_capacity(count);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    store.close().await;
    latencies.sort();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index].as_secs_f64() * 1000.0
    };
    println!(
        "writers={writers} tickets={} seconds={:.2} per_second={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(0.50),
        percentile(0.99),
        percentile(1.0),
    );
    Ok(())
}
