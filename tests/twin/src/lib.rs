//! The cluster twin: a Kubernetes API server, EKS node groups and load-balancer traffic that
//! the real kube client, kubectl and aws-sdk-eks talk to over HTTP on 127.0.0.1.
//!
//! Module ownership while the twin is being built:
//! - `store`, `api`, `server`, `kubeconfig`: the Kubernetes API surface.
//! - `clock`, `sim`, `scenario`: time, controllers, scheduler, kubelet and scenarios.
//! - `eks`, `lb`, `report`: the EKS control plane, load balancers/traffic, the report.
//! - `twin`: all of it run together from a scenario ([`twin::Twin`]), as `ngm-twin serve` does.

pub mod api;
pub mod clock;
pub mod eks;
pub mod kubeconfig;
pub mod lb;
pub mod report;
pub mod scenario;
pub mod seed;
pub mod server;
pub mod sim;
pub mod store;
pub mod supervisor;
pub mod twin;
