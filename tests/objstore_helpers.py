"""A local S3-compatible server (moto's server mode on a loopback port) for the
object-store tests, and readers of what a bucket warehouse holds."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from hs_sync.load import iceberg
from hs_sync.registry import DataType
from hs_sync.warehouse import Warehouse

BUCKET = "hs-warehouse"


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """A started moto S3 server with an empty bucket; its AWS_* variables are set
    in the environment for the module and removed after."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_REGION": "us-east-1",
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        boto3.client(
            "s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1"
        ).create_bucket(Bucket=BUCKET)
        try:
            yield env
        finally:
            server.stop()


def objects(env: dict[str, str], prefix: str) -> dict[str, bytes]:
    """Every object under `prefix` of the test bucket, by key below the prefix."""
    import boto3

    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            out[item["Key"][len(prefix) :].lstrip("/")] = body
    return out


def iceberg_rows(wh: Warehouse, dt: DataType) -> list[dict[str, Any]]:
    """The Iceberg table's current rows (pyiceberg's scan), as dicts."""
    return iceberg.read(wh, dt).to_pylist()
