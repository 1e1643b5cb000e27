//! EC2 instance types as a node of an EKS group sees them: what the EKS AMIs leave allocatable,
//! and how many pods EKS lets it run.
//!
//! - Max pods with the VPC CNI: ENIs × (IPv4 addresses per ENI − 1) + 2, the first address of
//!   each ENI being the ENI's own and the 2 the host-network pods (amazon-eks-ami
//!   `nodeadm/internal/kubelet/eni_max_pods.go`, `calculateStandardMaxPods`).
//! - A managed node group on an EKS AMI caps that at 110 for fewer than 30 vCPUs and 250 from
//!   30 (EKS User Guide, "Create a managed node group"; "Amazon VPC CNI", max pods).
//! - Allocatable on the EKS AMIs (nodeadm `config.go`, `withDefaultReservedResources`):
//!   kube-reserved memory 11 MiB per pod + 255 MiB, and a `memory.available` eviction threshold
//!   of 100 MiB; kube-reserved CPU 6 % of the first core, 1 % of the second, 0.5 % of the third
//!   and fourth, 0.25 % of each above.
//!
//! ENIs and addresses per ENI are EC2's ("Maximum IP addresses per network interface", EC2
//! User Guide), as `DescribeInstanceTypes` reports them.

use super::Resources;

/// CPU architecture, as `kubernetes.io/arch` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub fn label(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// An EC2 instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceType {
    pub name: &'static str,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub enis: i64,
    pub ipv4_per_eni: i64,
    pub arch: Arch,
    /// NVIDIA GPUs (`nvidia.com/gpu`).
    pub gpus: i64,
    /// NVMe instance store, in GB (0: EBS only).
    pub instance_store_gb: i64,
}

/// A node of one instance type, as the scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCapacity {
    pub allocatable: Resources,
    pub max_pods: i64,
    pub gpus: i64,
}

const fn t(
    name: &'static str,
    vcpus: i64,
    memory_mib: i64,
    enis: i64,
    ipv4_per_eni: i64,
    arch: Arch,
) -> InstanceType {
    InstanceType {
        name,
        vcpus,
        memory_mib,
        enis,
        ipv4_per_eni,
        arch,
        gpus: 0,
        instance_store_gb: 0,
    }
}

const fn with_store(mut i: InstanceType, gb: i64) -> InstanceType {
    i.instance_store_gb = gb;
    i
}

const fn with_gpus(mut i: InstanceType, gpus: i64, store_gb: i64) -> InstanceType {
    i.gpus = gpus;
    i.instance_store_gb = store_gb;
    i
}

use Arch::{Amd64, Arm64};

const GIB: i64 = 1024;

/// The types ngm knows. Another type is refused by name in the pre-flight, never guessed.
pub const INSTANCE_TYPES: &[InstanceType] = &[
    t("t3.small", 2, 2 * GIB, 3, 4, Amd64),
    t("t3.medium", 2, 4 * GIB, 3, 6, Amd64),
    t("t3.large", 2, 8 * GIB, 3, 12, Amd64),
    t("t3.xlarge", 4, 16 * GIB, 4, 15, Amd64),
    t("t3.2xlarge", 8, 32 * GIB, 4, 15, Amd64),
    t("t3a.medium", 2, 4 * GIB, 3, 6, Amd64),
    t("t3a.large", 2, 8 * GIB, 3, 12, Amd64),
    t("t3a.xlarge", 4, 16 * GIB, 4, 15, Amd64),
    t("m5.large", 2, 8 * GIB, 3, 10, Amd64),
    t("m5.xlarge", 4, 16 * GIB, 4, 15, Amd64),
    t("m5.2xlarge", 8, 32 * GIB, 4, 15, Amd64),
    t("m5.4xlarge", 16, 64 * GIB, 8, 30, Amd64),
    t("m5.8xlarge", 32, 128 * GIB, 8, 30, Amd64),
    t("m5.12xlarge", 48, 192 * GIB, 8, 30, Amd64),
    with_store(t("m5d.large", 2, 8 * GIB, 3, 10, Amd64), 75),
    with_store(t("m5d.xlarge", 4, 16 * GIB, 4, 15, Amd64), 150),
    t("m6i.large", 2, 8 * GIB, 3, 10, Amd64),
    t("m6i.xlarge", 4, 16 * GIB, 4, 15, Amd64),
    t("m6i.2xlarge", 8, 32 * GIB, 4, 15, Amd64),
    t("m6i.4xlarge", 16, 64 * GIB, 8, 30, Amd64),
    t("m7i.large", 2, 8 * GIB, 3, 10, Amd64),
    t("m7i.xlarge", 4, 16 * GIB, 4, 15, Amd64),
    t("m6g.large", 2, 8 * GIB, 3, 10, Arm64),
    t("m6g.xlarge", 4, 16 * GIB, 4, 15, Arm64),
    t("m6g.2xlarge", 8, 32 * GIB, 4, 15, Arm64),
    t("m7g.large", 2, 8 * GIB, 3, 10, Arm64),
    t("m7g.xlarge", 4, 16 * GIB, 4, 15, Arm64),
    t("m7g.2xlarge", 8, 32 * GIB, 4, 15, Arm64),
    t("m7g.4xlarge", 16, 64 * GIB, 8, 30, Arm64),
    t("c5.large", 2, 4 * GIB, 3, 10, Amd64),
    t("c5.xlarge", 4, 8 * GIB, 4, 15, Amd64),
    t("c5.2xlarge", 8, 16 * GIB, 4, 15, Amd64),
    t("c5.4xlarge", 16, 32 * GIB, 8, 30, Amd64),
    with_store(t("c5d.large", 2, 4 * GIB, 3, 10, Amd64), 50),
    t("c6i.large", 2, 4 * GIB, 3, 10, Amd64),
    t("c6i.xlarge", 4, 8 * GIB, 4, 15, Amd64),
    t("c6g.large", 2, 4 * GIB, 3, 10, Arm64),
    t("c6g.xlarge", 4, 8 * GIB, 4, 15, Arm64),
    t("c7g.large", 2, 4 * GIB, 3, 10, Arm64),
    t("c7g.xlarge", 4, 8 * GIB, 4, 15, Arm64),
    t("r5.large", 2, 16 * GIB, 3, 10, Amd64),
    t("r5.xlarge", 4, 32 * GIB, 4, 15, Amd64),
    t("r5.2xlarge", 8, 64 * GIB, 4, 15, Amd64),
    t("r6i.large", 2, 16 * GIB, 3, 10, Amd64),
    t("r6g.large", 2, 16 * GIB, 3, 10, Arm64),
    with_store(t("i3.large", 2, 15616, 3, 10, Amd64), 475),
    with_store(t("i3.xlarge", 4, 31232, 4, 15, Amd64), 950),
    with_store(t("i4i.large", 2, 16 * GIB, 3, 10, Amd64), 468),
    with_gpus(t("g4dn.xlarge", 4, 16 * GIB, 3, 10, Amd64), 1, 125),
    with_gpus(t("g4dn.2xlarge", 8, 32 * GIB, 3, 10, Amd64), 1, 225),
    with_gpus(t("g5.xlarge", 4, 16 * GIB, 4, 15, Amd64), 1, 250),
    with_gpus(t("g5.2xlarge", 8, 32 * GIB, 4, 15, Amd64), 1, 450),
    with_gpus(t("p3.2xlarge", 8, 62464, 4, 15, Amd64), 1, 0),
];

/// The type by name.
pub fn instance_type(name: &str) -> Option<&'static InstanceType> {
    INSTANCE_TYPES.iter().find(|t| t.name == name)
}

const MIB: i64 = 1 << 20;

impl InstanceType {
    /// ENIs × (IPv4 per ENI − 1) + 2.
    pub fn eni_max_pods(&self) -> i64 {
        self.enis * (self.ipv4_per_eni - 1) + 2
    }

    /// The pods a node runs: the ENI figure, capped as a managed group on an EKS AMI caps it.
    /// A self-managed group or a custom AMI takes what its bootstrap says, the ENI figure by
    /// default.
    pub fn max_pods(&self, managed_eks_ami: bool) -> i64 {
        let eni = self.eni_max_pods();
        if managed_eks_ami {
            eni.min(if self.vcpus < 30 { 110 } else { 250 })
        } else {
            eni
        }
    }

    /// kube-reserved CPU in millicores.
    pub fn reserved_cpu_millis(&self) -> i64 {
        // In hundredths of a millicore: 6000 (6 %), 1000, 500, 500, then 250 per core.
        let hundredths: i64 = (1..=self.vcpus)
            .map(|core| match core {
                1 => 6000,
                2 => 1000,
                3 | 4 => 500,
                _ => 250,
            })
            .sum();
        hundredths / 100
    }

    /// What a node of this type offers pods.
    pub fn node(&self, managed_eks_ami: bool) -> NodeCapacity {
        let max_pods = self.max_pods(managed_eks_ami);
        let reserved_mib = 11 * max_pods + 255 + 100;
        NodeCapacity {
            allocatable: Resources {
                cpu_millis: self.vcpus * 1000 - self.reserved_cpu_millis(),
                memory_bytes: (self.memory_mib - reserved_mib) * MIB,
            },
            max_pods,
            gpus: self.gpus,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// amazon-eks-ami `nodeadm/internal/kubelet/instance-info.jsonl`: m5.large has 3 ENIs of 10
    /// addresses, so 29 pods; the EKS User Guide's max-pods examples give m5.large 29 and
    /// t3.medium 17.
    #[test]
    fn max_pods_follow_the_eni_rule() {
        assert_eq!(
            instance_type("m5.large").map(|t| t.eni_max_pods()),
            Some(29)
        );
        assert_eq!(
            instance_type("t3.medium").map(|t| t.eni_max_pods()),
            Some(17)
        );
        assert_eq!(
            instance_type("m5.4xlarge").map(|t| t.eni_max_pods()),
            Some(234)
        );
    }

    /// EKS User Guide, "Create a managed node group": 110 pods below 30 vCPUs, 250 from 30, on
    /// a managed group without a custom AMI; a self-managed group keeps the ENI figure.
    #[test]
    fn managed_groups_cap_max_pods() {
        let m5_4x = instance_type("m5.4xlarge").expect("known");
        assert_eq!(m5_4x.max_pods(true), 110);
        assert_eq!(m5_4x.max_pods(false), 234);
        let m5_8x = instance_type("m5.8xlarge").expect("known");
        assert_eq!(m5_8x.max_pods(true), 234);
        let m5_12x = instance_type("m5.12xlarge").expect("known");
        assert_eq!(m5_12x.max_pods(true), 234);
        assert_eq!(
            instance_type("t3.medium").map(|t| t.max_pods(true)),
            Some(17)
        );
    }

    /// nodeadm `config.go` `withDefaultReservedResources`: 11 MiB per pod + 255 MiB, the
    /// 100 MiB eviction threshold, and 6/1/0.5/0.5/0.25 % of the cores.
    #[test]
    fn allocatable_subtracts_what_the_eks_ami_reserves() {
        let m5 = instance_type("m5.xlarge").expect("known").node(true);
        assert_eq!(m5.allocatable.cpu_millis, 4000 - 80);
        assert_eq!(
            m5.allocatable.memory_bytes,
            (16 * 1024 - (11 * 58 + 255 + 100)) * MIB
        );
        let c5 = instance_type("c5.4xlarge").expect("known").node(true);
        // 60 + 10 + 5 + 5 + 12 × 2.5 = 110m; 110 pods on a managed group.
        assert_eq!(c5.allocatable.cpu_millis, 16_000 - 110);
        assert_eq!(c5.max_pods, 110);
        assert_eq!(instance_type("g4dn.xlarge").map(|t| t.gpus), Some(1));
    }

    #[test]
    fn unknown_types_are_not_guessed() {
        assert!(instance_type("x9.mega").is_none());
    }
}
