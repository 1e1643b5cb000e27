"""An independent EKS token: what `aws eks get-token` builds, made with botocore's SigV4.

Usage: botocore_eks_token.py CLUSTER REGION EPOCH_SECONDS ACCESS_KEY SECRET_KEY [SESSION_TOKEN]
Prints the presigned STS URL (not the token), so the Rust test can compare its parts.
"""

import datetime
import sys
from unittest import mock

import botocore.session


def main():
    cluster, region, epoch, akid, secret = sys.argv[1:6]
    token = sys.argv[6] if len(sys.argv) > 6 else None
    session = botocore.session.get_session()
    session.set_credentials(akid, secret, token)
    sts = session.create_client(
        "sts", region_name=region, endpoint_url=f"https://sts.{region}.amazonaws.com"
    )

    def add_cluster_header(request, **_):
        request.headers["x-k8s-aws-id"] = cluster

    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_header)
    fixed = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=fixed):
        url = sts.generate_presigned_url(
            "get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET"
        )
    print(url)


if __name__ == "__main__":
    main()
