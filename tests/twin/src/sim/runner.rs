//! The loop that runs every controller pass, and the handle that stops it.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use std::sync::atomic::AtomicU32;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{Notify, broadcast::error::TryRecvError};
use tokio::task::JoinHandle;

use super::cache::Cache;
use super::shared::{InFlight, VolumeZones};
use crate::clock::secs_delta;
use crate::store::{Resource, Store};

/// Tunables of the simulation, all in simulated seconds.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The HPA controller's sync period (`--horizontal-pod-autoscaler-sync-period`, 15 s).
    pub hpa_sync_seconds: f64,
    /// How often PDB status is recomputed even without changes (disruptedPods expire).
    pub pdb_resync_seconds: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            hpa_sync_seconds: 15.0,
            pdb_resync_seconds: 30.0,
        }
    }
}

/// What one controller pass reads and may ask for.
pub struct Ctx<'a> {
    pub store: &'a Store,
    pub cache: &'a Cache,
    pub now: DateTime<Utc>,
    pub volumes: &'a VolumeZones,
    pub inflight: &'a InFlight,
    pub config: &'a SimConfig,
    pub pod_ips: &'a AtomicU32,
    /// Pods by the UID of their controller, built once per pass.
    pub pods_by_owner: HashMap<String, Vec<Arc<Pod>>>,
    /// Pods a `crashLoop` rule (by index) made crash in this pass, not yet in the cache.
    pub crash_started: HashMap<usize, usize>,
    /// Pods deleted since the last pass, in their final state ([`Cache::deleted_pods`]).
    pub deleted_pods: Vec<Arc<Pod>>,
    wake: Option<DateTime<Utc>>,
}

impl<'a> Ctx<'a> {
    /// Pods whose controller has this UID.
    pub fn owned(&self, uid: &str) -> &[Arc<Pod>] {
        self.pods_by_owner
            .get(uid)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Asks for another pass at `t` (the earliest request wins).
    pub fn wake_at(&mut self, t: DateTime<Utc>) {
        if self.wake.is_none_or(|w| t < w) {
            self.wake = Some(t);
        }
    }

    /// Asks for another pass `secs` simulated seconds from now.
    pub fn wake_in(&mut self, secs: f64) {
        let t = self.now + secs_delta(secs);
        self.wake_at(t);
    }
}

/// A running simulation. Dropping it does not stop the task; call [`Sim::stop`].
pub struct Sim {
    store: Store,
    inflight: InFlight,
    volumes: VolumeZones,
    stop: Arc<Notify>,
    kick: Arc<Notify>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").field("store", &self.store).finish()
    }
}

impl Sim {
    /// In-flight requests per pod (the traffic probe registers its requests here).
    pub fn inflight(&self) -> &InFlight {
        &self.inflight
    }

    /// The zones persistent volume claims are pinned to.
    pub fn volumes(&self) -> &VolumeZones {
        &self.volumes
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Forces a pass now (after changing something the store does not announce).
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Stops the controllers and waits for the task to end.
    pub async fn stop(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

/// Starts every controller on `store` (and the store's clock). Must run inside a tokio runtime.
pub fn start(store: &Store, config: SimConfig) -> Sim {
    start_with(store, config, InFlight::default(), VolumeZones::default())
}

/// [`start`] with in-flight and volume registries shared with other parts.
pub fn start_with(
    store: &Store,
    config: SimConfig,
    inflight: InFlight,
    volumes: VolumeZones,
) -> Sim {
    let stop = Arc::new(Notify::new());
    let kick = Arc::new(Notify::new());
    let task = store.supervisor().spawn(
        "controllers",
        run(
            store.clone(),
            config,
            inflight.clone(),
            volumes.clone(),
            stop.clone(),
            kick.clone(),
        ),
    );
    Sim {
        store: store.clone(),
        inflight,
        volumes,
        stop,
        kick,
        task,
    }
}

/// Per-loop memory: when the periodic controllers last ran, and what the HPA controller keeps.
#[derive(Default)]
struct Timers {
    hpa: Option<DateTime<Utc>>,
    hpa_memory: super::hpa::HpaMemory,
    pdb: Option<DateTime<Utc>>,
    jobs: super::job::JobMemory,
}

async fn run(
    store: Store,
    config: SimConfig,
    inflight: InFlight,
    volumes: VolumeZones,
    stop: Arc<Notify>,
    kick: Arc<Notify>,
) {
    let clock = store.clock().clone();
    let mut rx = store.subscribe();
    let mut cache = Cache::load(&store);
    let pod_ips = AtomicU32::new(1);
    let mut timers = Timers::default();
    let mut pdb_dirty = true;
    loop {
        loop {
            match rx.try_recv() {
                Ok(ev) => {
                    pdb_dirty |=
                        matches!(ev.resource, Resource::Pod | Resource::PodDisruptionBudget);
                    cache.apply(&ev);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(_)) => {
                    // Pods deleted in the gap are lost to the Job controller's count of how
                    // they ended; it counts them by their last state it saw.
                    cache = Cache::load(&store);
                    pdb_dirty = true;
                }
                Err(TryRecvError::Closed) => return,
            }
        }
        let now = clock.now();
        let deleted_pods = std::mem::take(&mut cache.deleted_pods);
        let mut ctx = Ctx {
            store: &store,
            cache: &cache,
            now,
            volumes: &volumes,
            inflight: &inflight,
            config: &config,
            pod_ips: &pod_ips,
            pods_by_owner: index_by_owner(&cache),
            crash_started: HashMap::new(),
            deleted_pods,
            wake: None,
        };
        pass(&mut ctx, &mut timers, &mut pdb_dirty);
        let wake = ctx.wake;
        // Our own writes are already queued; take them before sleeping.
        if !rx.is_empty() {
            tokio::task::yield_now().await;
            continue;
        }
        let sleep = async {
            match wake {
                Some(t) => clock.sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.notified() => return,
            _ = kick.notified() => {}
            _ = inflight.changed() => {}
            r = rx.recv() => match r {
                Ok(ev) => {
                    pdb_dirty |= matches!(ev.resource, Resource::Pod | Resource::PodDisruptionBudget);
                    cache.apply(&ev);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    cache = Cache::load(&store);
                    pdb_dirty = true;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = sleep => {}
        }
    }
}

fn index_by_owner(cache: &Cache) -> HashMap<String, Vec<Arc<Pod>>> {
    let mut out: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
    for pod in cache.pods.values() {
        if let Some(owner) = super::podutil::controller_of(&pod.metadata) {
            out.entry(owner.uid.clone()).or_default().push(pod.clone());
        }
    }
    out
}

fn due(last: Option<DateTime<Utc>>, period: f64, now: DateTime<Utc>) -> bool {
    last.is_none_or(|l| now - l >= TimeDelta::milliseconds((period * 1000.0) as i64))
}

/// One pass of every controller, in the order a change flows through a cluster.
fn pass(ctx: &mut Ctx<'_>, timers: &mut Timers, pdb_dirty: &mut bool) {
    let now = ctx.now;
    if due(timers.hpa, ctx.config.hpa_sync_seconds, now) {
        if let Some(last) = timers.hpa {
            let late = now - last - secs_delta(ctx.config.hpa_sync_seconds);
            ctx.store.load().record_lag(late);
        }
        super::hpa::reconcile(ctx, &mut timers.hpa_memory);
        timers.hpa = Some(now);
    }
    if let Some(last) = timers.hpa {
        ctx.wake_at(last + secs_delta(ctx.config.hpa_sync_seconds));
    }
    super::namespace::reconcile(ctx);
    super::gc::reconcile(ctx);
    super::deployment::reconcile(ctx);
    super::replicaset::reconcile(ctx);
    super::statefulset::reconcile(ctx);
    super::daemonset::reconcile(ctx);
    super::job::reconcile(ctx, &mut timers.jobs);
    super::scheduler::reconcile(ctx);
    super::nodelifecycle::reconcile(ctx);
    super::kubelet::reconcile(ctx);
    super::endpoints::reconcile(ctx);
    if *pdb_dirty || due(timers.pdb, ctx.config.pdb_resync_seconds, now) {
        ctx.store.refresh_pdbs(None);
        timers.pdb = Some(now);
        *pdb_dirty = false;
    }
    if let Some(last) = timers.pdb {
        ctx.wake_at(last + secs_delta(ctx.config.pdb_resync_seconds));
    }
}
