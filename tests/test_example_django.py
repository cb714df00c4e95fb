"""examples/django end to end: the one-file Django project behind apig-wsgi, served by a real
``python -m lambdaric app.handler --http 127.0.0.1:0`` (function URL and HTTP API events) and
asked with plain HTTP (http.client): exact status and header lines, the page's form and CSRF
token, the signed-cookie session (its signature checked with Django's signing), and Django's
refusals: a POST without the CSRF cookie and token, from another origin, an invalid form and
a Host not in ALLOWED_HOSTS."""
import email.utils
import re
import urllib.parse

import pytest

from browser import web_function
from peers import peer_module

peer_module("django", "pip install Django apig-wsgi, or -e '.[examples]'")
peer_module("apig_wsgi", "pip install apig-wsgi, or -e '.[examples]'")

from django.core import signing  # noqa: E402

REQUEST_ID_HEADER = {"url": "x-amzn-requestid", "http-api": "apigw-requestid"}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_COOKIE = re.compile(r"(csrftoken|sessionid)=([^;]+); expires=([^;]+); (HttpOnly; )?Max-Age=(\d+); Path=/; SameSite=Lax\Z")
_CSRF_INPUT = re.compile(rb'<input type="hidden" name="csrfmiddlewaretoken" value="([A-Za-z0-9]{64})">')
#: Django's security headers (SecurityMiddleware, XFrameOptionsMiddleware), in the order it sends them
SECURITY = [("x-frame-options", "DENY"), ("x-content-type-options", "nosniff"), ("referrer-policy", "same-origin"),
            ("cross-origin-opener-policy", "same-origin")]


@pytest.fixture(scope="module", params=["url", "http-api"])
def site(request):
    with web_function("django", "--integration", request.param) as running:
        running.integration = request.param
        yield running


def session_of(value):
    """The signed_cookies session's content, its signature and salt checked as Django checks them."""
    return signing.loads(value, key="local-development-only", salt="django.contrib.sessions.backends.signed_cookies",
                         fallback_keys=[])


def answer(site, method, path, body=None, cookies=None, headers=None):
    """(status, header lines with dynamic values replaced once checked, body, cookies set)."""
    sent = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    if cookies:
        sent["Cookie"] = "; ".join("%s=%s" % item for item in cookies.items())
    sent.update(headers or {})
    status, lines, data = site.request(method, path, body=body, headers=sent)
    normal, set_cookies = [], {}
    for name, value in lines:
        if name == "date":
            assert email.utils.parsedate_to_datetime(value).tzname() == "UTC", value
            value = "<date>"
        elif name == REQUEST_ID_HEADER[site.integration]:
            assert _UUID.match(value), value
            value = "<request id>"
        elif name == "set-cookie":
            match = _COOKIE.match(value)
            assert match, value
            cookie, cookie_value, _, httponly, max_age = match.groups()
            # the CSRF cookie: a year, readable by scripts; the session: two weeks, HttpOnly
            assert (cookie, bool(httponly), int(max_age)) in (("csrftoken", False, 31449600), ("sessionid", True, 1209600))
            set_cookies[cookie], value = cookie_value, "<%s>" % cookie
        normal.append((name, value))
    return status, normal, data, set_cookies


def expected_headers(site, length, cookies=(), vary=True, location=None):
    lines = [("date", "<date>"), ("content-type", "text/html; charset=utf-8")]
    lines += [("location", location)] if location else []
    lines += SECURITY[:1] + ([("vary", "Cookie")] if vary else []) + SECURITY[1:]
    lines += [("set-cookie", "<%s>" % c) for c in cookies]
    return lines + [(REQUEST_ID_HEADER[site.integration], "<request id>"), ("content-length", str(length))]


def visit(site):
    """A first GET /: (CSRF cookie, session cookie, the form's token)."""
    status, _, body, cookies = answer(site, "GET", "/")
    assert status == 200
    return cookies["csrftoken"], cookies["sessionid"], _CSRF_INPUT.search(body).group(1).decode()


def test_first_visit_has_the_form_a_csrf_token_and_a_session(site):
    status, lines, body, cookies = answer(site, "GET", "/")
    assert status == 200
    assert lines == expected_headers(site, len(body), cookies=("csrftoken", "sessionid"))
    assert re.fullmatch(r"[A-Za-z0-9]{32}", cookies["csrftoken"])
    assert session_of(cookies["sessionid"]) == {"visits": 1}
    assert b'<p id="greeting">Who are you?</p>\n<p id="visits">Visit 1 in this session.</p>' in body
    assert _CSRF_INPUT.search(body), body
    assert b'<input type="text" name="name" maxlength="40" required id="id_name">' in body


def test_form_post_with_the_token_redirects_and_keeps_the_name(site):
    csrf, session, token = visit(site)
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "name": "  Ada <Lovelace> "})
    status, lines, body, cookies = answer(site, "POST", "/", body=form, cookies={"csrftoken": csrf, "sessionid": session},
                                          headers={"Origin": site.url.rstrip("/")})
    assert (status, body) == (303, b"")
    assert lines == expected_headers(site, 0, cookies=("sessionid",), location="/")
    assert session_of(cookies["sessionid"]) == {"visits": 1, "name": "Ada <Lovelace>"}  # the form strips
    status, _, body, again = answer(site, "GET", "/", cookies={"csrftoken": csrf, "sessionid": cookies["sessionid"]})
    assert status == 200
    assert b'<p id="greeting">Hello, Ada &lt;Lovelace&gt;!</p>\n<p id="visits">Visit 2 in this session.</p>' in body
    assert b'value="Ada &lt;Lovelace&gt;"' in body
    assert session_of(again["sessionid"]) == {"visits": 2, "name": "Ada <Lovelace>"}


@pytest.mark.parametrize("case, reason", [
    ("no cookie, no token", b"<p>You are seeing this message because this site requires a CSRF cookie"),
    ("cookie, no token", b"<p>CSRF verification failed. Request aborted.</p>"),
    ("another origin", b"<p>CSRF verification failed. Request aborted.</p>"),
])
def test_a_post_that_fails_csrf_is_403(site, case, reason):
    csrf, session, token = visit(site)
    cookies, fields, headers = {"csrftoken": csrf}, {"name": "Mallory"}, {"Origin": site.url.rstrip("/")}
    if case == "no cookie, no token":
        cookies = {}
    elif case == "another origin":
        fields["csrfmiddlewaretoken"] = token
        headers["Origin"] = "http://evil.example"
    status, lines, body, set_cookies = answer(site, "POST", "/", body=urllib.parse.urlencode(fields), cookies=cookies,
                                              headers=headers)
    assert status == 403
    assert b"<title>403 Forbidden</title>" in body and reason in body
    assert set_cookies == {}
    assert lines == expected_headers(site, len(body), vary=False)


def test_an_invalid_form_is_shown_again_with_its_error(site):
    csrf, session, token = visit(site)
    status, lines, body, cookies = answer(site, "POST", "/", body="csrfmiddlewaretoken=%s&name=++" % token,
                                          cookies={"csrftoken": csrf, "sessionid": session},
                                          headers={"Origin": site.url.rstrip("/")})
    assert status == 400
    assert b"This field is required." in body
    assert b'<p id="visits">Visit 1 in this session.</p>' in body
    # the session did not change; the page used the CSRF token, so its cookie is sent again, unchanged
    assert cookies == {"csrftoken": csrf}
    assert lines == expected_headers(site, len(body), cookies=("csrftoken",))


def test_a_host_outside_allowed_hosts_is_400(site):
    status, _, body, _ = answer(site, "GET", "/", headers={"Host": "evil.example"})
    assert status == 400
    assert b"<h1>Bad Request (400)</h1>" in body
