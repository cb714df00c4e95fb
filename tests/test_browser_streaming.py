"""examples/streaming in a real browser: headless Chromium (Playwright) opens the chat page served
by ``python -m lambdaric app.handler --http 127.0.0.1:0 --invoke-mode RESPONSE_STREAM`` and asks;
the page's ``EventSource`` reads ``GET /chat?prompt=`` and stamps each token event with
``performance.now()`` as it arrives. Streaming is proven where it matters, in the page: the
tokens arrive spread out as the function produces them (TOKEN_DELAY apart), not in one burst
at the end."""
import json

import pytest

from browser import browser, page, web_function  # noqa: F401  (fixtures)

TOKEN_DELAY = 0.2
# what the stand-in model says for "why stream": 18 tokens, TOKEN_DELAY apart (~3.6 s)
ANSWER = "You asked: why stream. Here is the answer, streamed one token at a time as it is generated."
TOKENS = 18


@pytest.fixture(scope="module")
def site():
    with web_function("streaming", "--invoke-mode", "RESPONSE_STREAM", env={"TOKEN_DELAY": str(TOKEN_DELAY)}) as running:
        yield running


def test_event_source_reads_the_tokens_as_they_are_generated(site, page):
    response = page.goto(site.url)
    assert response.status == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert page.inner_text("#status") == "idle"
    with page.expect_response(site.url + "chat?prompt=why%20stream") as events:
        page.click("button[type=submit]")
    assert events.value.status == 200
    assert events.value.headers["content-type"] == "text/event-stream"
    assert events.value.headers["cache-control"] == "no-cache"
    # while the stream is still running, part of the answer is on the page already
    page.wait_for_function("window.arrivals.length >= 3", timeout=10_000)
    assert page.inner_text("#status") == "streaming"
    assert 0 < len(page.inner_text("#answer")) < len(ANSWER)
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done')", timeout=20_000)
    assert page.inner_text("#status") == "done: %d tokens" % TOKENS
    assert page.inner_text("#answer") == ANSWER
    arrivals = page.evaluate("window.arrivals")
    assert [index for _, index in arrivals] == list(range(TOKENS))
    times = [at / 1000.0 for at, _ in arrivals]
    # first token well before the last: ~(TOKENS - 1) * TOKEN_DELAY = 3.4 s apart (generous bounds)
    assert times[-1] - times[0] > 0.6 * (TOKENS - 1) * TOKEN_DELAY, json.dumps(arrivals)
    # and spread out token by token: a buffered answer would come as one burst (every gap ~0); here most
    # gaps are near TOKEN_DELAY (at least half of them, leaving room for a loaded machine's stalls)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert sum(gap > TOKEN_DELAY / 2 for gap in gaps) >= len(gaps) // 2, json.dumps(arrivals)


def test_a_get_without_a_prompt_is_400_and_an_unknown_path_404(site):
    status, lines, body = site.request("GET", "/chat?prompt=%20")
    assert (status, json.loads(body)) == (400, {"error": "GET /chat?prompt=<non-empty text>"})
    assert ("content-type", "application/json") in lines
    status, lines, body = site.request("GET", "/nowhere")
    assert (status, json.loads(body)) == (404, {"error": "no route for GET /nowhere"})
