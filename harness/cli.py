"""The ``drill`` command line. Exit codes: 0 passed, 1 objectives failed, 2 bad input (nothing
applied), 3 aborted (stop condition, unhealthy stack, infrastructure error) after rollback,
6 inconclusive (the instrument could not see well enough to decide an objective)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import EXIT_ABORTED, EXIT_BAD_INPUT, DrillError, ScenarioError
from harness.init import init_command
from harness.listing import list_command
from harness.runtime.base import Runtime

RUNTIMES = ["local", "compose", "kubernetes"]

if TYPE_CHECKING:
    from harness.results.model import RunResults

console = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)


def _say(text: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}")


def _say_warnings(text: str) -> None:
    """--quiet: only what someone must act on (the engine marks it red or yellow)."""
    if "[red]" in text or "[yellow]" in text:
        _say(text)


def _e(value: Any) -> str:
    """User text (names, paths) made safe to print through rich: markup escaped, undecodable
    bytes and lone surrogates shown as escapes."""
    return escape(str(value).encode("utf-8", "backslashreplace").decode("utf-8"))


class _Guarded(click.Group):
    """No traceback ever reaches the user: an unexpected exception is saved to a file, named in
    one line, and exits 3."""

    def invoke(self, ctx: click.Context) -> Any:
        for stream in (sys.stdout, sys.stderr):
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(errors="backslashreplace")
        try:
            return super().invoke(ctx)
        except DrillError as exc:
            _fail(exc)
        except KeyboardInterrupt:  # outside a drill's own handling: nothing of a drill was applied
            console.print("[red]interrupted[/red]")
            sys.exit(EXIT_ABORTED)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:
            saved = _save_traceback(exc)
            console.print(f"[red]internal error:[/red] {_e(type(exc).__name__)} (a bug in drill); "
                          f"traceback saved to {_e(saved)}", soft_wrap=True)
            sys.exit(EXIT_ABORTED)


def _save_traceback(exc: BaseException) -> str:
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        from harness.rundir.state import subdir

        directory = subdir("crashes")
    except Exception:  # the state dir itself may be what failed
        directory = Path(tempfile.gettempdir())
    fd, path = tempfile.mkstemp(prefix=time.strftime("drill-%Y%m%dT%H%M%S-"), suffix=".txt", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
        fh.write(text)
    return path


def _fail(exc: DrillError) -> None:
    kind = "bad input" if isinstance(exc, ScenarioError) else "error"
    for line in getattr(exc, "problems", [str(exc)]):
        console.print(f"[red]{kind}:[/red] {_e(line)}", soft_wrap=True)
    if isinstance(exc, ScenarioError):
        console.print("[dim]nothing was applied to the stack[/dim]")
    sys.exit(exc.exit_code)


@click.group(cls=_Guarded, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="drill", prog_name="drill")
def main() -> None:
    """drill: failover drills for AI serving platforms.

    \b
    Write a scenario (YAML), then:
      drill validate scenarios/latency.yaml      check it, touch nothing
      drill run scenarios/latency.yaml           run it; prints the report path
      drill report reports/latency/<run>         recompute every figure from a run directory
      drill recover --all                        revert what a crashed run left applied

    Exit codes: 0 passed, 1 objectives failed, 2 bad input (nothing applied),
    3 aborted (stop condition, unhealthy stack, infrastructure error) after rollback,
    6 inconclusive (a host stall, probe lag or lost samples could flip an objective).
    Docs: docs/scenarios.md (the scenario reference), docs/method.md (how RTO is measured).
    """


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check scenario files; touch nothing. Exit 0 when all are valid, 2 otherwise.

    Every problem is printed as FILE:LINE FIELD: MESSAGE.
    """
    from harness.campaign import load_campaign
    from harness.scenario import load_scenario

    bad = 0
    for path in files:
        if _kind(path) == "Campaign":
            try:
                spec, scenarios = load_campaign(path)
                for scenario in scenarios:
                    load_scenario(scenario)
            except ScenarioError as exc:
                bad += 1
                for line in exc.problems:
                    console.print(f"[red]invalid[/red] {_e(line)}", soft_wrap=True)
                continue
            out.print(f"[green]ok[/green] {_e(path)}: campaign {_e(spec.name)}, {len(scenarios)} scenario(s)")
            continue
        try:
            loaded = load_scenario(path)
        except ScenarioError as exc:
            bad += 1
            for line in exc.problems:
                console.print(f"[red]invalid[/red] {_e(line)}", soft_wrap=True)
            continue
        s = loaded.spec
        out.print(f"[green]ok[/green] {_e(path)}: {_e(s.name)}, {len(s.faults)} fault(s), {s.phases.total_s:g}s")
    sys.exit(EXIT_BAD_INPUT if bad else 0)


def _kind(path: Path) -> str | None:
    """The ``kind:`` of a drill file, read with the loaders' own limits (validation proper, and
    its error messages, happen in the loaders)."""
    from harness.scenario.loader import parse_yaml, read_text_safely

    try:
        data, _ = parse_yaml(read_text_safely(Path(path)), Path(path))
    except ScenarioError:
        return None
    return data.get("kind") if isinstance(data, dict) else None


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory to write (default: reports/<scenario>/<UTC time>-<id>/).")
@click.option("--runtime", type=click.Choice(RUNTIMES),
              help="Override the scenario's stack.runtime.")
@click.option("--dry-run", is_flag=True, help="Print the plan and exit; make no call that changes anything.")
@click.option("--repeat", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Run N times and report each figure's median, min, max and 95 % bootstrap CI.")
@click.option("--settle", "settle_s", type=float, default=10.0, show_default=True,
              help="Seconds to wait between repeated runs.")
@click.option("--reports-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True, help="Where run directories go when --out is not given.")
@click.option("--quiet", is_flag=True, help="No live progress and no phase messages; warnings, errors and the "
              "verdict still print.")
@click.option("--events", "events_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write live progress as NDJSON to FILE, one record per second (drill.progress/v1).")
def run(
    scenario: Path, out_dir: Path | None, runtime: str | None, dry_run: bool, repeat: int, settle_s: float,
    reports_dir: Path, quiet: bool, events_path: Path | None,
) -> None:
    """Run a drill: start the stack if the scenario owns one, check steady state, drive load,
    inject the faults, revert them, watch recovery, and write the run directory
    (report.html, results.json, junit.xml, journal.jsonl, samples/).

    \b
    Example:
      drill run scenarios/latency.yaml --out /tmp/drill-run
    """
    from harness.engine import run_drill
    from harness.scenario import load_scenario

    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        _fail(exc)
    if dry_run:
        _print_plan(loaded, runtime)
        return
    if repeat > 1:
        _run_repeated(loaded, repeat, settle_s, out_dir, runtime, reports_dir)
        return
    from harness.progress import Progress

    mode = Progress.mode_for(console, quiet, sys.stdout.isatty())
    try:
        with Progress(console, mode, events_path) as progress:
            result = run_drill(loaded, out=out_dir, runtime=runtime, say=_say_warnings if quiet else _say,
                               reports_dir=reports_dir, observer=progress)
    except DrillError as exc:
        _fail(exc)
    _print_result(result.results, result.run_dir)
    sys.exit(result.exit_code)


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory to write (default: reports/<scenario>/<UTC time>-<id>/; for a replay "
              "reports/tabletop/<run>-<UTC time>/).")
@click.option("--runtime", type=click.Choice(["local", "compose"]), help="Override the scenario's stack.runtime.")
@click.option("--speed", type=click.Choice(["0.5", "1", "2", "4", "8"]), default="1", show_default=True,
              help="A replay's starting speed (the page changes it).")
@click.option("--reports-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True, help="Where run directories go when --out is not given.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="The console's port on 127.0.0.1 (0: a free one).")
@click.option("--participant", "participants", multiple=True,
              help="Someone in the room (repeatable); the page can name them too before the start.")
@click.option("--hold-budget", "hold_budget_s", type=click.FloatRange(0, 3600), default=300.0, show_default=True,
              help="Seconds the facilitator may add to the phases with holds, in all.")
@click.option("--linger", "linger_s", type=click.FloatRange(0, 3600), default=5.0, show_default=True,
              help="Seconds the page keeps serving the result after the drill ends.")
@click.option("--urls-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the two links as JSON to FILE (for scripts).")
def gameday(
    scenario: Path, out_dir: Path | None, runtime: str | None, reports_dir: Path, port: int,
    participants: tuple[str, ...], hold_budget_s: float, linger_s: float, urls_file: Path | None, speed: str,
) -> None:
    """Run a drill from a live page with the people in the room (docs/gameday.md): the page on
    127.0.0.1 shows the terminal's live figures, the phases and each fault; the facilitator
    starts the drill, injects the scenario's `manual` faults, holds a phase or aborts (the
    rollback always runs), and records who noticed, decided and acted on the drill's clock.
    Closing the page changes nothing; Ctrl-C here aborts as in `drill run`.

    Given a run directory instead of a scenario, the page replays that run for a tabletop
    exercise (real speed or faster, pausable; nothing is applied) and records the room's entries
    on the drill's clock into a new directory that names the original run. Ctrl-C ends it.

    \b
    Example:
      drill gameday scenarios/hosted-latency.local.yaml --participant Ana --participant Bo
    """
    from harness.gameday import ConsoleProgress, ConsoleServer, GameDay
    from harness.progress import Progress
    from harness.scenario import load_scenario

    if scenario.is_dir():
        _replay(scenario, out_dir, reports_dir, port, float(speed), urls_file)
        return

    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        _fail(exc)
    day = GameDay(loaded, runtime=runtime, out=out_dir, reports_dir=reports_dir, say=_say,
                  hold_budget_s=hold_budget_s, participants=participants)
    server = ConsoleServer(day, port)
    try:
        server.start()
    except OSError as exc:
        _fail(DrillError(f"the console could not listen on 127.0.0.1:{port}: {exc.strerror or exc}"))
    _serve_links(server, urls_file)
    _say("open the facilitator link to start the drill (Ctrl-C to quit)")
    result = None
    try:
        progress = ConsoleProgress(console, Progress.mode_for(console, False, sys.stdout.isatty()), day)
        with progress:
            result = day.run(progress)
    except KeyboardInterrupt:  # before the start: nothing ran
        _say("quit before the drill started: nothing was applied")
    except DrillError as exc:
        server.stop()
        _fail(exc)
    if result is None:
        server.stop()
        return
    _print_result(result.results, result.run_dir)
    time.sleep(linger_s)  # the page shows the verdict meanwhile
    server.stop()
    sys.exit(result.exit_code)


def _serve_links(server: Any, urls_file: Path | None) -> None:
    out.print(f"facilitator: {server.facilitator_url}")
    out.print(f"observers (read-only): {server.observer_url}")
    if urls_file is not None:
        urls_file.write_text(json.dumps({"facilitator": server.facilitator_url, "observer": server.observer_url}),
                             encoding="utf-8")


def _replay(run_dir: Path, out_dir: Path | None, reports_dir: Path, port: int, speed: float,
            urls_file: Path | None) -> None:
    """drill gameday RUN_DIR: the console replays a finished run until Ctrl-C."""
    from datetime import UTC, datetime

    from harness.gameday import ConsoleServer
    from harness.gameday.replay import ReplayDay

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = out_dir or reports_dir / "tabletop" / f"{run_dir.resolve().name}-{stamp}"
    try:
        day = ReplayDay(run_dir, target, speed)
    except DrillError as exc:
        _fail(exc)
    server = ConsoleServer(day, port)
    try:
        server.start()
    except OSError as exc:
        _fail(DrillError(f"the console could not listen on 127.0.0.1:{port}: {exc.strerror or exc}"))
    _serve_links(server, urls_file)
    _say(f"replaying {escape(str(run_dir))}: open the facilitator link to start (Ctrl-C to end)")
    # Ctrl-C (or a SIGTERM) ends the replay even when drill was started with SIGINT ignored, as a
    # child of a process that ignores it (Python then installs no KeyboardInterrupt of its own).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    try:
        day.close()
    except DrillError as exc:
        _fail(exc)
    if day.status != "waiting":
        _say(f"the tabletop's entries and recomputed results: {escape(str(target))} (`drill pack` packs it)")


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--master", "master_address", required=True, metavar="HOST:PORT",
              help="The drill run's Locust master (the scenario's load.master.bind).")
@click.option("--id", "worker_id", help="The name this worker's samples carry (default: HOST-PID).")
def worker(scenario: Path, master_address: str, worker_id: str | None) -> None:
    """Attach a Locust worker on this machine to a distributed drill (scenario with
    load.master); it sends the scenario's request until the master quits. See docs/scaling.md.

    \b
    Example:
      drill worker scenarios/latency.yaml --master 127.0.0.1:5557    # the master this machine reaches
    """
    from harness.load.worker import run_worker
    from harness.scenario import load_scenario

    try:
        loaded = load_scenario(scenario)
        code = run_worker(loaded.spec.load, master_address, worker_id)
    except DrillError as exc:
        _fail(exc)
    sys.exit(code)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
def report(run_dir: Path) -> None:
    """Recompute every figure and rewrite report.html, results.json and junit.xml from the run
    directory alone (journal.jsonl, scenario.yaml, samples/). Exit code follows the verdict."""
    from harness.engine.outputs import write_outputs
    from harness.results import compute_results

    try:
        results, timeline = compute_results(run_dir)
    except DrillError as exc:
        _fail(exc)
    write_outputs(run_dir, results, timeline)
    _print_result(results, run_dir)
    sys.exit(results.verdict.exit_code)


@main.command()
@click.argument("run_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--all", "all_runs", is_flag=True,
              help="Every run that did not finish its rollback (wherever its --out was) and every run "
                   "directory under --reports-dir; then the stacks they touched are checked.")
@click.option("--reports-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True)
@click.option("--force", is_flag=True,
              help="Also remove faults applied on the stack that no journal knows (stray drill toxics, "
                   "disabled proxies, paused/stopped containers, hook faults).")
@click.option("--runtime", type=click.Choice(RUNTIMES),
              help="The stack to scan for strays (with --force, or to just list them).")
@click.option("--file", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Its stack file.")
@click.option("--project", default="drill-staging", show_default=True, callback=lambda c, p, v: _project(v),
              help="Its compose project.")
@click.option("--toxiproxy-url", help="A Toxiproxy to scan (default: the stack's).")
@click.option("--hook", "hooks", multiple=True, help="A fault hook URL to check (repeatable).")
def recover(
    run_dir: Path | None, all_runs: bool, reports_dir: Path, force: bool, runtime: str | None,
    file: Path | None, project: str, toxiproxy_url: str | None, hooks: tuple[str, ...],
) -> None:
    """Revert whatever a crashed run left applied, from its journal's fault ledger alone, and stop
    the load and local stack it left running. Idempotent: running it twice is safe. Exits 0
    only when nothing is left applied, else 3 naming what is.

    \b
    With a stack named (--runtime, --toxiproxy-url or --hook), also list faults applied on it
    that no journal knows; --force removes them.
      drill recover --all
      drill recover --all --force --runtime compose
    """
    from harness.safety.recover import recover_all, recover_run, recover_strays

    scan_stack = force and not all_runs or runtime or toxiproxy_url or hooks
    if not run_dir and not all_runs and not scan_stack:
        raise click.UsageError("give a RUN_DIR, --all, or a stack to scan (--runtime/--toxiproxy-url/--hook)")
    failed = 0
    lines = recover_run(run_dir) if run_dir else recover_all(reports_dir, force=force) if all_runs else iter(())
    count = 0
    for line, ok in lines:
        count += 1
        failed += 0 if ok else 1
        (out if ok else console).print(_e(line), soft_wrap=True)
    if all_runs and not count:
        out.print("no unfinished run is registered and no run directory is under " + _e(reports_dir))
    if scan_stack:
        try:
            stack = _open(runtime, file, project) if runtime else None
            for line, ok in recover_strays(toxiproxy_url, stack, list(hooks), force=force):
                failed += 0 if ok else 1
                (out if ok else console).print(_e(line), soft_wrap=True)
        except DrillError as exc:
            _fail(exc)
    if failed:
        console.print(f"[red]{failed} thing(s) may still be applied or could not be checked (listed above)[/red]")
    sys.exit(EXIT_ABORTED if failed else 0)


@main.group()
def campaign() -> None:
    """Run a list of scenarios together (e.g. the quarterly drill) and see how it went."""


@campaign.command("run")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--runtime", type=click.Choice(RUNTIMES), help="Override every scenario's runtime.")
@click.option("--reports-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True)
def campaign_run(file: Path, runtime: str | None, reports_dir: Path) -> None:
    """Run every scenario of CAMPAIGN.yaml in order; write campaign.json and an index.html linking
    each run's report. Exit code: the worst of the runs (3 > 2 > 1 > 0).

    \b
    Example:
      drill campaign run scenarios/quarterly.yaml
    """
    from harness.campaign import run_campaign

    try:
        result = run_campaign(file, reports_dir, runtime=runtime, say=_say)
    except DrillError as exc:
        _fail(exc)
    _print_campaign(result.to_dict())
    out.print(f"index: {result.index_path}")
    sys.exit(result.exit_code)


@campaign.command("status")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--reports-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True)
def campaign_status_command(target: Path, reports_dir: Path) -> None:
    """Show the latest run of CAMPAIGN.yaml (or the campaign run directory given). With `every:`
    in the campaign, also say whether it is on schedule: exit 5 when overdue (never run counts)."""
    from harness.campaign import campaign_status, latest_campaign_dir

    due = _campaign_schedule(target, reports_dir)
    try:
        run_dir = target if target.is_dir() else latest_campaign_dir(target, reports_dir)
        summary = campaign_status(run_dir)
    except DrillError as exc:
        if due is not None and due.overdue:
            _say_schedule(due)
        _fail(exc)
    _print_campaign(summary)
    out.print(f"index: {run_dir / 'index.html'}")
    _say_schedule(due)


def _print_campaign(summary: dict[str, Any]) -> None:
    from harness.report.terminal import campaign_verdict_lines, campaign_when_line, verdict_word

    out.print(f"campaign {escape(str(summary.get('name')))}: {verdict_word(summary.get('verdict'))}")
    out.print(campaign_when_line(summary))
    for line in campaign_verdict_lines(summary):
        out.print(line)
    for r in summary.get("runs", []):
        if r.get("run_dir"):
            out.print(f"run: {escape(str(r['run_dir']))}")


@main.group()
def stack() -> None:
    """Start, stop and inspect a stack without running a drill."""


def _project(value: str) -> str:
    from harness.scenario.model import COMPOSE_PROJECT

    if not COMPOSE_PROJECT.match(value):
        raise click.BadParameter("a compose project name is lowercase letters, digits, '-' and '_', "
                                 "starting with a letter or digit")
    return value


def _open(runtime: str, file: Path | None, project: str, context: str | None = None,
          namespace: str | None = None, node_labels: tuple[str, ...] = ()) -> Runtime:
    from harness.runtime import open_stack
    from harness.scenario.model import KubeNodePool, StackRef

    if runtime == "kubernetes":
        if not context or not namespace:
            raise click.UsageError("--runtime kubernetes needs --context and --namespace (never the current one)")
        labels = dict(label.partition("=")[::2] for label in node_labels)
        ref = StackRef(runtime="kubernetes", file=file.resolve() if file else None, context=context,
                       namespace=namespace, gpu_pool=KubeNodePool(node_labels=labels) if labels else None)
        return open_stack(ref, Path(".drill-stack"), runtime)
    if file is None:
        file = Path("compose/staging.yaml" if runtime == "compose" else "targets/local-stack.yaml")
    ref = StackRef(runtime=runtime, file=file.resolve(), project=project)
    return open_stack(ref, Path(".drill-stack"), runtime)


_stack_options = [
    click.option("--runtime", type=click.Choice(RUNTIMES), default="local", show_default=True),
    click.option("--file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                 help="Stack file (local: targets/local-stack.yaml; compose: compose/staging.yaml)."),
    click.option("--project", default="drill-staging", show_default=True, callback=lambda c, p, v: _project(v),
                 help="Compose project name."),
    click.option("--context", help="kubernetes: the kubeconfig context (--file: the kubeconfig)."),
    click.option("--namespace", help="kubernetes: the namespace of the stack."),
    click.option("--node-label", "node_labels", multiple=True, metavar="KEY=VALUE",
                 help="kubernetes: a label of the GPU pool's nodes (repeatable)."),
]


def _with_stack_options(f: Any) -> Any:
    for option in reversed(_stack_options):
        f = option(f)
    return f


@stack.command("up")
@_with_stack_options
def stack_up(runtime: str, file: Path | None, project: str, context: str | None, namespace: str | None,
             node_labels: tuple[str, ...]) -> None:
    """Start the stack, wait until healthy and print its endpoints. The local runtime stays in the
    foreground until Ctrl-C (its processes are children of this command)."""
    try:
        s = _open(runtime, file, project, context, namespace, node_labels)
        endpoints = s.start() or {}
    except DrillError as exc:
        _fail(exc)
    for name, url in endpoints.items():
        out.print(f"{name}: {url}")
    if runtime == "local":
        console.print("stack running; press Ctrl-C to stop it")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            s.stop()


@stack.command("down")
@_with_stack_options
def stack_down(runtime: str, file: Path | None, project: str, context: str | None, namespace: str | None,
               node_labels: tuple[str, ...]) -> None:
    """Stop the stack and remove its containers and networks."""
    try:
        s = _open(runtime, file, project, context, namespace, node_labels)
        s.down()
    except DrillError as exc:
        _fail(exc)
    out.print("stack down")


@stack.command("status")
@_with_stack_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable, with active_faults.")
def stack_status(runtime: str, file: Path | None, project: str, context: str | None, namespace: str | None,
                 node_labels: tuple[str, ...], as_json: bool) -> None:
    """Show services and health, and any fault applied on the stack (``active_faults``: stray
    toxics, disabled proxies, paused or stopped members, hook faults, drill's HTTP faults; empty
    when clean) and every fault on the stack's HTTP fault proxy (``http_faults``)."""
    from harness.safety.strays import http_faults, scan

    try:
        s = _open(runtime, file, project, context, namespace, node_labels)
        services = [member.as_dict() for member in s.members()]
        found = scan(None, s)
    except DrillError as exc:
        _fail(exc)
    # Every fault on the stack's HTTP fault proxy, drill's or not (a proxy that does not answer
    # is already listed in `unchecked` by the scan).
    http: list[dict[str, Any]] = []
    if s.http_fault_proxy_url:
        try:
            http = [{"id": f.id, "type": f.type, "proxy": f.proxy, "params": f.params, "hits": f.hits,
                     "proxy_url": s.http_fault_proxy_url} for f in http_faults(s.http_fault_proxy_url)]
        except DrillError:
            pass
    report = {"services": services, "active_faults": [f.document() for f in found.faults], "http_faults": http,
              "unchecked": found.unchecked}
    if as_json:
        out.print_json(json.dumps(report, default=str))
        return
    table = Table("member", "service", "state", "healthy", "address")
    for member in services:
        table.add_row(_e(member["name"]), _e(member["service"]), _e(member["state"]),
                      "yes" if member["healthy"] else "no", _e(member["address"] or ""))
    out.print(table)
    listed = "".join(f"\n  {_e(f.kind)} {_e(f.target)}: {_e(f.detail)}" for f in found.faults)
    out.print(f"active faults: {len(found.faults)}{listed}")
    if s.http_fault_proxy_url:
        listed = "".join(f"\n  {_e(f['type'])} {_e(f['id'])} on route {_e(f['proxy'])}: {f['hits']} hits" for f in http)
        out.print(f"HTTP faults on {_e(s.http_fault_proxy_url)}: {len(http)}{listed}")
    for line in found.unchecked:
        out.print(f"[yellow]not checked:[/yellow] {_e(line)}")


def _run_repeated(
    loaded: Any, repeat: int, settle_s: float, out_dir: Path | None, runtime: str | None, reports_dir: Path
) -> None:
    from harness.engine import run_repeated

    try:
        results, summary, path = run_repeated(
            loaded, repeat, settle_s=settle_s, out=out_dir, runtime=runtime, say=_say, reports_dir=reports_dir
        )
    except DrillError as exc:
        _fail(exc)
    from harness.report.terminal import repeat_table, repeat_targets, run_verdict_line, small_sample_caution

    for i, r in enumerate(results, 1):
        out.print(run_verdict_line(i, repeat, r.results))
    out.print(repeat_table(loaded.spec.name, summary, repeat_targets(loaded.spec.objectives)))
    caution = small_sample_caution(len(results))
    if caution:
        out.print(caution)
    out.print(f"summary: {path}")
    for r in results:
        out.print(f"report: {r.report_path} ({r.verdict})")
    from harness.verdict import worst_exit_code

    sys.exit(worst_exit_code([r.exit_code for r in results]))


def _print_plan(loaded: Any, runtime: str | None) -> None:
    from harness.report.terminal import plan_lines

    for line in plan_lines(loaded, runtime):
        out.print(line)


def _print_result(results: RunResults, run_dir: Path) -> None:
    from harness.report.cost import cost_lines
    from harness.report.formatting import quantity, target_text
    from harness.report.reasons import fault_line, incident_lines, reasons, stream_lines, verdict_line

    colour = {"passed": "green", "failed": "red", "inconclusive": "magenta"}.get(str(results.verdict), "yellow")
    title = f"{results.scenario.name}: {str(results.verdict).upper()}"
    if results.phases:
        table = Table(title=escape(title), show_lines=False)
        for col in ("objective", "target", "measured", "result"):
            table.add_column(col)
        for o in results.objectives:
            table.add_row(o.name, escape(target_text(o.name, o.target)), escape(quantity(o.name, o.measured)),
                          "[yellow]undecided[/yellow]" if o.undecided
                          else "[green]pass[/green]" if o.passed else "[red]FAIL[/red]")
        out.print(table)
    else:
        out.print(f"[bold]{escape(title)}[/bold] (before any load: nothing was measured)")
    for f in results.faults:
        hit = f" on {', '.join(f.targets)}" if f.targets else ""
        out.print(f"fault {escape(f.name)}{escape(hit)}: {escape(fault_line(f))}")
        for line in incident_lines(f):  # issue 26: every incident, told as it is
            out.print(f"  {escape(line)}")
    for line in stream_lines(results):  # issue 13: streamed requests, per phase
        out.print(escape(line))
    for line in cost_lines(results):  # issue 30: what the failover cost
        out.print(escape(line))
    cleanup = results.cleanup
    out.print(f"cleanup ok: {cleanup.ok} (toxics left: {cleanup.toxics_left})")
    out.print(f"[bold {colour}]{escape(verdict_line(results))}[/bold {colour}]")
    for line in reasons(results)[1:]:
        out.print(f"  [{colour}]{escape(line)}[/{colour}]")
    out.print(f"report: {escape(str(run_dir / 'report.html'))}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "—" if value is None else str(value)


# --- campaign schedules (every: 90d) ---


def _campaign_schedule(target: Path, reports_dir: Path) -> Any:
    """The campaign's schedule (None without ``every:``), from its newest campaign.json."""
    from harness.campaign import campaign_status, latest_campaign_dir, load_campaign, schedule

    try:
        if target.is_dir():
            summary = campaign_status(target)
            return schedule(summary.get("every_s"), summary)
        spec, _ = load_campaign(target)
        if not spec.every:
            return None
        last: dict[str, Any] | None
        try:
            last = campaign_status(latest_campaign_dir(target, reports_dir))
        except DrillError:
            last = None  # never run: overdue
        return schedule(spec.every, last)
    except DrillError as exc:
        _fail(exc)


def _say_schedule(due: Any) -> None:
    from harness.errors import EXIT_OVERDUE

    if due is None:
        return
    if due.overdue:
        out.print(f"[red]{escape(due.text())}[/red]")
        sys.exit(EXIT_OVERDUE)
    out.print(f"[green]{escape(due.text())}[/green]")


# === Evidence and history: drill keygen | pack | verify | history ================================
# (kept together so changes elsewhere in this file merge cleanly)


def _refuse(exc: DrillError) -> None:
    """Like _fail, for commands that never touch a stack (no "nothing was applied" line)."""
    kind = "bad input" if isinstance(exc, ScenarioError) else "error"
    for line in getattr(exc, "problems", [str(exc)]):
        console.print(f"[red]{kind}:[/red] {escape(line)}", soft_wrap=True)
    sys.exit(exc.exit_code)


@main.command()
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Private key file to write (PEM, mode 0600); the public key goes to OUT.pub.")
@click.option("--force", is_flag=True, help="Replace existing key files.")
def keygen(out_path: Path, force: bool) -> None:
    """Make an Ed25519 signing key for evidence packs: KEY (keep it secret) and KEY.pub (share it).

    \b
    Example:
      drill keygen --out ~/.drill/pack-key
      drill pack reports/latency/<run> --out latency.zip --sign ~/.drill/pack-key
    """
    from harness.evidence.pack import generate_key

    try:
        key, pub, kid = generate_key(out_path, force=force)
    except DrillError as exc:
        _refuse(exc)
    out.print(f"private key: {escape(str(key))} (keep it secret)")
    out.print(f"public key:  {escape(str(pub))} (give it to whoever verifies packs)")
    out.print(f"key id:      {kid}")


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The zip to write.")
@click.option("--approver", help="Who signs the exercise off (printed on the tabletop sheet).")
@click.option("--participants", multiple=True,
              help="Attendees, comma-separated or the option repeated (on the tabletop sheet).")
@click.option("--sign", "sign_key", type=click.Path(dir_okay=False, path_type=Path),
              help="Sign the manifest with this Ed25519 key (from `drill keygen`).")
@click.option("--force", is_flag=True, help="Replace an existing PACK.zip.")
def pack(source: Path, out_path: Path, approver: str | None, participants: tuple[str, ...],
         sign_key: Path | None, force: bool) -> None:
    """Write a tamper-evident evidence pack of a run or campaign run directory: every file of the
    run, a printable tabletop sheet, the environment fingerprint and MANIFEST.sha256 over all of
    it, optionally signed. Exit 0, or 2 for bad input.

    \b
    Example:
      drill pack reports/latency/<run> --out latency.zip --approver "A. Lead" \\
          --participants "B. Oncall,C. SRE" --sign ~/.drill/pack-key
      drill verify latency.zip --pubkey ~/.drill/pack-key.pub
    """
    from harness.evidence.pack import build_pack

    try:
        result = build_pack(source, out_path, approver=approver, participants=participants, sign_key=sign_key,
                            force=force)
    except DrillError as exc:
        _refuse(exc)
    signed = f", signed with key {result.key_id}" if result.key_id else ", unsigned"
    out.print(f"pack: {escape(str(result.path))} ({result.files} files, {result.runs} run(s){signed})")


@main.command()
@click.argument("pack_path", metavar="PACK.zip", type=click.Path(path_type=Path))
@click.option("--pubkey", type=click.Path(dir_okay=False, path_type=Path),
              help="The signer's public key (KEY.pub). Without it a signature only proves the pack "
                   "matches the key inside it, not who signed.")
def verify(pack_path: Path, pubkey: Path | None) -> None:
    """Check an evidence pack offline: every file against MANIFEST.sha256, nothing added or
    missing, and the signature. Names each problem.

    Exit codes: 0 intact; 4 not intact (changed, added or missing file, bad signature, wrong
    key); 2 bad input (no such file, not a zip, unreadable key).
    """
    from harness.errors import EXIT_NOT_VERIFIED
    from harness.evidence.pack import verify_pack

    try:
        result = verify_pack(pack_path, pubkey)
    except DrillError as exc:
        _refuse(exc)
    for line in result.lines():
        console.print(f"[red]{escape(line)}[/red]", soft_wrap=True)
    if not result.ok:
        problems = len(result.lines())
        out.print(f"[red]NOT VERIFIED[/red]: {escape(str(pack_path))}: {problems} problem(s)")
        sys.exit(EXIT_NOT_VERIFIED)
    if result.signature == "valid" and result.trusted:
        signed = f"signature valid, key {result.key_id} (matches --pubkey)"
    elif result.signature == "valid":
        signed = (f"signature valid for the key inside the pack ({result.key_id}); pass --pubkey to check "
                  "who signed")
    else:
        signed = "not signed: intact against its own manifest only"
    out.print(f"[green]VERIFIED[/green]: {escape(str(pack_path))}: {result.files} files intact; {signed}")


@main.command()
@click.argument("reports_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Trends page to write (default: REPORTS_DIR/trends.html).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV export (default: beside the page, same name, .csv).")
def history(reports_dir: Path, out_path: Path | None, csv_path: Path | None) -> None:
    """Trends across past runs, from their results.json files alone: RTO, time to detect, error
    rate and capacity restoration per scenario over time, a quarter-over-quarter table,
    regressions flagged, and a CSV for spreadsheets. Exit 0, or 2 when there is nothing to read.

    \b
    Example:
      drill history reports/ --out trends.html
    """
    from harness.report.history import write_history

    try:
        result, page, table = write_history(reports_dir, out_path, csv_path)
    except DrillError as exc:
        _refuse(exc)
    for point, _figure, why in result.regressions:
        out.print(f"[red]REGRESSION[/red] {escape(point.scenario)} {escape(point.run_id)}: {escape(why)}")
    for line in result.skipped:
        console.print(f"[yellow]skipped:[/yellow] {escape(line)}")
    out.print(f"{len(result.points)} run(s), {len(result.regressions)} regression(s)")
    out.print(f"trends: {escape(str(page))}")
    out.print(f"csv: {escape(str(table))}")


main.add_command(init_command)  # drill init: harness/init.py
main.add_command(list_command)  # drill list: harness/listing.py


if __name__ == "__main__":
    main()
