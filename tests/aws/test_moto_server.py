"""Tests of moto_server.py's `/ngm/target-health`: the wrapper started as the Rust tests start it
(tests/testkit/src/moto.rs), driven with boto3.

    ~/.cache/ngm/venv/bin/python -m unittest tests/aws/test_moto_server.py -v
"""

import json
import os
import subprocess
import sys
import threading
import unittest
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moto_server.py")
REGION = "us-east-1"
PORT = 30080


def start_server():
    """The wrapper and its URL, read from its first line of output (as moto.rs reads it)."""
    proc = subprocess.Popen(
        [sys.executable, SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)
    if not line or not line[0].startswith("http://"):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"moto_server.py did not print its URL: {line!r}")
    return proc, line[0].strip()


def stop_server(proc):
    """Closing standard input stops it."""
    proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class MotoTargetHealth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc, cls.url = start_server()
        cls.addClassCleanup(stop_server, cls.proc)
        ec2 = cls.client("ec2")
        cls.elbv2 = cls.client("elbv2")
        cls.elb = cls.client("elb")
        # ngm's own calls: app id `ngm-local-<function>`, no retries (a fault shows at once).
        cls.ngm_elbv2 = cls.client(
            "elbv2",
            config=Config(user_agent_appid="ngm-local-test", retries={"total_max_attempts": 1}),
        )
        cls.ngm_elb = cls.client(
            "elb",
            config=Config(user_agent_appid="ngm-local-test", retries={"total_max_attempts": 1}),
        )
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        running = ec2.run_instances(ImageId="ami-12c6146b", MinCount=4, MaxCount=4)
        cls.ids = [i["InstanceId"] for i in running["Instances"]]

        def group(name):
            return cls.elbv2.create_target_group(
                Name=name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance"
            )["TargetGroups"][0]["TargetGroupArn"]

        cls.tg = group("tg-twin")
        cls.other_tg = group("tg-moto")
        for arn in (cls.tg, cls.other_tg):
            cls.elbv2.register_targets(
                TargetGroupArn=arn, Targets=[{"Id": i, "Port": PORT} for i in cls.ids[:2]]
            )
        for name in ("clb-twin", "clb-moto"):
            cls.elb.create_load_balancer(
                LoadBalancerName=name,
                Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": PORT}],
                AvailabilityZones=["us-east-1a"],
            )
            cls.elb.register_instances_with_load_balancer(
                LoadBalancerName=name, Instances=[{"InstanceId": i} for i in cls.ids[:2]]
            )

    @classmethod
    def client(cls, service, config=None):
        return boto3.client(
            service,
            endpoint_url=cls.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )

    def setUp(self):
        self.assertEqual(self.control("DELETE", "/ngm/target-health"), (200, {"ok": True}))
        self.control("DELETE", "/ngm/faults")

    def control(self, method, path, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def push(self, payload):
        self.assertEqual(self.control("POST", "/ngm/target-health", payload), (200, {"ok": True}))

    def post_raw(self, body):
        req = urllib.request.Request(self.url + "/ngm/target-health", data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def target_health(self, client=None, **kw):
        out = (client or self.elbv2).describe_target_health(**kw)
        return out["TargetHealthDescriptions"]

    def instance_health(self, client=None, **kw):
        out = (client or self.elb).describe_instance_health(**kw)
        return out["InstanceStates"]

    def test_target_group_answers_the_pushed_states(self):
        a, b, c = self.ids[:3]
        self.push({
            "targetGroupArn": self.tg,
            "targets": [
                {"id": a, "port": PORT, "state": "healthy"},
                {"id": b, "port": PORT, "state": "initial", "reason": "Elb.InitialHealthChecking",
                 "description": "Initial health checks in progress"},
                {"id": c, "port": PORT, "state": "draining",
                 "reason": "Target.DeregistrationInProgress",
                 "description": "Target deregistration is in progress & <quoted>"},
            ],
        })
        self.assertEqual(self.target_health(TargetGroupArn=self.tg), [
            {"Target": {"Id": a, "Port": PORT}, "HealthCheckPort": str(PORT),
             "TargetHealth": {"State": "healthy"}},
            {"Target": {"Id": b, "Port": PORT}, "HealthCheckPort": str(PORT),
             "TargetHealth": {"State": "initial", "Reason": "Elb.InitialHealthChecking",
                              "Description": "Initial health checks in progress"}},
            {"Target": {"Id": c, "Port": PORT}, "HealthCheckPort": str(PORT),
             "TargetHealth": {"State": "draining", "Reason": "Target.DeregistrationInProgress",
                              "Description": "Target deregistration is in progress & <quoted>"}},
        ])

    def test_target_filter_answers_the_requested_targets_and_unused_for_the_others(self):
        a, b, _, d = self.ids
        self.push({"targetGroupArn": self.tg, "targets": [
            {"id": a, "port": PORT, "state": "unhealthy", "reason": "Target.FailedHealthChecks"},
            {"id": b, "port": PORT, "state": "healthy", "healthCheckPort": "8080"},
        ]})
        got = self.target_health(
            TargetGroupArn=self.tg, Targets=[{"Id": b, "Port": PORT}, {"Id": d, "Port": PORT}, {"Id": a}]
        )
        self.assertEqual(got, [
            {"Target": {"Id": b, "Port": PORT}, "HealthCheckPort": "8080",
             "TargetHealth": {"State": "healthy"}},
            {"Target": {"Id": d, "Port": PORT}, "HealthCheckPort": str(PORT),
             "TargetHealth": {"State": "unused", "Reason": "Target.NotRegistered",
                              "Description": "Target is not registered to the target group"}},
            {"Target": {"Id": a, "Port": PORT}, "HealthCheckPort": str(PORT),
             "TargetHealth": {"State": "unhealthy", "Reason": "Target.FailedHealthChecks"}},
        ])
        other_port = self.target_health(TargetGroupArn=self.tg, Targets=[{"Id": a, "Port": 1}])
        self.assertEqual(other_port[0]["TargetHealth"]["State"], "unused")

    def test_classic_load_balancer_answers_the_pushed_states_and_filters(self):
        a, b, c, _ = self.ids
        self.push([{"loadBalancerName": "clb-twin", "instances": [
            {"id": a, "state": "InService", "reasonCode": "N/A", "description": "N/A"},
            {"id": b, "state": "OutOfService", "reasonCode": "ELB",
             "description": "Instance deregistration currently in progress."},
            {"id": c, "state": "OutOfService"},
        ]}])
        self.assertEqual(self.instance_health(LoadBalancerName="clb-twin"), [
            {"InstanceId": a, "State": "InService", "ReasonCode": "N/A", "Description": "N/A"},
            {"InstanceId": b, "State": "OutOfService", "ReasonCode": "ELB",
             "Description": "Instance deregistration currently in progress."},
            {"InstanceId": c, "State": "OutOfService"},
        ])
        got = self.instance_health(
            LoadBalancerName="clb-twin", Instances=[{"InstanceId": b}, {"InstanceId": "i-0nothere"}]
        )
        self.assertEqual(got, [
            {"InstanceId": b, "State": "OutOfService", "ReasonCode": "ELB",
             "Description": "Instance deregistration currently in progress."},
            {"InstanceId": "i-0nothere", "State": "OutOfService", "ReasonCode": "Instance",
             "Description": "Instance is not currently registered with the LoadBalancer."},
        ])

    def test_without_a_stored_set_moto_answers(self):
        # Sets stored for other target groups and load balancers: these still reach moto, body
        # and all (moto must read TargetGroupArn from the form the wrapper read first).
        self.push([
            {"targetGroupArn": self.tg, "targets": []},
            {"loadBalancerName": "clb-twin", "instances": []},
        ])
        for client in (self.elbv2, self.ngm_elbv2):
            got = self.target_health(client, TargetGroupArn=self.other_tg)
            self.assertEqual(sorted(d["Target"]["Id"] for d in got), sorted(self.ids[:2]))
            self.assertEqual({d["TargetHealth"]["State"] for d in got}, {"healthy"})
            self.assertEqual({d["HealthCheckPort"] for d in got}, {"traffic-port"})
        for client in (self.elb, self.ngm_elb):
            got = self.instance_health(client, LoadBalancerName="clb-moto")
            self.assertEqual(sorted(s["InstanceId"] for s in got), sorted(self.ids[:2]))
            self.assertEqual({s["State"] for s in got}, {"InService"})
        # The stored empty sets answer empty lists.
        self.assertEqual(self.target_health(TargetGroupArn=self.tg), [])
        self.assertEqual(self.instance_health(LoadBalancerName="clb-twin"), [])
        # Removing them all hands the calls back to moto.
        self.assertEqual(self.control("DELETE", "/ngm/target-health"), (200, {"ok": True}))
        self.assertEqual(self.control("GET", "/ngm/target-health"), (200, []))
        self.assertEqual(len(self.target_health(TargetGroupArn=self.tg)), 2)
        self.assertEqual(len(self.instance_health(LoadBalancerName="clb-twin")), 2)
        # A group moto does not know is moto's error still.
        with self.assertRaises(ClientError) as err:
            self.target_health(TargetGroupArn=self.tg.replace("tg-twin", "tg-none"))
        self.assertEqual(err.exception.response["Error"]["Code"], "TargetGroupNotFound")

    def test_each_push_replaces_the_set_and_get_answers_what_is_stored(self):
        a, b = self.ids[:2]
        first = {"targetGroupArn": self.tg, "targets": [
            {"id": a, "port": PORT, "state": "healthy"},
            {"id": b, "port": PORT, "state": "healthy"},
        ]}
        second = {"targetGroupArn": self.tg, "targets": [
            {"id": b, "port": PORT, "state": "draining",
             "reason": "Target.DeregistrationInProgress"},
        ]}
        classic = {"loadBalancerName": "clb-twin", "instances": [{"id": a, "state": "InService"}]}
        self.push(first)
        self.push([second, classic])
        got = self.target_health(TargetGroupArn=self.tg)
        self.assertEqual([(d["Target"]["Id"], d["TargetHealth"]["State"]) for d in got],
                         [(b, "draining")])
        self.assertEqual(self.control("GET", "/ngm/target-health"), (200, [second, classic]))

    def test_bad_input_is_refused_with_400_and_nothing_is_stored(self):
        a = self.ids[0]
        ok = {"targetGroupArn": self.tg, "targets": [{"id": a, "port": PORT, "state": "healthy"}]}
        cases = [
            ({"targetGroupArn": self.tg, "targets": [{"id": a, "port": PORT, "state": "fine"}]},
             "state 'fine' is not one of"),
            ({"targetGroupArn": self.tg, "targets": [{"id": a, "state": "healthy"}]},
             "missing port"),
            ({"targetGroupArn": self.tg, "targets": [{"id": a, "port": "80", "state": "healthy"}]},
             "port must be an integer"),
            ({"targetGroupArn": self.tg,
              "targets": [{"id": a, "port": PORT, "state": "initial", "reason": "Slow"}]},
             "reason 'Slow' is not one of"),
            ({"targetGroupArn": self.tg}, "missing targets"),
            ({"targetGroupArn": self.tg, "targets": [{"id": a, "port": PORT, "state": "healthy",
                                                      "Reason": "Target.Timeout"}]},
             "unknown key Reason"),
            ({"loadBalancerName": "clb-twin", "instances": [{"id": a, "state": "healthy"}]},
             "state 'healthy' is not one of InService"),
            ({"loadBalancerName": "clb-twin",
              "instances": [{"id": a, "state": "OutOfService", "reasonCode": "Other"}]},
             "reasonCode 'Other' is not one of"),
            ({"loadBalancerName": "clb-twin", "instances": [{"state": "InService"}]},
             "missing id"),
            ({"targets": []}, "expected an object with targetGroupArn"),
            ([ok, {"loadBalancerName": "clb-twin", "instances": "none"}],
             "instances must be a list"),
        ]
        for payload, message in cases:
            with self.subTest(payload=payload):
                status, answer = self.control("POST", "/ngm/target-health", payload)
                self.assertEqual(status, 400)
                self.assertIn(message, answer["error"])
        for raw in (b"", b"{not json"):
            with self.subTest(raw=raw):
                status, answer = self.post_raw(raw)
                self.assertEqual(status, 400)
                self.assertIn("error", answer)
        self.assertEqual(self.control("GET", "/ngm/target-health"), (200, []))

    def test_ngm_target_registrations_are_logged_for_the_twin(self):
        vpc = self.client("ec2").describe_vpcs()["Vpcs"][0]["VpcId"]
        ip_tg = self.elbv2.create_target_group(
            Name="tg-ip", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
        _, before = self.control("GET", "/ngm/target-calls?after=0")
        after = max([c["seq"] for c in before], default=0)
        # The twin's own registration is not logged; ngm's are, in order, with their ports.
        self.elbv2.register_targets(TargetGroupArn=ip_tg, Targets=[{"Id": "100.64.0.9", "Port": 8080}])
        self.ngm_elbv2.deregister_targets(
            TargetGroupArn=ip_tg, Targets=[{"Id": "100.64.0.9", "Port": 8080}]
        )
        self.ngm_elbv2.register_targets(TargetGroupArn=ip_tg, Targets=[{"Id": "100.64.0.9", "Port": 8080}])
        # A call moto refuses changed nothing and is not logged.
        with self.assertRaises(ClientError):
            self.ngm_elbv2.deregister_targets(TargetGroupArn=ip_tg, Targets=[{"Id": "100.64.0.8"}])
        status, calls = self.control("GET", f"/ngm/target-calls?after={after}")
        self.assertEqual(status, 200)
        self.assertEqual(
            [(c["action"], c["targetGroupArn"], c["targets"]) for c in calls],
            [
                ("DeregisterTargets", ip_tg, [{"id": "100.64.0.9", "port": 8080}]),
                ("RegisterTargets", ip_tg, [{"id": "100.64.0.9", "port": 8080}]),
            ],
        )
        self.assertEqual(self.control("GET", f"/ngm/target-calls?after={calls[-1]['seq']}"), (200, []))

    def test_ngm_calls_are_counted_and_faulted_before_the_stored_answer(self):
        a = self.ids[0]
        call = "elasticloadbalancing:DescribeTargetHealth"
        classic_call = "elasticloadbalancing:DescribeInstanceHealth"
        self.push([
            {"targetGroupArn": self.tg, "targets": [{"id": a, "port": PORT, "state": "initial"}]},
            {"loadBalancerName": "clb-twin", "instances": [{"id": a, "state": "OutOfService"}]},
        ])
        _, before = self.control("GET", "/ngm/requests")
        _, by_caller = self.control("GET", "/ngm/requests?by=caller")
        mine = by_caller.get("app/ngm-local-test", {})
        # The twin's own calls (no app id) and the control calls are not counted.
        self.target_health(TargetGroupArn=self.tg)
        self.control("GET", "/ngm/target-health")
        self.assertEqual(self.control("GET", "/ngm/requests")[1], before)

        got = self.target_health(self.ngm_elbv2, TargetGroupArn=self.tg)
        self.assertEqual(got[0]["TargetHealth"]["State"], "initial")
        self.assertEqual(self.instance_health(self.ngm_elb, LoadBalancerName="clb-twin"),
                         [{"InstanceId": a, "State": "OutOfService"}])
        _, after = self.control("GET", "/ngm/requests")
        self.assertEqual(after.get(call, 0), before.get(call, 0) + 1)
        self.assertEqual(after.get(classic_call, 0), before.get(classic_call, 0) + 1)
        _, by_caller = self.control("GET", "/ngm/requests?by=caller")
        self.assertEqual(by_caller["app/ngm-local-test"].get(call, 0), mine.get(call, 0) + 1)

        status, _ = self.control("POST", "/ngm/faults", {
            "label": "throttle target health", "service": "elasticloadbalancing",
            "operation": "DescribeTargetHealth", "code": 429, "times": 1,
        })
        self.assertEqual(status, 200)
        with self.assertRaises(ClientError) as err:
            self.target_health(self.ngm_elbv2, TargetGroupArn=self.tg)
        self.assertEqual(err.exception.response["Error"]["Code"], "Throttling")
        # The twin is not faulted; ngm's next call gets the stored answer again.
        self.assertEqual(self.target_health(TargetGroupArn=self.tg)[0]["TargetHealth"]["State"],
                         "initial")
        got = self.target_health(self.ngm_elbv2, TargetGroupArn=self.tg)
        self.assertEqual(got[0]["TargetHealth"]["State"], "initial")
        _, after_fault = self.control("GET", "/ngm/requests")
        self.assertEqual(after_fault[call], after[call] + 2)
        _, injected = self.control("GET", "/ngm/injected")
        self.assertIn(
            {"fault": "throttle target health", "api": "aws", "call": call,
             "caller": "app/ngm-local-test", "code": 400, "count": 1},
            injected,
        )


if __name__ == "__main__":
    unittest.main()


class MotoTrafficSources(unittest.TestCase):
    """traffic_sources.py: AttachTrafficSources and its kin, which moto lacks, on moto's backend
    (Auto Scaling API reference, `AttachTrafficSources`, `DescribeTrafficSources`)."""

    @classmethod
    def setUpClass(cls):
        cls.proc, cls.url = start_server()
        cls.addClassCleanup(stop_server, cls.proc)
        ec2 = MotoTargetHealth.client.__func__(cls, "ec2")
        cls.asg = MotoTargetHealth.client.__func__(cls, "autoscaling")
        elbv2 = MotoTargetHealth.client.__func__(cls, "elbv2")
        cls.elb = MotoTargetHealth.client.__func__(cls, "elb")
        vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.0.0/24",
                                   AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        ec2.create_launch_template(
            LaunchTemplateName="nodes",
            LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
        )
        cls.asg.create_auto_scaling_group(
            AutoScalingGroupName="blue", LaunchTemplate={"LaunchTemplateName": "nodes"},
            MinSize=2, MaxSize=2, DesiredCapacity=2, VPCZoneIdentifier=subnet,
        )
        cls.tg = elbv2.create_target_group(
            Name="tg-sources", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance"
        )["TargetGroups"][0]["TargetGroupArn"]
        cls.elbv2 = elbv2
        for name in ("clb-legacy", "clb-source"):
            cls.elb.create_load_balancer(
                LoadBalancerName=name,
                Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": PORT}],
                AvailabilityZones=["us-east-1a"],
            )

    def group(self):
        return self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["blue"])[
            "AutoScalingGroups"][0]

    def sources(self, **kw):
        out = self.asg.describe_traffic_sources(AutoScalingGroupName="blue", **kw)
        return sorted((s["Type"], s["Identifier"]) for s in out["TrafficSources"])

    def test_attached_sources_register_the_group_and_only_the_new_calls_list_them(self):
        self.asg.attach_load_balancers(AutoScalingGroupName="blue",
                                       LoadBalancerNames=["clb-legacy"])
        self.asg.attach_traffic_sources(
            AutoScalingGroupName="blue",
            TrafficSources=[{"Identifier": "clb-source", "Type": "elb"},
                            {"Identifier": self.tg, "Type": "elbv2"}],
        )
        # Every source, however attached.
        everything = [("elb", "clb-legacy"), ("elb", "clb-source"), ("elbv2", self.tg)]
        self.assertEqual(self.sources(), everything)
        self.assertEqual(self.sources(TrafficSourceType="elbv2"), [("elbv2", self.tg)])
        g = self.group()
        self.assertEqual(sorted((s["Type"], s["Identifier"]) for s in g["TrafficSources"]),
                         everything)
        # The legacy lists: only what the legacy calls attached.
        self.assertEqual(g["LoadBalancerNames"], ["clb-legacy"])
        self.assertEqual(g.get("TargetGroupARNs", []), [])
        self.assertEqual(
            [lb["LoadBalancerName"] for lb in
             self.asg.describe_load_balancers(AutoScalingGroupName="blue")["LoadBalancers"]],
            ["clb-legacy"],
        )
        self.assertEqual(
            self.asg.describe_load_balancer_target_groups(
                AutoScalingGroupName="blue")["LoadBalancerTargetGroups"],
            [],
        )
        # The group's instances are registered as attaching any way registers them.
        ids = sorted(i["InstanceId"] for i in g["Instances"])
        registered = sorted(
            t["Target"]["Id"]
            for t in self.elbv2.describe_target_health(TargetGroupArn=self.tg)[
                "TargetHealthDescriptions"]
        )
        self.assertEqual(registered, ids)
        clb = self.elb.describe_load_balancers(LoadBalancerNames=["clb-source"])[
            "LoadBalancerDescriptions"][0]
        self.assertEqual(sorted(i["InstanceId"] for i in clb["Instances"]), ids)

        # Detaching deregisters them, and the source is gone from every list.
        self.asg.detach_traffic_sources(
            AutoScalingGroupName="blue",
            TrafficSources=[{"Identifier": self.tg, "Type": "elbv2"},
                            {"Identifier": "clb-source", "Type": "elb"}],
        )
        self.assertEqual(self.sources(), [("elb", "clb-legacy")])
        self.assertEqual(
            self.elbv2.describe_target_health(TargetGroupArn=self.tg)["TargetHealthDescriptions"],
            [],
        )
        self.asg.detach_load_balancers(AutoScalingGroupName="blue",
                                       LoadBalancerNames=["clb-legacy"])
        self.assertEqual(self.sources(), [])

    def test_bad_sources_are_refused(self):
        for sources, says in [
            ([{"Identifier": "clb-source", "Type": "alb"}], "is not one of"),
            ([], "TrafficSources is required"),
        ]:
            with self.assertRaises(ClientError) as e:
                self.asg.attach_traffic_sources(AutoScalingGroupName="blue",
                                                TrafficSources=sources)
            self.assertIn(says, str(e.exception))
        with self.assertRaises(ClientError) as e:
            self.asg.attach_traffic_sources(
                AutoScalingGroupName="green",
                TrafficSources=[{"Identifier": "clb-source", "Type": "elb"}])
        self.assertIn("not found", str(e.exception))


class MotoScalingProcesses(unittest.TestCase):
    """scaling_processes.py: a group with `Launch` or `Terminate` suspended records a new desired
    capacity but neither launches nor terminates until the process is resumed (EC2 Auto Scaling
    user guide, `as-suspend-resume-processes.md`)."""

    @classmethod
    def setUpClass(cls):
        cls.proc, cls.url = start_server()
        cls.addClassCleanup(stop_server, cls.proc)
        cls.asg = MotoTargetHealth.client.__func__(cls, "autoscaling")
        cls.asg.create_launch_configuration(
            LaunchConfigurationName="procs", ImageId="ami-12c6146b", InstanceType="t3.micro"
        )

    def make(self, name):
        self.asg.create_auto_scaling_group(
            AutoScalingGroupName=name, LaunchConfigurationName="procs",
            MinSize=0, MaxSize=6, DesiredCapacity=1, AvailabilityZones=["us-east-1a"],
        )

    def group(self, name):
        g = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
            "AutoScalingGroups"][0]
        return g["DesiredCapacity"], len(g["Instances"])

    def test_a_suspended_launch_holds_a_raise_until_it_is_resumed(self):
        self.make("held-launch")
        self.asg.suspend_processes(AutoScalingGroupName="held-launch", ScalingProcesses=["Launch"])
        self.asg.set_desired_capacity(AutoScalingGroupName="held-launch", DesiredCapacity=3)
        self.assertEqual(self.group("held-launch"), (3, 1))
        self.asg.resume_processes(AutoScalingGroupName="held-launch", ScalingProcesses=["Launch"])
        self.assertEqual(self.group("held-launch"), (3, 3))

    def test_a_suspended_terminate_holds_a_scale_in(self):
        self.make("held-terminate")
        self.asg.set_desired_capacity(AutoScalingGroupName="held-terminate", DesiredCapacity=2)
        self.asg.suspend_processes(
            AutoScalingGroupName="held-terminate", ScalingProcesses=["Terminate"]
        )
        self.asg.set_desired_capacity(AutoScalingGroupName="held-terminate", DesiredCapacity=0)
        self.assertEqual(self.group("held-terminate"), (0, 2))

    def test_other_suspended_processes_leave_scaling_alone(self):
        self.make("held-other")
        self.asg.suspend_processes(
            AutoScalingGroupName="held-other", ScalingProcesses=["AZRebalance", "AlarmNotification"]
        )
        self.asg.set_desired_capacity(AutoScalingGroupName="held-other", DesiredCapacity=2)
        self.assertEqual(self.group("held-other"), (2, 2))


class MotoPublicParameters(unittest.TestCase):
    """`POST /ngm/ssm-parameters`: AWS's own parameters under `/aws/`, which PutParameter
    refuses, published as AWS re-publishes them (a new version each time), read back with
    GetParameter as ngm's AMI watcher reads them."""

    NAME = "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64/standard/recommended/release_version"

    @classmethod
    def setUpClass(cls):
        cls.proc, cls.url = start_server()
        cls.addClassCleanup(stop_server, cls.proc)
        cls.ssm = MotoTargetHealth.client.__func__(cls, "ssm")

    def publish(self, payload):
        return MotoTargetHealth.control(self, "POST", "/ngm/ssm-parameters", payload)

    def read(self, name):
        p = self.ssm.get_parameter(Name=name)["Parameter"]
        return p["Value"], p["Version"]

    def test_each_publication_is_a_new_version_and_get_answers_the_latest(self):
        with self.assertRaises(ClientError) as e:
            self.ssm.put_parameter(Name=self.NAME, Value="x", Type="String")
        self.assertIn("aws", str(e.exception).lower())
        first = {"region": REGION, "parameters": {self.NAME: "1.33.5-20251105"}}
        self.assertEqual(self.publish(first), (200, {"versions": {self.NAME: 1}}))
        self.assertEqual(self.read(self.NAME), ("1.33.5-20251105", 1))
        second = {"region": REGION, "parameters": {self.NAME: "1.33.5-20251201"}}
        self.assertEqual(self.publish(second), (200, {"versions": {self.NAME: 2}}))
        self.assertEqual(self.read(self.NAME), ("1.33.5-20251201", 2))

    def test_any_name_and_region_can_be_published(self):
        name = "/aws/service/bottlerocket/aws-k8s-1.33/arm64/latest/image_version"
        ok = self.publish({"region": REGION, "parameters": {name: "1.50.0-a1b2c3d4"}})
        self.assertEqual(ok, (200, {"versions": {name: 1}}))
        self.assertEqual(self.read(name), ("1.50.0-a1b2c3d4", 1))
        other = "/aws/service/eks/elsewhere"
        self.assertEqual(
            self.publish({"region": "eu-west-1", "parameters": {other: "v"}})[0], 200)
        with self.assertRaises(ClientError):
            self.ssm.get_parameter(Name=other)

    def test_a_bad_body_is_refused_and_publishes_nothing(self):
        name = "/aws/service/eks/refused"
        for bad in (
            {"parameters": {name: "v"}},
            {"region": REGION, "parameters": {}},
            {"region": REGION, "parameters": {name: 3}},
            {"region": REGION, "parameters": {"no-slash": "v"}},
            {"region": REGION, "parameters": {name: "v"}, "extra": 1},
            [],
        ):
            status, body = self.publish(bad)
            self.assertEqual(status, 400, bad)
            self.assertIn("ssm-parameters", body["error"])
        with self.assertRaises(ClientError):
            self.ssm.get_parameter(Name=name)
