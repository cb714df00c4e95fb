"""Benchmark handlers: the same code under every Python runtime measured."""


def empty(event, context):
    return {}


def apigw(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": '{"ok": true}'}


def echo(event, context):
    return event


def error(event, context):
    raise ValueError("bad thing")


def prints(event, context):
    for i in range(100):
        print("line", i)
    return {}


def batch(event, context):
    """A batch handler's usual answer (SQS, Kinesis, DynamoDB streams): no item failed."""
    return {"batchItemFailures": []}
