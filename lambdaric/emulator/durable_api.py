"""The durable routes of the Lambda API on the emulator's port, served by the runner behind it.

:mod:`.durable_runner` keeps the executions; this module makes its API Lambda's:

* ARNs. The runner names an execution ``<uuid>/<uuid>``; Lambda names it
  ``arn:aws:lambda:REGION:ACCOUNT:function:NAME:$LATEST/durable-execution/EXECUTION/ID`` (the
  pattern of botocore's model), whose ``ID`` is the Id of the execution's EXECUTION operation
  (the SDK finds its input by it), the runner's second UUID. Every ARN coming out (bodies, the
  durable envelope handed to the function) is made Lambda's, and remembered; every one going in
  is turned back into the runner's (an ``ID`` never handed out is an execution not found).
* Errors: the runner's ``{"Type": NAME, "message"|"Message": ...}`` becomes Lambda's
  ``X-Amzn-ErrorType: NAME`` and ``{"Type": "User"|"Service", "message": ...}``, which is what
  botocore reads the exception's code from.
* History: the details Lambda's events carry and the runner leaves out are filled in from what
  the emulator saw itself: ``InvocationCompletedDetails`` (each invocation's start, end and
  request id), ``CallbackStartedDetails`` ``Timeout``/``HeartbeatTimeout`` (from the checkpoint
  that started the callback), a retried step's ``RetryDetails.CurrentAttempt``, a chained
  invoke's ``ExecutedVersion`` (``$LATEST``, the only version the emulator has).
* Starting an execution from an Invoke (``X-Amz-Durable-Execution-Name``): Lambda's idempotency
  (the same name and payload: the same execution; another payload: 409
  ``DurableExecutionAlreadyStartedException``), and a ``RequestResponse`` invoke answered with
  the execution's result once it ends (``Event``: 202 at once).

Values from the wire are checked against the model's patterns before they reach the runner.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import re
import time
import uuid
from typing import Any, Dict, List, NamedTuple, Optional, Tuple
from urllib.parse import quote, unquote

#: botocore's DurableExecutionArn pattern, the function name and execution name and id captured.
LAMBDA_ARN = re.compile(
    r"arn:aws:lambda:([a-z0-9-]+):(\d{12}):function:([A-Za-z0-9_-]+):(\$LATEST|[0-9]+)"
    r"/durable-execution/([A-Za-z0-9_-]+)/([A-Za-z0-9_-]+)\Z"
)
#: What the runner's execution ARNs look like (two UUIDs joined by ``/``).
RUNNER_ARN = re.compile(r"[0-9a-fA-F-]{1,64}(/[0-9a-fA-F-]{1,64})?\Z")
EXECUTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
CALLBACK_ID = re.compile(r"[A-Za-z0-9+/]+={0,2}\Z")
#: Lambda's bound on a synchronous invoke, durable or not (seconds).
MAX_SYNC_WAIT = 900.0
#: The runner's exception names that Lambda's API spells otherwise.
_ERROR_NAMES = {"ExecutionAlreadyStartedException": "DurableExecutionAlreadyStartedException",
                "ExecutionConflictException": "ResourceConflictException"}
_ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED")


class Answer(NamedTuple):
    """An HTTP answer for the emulator to send."""

    status: int
    body: bytes
    headers: List[Tuple[str, str]]


def error(status: int, error_type: str, message: str) -> Answer:
    """Lambda's API error shape (``Type`` says whose fault: the caller's or the service's)."""
    body = json.dumps({"Type": "Service" if status >= 500 else "User", "message": message}).encode()
    return Answer(status, body, [("Content-Type", "application/json"), ("X-Amzn-ErrorType", error_type)])


class Invoked(NamedTuple):
    """One invocation of a durable function by the service, as the emulator ran it."""

    start: float
    end: float
    request_id: str
    error: Optional[Dict[str, str]]


class Started(NamedTuple):
    arn: str
    payload: bytes


class DurableFront:
    """The Lambda API of durable executions, in front of the runner at ``runner_base``."""

    def __init__(self, runner_base: str, region: str, account: str, skip_time: bool = False) -> None:
        self.runner_base = runner_base
        self.skip_time = skip_time
        self.region = region
        self.account = account
        #: Lambda ARN by runner ARN (filled as executions are started or first seen)
        self.arns: Dict[str, str] = {}
        #: runner ARN by the ID ending its Lambda ARN
        self.by_id: Dict[str, str] = {}
        #: the invocations of each execution (runner ARN): (start, end, request id, failed)
        self.invocations: Dict[str, List[Invoked]] = {}
        #: the callback options each execution's checkpoints gave, by operation Id
        self.callbacks: Dict[str, Dict[str, Dict[str, Any]]] = {}
        #: the payloads of each execution's step RETRY checkpoints (a wait_for_condition's states), by operation Id
        self.retried: Dict[str, Dict[str, List[str]]] = {}
        #: (function, execution name) -> the execution started under it, for idempotency
        self.started: Dict[Tuple[str, str], Started] = {}
        self.lock = asyncio.Lock()

    # ------------------------------------------------------------------ ARNs

    def lambda_arn(self, function: str, name: str, runner_arn: str) -> str:
        ident = runner_arn.rpartition("/")[2]
        self.by_id[ident] = runner_arn
        return "arn:aws:lambda:%s:%s:function:%s:$LATEST/durable-execution/%s/%s" % (
            self.region, self.account, function, name, ident)

    def runner_arn(self, arn: str) -> Optional[str]:
        """The runner's ARN for a Lambda execution ARN handed out; None for any other."""
        match = LAMBDA_ARN.match(arn)
        if match is None:
            return None
        return self.by_id.get(match.group(6))

    async def _to_lambda(self, runner_arn: str) -> str:
        """The Lambda ARN of a runner ARN (an execution the runner started itself, a chained
        invoke's child, is looked up once)."""
        known = self.arns.get(runner_arn)
        if known is not None:
            return known
        status, body = await self.call("GET", "/2025-12-01/durable-executions/" + quote(runner_arn, safe=""))
        try:
            obj = json.loads(body) if status == 200 else {}
            function = str(obj["FunctionArn"]).split(":")[6]
            name = str(obj.get("DurableExecutionName") or "execution")
        except (ValueError, KeyError, IndexError, TypeError):
            return runner_arn
        if not EXECUTION_NAME.match(name):
            name = "execution"
        self.arns[runner_arn] = arn = self.lambda_arn(function, name, runner_arn)
        return arn

    async def _rewrite(self, value: Any) -> Any:
        """``value`` with every runner ARN (a string under a key ending in ``Arn``) made Lambda's."""
        if isinstance(value, list):
            return [await self._rewrite(v) for v in value]
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if key.endswith("Arn") and isinstance(item, str) and RUNNER_ARN.match(item):
                    out[key] = await self._to_lambda(item)
                else:
                    out[key] = await self._rewrite(item)
            return out
        return value

    async def envelope(self, payload: bytes) -> Tuple[bytes, Optional[str]]:
        """The durable envelope the runner sends the function, with Lambda's ARNs in it, and
        the runner's ARN of its execution (None when it is no envelope)."""
        try:
            obj = json.loads(payload)
        except ValueError:
            return payload, None
        if not isinstance(obj, dict) or not isinstance(obj.get("DurableExecutionArn"), str):
            return payload, None
        return json.dumps(await self._rewrite(obj)).encode(), obj["DurableExecutionArn"]

    def invoked(self, runner_arn: str, invoked: Invoked) -> None:
        """Remember an invocation of ``runner_arn``'s function (its InvocationCompleted details)."""
        self.invocations.setdefault(runner_arn, []).append(invoked)

    def _checkpointed(self, runner_arn: str, body: bytes) -> None:
        """Remember the callback options of a checkpoint that starts callbacks."""
        try:
            updates = json.loads(body).get("Updates") or []
        except (ValueError, AttributeError):
            return
        for update in updates:
            if not isinstance(update, dict):
                continue
            options = update.get("CallbackOptions")
            if update.get("Type") == "CALLBACK" and update.get("Action") == "START" and isinstance(options, dict):
                self.callbacks.setdefault(runner_arn, {})[str(update.get("Id"))] = options
            if update.get("Type") == "STEP" and update.get("Action") == "RETRY" and isinstance(update.get("Payload"), str):
                self.retried.setdefault(runner_arn, {}).setdefault(str(update.get("Id")), []).append(update["Payload"])

    def _complete_history(self, runner_arn: str, history: Dict[str, Any], with_data: bool) -> None:
        """Fill in the event details the runner leaves out (module docstring); ``with_data``:
        the caller asked for payloads (``IncludeExecutionData``)."""
        events = history.get("Events")
        if not isinstance(events, list):
            return
        _suspend_first(events, self.skip_time)
        left = list(self.invocations.get(runner_arn, []))
        # one record per InvocationCompleted: taken in order (the clock of --skip-time jumps, so
        # times cannot be compared then); otherwise the record that ended nearest the event
        in_order = len(left) == sum(1 for e in events if isinstance(e, dict) and e.get("EventType") == "InvocationCompleted")
        attempts: Dict[str, int] = {}
        states = {op: list(payloads) for op, payloads in self.retried.get(runner_arn, {}).items()}
        for event in events:
            if not isinstance(event, dict):
                continue
            kind = event.get("EventType")
            op = str(event.get("Id"))
            if kind == "InvocationCompleted" and "InvocationCompletedDetails" not in event and left:
                at = event.get("EventTimestamp")
                stamp = float(at) if isinstance(at, (int, float)) else left[0].end
                best = left[0] if in_order else min(left, key=lambda i: abs(i.end - stamp))
                left.remove(best)
                # on the service's clock (the modelled one under --skip-time): it ended at the event
                end = stamp if isinstance(at, (int, float)) else best.end
                details: Dict[str, Any] = {"StartTimestamp": end - (best.end - best.start), "EndTimestamp": end,
                                           "RequestId": best.request_id}
                if best.error:
                    details["Error"] = {"Payload": best.error, "Truncated": False}
                event["InvocationCompletedDetails"] = details
            elif kind == "CallbackStarted" and isinstance(event.get("CallbackStartedDetails"), dict):
                options = self.callbacks.get(runner_arn, {}).get(op, {})
                for key, name in (("TimeoutSeconds", "Timeout"), ("HeartbeatTimeoutSeconds", "HeartbeatTimeout")):
                    if isinstance(options.get(key), int) and options[key] > 0:
                        event["CallbackStartedDetails"].setdefault(name, options[key])
            elif kind == "ChainedInvokeStarted" and isinstance(event.get("ChainedInvokeStartedDetails"), dict):
                event["ChainedInvokeStartedDetails"].setdefault("ExecutedVersion", "$LATEST")
            elif kind in ("StepFailed", "StepStarted") or (kind == "StepSucceeded"):
                for value in event.values():
                    retry = value.get("RetryDetails") if isinstance(value, dict) else None
                    if isinstance(retry, dict) and isinstance(retry.get("CurrentAttempt"), int):
                        attempts[op] = max(attempts.get(op, 0), retry["CurrentAttempt"])
                succeeded = event.get("StepSucceededDetails")
                if kind == "StepSucceeded" and isinstance(succeeded, dict) and op in attempts and "RetryDetails" not in succeeded:
                    succeeded["RetryDetails"] = {"CurrentAttempt": attempts[op] + 1}
                result = succeeded.get("Result") if isinstance(succeeded, dict) else None
                if kind == "StepSucceeded" and isinstance(succeeded, dict) and states.get(op) and (
                        not isinstance(result, dict) or "Payload" not in result):
                    # a wait_for_condition's intermediate state, checkpointed as a RETRY with a payload
                    state = states[op].pop(0)
                    if with_data:
                        succeeded["Result"] = dict(result or {}, Payload=state, Truncated=False)

    # ------------------------------------------------------------------ the runner

    async def call(self, method: str, path: str, body: bytes = b"", headers: Optional[Dict[str, str]] = None,
                   timeout: float = 60.0) -> Tuple[int, bytes]:
        """One request to the runner (blocking ``http.client`` on a worker thread: the
        runner is on loopback and answers at once)."""
        host, _, port = self.runner_base[len("http://"):].partition(":")

        def run() -> Tuple[int, bytes]:
            conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
            try:
                conn.request(method, path, body=body or None, headers=headers or {})
                resp = conn.getresponse()
                return resp.status, resp.read()
            finally:
                conn.close()

        try:
            return await asyncio.get_running_loop().run_in_executor(None, run)
        except (OSError, http.client.HTTPException) as exc:
            return 503, json.dumps({"Type": "ServiceException", "Message": "durable execution service unreachable: %s" % exc}).encode()

    async def _answer(self, status: int, body: bytes) -> Answer:
        """The runner's answer as Lambda's (ARNs, error shape)."""
        try:
            obj = json.loads(body) if body.strip() else {}
        except ValueError:
            obj = None
        if status >= 400:
            if not isinstance(obj, dict):
                return error(500, "ServiceException", "durable execution service: %s" % body[:200].decode("utf-8", "replace"))
            name = str(obj.get("Type") or ("ExecutionAlreadyStartedException" if "DurableExecutionArn" in obj else "ServiceException"))
            name = _ERROR_NAMES.get(name, name)
            message = str(obj.get("message") or obj.get("Message") or name)
            answer = error(status, name, message)
            if status == 408:  # CallbackTimeoutException: Lambda says 400
                answer = error(400, name, message)
            return answer
        if obj is None:
            return Answer(status, body, [("Content-Type", "application/json")])
        return Answer(200 if status in (200, 201) else status, json.dumps(await self._rewrite(obj)).encode(),
                      [("Content-Type", "application/json")])

    # ------------------------------------------------------------------ the API routes

    async def handle(self, method: str, path: str, query: str, body: bytes, content_type: Optional[str],
                     function_name: Optional[str]) -> Answer:
        """A request under ``/2025-12-01/``. ``function_name`` is the served function a
        ``/functions/{name}/`` path names (the caller found it, or answered 404)."""
        parts = path.split("/")  # ['', '2025-12-01', kind, id, (action)]
        if len(parts) < 4 or parts[1] != "2025-12-01":
            return error(404, "ResourceNotFoundException", "No route for %s %s" % (method, path[:200]))
        kind, ident, action = parts[2], unquote(parts[3]), parts[4] if len(parts) > 4 else ""
        forward = {"Content-Type": content_type or "application/json"}
        target: Optional[str] = None
        runner: Optional[str] = None
        if kind == "durable-executions" and len(parts) <= 5:
            allowed = {"": ("GET",), "history": ("GET",), "state": ("GET",), "checkpoint": ("POST",), "stop": ("POST",)}
            if action not in allowed:
                return error(404, "ResourceNotFoundException", "No route for %s %s" % (method, path[:200]))
            if method not in allowed[action]:
                return error(405, "InvalidRequestContentException", "Use %s for this route" % allowed[action][0])
            match = LAMBDA_ARN.match(ident)
            if match is None:
                return error(400, "InvalidParameterValueException", "Invalid durable execution ARN: %r" % ident[:200])
            runner = self.runner_arn(ident)
            if runner is None or (match.group(1), match.group(2)) != (self.region, self.account):
                return error(404, "ResourceNotFoundException", "Durable execution not found: %s" % ident)
            if action == "checkpoint":
                checked = check_checkpoint(body)
                if checked is not None:
                    return error(400, "InvalidParameterValueException", checked)
                self._checkpointed(runner, body)
            target = "/2025-12-01/durable-executions/" + quote(runner, safe="") + ("/" + action if action else "")
        elif kind == "durable-execution-callbacks" and len(parts) == 5 and action in ("succeed", "fail", "heartbeat"):
            if method != "POST":
                return error(405, "InvalidRequestContentException", "Use POST for this route")
            if not CALLBACK_ID.match(ident) or len(ident) > 1024:
                return error(400, "InvalidParameterValueException", "Invalid callback id")
            target = "/2025-12-01/durable-execution-callbacks/%s/%s" % (quote(ident, safe=""), action)
        elif kind == "functions" and len(parts) == 5 and action == "durable-executions" and function_name:
            if method != "GET":
                return error(405, "InvalidRequestContentException", "Use GET for this route")
            target = "/2025-12-01/functions/%s/durable-executions" % quote(function_name, safe="")
            # the model's Statuses (repeated) is the runner's StatusFilter
            query = re.sub(r"(^|&)Statuses=", r"\1StatusFilter=", query)
        if target is None:
            return error(404, "ResourceNotFoundException", "No route for %s %s" % (method, path[:200]))
        if query:
            target += "?" + query
        status, answer = await self.call(method, target, body, forward)
        if action == "history" and status == 200 and runner is not None:
            try:
                history = json.loads(answer)
                self._complete_history(runner, history, "includeexecutiondata=true" in query.lower())
                answer = json.dumps(history).encode()
            except (ValueError, TypeError, AttributeError):
                pass
        if kind == "durable-execution-callbacks" and status == 404:
            # (the runner's message tells how it failed to decode the id: Lambda's says what)
            return error(404, "ResourceNotFoundException", "Callback not found: %s" % ident[:200])
        return await self._answer(status, answer)

    # ------------------------------------------------------------------ starting executions

    async def start(self, function: str, name: Optional[str], payload: bytes, wait: bool,
                    execution_timeout: int) -> Answer:
        """An Invoke of a durable function: start (or find) the execution, then answer as the
        invocation type asks (module docstring)."""
        if name is not None and not EXECUTION_NAME.match(name):
            return error(400, "InvalidParameterValueException",
                         "Invalid durable execution name %r: 1 to 64 letters, digits, - and _" % name[:100])
        try:
            json.loads(payload)
            text = payload.decode("utf-8")
        except (ValueError, RecursionError):
            return error(400, "InvalidRequestContentException", "Could not parse request body into json")
        async with self.lock:  # one name, one execution, even for invokes that overlap
            exec_name = name or str(uuid.uuid4())
            known = self.started.get((function, exec_name))
            if known is not None and known.payload != payload:
                return error(409, "DurableExecutionAlreadyStartedException",
                             "Durable execution %s already started with a different payload" % known.arn)
            if known is None:
                request = {
                    "AccountId": self.account, "FunctionName": function, "FunctionQualifier": "$LATEST",
                    "ExecutionName": exec_name, "ExecutionTimeoutSeconds": execution_timeout,
                    "ExecutionRetentionPeriodDays": 1, "Input": text,
                }
                status, body = await self.call("POST", "/start-durable-execution", json.dumps(request).encode(),
                                               {"Content-Type": "application/json"})
                if status not in (200, 201):
                    return await self._answer(status, body)
                runner = str(json.loads(body)["ExecutionArn"])
                arn = self.lambda_arn(function, exec_name, runner)
                self.arns[runner] = arn
                known = self.started[(function, exec_name)] = Started(arn, payload)
        headers = [("X-Amz-Durable-Execution-Arn", known.arn), ("X-Amz-Executed-Version", "$LATEST")]
        if not wait:
            return Answer(202, b"", headers)
        return await self._result(known.arn, min(float(execution_timeout), MAX_SYNC_WAIT), headers)

    async def _result(self, arn: str, limit: float, headers: List[Tuple[str, str]]) -> Answer:
        """Wait for the execution to end (polling: the runner has no way to say so) and
        answer with its result, or its error as a function error."""
        runner = self.runner_arn(arn)
        assert runner is not None
        path = "/2025-12-01/durable-executions/" + quote(runner, safe="")
        end = time.monotonic() + limit
        pause = 0.02
        while True:
            status, body = await self.call("GET", path)
            if status != 200:
                return await self._answer(status, body)
            obj = json.loads(body)
            state = obj.get("Status")
            if state in _ENDED:
                break
            if time.monotonic() >= end:
                message = "the durable execution did not end within the %g s a synchronous invoke may wait" % limit
                data = json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": message}).encode()
                return Answer(200, data, headers + [("Content-Type", "application/json"), ("X-Amz-Function-Error", "Unhandled")])
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.25)
        if state == "SUCCEEDED":
            result = obj.get("Result")
            return Answer(200, (result if result is not None else "null").encode(), headers + [("Content-Type", "application/json")])
        err = obj.get("Error") or {}
        failure: Dict[str, Any] = {"errorType": err.get("ErrorType") or state,
                                   "errorMessage": err.get("ErrorMessage") or "Durable execution %s" % state.lower()}
        if err.get("StackTrace"):
            failure["stackTrace"] = err["StackTrace"]
        return Answer(200, json.dumps(failure).encode(), headers + [("Content-Type", "application/json"), ("X-Amz-Function-Error", "Unhandled")])


def _suspend_first(events: List[Any], skip_time: bool) -> None:
    """Put the end of an invocation before the end of what it suspended on, as Lambda records
    them. Under ``--skip-time`` the service ends a wait at once, before it records the end of
    the invocation that suspended on it; and it invokes a chained invoke's target as soon as
    the start is checkpointed, so a fast one may end before the invocation that started it is
    recorded as ended. Such a ``WaitSucceeded`` (under ``--skip-time``), or a
    ``ChainedInvokeSucceeded``/``Failed`` started in the same invocation, directly followed by
    an ``InvocationCompleted`` is put back after it (EventIds exchanged, so they stay in
    sequence); the invocation is dated when the wait began, or takes the earlier timestamp."""
    began: Dict[str, Any] = {}  # start timestamp by operation Id, since the last InvocationCompleted
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            continue
        kind = event.get("EventType")
        op = str(event.get("Id"))
        if kind == "InvocationCompleted":
            began = {}
        elif kind in ("WaitStarted", "ChainedInvokeStarted"):
            began[op] = event.get("EventTimestamp")
        nxt = events[i + 1] if i + 1 < len(events) else None
        if not (isinstance(nxt, dict) and nxt.get("EventType") == "InvocationCompleted" and op in began):
            continue
        if kind == "WaitSucceeded" and skip_time:
            stamp = began[op]
        elif kind in ("ChainedInvokeSucceeded", "ChainedInvokeFailed"):
            stamp = event.get("EventTimestamp")
            event["EventTimestamp"] = nxt.get("EventTimestamp")
        else:
            continue
        event["EventId"], nxt["EventId"] = nxt.get("EventId"), event.get("EventId")
        if isinstance(stamp, (int, float)):
            nxt["EventTimestamp"] = stamp
        events[i], events[i + 1] = nxt, event
        began = {}


def check_checkpoint(body: bytes) -> Optional[str]:
    """Why a CheckpointDurableExecution body is malformed (None: its shape is the model's;
    the runner checks what the operations mean)."""
    try:
        obj = json.loads(body) if body else None
    except (ValueError, RecursionError):
        return "Could not parse request body into json"
    if not isinstance(obj, dict):
        return "The checkpoint request must be a JSON object"
    token = obj.get("CheckpointToken")
    if not isinstance(token, str) or not token or len(token) > 2048:
        return "CheckpointToken is required: a string of 1 to 2048 characters"
    updates = obj.get("Updates", [])
    if not isinstance(updates, list) or not all(isinstance(u, dict) for u in updates):
        return "Updates must be a list of operation updates"
    for update in updates:
        for key in ("Id", "Type", "Action"):
            if not isinstance(update.get(key), str) or not update[key]:
                return "Each operation update needs %s (a string)" % key
    return None
