"""``lambdaric executions``: a readable view of durable executions through the Lambda API.

Lists a function's executions, shows one, prints its history as a timeline, sends callbacks
and stops executions, against an emulator started with ``--durable`` (or anything answering
the durable routes). ``--json`` prints the API's answer instead.

Built on boto3's Lambda client, not on ``requests`` like ``lambdaric invoke``: the durable
routes carry ARNs in URL paths, timestamps, binary callback bodies and typed errors, and
botocore's service model encodes and decodes every one of them exactly as the real clients
(the SDK inside the function, the AWS CLI) do; hand-written requests would be a second,
drifting copy of that model. boto3 is no dependency of lambdaric (the runtime never needs
it): without it the command says how to get it. Credentials are always dummies, so a view
meant for the emulator never signs anything for AWS.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple

from .invoke import read_event

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
DEFAULT_FUNCTION = "function"

#: Event types that end an operation begun by a ``...Started`` event of the same Id.
_ENDINGS = ("Succeeded", "Failed", "TimedOut", "Stopped", "Cancelled")


class Failure(Exception):
    """A request that failed: its one-line reason and the exit status to end with."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--endpoint-url", default=argparse.SUPPRESS,
                        help="the emulator's URL (default: %s)" % DEFAULT_ENDPOINT)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the API's answer as JSON")
    common.add_argument("--function", default=argparse.SUPPRESS,
                        help="the function whose execution NAME is (default: %s)" % DEFAULT_FUNCTION)
    p = argparse.ArgumentParser(prog="lambdaric executions", parents=[common],
                                description="Durable executions of a local emulator (--durable): list, show, history, callbacks, stop.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    ls = sub.add_parser("list", parents=[common], help="a function's executions, newest first")
    ls.add_argument("target_function", nargs="?", metavar="FUNCTION", help="the function (default: %s)" % DEFAULT_FUNCTION)
    ls.add_argument("--status", action="append", choices=["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"],
                    help="only executions in this status (repeatable)")
    for name, text in (("show", "status, input, result or error"), ("history", "the event history as a timeline"),
                       ("stop", "stop a running execution")):
        one = sub.add_parser(name, parents=[common], help=text)
        one.add_argument("execution", metavar="ARN|NAME", help="the execution's ARN, or its name (see --function)")
        if name == "stop":
            one.add_argument("--error-type", help="ErrorType recorded for the stop")
            one.add_argument("--error-message", help="ErrorMessage recorded for the stop")
    cb = sub.add_parser("callback", parents=[common], help="complete a callback, or send it a heartbeat")
    cb.add_argument("outcome", choices=["success", "failure", "heartbeat"])
    cb.add_argument("callback_id", metavar="CALLBACK_ID")
    cb.add_argument("--result", help="success: the result, sent as given (the SDK hands it to the handler as a string unless "
                    "the callback has a serdes): inline, @file, or - for stdin")
    cb.add_argument("--error-type", help="failure: ErrorType")
    cb.add_argument("--error-message", help="failure: ErrorMessage")
    cb.add_argument("--error-data", help="failure: ErrorData")
    return p


def lambda_client(endpoint: str) -> Any:
    """boto3's Lambda client for ``endpoint``, with dummy credentials and no retries (a
    retried StopDurableExecution or callback would hide what the first attempt answered)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise Failure("lambdaric executions needs boto3 (pip install boto3): %s" % exc, 2) from None
    return boto3.client(
        "lambda", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="lambdaric", aws_secret_access_key="lambdaric", aws_session_token=None,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60),
    )


def call(client: Any, operation: str, **params: Any) -> Dict[str, Any]:
    """One API call; its error as :class:`Failure` in one line (the error code and message
    Lambda sent, or why the endpoint could not be reached)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer: Dict[str, Any] = getattr(client, operation)(**params)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        raise Failure("%s (%s): %s" % (err.get("Code") or "error", status, err.get("Message") or exc)) from None
    except BotoCoreError as exc:
        raise Failure(str(exc), 2) from None
    answer.pop("ResponseMetadata", None)
    return answer


def pages(client: Any, operation: str, key: str, **params: Any) -> Iterator[Dict[str, Any]]:
    """Every item of a paginated answer (``NextMarker`` in, ``Marker`` out)."""
    while True:
        answer = call(client, operation, **params)
        yield from answer.get(key) or []
        marker = answer.get("NextMarker")
        if not marker:
            return
        params["Marker"] = marker


def resolve(client: Any, execution: str, function: str) -> str:
    """The ARN of ``execution``: given as an ARN, or the name of one of ``function``'s."""
    if execution.startswith("arn:"):
        return execution
    found = [e["DurableExecutionArn"] for e in pages(client, "list_durable_executions_by_function", "DurableExecutions",
                                                      FunctionName=function, DurableExecutionName=execution)
             if e.get("DurableExecutionName") == execution]
    if not found:
        raise Failure("no durable execution named %r for function %r (give its ARN, or --function)" % (execution, function))
    return str(found[0])


# ---- formatting


def utc(value: Any) -> Optional[datetime.datetime]:
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc) if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    return None


def clock(value: Any) -> str:
    when = utc(value)
    return when.strftime("%Y-%m-%d %H:%M:%S") + ".%03dZ" % (when.microsecond // 1000) if when else "-"


def seconds(value: float) -> str:
    """A duration for reading: 850ms, 2.5s, 4m05s, 6h00m, 3d04h."""
    if value < 1:
        return "%dms" % round(value * 1000)
    if value < 60:
        return ("%.1fs" % value).replace(".0s", "s")
    minutes, secs = divmod(int(round(value)), 60)
    if minutes < 60:
        return "%dm%02ds" % (minutes, secs)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return "%dh%02dm" % (hours, minutes)
    return "%dd%02dh" % divmod(hours, 24)


def between(start: Any, end: Any) -> str:
    a, b = utc(start), utc(end)
    return seconds((b - a).total_seconds()) if a and b else ""


def short(text: Any, limit: int = 80) -> str:
    text = text if isinstance(text, str) else json.dumps(text)
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_text(error: Any) -> str:
    """``ErrorType: message`` of an ErrorObject (or of an EventError's Payload)."""
    if not isinstance(error, dict):
        return ""
    error = error.get("Payload", error)
    kind, message = error.get("ErrorType") or "Error", error.get("ErrorMessage") or ""
    return "%s: %s" % (kind, message) if message else kind


def table(rows: List[Tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n" for row in rows)


def list_text(executions: List[Dict[str, Any]]) -> str:
    if not executions:
        return "no durable executions\n"
    rows: List[Tuple[str, ...]] = [("NAME", "STATUS", "STARTED", "ENDED", "DURATION")]
    for e in executions:
        end = e.get("EndTimestamp")
        rows.append((str(e.get("DurableExecutionName", "")), str(e.get("Status", "")), clock(e.get("StartTimestamp")),
                     clock(end) if end else "-", between(e.get("StartTimestamp"), end) if end else "running"))
    return table(rows)


def show_text(e: Dict[str, Any]) -> str:
    lines = [("execution", e.get("DurableExecutionName", "")), ("arn", e.get("DurableExecutionArn", "")),
             ("function", e.get("FunctionArn", "")), ("status", e.get("Status", "")),
             ("started", clock(e.get("StartTimestamp")))]
    if e.get("EndTimestamp"):
        lines += [("ended", clock(e.get("EndTimestamp"))), ("duration", between(e.get("StartTimestamp"), e.get("EndTimestamp")))]
    if "InputPayload" in e:
        lines.append(("input", e["InputPayload"]))
    if "Result" in e:
        lines.append(("result", e["Result"]))
    if e.get("Error"):
        lines.append(("error", error_text(e["Error"])))
        trace = e["Error"].get("StackTrace") or []
        lines += [("", "  " + str(frame)) for frame in trace]
    return "".join(("%-9s %s" % (k, v)).rstrip() + "\n" for k, v in lines)


def details_of(event: Dict[str, Any]) -> Dict[str, Any]:
    kind = str(event.get("EventType", ""))
    found = event.get(kind + "Details")
    return found if isinstance(found, dict) else {}


def event_note(event: Dict[str, Any], started: Dict[str, Any]) -> str:
    """What one event says beyond its type: durations, results, errors, retries, callbacks."""
    kind = str(event.get("EventType", ""))
    d = details_of(event)
    notes: List[str] = []
    if kind.endswith(_ENDINGS) and event.get("Id") in started and not kind.startswith("Execution"):
        notes.append("after " + between(started[event["Id"]], event.get("EventTimestamp")))
    if "Duration" in d and kind == "WaitStarted":
        notes.append("wait %s" % seconds(float(d["Duration"])))
        if d.get("ScheduledEndTimestamp"):
            notes.append("until %s" % clock(d["ScheduledEndTimestamp"]))
    if kind == "InvocationCompleted":
        if d.get("StartTimestamp") and d.get("EndTimestamp"):
            notes.append("invocation %s" % between(d["StartTimestamp"], d["EndTimestamp"]))
        if d.get("RequestId"):
            notes.append("request %s" % d["RequestId"])
        if d.get("Error"):
            notes.append(error_text(d["Error"]))
    if kind == "ExecutionStarted":
        notes.append("input %s" % short((d.get("Input") or {}).get("Payload", "")))
        if d.get("ExecutionTimeout"):
            notes.append("timeout %s" % seconds(float(d["ExecutionTimeout"])))
    if kind == "CallbackStarted":
        notes.append("callback id %s" % d.get("CallbackId", ""))
        for key, label in (("Timeout", "timeout"), ("HeartbeatTimeout", "heartbeat timeout")):
            if d.get(key):
                notes.append("%s %s" % (label, seconds(float(d[key]))))
    if kind == "ChainedInvokeStarted":
        notes.append("-> %s" % d.get("FunctionName", ""))
    retry = d.get("RetryDetails") or {}
    if retry.get("CurrentAttempt") is not None:
        notes.append("attempt %s" % retry["CurrentAttempt"])
    if retry.get("NextAttemptDelaySeconds") is not None:
        notes.append("retry in %s" % seconds(float(retry["NextAttemptDelaySeconds"])))
    result = d.get("Result")
    if isinstance(result, dict) and "Payload" in result:
        notes.append("result %s" % short(result["Payload"]))
    if d.get("Error") and kind != "InvocationCompleted":
        notes.append(error_text(d["Error"]))
    return "  ".join(n for n in notes if n)


def history_text(events: List[Dict[str, Any]]) -> str:
    """One line per event: time since the first event (the modelled time when the emulator
    skips time), the event, the operation's kind and name, and what it says."""
    if not events:
        return "no events\n"
    first = utc(events[0].get("EventTimestamp"))
    started: Dict[str, Any] = {}
    rows: List[Tuple[str, ...]] = []
    for event in events:
        when = utc(event.get("EventTimestamp"))
        offset = "+" + seconds((when - first).total_seconds()) if when and first else "?"
        if str(event.get("EventType", "")).endswith("Started") and event.get("Id"):
            started[event["Id"]] = event.get("EventTimestamp")  # this attempt's start (a retried step has several)
        name = event.get("Name") or (("#" + str(event["Id"])[:8]) if event.get("Id") else "")
        rows.append((offset, str(event.get("EventType", "")), str(event.get("SubType") or ""), str(name),
                     event_note(event, started)))
    return table(rows)


# ---- commands


def error_object(args: argparse.Namespace) -> Dict[str, Any]:
    fields = (("ErrorType", "error_type"), ("ErrorMessage", "error_message"), ("ErrorData", "error_data"))
    return {key: getattr(args, attr) for key, attr in fields if getattr(args, attr, None) is not None}


def run(args: argparse.Namespace, out: IO[str]) -> int:
    client = lambda_client(args.endpoint_url)
    function = args.function
    as_json = args.json
    answer: Any
    if args.command == "list":
        params: Dict[str, Any] = {"FunctionName": args.target_function or function}
        if args.status:
            params["Statuses"] = args.status
        executions = list(pages(client, "list_durable_executions_by_function", "DurableExecutions", **params))
        if args.status:  # again here: AWS's runner (the emulator's durable service) ignores Statuses
            executions = [e for e in executions if e.get("Status") in args.status]
        executions.sort(key=lambda e: utc(e.get("StartTimestamp")) or datetime.datetime.min.replace(tzinfo=datetime.timezone.utc),
                        reverse=True)
        answer, text = {"DurableExecutions": executions}, list_text(executions)
    elif args.command == "show":
        answer = call(client, "get_durable_execution", DurableExecutionArn=resolve(client, args.execution, function))
        text = show_text(answer)
    elif args.command == "history":
        events = list(pages(client, "get_durable_execution_history", "Events",
                            DurableExecutionArn=resolve(client, args.execution, function), IncludeExecutionData=True))
        answer, text = {"Events": events}, history_text(events)
    elif args.command == "stop":
        params = {"DurableExecutionArn": resolve(client, args.execution, function)}
        if error_object(args):
            params["Error"] = error_object(args)
        answer = call(client, "stop_durable_execution", **params)
        text = "stopped %s at %s\n" % (params["DurableExecutionArn"], clock(answer.get("StopTimestamp")))
    else:
        answer, text = callback(client, args)
    out.write(json.dumps(answer, indent=2, default=str) + "\n" if as_json else text)
    return 0


def callback(client: Any, args: argparse.Namespace) -> Tuple[Dict[str, Any], str]:
    if args.outcome == "success":
        params: Dict[str, Any] = {"CallbackId": args.callback_id}
        if args.result is not None:
            params["Result"] = read_event(args.result)
        return call(client, "send_durable_execution_callback_success", **params), "callback %s: success sent\n" % args.callback_id
    if args.outcome == "failure":
        params = {"CallbackId": args.callback_id}
        if error_object(args):
            params["Error"] = error_object(args)
        return call(client, "send_durable_execution_callback_failure", **params), "callback %s: failure sent\n" % args.callback_id
    answer = call(client, "send_durable_execution_callback_heartbeat", CallbackId=args.callback_id)
    return answer, "callback %s: heartbeat sent\n" % args.callback_id


def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    for name, default in (("endpoint_url", DEFAULT_ENDPOINT), ("json", False), ("function", DEFAULT_FUNCTION)):
        if not hasattr(args, name):
            setattr(args, name, default)
    try:
        return run(args, sys.stdout)
    except Failure as exc:
        sys.stderr.write("lambdaric executions: %s\n" % exc)
        return exc.status
    except OSError as exc:  # a --result @file that cannot be read
        sys.stderr.write("lambdaric executions: %s\n" % exc)
        return 2
