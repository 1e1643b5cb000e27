//! The ports a step reaches the world through, bundled so a handler takes one `&World`.

use std::sync::Arc;

use ngm_core::ports::{AsgPort, Ec2Port, EksPort, ElbPort, KubePort, LockPort, SfnPort, SsmPort};

use crate::error::StepError;

/// Every port a step may use. `main` builds it once per cold start.
#[derive(Clone)]
pub struct World {
    pub eks: Arc<dyn EksPort>,
    pub asg: Arc<dyn AsgPort>,
    /// Only the steps that read or version launch templates (or subnets) need EC2.
    pub ec2: Option<Arc<dyn Ec2Port>>,
    pub elb: Arc<dyn ElbPort>,
    pub ssm: Arc<dyn SsmPort>,
    pub sfn: Arc<dyn SfnPort>,
    pub kube: Arc<dyn KubePort>,
    /// The per-cluster lock table.
    pub lock: Arc<dyn LockPort>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("ec2", &self.ec2.is_some())
            .finish_non_exhaustive()
    }
}

impl World {
    /// The EC2 port, or the error a step returns when it needs one and none was wired.
    pub fn ec2(&self) -> Result<&dyn Ec2Port, StepError> {
        self.ec2
            .as_deref()
            .ok_or(StepError::PortUnavailable { port: "ec2" })
    }
}
