"""The gateway's `/v1` HTTP API (docs/protocol.md §6): publisher, session and admin calls."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import httpx

from .connection import new_client_message_id
from .errors import SwitchboardError

Json = Dict[str, Any]


class HttpClient:
    """`/v1` with one credential (§6.2): a publisher or admin key, a JWT, or none.

    Every method raises `SwitchboardError` carrying the JSON error body's `code` (§6.10)
    and the HTTP `status`. Use `async with HttpClient(url, key) as http:` or `aclose()`.
    """

    def __init__(
        self,
        base_url: str,
        credential: Optional[str] = None,
        *,
        timeout: float = 30.0,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        base = base_url.rstrip("/")
        if base.startswith("ws://"):
            base = "http://" + base[len("ws://") :]
        elif base.startswith("wss://"):
            base = "https://" + base[len("wss://") :]
        if base.endswith("/ws"):
            base = base[: -len("/ws")]
        self._http = httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout, transport=transport)

    async def __aenter__(self) -> "HttpClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --------------------------------------------------------------- publishing

    async def publish(
        self,
        name: str,
        data: Any = None,
        *,
        session: Optional[str] = None,
        user: Optional[str] = None,
        org: Optional[str] = None,
        org_id: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        durable: Optional[bool] = None,
    ) -> int:
        """`POST /v1/publish` (§6.4): an `event` into one session, user or org; its `seq`.

        Exactly one of `session`, `user`, `org` names the target.
        """
        targets = {k: v for k, v in (("session", session), ("user", user), ("org", org)) if v is not None}
        if len(targets) != 1:
            raise ValueError("publish needs exactly one of session=, user=, org=")
        body: Json = {"target": targets, "name": name, "data": data}
        if org_id is not None:
            body["org_id"] = org_id
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        if durable is not None:
            body["durable"] = durable
        reply = await self._call("POST", "/v1/publish", json=body)
        return int(reply["seq"])

    # ----------------------------------------------------------------- sessions

    async def create_session(
        self,
        metadata: Optional[Mapping[str, Any]] = None,
        *,
        title: Optional[str] = None,
        assistant: Optional[str] = None,
    ) -> Json:
        """`POST /v1/sessions` (§6.15): `{"session_id","seq","session_key"?,"assistant"?}`."""
        body: Json = {}
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if title is not None:
            body["title"] = title
        if assistant is not None:
            body["assistant"] = assistant
        return await self._call("POST", "/v1/sessions", json=body)

    async def send_message(
        self,
        session_id: str,
        text: str,
        *,
        client_message_id: Optional[str] = None,
        session_key: Optional[str] = None,
        author: Optional[str] = None,
    ) -> Json:
        """`POST /v1/sessions/{id}/messages` (§6.5, §6.15), idempotent as `send`.

        As the session's customer: a `user` message that queues a turn. With a
        publisher key or as staff: an operator message (`author` names them).
        """
        body: Json = {"text": text, "client_message_id": client_message_id or new_client_message_id()}
        if author is not None:
            body["author"] = author
        return await self._call(
            "POST", f"/v1/sessions/{session_id}/messages", json=body, session_key=session_key
        )

    async def chat(
        self,
        text: str,
        session_id: Optional[str] = None,
        session_key: Optional[str] = None,
        timeout_ms: Optional[int] = None,
        assistant: Optional[str] = None,
        *,
        metadata: Optional[Mapping[str, Any]] = None,
        client_message_id: Optional[str] = None,
    ) -> Json:
        """`POST /v1/chat` (§6.15): send a message and wait for its reply.

        Answers the `turn.end` fields with `status` `completed`/`cancelled`/`failed`, or,
        when `timeout_ms` ran out first, `status` `running`/`queued` with a `poll` path.
        Without `session_id` a session is opened (anonymous callers get `session_key`).
        """
        body: Json = {"text": text, "client_message_id": client_message_id or new_client_message_id()}
        if session_id is not None:
            body["session_id"] = session_id
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        if assistant is not None:
            body["assistant"] = assistant
        if metadata is not None:
            body["metadata"] = dict(metadata)
        read_timeout = (timeout_ms if timeout_ms is not None else 30_000) / 1000 + 10
        return await self._call("POST", "/v1/chat", json=body, session_key=session_key, timeout=read_timeout)

    async def reply(self, session_id: str, message_id: str, *, session_key: Optional[str] = None) -> Json:
        """`GET /v1/sessions/{id}/messages/{message_id}/reply` (§6.15)."""
        return await self._call(
            "GET", f"/v1/sessions/{session_id}/messages/{message_id}/reply", session_key=session_key
        )

    async def turn(self, session_id: str, turn_id: str, *, session_key: Optional[str] = None) -> Json:
        """`GET /v1/sessions/{id}/turns/{turn_id}` (§6.15)."""
        return await self._call("GET", f"/v1/sessions/{session_id}/turns/{turn_id}", session_key=session_key)

    async def cancel(self, session_id: str, turn_id: str, *, session_key: Optional[str] = None) -> Json:
        """`POST /v1/sessions/{id}/turns/{turn_id}/cancel` (§6.15)."""
        return await self._call(
            "POST", f"/v1/sessions/{session_id}/turns/{turn_id}/cancel", session_key=session_key
        )

    async def decide_tool(
        self, session_id: str, call_id: str, approved: bool, *, session_key: Optional[str] = None
    ) -> Json:
        """`POST /v1/sessions/{id}/tool-calls/{call_id}/decision` (§6.15)."""
        return await self._call(
            "POST",
            f"/v1/sessions/{session_id}/tool-calls/{call_id}/decision",
            json={"approved": approved},
            session_key=session_key,
        )

    async def events(self, session_id: str, after_seq: Optional[int] = None, limit: Optional[int] = None) -> Json:
        """`GET /v1/sessions/{id}/events` (§6.6): the history, as event frames."""
        params: Dict[str, int] = {}
        if after_seq is not None:
            params["after_seq"] = after_seq
        if limit is not None:
            params["limit"] = limit
        return await self._call("GET", f"/v1/sessions/{session_id}/events", params=params)

    # -------------------------------------------------------------------- admin

    async def put_document(
        self,
        doc_id: str,
        title: str,
        text: str,
        *,
        org_id: Optional[str] = None,
        uri: Optional[str] = None,
        public: Optional[bool] = None,
        groups: Optional[Sequence[str]] = None,
        users: Optional[Sequence[str]] = None,
    ) -> Json:
        """`POST /v1/admin/documents` (§6.7): create or replace a document.

        An admin key must name `org_id`; a JWT admin acts on its own org.
        """
        acl: Json = {}
        if public is not None:
            acl["public"] = public
        if groups is not None:
            acl["groups"] = list(groups)
        if users is not None:
            acl["users"] = list(users)
        body: Json = {"doc_id": doc_id, "title": title, "text": text, "acl": acl}
        if org_id is not None:
            body["org_id"] = org_id
        if uri is not None:
            body["uri"] = uri
        return await self._call("POST", "/v1/admin/documents", json=body)

    async def delete_document(self, doc_id: str, *, org_id: Optional[str] = None) -> None:
        """`DELETE /v1/admin/documents/{doc_id}` (§6.7)."""
        await self._call("DELETE", f"/v1/admin/documents/{doc_id}", params=_org(org_id))

    async def list_documents(self, *, org_id: Optional[str] = None) -> Json:
        """`GET /v1/admin/documents` (§6.7)."""
        return await self._call("GET", "/v1/admin/documents", params=_org(org_id))

    async def put_assistant(
        self,
        name: str,
        *,
        org_id: Optional[str] = None,
        display_name: Optional[str] = None,
        description: Optional[str] = None,
        settings: Optional[Mapping[str, Any]] = None,
        documents: Optional[Sequence[str]] = None,
    ) -> Json:
        """`PUT /v1/admin/assistants/{name}` (§6.19): create or replace a named assistant."""
        body: Json = {}
        if display_name is not None:
            body["display_name"] = display_name
        if description is not None:
            body["description"] = description
        if settings is not None:
            body["settings"] = dict(settings)
        if documents is not None:
            body["documents"] = list(documents)
        return await self._call("PUT", f"/v1/admin/assistants/{name}", json=body, params=_org(org_id))

    async def delete_assistant(self, name: str, *, org_id: Optional[str] = None) -> None:
        """`DELETE /v1/admin/assistants/{name}` (§6.19)."""
        await self._call("DELETE", f"/v1/admin/assistants/{name}", params=_org(org_id))

    # ---------------------------------------------------------------- internals

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Optional[Json] = None,
        params: Optional[Mapping[str, Any]] = None,
        session_key: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Json:
        headers = {"Switchboard-Session-Key": session_key} if session_key else None
        extra: Dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = timeout
        try:
            response = await self._http.request(method, path, json=json, params=params, headers=headers, **extra)
        except httpx.TimeoutException as exc:
            raise SwitchboardError("unavailable", f"{method} {path} timed out: {exc}") from None
        except httpx.TransportError as exc:
            raise SwitchboardError("unavailable", f"{method} {path} failed: {exc}") from None
        if response.status_code >= 400:
            raise _http_error(response)
        if response.status_code == 204 or not response.content:
            return {}
        body = response.json()
        return body if isinstance(body, dict) else {"body": body}


def _org(org_id: Optional[str]) -> Optional[Dict[str, str]]:
    return {"org_id": org_id} if org_id is not None else None


def _http_error(response: httpx.Response) -> SwitchboardError:
    code, message = "internal", f"HTTP {response.status_code}"
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error.get("message", ""))
    except Exception:
        if response.text:
            message = f"HTTP {response.status_code}: {response.text[:200]}"
    retry = response.headers.get("Retry-After")
    retry_ms = int(retry) * 1000 if retry and retry.isdigit() else None
    return SwitchboardError(code, message, status=response.status_code, retry_after_ms=retry_ms)
