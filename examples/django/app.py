"""A Django project in one file as a Lambda function, behind apig-wsgi (the WSGI adapter the
Flask example uses too): settings in code, one URL pattern, one view with a Django form and a
template, no database.

``GET /`` shows a form and a visit counter; ``POST /`` validates the form (a name of 1 to 40
characters) and keeps the name in the session, then redirects back (303); an invalid form is
shown again with Django's error list (400). CSRF is Django's usual protection, on: the
template's ``{% csrf_token %}`` puts the token in the form and in the ``csrftoken`` cookie, and
CsrfViewMiddleware refuses a POST (403) without both or from another origin. Sessions are
signed cookies (``signed_cookies`` backend), so nothing is kept on the server: consecutive
requests may reach different execution environments on Lambda. Set ``DJANGO_SECRET_KEY`` and
``DJANGO_ALLOWED_HOSTS`` (comma-separated; e.g. your function URL's host) in the function's
configuration; the fallbacks are for local runs. Run it without Lambda: ``python app.py
runserver``.
"""
import os
import sys

import django
from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template import engines
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "local-development-only"),
    # Lambda function URLs and API Gateway hosts, and loopback for local runs (ports are ignored)
    ALLOWED_HOSTS=os.environ.get("DJANGO_ALLOWED_HOSTS", ".on.aws,.amazonaws.com,127.0.0.1,localhost").split(","),
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",  # checks Host against ALLOWED_HOSTS on every request
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ],
    SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
    SESSION_COOKIE_HTTPONLY=True,
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
    INSTALLED_APPS=[],
    DATABASES={},
    USE_TZ=True,
)
django.setup()

PAGE = engines["django"].from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Django on lambdaric</title></head>
<body>
<h1>Django on lambdaric</h1>
<p id="greeting">{% if name %}Hello, {{ name }}!{% else %}Who are you?{% endif %}</p>
<p id="visits">Visit {{ visits }} in this session.</p>
<form id="who" method="post" action="/">{% csrf_token %}
  {{ form.as_p }}
  <button type="submit">Remember me</button>
</form>
</body></html>
""")


class NameForm(forms.Form):
    name = forms.CharField(max_length=40, strip=True)


def home(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = NameForm(request.POST)
        if form.is_valid():
            request.session["name"] = form.cleaned_data["name"]
            return HttpResponseRedirect("/", status=303)
        status = 400
    else:
        request.session["visits"] = request.session.get("visits", 0) + 1
        form, status = NameForm(initial={"name": request.session.get("name", "")}), 200
    context = {"form": form, "name": request.session.get("name"), "visits": request.session.get("visits", 0)}
    return HttpResponse(PAGE.render(context, request), status=status)


urlpatterns = [path("", home)]

if __name__ == "__main__":  # python app.py runserver: Django's own development server
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
else:
    from apig_wsgi import make_lambda_handler
    from django.core.wsgi import get_wsgi_application

    # The Lambda handler: apig-wsgi turns the event into a WSGI environ, Django answers it.
    handler = make_lambda_handler(get_wsgi_application(), binary_support=True)
