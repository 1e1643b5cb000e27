"""Suspended scaling processes honoured by moto's Auto Scaling groups, which record them but
launch and terminate regardless.

EC2 Auto Scaling user guide, `as-suspend-resume-processes.md`: with `Launch` suspended the
group does not launch instances (a scale-out "cannot start"), with `Terminate` suspended it does
not terminate instances to scale in; a changed desired capacity is still recorded, and the group
moves to it once the process is resumed. The guide does not say whether `SetDesiredCapacity`
itself is refused while suspended (not confirmed, docs/research/cluster-awareness.md §1.4): it
is accepted here, as the Cluster Autoscaler's raise of a suspended group's desired capacity is
reported to sit idle (kubernetes/autoscaler#5591: "those instances won't come up until processes
are resumed"). `TerminateInstanceInAutoScalingGroup` names an instance and is left as moto has it.
"""

from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup


def suspended(group):
    return {p["ProcessName"] for p in group.suspended_processes}


def patch():
    """Makes a group with `Launch` (or `Terminate`) suspended keep its instances when its desired
    capacity rises (or falls), and converge when the process is resumed."""
    set_desired = FakeAutoScalingGroup.set_desired_capacity

    def set_desired_capacity(self, new_capacity):
        target = self.min_size if new_capacity is None else new_capacity
        current = len(self.active_instances())
        held = suspended(self)
        if (target > current and "Launch" in held) or (target < current and "Terminate" in held):
            self.desired_capacity = target
            return
        set_desired(self, new_capacity)

    FakeAutoScalingGroup.set_desired_capacity = set_desired_capacity

    resume = AutoScalingBackend.resume_processes

    def resume_processes(self, group_name, scaling_processes):
        resume(self, group_name, scaling_processes)
        group = self.autoscaling_groups[group_name]
        group.set_desired_capacity(group.desired_capacity)

    AutoScalingBackend.resume_processes = resume_processes
