"""Evidence packs: drill keygen | pack | verify, on a real run's files.

tests/data/latency-run/ holds the journal, scenario and probe samples of a real
`drill run scenarios/latency.yaml`; the fixture recomputes results.json, junit.xml and
report.html from them exactly as `drill report` does. Pure file work: no stack, no network.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.errors import EXIT_BAD_INPUT, EXIT_NOT_VERIFIED
from harness.evidence.pack import MANIFEST_NAME, SIGNATURE_NAME, build_pack, generate_key, verify_pack
from harness.rundir import RESERVE_FILE

DRILL = [sys.executable, "-m", "harness.cli"]


@pytest.fixture
def run_dir(latency_run: Callable[..., Path]) -> Path:
    return latency_run()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    key, pub, _ = generate_key(tmp_path / "key")
    other, other_pub, _ = generate_key(tmp_path / "other")
    return key, pub


def drill(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(DRILL + list(args), capture_output=True, text=True, cwd=cwd, timeout=120)


def rewrite(pack: Path, out: Path, change: Callable[[str, bytes], bytes | None], add: dict[str, bytes] | None = None) -> Path:
    """Copy a pack entry by entry, as someone editing it would: ``change`` returns new bytes or
    None to drop the entry."""
    with zipfile.ZipFile(pack) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info, data)
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return out


def flip_byte(data: bytes, at: int = 100) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def test_pack_holds_every_run_file_the_sheet_and_a_manifest(run_dir: Path, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    pack = build_pack(run_dir, tmp_path / "p.zip", approver="A. Lead", participants=["B. One, C. Two"],
                      sign_key=keys[0]).path
    with zipfile.ZipFile(pack) as zf:
        names = set(zf.namelist())
        for name in ("run/report.html", "run/results.json", "run/junit.xml", "run/journal.jsonl",
                     "run/samples/probe.csv", "run/scenario.yaml", "tabletop.html", "environment.json",
                     "pack.json", MANIFEST_NAME, SIGNATURE_NAME):
            assert name in names, name
        manifest = zf.read(MANIFEST_NAME).decode()
        info = json.loads(zf.read("pack.json"))
        sheet = zf.read("tabletop.html").decode()
        env = json.loads(zf.read("environment.json"))
    listed = {line.split("  ", 1)[1] for line in manifest.splitlines()}
    assert listed == names - {MANIFEST_NAME, SIGNATURE_NAME}
    scenario = info["runs"][0]["scenario"]
    assert scenario["matches_run_start"] is True and scenario["sha256"] == scenario["sha256_at_run_start"]
    assert info["participants"] == ["B. One", "C. Two"] and info["approver"] == "A. Lead"
    assert len(env["fingerprint_sha256"]) == 64 and env["runs"]
    for text in ("Injects", "provider-slow", "Expected vs observed", "Discussion", "Findings",
                 "Objective p95_ms missed", "B. One", "approver: A. Lead", "Sign-off"):
        assert text in sheet, text


def test_a_real_pack_verifies(run_dir: Path, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    pack = tmp_path / "p.zip"
    assert drill("pack", str(run_dir), "--out", str(pack), "--sign", str(keys[0])).returncode == 0
    proc = drill("verify", str(pack), "--pubkey", str(keys[1]))
    assert proc.returncode == 0, proc.stderr
    assert "VERIFIED" in proc.stdout and "matches --pubkey" in proc.stdout


@pytest.mark.parametrize("member", ["run/results.json", "run/samples/probe.csv", "tabletop.html", "pack.json"])
def test_one_byte_changed_in_any_file_is_named(run_dir: Path, tmp_path: Path, keys: tuple[Path, Path], member: str) -> None:
    pack = build_pack(run_dir, tmp_path / "p.zip", sign_key=keys[0]).path
    bad = rewrite(pack, tmp_path / "bad.zip", lambda n, d: flip_byte(d) if n == member else d)
    proc = drill("verify", str(bad), "--pubkey", str(keys[1]))
    assert proc.returncode == EXIT_NOT_VERIFIED
    assert f"changed: {member}" in proc.stderr


def test_byte_flipped_inside_the_zip_itself_is_caught(run_dir: Path, tmp_path: Path) -> None:
    pack = build_pack(run_dir, tmp_path / "p.zip").path
    raw = bytearray(pack.read_bytes())
    with zipfile.ZipFile(pack) as zf:
        info = zf.getinfo("run/journal.jsonl")
    raw[info.header_offset + 30 + len(info.filename) + 20] ^= 0xFF  # inside its compressed data
    pack.write_bytes(bytes(raw))
    result = verify_pack(pack)
    assert not result.ok and result.changed and result.changed[0].startswith("run/journal.jsonl")


def test_added_and_removed_files_are_named(run_dir: Path, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    pack = build_pack(run_dir, tmp_path / "p.zip", sign_key=keys[0]).path
    added = rewrite(pack, tmp_path / "added.zip", lambda n, d: d, add={"run/note.txt": b"later\n"})
    removed = rewrite(pack, tmp_path / "removed.zip", lambda n, d: None if n == "run/junit.xml" else d)
    proc = drill("verify", str(added), "--pubkey", str(keys[1]))
    assert proc.returncode == EXIT_NOT_VERIFIED and "added: run/note.txt" in proc.stderr
    proc = drill("verify", str(removed), "--pubkey", str(keys[1]))
    assert proc.returncode == EXIT_NOT_VERIFIED and "missing: run/junit.xml" in proc.stderr


def test_wrong_public_key_and_rewritten_manifest_fail_the_signature(
    run_dir: Path, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    pack = build_pack(run_dir, tmp_path / "p.zip", sign_key=keys[0]).path
    proc = drill("verify", str(pack), "--pubkey", str(tmp_path / "other.pub"))
    assert proc.returncode == EXIT_NOT_VERIFIED
    assert "signature: signed by key" in proc.stderr and "not by the --pubkey key" in proc.stderr

    # Someone edits results.json and recomputes the manifest: hashes agree, the signature does not.
    def forge(name: str, data: bytes) -> bytes:
        if name == "run/results.json":
            return data.replace(b'"failed"', b'"passed"')
        return data

    edited = rewrite(pack, tmp_path / "edited.zip", forge)
    import hashlib

    with zipfile.ZipFile(edited) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    entries[MANIFEST_NAME] = "".join(
        f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(entries.items())
        if n not in (MANIFEST_NAME, SIGNATURE_NAME)).encode()
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(forged, "w") as zf:
        for n, d in entries.items():
            zf.writestr(n, d)
    result = verify_pack(forged, keys[1])
    assert not result.changed and result.signature == "bad"
    assert any("signature: BAD" in p for p in result.problems)


def test_unsigned_pack_with_pubkey_fails_and_without_says_unsigned(run_dir: Path, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    pack = build_pack(run_dir, tmp_path / "p.zip").path
    proc = drill("verify", str(pack))
    assert proc.returncode == 0 and "not signed" in proc.stdout
    proc = drill("verify", str(pack), "--pubkey", str(keys[1]))
    assert proc.returncode == EXIT_NOT_VERIFIED and "not signed" in proc.stderr


def test_bad_input_is_exit_2(run_dir: Path, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    not_zip = tmp_path / "x.zip"
    not_zip.write_text("hello", encoding="utf-8")
    for args in (["verify", str(tmp_path / "nope.zip")], ["verify", str(not_zip)],
                 ["pack", str(tmp_path / "nope"), "--out", str(tmp_path / "o.zip")],
                 ["pack", str(run_dir), "--out", str(tmp_path / "o.zip"), "--sign", str(keys[1])],
                 ["pack", str(run_dir), "--out", str(run_dir / "inside.zip")],
                 ["pack", str(run_dir), "--out", str(not_zip)]):
        proc = drill(*args)
        assert proc.returncode == EXIT_BAD_INPUT, (args, proc.stderr)
        assert "bad input" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.zip").exists() and not (run_dir / "inside.zip").exists()
    assert not_zip.read_text(encoding="utf-8") == "hello"  # an existing file is never replaced without --force


def test_keygen_refuses_to_overwrite_and_keeps_the_key_private(tmp_path: Path) -> None:
    assert drill("keygen", "--out", str(tmp_path / "k")).returncode == 0
    assert oct((tmp_path / "k").stat().st_mode & 0o777) == "0o600"
    assert (tmp_path / "k.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    proc = drill("keygen", "--out", str(tmp_path / "k"))
    assert proc.returncode == EXIT_BAD_INPUT and "already exists" in proc.stderr


def test_campaign_run_directory_packs_every_run(tmp_path: Path, latency_run: Callable[..., Path]) -> None:
    campaign = tmp_path / "quarterly" / "20260101T000000Z-abc"
    campaign.mkdir(parents=True)
    latency_run(campaign, "01-latency")
    latency_run(campaign, "02-latency")
    (campaign / "campaign.json").write_text(json.dumps({"name": "quarterly", "runs": []}), encoding="utf-8")
    result = build_pack(campaign, tmp_path / "c.zip")
    assert result.runs == 2
    with zipfile.ZipFile(result.path) as zf:
        sheet = zf.read("tabletop.html").decode()
        assert "campaign/01-latency/results.json" in zf.namelist()
    assert "campaign quarterly" in sheet and sheet.count('<section class="run"') == 2
    assert verify_pack(result.path).ok


def test_a_killed_drills_held_back_space_is_not_packed(run_dir: Path, tmp_path: Path) -> None:
    """A drill killed with -9 leaves its 1 MiB reserve behind (until `drill recover`): it is no
    evidence, so the pack neither carries nor lists it."""
    (run_dir / RESERVE_FILE).write_bytes(b"\0" * 4096)
    pack = build_pack(run_dir, tmp_path / "p.zip", approver="A. Lead", participants=["B. One"]).path
    with zipfile.ZipFile(pack) as zf:
        names = set(zf.namelist())
        manifest = zf.read(MANIFEST_NAME).decode()
    assert "run/samples/probe.csv" in names
    assert not any(RESERVE_FILE in name for name in names) and RESERVE_FILE not in manifest
