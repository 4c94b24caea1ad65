"""The Runtime protocol: every runtime implements all of it, and docs/scaling.md's Kubernetes
mapping and the protocol's docstrings name the same methods."""

from __future__ import annotations

import inspect
import re

import pytest

from harness.runtime import ExternalRuntime, Runtime
from harness.runtime.compose import ComposeRuntime
from harness.runtime.local import LocalRuntime
from harness.testing import REPO

MEMBERS = sorted(
    name for name, value in vars(Runtime).items()
    if not name.startswith("_") and (inspect.isfunction(value) or isinstance(value, property))
)


def test_the_protocol_has_the_methods_the_engine_and_recover_use() -> None:
    assert set(MEMBERS) >= {"start", "stop", "down", "find", "members", "unhealthy", "not_running",
                            "process_groups", "fingerprint", "toxiproxy_url"}


@pytest.mark.parametrize("runtime_class", [LocalRuntime, ComposeRuntime, ExternalRuntime])
def test_every_runtime_implements_every_member(runtime_class: type) -> None:
    missing = [name for name in [*MEMBERS, "kind"] if name not in dir(runtime_class)]
    assert missing == []
    assert runtime_class.kind in ("local", "compose", "external")


@pytest.mark.parametrize("name", MEMBERS)
def test_each_method_names_its_kubernetes_mapping_in_the_docstring_and_in_scaling_md(name: str) -> None:
    member = vars(Runtime)[name]
    function = member.fget if isinstance(member, property) else member
    assert "Kubernetes" in (function.__doc__ or ""), f"{name}: docstring names no Kubernetes mapping"
    section = (REPO / "docs" / "scaling.md").read_text(encoding="utf-8").split("### Runtime methods mapped")[1]
    first_column = [line.split("|")[1] for line in section.split("\n\n")[2].splitlines() if line.startswith("| `")]
    assert any(re.search(rf"`{name}(\(|`)", cell) for cell in first_column), f"{name} missing in scaling.md"


def test_the_protocol_imports_no_runtime_that_implements_it() -> None:
    """The import circle base -> compose/local -> base stays open: the TypeGuards that name the
    runtimes live in kinds.py, above both."""
    import ast

    tree = ast.parse((REPO / "harness" / "runtime" / "base.py").read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {m for m in imported if m.startswith("harness.runtime")}
    ports = ast.parse((REPO / "harness" / "runtime" / "ports.py").read_text(encoding="utf-8"))
    assert "harness.runtime.compose" not in {n.module for n in ast.walk(ports) if isinstance(n, ast.ImportFrom)}
