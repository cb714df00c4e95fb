"""Run AWS's durable-execution conformance requirements against lambdaric's emulator.

The oracle is ``aws-durable-execution-conformance-tests`` (Apache-2.0, installed from PyPI, never
copied here): its requirement files (expected event histories and results) and its own
validator (``PollingValidator``: polls GetDurableExecutionHistory, sends the requirement's
callbacks with boto3, matches the history with its ``EventHistoryMatcher`` and checks
GetDurableExecution's status and result). It deploys with SAM to AWS; here the function is
served instead by a real ``python -m lambdaric --durable`` on loopback, every requirement's
handler (handlers.py, written for this harness with the real SDK) a function of its own, and
invoked as its invoker does: ``Invoke`` with ``Qualifier=$LATEST``, RequestResponse or, for
``AsyncInvoke`` requirements, Event.

Two emulators: requirements with long retry delays or waits (a minute, an hour) run with
``--skip-time`` (they end at once; the history keeps the modelled durations, which the
requirements check); those with waits of a second or two and the callback ones in real time
(a heartbeat that resets a 10 s heartbeat timeout needs time to pass as it does on Lambda).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))

#: requirement id -> the emulator it runs on ("skip": --skip-time, "real": real time).
REQUIREMENTS: Dict[str, str] = {
    **{"1-%d" % n: "skip" for n in (1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16, 19, 20)},
    **{"1-%d" % n: "real" for n in (8, 9, 10)},
    **{"2-%d" % n: "real" for n in (1, 2, 3)}, "2-4": "skip", "2-5": "skip",
    **{"3-%d" % n: "skip" for n in (1, 2, 3, 4, 5, 6, 15, 16)},
    **{"3-%d" % n: "real" for n in (9, 10, 13)},
    "4-1": "real", "4-2": "real", "4-3": "skip", "4-4": "skip", "4-5": "real", "4-6": "real",
    **{"5-%d" % n: "real" for n in (1, 2, 3, 4, 5, 6, 11, 12, 14)},
    **{"6-%d" % n: "skip" for n in (1, 2, 3, 4, 5)},
    **{"7-%d" % n: "real" for n in (1, 2, 3, 4)},
    **{"8-%d" % n: "skip" for n in (1, 2, 3, 4, 5)},
    **{"9-%d" % n: "skip" for n in (1, 2, 3, 4)},
}


#: Mismatches found and understood: (requirements it may concern (None: any), pattern of the
#: validator's error, whose it is and why); any other error fails the requirement's test. None is
#: left: what AWS's runner (aws-durable-execution-sdk-python-testing) leaves out of its history,
#: found here (no InvocationCompletedDetails, no RetryDetails on a step that succeeded after
#: retries, no Timeout/HeartbeatTimeout on CallbackStarted, no ExecutedVersion on
#: ChainedInvokeStarted, no state on a wait_for_condition's intermediate StepSucceeded, and under
#: --skip-time a skipped wait's WaitSucceeded before the InvocationCompleted of the invocation
#: that waited), the emulator now fills in or puts in order; a regression fails.
KNOWN_MISMATCHES: List[Tuple[Optional[FrozenSet[str]], str, str]] = []


INVOKES = frozenset(rid for rid in REQUIREMENTS if rid.startswith("5-"))
#: The chained invoke's end recorded before the end of the invocation that started it, and what
#: follows from it in the matcher's errors (the two events swapped), accepted only together.
SWAPPED = r"EventType: expected 'InvocationCompleted', got 'ChainedInvoke(Succeeded|Failed)'$"
SWAP_FOLLOWS = [r"EventType: expected 'ChainedInvoke(Succeeded|Failed)', got 'InvocationCompleted'$",
                r"\]\.(Id|ChainedInvoke(Succeeded|Failed)Details): key missing in actual event$",
                r"\]\.InvocationCompletedDetails: key missing in actual event$"]
SWAP_WHOSE = ("emulator (its durable service, AWS's runner): now and then a fast chained invoke's ChainedInvokeSucceeded/"
              "Failed is recorded before the InvocationCompleted of the invocation that started it (the runner invokes "
              "the target as soon as the start is checkpointed; Lambda's history ends the suspended invocation first)")


def known_mismatches(rid: str, errors: List[str]) -> Tuple[List[str], List[str]]:
    """The validator's ``errors`` split: (unknown ones, whose the known ones are)."""
    unknown: List[str] = []
    whose: List[str] = []
    swapped = rid in INVOKES and any(re.search(SWAPPED, e) for e in errors)
    for error in errors:
        found = next((w for rids, pattern, w in KNOWN_MISMATCHES
                      if (rids is None or rid in rids) and re.search(pattern, error)), None)
        if found is None and swapped and any(re.search(p, error) for p in [SWAPPED] + SWAP_FOLLOWS):
            found = SWAP_WHOSE
        if found is None:
            unknown.append(error)
        elif found not in whose:
            whose.append(found)
    return unknown, whose


def function_name(rid: str) -> str:
    return "r" + rid


def handler_name(rid: str) -> str:
    return "handlers.r" + rid.replace("-", "_")


def functions_file(mode: str) -> str:
    """The emulator's --functions file: every requirement of ``mode`` as a durable function."""
    functions = {function_name(rid): {"handler": handler_name(rid), "durable": True, "timeout": 60}
                 for rid, m in REQUIREMENTS.items() if m == mode}
    if mode == "real":  # the targets of the chained invokes (5-*)
        functions["echo"] = {"handler": "handlers.target_echo", "durable": True, "timeout": 60}
        functions["error"] = {"handler": "handlers.target_error", "durable": True, "timeout": 60}
    return json.dumps({"functions": functions})


def handlers_source() -> str:
    with open(os.path.join(HERE, "handlers.py"), encoding="utf-8") as f:
        return f.read()


def requirement(rid: str) -> Dict[str, Any]:
    """The requirement file ``rid`` as the conformance package ships it."""
    import yaml
    from aws_durable_execution_conformance_tests.config import TESTS_DIR

    found = sorted(TESTS_DIR.rglob("%s.yaml" % rid))
    if not found:
        raise LookupError("requirement %s is not in %s" % (rid, TESTS_DIR))
    with open(found[0], encoding="utf-8") as f:
        data: Dict[str, Any] = yaml.safe_load(f)
    return data


@dataclass
class Outcome:
    rid: str
    passed: bool
    errors: List[str] = field(default_factory=list)
    arn: Optional[str] = None
    events: List[Dict[str, Any]] = field(default_factory=list)

    def report(self) -> str:
        history = "\n".join("  %s" % json.dumps(e, default=str) for e in self.events)
        return "%s: %s\n%s\nhistory:\n%s" % (self.rid, self.arn, "\n".join(self.errors), history)


def run_requirement(rid: str, client: Any, poll: float = 0.1, no_progress: float = 30.0) -> Outcome:
    """Invoke requirement ``rid``'s function on the emulator ``client`` points at, then let the
    conformance package's validator judge the execution."""
    from aws_durable_execution_conformance_tests.callback import CallbackAction
    from aws_durable_execution_conformance_tests.validate import AsyncValidationConfig, PollingValidator
    from aws_durable_execution_conformance_tests.variables import PlaceholderContext

    data = requirement(rid)
    context = PlaceholderContext()
    context.resolve_variables(data.get("Variables"))
    is_async = bool(data.get("AsyncInvoke", False))
    answer = client.invoke(FunctionName=function_name(rid), InvocationType="Event" if is_async else "RequestResponse",
                           Qualifier="$LATEST", Payload=json.dumps(context.substitute(data.get("Input"))).encode())
    body = answer["Payload"].read()
    arn = answer.get("DurableExecutionArn")
    if not arn:
        return Outcome(rid, False, ["no DurableExecutionArn in the Invoke answer (%s): %r" % (answer.get("StatusCode"), body[:300])])
    errors: List[str] = []
    if not is_async:
        # A RequestResponse invoke of a durable function answers once the execution ended
        # (the conformance runner reads the history right after it, without polling).
        status = client.get_durable_execution(DurableExecutionArn=arn)["Status"]
        if status == "RUNNING":
            errors.append("the RequestResponse invoke answered while the execution was still RUNNING")
    actions = [CallbackAction.from_dict(raw) for raw in data.get("CallbackActions", [])]
    validator = PollingValidator(lambda_client=client, context=context,
                                 config=AsyncValidationConfig(poll_interval_seconds=poll, no_progress_timeout_seconds=no_progress))
    result = validator.validate(execution_arn=arn, expected_events=data.get("ExpectedExecutionHistory", []),
                                expected_result=data.get("ExpectedResult"), callback_actions=actions)
    errors += result.errors
    # The validator stops at a history mismatch before it checks the status and result: check
    # them here too, so a known history mismatch cannot hide a wrong result.
    errors += result_errors(client.get_durable_execution(DurableExecutionArn=arn), data.get("ExpectedResult"), context)
    events = client.get_durable_execution_history(DurableExecutionArn=arn, IncludeExecutionData=True).get("Events", [])
    return Outcome(rid, not errors, sorted(set(errors), key=errors.index), arn, events)


def result_errors(execution: Dict[str, Any], expected: Optional[Dict[str, Any]], context: Any) -> List[str]:
    """The requirement's ExpectedResult against GetDurableExecution's answer, by the rules its
    README gives: the status always, the result (decoded once from JSON) when it succeeded."""
    if not expected:
        return []
    if expected.get("ExecutionStatus") and execution.get("Status") != expected["ExecutionStatus"]:
        return ["Expected ExecutionStatus=%r, got %r" % (expected["ExecutionStatus"], execution.get("Status"))]
    if execution.get("Status") != "SUCCEEDED" or "Result" not in expected:
        return []
    raw = execution.get("Result")
    try:
        actual = json.loads(raw) if raw is not None else None
    except ValueError:
        actual = raw
    wanted = context.substitute(expected["Result"])
    return [] if actual == wanted else ["Expected Result=%r, got %r" % (wanted, actual)]
