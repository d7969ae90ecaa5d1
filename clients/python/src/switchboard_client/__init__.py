"""Switchboard's Python client: the `/ws` protocol and the `/v1` HTTP API, asyncio and typed.

    async with await Connection.open("http://localhost:8080") as conn:
        session = await conn.create_session()
        async for frame in conn.stream_turn(session["session_id"], "Hello"):
            ...

See clients/python/README.md and docs/protocol.md.
"""

from __future__ import annotations

from typing import Optional

from .connection import SUBPROTOCOL, Connection, new_client_message_id, ws_url
from .errors import SwitchboardError
from .frames import (
    ErrorFrame,
    Frame,
    MessageAccepted,
    MessageEvent,
    Principal,
    SessionCreated,
    SessionJoined,
    ToolDecided,
    ToolRequest,
    TurnDelta,
    TurnEnd,
    TurnStart,
    Welcome,
)
from .http import HttpClient

__version__ = "0.1.0"


class SwitchboardClient:
    """One gateway and one credential: opens `/ws` connections and `/v1` clients.

    `token` is a JWT for `/ws` (and `/v1`), or None for an anonymous visitor; `api_key`
    (a publisher or admin key) replaces it for `/v1` when given.
    """

    def __init__(self, base_url: str, token: Optional[str] = None, *, api_key: Optional[str] = None) -> None:
        self.base_url = base_url
        self.token = token
        self.api_key = api_key

    async def connect(self, *, open_timeout: float = 10.0) -> Connection:
        """Open `/ws` and read its `welcome` (see `Connection.open`)."""
        return await Connection.open(self.base_url, token=self.token, open_timeout=open_timeout)

    def http(self) -> HttpClient:
        """A `/v1` client with `api_key`, else `token`."""
        return HttpClient(self.base_url, self.api_key or self.token)


__all__ = [
    "SUBPROTOCOL",
    "Connection",
    "ErrorFrame",
    "Frame",
    "HttpClient",
    "MessageAccepted",
    "MessageEvent",
    "Principal",
    "SessionCreated",
    "SessionJoined",
    "SwitchboardClient",
    "SwitchboardError",
    "ToolDecided",
    "ToolRequest",
    "TurnDelta",
    "TurnEnd",
    "TurnStart",
    "Welcome",
    "new_client_message_id",
    "ws_url",
]
