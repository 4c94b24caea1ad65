"""Run the pinned Portkey AI gateway (``scripts/portkey-setup``) on Node.

Environment:

- ``PORT``            where the gateway listens (``--port``). Portkey's server takes no host: it
  listens on every interface; drills still send to 127.0.0.1 only
- ``DRILL_PORTKEY_DIR`` the npm prefix holding it (default ``.gateways/portkey``)
- ``DRILL_NODE``      the ``node`` executable (default: on PATH)

The open-source gateway has no server-side routing file: each request carries its config in the
``x-portkey-config`` header (https://portkey.ai/docs/product/ai-gateway/configs, "Via the REST
API through the x-portkey-config header"), so a Portkey scenario declares it in
``load.request.headers``. ``--headless`` leaves the console UI off.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from targets.gateways.common import REPO_ROOT, fail, run, work_dir

SERVER = Path("node_modules", "@portkey-ai", "gateway", "build", "start-server.js")


def main() -> int:
    port = os.environ.get("PORT", "8787")
    prefix = Path(os.environ.get("DRILL_PORTKEY_DIR") or REPO_ROOT / ".gateways" / "portkey")
    server = prefix / SERVER
    if not server.is_file():
        return fail(f"{server} not found: run scripts/portkey-setup (docs/gateways.md)")
    node = os.environ.get("DRILL_NODE") or shutil.which("node")
    if not node:
        return fail("node not found on PATH: Portkey's gateway needs Node.js 20 (docs/gateways.md)")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return run([node, str(server), f"--port={port}", "--headless"], env, work_dir("portkey"))


if __name__ == "__main__":
    sys.exit(main())
