//! Benchmark (not a timed test): loads the generated 1,000-node, 30,000-pod scenario and
//! times a paginated list of every pod. `cargo run --release -p ngm-twin --example scale_load
//! [-- NODES PODS]`.

use std::time::{Duration, Instant};

use ngm_twin::scenario::scale_scenario;
use ngm_twin::store::{ListParams, Resource};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let nodes: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let pods: u32 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(30_000);
    let scenario = scale_scenario(nodes, pods);
    let started = Instant::now();
    let (store, sim, _) = scenario.boot(Duration::from_secs(600)).await?;
    println!(
        "loaded {nodes} nodes / {pods} pods, all Ready, in {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let mut params = ListParams {
        limit: Some(500),
        ..ListParams::default()
    };
    let mut total = 0;
    loop {
        let page = store.list(Resource::Pod, &params)?;
        total += page.items.len();
        match page.continue_token {
            Some(t) => params.continue_token = Some(t),
            None => break,
        }
    }
    println!(
        "paginated list of {total} pods (limit 500) in {:?}",
        started.elapsed()
    );
    sim.stop().await;
    Ok(())
}
