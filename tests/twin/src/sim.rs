//! The simulated control plane that makes the twin behave like a cluster: the Deployment,
//! ReplicaSet, StatefulSet, DaemonSet, Job, HPA, PDB-status and endpoint controllers, the
//! scheduler, the kubelet, and pod/node garbage collection.
//!
//! Everything runs as one task ([`start`]) on the store's [`Clock`](crate::clock::Clock):
//! it wakes on every store change and on the next deadline a controller asked for (a pod
//! that becomes Ready, a preStop that ends, the HPA's 15 s sync), runs a pass of every
//! controller over an informer-style [`cache::Cache`], and sleeps again. Each controller is
//! level-triggered and idempotent, so passes converge and a pass that changes nothing writes
//! nothing. The rules themselves are pure functions ([`ranking`], [`scheduling`],
//! [`workloads`]) with table-driven tests naming the upstream behaviour they follow.

pub mod autoscaler;
pub mod cache;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod gc;
pub mod hpa;
pub mod instances;
pub mod job;
pub mod job_rules;
pub mod kubelet;
pub mod namespace;
pub mod nodelifecycle;
pub mod nodes;
pub mod objects;
pub mod podutil;
pub mod quantity;
pub mod ranking;
pub mod record;
pub mod replicaset;
pub mod runner;
pub mod scheduler;
pub mod scheduling;
pub mod shared;
pub mod statefulset;
pub mod volumes;
pub mod workloads;

pub use runner::{Sim, SimConfig, start, start_with};
pub use shared::{InFlight, InFlightGuard, VolumeZones};
