"""Auto Scaling traffic sources, which moto 5 lacks, added to its backend.

`AttachTrafficSources`, `DetachTrafficSources` and `DescribeTrafficSources` (Auto Scaling API
reference) are served by moto's own request handling, and an Auto Scaling group describes its
`TrafficSources`. A Classic Load Balancer (`elb`) or a target group (`elbv2`) attached this way
is attached in moto's backend as `AttachLoadBalancers` / `AttachLoadBalancerTargetGroups`
would attach it, so its instances register and deregister the same way; a `vpc-lattice`
target group is only recorded.

The legacy calls and the new ones are told apart, on the strict reading of the API reference:
`DescribeTrafficSources` and the group's `TrafficSources` list every traffic source, however it
was attached ("If you do not provide a traffic source type, then the results include all the
traffic sources"), while `DescribeLoadBalancers`, `DescribeLoadBalancerTargetGroups` and the
group's `LoadBalancerNames` / `TargetGroupARNs` list only what the legacy calls attached. A
client that reads only the legacy lists misses what `AttachTrafficSources` attached.
"""

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import FakeAutoScalingGroup
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult, EmptyResult

TYPES = ("elb", "elbv2", "vpc-lattice")


def source_type(source):
    """The source's `Type`, or the one its identifier implies (a name is a Classic Load
    Balancer's, an ARN an ELB or VPC Lattice target group's)."""
    given = source.get("Type")
    ident = source.get("Identifier") or ""
    if not ident:
        raise ValidationError("TrafficSources.member.Identifier is required")
    if given:
        if given not in TYPES:
            raise ValidationError(
                f"Traffic source type {given!r} is not one of {', '.join(TYPES)}"
            )
        return given
    if ident.startswith("arn:") and ":vpc-lattice:" in ident:
        return "vpc-lattice"
    return "elbv2" if ident.startswith("arn:") else "elb"


def attached_as_sources(group):
    """What AttachTrafficSources attached to the group: `{(type, identifier)}`."""
    if not hasattr(group, "ngm_traffic_sources"):
        group.ngm_traffic_sources = []
    return group.ngm_traffic_sources


def all_sources(group):
    """Every traffic source of the group: the legacy attachments, then the others."""
    return snapshot(group)[2]


def snapshot(group):
    """The group's legacy load balancer names and target group ARNs (without what
    AttachTrafficSources attached) and all its traffic sources, read at one moment: the twin
    attaches from other threads while a response is written."""
    lbs, tgs, mine = list(group.load_balancer_names), list(group.target_group_arns), list(
        attached_as_sources(group))
    legacy_lbs = [n for n in lbs if ("elb", n) not in mine]
    legacy_tgs = [a for a in tgs if ("elbv2", a) not in mine]
    sources = [("elb", n) for n in legacy_lbs] + [("elbv2", a) for a in legacy_tgs] + mine
    return legacy_lbs, legacy_tgs, sources


class LegacyView:
    """A group as DescribeAutoScalingGroups shows it: the legacy lists without what
    AttachTrafficSources attached, and every traffic source, all as of one moment."""

    def __init__(self, group):
        self._group = group
        self.load_balancer_names, self.target_group_arns, sources = snapshot(group)
        self.traffic_sources = [{"Identifier": i, "Type": k} for k, i in sources]

    def __getattr__(self, name):
        return getattr(self._group, name)


def _group(self):
    name = self._get_param("AutoScalingGroupName")
    groups = self.autoscaling_backend.autoscaling_groups
    if name not in groups:
        raise ValidationError(f"AutoScalingGroup name not found - {name}")
    return name, groups[name]


def _sources(self):
    sources = self._get_param("TrafficSources", [])
    if not sources:
        raise ValidationError("TrafficSources is required")
    if len(sources) > 10:
        raise ValidationError("At most 10 traffic sources can be given")
    return [(source_type(s), s["Identifier"]) for s in sources]


def move_sources(self, attach):
    """Attaches (or detaches) the request's traffic sources as the legacy calls would, and
    records them as traffic sources."""
    name, group = _group(self)
    sources = _sources(self)
    mine = attached_as_sources(group)
    backend = self.autoscaling_backend
    by_type = {
        "elb": backend.attach_load_balancers if attach else backend.detach_load_balancers,
        "elbv2": (backend.attach_load_balancer_target_groups if attach
                  else backend.detach_load_balancer_target_groups),
    }
    for kind, ident in sources:
        if kind in by_type:
            by_type[kind](name, [ident])
        if attach and (kind, ident) not in mine:
            mine.append((kind, ident))
        elif not attach and (kind, ident) in mine:
            mine.remove((kind, ident))
    return EmptyResult()


def attach_traffic_sources(self):
    return move_sources(self, attach=True)


def detach_traffic_sources(self):
    return move_sources(self, attach=False)


def describe_traffic_sources(self):
    _, group = _group(self)
    wanted = self._get_param("TrafficSourceType")
    if wanted and wanted not in TYPES:
        raise ValidationError(f"Traffic source type {wanted!r} is not one of {', '.join(TYPES)}")
    return ActionResult({
        "TrafficSources": [
            {"TrafficSource": ident, "State": "InService", "Identifier": ident, "Type": kind}
            for kind, ident in all_sources(group)
            if not wanted or kind == wanted
        ],
        "NextToken": None,
    })


def patch():
    """Adds the traffic-source calls to moto's Auto Scaling, and narrows the legacy lists."""
    AutoScalingResponse.attach_traffic_sources = attach_traffic_sources
    AutoScalingResponse.detach_traffic_sources = detach_traffic_sources
    AutoScalingResponse.describe_traffic_sources = describe_traffic_sources
    FakeAutoScalingGroup.traffic_sources = property(
        lambda g: [{"Identifier": i, "Type": k} for k, i in all_sources(g)]
    )

    legacy_groups = AutoScalingResponse.describe_auto_scaling_groups

    def describe_auto_scaling_groups(self):
        result = legacy_groups(self)
        result.result["AutoScalingGroups"] = [
            LegacyView(g) for g in result.result["AutoScalingGroups"]
        ]
        return result

    AutoScalingResponse.describe_auto_scaling_groups = describe_auto_scaling_groups

    def narrowed(legacy, key, kind, field):
        """The legacy describe call, without what AttachTrafficSources attached."""

        def describe(self):
            _, group = _group(self)
            mine = attached_as_sources(group)
            result = legacy(self)
            result.result[key] = [x for x in result.result[key] if (kind, x[field]) not in mine]
            return result

        return describe

    AutoScalingResponse.describe_load_balancers = narrowed(
        AutoScalingResponse.describe_load_balancers, "LoadBalancers", "elb", "LoadBalancerName")
    AutoScalingResponse.describe_load_balancer_target_groups = narrowed(
        AutoScalingResponse.describe_load_balancer_target_groups, "LoadBalancerTargetGroups",
        "elbv2", "LoadBalancerTargetGroupARN")
