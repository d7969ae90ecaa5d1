"""Server frames as TypedDicts: the shapes of docs/protocol.md §2.4, §3.1 and §4.

Frames are plain dicts, exactly as the gateway sends them; these types only name
their fields for type checkers. Fields marked optional in the protocol are
`NotRequired` here (total=False classes), and a frame may carry fields a newer gateway
added.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, NotRequired, Optional, TypedDict

Frame = Dict[str, Any]
"""Any frame, as decoded from JSON."""


class Principal(TypedDict):
    user_id: Optional[str]
    org_id: str
    groups: List[str]
    roles: List[str]
    anonymous: bool


class Welcome(TypedDict):
    type: Literal["welcome"]
    protocol: int
    connection_id: str
    server_id: str
    principal: Principal
    heartbeat_ms: int
    limits: Dict[str, int]


class SessionCreated(TypedDict):
    type: Literal["session.created"]
    session_id: str
    seq: int
    session_key: NotRequired[str]
    assistant: NotRequired[str]
    re: NotRequired[str]


class SessionJoined(TypedDict):
    type: Literal["session.joined"]
    session_id: str
    last_seq: int
    recovered: bool
    assistant: NotRequired[str]
    re: NotRequired[str]


class MessageAccepted(TypedDict):
    type: Literal["message.accepted"]
    session_id: str
    message_id: str
    seq: int
    re: NotRequired[str]


class ToolDecided(TypedDict):
    type: Literal["tool.decided"]
    session_id: str
    call_id: str
    approved: bool
    re: NotRequired[str]


class TurnStart(TypedDict):
    type: Literal["turn.start"]
    session_id: str
    seq: int
    ts: int
    turn_id: str
    reply_to: str
    assistant: NotRequired[str]


class TurnDelta(TypedDict):
    type: Literal["turn.delta"]
    session_id: str
    seq: int
    ts: int
    turn_id: str
    text: str


class TurnEnd(TypedDict):
    type: Literal["turn.end"]
    session_id: str
    seq: int
    ts: int
    turn_id: str
    status: Literal["completed", "cancelled", "failed"]
    text: str
    usage: NotRequired[Dict[str, int]]
    sources: NotRequired[List[Dict[str, Any]]]
    error: NotRequired[str]
    code: NotRequired[str]
    retrying: NotRequired[bool]
    assistant: NotRequired[str]


class ToolRequest(TypedDict):
    type: Literal["tool.request"]
    session_id: str
    seq: int
    ts: int
    turn_id: str
    call_id: str
    tool: str
    arguments: Any
    requires_approval: bool


class MessageEvent(TypedDict):
    type: Literal["message"]
    session_id: str
    seq: int
    ts: int
    message_id: str
    role: Literal["user", "assistant", "operator", "system"]
    text: str
    author: NotRequired[str]


class ErrorFrame(TypedDict):
    type: Literal["error"]
    code: str
    message: str
    re: NotRequired[str]
    retry_after_ms: NotRequired[int]
