"""The Extensions API of one sandbox (``/2020-01-01/extension/...``), answered as Lambda does.

Without it a function that registers an extension (lambdaric does, for ``on_shutdown``:
the no-op extension that has Lambda send SIGTERM) would be told 404 on every local start.
The answers, status and error types are Lambda's own (checked against ``aws-lambda-rie``,
which runs Lambda's Runtime API code): every refusal is 403 with an error JSON.

The emulator starts no external extensions (nothing under ``/opt/extensions``), so every
extension that registers is internal: a thread of the runtime process. As in Lambda, an
internal extension may take ``INVOKE`` events but not ``SHUTDOWN``
(``ShutdownEventNotSupportedForInternalExtension``), and registration closes when the
runtime first calls ``/next``. ``event/next`` answers an ``INVOKE`` event for each invoke
delivered to the runtime (to extensions that asked for them) and otherwise holds until the
runtime is shut down, when the connection is closed without an answer. Unlike Lambda, the
emulator does not hold the runtime's ``/next`` until every extension has called
``event/next``, nor an invoke's end until they call it again.
"""
from __future__ import annotations

import asyncio
import json
import uuid
from typing import Dict, List, Union

from . import http
from .invocation import Invocation, error_json

PREFIX = "/2020-01-01/extension/"
NAME_HEADER = "Lambda-Extension-Name"
IDENTIFIER_HEADER = "Lambda-Extension-Identifier"
#: Lambda's limit of extensions per function.
MAX_EXTENSIONS = 10


class Extension:
    """One registered (internal) extension and the events waiting for its ``event/next``."""

    def __init__(self, name: str, invoke: bool) -> None:
        self.name = name
        self.identifier = str(uuid.uuid4())
        self.invoke = invoke
        self.events: "asyncio.Queue[bytes]" = asyncio.Queue()


class ExtensionsAPI:
    """The Extensions API state of one sandbox: who registered, and their pending events."""

    def __init__(self, env: Dict[str, str]) -> None:
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.handler = env.get("_HANDLER", "")
        self.by_id: Dict[str, Extension] = {}
        self.registration_open = True
        self._shutdown = asyncio.Event()

    def close_registration(self) -> None:
        """The runtime called ``/next``: init is over, no more extensions may register."""
        self.registration_open = False

    def shutdown(self) -> None:
        """The runtime is being stopped: held ``event/next`` requests end."""
        self._shutdown.set()

    def on_invoke(self, inv: Invocation) -> None:
        """An invoke was delivered to the runtime: an ``INVOKE`` event for each extension
        registered for them."""
        targets = [ext for ext in self.by_id.values() if ext.invoke]
        if not targets:
            return
        event = {
            "eventType": "INVOKE",
            "deadlineMs": inv.deadline_ms,
            "requestId": inv.request_id,
            "invokedFunctionArn": inv.function_arn,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": inv.trace_id},
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        for ext in targets:
            ext.events.put_nowait(body)

    async def handle(self, req: http.Request, writer: asyncio.StreamWriter) -> None:
        rest = req.path.split("?", 1)[0][len(PREFIX):]
        if rest == "register" and req.method == "POST":
            await self._register(req, writer)
        elif rest == "event/next" and req.method == "GET":
            await self._event_next(req, writer)
        elif rest in ("register", "event/next"):
            await _refuse(writer, 405, "MethodNotAllowed", "use %s for %s" % ("POST" if rest == "register" else "GET", req.path[:200]))
        else:
            await _refuse(writer, 404, "NotFound", "unknown path %s" % req.path[:200])

    async def _register(self, req: http.Request, writer: asyncio.StreamWriter) -> None:
        name = req.header(NAME_HEADER) or ""
        if not name:
            await _refuse(writer, 403, "Extension.InvalidExtensionName", "Empty extension name")
            return
        body = await req.body_reader.read()
        events = _parse_register(body) if not req.body_reader.too_large else "the body is too large"
        if isinstance(events, str):
            await _refuse(writer, 403, "InvalidRequestFormat", events)
            return
        for event in events:
            if event == "SHUTDOWN":
                # the emulator runs no external extension: every one that registers is internal
                await _refuse(writer, 403, "Extension.InvalidEventType", "SHUTDOWN: ShutdownEventNotSupportedForInternalExtension")
                return
            if event != "INVOKE":
                await _refuse(writer, 403, "Extension.InvalidEventType", "%s: ErrorInvalidEventType" % event)
                return
        if not self.registration_open:
            await _refuse(writer, 403, "Extension.RegistrationClosed", "Extension registration closed already")
            return
        if any(ext.name == name for ext in self.by_id.values()):
            await _refuse(writer, 403, "Extension.InvalidExtensionState", "Extension with this name already registered")
            return
        if len(self.by_id) >= MAX_EXTENSIONS:
            await _refuse(writer, 403, "Extension.TooManyExtensions", "Extension limit (%d) reached" % MAX_EXTENSIONS)
            return
        ext = Extension(name, "INVOKE" in events)
        self.by_id[ext.identifier] = ext
        answer = {"functionName": self.function_name, "functionVersion": self.function_version, "handler": self.handler}
        await http.send(
            writer, 200, json.dumps(answer).encode(), [("Content-Type", "application/json"), (IDENTIFIER_HEADER, ext.identifier)]
        )

    async def _event_next(self, req: http.Request, writer: asyncio.StreamWriter) -> None:
        identifier = req.header(IDENTIFIER_HEADER)
        if not identifier:
            await _refuse(writer, 403, "Extension.MissingExtensionIdentifier", "Missing Lambda-Extension-Identifier header")
            return
        if not _is_uuid(identifier):
            await _refuse(writer, 403, "Extension.InvalidExtensionIdentifier", "Invalid Lambda-Extension-Identifier")
            return
        ext = self.by_id.get(identifier.lower())
        if ext is None:
            await _refuse(writer, 403, "Extension.UnknownExtensionIdentifier", "Unknown extension %s" % identifier)
            return
        next_event = asyncio.ensure_future(ext.events.get())
        shutdown = asyncio.ensure_future(self._shutdown.wait())
        try:
            await asyncio.wait({next_event, shutdown}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            shutdown.cancel()
            if not next_event.done():
                next_event.cancel()
        if next_event.done() and not next_event.cancelled() and not self._shutdown.is_set():
            headers = [("Content-Type", "application/json"), ("Lambda-Extension-Event-Identifier", str(uuid.uuid4()))]
            await http.send(writer, 200, next_event.result(), headers)
            return
        writer.close()  # the runtime is going away: no event for an internal extension


def _parse_register(body: bytes) -> Union[List[str], str]:
    """The events of a register body, or why it is not one (Lambda: ``InvalidRequestFormat``)."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        return "the body is not JSON (%s); send {\"events\": [...]}" % exc
    if not isinstance(doc, dict):
        return "the body must be a JSON object such as {\"events\": [\"INVOKE\"]}"
    events = doc.get("events")
    if events is None:
        events = []
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        return "\"events\" must be a list of event names (INVOKE)"
    if doc.get("configurationKeys"):
        return "configurationKeys are deprecated; use environment variables instead"
    return events


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def _refuse(writer: asyncio.StreamWriter, status: int, error_type: str, message: str) -> None:
    await http.send(writer, status, error_json(error_type, message), [("Content-Type", "application/json")])
