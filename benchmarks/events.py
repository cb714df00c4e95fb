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
    i = 0
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
        data = json.dumps({"Records": records}).encode()
        if len(data) >= target:
            return data


def blob(size: int) -> bytes:
    """A JSON document of ``size`` bytes (a list of short strings)."""
    item = '"%s"' % ("x" * 62)
    count = max((size - 2) // (len(item) + 2), 1)
    data = ("[" + ", ".join([item] * count) + "]").encode()
    return data
