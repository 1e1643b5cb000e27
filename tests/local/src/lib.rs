//! `ngm local run`: the real `statemachine/migration.asl.json`, run by a third-party ASL
//! interpreter (aws-local-stepfunctions on Node 22), whose Tasks invoke the real function
//! binaries through a Lambda host of our own; the functions talk over HTTP to the cluster
//! twin (Kubernetes and EKS) and moto (everything else), on the twin's scaled clock. At the end
//! the run is judged: the scenario's expected outcome and invariants I1–I6.
//!
//! - [`bench`]: `ngm bench`, ngm beside the EKS managed update, a drain-based rotation and a
//!   replacement, each on a fresh twin of the same scenario, against the critical path;
//! - [`host`]: the Lambda Runtime API per function and the Invoke API, with injected faults
//!   and each function's timeout;
//! - [`interp`]: the interpreter process (stop, execution timeout);
//! - [`run`]: one scenario end to end, and the cleanup machine after an ABORTED, FAILED or
//!   TIMED_OUT execution, as the EventBridge rule starts it;
//! - [`sfn`]: DescribeExecution for the functions, and StartExecution for the AMI watcher;
//! - [`watch`]: the AMI watcher's ticks (`workflow.amiReleases`): releases published in moto's
//!   SSM, `ami-watch` invoked on a schedule's event, the chain of migrations it started judged;
//! - [`verdict`], [`expect`], [`world`], [`aws_world`], [`timeline`], [`idempotence`]: what is
//!   printed and checked.

pub mod aws_world;
pub mod bench;
pub mod campaign;
pub mod expect;
pub mod host;
pub mod idempotence;
pub mod interp;
pub mod run;
pub mod scale;
pub mod settings;
pub mod sfn;
pub mod support;
pub mod timeline;
pub mod verdict;
pub mod watch;
pub mod world;

pub use ngm_testkit::moto::repo_root;
pub use run::{RunOptions, RunOutcome, run};
