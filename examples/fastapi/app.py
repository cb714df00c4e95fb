"""A FastAPI application as a Lambda function, behind mangum (the ASGI adapter): the same app
serves API Gateway HTTP APIs and function URLs (payload format 2.0), REST APIs (1.0) and ALBs,
and runs under uvicorn on a laptop unchanged (``uvicorn app:app``).

Routes: ``GET /hello?name=`` (a query parameter and a cookie), ``GET /items/{item_id}`` (a typed
path parameter; 404 for an unknown item), ``POST /orders`` (a JSON body validated by a pydantic
model; 201, or 422 with FastAPI's error list), anything else FastAPI's 404. For a browser (e.g.
``python -m lambdaric app.handler --http 127.0.0.1:3000``): ``GET /`` (an HTML page counting your
visits in a cookie, greeting you by the name you signed with), ``POST /guestbook`` (its form,
urlencoded; sets the ``name`` cookie) and ``GET /badge.png`` (a PNG drawn in pure Python: binary,
so mangum base64-encodes it in the Lambda answer and the front decodes it).
"""
import html
import struct
import zlib
from typing import Callable, Optional, Tuple

from fastapi import Cookie, FastAPI, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
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


def png(width: int, height: int, pixel: Callable[[int, int], Tuple[int, int, int]]) -> bytes:
    """An 8-bit RGB PNG (signature, IHDR, one zlib IDAT, IEND), with no imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, truecolour, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


# Drawn once per runtime (at import, in the init phase): a 120x40 orange-to-blue gradient with stripes.
BADGE = png(120, 40, lambda x, y: (255 - 2 * x, 120 + (x + y) % 40 * 3, 2 * x) if (x // 8 + y // 8) % 2 else (250, 250, 250))

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lambdaric guestbook</title></head>
<body>
<h1>FastAPI on lambdaric</h1>
<p id="greeting">{greeting}</p>
<p id="visits">Visit {visits} from this browser (a cookie counts them).</p>
<form id="sign" method="post" action="/guestbook">
  <label>Name <input name="name" required maxlength="40"></label>
  <label>Message <input name="message" required maxlength="200"></label>
  <button type="submit">Sign the guestbook</button>
</form>
<p><img id="badge" src="/badge.png" alt="a badge drawn in pure Python" width="120" height="40">
<a id="download" href="/badge.png" download="lambdaric-badge.png">download it</a></p>
</body></html>
"""


@app.get("/", response_class=HTMLResponse)
def home(visits: Optional[str] = Cookie(default=None), name: Optional[str] = Cookie(default=None)) -> HTMLResponse:
    count = (int(visits) if visits and visits.isdigit() else 0) + 1
    greeting = "Welcome back, %s." % html.escape(name) if name else "Sign the guestbook below."
    page = HTMLResponse(PAGE.format(greeting=greeting, visits=count))
    page.set_cookie("visits", str(count), max_age=30 * 86400, httponly=True)
    return page


@app.post("/guestbook", response_class=HTMLResponse)
def sign(name: str = Form(max_length=40), message: str = Form(max_length=200)) -> HTMLResponse:
    """The form's urlencoded body, read by FastAPI's ``Form`` (which needs python-multipart)."""
    page = HTMLResponse('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>signed</title></head><body>'
                        '<p id="result">%s wrote: %s</p><p><a id="back" href="/">back</a></p></body></html>'
                        % (html.escape(name), html.escape(message)))
    page.set_cookie("name", name, max_age=30 * 86400, httponly=True)
    return page


@app.get("/badge.png")
def badge() -> Response:
    return Response(BADGE, media_type="image/png", headers={"Cache-Control": "max-age=60"})


# The Lambda handler. lifespan="off": mangum would otherwise run the app's startup and shutdown
# around every invoke; this app has none.
handler = Mangum(app, lifespan="off")
