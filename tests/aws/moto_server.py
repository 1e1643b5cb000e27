"""Start moto's server on 127.0.0.1 for ngm's tests, optionally seeding SSM public parameters.

AWS reserves the `/aws/` parameter namespace, so `PutParameter` cannot create the EKS-optimized
AMI parameters that ngm reads; they are inserted straight into moto's SSM backend instead.

The first line printed is the URL served (`http://127.0.0.1:PORT`). The server stops when its
standard input closes, so a test that dies cannot leave it behind.
"""

import argparse
import datetime
import json
import sys
import threading

from moto.server import ThreadedMotoServer


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
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
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
