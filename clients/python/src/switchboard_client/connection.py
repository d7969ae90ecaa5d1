"""A WebSocket connection to the gateway's `/ws` (docs/protocol.md §2–§4)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Set, cast

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .errors import SwitchboardError
from .frames import (
    Frame,
    MessageAccepted,
    SessionCreated,
    SessionJoined,
    ToolDecided,
    Welcome,
)

SUBPROTOCOL = "switchboard.v1"

# Frames that are direct replies (they carry `re`) and never events.
_REPLY_TYPES = {
    "pong",
    "session.created",
    "session.joined",
    "session.left",
    "message.accepted",
    "tool.decided",
    "auth.refreshed",
    "session.listed",
    "session.updated",
    "session.deleted",
    "session.exported",
    "user.erased",
    "inbox.listed",
}

_CLOSED = object()  # sentinel put on listener queues when the socket closes


def ws_url(base_url: str) -> str:
    """`http://host:8080` (or `ws://…`, with or without `/ws`) → `ws://host:8080/ws`."""
    url = base_url.rstrip("/")
    if url.startswith("http://"):
        url = "ws://" + url[len("http://") :]
    elif url.startswith("https://"):
        url = "wss://" + url[len("https://") :]
    if not url.endswith("/ws"):
        url += "/ws"
    return url


class Connection:
    """One open `/ws` socket, after its `welcome`.

    Requests (`create_session`, `join`, `send`…) wait for their direct reply, matched
    by `id`/`re`, and raise `SwitchboardError` on an `error` frame. Everything else the
    gateway sends — session events, `presence`, `typing`, user and org stream events,
    `goaway` — goes to `events()` (and to every `stream_turn` running at the time).

    Use `await Connection.open(url, token=…)`, or `async with` on it.
    """

    def __init__(self, ws: ClientConnection, welcome: Welcome, *, max_buffered_events: int = 10_000) -> None:
        self._ws = ws
        self.welcome: Welcome = welcome
        self._ids = itertools.count(1)
        self._pending: Dict[str, "asyncio.Future[Frame]"] = {}
        self._events: "asyncio.Queue[Any]" = asyncio.Queue()
        self._max_buffered = max_buffered_events
        self._listeners: Set["asyncio.Queue[Any]"] = set()
        #: the newest `seq` received per session: join with it to resume (§3.4)
        self.last_seq: Dict[str, int] = {}
        #: session keys of anonymous sessions created or joined on this connection
        self.session_keys: Dict[str, str] = {}
        self.dropped_events = 0
        self.close_error: Optional[SwitchboardError] = None
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    # ------------------------------------------------------------------ opening

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        token: Optional[str] = None,
        open_timeout: float = 10.0,
        max_buffered_events: int = 10_000,
    ) -> "Connection":
        """Connect to `url` (`http://host:port`, `ws://host:port/ws`…) and read `welcome`.

        `token` is sent as `Authorization: Bearer`; without it the connection is
        anonymous (when the gateway allows it). A refusal raises `SwitchboardError`
        with the code of the gateway's `error` frame (`unauthorized`…) or HTTP body.
        """
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            ws = await connect(
                ws_url(url),
                additional_headers=headers,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                open_timeout=open_timeout,
                max_size=None,
                ping_interval=None,  # the server pings (§2.5); websockets answers them
            )
        except InvalidStatus as exc:
            raise _http_refusal(exc) from None
        try:
            raw = await asyncio.wait_for(ws.recv(), open_timeout)
        except ConnectionClosed as exc:
            raise SwitchboardError.from_close(_close_code(exc), _close_reason(exc)) from None
        except asyncio.TimeoutError:
            await ws.close()
            raise SwitchboardError("unavailable", "no welcome from the gateway") from None
        frame = json.loads(raw)
        if frame.get("type") == "error":
            await ws.close()
            raise SwitchboardError.from_frame(frame)
        if frame.get("type") != "welcome":
            await ws.close()
            raise SwitchboardError("internal", f"expected welcome, got {frame.get('type')!r}")
        return cls(ws, cast(Welcome, frame), max_buffered_events=max_buffered_events)

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._ws.close()
        with contextlib.suppress(BaseException):
            await self._reader

    @property
    def closed(self) -> bool:
        return self._reader.done()

    # ---------------------------------------------------------------- requests

    async def request(self, frame: Mapping[str, Any], *, timeout: float = 30.0) -> Frame:
        """Send a client frame (§3.1) with a fresh `id`, return its direct reply.

        Raises `SwitchboardError` for an `error` reply or a closed connection.
        """
        if self.close_error is not None:
            raise self.close_error
        frame_id = str(next(self._ids))
        future: "asyncio.Future[Frame]" = asyncio.get_running_loop().create_future()
        self._pending[frame_id] = future
        try:
            await self._send({**frame, "id": frame_id})
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(frame_id, None)

    async def send_frame(self, frame: Mapping[str, Any]) -> None:
        """Send a frame that has no direct reply (`turn.cancel`, `typing`)."""
        if self.close_error is not None:
            raise self.close_error
        await self._send(frame)

    async def ping(self) -> Frame:
        return await self.request({"type": "ping"})

    async def create_session(
        self, metadata: Optional[Mapping[str, Any]] = None, assistant: Optional[str] = None
    ) -> SessionCreated:
        """`session.create` (§3.2). An anonymous creator gets `session_key`, kept here too."""
        frame: Dict[str, Any] = {"type": "session.create"}
        if metadata is not None:
            frame["metadata"] = dict(metadata)
        if assistant is not None:
            frame["assistant"] = assistant
        reply = cast(SessionCreated, await self.request(frame))
        if "session_key" in reply:
            self.session_keys[reply["session_id"]] = reply["session_key"]
        self.last_seq.setdefault(reply["session_id"], reply["seq"])
        return reply

    async def join(
        self, session_id: str, after_seq: Optional[int] = None, session_key: Optional[str] = None
    ) -> SessionJoined:
        """`session.join` (§3.3): the replay of events after `after_seq` follows in `events()`."""
        frame: Dict[str, Any] = {"type": "session.join", "session_id": session_id}
        if after_seq is not None:
            frame["after_seq"] = after_seq
        key = session_key if session_key is not None else self.session_keys.get(session_id)
        if key is not None:
            frame["session_key"] = key
        reply = cast(SessionJoined, await self.request(frame))
        if session_key is not None:
            self.session_keys[session_id] = session_key
        return reply

    async def leave(self, session_id: str) -> Frame:
        return await self.request({"type": "session.leave", "session_id": session_id})

    async def send(
        self, session_id: str, text: str, client_message_id: Optional[str] = None
    ) -> MessageAccepted:
        """`message.send` (§3.6), always idempotent: without `client_message_id` one is made.

        A retry with the same `client_message_id` appends nothing and answers the first
        attempt's ids: pass your own to be able to retry after a reconnect.
        """
        frame = {
            "type": "message.send",
            "session_id": session_id,
            "text": text,
            "client_message_id": client_message_id or new_client_message_id(),
        }
        return cast(MessageAccepted, await self.request(frame))

    async def cancel(self, session_id: str, turn_id: str) -> None:
        """`turn.cancel` (§3.8): no direct reply; the turn's `turn.end` (cancelled) follows.

        An `error` about it (`not_found`) arrives in `events()`.
        """
        await self.send_frame({"type": "turn.cancel", "session_id": session_id, "turn_id": turn_id})

    async def decide_tool(self, session_id: str, call_id: str, approved: bool) -> ToolDecided:
        """`tool.decide` (§3.9): approve or deny a `tool.request` with `requires_approval`."""
        frame = {"type": "tool.decide", "session_id": session_id, "call_id": call_id, "approved": approved}
        return cast(ToolDecided, await self.request(frame))

    async def refresh_token(self, token: str) -> Frame:
        """`auth.refresh` (§3.11): `auth.refreshed` with `expires_at`."""
        return await self.request({"type": "auth.refresh", "token": token})

    async def rejoin_all(self) -> List[SessionJoined]:
        """Join again every session seen here, each after its last `seq` (a resume, §3.4)."""
        return [await self.join(sid, after_seq=seq) for sid, seq in list(self.last_seq.items())]

    # ------------------------------------------------------------------ events

    async def next_event(self, timeout: Optional[float] = None) -> Frame:
        """The next frame that is not a direct reply. Raises `SwitchboardError` once closed."""
        item = await asyncio.wait_for(self._events.get(), timeout)
        if item is _CLOSED:
            self._events.put_nowait(_CLOSED)  # later calls raise too
            assert self.close_error is not None
            raise self.close_error
        return cast(Frame, item)

    async def events(self) -> AsyncIterator[Frame]:
        """Every frame that is not a direct reply, until the connection closes."""
        while True:
            try:
                yield await self.next_event()
            except SwitchboardError:
                return

    async def stream_turn(
        self,
        session_id: str,
        text: str,
        client_message_id: Optional[str] = None,
        *,
        timeout: float = 120.0,
    ) -> AsyncIterator[Frame]:
        """Send `text` and yield its turn: each `turn.delta`, then the `turn.end` (last).

        The deltas joined equal `turn.end.text` when the turn completed (§4.4). Other
        events of the session still reach `events()`. `timeout` bounds the whole turn.
        Raises `SwitchboardError` when the send is refused or the connection closes.
        """
        queue: "asyncio.Queue[Any]" = asyncio.Queue()
        self._listeners.add(queue)
        try:
            accepted = await self.send(session_id, text, client_message_id)
            message_id = accepted["message_id"]
            turn_id: Optional[str] = None
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise SwitchboardError("unavailable", "the turn did not end in time")
                try:
                    item = await asyncio.wait_for(queue.get(), remaining)
                except asyncio.TimeoutError:
                    raise SwitchboardError("unavailable", "the turn did not end in time") from None
                if item is _CLOSED:
                    assert self.close_error is not None
                    raise self.close_error
                frame = cast(Frame, item)
                if frame.get("session_id") != session_id:
                    continue
                kind = frame.get("type")
                if kind == "turn.start" and frame.get("reply_to") == message_id:
                    turn_id = frame["turn_id"]
                elif turn_id is not None and frame.get("turn_id") == turn_id:
                    if kind == "turn.delta":
                        yield frame
                    elif kind == "turn.end":
                        if frame.get("retrying"):
                            # replica_lost with a retry (§3.12): the new turn replies to
                            # the same message; follow it.
                            turn_id = None
                            continue
                        yield frame
                        return
        finally:
            self._listeners.discard(queue)

    # ---------------------------------------------------------------- internals

    async def _send(self, frame: Mapping[str, Any]) -> None:
        try:
            await self._ws.send(json.dumps(frame))
        except ConnectionClosed as exc:
            raise SwitchboardError.from_close(_close_code(exc), _close_reason(exc)) from None

    def _deliver(self, item: Any) -> None:
        if item is not _CLOSED and self._events.qsize() >= self._max_buffered:
            self._events.get_nowait()  # nobody reads events(): keep the newest
            self.dropped_events += 1
        self._events.put_nowait(item)
        for queue in list(self._listeners):
            queue.put_nowait(item)

    async def _read_loop(self) -> None:
        error: Optional[SwitchboardError] = None
        try:
            async for raw in self._ws:
                if isinstance(raw, bytes):
                    continue
                frame = json.loads(raw)
                if not isinstance(frame, dict):
                    continue
                re = frame.get("re")
                kind = frame.get("type")
                if re is not None and re in self._pending and (kind in _REPLY_TYPES or kind == "error"):
                    future = self._pending.pop(re)
                    if not future.done():
                        if kind == "error":
                            future.set_exception(SwitchboardError.from_frame(frame))
                        else:
                            future.set_result(frame)
                    continue
                if kind == "error" and error is None:
                    # An error with no request waiting (a refused turn.cancel, or the one
                    # that comes before a close): remembered for the close.
                    error = SwitchboardError.from_frame(frame)
                seq = frame.get("seq")
                sid = frame.get("session_id")
                if isinstance(seq, int) and isinstance(sid, str):
                    if seq > self.last_seq.get(sid, -1):
                        self.last_seq[sid] = seq
                self._deliver(frame)
            close_error = SwitchboardError.from_close(self._ws.close_code, self._ws.close_reason or "")
        except ConnectionClosed as exc:
            close_error = SwitchboardError.from_close(_close_code(exc), _close_reason(exc))
        except Exception as exc:  # a bug or bad JSON: fail everything waiting
            close_error = SwitchboardError("internal", f"reading the socket failed: {exc!r}")
        if error is not None and error.code in ("unauthorized", "token_expired", "too_large", "rate_limited"):
            error.close_code = close_error.close_code
            close_error = error
        self.close_error = close_error
        for future in self._pending.values():
            if not future.done():
                future.set_exception(close_error)
        self._pending.clear()
        self._deliver(_CLOSED)


def new_client_message_id() -> str:
    """A fresh `client_message_id` (§3.6): 32 hex characters."""
    return uuid.uuid4().hex


def _close_code(exc: ConnectionClosed) -> Optional[int]:
    frame = exc.rcvd or exc.sent
    return frame.code if frame is not None else None


def _close_reason(exc: ConnectionClosed) -> str:
    frame = exc.rcvd or exc.sent
    return frame.reason if frame is not None else ""


def _http_refusal(exc: InvalidStatus) -> SwitchboardError:
    response = exc.response
    code, message = "unavailable", f"the upgrade was refused with HTTP {response.status_code}"
    with contextlib.suppress(Exception):
        body = json.loads(response.body or b"")
        code = body["error"]["code"]
        message = body["error"]["message"]
    retry = response.headers.get("Retry-After")
    retry_ms = int(retry) * 1000 if retry and retry.isdigit() else None
    return SwitchboardError(code, message, status=response.status_code, retry_after_ms=retry_ms)
