"""Deterministic benchmark events (no randomness: every run measures the same bytes)."""
import json


def apigw_v2() -> bytes:
    """An API Gateway HTTP API (v2) event of about 1.7 KB."""
    event = {
        "version": "2.0",
        "routeKey": "POST /orders/{id}",
        "rawPath": "/prod/orders/12345",
        "rawQueryString": "expand=items&expand=customer&currency=EUR",
        "cookies": ["session=3f1c9a0b7d2e4f6a8b0c1d2e3f4a5b6c", "theme=dark", "lang=en-GB"],
        "headers": {
            "accept": "application/json",
            "accept-encoding": "gzip, deflate, br",
            "authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwiaWF0IjoxNTE2MjM5MDIyfQ.abc",
            "content-length": "58",
            "content-type": "application/json",
            "host": "abcdef1234.execute-api.eu-west-1.amazonaws.com",
            "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            "x-amzn-trace-id": "Root=1-65a1b2c3-0123456789abcdef01234567",
            "x-forwarded-for": "203.0.113.17",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "queryStringParameters": {"expand": "items,customer", "currency": "EUR"},
        "pathParameters": {"id": "12345"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdef1234",
            "authorizer": {"jwt": {"claims": {"sub": "1234567890", "scope": "orders:write"}, "scopes": ["orders:write"]}},
            "domainName": "abcdef1234.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abcdef1234",
            "http": {
                "method": "POST",
                "path": "/prod/orders/12345",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.17",
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            },
            "requestId": "Rk3tXjVPoAMEbcQ=",
            "routeKey": "POST /orders/{id}",
            "stage": "prod",
            "time": "12/Mar/2024:19:03:58 +0000",
            "timeEpoch": 1710270238390,
        },
        "body": '{"items": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}]}',
        "isBase64Encoded": False,
    }
    return json.dumps(event).encode()


def dynamodb_batch(target: int = 100_000) -> bytes:
    """A DynamoDB stream batch of about ``target`` bytes."""
    records = []
    i = size = 0
    while True:
        records.append(
            {
                "eventID": "c81e728d9d4c2f636f067f89cc14862c%04d" % i,
                "eventName": "MODIFY",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "eu-west-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1710270238 + i,
                    "Keys": {"pk": {"S": "order#%06d" % i}, "sk": {"S": "v0"}},
                    "NewImage": {
                        "pk": {"S": "order#%06d" % i},
                        "sk": {"S": "v0"},
                        "status": {"S": "SHIPPED"},
                        "total": {"N": "%d.%02d" % (100 + i, i % 100)},
                        "items": {"L": [{"M": {"sku": {"S": "A-%d" % k}, "qty": {"N": str(k + 1)}}} for k in range(3)]},
                    },
                    "OldImage": {"pk": {"S": "order#%06d" % i}, "sk": {"S": "v0"}, "status": {"S": "PAID"}},
                    "SequenceNumber": "%021d" % (111 + i),
                    "SizeBytes": 412,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2024-03-12T00:00:00.000",
            }
        )
        i += 1
        # (the document's size counted record by record: dumping the whole batch each time is quadratic)
        size += len(json.dumps(records[-1])) + (2 if len(records) > 1 else 0)
        if size + len('{"Records": []}') >= target:
            return json.dumps({"Records": records}).encode()


def blob(size: int) -> bytes:
    """A JSON document of ``size`` bytes (a list of short strings)."""
    item = '"%s"' % ("x" * 62)
    count = max((size - 2) // (len(item) + 2), 1)
    data = ("[" + ", ".join([item] * count) + "]").encode()
    return data


def _order(i: int) -> dict:
    return {"orderId": "o-%08d" % i, "customer": {"id": "c-%05d" % (i % 997), "name": "Customer %d" % i,
                                                  "email": "customer%d@example.com" % i},
            "items": [{"sku": "SKU-%04d" % ((i + k) % 5000), "qty": k + 1, "price": 9.99 + k} for k in range(3)],
            "total": 59.94, "currency": "EUR", "status": "PAID", "notes": "deliver after 5 pm, ring twice"}


def sqs_batch(records: int = 10, body_size: int = 100_000) -> bytes:
    """An SQS batch of ``records`` messages whose bodies are JSON documents of about ``body_size``
    bytes (as text in the "body" string, so full of escaped quotes)."""
    out = []
    for r in range(records):
        orders, i, size = [], r * 1000, len('{"orders": []}')
        while size < body_size:
            orders.append(_order(i))
            size += len(json.dumps(orders[-1])) + (2 if len(orders) > 1 else 0)
            i += 1
        text = json.dumps({"orders": orders})
        out.append({
            "messageId": "059f36b4-87a3-44ab-83d2-661975830a%02d" % r,
            "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a/%02d..." % r,
            "body": text,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183",
                           "SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1545082649185"},
            "messageAttributes": {},
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:orders",
            "awsRegion": "eu-west-1",
        })
    return json.dumps({"Records": out}).encode()


def kinesis_batch(records: int = 100) -> bytes:
    """A Kinesis batch of ``records`` records, each an order of about 1 KB as base64 data."""
    import base64

    out = []
    for i in range(records):
        data = base64.b64encode(json.dumps(_order(i)).encode() * 2).decode()
        out.append({
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "pk-%d" % (i % 16),
                        "sequenceNumber": "49590338271490256608559692538361571095921575989136588%03d" % i,
                        "data": data, "approximateArrivalTimestamp": 1545084650.987 + i},
            "eventSource": "aws:kinesis", "eventVersion": "1.0",
            "eventID": "shardId-000000000006:49590338271490256608559692538361571095921575989136588%03d" % i,
            "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
            "awsRegion": "eu-west-1", "eventSourceARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/orders",
        })
    return json.dumps({"Records": out}).encode()
