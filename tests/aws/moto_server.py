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

from moto.server import DomainDispatcherApplication, ThreadedMotoServer, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import make_server

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
        self.lock = threading.Lock()

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
        return self.app(environ, start_response)


class CountingMotoServer(ThreadedMotoServer):
    def _server_entry(self):
        app = RequestCounter(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


def seed_public_parameters(path, region):
    from moto.ssm.models import Parameter, ssm_backends

    with open(path, encoding="utf-8") as f:
        params = json.load(f)
    backend = ssm_backends["123456789012"][region]
    for name, value in params.items():
        backend._parameters[name].append(
            Parameter(
                account_id="123456789012",
                name=name,
                value=value,
                parameter_type="String",
                description="seeded by ngm tests",
                allowed_pattern=None,
                keyid=None,
                last_modified_date=datetime.datetime.now(datetime.timezone.utc),
                version=1,
                data_type="text",
            )
        )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed-ssm", help="JSON object of parameter name -> value")
    ap.add_argument("--region", default="us-east-1")
    args = ap.parse_args()
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
