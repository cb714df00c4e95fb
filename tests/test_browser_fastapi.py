"""examples/fastapi in a real browser: headless Chromium (Playwright) browses the app served by
``python -m lambdaric app.handler --http 127.0.0.1:0`` (mangum inside) as a function URL, behind an
HTTP API, a REST API (``--binary-media-types '*/*'``: AWS's advice for browsers, whose Accept
header does not start with the image's type) and an ALB: each integration's events and answers must make the same pages.
Checked as a user sees it: the page loads, the form posts urlencoded and its result shows, the
cookies come back on the next requests, the PNG downloads with the exact bytes the app drew
and the browser decodes it (its size and pixels)."""
import hashlib
import importlib.util
import os
import urllib.parse

import pytest

from browser import browser, example_dir, header, page, web_function  # noqa: F401  (fixtures)
from peers import peer_module

peer_module("fastapi", "pip install fastapi mangum python-multipart, or -e '.[examples]'")
peer_module("mangum", "pip install mangum, or -e '.[examples]'")
peer_module("python_multipart", "pip install python-multipart (FastAPI's Form needs it), or -e '.[examples]'")


def example_module():
    """examples/fastapi/app.py imported under its own name (its BADGE and png are the oracle)."""
    spec = importlib.util.spec_from_file_location("fastapi_example_app", os.path.join(example_dir("fastapi"), "app.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


INTEGRATIONS = {"url": [], "http-api": [], "rest": ["--binary-media-types", "*/*"], "alb": []}


@pytest.fixture(scope="module", params=sorted(INTEGRATIONS))
def site(request):
    with web_function("fastapi", "--integration", request.param, *INTEGRATIONS[request.param]) as running:
        yield running


def test_page_loads_and_a_cookie_counts_the_visits(site, page):
    response = page.goto(site.url)
    assert response.status == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert page.title() == "lambdaric guestbook"
    assert page.inner_text("#greeting") == "Sign the guestbook below."
    assert page.inner_text("#visits") == "Visit 1 from this browser (a cookie counts them)."
    # the second load sends the cookie the first one set: the count went up server-side
    with page.expect_request(site.url) as second:
        page.reload()
    assert second.value.all_headers().get("cookie") == "visits=1"  # (.headers leaves cookies out)
    assert page.inner_text("#visits") == "Visit 2 from this browser (a cookie counts them)."
    [cookie] = page.context.cookies()
    assert (cookie["name"], cookie["value"], cookie["httpOnly"], cookie["domain"], cookie["sameSite"]) == (
        "visits", "2", True, "127.0.0.1", "Lax")


def test_form_posts_urlencoded_its_result_shows_and_the_name_is_remembered(site, page):
    page.goto(site.url)
    page.fill("input[name=name]", "Ada Lovelace")
    page.fill("input[name=message]", "<b>notes</b> & sketches")
    with page.expect_response(site.url + "guestbook") as posted:
        page.click("button[type=submit]")
    request = posted.value.request
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert urllib.parse.parse_qs(request.post_data) == {"name": ["Ada Lovelace"], "message": ["<b>notes</b> & sketches"]}
    assert posted.value.status == 200
    # the result, escaped by the app and shown as text (no <b> element was made)
    assert page.inner_text("#result") == "Ada Lovelace wrote: <b>notes</b> & sketches"
    assert page.locator("#result b").count() == 0
    # back on the page, the name cookie (quoted: it has a space) and the visit count both came back
    page.click("#back")
    page.wait_for_url(site.url)
    assert page.inner_text("#greeting") == "Welcome back, Ada Lovelace."
    assert page.inner_text("#visits") == "Visit 2 from this browser (a cookie counts them)."
    assert {c["name"]: c["value"] for c in page.context.cookies()} == {"visits": "2", "name": '"Ada Lovelace"'}


def test_the_png_downloads_intact_and_the_browser_decodes_it(site, page, tmp_path):
    badge = example_module().BADGE
    # what the front serves: the app's bytes exactly (mangum base64-encoded them, the front decoded)
    status, lines, body = site.request("GET", "/badge.png")
    assert (status, header(lines, "content-type"), body) == (200, ["image/png"], badge)
    page.goto(site.url)
    # the <img> on the page: decoded by the browser at the size the PNG's header says
    page.wait_for_function("document.getElementById('badge').complete")
    size = page.evaluate("[document.getElementById('badge').naturalWidth, document.getElementById('badge').naturalHeight]")
    assert size == [120, 40]
    # its pixels, read back through a canvas: the app's pattern (a light square, then a gradient one)
    pixels = page.evaluate("""() => {
        const img = document.getElementById('badge'), canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const ctx = canvas.getContext('2d'); ctx.drawImage(img, 0, 0);
        return [[0, 0], [8, 0], [50, 9]].map(([x, y]) => Array.from(ctx.getImageData(x, y, 1, 1).data));
    }""")
    assert pixels == [[250, 250, 250, 255], [239, 144, 16, 255], [155, 177, 100, 255]]
    # the download link: the saved file has the app's bytes
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "lambdaric-badge.png"
    saved = tmp_path / "badge.png"
    download.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == hashlib.sha256(badge).hexdigest()
