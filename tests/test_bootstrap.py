"""scripts/bootstrap on a machine whose Go is too old for Toxiproxy (Debian 12 ships Go 1.19).

Each test runs the real script in a scratch copy of the repository (scripts/ and pyproject.toml
are all it reads). The scratch copy gets a ``.venv/bin/python`` link and an install stamp newer
than pyproject.toml, so bootstrap's own "drill already installed" branch skips pip: the test
exercises only the Go/Toxiproxy part, in seconds rather than minutes, without a new switch in the
script. The stand-in ``go`` first on PATH reports go1.19 and fails any other command with the
go.mod parse error the real Go 1.19 prints, so a bootstrap that hands the build to it shows it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.testing import REPO, free_port, require

GO_PARSE_ERROR = "invalid go version '1.23.0': must match format 1.23"
STAND_IN_GO_119 = f"""#!/bin/sh
case "$1" in
  version) echo "go version go1.19 linux/amd64" ;;
  *) echo "go: errors parsing go.mod: go.mod:3: {GO_PARSE_ERROR}" >&2; exit 1 ;;
esac
"""


def bootstrap_setting(name: str) -> str:
    """A default from scripts/bootstrap, e.g. ``TOXIPROXY_GO_MIN="${TOXIPROXY_GO_MIN:-1.23.0}"``."""
    text = (REPO / "scripts/bootstrap").read_text()
    found = re.search(rf'^{name}="\$\{{{name}:-([^}}]+)\}}"', text, re.MULTILINE)
    assert found, f"scripts/bootstrap sets no default for {name}"
    return found.group(1)


# What scripts/bootstrap sets up besides drill and Toxiproxy: in a scratch checkout each is a
# stand-in that says so (installing them there took 70 of the Go test's 81 s; tests of their own
# cover them), so these tests time only what they are about.
OTHER_SETUPS = ("prometheus-setup", "mitmproxy-setup", "litellm-setup", "portkey-setup", "embeddings-setup")


def scratch_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(REPO / "scripts", root / "scripts")
    for name in OTHER_SETUPS:
        assert (root / "scripts" / name).exists(), f"scripts/bootstrap no longer has {name}: update OTHER_SETUPS"
        (root / "scripts" / name).write_text(f"#!/bin/sh\necho '[{name}] stand-in in a scratch checkout' >&2\n")
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / ".venv/bin").mkdir(parents=True)
    (root / ".venv/bin/python").symlink_to(sys.executable)
    (root / ".venv/.drill-installed").touch()
    return root


def old_go_on_path(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "old-go"
    bin_dir.mkdir()
    (bin_dir / "go").write_text(STAND_IN_GO_119)
    (bin_dir / "go").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("TOXIPROXY_GO_MIN", "GO_TOOLCHAIN", "TOXIPROXY_VERSION")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHON"] = sys.executable
    return env


def run_bootstrap(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / "scripts/bootstrap")], cwd=root, env=env, capture_output=True, text=True, timeout=900
    )


def test_no_reachable_proxy_stops_with_one_message_naming_the_go_needed(tmp_path: Path) -> None:
    root = scratch_repo(tmp_path)
    env = old_go_on_path(tmp_path)
    env["GOPROXY"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    done = run_bootstrap(root, env)

    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert GO_PARSE_ERROR not in output and "errors parsing go.mod" not in output
    stops = [line for line in output.splitlines() if "needs Go >= 1.23.0" in line]
    assert len(stops) == 1, output
    assert "found go1.19" in stops[0] and "https://go.dev/dl/" in stops[0] and env["GOPROXY"] in stops[0]
    assert not (root / ".venv/go").exists()
    assert not (root / ".venv/bin/toxiproxy-server").exists()


@pytest.mark.slow
@pytest.mark.network
def test_old_go_first_on_path_builds_toxiproxy_with_a_fetched_toolchain(tmp_path: Path) -> None:
    """Needs the Go module proxy: without it the one clear message is the accepted outcome."""
    root = scratch_repo(tmp_path)
    env = old_go_on_path(tmp_path)

    done = run_bootstrap(root, env)

    output = done.stdout + done.stderr
    assert GO_PARSE_ERROR not in output and "errors parsing go.mod" not in output
    if done.returncode != 0:
        assert done.returncode == 1, output
        assert len([line for line in output.splitlines() if "needs Go >= 1.23.0" in line]) == 1, output
        return
    server = root / ".venv/bin/toxiproxy-server"
    answer = subprocess.run([str(server), "-version"], capture_output=True, text=True, timeout=30)
    assert answer.stdout.strip() == "toxiproxy-server version 2.12.0"
    fetched_go = root / ".venv/go/bin/go"
    built_by = subprocess.run([str(fetched_go), "version", str(server)], capture_output=True, text=True, timeout=30)
    assert built_by.stdout.strip().endswith(bootstrap_setting("GO_TOOLCHAIN")), built_by.stdout + built_by.stderr

    again = run_bootstrap(root, env)
    assert again.returncode == 0, again.stderr
    assert "toxiproxy-server v2.12.0 already in .venv/bin" in again.stderr


@pytest.mark.network
def test_go_floor_and_toolchain_hash_agree_with_the_go_command() -> None:
    """The hard-coded Go floor is the ``go`` line of Toxiproxy's go.mod, and the fetcher's module
    hash is the one the go command computes (what the checksum database records)."""
    fetched = REPO / ".venv/go/bin/go"  # present exactly when the go on PATH is too old
    go = str(fetched) if fetched.exists() else shutil.which("go") or "go"
    require(shutil.which(go) is not None, "a Go toolchain", "install Go or run scripts/bootstrap")
    module = f"github.com/Shopify/toxiproxy/v2@{bootstrap_setting('TOXIPROXY_VERSION')}"
    done = subprocess.run([go, "mod", "download", "-json", module], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    info = json.loads(done.stdout)

    go_line = re.search(r"^go (\S+)$", Path(info["GoMod"]).read_text(), re.MULTILINE)
    assert go_line and go_line.group(1) == bootstrap_setting("TOXIPROXY_GO_MIN")

    spec = importlib.util.spec_from_file_location("fetch_go_toolchain", REPO / "scripts/fetch_go_toolchain.py")
    assert spec and spec.loader
    fetcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetcher)
    assert fetcher.zip_h1(Path(info["Zip"])) == info["Sum"]
