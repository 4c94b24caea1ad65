"""The reference gateway's breaker hysteresis (BREAKER_FLAP_BACKOFF), on the Breaker itself with
its own config from the environment (pure logic: instants are given, nothing sleeps)."""

from __future__ import annotations

import pytest

from targets.gateway import Breaker, EventLog, GatewayConfig


def breaker(monkeypatch: pytest.MonkeyPatch, backoff: str | None) -> Breaker:
    monkeypatch.setenv("BREAKER_COOLDOWN_S", "5")
    monkeypatch.setenv("BREAKER_HALF_OPEN_PROBES", "1")
    if backoff is None:
        monkeypatch.delenv("BREAKER_FLAP_BACKOFF", raising=False)
    else:
        monkeypatch.setenv("BREAKER_FLAP_BACKOFF", backoff)
    return Breaker("hosted", GatewayConfig.from_env(), EventLog(100))


def open_close(b: Breaker, opened: float, closed: float) -> None:
    b._open(opened, "test")
    assert b.admit(closed) == "probe"
    b.record_probe(closed, True, 1.0)
    assert b.state == "closed"


def test_reopening_soon_after_closing_backs_the_cooldown_off_and_a_quiet_spell_resets_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b = breaker(monkeypatch, None)  # the default: 2
    open_close(b, 0.0, 5.5)
    b._open(10.0, "flap")  # 4.5 s after closing: flapping
    assert b.cooldown_s == 10.0 and b.admit(19.0) is None and b.admit(20.0) == "probe"
    b.record_probe(20.0, False, 1.0)  # a failed probe keeps the backed-off cool-down
    assert b.cooldown_s == 10.0
    assert b.admit(30.0) == "probe"
    b.record_probe(30.0, True, 1.0)
    b._open(100.0, "much later")  # 70 s after closing: a new incident
    assert b.cooldown_s == 5.0


def test_without_hysteresis_the_breaker_follows_every_flap(monkeypatch: pytest.MonkeyPatch) -> None:
    b = breaker(monkeypatch, "1")
    open_close(b, 0.0, 5.5)
    b._open(10.0, "flap")
    assert b.cooldown_s == 5.0 and b.admit(15.0) == "probe"
    assert [e["event"] for e in b.log.events].count("breaker_open") == 2
