//! Scale benchmark (issue 3 §8; prints figures, not a timed test): the generated
//! 1,000-node, 30,000-pod scenario loads until every pod is Ready, then the real kube client
//! lists every pod over HTTP in pages of 500. Goals: load under a minute, list under a second.
//!
//! `cargo bench -p ngm-twin --bench scale [-- NODES PODS]` (release profile).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use ngm_twin::scenario::scale_scenario;
use ngm_twin::server::serve_local;

/// Peak resident memory of this process, from `VmHWM` in /proc/self/status.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // `cargo bench` passes `--bench`; the figures are the only positional arguments.
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let nodes: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let pods: u32 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(30_000);

    let scenario = scale_scenario(nodes, pods);
    let started = Instant::now();
    let (store, sim, _) = scenario.boot(Duration::from_secs(600)).await?;
    let load = started.elapsed();

    let (url, server) = serve_local(store.clone()).await?;
    let mut config = kube::Config::new(url.parse()?);
    config.default_retry = false;
    let client = kube::Client::try_from(config)?;
    let api: Api<Pod> = Api::all(client.clone());
    let (total, pages, busy) = list_every_pod(&api).await?;
    // The controllers wake every 15 simulated seconds (the HPA sync), i.e. every 25 ms of
    // wall time at this scenario's speed 600, and each pass walks every pod: list again with
    // them stopped to see what the API itself costs.
    sim.stop().await;
    let (_, _, quiet) = list_every_pod(&api).await?;
    let raw = list_every_pod_raw(&client).await?;

    println!("scenario: {nodes} nodes, {pods} pods");
    println!(
        "load (all pods Ready): {:.2} s (goal < 60 s)",
        load.as_secs_f64()
    );
    println!(
        "paginated list over HTTP: {total} pods in {pages} pages of 500, {:.3} s with the controllers running, {:.3} s without (goal < 1 s)",
        busy.as_secs_f64(),
        quiet.as_secs_f64()
    );
    println!(
        "  of which the API server and transfer (bodies not decoded into Pods): {:.3} s",
        raw.as_secs_f64()
    );
    match peak_rss_mib() {
        Some(mib) => println!("peak RSS: {mib:.0} MiB"),
        None => println!("peak RSS: unavailable"),
    }
    server.shutdown().await?;
    Ok(())
}

/// Lists every pod in pages of 500: (pods, pages, time taken).
async fn list_every_pod(api: &Api<Pod>) -> Result<(usize, usize, Duration), kube::Error> {
    let started = Instant::now();
    let (mut total, mut pages, mut token) = (0usize, 0usize, None::<String>);
    loop {
        let mut params = ListParams::default().limit(500);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = api.list(&params).await?;
        total += page.items.len();
        pages += 1;
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok((total, pages, started.elapsed()));
        }
    }
}

/// The same pages fetched as text, reading only each page's `metadata.continue`: the cost of
/// the twin's API server and the transfer, without the client decoding 30,000 Pods.
async fn list_every_pod_raw(client: &kube::Client) -> Result<Duration, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut token: Option<String> = None;
    loop {
        let mut uri = "/api/v1/pods?limit=500".to_string();
        if let Some(t) = &token {
            uri.push_str(&format!("&continue={t}"));
        }
        let body = client
            .request_text(http::Request::get(uri).body(Vec::new())?)
            .await?;
        let head = body.split("\"items\":[").next().unwrap_or_default();
        let meta: serde_json::Value = serde_json::from_str(&format!("{head}\"items\":[]}}"))?;
        token = meta
            .pointer("/metadata/continue")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string);
        if token.is_none() {
            return Ok(started.elapsed());
        }
    }
}
