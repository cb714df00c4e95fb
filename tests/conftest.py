"""Shared fixtures: a scripted Runtime API (``tests/runtime_api.py``) and a runtime-process runner."""
from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any, Dict, List, Optional

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from runtime_api import Event, Reply, RuntimeAPI, RunResult, run_runtime as _run_runtime  # noqa: E402
from peers import awslambdaric_peer, missing_peer, rie  # noqa: E402,F401  (real peers: fixtures that skip with the reason)

__all__ = ["Event", "Reply", "RuntimeAPI", "RunResult"]


@pytest.fixture
def runtime_api():
    """A started :class:`RuntimeAPI` with no events yet (``push`` some, ``script`` replies); closed after."""
    with RuntimeAPI() as api:
        yield api


@pytest.fixture
def make_runtime_api():
    """Factory ``make_runtime_api(events=[...], after_events=..., replies=...)``; all closed after the test."""
    made: List[RuntimeAPI] = []

    def make(events: Any = (), **kwargs: Any) -> RuntimeAPI:
        api = RuntimeAPI(events=events, **kwargs)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


def _native_problem() -> Optional[str]:
    """Why the native transport cannot run here (None when it can)."""
    try:
        import lambdaric.transport.native  # noqa: F401
    except (ImportError, OSError) as exc:
        return "the native module is not built here (%s: %s)" % (type(exc).__name__, exc)
    return None


#: LAMBDARIC_TRANSPORT=python|native in the test run's environment limits the protocol
#: suite to that transport; by default every lambdaric process test runs once per transport.
TRANSPORTS = [os.environ["LAMBDARIC_TRANSPORT"]] if os.environ.get("LAMBDARIC_TRANSPORT") else ["python", "native"]


@pytest.fixture(params=TRANSPORTS)
def lambdaric_env(request) -> Dict[str, str]:
    """Extra environment for every lambdaric process a test starts: the transport.

    Parametrized, so each protocol test runs against both transports (the same bytes
    must go out either way); the native run skips, saying why, where it is not built.
    """
    if request.param == "native":
        problem = _native_problem()
        if problem:
            pytest.skip(problem)
    return {"LAMBDARIC_TRANSPORT": request.param}


@pytest.fixture
def run_runtime(tmp_path, lambdaric_env):
    """``run_runtime(files, handler, events, env=..., cmd=..., expect_posts=..., ...) -> RunResult``.

    Like :func:`runtime_api.run_runtime`, with the files written under the test's ``tmp_path`` (kept for
    inspection; one sub-folder per call) and ``lambdaric_env`` added when running lambdaric itself.
    """
    calls = [0]

    def run(files: Dict[str, Any], handler: Optional[str], events: Any = (), *,
            env: Optional[Dict[str, Optional[str]]] = None, cmd: Optional[List[str]] = None,
            **kwargs: Any) -> RunResult:
        calls[0] += 1
        cwd = tmp_path / ("run%d" % calls[0])
        cwd.mkdir()
        full_env: Dict[str, Optional[str]] = dict(lambdaric_env) if cmd is None else {}
        full_env.update(env or {})
        return _run_runtime(files, handler, events, env=full_env, cmd=cmd, cwd=str(cwd), **kwargs)

    return run


@pytest.fixture
def awslambdaric_cmd() -> List[str]:
    """The official client as a command (black-box comparisons); skips when it is not installed."""
    if importlib.util.find_spec("awslambdaric") is None:
        missing_peer("awslambdaric is not installed (pip install awslambdaric)")
    return [sys.executable, "-m", "awslambdaric"]
