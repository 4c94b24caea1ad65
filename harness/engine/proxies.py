"""The drill's Toxiproxy: connecting to it, and the proxies a scenario declares (``proxies:``),
which the drill creates and the rollback deletes."""

from __future__ import annotations

from typing import Any

from harness.engine.parts import Parts
from harness.errors import ScenarioError
from harness.rundir.events import ProxyCreated, ProxyIntent, ToxiproxyConnected
from harness.rundir.undo import ProxyCreatedUndo
from harness.scenario import LoadedScenario
from harness.toxiproxy import ToxiproxyClient


def connect(url: str | None, parts: Parts, environment: dict[str, Any]) -> None:
    """Open the client (when a Toxiproxy is known) and record its server's version."""
    if not url:
        return
    parts.toxiproxy = ToxiproxyClient(url)
    version = parts.toxiproxy.version()
    environment.setdefault("tools", {})["toxiproxy"] = version
    environment["toxiproxy_url"] = url
    parts.journal.write(ToxiproxyConnected(url=url, version=version))


def create_declared(loaded: LoadedScenario, parts: Parts) -> None:
    """Create every proxy of ``proxies:``; one that exists already is refused (ScenarioError)."""
    toxiproxy = parts.toxiproxy
    if toxiproxy is None:
        if loaded.spec.proxies:
            raise ScenarioError(
                f"{loaded.path} proxies: declared proxies need a Toxiproxy: add "
                "`toxiproxy: {url: http://127.0.0.1:8474}` or use a stack file that starts one"
            )
        return
    for p in loaded.spec.proxies:
        if toxiproxy.get_proxy(p.name) is not None:
            raise ScenarioError(
                f"{loaded.path} proxies: a proxy named {p.name!r} already exists on "
                f"{toxiproxy.url}; drill creates and deletes the proxies it declares, so "
                "remove it (toxiproxy-cli delete) or drop it from `proxies:` and name it in faults"
            )
        parts.journal.write(ProxyIntent(
            proxy=p.name, listen=p.listen, upstream=p.upstream,
            undo=ProxyCreatedUndo(toxiproxy_url=toxiproxy.url, proxy=p.name),
        ))
        # Listed before the call: a signal during it must still get the proxy deleted.
        parts.proxies_created.append(p.name)
        toxiproxy.create_proxy(p.name, p.listen, p.upstream)
        parts.journal.write(ProxyCreated(proxy=p.name))
