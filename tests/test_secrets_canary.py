"""With recognisable secret values injected, none of them leaks anywhere in plain text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.settings import NAMESPACE, SECRET_KEYS
from tests.conftest import STACKS
from tools import mockrun, render

CANARIES = {f"{NAMESPACE}:{k}": f"CANARY-{k}-7f3a9c" for k in SECRET_KEYS}


@pytest.fixture(scope="module", params=STACKS)
def canary_run(request: pytest.FixtureRequest) -> mockrun.Result:
    return mockrun.run(request.param, secrets=CANARIES)


def _leaks(text: str) -> list[str]:
    return [c for c in CANARIES.values() if c in text]


def test_canaries_reach_the_program(canary_run: mockrun.Result) -> None:
    """The check below would be empty if the canaries never arrived: prove they did."""
    joined = json.dumps([r.plain_inputs for r in canary_run.registrations])
    assert len(_leaks(joined)) >= 2


def test_no_canary_in_rendered_files(canary_run: mockrun.Result, tmp_path: Path) -> None:
    render.write(canary_run, tmp_path)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert _leaks(path.read_text()) == [], path
    assert _leaks(render.summary(canary_run)) == []


def test_no_canary_in_plain_outputs(canary_run: mockrun.Result) -> None:
    for name, value in canary_run.outputs.items():
        if name not in canary_run.secret_outputs:
            assert _leaks(json.dumps(value, default=str)) == [], name


def test_no_canary_in_inputs_not_marked_secret(canary_run: mockrun.Result) -> None:
    for reg in canary_run.registrations:
        masked = json.dumps(reg.masked_inputs, default=str)
        assert _leaks(masked) == [], f"{reg.key} carries a secret in a plain input"
