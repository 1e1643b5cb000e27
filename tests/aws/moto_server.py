"""Start moto's server on 127.0.0.1 for ngm's tests, optionally seeding SSM public parameters.

AWS reserves the `/aws/` parameter namespace, so `PutParameter` cannot create the EKS-optimized
AMI parameters that ngm reads; they are inserted straight into moto's SSM backend instead.

The first line printed is the URL served (`http://127.0.0.1:PORT`). The server stops when its
standard input closes, so a test that dies cannot leave it behind.

Requests from clients whose user agent carries `app/ngm-local` (ngm's functions in a local run
set `AWS_SDK_UA_APP_ID=ngm-local`) are counted by service and operation; `GET /ngm/requests`
answers the counts as JSON. The twin's own calls to moto are not counted.
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
SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")


class RequestCounter:
    """WSGI middleware: counts ngm's calls by `service:Operation` and serves the counts."""

    def __init__(self, app):
        self.app = app
        self.counts = collections.Counter()
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

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/ngm/requests":
            with self.lock:
                payload = json.dumps(dict(self.counts)).encode()
            start_response(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        agent = environ.get("HTTP_USER_AGENT", "") + environ.get("HTTP_X_AMZ_USER_AGENT", "")
        if APP_ID in agent:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            scope = SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
            service = scope.group(1) if scope else "unknown"
            with self.lock:
                self.counts[f"{service}:{self.operation(environ, body)}"] += 1
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
