"""The ``drill`` command line. Exit codes: 0 passed, 1 objectives failed, 2 bad input (nothing
applied), 3 aborted (stop condition, unhealthy stack, infrastructure error) after rollback."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import EXIT_ABORTED, EXIT_BAD_INPUT, DrillError, ScenarioError

console = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)


def _say(text: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}")


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
        from harness.state import subdir

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
    3 aborted (stop condition, unhealthy stack, infrastructure error) after rollback.
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
@click.option("--runtime", type=click.Choice(["local", "compose"]),
              help="Override the scenario's stack.runtime.")
@click.option("--dry-run", is_flag=True, help="Print the plan and exit; make no call that changes anything.")
@click.option("--repeat", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Run N times and report each figure's median, min, max and 95 % bootstrap CI.")
@click.option("--settle", "settle_s", type=float, default=10.0, show_default=True,
              help="Seconds to wait between repeated runs.")
@click.option("--reports-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True, help="Where run directories go when --out is not given.")
def run(
    scenario: Path, out_dir: Path | None, runtime: str | None, dry_run: bool, repeat: int, settle_s: float,
    reports_dir: Path,
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
    try:
        result = run_drill(loaded, out=out_dir, runtime=runtime, say=_say, reports_dir=reports_dir)
    except DrillError as exc:
        _fail(exc)
    _print_result(result.results, result.run_dir)
    sys.exit(result.exit_code)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
def report(run_dir: Path) -> None:
    """Recompute every figure and rewrite report.html, results.json and junit.xml from the run
    directory alone (journal.jsonl, scenario.yaml, samples/). Exit code follows the verdict."""
    from harness.results import compute_results, write_outputs

    try:
        results, timeline = compute_results(run_dir)
    except DrillError as exc:
        _fail(exc)
    write_outputs(run_dir, results, timeline)
    _print_result(results, run_dir)
    sys.exit({"passed": 0, "failed": 1}.get(results["verdict"], EXIT_ABORTED))


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
@click.option("--runtime", type=click.Choice(["local", "compose"]),
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
    from harness.recover import recover_all, recover_run, recover_strays

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
@click.option("--runtime", type=click.Choice(["local", "compose"]), help="Override every scenario's runtime.")
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
    """Show the latest run of CAMPAIGN.yaml (or the campaign run directory given)."""
    from harness.campaign import campaign_status, latest_campaign_dir

    try:
        run_dir = target if target.is_dir() else latest_campaign_dir(target, reports_dir)
        summary = campaign_status(run_dir)
    except DrillError as exc:
        _fail(exc)
    _print_campaign(summary)
    out.print(f"index: {run_dir / 'index.html'}")


def _print_campaign(summary: dict[str, Any]) -> None:
    table = Table(title=f"campaign {_e(summary.get('name'))}: {_e(str(summary.get('verdict')).upper())}")
    for col in ("scenario", "verdict", "exit", "run"):
        table.add_column(col)
    for r in summary.get("runs", []):
        table.add_row(_e(Path(str(r.get("scenario", "?"))).name), _e(r.get("verdict")), _e(r.get("exit_code")),
                      _e(r.get("run_dir") or r.get("error") or ""))
    out.print(table)


@main.group()
def stack() -> None:
    """Start, stop and inspect a stack without running a drill."""


def _project(value: str) -> str:
    from harness.scenario.model import COMPOSE_PROJECT

    if not COMPOSE_PROJECT.match(value):
        raise click.BadParameter("a compose project name is lowercase letters, digits, '-' and '_', "
                                 "starting with a letter or digit")
    return value


def _open(runtime: str, file: Path | None, project: str) -> Any:
    from harness.runtime import open_stack
    from harness.scenario.model import StackRef

    if runtime == "local" and file is None:
        file = Path("targets/local-stack.yaml")
    if runtime == "compose" and file is None:
        file = Path("compose/staging.yaml")
    ref = StackRef(runtime=runtime, file=file.resolve(), project=project)
    return open_stack(ref, Path(".drill-stack"), runtime)


_stack_options = [
    click.option("--runtime", type=click.Choice(["local", "compose"]), default="local", show_default=True),
    click.option("--file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                 help="Stack file (local: targets/local-stack.yaml; compose: compose/staging.yaml)."),
    click.option("--project", default="drill-staging", show_default=True, callback=lambda c, p, v: _project(v),
                 help="Compose project name."),
]


def _with_stack_options(f: Any) -> Any:
    for option in reversed(_stack_options):
        f = option(f)
    return f


@stack.command("up")
@_with_stack_options
def stack_up(runtime: str, file: Path | None, project: str) -> None:
    """Start the stack, wait until healthy and print its endpoints. The local runtime stays in the
    foreground until Ctrl-C (its processes are children of this command)."""
    try:
        s = _open(runtime, file, project)
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
def stack_down(runtime: str, file: Path | None, project: str) -> None:
    """Stop the stack and remove its containers and networks."""
    try:
        s = _open(runtime, file, project)
        s.down() if hasattr(s, "down") else s.stop()
    except DrillError as exc:
        _fail(exc)
    out.print("stack down")


@stack.command("status")
@_with_stack_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable, with active_faults.")
def stack_status(runtime: str, file: Path | None, project: str, as_json: bool) -> None:
    """Show services and health, and any fault applied on the stack (``active_faults``: stray
    toxics, disabled proxies, paused or stopped members, hook faults; empty when clean)."""
    from harness.strays import scan

    try:
        s = _open(runtime, file, project)
        status = s.status()
        found = scan(None, s)
    except DrillError as exc:
        _fail(exc)
    services = [x.as_dict() for x in status] if isinstance(status, list) else status
    report = {"services": services, "active_faults": found.faults, "unchecked": found.unchecked}
    if as_json:
        out.print_json(json.dumps(report, default=str))
        return
    out.print(services)
    listed = "".join(f"\n  {_e(f['kind'])} {_e(f['target'])}: {_e(f['detail'])}" for f in found.faults)
    out.print(f"active faults: {len(found.faults)}{listed}")
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
    table = Table(title=f"{loaded.spec.name}: {len(results)} runs {summary['verdicts']}")
    for col in ("figure", "median", "min", "max", "95 % CI of median", "n"):
        table.add_column(col)
    for name, d in summary["figures"].items():
        if d["n"] == 0:
            continue
        table.add_row(name, _fmt(d["median"]), _fmt(d["min"]), _fmt(d["max"]),
                      f"{_fmt(d['ci_low'])} – {_fmt(d['ci_high'])}", str(d["n"]))
    out.print(table)
    out.print(f"summary: {path}")
    for r in results:
        out.print(f"report: {r.report_path} ({r.verdict})")
    sys.exit(max(r.exit_code for r in results))


def _print_plan(loaded: Any, runtime: str | None) -> None:
    s = loaded.spec
    out.print(f"[bold]{_e(s.name)}[/bold] ({_e(loaded.path)}) — dry run, nothing will be changed")
    out.print(f"stack: {runtime or s.stack.runtime} {_e(s.stack.file or '(external)')}")
    out.print(f"load: {s.load.users} users + probe {s.load.probe_rate_hz:g} Hz against {_e(s.load.host)}")
    p = s.phases
    out.print(f"phases: baseline {p.baseline:g}s, fault {p.fault:g}s, recovery {p.recovery:g}s")
    for f in s.faults:
        end = f.at + (f.duration if f.duration is not None else p.fault - f.at)
        out.print(f"  fault {_e(f.name)}: {f.type} on {_e(f.target.describe())} {_e(f.params())} "
                  f"from +{f.at:g}s to +{end:g}s")
    out.print(f"objectives: {_e(s.objectives.model_dump(exclude_none=True))}")


def _print_result(results: dict[str, Any], run_dir: Path) -> None:
    title = f"{_e(results['scenario']['name'])}: {_e(str(results['verdict']).upper())}"
    if results.get("phases"):
        table = Table(title=title, show_lines=False)
        for col in ("objective", "target", "measured", "result"):
            table.add_column(col)
        for o in results.get("objectives", []):
            table.add_row(_e(o["name"]), _e(o["target"]), _e(_fmt(o["measured"])),
                          "[green]pass[/green]" if o["passed"] else "[red]FAIL[/red]")
        out.print(table)
    else:
        out.print(f"[bold]{title}[/bold] (before any load: nothing was measured)")
    for f in results.get("faults", []):
        figures = " ".join(
            f"{key}={_fmt(f[key])}"
            for key in ("rto_s", "time_to_detect_s", "failover_s", "capacity_restored_s", "replacement_region")
            if key in f
        )
        out.print(f"fault {_e(f['name'])}: {_e(figures)} impact={_e(f.get('impact'))}")
    if results.get("abort_reason"):
        out.print(f"[red]aborted:[/red] {_e(results['abort_reason'])}")
    cleanup = results.get("cleanup", {})
    out.print(f"cleanup ok: {cleanup.get('ok')} (toxics left: {cleanup.get('toxics_left')})")
    out.print(f"report: {_e(run_dir / 'report.html')}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "—" if value is None else str(value)


if __name__ == "__main__":
    main()
