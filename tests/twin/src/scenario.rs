//! Scenarios: a documented YAML description of a cluster, its workloads, services, traffic,
//! faults, a migration request and the expected outcome (format: the crate README, section
//! "Scenario format").
//!
//! [`Scenario::load`] reads a file; [`Scenario::apply`] creates the initial cluster in a
//! store (nodes for every node group with the labels EKS sets, then the workloads, services,
//! HPAs and PDBs) and waits until every initial pod is Running and Ready, which needs the
//! controllers running ([`crate::sim::start`]). [`Scenario::boot`] does all of it at once.

mod apply;
mod build;
mod job;
mod model;
mod placeholders;
mod scale;

pub use apply::{Applied, ScenarioError, wait_until};
pub use build::{hpa_object, pdb_object, service_object, workload_objects};
pub use model::*;
pub use placeholders::resolve_subnets;
pub use scale::scale_scenario;
