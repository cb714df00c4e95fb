"""A Flask application as a Lambda function, behind apig-wsgi (a WSGI adapter for API Gateway
and function URL events, payload formats 1.0 and 2.0, and ALB events): the same app runs under
``flask --app app run`` on a laptop unchanged.

``GET /`` is a page with a form and a visit counter; ``POST /`` (the form, urlencoded) keeps your
name in Flask's session and redirects back (303, post/redirect/get), so a reload does not post
again. The session is Flask's signed cookie: no server-side state, which suits Lambda, where
consecutive requests may reach different execution environments. Set ``SECRET_KEY`` in the
function's configuration (the fallback here is for local runs only). ``GET /api/session`` answers
the same state as JSON.
"""
import os

from apig_wsgi import make_lambda_handler
from flask import Flask, jsonify, redirect, render_template_string, request, session

app = Flask(__name__)
app.secret_key = os.environ.get("SECRET_KEY", "local-development-only")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Flask on lambdaric</title></head>
<body>
<h1>Flask on lambdaric</h1>
<p id="greeting">{% if name %}Hello, {{ name }}!{% else %}Who are you?{% endif %}</p>
<p id="visits">Visit {{ visits }} in this session.</p>
{% if error %}<p id="error">{{ error }}</p>{% endif %}
<form id="who" method="post" action="/">
  <label>Name <input name="name" maxlength="40" value="{{ name or '' }}"></label>
  <button type="submit">Remember me</button>
</form>
</body></html>
"""


@app.get("/")
def home():
    session["visits"] = session.get("visits", 0) + 1
    return render_template_string(PAGE, name=session.get("name"), visits=session["visits"], error=None)


@app.post("/")
def remember():
    name = request.form.get("name", "").strip()
    if not name or len(name) > 40:
        page = render_template_string(PAGE, name=session.get("name"), visits=session.get("visits", 0),
                                      error="A name of 1 to 40 characters, please.")
        return page, 400
    session["name"] = name
    return redirect("/", code=303)


@app.get("/api/session")
def state():
    return jsonify(name=session.get("name"), visits=session.get("visits", 0))


# The Lambda handler: apig-wsgi turns the event into a WSGI environ and Flask's answer into the
# proxy-integration result; binary_support lets it base64-encode non-text bodies.
handler = make_lambda_handler(app, binary_support=True)
