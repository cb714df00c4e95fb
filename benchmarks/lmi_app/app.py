"""The Managed Instances memory benchmark's handler (``benchmarks/managed_memory.py``): a
realistic import footprint, so that what preload shares is what a real function imports.

At import: boto3 clients for s3, dynamodb, sqs and sts (region us-east-1, the dummy
credentials the benchmark puts in the environment; nothing here ever contacts AWS) and a
FastAPI app behind mangum. Each invoke is an API Gateway HTTP API (v2) event: mangum ->
FastAPI -> a route that validates a pydantic body and answers with a presigned S3 URL
(presigning is a local computation: no network). ``GET /sleep/{ms}`` holds an invoke.

Benchmark-only dependencies (boto3, fastapi, mangum, pydantic): never imported by lambdaric.
"""
from __future__ import annotations

import os
import time
from typing import Dict, List

import boto3
from fastapi import FastAPI
from mangum import Mangum
from pydantic import BaseModel, Field

REGION = os.environ.get("AWS_REGION", "us-east-1")
BUCKET = "lambdaric-bench-bucket"

# Made at import, as real functions do (one client per service, reused by every invoke).
_session = boto3.session.Session(region_name=REGION)
s3 = _session.client("s3")
dynamodb = _session.client("dynamodb")
sqs = _session.client("sqs")
sts = _session.client("sts")


class Item(BaseModel):
    """The body the route validates."""

    name: str = Field(min_length=1, max_length=200)
    quantity: int = Field(ge=1, le=10_000)
    tags: List[str] = Field(default_factory=list, max_length=20)
    attributes: Dict[str, str] = Field(default_factory=dict)


class Upload(BaseModel):
    """The route's answer."""

    key: str
    url: str
    quantity: int


app = FastAPI(title="lmi-bench")


@app.post("/items/{item_id}", response_model=Upload)
def create_item(item_id: str, item: Item) -> Upload:
    key = "uploads/%s/%s" % (item_id, item.name)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300)
    return Upload(key=key, url=url, quantity=item.quantity)


@app.get("/health")
def health() -> Dict[str, str]:
    return {"status": "ok"}


@app.get("/sleep/{ms}")
def sleep(ms: int) -> Dict[str, int]:
    """Holds the invoke (the benchmark kills a worker busy here, to see what is posted for it)."""
    time.sleep(min(ms, 30_000) / 1000)
    return {"slept_ms": ms}


@app.get("/gc/{ms}")
def collect(ms: int) -> Dict[str, int]:
    """A full GC in the worker that takes this invoke, held ``ms`` so that N of them sent at once
    reach N different workers (the benchmark measures memory after one in each)."""
    import gc

    gc.collect()
    time.sleep(min(ms, 5_000) / 1000)
    return {"pid": os.getpid()}


handler = Mangum(app, lifespan="off")
