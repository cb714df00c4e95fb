"""Sample events of the services that invoke Lambda functions, shipped as JSON files.

Each ``<name>.json`` beside this module is a realistic event of one trigger, in the shape
the service sends it (and Powertools' parser models accept), with one consistent set of
fake identifiers: account 123456789012, region us-east-1, client IP 203.0.113.10 (a
documentation address), time 2024-03-14T12:34:56Z. ``lambdaric invoke --event NAME``,
``python -m lambdaric event NAME`` and the tests use them, so a handler can be tried with
what it will really receive rather than ``{}``.

Nothing here is imported by the runtime: only the CLI and tests load this package.
"""
from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Dict, List

#: name -> one line about the event, in the order ``event list`` prints them.
DESCRIPTIONS = {
    "apigw-v1": "API Gateway REST API, Lambda proxy integration (payload 1.0): GET /items/42",
    "apigw-v2": "API Gateway HTTP API (payload 2.0): GET /hello?name=lambdaric",
    "function-url": "Lambda function URL (payload 2.0, auth NONE): POST /orders with a JSON body",
    "alb": "Application Load Balancer target group: GET /status",
    "sqs": "SQS: a batch of two messages from the orders queue",
    "sns": "SNS: one notification from the alerts topic",
    "s3": "S3 ObjectCreated:Put of videos/clip.mp4 in bucket media",
    "dynamodb-stream": "DynamoDB stream: an INSERT and a MODIFY on the Orders table",
    "eventbridge": "EventBridge: a custom 'Order Placed' event on the orders bus",
    "kinesis": "Kinesis Data Streams: two clickstream records (base64 JSON data)",
    "scheduled": "EventBridge (CloudWatch Events) scheduled rule: 'Scheduled Event'",
}  # type: Dict[str, str]

_HERE = os.path.dirname(os.path.abspath(__file__))


class UnknownEvent(LookupError):
    """A sample event name that is not one of :func:`names`."""

    def __init__(self, name: str) -> None:
        super().__init__("no sample event named %r; the sample events are: %s" % (name, ", ".join(names())))
        self.name = name


def names() -> "List[str]":
    """The sample events' names, in a stable order (HTTP front doors first, then queues and streams)."""
    return list(DESCRIPTIONS)


def text(name: str) -> str:
    """The event's JSON text exactly as shipped (indented, ending with a newline).

    Only names from :func:`names` are read: a name is never used as a path.
    """
    if name not in DESCRIPTIONS:
        raise UnknownEvent(name)
    with open(os.path.join(_HERE, name + ".json"), encoding="utf-8") as f:
        return f.read()


def load(name: str) -> "Dict[str, Any]":
    """The event as a new dict on every call, so a caller may change it (a path, a key)
    without touching what the next caller gets."""
    return json.loads(text(name))
