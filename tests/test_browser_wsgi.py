"""examples/flask and examples/django in a real browser: headless Chromium (Playwright) browses
each app served by ``python -m lambdaric app.handler --http 127.0.0.1:0`` (function URL events,
apig-wsgi inside): the page loads, the form is submitted (Django's with its CSRF token, from the
page's hidden field and cookie, as any browser sends it), the 303 is followed back to the page,
and the session cookie carries the name and the visit count across requests."""
import pytest

from browser import browser, page, web_function  # noqa: F401  (fixtures)
from peers import peer_module

peer_module("apig_wsgi", "pip install apig-wsgi, or -e '.[examples]'")

#: example -> (module it needs, page title, the cookies a visit leaves)
APPS = {
    "flask": ("flask", "Flask on lambdaric", {"session"}),
    "django": ("django", "Django on lambdaric", {"csrftoken", "sessionid"}),
}


@pytest.fixture(scope="module", params=sorted(APPS))
def site(request):
    peer_module(APPS[request.param][0], "pip install -e '.[examples]'")
    with web_function(request.param) as running:
        running.example = request.param
        yield running


def test_page_form_and_session_cookie(site, page):
    _, title, cookie_names = APPS[site.example]
    response = page.goto(site.url)
    assert response.status == 200
    assert page.title() == title
    assert page.inner_text("#greeting") == "Who are you?"
    assert page.inner_text("#visits") == "Visit 1 in this session."
    assert {c["name"] for c in page.context.cookies()} == cookie_names
    page.fill("input[name=name]", "Grace Hopper")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("button[type=submit]")
    assert posted.value.status == 303
    assert posted.value.headers["location"] == "/"
    if site.example == "django":  # the token came from the page's hidden input, its cookie with it
        assert "csrfmiddlewaretoken=" in posted.value.request.post_data
        assert "csrftoken=" in posted.value.request.all_headers()["cookie"]
    page.wait_for_load_state()
    assert page.url == site.url
    assert page.inner_text("#greeting") == "Hello, Grace Hopper!"
    assert page.inner_text("#visits") == "Visit 2 in this session."
    assert page.input_value("input[name=name]") == "Grace Hopper"
    page.reload()  # the cookie again, on a load of its own
    assert page.inner_text("#greeting") == "Hello, Grace Hopper!"
    assert page.inner_text("#visits") == "Visit 3 in this session."
    session = [c for c in page.context.cookies() if c["name"] in ("session", "sessionid")]
    assert [(c["httpOnly"], c["domain"], c["path"]) for c in session] == [(True, "127.0.0.1", "/")]
