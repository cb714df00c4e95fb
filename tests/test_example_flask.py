"""examples/flask end to end: the Flask app behind apig-wsgi, served by a real ``python -m
lambdaric app.handler --http 127.0.0.1:0`` with each ``--integration`` (function URL, HTTP API,
REST API, ALB) and asked with plain HTTP (http.client): the exact status, header lines and
body a browser gets, the session cookie verified with Flask's own signer (same secret key)."""
import email.utils
import re
import urllib.parse

import pytest

from browser import header, web_function
from peers import peer_module

peer_module("flask", "pip install Flask apig-wsgi, or -e '.[examples]'")
peer_module("apig_wsgi", "pip install apig-wsgi, or -e '.[examples]'")

from flask import Flask  # noqa: E402
from flask.sessions import SecureCookieSessionInterface  # noqa: E402

#: the response header each integration adds with the request id (an ALB adds none)
REQUEST_ID_HEADER = {"url": "x-amzn-requestid", "http-api": "apigw-requestid", "rest": "x-amzn-requestid", "alb": None}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_SESSION = re.compile(r"session=([A-Za-z0-9_.-]+); HttpOnly; Path=/\Z")
FORM = "application/x-www-form-urlencoded"


def page(greeting, visits, name="", error=None):
    """The page app.py renders (its template, written out)."""
    return ("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Flask on lambdaric</title></head>
<body>
<h1>Flask on lambdaric</h1>
<p id="greeting">%s</p>
<p id="visits">Visit %d in this session.</p>
%s
<form id="who" method="post" action="/">
  <label>Name <input name="name" maxlength="40" value="%s"></label>
  <button type="submit">Remember me</button>
</form>
</body></html>""" % (greeting, visits, '<p id="error">%s</p>' % error if error else "", name)).encode()


def signed_session(value):
    """The session cookie's content, its signature checked as Flask checks it."""
    signer = Flask("verify")
    signer.secret_key = "local-development-only"
    return SecureCookieSessionInterface().get_signing_serializer(signer).loads(value)


@pytest.fixture(scope="module", params=["url", "http-api", "rest", "alb"])
def site(request):
    with web_function("flask", "--integration", request.param) as running:
        running.integration = request.param
        yield running


def answer(site, method, path, body=None, cookie=None):
    """(status, header lines with the date, request id and session cookie replaced by what they
    stand for, once checked, body, the session's content or None)."""
    headers = {"Content-Type": FORM} if body is not None else {}
    if cookie:
        headers["Cookie"] = "session=" + cookie
    status, lines, data = site.request(method, path, body=body, headers=headers)
    session, normal = None, []
    for name, value in lines:
        if name == "date":
            assert email.utils.parsedate_to_datetime(value).tzname() == "UTC", value
            value = "<date>"
        elif name == REQUEST_ID_HEADER[site.integration]:
            assert _UUID.match(value), value
            value = "<request id>"
        elif name == "set-cookie":
            match = _SESSION.match(value)
            assert match, value
            session, value = match.group(1), "<session>"
        normal.append((name, value))
    return status, normal, data, session


def expected_headers(site, content_type, length, session=False, location=None):
    lines = [("date", "<date>"), ("content-type", content_type)]
    lines += [("location", location)] if location else []
    lines += [("vary", "Cookie")]
    lines += [("set-cookie", "<session>")] if session else []
    lines += [(REQUEST_ID_HEADER[site.integration], "<request id>")] if REQUEST_ID_HEADER[site.integration] else []
    return lines + [("content-length", str(length))]


def test_first_visit_sets_a_signed_session_cookie(site):
    status, lines, body, session = answer(site, "GET", "/")
    assert status == 200
    assert body == page("Who are you?", 1)
    assert lines == expected_headers(site, "text/html; charset=utf-8", len(body), session=True)
    assert signed_session(session) == {"visits": 1}


def test_form_post_redirects_and_the_cookie_carries_the_name(site):
    _, _, _, first = answer(site, "GET", "/")
    status, lines, body, session = answer(site, "POST", "/", body=urllib.parse.urlencode({"name": "Grace <Hopper>"}), cookie=first)
    assert status == 303
    assert lines == expected_headers(site, "text/html; charset=utf-8", len(body), session=True, location="/")
    assert b'<a href="/">/</a>' in body  # Flask's redirect page
    assert signed_session(session) == {"visits": 1, "name": "Grace <Hopper>"}
    # the browser follows the redirect with the new cookie: the name, escaped, and a second visit
    status, _, body, again = answer(site, "GET", "/", cookie=session)
    assert status == 200
    assert body == page("Hello, Grace &lt;Hopper&gt;!", 2, name="Grace &lt;Hopper&gt;")
    assert signed_session(again) == {"visits": 2, "name": "Grace <Hopper>"}
    status, lines, body, _ = answer(site, "GET", "/api/session", cookie=again)
    assert status == 200
    assert body == b'{"name":"Grace <Hopper>","visits":2}\n'
    assert lines == expected_headers(site, "application/json", len(body))


def test_an_empty_name_is_400_and_the_session_is_left_alone(site):
    _, _, _, first = answer(site, "GET", "/")
    status, lines, body, session = answer(site, "POST", "/", body="name=+", cookie=first)
    assert status == 400
    assert body == page("Who are you?", 1, error="A name of 1 to 40 characters, please.")
    assert session is None and header(lines, "set-cookie") == []
    assert lines == expected_headers(site, "text/html; charset=utf-8", len(body))


def test_an_unknown_path_is_flasks_404(site):
    status, lines, body, _ = answer(site, "GET", "/nowhere")
    assert status == 404
    assert b"<h1>Not Found</h1>" in body
    assert lines == [line for line in expected_headers(site, "text/html; charset=utf-8", len(body)) if line[0] != "vary"]
