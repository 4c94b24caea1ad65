"""The game-day console (docs/gameday.md): ``drill gameday SCENARIO`` runs a drill from a live
page on 127.0.0.1 with the people in the room.

    session.py  GameDay: the drill on the main thread, its controls, what the page shows
    server.py   ConsoleServer: aiohttp in a thread, the two tokens, the page's policy
    assets/     the page (HTML, CSS, JavaScript), shipped whole: nothing is fetched elsewhere
"""

from __future__ import annotations

from harness.gameday.server import CSP, ConsoleServer
from harness.gameday.session import ConsoleProgress, GameDay

__all__ = ["CSP", "ConsoleProgress", "ConsoleServer", "GameDay"]
