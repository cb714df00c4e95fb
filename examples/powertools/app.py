"""Powertools for AWS Lambda, unchanged, under lambdaric: structured logs, a (disabled) tracer
and an HTTP API router, as a function deployed behind an API Gateway HTTP API would use them.

Run it locally behind lambdaric's emulator (no AWS account needed)::

    pip install 'aws-lambda-powertools[parser,tracer]'
    POWERTOOLS_SERVICE_NAME=greeter POWERTOOLS_TRACE_DISABLED=1 \\
        python -m lambdaric invoke examples/powertools/app.handler --event apigw-v2 --tail

Tracer is off here (POWERTOOLS_TRACE_DISABLED=1): there is no X-Ray daemon outside Lambda.
In Lambda, leave the variable unset and turn on active tracing for the function.
"""
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from aws_lambda_powertools.logging import correlation_paths

logger = Logger()  # service name from POWERTOOLS_SERVICE_NAME; JSON lines on stdout
tracer = Tracer()
app = APIGatewayHttpResolver()


@app.get("/hello")
@tracer.capture_method
def hello() -> dict:
    name = app.current_event.get_query_string_value(name="name", default_value="world")
    logger.info("greeting", extra={"greeted": name})
    return {"message": "hello, %s" % name}


@app.post("/orders")
@tracer.capture_method
def create_order() -> Response:
    order = app.current_event.json_body
    if not isinstance(order, dict) or not isinstance(order.get("item"), str):
        raise BadRequestError("an order needs an item")
    quantity = order.get("quantity", 1)
    logger.info("order placed", extra={"item": order["item"], "quantity": quantity})
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        body={"item": order["item"], "quantity": quantity, "orderId": app.lambda_context.aws_request_id},
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict, context) -> dict:  # type: ignore[no-untyped-def]
    return app.resolve(event, context)
