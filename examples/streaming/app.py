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
"""
import base64
import json
import os
import re
import time

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


@lambdaric.streaming_handler
def handler(event, context, stream):
    http = isinstance(event, dict) and "requestContext" in event
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


def read_request(event):
    """The JSON body of a function URL (payload 2.0) event, or None when it is not JSON."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    try:
        return json.loads(body)
    except ValueError:
        return None
