"""``drill list [DIR]``: the scenarios and campaigns under a directory, what each breaks, what it
must meet, and how its last run went.

The last verdict is read from the run directories under ``--reports-dir`` (``reports/<name>/
<UTC stamp>-<id>/results.json``, or ``campaign.json`` for a campaign); the newest stamp wins.
Files that are not drill files are skipped; a drill file that does not load is listed with its
first problem, so ``drill list`` doubles as a quick look at what ``drill validate`` would say.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import ScenarioError

__all__ = ["Entry", "last_verdict", "list_command", "list_entries"]

_RESULTS = "results.json"
_CAMPAIGN_SUMMARY = "campaign.json"  # harness.campaign.SUMMARY_FILE
_MAX_FILES = 2000  # a directory is listed, not crawled: a huge tree is cut, and said so


@dataclass(frozen=True)
class Entry:
    """One drill file as ``drill list`` shows it."""

    path: Path
    kind: str  # Scenario | Campaign
    name: str
    faults: list[str]
    objectives: list[str]
    last_verdict: str | None
    last_run: str | None
    problem: str | None = None


def _kind(path: Path) -> str | None:
    from harness.scenario.loader import parse_yaml, read_text_safely

    try:
        data, _ = parse_yaml(read_text_safely(path), path)
    except ScenarioError:
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if kind in ("Scenario", "Campaign") else None


def last_verdict(reports_dir: Path, name: str, summary_file: str = _RESULTS) -> tuple[str | None, str | None]:
    """(verdict, started_at) of the newest run of ``name`` under ``reports_dir``; (None, None) if none."""
    runs = sorted((Path(reports_dir) / name).glob(f"*/{summary_file}"), key=lambda p: p.parent.name, reverse=True)
    for summary in runs:
        try:
            data = json.loads(summary.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a damaged or half-written run: look at the one before
        if isinstance(data, dict) and isinstance(data.get("verdict"), str):
            started = data.get("started_at")
            return data["verdict"], str(started) if started else summary.parent.name
    return None, None


def _objective_words(objectives: dict[str, object]) -> list[str]:
    words: list[str] = []
    for key, value in objectives.items():
        if key == "failover_to":
            words.append(f"failover to {value}")
        elif isinstance(value, dict) and "max" in value:
            words.append(f"{key} ≤ {value['max']} ({value.get('during', 'fault')})")
        elif key == "max_error_rate" and isinstance(value, int | float):
            words.append(f"error rate ≤ {value * 100:g} %")
        elif key.endswith("_s") and isinstance(value, int | float):
            words.append(f"{key} ≤ {value:g} s")
        elif key.endswith("_ms") and isinstance(value, int | float):
            words.append(f"{key} ≤ {value:g} ms")
        else:
            words.append(f"{key} ≤ {value}")
    return words


def _first(exc: ScenarioError) -> str:
    return exc.problems[0] if exc.problems else str(exc)


def _scenario_entry(path: Path, reports_dir: Path) -> Entry:
    from harness.scenario import load_scenario

    try:
        spec = load_scenario(path).spec
    except ScenarioError as exc:
        return Entry(path, "Scenario", path.stem, [], [], None, None, problem=_first(exc))
    faults = [f"{f.name} ({f.type})" for f in spec.faults]
    objectives = _objective_words(spec.objectives.model_dump(exclude_none=True, by_alias=True))
    verdict, when = last_verdict(reports_dir, spec.name)
    return Entry(path, "Scenario", spec.name, faults, objectives, verdict, when)


def _campaign_entry(path: Path, reports_dir: Path) -> Entry:
    from harness.campaign import load_campaign
    from harness.scenario import load_scenario

    try:
        spec, scenarios = load_campaign(path)
    except ScenarioError as exc:
        return Entry(path, "Campaign", path.stem, [], [], None, None, problem=_first(exc))
    faults: list[str] = []
    for scenario in scenarios:
        try:
            loaded = load_scenario(scenario).spec
            faults.append(f"{scenario.name}: {', '.join(str(f.type) for f in loaded.faults)}")
        except ScenarioError:
            faults.append(f"{scenario.name}: invalid")
    every = [f"every {spec.every / 86400:g} days"] if spec.every else []
    verdict, when = last_verdict(reports_dir, spec.name, _CAMPAIGN_SUMMARY)
    return Entry(path, "Campaign", spec.name, faults, every, verdict, when)


def list_entries(directory: Path, reports_dir: Path) -> tuple[list[Entry], bool]:
    """Every scenario and campaign under ``directory`` (recursively, sorted by path), and whether
    the listing was cut at the file limit."""
    entries: list[Entry] = []
    files = sorted(p for pattern in ("*.yaml", "*.yml") for p in Path(directory).rglob(pattern) if p.is_file())
    cut = len(files) > _MAX_FILES
    for path in files[:_MAX_FILES]:
        kind = _kind(path)
        if kind == "Scenario":
            entries.append(_scenario_entry(path, reports_dir))
        elif kind == "Campaign":
            entries.append(_campaign_entry(path, reports_dir))
    return entries, cut


_VERDICT_STYLE = {"passed": "green", "failed": "red", "aborted": "yellow", "bad_input": "yellow",
                  "inconclusive": "magenta"}


def _table(entries: list[Entry], directory: Path) -> Table:
    table = Table(title=f"drills under {escape(str(directory))}", title_justify="left", show_lines=True)
    table.add_column("file (name when it differs)", overflow="fold")
    table.add_column("faults", overflow="fold")
    table.add_column("objectives", overflow="fold")
    table.add_column("last run", overflow="fold")
    for entry in entries:
        try:
            shown = entry.path.relative_to(directory)
        except ValueError:
            shown = entry.path
        label = escape(str(shown))
        if entry.name != entry.path.stem:
            label += f"\n[dim]{escape(entry.name)}[/dim]"
        if entry.kind == "Campaign":
            label += " [dim](campaign)[/dim]"
        if entry.problem is not None:
            table.add_row(label, f"[red]invalid:[/red] {escape(entry.problem)}", "", "")
            continue
        if entry.last_verdict is None:
            last = "[dim]never run[/dim]"
        else:
            style = _VERDICT_STYLE.get(entry.last_verdict, "white")
            last = f"[{style}]{escape(entry.last_verdict)}[/{style}]\n{escape(entry.last_run or '')}"
        table.add_row(label, escape("\n".join(entry.faults)),
                      escape("\n".join(entry.objectives)) or "[dim]none[/dim]", last)
    return table


@click.command("list")
@click.argument("directory", required=False, default=Path("scenarios"),
                type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--reports-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True, help="Where the run directories are (for the last verdict).")
def list_command(directory: Path, reports_dir: Path) -> None:
    """Show the scenarios and campaigns under DIRECTORY (default scenarios/): their faults,
    objectives and last verdict. Exit 0, or 2 when a drill file there does not load."""
    entries, cut = list_entries(directory, reports_dir)
    console = Console(highlight=False)
    if not entries:
        console.print(f"no scenario or campaign under {escape(str(directory))}")
        return
    console.print(_table(entries, directory))
    if cut:
        console.print(f"[yellow]only the first {_MAX_FILES} YAML files were read[/yellow]")
    if any(e.problem is not None for e in entries):
        raise click.exceptions.Exit(2)
