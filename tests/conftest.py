"""Shared fixtures: the whole program runs once per session under the mock runtime."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import batch  # noqa: E402

batch.collect_rarely()  # the session runs the program many times: a batch too (tools/batch.py)

from config.settings import Settings, parse  # noqa: E402
from tools import crd_schemas, mockrun  # noqa: E402

# JSON schemas of the custom resources, generated from the pinned charts' CRDs by
# `make crd-schemas` (tools/crd_schemas.py) and committed; charts.json records where they came from.
SCHEMAS = crd_schemas.OUT
CRD_SCHEMAS = crd_schemas.CRD_SCHEMAS


def require_tool(name: str) -> str:
    """Path of an external validator; skip without it unless CI demands it (REQUIRE_TOOLS=1)."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("REQUIRE_TOOLS") == "1":
        pytest.fail(f"required tool {name!r} is not installed (REQUIRE_TOOLS=1)")
    pytest.skip(f"{name} is not installed")


def crd_schema_dir() -> Path:
    """The committed CRD schemas (``<group>/<kind>_<version>.json``)."""
    return CRD_SCHEMAS


@pytest.fixture(scope="session")
def pi_k3s() -> mockrun.Result:
    """The pi-k3s stack as the program registers it, with stand-ins for secrets."""
    return mockrun.run("pi-k3s")


STACKS = ("pi-k3s", "dev")


@pytest.fixture(scope="session")
def dev() -> mockrun.Result:
    """The one-node test environment (Pulumi.dev.yaml)."""
    return mockrun.run("dev")


@pytest.fixture(scope="session", params=STACKS)
def any_stack(request: pytest.FixtureRequest) -> mockrun.Result:
    """Each stack the project ships, for checks that must hold in every environment."""
    return request.getfixturevalue("pi_k3s" if request.param == "pi-k3s" else "dev")


@pytest.fixture(scope="session")
def any_rendered_dir(any_stack: mockrun.Result, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools import render

    out = tmp_path_factory.mktemp(f"rendered-{any_stack.stack}")
    render.write(any_stack, out)
    return out


def raw_config(stack: str = "pi-k3s") -> dict[str, Any]:
    """Plain values of ``Pulumi.<stack>.yaml`` keyed without the project prefix, as ``parse``
    takes them; read afresh on each call, so a test may change what it gets."""
    values, _ = mockrun.stack_config(stack)
    return {k.split(":", 1)[1]: v for k, v in values.items()}


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The pi-k3s stack's settings (the stack file, validated)."""
    return parse(raw_config())


@pytest.fixture(scope="session")
def stack_values() -> dict:
    """Plain config values of Pulumi.pi-k3s.yaml (with the namespace prefix)."""
    return mockrun.stack_config("pi-k3s")[0]


@pytest.fixture(scope="session")
def rendered_dir(pi_k3s: mockrun.Result, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools import render

    out = tmp_path_factory.mktemp("rendered")
    render.write(pi_k3s, out)
    return out
