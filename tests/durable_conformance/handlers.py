"""Durable handlers, one per conformance requirement (``r<suite>_<n>`` serves requirement
``<suite>-<n>`` of aws-durable-execution-conformance-tests), written for this harness with the
real AWS Durable Execution SDK for Python from each requirement's ``handler`` and
``invocations`` text. Each is served as its own function by one emulator (harness.py).
"""
from __future__ import annotations

from typing import Any, List

from aws_durable_execution_sdk_python.config import (
    CallbackConfig,
    Duration,
    JitterStrategy,
    MapConfig,
    ParallelBranch,
    ParallelConfig,
    StepConfig,
)
from aws_durable_execution_sdk_python.context import DurableContext, StepContext, durable_step, durable_with_child_context
from aws_durable_execution_sdk_python.execution import durable_execution
from aws_durable_execution_sdk_python.retries import RetryPresets, RetryStrategyConfig, create_retry_strategy
from aws_durable_execution_sdk_python.serdes import SerDes, SerDesContext

NO_RETRY = StepConfig(retry_strategy=RetryPresets.none())


def retrying(**kwargs: Any) -> StepConfig:
    return StepConfig(retry_strategy=create_retry_strategy(RetryStrategyConfig(**kwargs)))


@durable_step
def echo(_: StepContext, value: Any) -> Any:
    return value


@durable_step
def fail(_: StepContext, message: str = "Something went wrong") -> Any:
    raise RuntimeError(message)


@durable_step
def fail_before(step: StepContext, attempt: int, result: str) -> str:
    """Fails until the step's durable attempt counter (1-based) reaches ``attempt``."""
    if step.attempt < attempt:
        raise RuntimeError("Attempt %d failed" % step.attempt)
    return result


# ---- 1: steps


@durable_execution
def r1_1(event: Any, context: DurableContext) -> str:
    return context.step(echo("Hello, %s!" % event))


@durable_execution
def r1_2(event: Any, context: DurableContext) -> str:
    return context.step(echo("Hello, %s!" % event), name="custom_step_name")


@durable_execution
def r1_3(event: Any, context: DurableContext) -> str:
    first = context.step(echo("first"))
    return context.step(echo(first + "_second"))


@durable_execution
def r1_4(event: Any, context: DurableContext) -> dict:
    return context.step(echo({"user": {"name": event["name"], "tags": event["tags"]}, "count": len(event["tags"])}))


@durable_execution
def r1_5(event: Any, context: DurableContext) -> None:
    return context.step(echo(None))


class Upper(SerDes[str]):
    """Upper-cases a string as it is checkpointed (so the replayed value is upper-case)."""

    def serialize(self, value: str, _: SerDesContext) -> str:
        return value.upper()

    def deserialize(self, data: str, _: SerDesContext) -> str:
        return data


@durable_execution
def r1_6(event: Any, context: DurableContext) -> str:
    return context.step(echo(event), config=StepConfig(serdes=Upper()))


@durable_execution
def r1_8(event: Any, context: DurableContext) -> str:
    result = context.step(echo("computed"))
    context.wait(Duration.from_seconds(2))
    return result


@durable_execution
def r1_9(event: Any, context: DurableContext) -> str:
    result = context.step(echo("cached_value"))
    context.wait(Duration.from_seconds(1))
    return result


@durable_execution
def r1_10(event: Any, context: DurableContext) -> str:
    try:
        context.step(fail(), config=NO_RETRY)
        message = "no error"
    except Exception as exc:
        message = str(exc)
    context.wait(Duration.from_seconds(1))
    return "caught: " + message


@durable_execution
def r1_11(event: Any, context: DurableContext) -> str:
    return context.step(fail_before(2, "Operation succeeded"), config=retrying(max_attempts=3, retryable_error_types=[RuntimeError]))


@durable_execution
def r1_12(event: Any, context: DurableContext) -> str:
    return context.step(fail("Always fails"), config=retrying(max_attempts=4, initial_delay=Duration.from_seconds(1),
                                                                  backoff_rate=1, jitter_strategy=JitterStrategy.NONE))


@durable_execution
def r1_13(event: Any, context: DurableContext) -> str:
    return context.step(fail_before(3, "recovered"))  # the SDK's default retry strategy


@durable_execution
def r1_14(event: Any, context: DurableContext) -> str:
    return context.step(fail_before(3, "finally succeeded"), config=retrying(
        max_attempts=5, initial_delay=Duration.from_seconds(2), backoff_rate=3, jitter_strategy=JitterStrategy.NONE))


class TransientError(Exception):
    pass


class ValidationFailure(Exception):
    pass


@durable_step
def transient_first(step: StepContext) -> str:
    if step.attempt < 2:
        raise TransientError("Temporary failure")
    return "recovered from transient"


@durable_step
def transient_always(_: StepContext) -> str:
    raise TransientError("transient failure")


@durable_execution
def r1_15(event: Any, context: DurableContext) -> str:
    return context.step(transient_first(), config=retrying(max_attempts=3, initial_delay=Duration.from_seconds(1),
                                                             retryable_error_types=[TransientError]))


@durable_execution
def r1_16(event: Any, context: DurableContext) -> str:
    return context.step(transient_always(), config=retrying(max_attempts=3, initial_delay=Duration.from_seconds(1),
                                                              retryable_error_types=[ValidationFailure]))


@durable_execution
def r1_19(event: Any, context: DurableContext) -> str:
    return context.step(fail(), config=NO_RETRY)


@durable_execution
def r1_20(event: Any, context: DurableContext) -> str:
    try:
        context.step(fail(), config=NO_RETRY)
    except Exception:
        pass
    return context.step(echo("fallback_result"))


# ---- 2: waits


@durable_execution
def r2_1(event: Any, context: DurableContext) -> str:
    context.wait(Duration.from_seconds(2))
    return "done"


@durable_execution
def r2_2(event: Any, context: DurableContext) -> str:
    context.wait(Duration.from_seconds(2), name="custom_wait_name")
    return "done"


@durable_execution
def r2_3(event: Any, context: DurableContext) -> dict:
    context.wait(Duration.from_seconds(2), name="wait-1")
    context.wait(Duration.from_seconds(2), name="wait-2")
    return {"completedWaits": 2}


@durable_execution
def r2_4(event: Any, context: DurableContext) -> str:
    context.wait(Duration.from_minutes(1))
    return "waited a minute"


@durable_execution
def r2_5(event: Any, context: DurableContext) -> str:
    context.wait(Duration.from_hours(1))
    return "waited an hour"


# ---- 3: child contexts


@durable_with_child_context
def child_echo(ctx: DurableContext, value: Any) -> Any:
    return ctx.step(echo(value))


@durable_with_child_context
def child_two_steps(ctx: DurableContext, value: Any) -> Any:
    return ctx.step(echo(ctx.step(echo(value))))


@durable_with_child_context
def child_failing(ctx: DurableContext) -> Any:
    return ctx.step(fail("Child step failed"), config=NO_RETRY)


@durable_with_child_context
def child_outer(ctx: DurableContext, value: Any) -> Any:
    ctx.step(echo(value))
    return ctx.run_in_child_context(child_echo(value), name="inner")


@durable_with_child_context
def child_step_and_wait(ctx: DurableContext, value: Any) -> Any:
    result = ctx.step(echo(value))
    ctx.wait(Duration.from_seconds(1))
    return result


@durable_with_child_context
def child_wait_only(ctx: DurableContext, value: Any) -> Any:
    ctx.wait(Duration.from_seconds(1))
    return value


@durable_with_child_context
def child_raises(ctx: DurableContext) -> Any:
    raise RuntimeError("child body failed")


@durable_with_child_context
def child_none(ctx: DurableContext) -> Any:
    return None


@durable_execution
def r3_1(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(child_echo(event))


@durable_execution
def r3_2(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(child_echo(event["value"]), name=event["name"])


@durable_execution
def r3_3(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(child_two_steps(event))


@durable_execution
def r3_4(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(child_failing())


@durable_execution
def r3_5(event: Any, context: DurableContext) -> Any:
    try:
        context.run_in_child_context(child_failing())
    except Exception:
        pass
    return context.step(echo(event))


@durable_execution
def r3_6(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(child_outer(event), name="outer")


@durable_execution
def r3_9(event: Any, context: DurableContext) -> Any:
    result = context.run_in_child_context(child_echo(event))
    context.wait(Duration.from_seconds(1))
    return result


@durable_execution
def r3_10(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(child_step_and_wait(event), name="step-and-wait")


@durable_execution
def r3_13(event: Any, context: DurableContext) -> Any:
    context.run_in_child_context(child_wait_only(event), name="wait-only")
    return context.step(echo(event))


@durable_execution
def r3_15(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(child_raises(), name="raises")


@durable_execution
def r3_16(event: Any, context: DurableContext) -> Any:
    return context.run_in_child_context(child_none())


# ---- 4: callbacks (the harness completes them with boto3, as the requirement's CallbackActions say)


@durable_execution
def r4_1(event: Any, context: DurableContext) -> Any:
    return context.create_callback(name=event).result()


@durable_execution
def r4_2(event: Any, context: DurableContext) -> Any:
    return context.create_callback(name="approval").result()


@durable_execution
def r4_3(event: Any, context: DurableContext) -> Any:
    return context.create_callback(name=event, config=CallbackConfig(timeout=Duration.from_seconds(5))).result()


@durable_execution
def r4_4(event: Any, context: DurableContext) -> Any:
    return context.create_callback(name=event, config=CallbackConfig(heartbeat_timeout=Duration.from_seconds(5))).result()


@durable_execution
def r4_5(event: Any, context: DurableContext) -> Any:
    return context.create_callback(name=event, config=CallbackConfig(heartbeat_timeout=Duration.from_seconds(10))).result()


@durable_execution
def r4_6(event: Any, context: DurableContext) -> Any:
    return context.create_callback(name=event).result()


# ---- 8: parallel, 9: map


def greet_item(ctx: DurableContext, item: Any, index: int, items: Any) -> Any:
    return ctx.step(echo("Hello, %s!" % item))


@durable_execution
def r9_1(event: Any, context: DurableContext) -> List[Any]:
    return context.map(event, greet_item, name="map", config=MapConfig(max_concurrency=1)).get_results()


@durable_execution
def r9_2(event: Any, context: DurableContext) -> List[Any]:
    return context.map(event, lambda ctx, item, index, items: item * 2, config=MapConfig(max_concurrency=1)).get_results()


@durable_execution
def r9_3(event: Any, context: DurableContext) -> List[Any]:
    return context.map(event, lambda ctx, item, index, items: item + index, config=MapConfig(max_concurrency=1)).get_results()


@durable_execution
def r9_4(event: Any, context: DurableContext) -> List[Any]:
    return context.map(event, lambda ctx, item, index, items: item, name="empty").get_results()


@durable_execution
def r8_1(event: Any, context: DurableContext) -> List[Any]:
    branches = [lambda ctx: ctx.step(echo("task-1")), lambda ctx: ctx.step(echo("task-2"))]
    return context.parallel(branches, name="parallel", config=ParallelConfig(max_concurrency=1)).get_results()


@durable_execution
def r8_2(event: Any, context: DurableContext) -> List[Any]:
    return context.parallel([lambda ctx: "alpha", lambda ctx: "beta"], config=ParallelConfig(max_concurrency=1)).get_results()


@durable_execution
def r8_3(event: Any, context: DurableContext) -> List[Any]:
    branches = [ParallelBranch(func=lambda ctx: "one", name="first"), ParallelBranch(func=lambda ctx: "two", name="second")]
    return context.parallel(branches, name="named", config=ParallelConfig(max_concurrency=1)).get_results()


@durable_execution
def r8_4(event: Any, context: DurableContext) -> List[Any]:
    branches = [lambda ctx: "hello", lambda ctx: 42, lambda ctx: {"k": "v"}]
    return context.parallel(branches, config=ParallelConfig(max_concurrency=1)).get_results()


@durable_execution
def r8_5(event: Any, context: DurableContext) -> List[Any]:
    return context.parallel([], name="empty").get_results()


# ---- 5: chained invokes (the targets are durable functions of the same emulator, as in AWS's template)


@durable_execution
def target_echo(event: Any, context: DurableContext) -> Any:
    return event


@durable_execution
def target_error(event: Any, context: DurableContext) -> Any:
    raise RuntimeError("the target failed")


@durable_execution
def r5_1(event: Any, context: DurableContext) -> Any:
    return context.invoke("echo", event)


@durable_execution
def r5_2(event: Any, context: DurableContext) -> Any:
    return context.invoke("echo", event["payload"], name=event["name"])


@durable_execution
def r5_3(event: Any, context: DurableContext) -> Any:
    return context.invoke("echo", event)


@durable_execution
def r5_4(event: Any, context: DurableContext) -> Any:
    return context.invoke("echo", None)


@durable_execution
def r5_5(event: Any, context: DurableContext) -> Any:
    return context.invoke("error", event)


@durable_execution
def r5_6(event: Any, context: DurableContext) -> Any:
    try:
        return context.invoke("error", event)
    except Exception:
        return "fallback"


@durable_execution
def r5_11(event: Any, context: DurableContext) -> Any:
    return context.invoke("echo", context.step(echo("from a step")))


@durable_execution
def r5_12(event: Any, context: DurableContext) -> Any:
    return context.step(echo(context.invoke("echo", "from an invoke")))


@durable_execution
def r5_14(event: Any, context: DurableContext) -> Any:
    return [context.invoke("echo", "one"), context.invoke("echo", "two")]


# ---- 6: wait for a condition, 7: wait for a callback


def counting_up_to(threshold: int, initial: int = 0, delay: int = 1) -> Any:
    from aws_durable_execution_sdk_python.waits import WaitForConditionConfig, WaitForConditionDecision

    def strategy(state: int, attempt: int) -> Any:
        if state >= threshold:
            return WaitForConditionDecision.stop_polling()
        return WaitForConditionDecision.continue_waiting(Duration.from_seconds(delay))

    return WaitForConditionConfig(wait_strategy=strategy, initial_state=initial)


@durable_execution
def r6_1(event: Any, context: DurableContext) -> Any:
    return context.wait_for_condition(check=lambda state, ctx: state + 1, config=counting_up_to(int(event)))


@durable_execution
def r6_2(event: Any, context: DurableContext) -> Any:
    return context.wait_for_condition(check=lambda state, ctx: state, config=counting_up_to(int(event), initial=5))


@durable_execution
def r6_3(event: Any, context: DurableContext) -> Any:
    return context.wait_for_condition(check=lambda state, ctx: state + 1, config=counting_up_to(int(event)), name="poll-status")


@durable_execution
def r6_4(event: Any, context: DurableContext) -> Any:
    return context.wait_for_condition(check=lambda state, ctx: state + 1, config=counting_up_to(int(event), initial=5))


@durable_execution
def r6_5(event: Any, context: DurableContext) -> Any:
    return context.wait_for_condition(check=lambda state, ctx: state + 1, config=counting_up_to(int(event), delay=2))


def submit(callback_id: str, ctx: Any) -> None:
    """The submitter: hands the id to nobody (the harness finds it in the history)."""


@durable_execution
def r7_1(event: Any, context: DurableContext) -> Any:
    return context.wait_for_callback(submit, name=event)


@durable_execution
def r7_2(event: Any, context: DurableContext) -> Any:
    return context.wait_for_callback(submit, name="approval")


@durable_execution
def r7_3(event: Any, context: DurableContext) -> Any:
    return context.wait_for_callback(lambda callback_id, ctx: None)


@durable_execution
def r7_4(event: Any, context: DurableContext) -> Any:
    return context.wait_for_callback(submit, name=event)
