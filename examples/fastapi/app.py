"""A FastAPI application as a Lambda function, behind mangum (the ASGI adapter): the same app
serves API Gateway HTTP APIs and function URLs (payload format 2.0), REST APIs (1.0) and ALBs,
and runs under uvicorn on a laptop unchanged (``uvicorn app:app``).

Routes: ``GET /hello?name=`` (a query parameter and a cookie), ``GET /items/{item_id}`` (a typed
path parameter; 404 for an unknown item), ``POST /orders`` (a JSON body validated by a pydantic
model; 201, or 422 with FastAPI's error list), anything else FastAPI's 404.
"""
from typing import Optional

from fastapi import Cookie, FastAPI, HTTPException, Request, Response
from mangum import Mangum
from pydantic import BaseModel, Field

app = FastAPI(title="lambdaric example")

ITEMS = {42: {"item_id": 42, "name": "thumbnail-pack", "price": 4.5}}


class Order(BaseModel):
    item: str = Field(min_length=1)
    quantity: int = Field(gt=0, le=100)


@app.get("/hello")
def hello(response: Response, name: str = "world", theme: Optional[str] = Cookie(default=None)):
    response.set_cookie("greeted", name)
    return {"message": "hello, %s" % name, "theme": theme}


@app.get("/items/{item_id}")
def item(item_id: int):
    if item_id not in ITEMS:
        raise HTTPException(status_code=404, detail="item %d not found" % item_id)
    return ITEMS[item_id]


@app.post("/orders", status_code=201)
def place_order(order: Order, request: Request, response: Response):
    # mangum hands the Lambda event and context to the app in the ASGI scope
    request_id = request.scope["aws.context"].aws_request_id
    response.headers["Location"] = "/orders/" + request_id
    return {"order_id": request_id, "item": order.item, "quantity": order.quantity,
            "source_ip": request.scope["aws.event"]["requestContext"]["http"]["sourceIp"]}


# The Lambda handler. lifespan="off": mangum would otherwise run the app's startup and shutdown
# around every invoke; this app has none.
handler = Mangum(app, lifespan="off")
