"""An LLM-style token stream as server-sent events, with lambdaric's response streaming.

A chat front end posts ``{"prompt": "..."}`` to the function URL (invoke mode
RESPONSE_STREAM) and shows the answer as it is generated instead of after the last token:
each token leaves the function as an SSE ``token`` event the moment it exists, then a
``done`` event says how many there were. The "model" is a stand-in (a canned answer, one
token every ``TOKEN_DELAY`` seconds, 0.05 by default) so the example runs anywhere; put a
real model's token iterator in ``generate``.

Invoked through a function URL (the event has ``requestContext``) the response starts with a
``lambdaric.HttpResponse``: status and headers for the URL's HTTP answer. Invoked directly
(``InvokeWithResponseStream`` with ``{"prompt": ...}``) the stream's content type is set
instead, and a missing prompt is an ordinary function error, since nothing was sent yet.

For a browser (``python -m lambdaric app.handler --http 127.0.0.1:3000 --invoke-mode
RESPONSE_STREAM``, or a function URL in RESPONSE_STREAM mode): ``GET /`` is a chat page whose
script opens an ``EventSource`` on ``GET /chat?prompt=...``, the same stream for a GET (an
``EventSource`` can only GET), and shows each token as its event arrives.
"""
import base64
import json
import os
import re
import time
import urllib.parse

import lambdaric

TOKEN_DELAY = float(os.environ.get("TOKEN_DELAY", "0.05"))


def generate(prompt):
    """Tokens of the answer, as a model would yield them: words with their leading space."""
    answer = "You asked: %s. Here is the answer, streamed one token at a time as it is generated." % prompt
    for token in re.findall(r"\s*\S+", answer):
        time.sleep(TOKEN_DELAY)  # the model thinking
        yield token


def sse(event, data):
    """One server-sent event: its name and a JSON data line, ended by a blank line."""
    return "event: %s\ndata: %s\n\n" % (event, json.dumps(data, separators=(",", ":")))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lambdaric streaming chat</title></head>
<body>
<h1>Streaming chat</h1>
<form id="ask"><input id="prompt" name="prompt" value="why stream" maxlength="200">
<button type="submit">Ask</button></form>
<p id="answer"></p>
<p id="status">idle</p>
<script>
// window.arrivals: [performance.now(), token index] per token event, as this page received it
window.arrivals = [];
document.getElementById("ask").addEventListener("submit", (e) => {
  e.preventDefault();
  const answer = document.getElementById("answer"), status = document.getElementById("status");
  answer.textContent = ""; window.arrivals = []; status.textContent = "streaming";
  const source = new EventSource("/chat?prompt=" + encodeURIComponent(document.getElementById("prompt").value));
  source.addEventListener("token", (m) => {
    const token = JSON.parse(m.data);
    window.arrivals.push([performance.now(), token.index]);
    answer.textContent += token.text;
  });
  source.addEventListener("done", (m) => {
    source.close();  // else EventSource reconnects when the stream ends
    status.textContent = "done: " + JSON.parse(m.data).tokens + " tokens";
  });
  source.onerror = () => { source.close(); status.textContent = "error"; };
});
</script>
</body></html>
"""


@lambdaric.streaming_handler
def handler(event, context, stream):
    http = isinstance(event, dict) and "requestContext" in event
    method = event["requestContext"].get("http", {}).get("method") if http else None
    if method == "GET":
        return browse(event, context, stream)
    request = read_request(event) if http else event
    prompt = request.get("prompt") if isinstance(request, dict) else None
    if not isinstance(prompt, str) or not prompt.strip():
        if not http:
            raise ValueError('the event must be {"prompt": "<non-empty text>"}')
        stream.write(lambdaric.HttpResponse(400, headers={"Content-Type": "application/json"}))
        stream.write(json.dumps({"error": 'POST a JSON body {"prompt": "<non-empty text>"}'}))
        return
    if http:
        stream.write(lambdaric.HttpResponse(200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}))
    else:
        stream.content_type = "text/event-stream"
    count = 0
    for count, token in enumerate(generate(prompt.strip()), 1):
        stream.write(sse("token", {"index": count - 1, "text": token}))
    stream.write(sse("done", {"tokens": count, "request_id": context.aws_request_id}))


def browse(event, context, stream):
    """GET: the chat page at ``/``, the token stream at ``/chat?prompt=`` (for EventSource), or 404."""
    path = event.get("rawPath", "/")
    if path == "/":
        stream.write(lambdaric.HttpResponse(200, headers={"Content-Type": "text/html; charset=utf-8"}))
        stream.write(PAGE)
        return
    if path != "/chat":
        stream.write(lambdaric.HttpResponse(404, headers={"Content-Type": "application/json"}))
        stream.write(json.dumps({"error": "no route for GET %s" % path}))
        return
    prompt = urllib.parse.parse_qs(event.get("rawQueryString") or "").get("prompt", [""])[0].strip()
    if not prompt:
        stream.write(lambdaric.HttpResponse(400, headers={"Content-Type": "application/json"}))
        stream.write(json.dumps({"error": "GET /chat?prompt=<non-empty text>"}))
        return
    stream.write(lambdaric.HttpResponse(200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}))
    count = 0
    for count, token in enumerate(generate(prompt), 1):
        stream.write(sse("token", {"index": count - 1, "text": token}))
    stream.write(sse("done", {"tokens": count, "request_id": context.aws_request_id}))


def read_request(event):
    """The JSON body of a function URL (payload 2.0) event, or None when it is not JSON."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    try:
        return json.loads(body)
    except ValueError:
        return None
