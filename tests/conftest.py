"""Shared fixtures; the helpers behind them live in the package (:mod:`harness.testing`), which
test modules import from: never from each other or from this file (tests/test_suite_layout.py
checks). Tests that need real parts (Toxiproxy, Docker) *fail* under CI=true when the part is
missing, and skip with the reason elsewhere — never a silent green.

Lanes and parallel runs (docs/pytest.md, "drill's own suite"): ``slow`` marks a test that runs a
real-time drill or a whole setup step, so ``scripts/test --fast`` (``-m "not slow"``) stays within
3 minutes. Under pytest-xdist (``scripts/test`` runs ``-n 3 --dist loadgroup``) tests that share
something keep to one worker: see :func:`pytest_collection_modifyitems`; at most two drills run
at once, and one that fails runs again alone: see :func:`pytest_runtest_protocol`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.testing import toxiproxy_server
from harness.testing.order import chains, expected_seconds, read_durations
from harness.testing.runs import latency_run as make_latency_run
from harness.testing.slots import drill_slot, every_drill_slot, lower_priority
from harness.testing.stacks import Spawn, programs
from harness.testing.stacks import staging_stack as compose_staging_stack

DOCKER_GROUP = "docker"
# Real-time drills at once, whatever the workers (scripts/test's DRILL_TEST_DRILLS; docs/pytest.md).
DRILL_SLOTS = int(os.environ.get("DRILL_TEST_DRILLS", "2"))
OTHER_TESTS_NICE = 5
# A drill test that failed beside another runs once more alone (docs/pytest.md), at most this many
# in a run (DRILL_TEST_RERUNS=0: none).
# Six: a CI run (December 2026) lost five first tries, and the fifth had no second (docs/pytest.md).
RERUNS_MAX = int(os.environ.get("DRILL_TEST_RERUNS", "6"))
SLOTS_KEY = pytest.StashKey[contextlib.ExitStack]()
# The compose staging stack the tests of this process share, and how to take it down.
STAGING_KEY = pytest.StashKey[tuple[contextlib.ExitStack, tuple[Any, dict[str, int]]]]()


def pytest_configure(config: pytest.Config) -> None:
    """pytest-rerunfailures' bound on the run's reruns (the ``flaky`` marks are given to drills in
    :func:`pytest_collection_modifyitems`)."""
    if hasattr(config.option, "max_suite_reruns") and config.option.max_suite_reruns is None:
        config.option.max_suite_reruns = RERUNS_MAX


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups for ``--dist loadgroup``; a test's own ``xdist_group`` mark wins.

    What tests share, read from the runtimes and the fixtures: every local stack, Toxiproxy,
    mitmdump and compose project a test starts is on free ports under a name of its own
    (``harness.testing``), so no two tests meet on a port. What is left to share is:
    - Docker (``docker`` mark): compose stacks of a dozen containers, up to a few minutes each to
      build and health-check on two cores; one at a time keeps the compose drills' verdicts and
      health waits as steady as in a serial run, and a module's compose stack is built once.
    - A module- or session-scoped fixture of the suite (a stack, a drill run once and read by
      several tests): its module stays on one worker, so the fixture is built once.
    Everything else goes to whichever worker is free.

    With more workers than drill slots, every test that takes a slot, with the rest of its
    group, joins one of as many chains as there are slots (groups ``drill-slot-N``): one worker
    each, so a drill never waits for a slot and no worker waits holding other tests
    (:func:`_slot_chains`)."""
    chained = _slot_chains(items) if _drills_take_slots(config) else {}
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            group = chained.get(item.nodeid) or _shared_group(item)
            if group is not None:
                item.add_marker(pytest.mark.xdist_group(group))
        if config.getoption("loadgroup", default=False):  # set on pytest-xdist's workers
            _name_the_group(item)
        if _drills_take_slots(config) and RERUNS_MAX > 0 and item.get_closest_marker("slow") is not None:
            item.add_marker(pytest.mark.flaky(reruns=1))
    _staging_users_together(items)


def _shared_group(item: pytest.Item) -> str | None:
    if item.get_closest_marker("docker") is not None:
        return DOCKER_GROUP
    if _uses_a_shared_fixture(item):
        return f"module:{item.nodeid.split('::', 1)[0]}"
    return None


def _takes_a_slot(item: pytest.Item) -> bool:
    return item.get_closest_marker("slow") is not None and item.get_closest_marker("beside_drills") is None


def _slot_chains(items: list[pytest.Item]) -> dict[str, str]:
    """test id -> ``drill-slot-N`` for every test of a unit (a group, or a test of none) that
    holds a test taking a drill slot; the units dealt to the chains by their summed time in
    tests/drill-durations.txt (harness.testing.order). Tests with their own ``xdist_group`` mark
    keep it. Every worker computes the same chains, as pytest-xdist requires."""
    durations = read_durations()
    units: dict[str, list[pytest.Item]] = {}
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            units.setdefault(_shared_group(item) or item.nodeid, []).append(item)
    drilling = [unit for unit in units.values() if any(_takes_a_slot(item) for item in unit)]

    def seconds(unit: list[pytest.Item]) -> float:
        return sum(expected_seconds(durations, item.nodeid, _takes_a_slot(item)) for item in unit)

    return {item.nodeid: f"drill-slot-{n}"
            for n, chain in enumerate(chains(drilling, DRILL_SLOTS, seconds))
            for unit in chain for item in unit}


def _drills_take_slots(config: pytest.Config) -> bool:
    """This is a pytest-xdist worker of a run with more workers than drill slots."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    return workerinput is not None and int(workerinput["workercount"]) > DRILL_SLOTS


def _slots_dir(config: pytest.Config) -> Path:
    workerinput: dict[str, Any] = config.workerinput  # type: ignore[attr-defined]
    return Path(tempfile.gettempdir()) / f"drill-suite-slots-{workerinput['testrunuid']}"


def _name_the_group(item: pytest.Item) -> None:
    """Put the group in the test's id as pytest-xdist's ``--dist loadgroup`` expects
    (``path::test@group``). pytest-xdist 3.8 writes ``item._nodeid``, which pytest 9.2 no longer
    reads (its ids are structured, ``item._id``), so every group is silently ignored
    (pytest-dev/pytest-xdist#1386, fix open in #1388); this does what it meant to, and nothing on
    a pytest that still has ``_nodeid``. tests/test_suite_layout.py checks groups hold."""
    groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                     for m in item.iter_markers("xdist_group")})
    structured = getattr(item, "_id", None)
    if not groups or structured is None or hasattr(item, "_nodeid") or "@" in item.nodeid.rsplit("]", 1)[-1]:
        return
    item._id = type(structured).parse(f"{item.nodeid}@{'_'.join(groups)}")  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """With more pytest-xdist workers than drill slots, a ``slow`` test (a real-time drill or a
    whole setup step) runs holding one of the run's slots, its fixtures' set-up and tear-down
    included (harness.testing.slots): the extra workers run the other tests meanwhile and never
    a third drill beside two. A ``beside_drills`` test takes none: it needs little CPU, its
    drill's pace set by something slower than the machine (a Kubernetes cluster's controllers,
    looking every few seconds) or its stack a service of the test's own, in its process
    (docs/pytest.md has the measurements). Its second try, if the first failed, holds them all
    (:func:`pytest_runtest_setup`)."""
    if not _drills_take_slots(item.config):
        yield
        return
    if item.get_closest_marker("slow") is None and item.get_closest_marker("beside_drills") is None:
        # Beside two drills, the other tests yield the CPU to them (their verdicts are real time,
        # these tests' are not): a little lower priority, restored after (root may raise it back).
        # Not in a beside_drills module: what its fixtures start (a cluster's control plane) would
        # keep that priority for the module's drills (one starved cluster missed an eviction).
        with lower_priority(OTHER_TESTS_NICE if os.geteuid() == 0 else 0):
            yield
        return
    with contextlib.ExitStack() as held:
        if _takes_a_slot(item):
            held.enter_context(drill_slot(_slots_dir(item.config), DRILL_SLOTS, label=item.nodeid))
        item.stash[SLOTS_KEY] = held
        yield


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A drill's second try (pytest-rerunfailures counts tries in ``execution_count``) runs with
    the machine to itself: its worker lets its slot go, then takes every slot in order, waiting
    for the drill beside it to end. Two drills at once on two cores is the suite's bargain with
    its time budget; a verdict lost to it is decided again alone, and a test that fails alone
    fails. The first try's failure stays in the run's summary (:func:`pytest_terminal_summary`)."""
    held = item.stash.get(SLOTS_KEY, None)
    if held is None or getattr(item, "execution_count", 1) < 2:
        return
    held.close()
    held.enter_context(every_drill_slot(_slots_dir(item.config), DRILL_SLOTS, label=item.nodeid))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Each drill that ran again alone, with the first line of its first try's error (up to 2,000
    characters: the first try is not in the JUnit XML, which keeps the last)."""
    reruns = terminalreporter.stats.get("rerun", [])
    if not reruns:
        return
    terminalreporter.write_sep("=", f"{len(reruns)} drill test(s) failed beside another and ran again alone")
    for report in reruns:
        lines = str(report.longrepr).splitlines()
        why = next((line[1:].strip() for line in lines if line.startswith("E ")), lines[-1] if lines else "")
        terminalreporter.write_line(f"{report.nodeid} ({report.when}): {why[:2000]}")
    if len(reruns) >= RERUNS_MAX:
        terminalreporter.write_line(f"(every one of the run's {RERUNS_MAX} second tries was taken: a drill that failed "
                                    "beside another after that had none; DRILL_TEST_RERUNS sets the bound)")


def _uses_a_shared_fixture(item: pytest.Item) -> bool:
    """The test uses a fixture of this suite (not pytest's own) wider than one test."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    for definitions in info.name2fixturedefs.values():
        for definition in definitions:
            if definition.scope != "function" and definition.baseid.startswith("tests"):
                return True
    return False


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Each test gets its own drill state directory (locks, the register of runs), so
    `drill recover --all` in one test never touches another test's runs (some tests leave a run
    unrecoverable on purpose: Toxiproxy killed mid-drill). Drills started as subprocesses
    inherit it through the environment."""
    path = tmp_path_factory.mktemp("drill-state")
    previous = os.environ.get("DRILL_STATE_DIR")
    os.environ["DRILL_STATE_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("DRILL_STATE_DIR", None)
    else:
        os.environ["DRILL_STATE_DIR"] = previous


@pytest.fixture
def toxiproxy_url() -> Iterator[str]:
    """A real toxiproxy-server on a free loopback port, stopped after the test."""
    with toxiproxy_server() as url:
        yield url


@pytest.fixture
def latency_run(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A factory: ``latency_run(parent, name)`` copies the journal, scenario and probe samples of
    a real `drill run scenarios/latency.yaml` to ``parent/name`` and writes results.json,
    junit.xml and report.html from them exactly as `drill report` does."""

    def make(parent: Path | None = None, name: str = "run") -> Path:
        return make_latency_run(parent or tmp_path, name)

    return make


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start a reference program (``spawn("gateway", **env) -> Program``) on a free port; every
    one is killed at teardown."""
    with programs(tmp_path) as start:
        yield start


@pytest.fixture
def staging_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, int]]:
    """compose/staging.yaml up under a project of its own on free ports (the DRILL_PORT_*
    variables set meanwhile): one stack for every test of this process that asks for it. They
    run one after another (:func:`_staging_users_together`); the first brings it up, and it is
    taken down after the last (:func:`pytest_runtest_teardown`; ``down`` fails when a container or
    network of its project is left). Each test gets it with every service running and healthy:
    one that a test before left down (a container killed, dockerd restarted) is started again
    first. Bringing a dozen containers up and down took ~15-20 s a module beside two drills;
    three modules share it (tests/test_docker_staging.py keeps a stack of its own: why there)."""
    held = request.config.stash.get(STAGING_KEY, None)
    if held is None:
        stack = contextlib.ExitStack()
        up = stack.enter_context(compose_staging_stack(tmp_path_factory.mktemp("staging-logs")))
        held = request.config.stash[STAGING_KEY] = (stack, up)
    runtime, ports = held[1]
    if runtime.unhealthy():
        runtime.up(wait_s=180)
    return runtime, ports


def _uses_the_staging_stack(item: pytest.Item | None) -> bool:
    return item is not None and "staging_stack" in getattr(item, "fixturenames", ())


def _staging_users_together(items: list[pytest.Item]) -> None:
    """The tests that use :func:`staging_stack` moved to run one after another, where the first
    of them was (every worker reorders the same way, as pytest-xdist requires). Only Docker
    tests use it, and they keep to one worker (the ``docker`` group)."""
    users = [item for item in items if _uses_the_staging_stack(item)]
    if users:
        first = items.index(users[0])
        others = [item for item in items if not _uses_the_staging_stack(item)]
        items[:] = others[:first] + users + others[first:]


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the last test that uses :func:`staging_stack` (the next uses none), it goes down."""
    if _uses_the_staging_stack(item) and not _uses_the_staging_stack(nextitem):
        held = item.config.stash.get(STAGING_KEY, None)
        if held is not None:
            del item.config.stash[STAGING_KEY]
            held[0].close()  # ComposeRuntime.down: a StackError when a container or network is left


