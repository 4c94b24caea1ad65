"""Answer quality on canary queries (issue 27): the canary file's checks, recall@k and the
per-phase/tier figures, ``min_quality`` (passed, failed, undecided with too few scored answers,
not measurable without an index), the scenario's FILE:LINE errors, and the real prober against a
real aiohttp embeddings server on 127.0.0.1 that indexes the documents once and scores every
answer into ``samples/quality.csv``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from aiohttp import web

from harness import rundir
from harness.errors import ScenarioError
from harness.load import LoadPlan, RequestSpec
from harness.load import canaries as load_canaries
from harness.load.canaries import CanaryProbe, CanarySet, read_canaries
from harness.load.prober import _main as prober_main
from harness.measure.quality import QUALITY_COLUMNS, nearest_documents, recall_of, similarity
from harness.measure.quality_phases import min_quality_objective, quality_phase_stats
from harness.rundir.quality import read_quality, read_quality_index
from harness.scenario import load_scenario
from harness.testing import REPO, serve_in_thread

CANARY_FILE = REPO / "targets" / "data" / "embeddings-canaries.json"
SHIPPED = read_canaries(CANARY_FILE, 5)


def test_the_shipped_canary_file_reads_and_bad_ones_say_what_is_wrong(tmp_path: Path) -> None:
    assert len(SHIPPED.documents) == 16 and len(SHIPPED.canaries) == 5
    assert SHIPPED.canaries[0].relevant == (0, 1)
    assert CanarySet.from_dict(json.loads(json.dumps(SHIPPED.to_dict()))) == SHIPPED
    bad = tmp_path / "bad.json"
    bad.write_text('{"documents": ["a"],\n "canaries": [}')
    with pytest.raises(ValueError, match=r"bad.json:2 is not JSON"):
        read_canaries(bad, 1)
    bad.write_text(json.dumps({"documents": ["a", "b"], "canaries": [{"query": "q", "relevant": [2]}]}))
    with pytest.raises(ValueError, match=r"canaries\[0\].relevant must list document numbers 0..1"):
        read_canaries(bad, 1)
    with pytest.raises(ValueError, match="k 5 is more than the 4 documents"):
        read_canaries(_with_documents(tmp_path, 4), 5)


def _with_documents(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"documents": [f"d{i}" for i in range(n)], "canaries": [{"query": "q", "relevant": [0]}]}))
    return path


def test_nearest_documents_and_recall() -> None:
    index = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    assert nearest_documents(np.array([1.0, 0.1]), index, 2) == (0, 2)
    assert recall_of((0, 2), (0, 2)) == 1.0 and recall_of((0, 2), [1, 3]) == 0.0 and recall_of((1,), (1, 3)) == 0.5
    with pytest.raises(ValueError):
        recall_of((0,), ())


def test_a_canary_probe_rotates_the_queries_and_scores_an_answer_against_its_index() -> None:
    probe = CanaryProbe(SHIPPED, {"model": "m", "input": "placeholder"})
    numbers = [probe.body(i)[0] for i in range(7)]
    assert numbers == [0, 1, 2, 3, 4, 0, 1]
    assert json.loads(probe.body(2)[1]) == {"model": "m", "input": SHIPPED.canaries[2].query}
    eye = np.eye(16)
    answers = [_answer(eye)]
    assert probe.set_index(answers) is None
    # The query's vector lies between its two relevant documents: both are nearest.
    assert probe.score(0, _answer(eye[[0]] + eye[[1]])).score == 1.0  # type: ignore[union-attr]
    scored = probe.score(1, _answer(eye[[12]]))
    assert scored is not None and scored.score == 0.0 and scored.nearest[0] == 12
    assert probe.score(1, _answer(np.ones((1, 8)))) == load_canaries.Score(1, 0.0, ())  # another model's size
    assert probe.score(1, b"not json") is None
    assert probe.set_index([_answer(eye[:3])]) == "3 vectors for 16 documents"
    with pytest.raises(ValueError, match="JSON object body"):
        CanaryProbe(SHIPPED, None)


def _answer(vectors: np.ndarray) -> bytes:
    return json.dumps({"object": "list", "model": "m", "data": [
        {"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]}).encode()


def _rows(spec: list[tuple[float, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"start": t, "canary": i % 5, "served_by": tier, "tier": tier, "k": 5, "score": r,
                          "nearest": ""} for i, (t, tier, r) in enumerate(spec)], columns=QUALITY_COLUMNS)


PHASES = {"baseline": (0.0, 10.0), "fault": (10.0, 20.0), "recovery": (20.0, 30.0)}


def test_quality_is_summarised_per_phase_and_tier() -> None:
    rows = _rows([(t * 0.5, "hosted", 1.0) for t in range(20)]
                 + [(10 + t * 0.5, "gpu" if t % 4 else "hosted", 0.5 if t % 4 else 1.0) for t in range(20)])
    stats = quality_phase_stats(rows, PHASES)
    assert stats["baseline"].answers == 20 and stats["baseline"].score == 1.0 and stats["baseline"].k == 5
    fault = stats["fault"]
    assert fault.answers == 20 and fault.score == pytest.approx(0.625)
    assert fault.by_tier["gpu"].answers == 15 and fault.by_tier["gpu"].score == 0.5
    assert fault.by_tier["hosted"].score == 1.0
    assert stats["recovery"].answers == 0 and stats["recovery"].score is None


def test_min_quality_passes_fails_or_stays_undecided_on_too_few_answers() -> None:
    held = quality_phase_stats(_rows([(t * 0.5, "hosted", 1.0) for t in range(40)]), PHASES)
    judged = min_quality_objective("recall@5", None, 0.9, held)
    assert judged.objective.passed and judged.undecided == ()
    collapsed = quality_phase_stats(_rows([(t * 0.5, "hosted", 1.0) for t in range(20)]
                                          + [(10 + t * 0.5, "gpu", 0.4) for t in range(20)]), PHASES)
    judged = min_quality_objective("recall@5", None, 0.9, collapsed)
    assert not judged.objective.passed and judged.objective.measured == 0.4 and judged.undecided == ()
    assert "baseline 1.00 over 20 answers, fault 0.40 over 20 answers" in (judged.objective.note or "")
    assert min_quality_objective("recall@5", 0.3, None, collapsed).objective.passed  # an absolute floor
    few = quality_phase_stats(_rows([(t, "hosted", 1.0) for t in range(10)] + [(10 + t, "gpu", 0.2) for t in range(4)]),
                              PHASES)
    judged = min_quality_objective("recall@5", None, 0.9, few)
    assert judged.undecided == ("min_quality: 4 scored answers in the fault phase, fewer than 10",)
    none = min_quality_objective("recall@5", None, 0.9, held, index_problem="HTTP 503 after 5 tries")
    assert not none.objective.passed and none.objective.measured is None and "HTTP 503" in (none.objective.note or "")


def _scenario(tmp_path: Path, load_extra: str, objectives: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"""apiVersion: drill/v1
kind: Scenario
name: q
stack: {{runtime: local, file: {REPO / "targets" / "local-stack.embeddings.yaml"}}}
load:
  host: http://127.0.0.1:8080
  users: 0
  request: {{method: POST, path: /v1/embeddings, json: {{model: m, input: x}}}}
{load_extra}
phases: {{baseline: 5s, fault: 5s, recovery: 5s}}
faults:
  - {{name: storm, type: http_error, target: {{route: embeddings-hosted}}, status: 429}}
objectives:
{objectives}
""")
    return path


def test_the_scenario_names_file_line_and_field_for_quality_mistakes(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"s.yaml:\d+ objectives.min_quality: measures the probe's canary"):
        load_scenario(_scenario(tmp_path, "", "  min_quality: {recall_at_k: 0.9x baseline}"))
    with pytest.raises(ScenarioError, match=r"s.yaml:9 load.canaries.file: no such file"):
        load_scenario(_scenario(tmp_path, "  canaries: {file: nowhere.json}", "  max_error_rate: 0.1"))
    with pytest.raises(ScenarioError, match=r"recall_at_k"):
        load_scenario(_scenario(tmp_path, f"  canaries: {{file: {CANARY_FILE}}}", "  min_quality: {recall_at_k: 2x baseline}"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"documents": ["a"], "canaries": []}))
    with pytest.raises(ScenarioError, match=r"s.yaml:9 load.canaries.file: .*canaries must be a list"):
        load_scenario(_scenario(tmp_path, f"  canaries: {{file: {bad}, k: 1}}", "  max_error_rate: 0.1"))
    loaded = load_scenario(_scenario(tmp_path, f"  canaries: {{file: {CANARY_FILE}, k: 3}}",
                                     "  min_quality: {recall_at_k: 0.8}"))
    assert loaded.spec.objectives.min_quality is not None and loaded.spec.objectives.min_quality.bound == ("recall_at_k", 0.8, None)


def test_the_quality_files_are_no_request_samples_and_their_names_agree() -> None:
    assert (load_canaries.QUALITY_FILE, load_canaries.QUALITY_INDEX_FILE) == (rundir.QUALITY_FILE,
                                                                             rundir.QUALITY_INDEX_FILE)


# --- the real prober against a real embeddings server ---------------------------------------------


def _embeddings_app(switch_after_index: bool) -> web.Application:
    """Answers each document its own axis and each canary query the sum of its relevant
    documents' axes; after the index, with ``switch_after_index``, another space (axes shifted
    by 7) from tier gpu: well-formed answers that find the wrong documents."""
    position = {text: i for i, text in enumerate(SHIPPED.documents)}
    queries = {c.query: c.relevant for c in SHIPPED.canaries}
    calls = {"n": 0}

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        calls["n"] += 1
        wrong = switch_after_index and calls["n"] > 1
        vectors = []
        for text in texts:
            v = np.zeros(16)
            for axis in ([position[text]] if text in position else list(queries[text])):
                v[(axis + 7) % 16 if wrong else axis] = 1.0
            vectors.append(v)
        headers = {"X-Served-By": "b" if wrong else "a", "X-Tier": "gpu" if wrong else "hosted"}
        return web.Response(body=_answer(np.array(vectors)), content_type="application/json", headers=headers)

    app = web.Application()
    app.router.add_post("/v1/embeddings", embeddings)
    return app


@pytest.mark.parametrize(("switch", "tier", "recall"), [(False, "hosted", 1.0), (True, "gpu", 0.5)])
def test_the_prober_indexes_once_then_scores_every_answer(tmp_path: Path, switch: bool, tier: str,
                                                          recall: float) -> None:
    """``recall``: the model's own space finds every relevant document; the other space at most
    half of them on average (the two nearest are always wrong, only ties fill the rest)."""
    with serve_in_thread(_embeddings_app(switch)) as url:
        plan = LoadPlan(host=url, users=0, spawn_rate=1, duration_s=1.0, timeout_s=2.0, probe_rate_hz=10,
                        request=RequestSpec(method="POST", path="/v1/embeddings", json={"model": "m", "input": "x"},
                                            answer_schema="openai.embeddings"),
                        canaries=read_canaries(CANARY_FILE, 5))
        out = tmp_path / "samples" / "probe.csv"
        assert asyncio.run(prober_main(plan, out)) == 0
    index = read_quality_index(tmp_path)
    assert index is not None and index.problem is None and (index.tier, index.documents, index.k) == ("hosted", 16, 5)
    rows = read_quality(tmp_path)
    assert rows is not None and len(rows) == 10  # one row per probe answer
    assert list(rows["canary"]) == [0, 1, 2, 3, 4] * 2
    assert set(rows["tier"]) == {tier}
    assert rows["score"].mean() == 1.0 if not switch else rows["score"].mean() <= recall
    probe = pd.read_csv(out)
    assert set(probe["ok"]) == {1}  # every request succeeded, whatever its recall
    assert set(rows["start"].round(6)) == set(probe["start"].round(6))  # each row joins its request
    assert rundir.request_sample_files(tmp_path) == [out]


# --- the verdict: min_quality in the one decision, from a recorded run ------------------------------


def _recorded_run(tmp_path: Path, recalls: list[tuple[str, str, float]]) -> Path:
    """tests/data/latency-run (a real run; its p95 objective dropped so the others pass) with
    load.canaries, min_quality and scored answers at 5 Hz: (phase, tier, recall) per answer."""
    import shutil
    from datetime import datetime

    from harness.results.compute import compute_results

    run_dir = tmp_path / "run"
    shutil.copytree(REPO / "tests" / "data" / "latency-run", run_dir)
    scenario = run_dir / rundir.SCENARIO_FILE
    text = scenario.read_text(encoding="utf-8").replace("  p95_ms: 2x baseline\n", "")
    text = text.replace("  probe_rate_hz: 20\n", "  probe_rate_hz: 20\n  canaries: {file: canaries.json, k: 5}\n")
    scenario.write_text(text.replace("  failover_to: gpu\n", "  failover_to: gpu\n  min_quality: {recall_at_k: 0.9x baseline}\n"),
                        encoding="utf-8")
    before, _ = compute_results(run_dir)
    assert before.quality is None and before.verdict == "passed"
    starts = {name: datetime.fromisoformat(p.start.replace("Z", "+00:00")).timestamp() for name, p in before.phases.items()}
    seen: dict[str, int] = {}
    lines = [",".join(QUALITY_COLUMNS)]
    for phase, tier, recall in recalls:
        n = seen[phase] = seen.get(phase, -1) + 1
        lines.append(f"{starts[phase] + 0.2 * n + 0.1:.6f},{n % 5},{tier}-node,{tier},5,{recall:.6f},0 1 2 3 4")
    (run_dir / "samples" / rundir.QUALITY_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (run_dir / "samples" / rundir.QUALITY_INDEX_FILE).write_text(json.dumps(
        {"served_by": "hosted-node", "tier": "hosted", "model": "m", "documents": 16, "k": 5, "problem": None}))
    return run_dir


@pytest.mark.parametrize(("fault_recall", "fault_answers", "verdict"), [
    (1.0, 40, "passed"), (0.6, 40, "failed"), (0.6, 4, "inconclusive")])
def test_min_quality_decides_the_verdict_with_the_other_objectives(tmp_path: Path, fault_recall: float,
                                                                    fault_answers: int, verdict: str) -> None:
    from harness.results.compute import compute_results

    run_dir = _recorded_run(tmp_path, [("baseline", "hosted", 1.0)] * 30 + [("fault", "gpu", fault_recall)] * fault_answers)
    results, _ = compute_results(run_dir)
    assert results.verdict == verdict
    judged = next(o for o in results.objectives if o.name == "min_quality")
    assert judged.measured == fault_recall and judged.passed is (fault_recall >= 0.9)
    assert (judged.undecided is not None) is (verdict == "inconclusive")
    assert results.quality is not None and results.quality.metric == "recall@5"
    assert results.quality.phases["fault"].by_tier["gpu"].answers == fault_answers
    assert all(o.passed for o in results.objectives if o.name != "min_quality")


# --- chat canaries: output divergence from the primary's answers ---------------------------------

CHAT_FILE = REPO / "targets" / "data" / "chat-canaries.json"


def _chat(text: str) -> bytes:
    return json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}).encode()


def test_chat_canaries_score_each_answer_by_its_similarity_to_the_reference() -> None:
    chat = read_canaries(CHAT_FILE, 5)
    assert chat.kind == "chat" and len(chat.canaries) == 5 and chat.documents == ()
    probe = CanaryProbe(chat, {"model": "chat", "messages": []})
    assert json.loads(probe.body(6)[1])["messages"] == [{"role": "user", "content": chat.canaries[1].query}]
    assert len(probe.index_bodies()) == 5
    assert probe.set_index([_chat(f"answer {i} from the primary model") for i in range(5)]) is None
    same = probe.score(2, _chat("answer 2 from the primary model"))
    assert same is not None and same.score == 1.0 and same.nearest == ()
    other = probe.score(2, _chat("a different model says something else entirely"))
    assert other is not None and other.score < 0.3
    assert probe.score(2, b"{}") is None
    assert similarity("a b c d", "a b x d") == 0.75


def test_a_chat_scenario_names_the_metric_the_file_allows(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"s.yaml:\d+ objectives.min_quality.recall_at_k: the canary file "
                                             r"holds chat canaries: use similarity"):
        load_scenario(_scenario(tmp_path, f"  canaries: {{file: {CHAT_FILE}}}", "  min_quality: {recall_at_k: 0.9}"))
    with pytest.raises(ScenarioError, match=r"use recall_at_k"):
        load_scenario(_scenario(tmp_path, f"  canaries: {{file: {CANARY_FILE}}}", "  min_quality: {similarity: 0.9}"))
    with pytest.raises(ScenarioError, match="name one metric"):
        load_scenario(_scenario(tmp_path, f"  canaries: {{file: {CHAT_FILE}}}",
                                "  min_quality: {similarity: 0.9, recall_at_k: 0.9}"))
    loaded = load_scenario(_scenario(tmp_path, f"  canaries: {{file: {CHAT_FILE}}}",
                                     "  min_quality: {similarity: 0.8x baseline}"))
    assert loaded.spec.objectives.min_quality is not None
    assert loaded.spec.objectives.min_quality.bound == ("similarity", None, 0.8)


def _chat_app() -> web.Application:
    """The primary answers each prompt the same way; after the references, every other answer
    comes from a fallback serving another model (tier cpu), which answers differently."""
    calls = {"n": 0}

    async def completions(request: web.Request) -> web.Response:
        prompt = (await request.json())["messages"][-1]["content"]
        calls["n"] += 1
        fallback = calls["n"] > 5 and calls["n"] % 2 == 0
        text = f"the other model rambles about {len(prompt)} things" if fallback else f"primary answer to {prompt}"
        headers = {"X-Served-By": "small" if fallback else "big", "X-Tier": "cpu" if fallback else "hosted"}
        return web.Response(body=_chat(text), content_type="application/json", headers=headers)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


def test_the_prober_compares_chat_answers_with_the_primary_answers_per_tier(tmp_path: Path) -> None:
    with serve_in_thread(_chat_app()) as url:
        plan = LoadPlan(host=url, users=0, spawn_rate=1, duration_s=1.0, timeout_s=2.0, probe_rate_hz=10,
                        request=RequestSpec(method="POST", path="/v1/chat/completions",
                                            json={"model": "chat", "messages": []}, answer_schema="openai.chat"),
                        canaries=read_canaries(CHAT_FILE, 5))
        assert asyncio.run(prober_main(plan, tmp_path / "samples" / "probe.csv")) == 0
    index = read_quality_index(tmp_path)
    assert index is not None and (index.kind, index.tier, index.problem) == ("chat", "hosted", None)
    rows = read_quality(tmp_path)
    assert rows is not None and len(rows) == 10
    by_tier = rows.groupby("tier")["score"].mean()
    assert by_tier["hosted"] == 1.0 and by_tier["cpu"] < 0.3  # the fallback's output diverges
    stats = quality_phase_stats(rows, {"run": (0.0, 1e10)})["run"]
    assert stats.by_tier["cpu"].answers == 5 and stats.k == 0
