"""Run the pinned LiteLLM proxy (``scripts/litellm-setup``) with a config given in the stack file.

Environment:

- ``LITELLM_CONFIG``  the proxy's ``config.yaml``, whole (YAML text, comments kept); written to
  ``$DRILL_STACK_LOG_DIR/litellm/config.yaml`` so the run keeps the exact config it drilled
- ``HOST``, ``PORT``  where the proxy listens (127.0.0.1 only)
- ``DRILL_LITELLM``   the ``litellm`` executable (default ``.venv-litellm/bin/litellm``)

The drill's own callback (``targets/gateways/litellm_record.py``) is copied beside the config so a
config may name it (``litellm_settings.callbacks: litellm_record.handler``); it writes the
gateway's own record of every call to ``litellm/calls.jsonl``.

LiteLLM fetches its model price map from the internet at start unless
``LITELLM_LOCAL_MODEL_COST_MAP`` is true (https://docs.litellm.ai/docs/completion/token_usage,
"LITELLM_LOCAL_MODEL_COST_MAP"); the launcher always sets it: a drill contacts 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from targets.gateways.common import REPO_ROOT, fail, run, work_dir

RECORD_MODULE = Path(__file__).with_name("litellm_record.py")


def main() -> int:
    config = os.environ.get("LITELLM_CONFIG")
    if not config:
        return fail("LITELLM_CONFIG is not set: give the proxy's config.yaml in the stack file's env")
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "4000")
    binary = os.environ.get("DRILL_LITELLM") or str(REPO_ROOT / ".venv-litellm" / "bin" / "litellm")
    if not Path(binary).is_file():
        return fail(f"{binary} not found: run scripts/litellm-setup (docs/gateways.md)")
    folder = work_dir("litellm")
    config_path = folder / "config.yaml"
    config_path.write_text(config, encoding="utf-8")
    shutil.copyfile(RECORD_MODULE, folder / RECORD_MODULE.name)
    env = dict(os.environ)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["DRILL_LITELLM_RECORD"] = str(folder / "calls.jsonl")
    env.pop("PYTHONPATH", None)  # drill's tree must not shadow the proxy's own packages
    argv = [binary, "--config", str(config_path), "--host", host, "--port", port]
    return run(argv, env, folder)


if __name__ == "__main__":
    sys.exit(main())
