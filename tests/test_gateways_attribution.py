"""Who served, from what a third-party gateway exposes (issue 26): ``load.attribution`` maps a
response header of the gateway (LiteLLM's ``x-litellm-model-id``, Portkey's
``x-portkey-last-used-option-index``, ...) to tiers; the samples' ``served_by``/``tier`` come from
it. Pure logic: no stack."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.engine.loadplan import load_plan
from harness.errors import ScenarioError
from harness.load import samples
from harness.load.plan import LoadPlan
from harness.runtime.stackfile import load_stack
from harness.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
GATEWAY_SCENARIOS = sorted((REPO / "scenarios" / "gateways").rglob("*.yaml"))
TIER = samples.COLUMNS.index("tier")
SERVED_BY = samples.COLUMNS.index("served_by")


@pytest.fixture(autouse=True)
def _no_attribution_left() -> Iterator[None]:
    yield
    samples.configure_attribution(None)


def row(headers: dict[str, str]) -> list[str]:
    return samples.sample_row("probe", 1.0, 1.1, 200, 10, httpx.Headers(headers), "")


def test_without_attribution_the_tier_headers_are_read_as_before() -> None:
    r = row({"X-Served-By": "gpu-a1", "X-Tier": "gpu", "x-litellm-model-id": "hosted-model"})
    assert (r[SERVED_BY], r[TIER]) == ("gpu-a1", "gpu")


def test_a_declared_header_names_the_tier_and_is_the_served_by() -> None:
    samples.configure_attribution({"header": "x-litellm-model-id",
                                   "tiers": {"hosted-model": "hosted", "gpu-a1": "gpu"}})
    # The header wins over an X-Tier the gateway passed through: the scenario declared it.
    r = row({"X-Tier": "cpu", "X-LiteLLM-Model-Id": "gpu-a1"})
    assert (r[SERVED_BY], r[TIER]) == ("gpu-a1", "gpu")
    assert row({"x-litellm-model-id": "hosted-model"})[TIER] == "hosted"
    # A value no key names is untagged, never guessed.
    r = row({"x-litellm-model-id": "gpu-b9"})
    assert (r[SERVED_BY], r[TIER]) == ("gpu-b9", "")
    assert row({})[TIER] == "" and row({})[SERVED_BY] == ""


def test_a_url_key_matches_the_urls_under_it_but_not_another_port() -> None:
    samples.configure_attribution({"header": "x-litellm-model-api-base", "tiers": {
        "http://127.0.0.1:19101": "hosted", "http://127.0.0.1:19011/v1": "gpu"}})
    assert row({"x-litellm-model-api-base": "http://127.0.0.1:19101/v1"})[TIER] == "hosted"
    assert row({"x-litellm-model-api-base": "http://127.0.0.1:19101"})[TIER] == "hosted"
    assert row({"x-litellm-model-api-base": "http://127.0.0.1:19011/v1"})[TIER] == "gpu"
    assert row({"x-litellm-model-api-base": "http://127.0.0.1:191012/v1"})[TIER] == ""


def test_the_plan_carries_the_attribution_to_the_load_processes() -> None:
    loaded = load_scenario(REPO / "scenarios" / "gateways" / "litellm-rate-limited.local.yaml")
    plan = load_plan(loaded.spec.load, 10.0)
    again = LoadPlan.from_json(plan.to_json())
    assert again.attribution == {"header": "x-litellm-model-id",
                                 "tiers": {"hosted-model": "hosted", "gpu-a1": "gpu", "gpu-a2": "gpu"}}


BAD = """\
apiVersion: drill/v1
kind: Scenario
name: s
load:
  host: http://127.0.0.1:4000
  attribution:
    header: {header}
    tiers: {tiers}
phases: {{baseline: 1s, fault: 1s, recovery: 1s}}
faults:
  - {{name: f, type: latency, target: {{proxy: p}}, latency_ms: 1, at: 0s, duration: 1s}}
objectives: {{rto_s: 5}}
toxiproxy: {{url: http://127.0.0.1:8474}}
"""


@pytest.mark.parametrize(("header", "tiers", "said"), [
    ("x litellm", "{a: hosted}", ":7 load.attribution.header"),
    ("x-litellm-model-id", "{}", ":8 load.attribution.tiers"),
    ("x-litellm-model-id", "{a: ''}", ":8 load.attribution.tiers"),
])
def test_a_bad_attribution_is_named_with_its_line(tmp_path: Path, header: str, tiers: str, said: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BAD.format(header=header, tiers=tiers))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.exit_code == 2
    assert said in str(info.value), str(info.value)


@pytest.mark.parametrize("path", GATEWAY_SCENARIOS, ids=lambda p: p.name)
def test_every_gateway_scenario_and_its_stack_load(path: Path) -> None:
    loaded = load_scenario(path)
    assert loaded.spec.load.attribution is not None
    assert loaded.spec.stack is not None and loaded.spec.stack.file is not None
    stack = load_stack((path.parent / str(loaded.spec.stack.file)).resolve())
    gateway = next(p for p in stack.processes if p.name == "gateway")
    assert gateway.argv[:2] == ["python", "-m"] and gateway.argv[2].startswith("targets.gateways.")
    assert stack.http_fault_proxy is not None


@pytest.mark.parametrize(("module", "env", "said"), [
    ("targets.gateways.litellm_proxy", {"LITELLM_CONFIG": "model_list: []", "DRILL_LITELLM": "/nonexistent/litellm"},
     "run scripts/litellm-setup"),
    ("targets.gateways.litellm_proxy", {}, "LITELLM_CONFIG is not set"),
    ("targets.gateways.portkey", {"DRILL_PORTKEY_DIR": "/nonexistent"}, "run scripts/portkey-setup"),
])
def test_a_launcher_without_its_gateway_says_what_to_run(module: str, env: dict[str, str], said: str,
                                                          tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", module], env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                          "DRILL_STACK_LOG_DIR": str(tmp_path), **env}, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and said in done.stderr, done.stderr


def test_the_setup_scripts_pin_their_versions() -> None:
    litellm = (REPO / "scripts" / "litellm-setup").read_text()
    portkey = (REPO / "scripts" / "portkey-setup").read_text()
    assert 'LITELLM_VERSION="1.100.5"' in litellm and "litellm[proxy]==$LITELLM_VERSION" in litellm
    assert 'PORTKEY_VERSION="1.15.2"' in portkey and "@portkey-ai/gateway@$PORTKEY_VERSION" in portkey
    bootstrap = (REPO / "scripts" / "bootstrap").read_text()
    assert "scripts/litellm-setup" in bootstrap and "scripts/portkey-setup" in bootstrap
