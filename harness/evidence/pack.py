"""Evidence packs: a run (or a campaign run) as one zip an auditor can check offline.

A pack holds every file of the run directory (report, results, JUnit, journal, samples, the
scenario as run, stack logs) under ``run/`` — or the campaign directory under ``campaign/`` —
and adds:

- ``tabletop.html``      the printable tabletop sheet (harness/evidence/tabletop.py)
- ``environment.json``   the environment fingerprint: each run's recorded environment, a SHA-256
                         over it, and the machine that made the pack
- ``pack.json``          what was packed: each run's id, verdict, scenario file and its hashes
                         (as recorded when the run started, and as packed), approver, participants
- ``MANIFEST.sha256``    ``<sha256>  <path>`` for every other file (``sha256sum -c`` reads it)
- ``MANIFEST.sha256.sig`` with ``--sign``: an Ed25519 signature over the manifest, with the
                         signer's public key and its key id

:func:`verify_pack` needs nothing but the zip (and a trusted public key to say *who* signed): it
names every changed, added or missing file, a duplicated entry and a bad signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.errors import ScenarioError
from harness.results.model import RunResults
from harness.rundir import RESERVE_FILE, RESULTS_FILE, SCENARIO_FILE, journal_path, results_path, scenario_path

PACK_SCHEMA = "drill.pack/v1"
SIGNATURE_SCHEMA = "drill.signature/v1"
MANIFEST_NAME = "MANIFEST.sha256"
SIGNATURE_NAME = "MANIFEST.sha256.sig"
PACK_INFO_NAME = "pack.json"
ENVIRONMENT_NAME = "environment.json"
TABLETOP_NAME = "tabletop.html"
CAMPAIGN_SUMMARY = "campaign.json"
CHUNK = 1 << 20
_MANIFEST_LINE = re.compile(r"^([0-9a-f]{64})  (\S.*)$")


@dataclass
class PackResult:
    path: Path
    files: int
    runs: int
    key_id: str | None


@dataclass
class Verification:
    """What :func:`verify_pack` found. ``ok`` only when every check passed."""

    files: int = 0
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # manifest, duplicate and signature problems
    signature: str = "absent"  # absent | valid | bad | wrong key
    key_id: str | None = None
    trusted: bool = False  # the signature was checked against a key the caller gave

    @property
    def ok(self) -> bool:
        return not (self.changed or self.added or self.missing or self.problems)

    def lines(self) -> list[str]:
        return ([f"changed: {p}" + ("" if "(" in p else " (its SHA-256 differs from MANIFEST.sha256)")
                 for p in self.changed]
                + [f"added: {p} (not in MANIFEST.sha256)" for p in self.added]
                + [f"missing: {p} (listed in MANIFEST.sha256, not in the pack)" for p in self.missing]
                + self.problems)


# --- keys ---------------------------------------------------------------------------------------


def key_id(public_raw: bytes) -> str:
    """A short, stable name for a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def generate_key(out: Path, force: bool = False) -> tuple[Path, Path, str]:
    """Write an Ed25519 private key to ``out`` (PEM PKCS#8, mode 0600) and its public key to
    ``out.pub`` (PEM). Refuses to overwrite either unless ``force``. Returns (key, pub, key id)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out = Path(out)
    pub = out.with_name(out.name + ".pub")
    for path in (out, pub):
        if path.exists() and not force:
            raise ScenarioError(f"{path}: already exists; choose another --out or pass --force to replace it")
    if not out.parent.is_dir():
        raise ScenarioError(f"{out.parent}: no such directory")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = private.public_key()
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(out, 0o600)
    pub.write_bytes(public_pem)
    return out, pub, key_id(raw)


def load_private_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the signing key ({exc.strerror or exc})") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ScenarioError(
            f"{path}: not an unencrypted PEM private key; make one with `drill keygen --out {path}`"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ScenarioError(f"{path}: not an Ed25519 key; make one with `drill keygen --out {path}`")
    return key


def load_public_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the public key ({exc.strerror or exc})") from exc
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ScenarioError(f"{path}: not a PEM public key (drill keygen writes one as KEY.pub)") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ScenarioError(f"{path}: not an Ed25519 public key")
    return key


def _raw_public(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


# --- building -------------------------------------------------------------------------------------


def source_kind(source: Path) -> str:
    """``run`` or ``campaign``; ScenarioError (exit 2) for anything else."""
    source = Path(source)
    if not source.is_dir():
        raise ScenarioError(f"{source}: no such directory; give a run directory or a campaign run directory")
    if (source / CAMPAIGN_SUMMARY).is_file():
        return "campaign"
    if results_path(source).is_file():
        return "run"
    if journal_path(source).is_file():
        raise ScenarioError(f"{source}: no results.json; write it first with `drill report {source}`")
    raise ScenarioError(f"{source}: not a run directory (no results.json) nor a campaign run directory "
                        f"(no {CAMPAIGN_SUMMARY})")


def _files(root: Path) -> list[Path]:
    """Every regular file under ``root``, sorted; symlinks and other writers' temp files skipped."""
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            continue
        if path.name == RESERVE_FILE:  # a killed drill's held-back space: no evidence
            continue
        out.append(path)
    return out


def _run_dirs(source: Path, kind: str) -> list[Path]:
    if kind == "run":
        return [source]
    return sorted(p.parent for p in source.glob(f"*/{RESULTS_FILE}"))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _scenario_entry(run_dir: Path, pack_dir: str, results: RunResults) -> dict[str, Any]:
    scenario = results.scenario
    packed = scenario_path(run_dir)
    sha = _sha256_file(packed) if packed.is_file() else None
    recorded = scenario.sha256
    return {
        "name": scenario.name,
        "original_path": scenario.path,
        "path": pack_dir + SCENARIO_FILE if sha else None,
        "sha256": sha,
        "sha256_at_run_start": recorded,
        "matches_run_start": (sha == recorded) if sha and recorded else None,
    }


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def build_pack(
    source: Path,
    out: Path,
    *,
    approver: str | None = None,
    participants: Iterable[str] = (),
    sign_key: Path | None = None,
    force: bool = False,
) -> PackResult:
    """Write the evidence pack of ``source`` (a run or campaign run directory) to ``out``.

    The zip is written to a temp file beside ``out`` and renamed, so a half-written pack never
    exists under its name; an existing ``out`` is replaced only with ``force``. Raises
    ScenarioError (exit 2) for a bad source, output or key.
    """
    from harness import __version__ as drill_version
    from harness.evidence.tabletop import PackedRun, render_tabletop

    source, out = Path(source), Path(out)
    kind = source_kind(source)
    private = load_private_key(sign_key) if sign_key else None
    public_raw = _raw_public(private.public_key()) if private is not None else None
    kid = key_id(public_raw) if public_raw is not None else None
    if out.resolve().is_relative_to(source.resolve()):
        raise ScenarioError(f"{out}: the pack must be written outside {source} (it would contain itself)")
    if not out.parent.is_dir():
        raise ScenarioError(f"{out.parent}: no such directory for --out")
    if out.exists() and not force:
        # A pack is evidence: never replace one by accident.
        raise ScenarioError(f"{out}: already exists; choose another --out or pass --force to replace it")
    participants = [p.strip() for item in participants for p in str(item).split(",") if p.strip()]
    prefix = "run/" if kind == "run" else "campaign/"
    runs: list[PackedRun] = []
    for run_dir in _run_dirs(source, kind):
        from harness.evidence.tabletop import read_run_results

        rel = run_dir.relative_to(source).as_posix()
        pack_dir = prefix + ("" if rel == "." else rel + "/")
        runs.append(PackedRun(run_dir, pack_dir, read_run_results(run_dir)))
    if not runs:
        raise ScenarioError(f"{source}: the campaign has no run with a results.json to pack")
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if kind == "campaign":
        summary = json.loads((source / CAMPAIGN_SUMMARY).read_text(encoding="utf-8"))
        title = f"campaign {summary.get('name') or source.name}"
    else:
        title = runs[0].results.scenario.name or source.name
    tabletop = render_tabletop(runs, title=title, approver=approver, participants=participants,
                               created_at=created, key_id=kid)
    environments = {r.results.run_id or r.pack_dir: r.results.environment for r in runs}
    environment = {
        "fingerprint_sha256": hashlib.sha256(_canonical(environments)).hexdigest(),
        "runs": environments,
        "packed_on": {"drill": drill_version, "python": platform.python_version(),
                      "platform": platform.platform(), "host": platform.node()},
    }
    info = {
        "schema": PACK_SCHEMA,
        "kind": kind,
        "created_at": created,
        "source": str(source),
        "title": title,
        "approver": approver,
        "participants": participants,
        "signed_by_key_id": kid,
        "runs": [{
            "path": r.pack_dir,
            "run_id": r.results.run_id,
            "verdict": str(r.results.verdict),
            "started_at": r.results.started_at,
            "scenario": _scenario_entry(r.run_dir, r.pack_dir, r.results),
        } for r in runs],
    }
    generated = {
        TABLETOP_NAME: tabletop.encode("utf-8"),
        ENVIRONMENT_NAME: json.dumps(environment, indent=2, default=str).encode("utf-8"),
        PACK_INFO_NAME: json.dumps(info, indent=2, default=str).encode("utf-8"),
    }
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    count = 0
    try:
        hashes: dict[str, str] = {}
        with zipfile.ZipFile(tmp_name, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in _files(source):
                name = prefix + path.relative_to(source).as_posix()
                digest = hashlib.sha256()
                with open(path, "rb") as src, zf.open(_info(name, path.stat().st_mtime), "w", force_zip64=True) as dst:
                    for chunk in iter(lambda: src.read(CHUNK), b""):
                        digest.update(chunk)
                        dst.write(chunk)
                hashes[name] = digest.hexdigest()
            for name, data in generated.items():
                zf.writestr(_info(name, None), data)
                hashes[name] = hashlib.sha256(data).hexdigest()
            manifest = "".join(f"{hashes[n]}  {n}\n" for n in sorted(hashes)).encode("utf-8")
            zf.writestr(_info(MANIFEST_NAME, None), manifest)
            if private is not None and public_raw is not None:
                signature = {
                    "schema": SIGNATURE_SCHEMA,
                    "algorithm": "ed25519",
                    "signed_file": MANIFEST_NAME,
                    "key_id": kid,
                    "public_key": base64.b64encode(public_raw).decode(),
                    "signature": base64.b64encode(private.sign(manifest)).decode(),
                }
                zf.writestr(_info(SIGNATURE_NAME, None), json.dumps(signature, indent=2) + "\n")
            count = len(hashes)
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return PackResult(out, count, len(runs), kid)


def _info(name: str, mtime: float | None) -> zipfile.ZipInfo:
    when = datetime.fromtimestamp(mtime, UTC) if mtime is not None else datetime.now(UTC)
    # Zip stores local-style times from 1980 on; an older mtime (a restored backup) is clamped.
    date_time = max(when.timetuple()[:6], (1980, 1, 1, 0, 0, 0))
    info = zipfile.ZipInfo(name, date_time=date_time)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


# --- verifying ------------------------------------------------------------------------------------


def verify_pack(pack: Path, pubkey: Path | None = None) -> Verification:
    """Check ``pack`` against its own manifest, and its signature (against ``pubkey`` when given).

    Raises ScenarioError (exit 2) when ``pack`` is missing or not a zip, or ``pubkey`` unreadable.
    Everything wrong *inside* a readable pack is reported in the returned Verification.
    """
    pack = Path(pack)
    trusted = load_public_key(pubkey) if pubkey is not None else None
    if not pack.is_file():
        raise ScenarioError(f"{pack}: no such file")
    try:
        zf = zipfile.ZipFile(pack)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ScenarioError(f"{pack}: not a zip file ({exc}); is this an evidence pack from `drill pack`?") from exc
    result = Verification()
    with zf:
        entries = [i for i in zf.infolist() if not i.is_dir()]
        names = [i.filename for i in entries]
        for name in sorted({n for n in names if names.count(n) > 1}):
            result.problems.append(f"duplicate: {name} appears {names.count(name)} times in the zip "
                                   "(an entry was appended after packing)")
        if MANIFEST_NAME not in names:
            result.problems.append(f"missing: {MANIFEST_NAME} (nothing to verify against: not an evidence pack, "
                                   "or the manifest was removed)")
            result.missing.clear()
            return result
        manifest = zf.read(MANIFEST_NAME)
        listed = _parse_manifest(manifest, result)
        result.files = len(listed)
        present = {i.filename: i for i in entries}
        for name, expected in sorted(listed.items()):
            if name not in present:
                result.missing.append(name)
                continue
            try:
                actual = _sha256_member(zf, present[name])
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:  # the bytes changed
                result.changed.append(f"{name} (unreadable: {exc})")
                continue
            if actual != expected:
                result.changed.append(name)
        result.added = sorted(n for n in present if n not in listed and n not in (MANIFEST_NAME, SIGNATURE_NAME))
        _check_signature(zf, names, manifest, trusted, result)
    return result


def _sha256_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    digest = hashlib.sha256()
    with zf.open(info) as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _parse_manifest(manifest: bytes, result: Verification) -> dict[str, str]:
    listed: dict[str, str] = {}
    try:
        text = manifest.decode("utf-8")
    except UnicodeDecodeError:
        result.problems.append(f"{MANIFEST_NAME}: not UTF-8 text (damaged)")
        return listed
    for number, line in enumerate(text.splitlines(), start=1):
        match = _MANIFEST_LINE.match(line)
        if not match:
            result.problems.append(f"{MANIFEST_NAME}:{number}: not a '<sha256>  <path>' line (damaged)")
            continue
        listed[match.group(2)] = match.group(1)
    return listed


def _check_signature(
    zf: zipfile.ZipFile, names: list[str], manifest: bytes, trusted: Any, result: Verification
) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if SIGNATURE_NAME not in names:
        result.signature = "absent"
        if trusted is not None:
            result.problems.append(f"signature: the pack is not signed ({SIGNATURE_NAME} missing), "
                                   "but --pubkey asks for a signature")
        return
    try:
        sig = json.loads(zf.read(SIGNATURE_NAME))
        embedded_raw = base64.b64decode(sig["public_key"], validate=True)
        signature = base64.b64decode(sig["signature"], validate=True)
        embedded = Ed25519PublicKey.from_public_bytes(embedded_raw)
    except (ValueError, KeyError, TypeError) as exc:
        result.signature = "bad"
        result.problems.append(f"signature: {SIGNATURE_NAME} is damaged ({type(exc).__name__})")
        return
    result.key_id = key_id(embedded_raw)
    if trusted is not None and _raw_public(trusted) != embedded_raw:
        result.signature = "wrong key"
        result.trusted = True
        result.problems.append(f"signature: signed by key {result.key_id}, not by the --pubkey key "
                               f"{key_id(_raw_public(trusted))}")
        return
    try:
        (trusted or embedded).verify(signature, manifest)
    except InvalidSignature:
        result.signature = "bad"
        result.problems.append(f"signature: BAD — {MANIFEST_NAME} is not what key {result.key_id} signed")
        return
    result.signature = "valid"
    result.trusted = trusted is not None


__all__ = ["MANIFEST_NAME", "PackResult", "SIGNATURE_NAME", "Verification", "build_pack", "generate_key",
           "verify_pack"]
