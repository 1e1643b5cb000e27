//! A small EC2 instance-type table, and node allocatable as the EKS AMIs' bootstrap computes
//! it (kube-reserved CPU by core count and memory by max pods, plus a 100Mi eviction threshold).

/// What the twin knows about an instance type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceType {
    pub name: &'static str,
    pub vcpu: i64,
    pub memory_mib: i64,
    /// Max pods with the VPC CNI (ENIs × (IPs per ENI − 1) + 2).
    pub max_pods: i64,
    pub arch: &'static str,
}

const fn it(
    name: &'static str,
    vcpu: i64,
    gib: i64,
    max_pods: i64,
    arch: &'static str,
) -> InstanceType {
    InstanceType {
        name,
        vcpu,
        memory_mib: gib * 1024,
        max_pods,
        arch,
    }
}

const X86: &str = "amd64";
const ARM: &str = "arm64";

/// Instance types the scenarios use.
pub const INSTANCE_TYPES: &[InstanceType] = &[
    it("t3.medium", 2, 4, 17, X86),
    it("t3.large", 2, 8, 35, X86),
    it("t3.xlarge", 4, 16, 58, X86),
    it("t3.2xlarge", 8, 32, 58, X86),
    it("m5.large", 2, 8, 29, X86),
    it("m5.xlarge", 4, 16, 58, X86),
    it("m5.2xlarge", 8, 32, 58, X86),
    it("m5.4xlarge", 16, 64, 234, X86),
    it("m5.8xlarge", 32, 128, 234, X86),
    it("c5.large", 2, 4, 29, X86),
    it("c5.xlarge", 4, 8, 58, X86),
    it("c5.2xlarge", 8, 16, 58, X86),
    it("c5.4xlarge", 16, 32, 234, X86),
    it("m6i.large", 2, 8, 29, X86),
    it("m6i.xlarge", 4, 16, 58, X86),
    it("m6i.2xlarge", 8, 32, 58, X86),
    it("m6i.4xlarge", 16, 64, 234, X86),
    it("m6g.large", 2, 8, 29, ARM),
    it("m6g.2xlarge", 8, 32, 58, ARM),
    it("m7g.large", 2, 8, 29, ARM),
    it("m7g.xlarge", 4, 16, 58, ARM),
    it("m7g.2xlarge", 8, 32, 58, ARM),
    it("m7g.4xlarge", 16, 64, 234, ARM),
    it("r5.large", 2, 16, 29, X86),
    it("r5.xlarge", 4, 32, 58, X86),
    it("r5.2xlarge", 8, 64, 58, X86),
    // NVMe instance store (local volumes): 15.25 and 30.5 GiB.
    InstanceType {
        memory_mib: 15616,
        ..it("i3.large", 2, 0, 29, X86)
    },
    InstanceType {
        memory_mib: 31232,
        ..it("i3.xlarge", 4, 0, 58, X86)
    },
];

/// The instance type by name.
pub fn instance_type(name: &str) -> Option<InstanceType> {
    INSTANCE_TYPES.iter().copied().find(|t| t.name == name)
}

impl InstanceType {
    /// CPU reserved for the kubelet and system, in millicores: 6% of the first core, 1% of
    /// the second, 0.5% of the next two and 0.25% of the rest.
    pub fn reserved_cpu_millis(&self) -> i64 {
        let mut m = 0.0;
        for core in 1..=self.vcpu {
            m += match core {
                1 => 60.0,
                2 => 10.0,
                3 | 4 => 5.0,
                _ => 2.5,
            };
        }
        m as i64
    }

    /// Memory reserved: 255Mi + 11Mi per pod, plus the 100Mi hard eviction threshold.
    pub fn reserved_memory_mib(&self) -> i64 {
        255 + 11 * self.max_pods + 100
    }

    /// `status.allocatable`: (cpu millicores, memory MiB, pods).
    pub fn allocatable(&self) -> (i64, i64, i64) {
        (
            self.vcpu * 1000 - self.reserved_cpu_millis(),
            self.memory_mib - self.reserved_memory_mib(),
            self.max_pods,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocatable_subtracts_the_eks_bootstrap_reservations() {
        let t = instance_type("t3.2xlarge").expect("known type");
        // 60 + 10 + 5 + 5 + 4 × 2.5 = 90m reserved of 8 cores.
        assert_eq!(
            t.allocatable(),
            (8000 - 90, 32 * 1024 - (255 + 11 * 58 + 100), 58)
        );
        let c = instance_type("c5.4xlarge").expect("known type");
        assert_eq!(c.allocatable().0, 16_000 - 110);
    }

    #[test]
    fn unknown_instance_types_are_not_guessed() {
        assert_eq!(instance_type("x9.mega"), None);
    }
}
