"""Fetch a Go toolchain from the Go module proxy into a directory (used by scripts/bootstrap).

    python3 scripts/fetch_go_toolchain.py go1.23.12 .venv/go

Go publishes every release as the module ``golang.org/toolchain`` (version
``v0.0.1-go1.23.12.linux-amd64``); it is what ``GOTOOLCHAIN`` downloads. A Go older than 1.21
cannot use ``GOTOOLCHAIN``, and no Go at all cannot either, so this fetches that module's zip
from ``$GOPROXY`` itself, checks it against the Go checksum database (``$GOSUMDB``, reached
through the proxy first as the go command does), and unpacks it so DIR/bin/go runs.

Standard library only: it runs before drill's own dependencies exist. Prints the path of the go
binary on success; on failure prints one line saying why and exits 1.
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

DEFAULT_GOPROXY = "https://proxy.golang.org,direct"
DEFAULT_GOSUMDB = "sum.golang.org"
TIMEOUT_S = 60

# platform.machine() -> GOARCH, for the architectures Go publishes toolchains for on Linux/macOS.
GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
          "armv6l": "armv6l", "armv7l": "armv6l", "i386": "386", "i686": "386",
          "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "loongarch64": "loong64"}


class FetchError(Exception):
    """Why no toolchain could be fetched, in one line."""


def module_version(go_version: str) -> str:
    """``go1.23.12`` -> ``v0.0.1-go1.23.12.linux-amd64`` for this machine."""
    goos = platform.system().lower()
    goarch = GOARCH.get(platform.machine().lower())
    if goos not in ("linux", "darwin", "freebsd") or goarch is None:
        raise FetchError(f"no Go toolchain is published for {platform.system()}/{platform.machine()}")
    return f"v0.0.1-{go_version}.{goos}-{goarch}"


def proxies(goproxy: str) -> list[str]:
    """The URL entries of a GOPROXY list (``direct`` and ``off`` fetch nothing from a proxy)."""
    entries = [e.strip().rstrip("/") for e in goproxy.replace("|", ",").split(",")]
    return [e for e in entries if e.startswith(("https://", "http://", "file://"))]


def zip_h1(path: Path) -> str:
    """The Go module hash (``h1:``, dirhash.Hash1) of a module zip, as go.sum and sumdb record it."""
    summary = []
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            digest = hashlib.sha256()
            with archive.open(name) as member:
                for chunk in iter(lambda: member.read(1 << 20), b""):
                    digest.update(chunk)
            summary.append(f"{digest.hexdigest()}  {name}\n")
    return "h1:" + base64.b64encode(hashlib.sha256("".join(summary).encode()).digest()).decode()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        return response.read()


def _download(url: str, into: Path) -> None:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, into.open("wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)


def expected_h1(module: str, version: str, proxy_urls: list[str], gosumdb: str) -> str | None:
    """The h1 hash the checksum database records, or None when GOSUMDB=off (the user's choice)."""
    if gosumdb.strip() == "off":
        return None
    name = gosumdb.split()[0].split("+")[0]
    # Like the go command: ask the proxy to relay the database first, then the database itself.
    urls = [f"{p}/sumdb/{name}/lookup/{module}@{version}" for p in proxy_urls if not p.startswith("file://")]
    urls.append(f"https://{name}/lookup/{module}@{version}")
    last = ""
    for url in urls:
        try:
            text = _get(url).decode()
        except (urllib.error.URLError, OSError) as exc:
            last = f"{url}: {getattr(exc, 'reason', exc)}"
            continue
        for line in text.splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[0] == module and fields[1] == version:
                return fields[2]
        last = f"{url}: no hash for {module}@{version}"
    raise FetchError(f"could not check the toolchain against the checksum database ({last})")


def fetch(go_version: str, into: Path, goproxy: str, gosumdb: str) -> Path:
    module = "golang.org/toolchain"
    version = module_version(go_version)
    proxy_urls = proxies(goproxy)
    if not proxy_urls:
        raise FetchError(f"GOPROXY={goproxy} names no module proxy to fetch from")
    into.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into.parent, prefix=".go-fetch-") as scratch:
        archive = Path(scratch) / "toolchain.zip"
        failures = []
        for proxy in proxy_urls:
            try:
                _download(f"{proxy}/{module}/@v/{version}.zip", archive)
                break
            except (urllib.error.URLError, OSError) as exc:
                failures.append(f"{proxy}: {getattr(exc, 'reason', exc)}")
        else:
            raise FetchError("no module proxy answered (" + "; ".join(failures) + ")")
        want = expected_h1(module, version, proxy_urls, gosumdb)
        try:
            got = zip_h1(archive)
        except zipfile.BadZipFile as exc:
            raise FetchError(f"{module}@{version} from the proxy is not a zip ({exc})") from None
        if want is not None and got != want:
            raise FetchError(f"{module}@{version} from the proxy has hash {got}, the checksum database says {want}")
        unpacked = Path(scratch) / "go"
        prefix = f"{module}@{version}/"
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                if not member.filename.startswith(prefix) or ".." in member.filename.split("/"):
                    raise FetchError(f"unexpected path in the toolchain zip: {member.filename}")
                target = unpacked / member.filename[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                mode = (member.external_attr >> 16) & 0o777
                if mode:
                    target.chmod(mode)
        # Zips made without Unix modes lose the executable bit; the go command sets it the same way.
        for tool in [*unpacked.glob("bin/*"), *unpacked.glob("pkg/tool/*/*")]:
            tool.chmod(tool.stat().st_mode | 0o755)
        if into.exists():
            shutil.rmtree(into)
        unpacked.rename(into)
    return into / "bin" / "go"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[0].startswith("go"):
        print("usage: fetch_go_toolchain.py GO_VERSION DIR   (e.g. go1.23.12 .venv/go)", file=sys.stderr)
        return 2
    goproxy = os.environ.get("GOPROXY") or DEFAULT_GOPROXY
    gosumdb = os.environ.get("GOSUMDB") or DEFAULT_GOSUMDB
    try:
        go = fetch(argv[0], Path(argv[1]).resolve(), goproxy, gosumdb)
    except FetchError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(go)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
