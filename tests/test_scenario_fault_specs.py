"""harness.scenario.fault_specs: one model per fault family, loaded from real scenario files, so
every bad parameter is asserted with the FILE:LINE field message a person sees (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.scenario import load_scenario
from harness.scenario.fault_specs import (
    FAULT_SPEC_CLASSES,
    FAULT_TYPES,
    HTTP_TYPES,
    NETWORK_TYPES,
    BandwidthSpec,
    BlackholeSpec,
    DownSpec,
    EndpointKillSpec,
    FaultSpecBase,
    GpuNodeLossSpec,
    JitterSpec,
    LatencySpec,
    RegionQuotaDenialSpec,
    ResetSpec,
)
from harness.scenario.model import Scenario
from harness.testing.scenarios import (
    FIRST_FAULT_LINE,
    HEAD,
    HOOK,
    PROXY,
    SERVICE,
    fault,
    line_of,
    loaded,
    problem,
)

# --- valid: each family, minimal and full ---------------------------------------------------


@pytest.mark.parametrize(
    "type, target, params, model, parameters",
    [
        ("latency", PROXY, ["latency_ms: 300"], LatencySpec,
         {"latency_ms": 300, "jitter_ms": 0, "direction": "downstream", "toxicity": 1.0}),
        ("jitter", PROXY, ["jitter_ms: 80", "latency_ms: 10", "direction: upstream"], JitterSpec,
         {"jitter_ms": 80, "latency_ms": 10, "direction": "upstream", "toxicity": 1.0}),
        ("bandwidth", PROXY, ["rate_kbps: 64", "toxicity: 0.5"], BandwidthSpec,
         {"rate_kbps": 64, "direction": "downstream", "toxicity": 0.5}),
        ("blackhole", PROXY, [], BlackholeSpec, {"timeout_ms": 0, "direction": "downstream", "toxicity": 1.0}),
        ("reset", PROXY, ["timeout_ms: 100.0"], ResetSpec,
         {"timeout_ms": 100, "direction": "downstream", "toxicity": 1.0}),
        ("down", PROXY, [], DownSpec, {}),
        ("endpoint_kill", SERVICE, [], EndpointKillSpec, {"mode": "kill", "max_targets": 1}),
        ("endpoint_kill", "{labels: {drill.role: twin}}", ["mode: pause", "max_targets: 2"], EndpointKillSpec,
         {"mode": "pause", "max_targets": 2}),
        ("gpu_node_loss", "{labels: {drill.gpu: 'true'}}", ["mode: xid", "count: 1"], GpuNodeLossSpec,
         {"mode": "xid", "count": 1, "percent": None, "max_targets": None}),
        ("gpu_node_loss", SERVICE, ["percent: 50"], GpuNodeLossSpec,
         {"mode": "kill", "count": None, "percent": 50.0, "max_targets": None}),
        ("region_quota_denial", HOOK, ["region: region-a"], RegionQuotaDenialSpec,
         {"region": "region-a", "mode": "quota_exceeded", "instance_type": None}),
        ("region_quota_denial", "{hook: 'http://localhost:18090/fault'}",
         ["region: region-b", "mode: insufficient_capacity", "instance_type: gpu.h100"], RegionQuotaDenialSpec,
         {"region": "region-b", "mode": "insufficient_capacity", "instance_type": "gpu.h100"}),
    ],
)
def test_each_family_loads_as_its_model_with_defaults(
    tmp_path: Path, type: str, target: str, params: list[str], model: type[FaultSpecBase],
    parameters: dict[str, object],
) -> None:
    (spec,) = loaded(tmp_path, fault(type, target, *params))
    assert isinstance(spec, model)
    assert spec.type == type
    assert spec.parameters() == parameters
    assert list(spec.parameters()) == list(parameters), "own parameters first, then the shared ones"


def test_the_union_covers_every_family_once() -> None:
    assert FAULT_TYPES == ("latency", "jitter", "bandwidth", "blackhole", "reset", "down",
                           "endpoint_kill", "gpu_node_loss", "region_quota_denial",
                           "http_error", "first_token_delay", "stream_cut", "stream_stall", "malformed",
                           "k8s_pod_kill", "k8s_node_loss", "k8s_quota_denial", "k8s_scale_down")
    assert NETWORK_TYPES == FAULT_TYPES[:6]
    assert HTTP_TYPES == FAULT_TYPES[9:14]
    assert len({cls.fault_type() for cls in FAULT_SPEC_CLASSES}) == len(FAULT_SPEC_CLASSES)


def test_plan_shows_given_parameters_and_the_mode(tmp_path: Path) -> None:
    slow, kill = loaded(tmp_path, fault("latency", PROXY, "latency_ms: 300"),
                        fault("endpoint_kill", SERVICE).replace("name: f", "name: k"))
    assert slow.params() == {"latency_ms": 300}
    assert kill.params() == {"mode": "kill"}


def test_pydantic_produces_the_json_schema_with_the_discriminator() -> None:
    schema = Scenario.model_json_schema()
    items = schema["properties"]["faults"]["items"]
    assert items["discriminator"]["propertyName"] == "type"
    assert set(items["discriminator"]["mapping"]) == set(FAULT_TYPES)
    latency = schema["$defs"]["LatencySpec"]
    assert "latency_ms" in latency["required"] and latency["additionalProperties"] is False


# --- invalid: every kind, with FILE:LINE and the field path ------------------------------------

# (type, target, params, the text of the line the message names or None for the fault's first
#  line, the message after "FILE:LINE ")
BAD = {
    # missing
    "latency-without-latency_ms": ("latency", PROXY, [], None, "faults[0].latency_ms: required for latency faults"),
    "jitter-without-jitter_ms": ("jitter", PROXY, ["latency_ms: 5"], None,
                                 "faults[0].jitter_ms: required for jitter faults"),
    "bandwidth-without-rate": ("bandwidth", PROXY, [], None, "faults[0].rate_kbps: required for bandwidth faults"),
    "quota-without-region": ("region_quota_denial", HOOK, [], None,
                             "faults[0].region: required for region_quota_denial faults"),
    "no-type": (None, PROXY, [], None, "faults[0].type: required field is missing"),
    "no-target": ("down", None, [], None, "faults[0].target: required field is missing"),
    # unknown
    "misspelled-parameter": ("latency", PROXY, ["latncy_ms: 300"], "latncy_ms",
                             "faults[0].latncy_ms: unknown key 'latncy_ms' (did you mean 'latency_ms'?); allowed: "
                             "name, type, target, at, duration, manual, after, branch, direction, toxicity, schedule, latency_ms, jitter_ms"),
    "parameter-of-another-family": ("endpoint_kill", SERVICE, ["count: 2"], "count",
                                    "faults[0].count: not a parameter of endpoint_kill faults "
                                    "(its parameters: mode, max_targets)"),
    "down-takes-none": ("down", PROXY, ["direction: upstream"], "direction",
                        "faults[0].direction: not a parameter of down faults (its parameters: none)"),
    "misspelled-type": ("latancy", PROXY, [], "type:",
                        "faults[0].type: unknown fault type 'latancy' (did you mean 'latency'?); expected one of: "
                        + ", ".join(FAULT_TYPES)),
    "unknown-type": ("partition", PROXY, [], "type:", "faults[0].type: unknown fault type 'partition'; expected"),
    # wrong type
    "text-for-whole-number": ("latency", PROXY, ["latency_ms: 500ms"], "latency_ms",
                              "faults[0].latency_ms: expected a whole number like 300, got '500ms'"),
    "quoted-number": ("latency", PROXY, ["latency_ms: '500'"], "latency_ms",
                      "faults[0].latency_ms: expected a whole number like 300, got '500'"),
    "boolean-for-number": ("latency", PROXY, ["latency_ms: true"], "latency_ms",
                           "faults[0].latency_ms: expected a whole number like 300, got true"),
    "fraction-for-whole-number": ("bandwidth", PROXY, ["rate_kbps: 1.5"], "rate_kbps",
                                  "faults[0].rate_kbps: expected a whole number like 300, got 1.5"),
    "text-for-number": ("reset", PROXY, ["toxicity: half"], "toxicity",
                        "faults[0].toxicity: expected a number like 0.5, got 'half'"),
    "list-for-number": ("gpu_node_loss", SERVICE, ["percent: [50]"], "percent",
                        "faults[0].percent: expected a number like 0.5, got a list"),
    # out of range
    "zero-latency": ("latency", PROXY, ["latency_ms: 0"], "latency_ms",
                     "faults[0].latency_ms: Input should be greater than 0, got 0"),
    "negative-jitter": ("latency", PROXY, ["latency_ms: 10", "jitter_ms: -1"], "jitter_ms",
                        "faults[0].jitter_ms: Input should be greater than or equal to 0, got -1"),
    "timeout-over-a-week": ("blackhole", PROXY, ["timeout_ms: 999999999999"], "timeout_ms",
                            "faults[0].timeout_ms: Input should be less than or equal to 604800000"),
    "toxicity-over-1": ("reset", PROXY, ["toxicity: 1.5"], "toxicity",
                        "faults[0].toxicity: Input should be less than or equal to 1, got 1.5"),
    "max-targets-zero": ("endpoint_kill", SERVICE, ["max_targets: 0"], "max_targets",
                         "faults[0].max_targets: Input should be greater than or equal to 1, got 0"),
    "count-zero": ("gpu_node_loss", SERVICE, ["count: 0"], "count",
                   "faults[0].count: Input should be greater than or equal to 1, got 0"),
    "percent-over-100": ("gpu_node_loss", SERVICE, ["percent: 101"], "percent",
                         "faults[0].percent: Input should be less than or equal to 100, got 101"),
    "empty-region": ("region_quota_denial", HOOK, ["region: ''"], "region: ''",
                     "faults[0].region: expected text of 1 to 100 characters without control characters"),
    # a value outside a fixed set
    "direction-sideways": ("blackhole", PROXY, ["direction: sideways"], "direction",
                           "faults[0].direction: unknown value 'sideways'; expected one of: downstream, upstream"),
    "endpoint-kill-mode": ("endpoint_kill", SERVICE, ["mode: explode"], "mode:",
                           "faults[0].mode: unknown value 'explode'; expected one of: kill, stop, pause"),
    "gpu-mode-typo": ("gpu_node_loss", SERVICE, ["mode: xdi"], "mode:",
                      "faults[0].mode: unknown value 'xdi' (did you mean 'xid'?); expected one of: kill, xid, hang"),
    "quota-mode": ("region_quota_denial", HOOK, ["region: a", "mode: embargo"], "mode:",
                   "faults[0].mode: unknown value 'embargo'; expected one of: quota_exceeded, insufficient_capacity"),
    # across a family's fields
    "count-and-percent": ("gpu_node_loss", SERVICE, ["count: 1", "percent: 50"], "percent",
                          "faults[0].percent: give count or percent, not both"),
    # the target a family acts on
    "latency-on-a-service": ("latency", SERVICE, ["latency_ms: 5"], "target",
                             "faults[0].target: latency faults act on a Toxiproxy proxy: set target.proxy"),
    "proxy-and-hook": ("down", "{proxy: p, hook: 'http://127.0.0.1:1/f'}", [], "target",
                       "faults[0].target: down faults act on a Toxiproxy proxy only: remove target.hook"),
    "kill-on-a-proxy": ("endpoint_kill", "{proxy: p, service: x}", [], "target",
                        "faults[0].target: endpoint_kill faults act on services, not a proxy: remove target.proxy"),
    "kill-without-selector": ("endpoint_kill", "{labels: {}}", [], "target",
                              "faults[0].target: endpoint_kill faults need target.service and/or target.labels"),
    "quota-without-hook": ("region_quota_denial", SERVICE, ["region: a"], "target",
                           "faults[0].target: region_quota_denial faults need target.hook"),
    "quota-hook-off-loopback": ("region_quota_denial", "{hook: 'http://192.0.2.5:8090/fault'}", ["region: a"],
                                "target", "faults[0].target: target.hook must be an http://127.0.0.1:PORT/... URL"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_parameter_is_one_file_line_field_message(tmp_path: Path, case: str) -> None:
    type, target, params, on_line, expected = BAD[case]
    path, message = problem(tmp_path, fault(type, target, *params))
    line = line_of(path, on_line) if on_line else FIRST_FAULT_LINE
    assert any(shown.startswith(f"{path}:{line} {expected}") for shown in message.splitlines()), message
    assert all(shown.startswith(f"{path}:") for shown in message.splitlines())


def test_problems_in_several_faults_are_all_named_each_at_its_line(tmp_path: Path) -> None:
    path, message = problem(
        tmp_path,
        fault("latency", PROXY, "latency_ms: -5"),
        fault("region_quota_denial", HOOK, "region: a", "mode: embargo").replace("name: f", "name: g"),
    )
    lines = message.splitlines()
    assert len(lines) == 2, message
    assert lines[0].startswith(f"{path}:{line_of(path, 'latency_ms')} faults[0].latency_ms: ")
    assert lines[1].startswith(f"{path}:{line_of(path, 'embargo')} faults[1].mode: unknown value 'embargo'")


def test_flow_style_fault_names_the_line_of_its_item(tmp_path: Path) -> None:
    """The hostile-input cases write faults on one line: the message still names it and the key."""
    path = tmp_path / "flow.yaml"
    path.write_text(HEAD + "  - {name: slow, type: latency, target: {proxy: p}, latency_ms: 10, jitter: 3}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value).startswith(
        f"{path}:{FIRST_FAULT_LINE} faults[0].jitter: unknown key 'jitter' (did you mean 'jitter_ms'?)"
    )


def test_a_fault_that_is_not_a_mapping_says_so(tmp_path: Path) -> None:
    path, message = problem(tmp_path, "  - [latency, 300]\n")
    assert message == f"{path}:{FIRST_FAULT_LINE} faults[0]: expected a mapping (key: value pairs), got a list"
