"""AWS's durable-execution conformance requirements, run locally through lambdaric's emulator
(``--durable``) with the real SDK: each requirement's expected history and result, judged by
the conformance package's own validator (tests/durable_conformance/harness.py says how).

Peers: ``aws-durable-execution-sdk-python`` and ``aws-durable-execution-conformance-tests``
(the latter needs Python 3.14 by its metadata, but its validator runs on 3.9+: CI installs it
with ``--no-deps --ignore-requires-python``). Missing ones skip locally and fail under CI=true.
"""
from __future__ import annotations

from typing import Dict, Iterator

import pytest

from durable_conformance.harness import REQUIREMENTS, functions_file, handlers_source, known_mismatches, run_requirement
from emulator_harness import RunningEmulator
from peers import peer_module


@pytest.fixture(scope="module")
def peers() -> None:
    peer_module("aws_durable_execution_sdk_python", "pip install 'lambdaric[durable]'")
    peer_module("aws_durable_execution_sdk_python_testing", "pip install 'lambdaric[durable]'")
    peer_module("aws_durable_execution_conformance_tests.validate",
                "pip install --no-deps --ignore-requires-python aws-durable-execution-conformance-tests")
    peer_module("yaml", "pip install pyyaml")


@pytest.fixture(scope="module")
def emulators(peers: None) -> Iterator[Dict[str, RunningEmulator]]:
    started: Dict[str, RunningEmulator] = {}
    try:
        for mode, flags in (("skip", ["--skip-time"]), ("real", [])):
            started[mode] = RunningEmulator({"handlers.py": handlers_source(), "functions.json": functions_file(mode)},
                                            handler=None, args=["--functions", "functions.json", "--durable"] + flags)
        yield started
    finally:
        for emulator in started.values():
            emulator.stop()


def test_at_least_30_requirements_are_covered() -> None:
    assert len(REQUIREMENTS) >= 30


@pytest.mark.parametrize("rid", sorted(REQUIREMENTS, key=lambda r: tuple(int(p) for p in r.split("-"))))
def test_requirement(rid: str, emulators: Dict[str, RunningEmulator]) -> None:
    """Passes when the validator finds nothing; an expected failure (saying whose) when all it
    finds are known mismatches (harness.KNOWN_MISMATCHES); fails on anything else."""
    emulator = emulators[REQUIREMENTS[rid]]
    outcome = run_requirement(rid, emulator.client())
    unknown, whose = known_mismatches(rid, outcome.errors)
    assert not unknown, outcome.report() + "\nemulator stderr (tail):\n" + emulator.stderr().decode(errors="replace")[-3000:]
    if whose:
        pytest.xfail("; ".join(whose))
