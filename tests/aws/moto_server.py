"""Start moto's server on 127.0.0.1 for ngm's tests, optionally seeding SSM public parameters.

AWS reserves the `/aws/` parameter namespace, so `PutParameter` cannot create the EKS-optimized
AMI parameters that ngm reads; they are inserted straight into moto's SSM backend instead.

The first line printed is the URL served (`http://127.0.0.1:PORT`). The server stops when its
standard input closes, so a test that dies cannot leave it behind.

Requests from clients whose user agent carries `app/ngm-local` (ngm's functions in a local run
set `AWS_SDK_UA_APP_ID=ngm-local-<function>`) are counted by service and operation:
`GET /ngm/requests` answers `{"service:Operation": n}`, `GET /ngm/requests?by=caller` the
same per caller (`{"app/ngm-local-<function>": {"service:Operation": n}}`). The twin's own
calls to moto are neither counted nor faulted.

`POST /ngm/faults` adds fault rules (one JSON object or a list):
`{"service", "operation", "code": 429|500|503, "error"?, "times", "after", "function"?}` fails
ngm's matching calls with the service's own error for that code (see ERRORS), or
`{"service": "*", "operation": "*", "rate", "seed", "codes"}` fails each call with that
probability. `GET /ngm/injected` lists the answers given because of a rule, `GET /ngm/faults`
the rules with their counters, `DELETE /ngm/faults` removes them.

`POST /ngm/target-health` sets the load-balancer health the twin knows and moto cannot model
(moto deregisters at once and calls every target healthy); one JSON object or a list:
`{"targetGroupArn", "targets": [{"id", "port", "state", "reason"?, "description"?,
"healthCheckPort"?}]}` (state one of TARGET_STATES, reason one of TARGET_REASONS,
healthCheckPort defaults to the port) or `{"loadBalancerName", "instances": [{"id", "state",
"reasonCode"?, "description"?}]}` (state one of INSTANCE_STATES, reasonCode one of
INSTANCE_REASONS). Each object replaces the whole set stored for its target group or classic
load balancer (an empty list stands for one with no targets); a bad one fails the whole call
with 400 and stores nothing. `DescribeTargetHealth` and `DescribeInstanceHealth` of a target
group or load balancer with a stored set are answered from it, from every caller (ngm's calls
still counted and faulted first; a requested target outside the set is `unused`
`Target.NotRegistered`, a requested instance outside it `OutOfService` `Instance`); the others
go to moto.
`GET /ngm/target-health` answers the stored sets in the form POST takes, `DELETE
/ngm/target-health` removes them all.

`GET /ngm/target-calls?after=N` lists ngm's `RegisterTargets` and `DeregisterTargets` calls
that moto answered, after sequence number N: `[{"seq", "action", "targetGroupArn", "targets":
[{"id", "port"?}]}]`. The twin follows them, as a real target group would: a target ngm
deregistered drains.

`POST /ngm/ssm-parameters` publishes parameters AWS owns, which `PutParameter` refuses under
`/aws/` (the EKS-optimized AMI releases ngm's AMI watcher reads): `{"region", "parameters":
{name: value}}`. Each name gets a new version with that value, as AWS's own re-publication of a
public parameter does, and `GetParameter` answers the latest; it answers `{"versions": {name:
version}}`. A bad body fails with 400 and publishes nothing.

Auto Scaling's traffic sources (`AttachTrafficSources`...), which moto lacks, are added to it:
see traffic_sources.py. Suspended `Launch` and `Terminate` processes, which moto records and
ignores, hold its groups' launches and terminations: see scaling_processes.py.
"""

import argparse
import collections
import datetime
import io
import json
import re
import sys
import threading
import urllib.parse
import uuid
from xml.sax.saxutils import escape

from moto.server import DomainDispatcherApplication, ThreadedMotoServer, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import make_server

import scaling_processes
import traffic_sources

APP_ID = "app/ngm-local"
APP_TOKEN = re.compile(r"(app/ngm-local[^\s]*)")
SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")

# How each service answers a throttle (429), an internal failure (500) and an unavailable
# service (503): (HTTP status, error code, message), as the service's documentation and its
# SDK's retry classifiers name them. Query services (Auto Scaling, ELB, STS) throttle with
# HTTP 400 `Throttling`; EC2 with 503 `RequestLimitExceeded` (EC2 API reference, "Error codes
# for the Amazon EC2 API"); JSON services (DynamoDB, Step Functions, SSM) with 400
# `ThrottlingException` (the "Common Errors" page), DynamoDB's data plane with
# `ProvisionedThroughputExceededException` on request (`error`).
ERRORS = {
    "query": {
        429: (400, "Throttling", "Rate exceeded"),
        500: (500, "InternalFailure", "An internal error occurred."),
        503: (503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
    },
    "ec2": {
        429: (503, "RequestLimitExceeded", "Request limit exceeded."),
        500: (500, "InternalError", "An internal error has occurred."),
        503: (503, "Unavailable", "The server is overloaded and can't handle the request."),
    },
    "json": {
        429: (400, "ThrottlingException", "Rate exceeded"),
        500: (500, "InternalFailure", "An internal error occurred."),
        503: (503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
    },
}
DYNAMODB_ERRORS = {
    "ProvisionedThroughputExceededException": (
        400,
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    ),
    "ThrottlingException": (400, "Rate of requests exceeds the allowed throughput."),
    "InternalServerError": (500, "Internal server error"),
}
PROTOCOLS = {
    "autoscaling": "query",
    "elasticloadbalancing": "query",
    "sts": "query",
    "ec2": "ec2",
    "dynamodb": "json",
    "states": "json",
    "ssm": "json",
}
JSON_PREFIX = {
    "dynamodb": ("com.amazonaws.dynamodb.v20120810#", "application/x-amz-json-1.0"),
    "states": ("", "application/x-amz-json-1.0"),
    "ssm": ("", "application/x-amz-json-1.1"),
}


def seeded_draw(seed, parts, n):
    """A uniform draw in [0, 1) and a second word from a seed and a call's identity (the same
    FNV-1a and splitmix64 mix as the twin's Kubernetes fault rates)."""
    mask = (1 << 64) - 1
    h = 0xCBF29CE484222325 ^ (seed & mask)
    for p in parts:
        for b in p.encode() + b"\xff":
            h = ((h ^ b) * 0x100000001B3) & mask
    state = h ^ ((n * 0x9E3779B97F4A7C15) & mask)

    def mix():
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    a = mix()
    b = mix()
    return (a >> 11) / float(1 << 53), b


class FaultRule:
    """`{service, operation, code, error?, times, after, function?}`: fail `times` of ngm's
    calls of `service:operation` ("*" matches any) with the service's own error for `code`,
    after letting `after` of them through; or `{rate, seed, codes}`: fail each call with that
    probability, deterministically from the seed. `function` limits it to one function's
    calls (app id `ngm-local-<function>`)."""

    def __init__(self, spec):
        self.label = str(spec.get("label") or "moto rule")
        self.service = str(spec.get("service") or "*")
        self.operation = str(spec.get("operation") or "*")
        self.function = spec.get("function")
        self.error = spec.get("error")
        self.times = int(spec.get("times", 1))
        self.after = int(spec.get("after", 0))
        self.rate = spec.get("rate")
        self.seed = int(spec.get("seed", 0))
        self.codes = [int(c) for c in spec.get("codes", [500, 503, 429])]
        self.code = int(spec.get("code", 500))
        if self.rate is not None:
            self.rate = float(self.rate)
            if not 0.0 <= self.rate <= 1.0:
                raise ValueError(f"rate {self.rate} is not within 0..1")
        for code in [self.code] + self.codes:
            if code not in (429, 500, 503):
                raise ValueError(f"code {code}: the codes are 429, 500 and 503")
        if self.service != "*" and self.service not in PROTOCOLS:
            raise ValueError(f"service {self.service}: one of {sorted(PROTOCOLS)}")
        if self.error is not None and self.service != "dynamodb":
            raise ValueError("`error` names a DynamoDB error only")
        if self.error is not None and self.error not in DYNAMODB_ERRORS:
            raise ValueError(f"error {self.error}: one of {sorted(DYNAMODB_ERRORS)}")
        self.seen = 0
        self.fired = 0
        self.per_call = collections.Counter()

    def fire(self, service, operation, caller):
        """The HTTP code to fail this call with, or None."""
        if self.service not in ("*", service) or self.operation not in ("*", operation):
            return None
        if self.function is not None and caller != f"app/ngm-local-{self.function}":
            return None
        self.seen += 1
        if self.rate is not None:
            call = f"{service}:{operation}"
            self.per_call[(caller, call)] += 1
            draw, pick = seeded_draw(self.seed, [caller, call], self.per_call[(caller, call)])
            if draw < self.rate and self.codes:
                self.fired += 1
                return self.codes[pick % len(self.codes)]
            return None
        if self.seen > self.after and self.fired < self.times:
            self.fired += 1
            return self.code
        return None


def error_response(service, code, error=None):
    """(status, headers, body) of the service's own error for `code`."""
    protocol = PROTOCOLS.get(service, "query")
    status, name, message = ERRORS[protocol][code]
    if error is not None:
        status, message = DYNAMODB_ERRORS[error]
        name = error
    request_id = "ngm-injected-fault"
    if protocol == "json":
        prefix, content_type = JSON_PREFIX.get(service, ("", "application/x-amz-json-1.0"))
        body = json.dumps({"__type": prefix + name, "message": message}).encode()
        headers = [("Content-Type", content_type), ("x-amzn-RequestId", request_id)]
    elif protocol == "ec2":
        body = (
            f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>"
            f"<Code>{name}</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        ).encode()
        headers = [("Content-Type", "text/xml")]
    else:
        kind = "Sender" if status < 500 else "Receiver"
        body = (
            f"<ErrorResponse><Error><Type>{kind}</Type><Code>{name}</Code>"
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
            f"</ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    headers.append(("Content-Length", str(len(body))))
    return status, headers, body


# The values botocore's models give ELBv2's TargetHealthStateEnum and TargetHealthReasonEnum,
# and those the classic ELB API reference gives InstanceState's State and ReasonCode.
TARGET_STATES = ("initial", "healthy", "unhealthy", "unhealthy.draining", "unused", "draining",
                 "unavailable")
TARGET_REASONS = (
    "Elb.RegistrationInProgress", "Elb.InitialHealthChecking", "Target.ResponseCodeMismatch",
    "Target.Timeout", "Target.FailedHealthChecks", "Target.NotRegistered", "Target.NotInUse",
    "Target.DeregistrationInProgress", "Target.InvalidState", "Target.IpUnusable",
    "Target.HealthCheckDisabled", "Elb.InternalError",
)
INSTANCE_STATES = ("InService", "OutOfService", "Unknown")
INSTANCE_REASONS = ("ELB", "Instance", "N/A")
ELBV2_XMLNS = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
ELB_XMLNS = "http://elasticloadbalancing.amazonaws.com/doc/2012-06-01/"
HEALTH_ACTIONS = {"DescribeTargetHealth": "2015-12-01", "DescribeInstanceHealth": "2012-06-01"}


def check_keys(obj, where, required, optional):
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {json.dumps(obj)}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(set(obj) - set(required) - set(optional))
    if unknown:
        raise ValueError(
            f"{where}: unknown key {', '.join(unknown)} (keys: {', '.join(required + optional)})"
        )


def check_string(obj, key, where, allowed=None):
    value = obj.get(key)
    if value is None and key not in obj:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: {key} must be a non-empty string, got {json.dumps(value)}")
    if allowed is not None and value not in allowed:
        raise ValueError(f"{where}: {key} {value!r} is not one of {', '.join(allowed)}")
    return value


def parse_health(spec):
    """One `POST /ngm/target-health` object, checked: ("tg", arn, targets) or ("lb", name,
    instances), each entry a dict with only the keys given."""
    if isinstance(spec, dict) and "targetGroupArn" in spec:
        check_keys(spec, "target group", ["targetGroupArn", "targets"], [])
        arn = check_string(spec, "targetGroupArn", "target group")
        where = f"target group {arn}"
        if not isinstance(spec["targets"], list):
            raise ValueError(f"{where}: targets must be a list")
        targets, seen = [], set()
        for i, t in enumerate(spec["targets"]):
            at = f"{where}: targets[{i}]"
            check_keys(t, at, ["id", "port", "state"], ["reason", "description", "healthCheckPort"])
            entry = {"id": check_string(t, "id", at)}
            port = t["port"]
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise ValueError(
                    f"{at}: port must be an integer in 1..65535, got {json.dumps(port)}"
                )
            entry["port"] = port
            entry["state"] = check_string(t, "state", at, TARGET_STATES)
            for key, allowed in (("reason", TARGET_REASONS), ("description", None),
                                 ("healthCheckPort", None)):
                value = check_string(t, key, at, allowed)
                if value is not None:
                    entry[key] = value
            if (entry["id"], port) in seen:
                raise ValueError(f"{at}: {entry['id']} port {port} is listed twice")
            seen.add((entry["id"], port))
            targets.append(entry)
        return ("tg", arn, targets)
    if isinstance(spec, dict) and "loadBalancerName" in spec:
        check_keys(spec, "load balancer", ["loadBalancerName", "instances"], [])
        name = check_string(spec, "loadBalancerName", "load balancer")
        where = f"load balancer {name}"
        if not isinstance(spec["instances"], list):
            raise ValueError(f"{where}: instances must be a list")
        instances, seen = [], set()
        for i, t in enumerate(spec["instances"]):
            at = f"{where}: instances[{i}]"
            check_keys(t, at, ["id", "state"], ["reasonCode", "description"])
            entry = {"id": check_string(t, "id", at),
                     "state": check_string(t, "state", at, INSTANCE_STATES)}
            for key, allowed in (("reasonCode", INSTANCE_REASONS), ("description", None)):
                value = check_string(t, key, at, allowed)
                if value is not None:
                    entry[key] = value
            if entry["id"] in seen:
                raise ValueError(f"{at}: {entry['id']} is listed twice")
            seen.add(entry["id"])
            instances.append(entry)
        return ("lb", name, instances)
    raise ValueError(
        f"expected an object with targetGroupArn and targets or with loadBalancerName and "
        f"instances, got {json.dumps(spec)[:200]}"
    )


def members(params, prefix, field):
    """The `prefix.member.N.*` query parameters as one dict per N (in N's order), those that
    have `field`."""
    found = collections.defaultdict(dict)
    pattern = re.compile(re.escape(prefix) + r"\.member\.(\d+)\.(\w+)$")
    for key, values in params.items():
        m = pattern.match(key)
        if m and values:
            found[int(m.group(1))][m.group(2)] = values[0]
    return [found[n] for n in sorted(found) if field in found[n]]


def text(tag, value):
    return f"<{tag}>{escape(str(value))}</{tag}>"


def target_health_xml(targets, requested):
    """`DescribeTargetHealth`'s answer, shaped as moto's serializer shapes it."""
    if requested:
        chosen = []
        for want in requested:
            port = int(want["Port"]) if want.get("Port", "").isdigit() else None
            hits = [t for t in targets
                    if t["id"] == want["Id"] and (port is None or t["port"] == port)]
            chosen.extend(hits or [{
                "id": want["Id"], "port": port, "state": "unused",
                "reason": "Target.NotRegistered",
                "description": "Target is not registered to the target group",
            }])
    else:
        chosen = targets
    out = []
    for t in chosen:
        target = text("Id", t["id"]) + (text("Port", t["port"]) if t.get("port") else "")
        check = t.get("healthCheckPort") or (str(t["port"]) if t.get("port") else None)
        health = text("State", t["state"])
        if "reason" in t:
            health += text("Reason", t["reason"])
        if "description" in t:
            health += text("Description", t["description"])
        out.append(
            f"<member><Target>{target}</Target>"
            + (text("HealthCheckPort", check) if check else "")
            + f"<TargetHealth>{health}</TargetHealth></member>"
        )
    return (
        f'<DescribeTargetHealthResponse xmlns="{ELBV2_XMLNS}"><DescribeTargetHealthResult>'
        f"<TargetHealthDescriptions>{''.join(out)}</TargetHealthDescriptions>"
        f"</DescribeTargetHealthResult>"
    ), "DescribeTargetHealthResponse"


def instance_health_xml(instances, requested):
    """`DescribeInstanceHealth`'s answer, shaped as moto's serializer shapes it."""
    if requested:
        known = {i["id"]: i for i in instances}
        chosen = [known.get(want["InstanceId"]) or {
            "id": want["InstanceId"], "state": "OutOfService", "reasonCode": "Instance",
            "description": "Instance is not currently registered with the LoadBalancer.",
        } for want in requested]
    else:
        chosen = instances
    out = []
    for i in chosen:
        member = text("InstanceId", i["id"]) + text("State", i["state"])
        if "reasonCode" in i:
            member += text("ReasonCode", i["reasonCode"])
        if "description" in i:
            member += text("Description", i["description"])
        out.append(f"<member>{member}</member>")
    return (
        f'<DescribeInstanceHealthResponse xmlns="{ELB_XMLNS}"><DescribeInstanceHealthResult>'
        f"<InstanceStates>{''.join(out)}</InstanceStates></DescribeInstanceHealthResult>"
    ), "DescribeInstanceHealthResponse"


STATUS_TEXT = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
               503: "Service Unavailable"}


class RequestCounter:
    """WSGI middleware: counts ngm's calls by `service:Operation` and by caller, serves the
    counts, and fails ngm's calls as the fault rules say."""

    def __init__(self, app):
        self.app = app
        self.counts = collections.Counter()
        self.by_caller = collections.defaultdict(collections.Counter)
        self.injected = collections.Counter()
        self.rules = []
        self.target_groups = {}
        self.load_balancers = {}
        self.target_calls = []
        self.lock = threading.Lock()
        # DynamoDB applies each conditional write atomically; moto's backend, called from the
        # server's threads at once, checks a condition and writes in two moves. DynamoDB calls
        # are therefore served one at a time.
        self.dynamodb = threading.Lock()

    def operation(self, environ, body):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            return target.rsplit(".", 1)[-1]
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        action = (query.get("Action") or form.get("Action") or [None])[0]
        if action:
            return action
        return f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO', '').split('/')[1:2]}"

    def answer(self, start_response, status, payload):
        body = json.dumps(payload).encode()
        start_response(
            f"{status} {STATUS_TEXT.get(status, '')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def control(self, environ, start_response):
        """The wrapper's own endpoints under /ngm/."""
        path = environ.get("PATH_INFO")
        method = environ.get("REQUEST_METHOD")
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        with self.lock:
            if path == "/ngm/requests" and method == "GET":
                if query.get("by") == ["caller"]:
                    return self.answer(
                        start_response, 200, {c: dict(n) for c, n in self.by_caller.items()}
                    )
                return self.answer(start_response, 200, dict(self.counts))
            if path == "/ngm/injected" and method == "GET":
                return self.answer(
                    start_response,
                    200,
                    [
                        {"fault": f, "api": "aws", "call": call, "caller": caller,
                         "code": code, "count": n}
                        for (f, call, caller, code), n in sorted(self.injected.items())
                    ],
                )
            if path == "/ngm/faults" and method == "GET":
                return self.answer(
                    start_response,
                    200,
                    [{"label": r.label, "service": r.service, "operation": r.operation,
                      "seen": r.seen, "fired": r.fired} for r in self.rules],
                )
            if path == "/ngm/faults" and method == "DELETE":
                self.rules.clear()
                return self.answer(start_response, 200, {"rules": 0})
            if path == "/ngm/faults" and method == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                raw = environ["wsgi.input"].read(length) if length else b""
                try:
                    spec = json.loads(raw or b"{}")
                    specs = spec if isinstance(spec, list) else [spec]
                    rules = [FaultRule(s) for s in specs]
                except (ValueError, TypeError, AttributeError) as e:
                    return self.answer(start_response, 400, {"error": str(e)})
                self.rules.extend(rules)
                return self.answer(start_response, 200, {"rules": len(self.rules)})
            if path == "/ngm/ssm-parameters" and method == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                raw = environ["wsgi.input"].read(length) if length else b""
                try:
                    region, params = parse_parameters(json.loads(raw or b"null"))
                except ValueError as e:
                    return self.answer(start_response, 400, {"error": str(e)})
                versions = {name: publish_parameter(region, name, value)
                            for name, value in params.items()}
                return self.answer(start_response, 200, {"versions": versions})
            if path == "/ngm/target-calls" and method == "GET":
                after = int((query.get("after") or ["0"])[0] or 0)
                return self.answer(
                    start_response, 200, [c for c in self.target_calls if c["seq"] > after]
                )
            if path == "/ngm/target-health" and method == "GET":
                return self.answer(
                    start_response,
                    200,
                    [{"targetGroupArn": arn, "targets": t} for arn, t in self.target_groups.items()]
                    + [{"loadBalancerName": name, "instances": i}
                       for name, i in self.load_balancers.items()],
                )
            if path == "/ngm/target-health" and method == "DELETE":
                self.target_groups.clear()
                self.load_balancers.clear()
                return self.answer(start_response, 200, {"ok": True})
            if path == "/ngm/target-health" and method == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                raw = environ["wsgi.input"].read(length) if length else b""
                try:
                    if not raw.strip():
                        raise ValueError("expected a JSON object or list as the body")
                    spec = json.loads(raw)
                    specs = spec if isinstance(spec, list) else [spec]
                    parsed = [parse_health(s) for s in specs]
                except ValueError as e:
                    return self.answer(start_response, 400, {"error": str(e)})
                for kind, key, entries in parsed:
                    store = self.target_groups if kind == "tg" else self.load_balancers
                    store[key] = entries
                return self.answer(start_response, 200, {"ok": True})
        return self.answer(start_response, 404, {"error": f"{method} {path}"})

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/ngm/"):
            return self.control(environ, start_response)
        agent = environ.get("HTTP_USER_AGENT", "") + " " + environ.get("HTTP_X_AMZ_USER_AGENT", "")
        token = APP_TOKEN.search(agent)
        if token:
            caller = token.group(1)
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            environ["ngm.body"] = body
            scope = SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
            service = scope.group(1) if scope else "unknown"
            operation = self.operation(environ, body)
            call = f"{service}:{operation}"
            fault = None
            with self.lock:
                self.counts[call] += 1
                self.by_caller[caller][call] += 1
                for rule in self.rules:
                    code = rule.fire(service, operation, caller)
                    if code is not None:
                        fault = (rule, code)
                        break
                if fault is not None:
                    status, headers, payload = error_response(service, fault[1], fault[0].error)
                    self.injected[(fault[0].label, call, caller, status)] += 1
            if fault is not None:
                start_response(f"{status} {STATUS_TEXT.get(status, '')}", headers)
                return [payload]
        health = self.stored_health(environ)
        if health is not None:
            return health(start_response)
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with self.dynamodb:
                return list(self.app(environ, start_response))
        if token and operation in ("RegisterTargets", "DeregisterTargets"):
            return self.logged_target_call(environ, start_response, operation, body)
        return self.app(environ, start_response)

    def logged_target_call(self, environ, start_response, operation, body):
        """Forwards ngm's RegisterTargets / DeregisterTargets to moto and logs it when moto
        answers 200 (`GET /ngm/target-calls`)."""
        status = []

        def capture(code, headers, exc_info=None):
            status.append(code)
            return start_response(code, headers, exc_info)

        out = list(self.app(environ, capture))
        if status and status[0].startswith("200"):
            params = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            for key, values in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items():
                params.setdefault(key, values)
            targets = [
                {"id": t["Id"], **({"port": int(t["Port"])} if t.get("Port", "").isdigit() else {})}
                for t in members(params, "Targets", "Id")
            ]
            with self.lock:
                self.target_calls.append({
                    "seq": len(self.target_calls) + 1,
                    "action": operation,
                    "targetGroupArn": (params.get("TargetGroupArn") or [""])[0],
                    "targets": targets,
                })
        return out

    def stored_health(self, environ):
        """For a `DescribeTargetHealth` or `DescribeInstanceHealth` of a target group or load
        balancer with a stored set, a function answering it from that set; else None (and the
        request, body included, is left for moto as it came)."""
        with self.lock:
            if not self.target_groups and not self.load_balancers:
                return None
        scope = SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if not scope or scope.group(1) != "elasticloadbalancing":
            return None
        body = environ.get("ngm.body")
        if body is None:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            if length:
                environ["wsgi.input"] = io.BytesIO(body)
        params = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        for key, values in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items():
            params.setdefault(key, values)
        action = (params.get("Action") or [None])[0]
        version = (params.get("Version") or [None])[0]
        if action not in HEALTH_ACTIONS or version != HEALTH_ACTIONS[action]:
            return None
        with self.lock:
            if action == "DescribeTargetHealth":
                stored = self.target_groups.get((params.get("TargetGroupArn") or [None])[0])
                if stored is None:
                    return None
                xml, root = target_health_xml(list(stored), members(params, "Targets", "Id"))
            else:
                stored = self.load_balancers.get((params.get("LoadBalancerName") or [None])[0])
                if stored is None:
                    return None
                xml, root = instance_health_xml(
                    list(stored), members(params, "Instances", "InstanceId")
                )
        request_id = f"ngm-target-health-{uuid.uuid4()}"
        body = (
            f"{xml}<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
            f"</{root}>"
        ).encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id),
                   ("Content-Length", str(len(body)))]

        def respond(start_response):
            start_response("200 OK", headers)
            return [body]

        return respond


class CountingMotoServer(ThreadedMotoServer):
    def _server_entry(self):
        app = RequestCounter(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


def parse_parameters(spec):
    """`POST /ngm/ssm-parameters`'s body, checked: (region, {name: value})."""
    check_keys(spec, "ssm-parameters", ["region", "parameters"], [])
    region = check_string(spec, "region", "ssm-parameters")
    params = spec["parameters"]
    if not isinstance(params, dict) or not params:
        raise ValueError("ssm-parameters: parameters must be a non-empty object of name: value")
    for name, value in params.items():
        if not name.startswith("/"):
            raise ValueError(f"ssm-parameters: {name!r} is not a path (it starts with /)")
        if not isinstance(value, str) or not value:
            raise ValueError(f"ssm-parameters: {name}: the value must be a non-empty string")
    return region, params


def publish_parameter(region, name, value):
    """Adds a version of `name` holding `value` to moto's SSM backend in `region` (where
    PutParameter cannot write under `/aws/`); returns its version number."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ssm.models import Parameter, ssm_backends

    versions = ssm_backends[DEFAULT_ACCOUNT_ID][region]._parameters[name]
    version = len(versions) + 1
    versions.append(
        Parameter(
            account_id=DEFAULT_ACCOUNT_ID,
            name=name,
            value=value,
            parameter_type="String",
            description="published by ngm tests",
            allowed_pattern=None,
            keyid=None,
            last_modified_date=datetime.datetime.now(datetime.timezone.utc),
            version=version,
            data_type="text",
        )
    )
    return version


def seed_public_parameters(path, region):
    with open(path, encoding="utf-8") as f:
        params = json.load(f)
    for name, value in params.items():
        publish_parameter(region, name, value)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed-ssm", help="JSON object of parameter name -> value")
    ap.add_argument("--region", default="us-east-1")
    args = ap.parse_args()
    traffic_sources.patch()
    scaling_processes.patch()
    server = CountingMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    if args.seed_ssm:
        seed_public_parameters(args.seed_ssm, args.region)
    print(f"http://{host}:{port}", flush=True)
    done = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()
