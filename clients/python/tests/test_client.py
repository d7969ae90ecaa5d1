"""switchboard_client against a real gateway (the offline agent, 1 ms between deltas)."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List

import pytest

from switchboard_client import Connection, HttpClient, SwitchboardClient, SwitchboardError

from .conftest import Gateway


async def frames_until(conn: Connection, predicate: Any, timeout: float = 10.0) -> List[Dict[str, Any]]:
    """Events read from `conn` up to and including the first one `predicate` accepts."""
    seen: List[Dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = await conn.next_event()
            seen.append(frame)
            if predicate(frame):
                return seen


async def test_anonymous_connect_create_send_and_stream_a_turn(gateway: Gateway) -> None:
    async with await Connection.open(gateway.url) as conn:
        assert conn.welcome["type"] == "welcome"
        assert conn.welcome["protocol"] == 1
        assert conn.welcome["principal"]["anonymous"] is True
        created = await conn.create_session(metadata={"from": "pytest"})
        session_id = created["session_id"]
        assert session_id.startswith("s_")
        assert created["seq"] == 0
        assert created["session_key"]

        deltas: List[str] = []
        end: Dict[str, Any] = {}
        async for frame in conn.stream_turn(session_id, "How do I reset my password?"):
            if frame["type"] == "turn.delta":
                deltas.append(frame["text"])
            else:
                end = frame
        assert end["type"] == "turn.end"
        assert end["status"] == "completed", end
        assert deltas, "the offline agent streams its answer"
        assert end["text"] == "".join(deltas)
        assert end["session_id"] == session_id
        assert isinstance(end["seq"], int)


async def test_send_is_idempotent_with_a_client_message_id(gateway: Gateway) -> None:
    async with await Connection.open(gateway.url) as conn:
        session_id = (await conn.create_session())["session_id"]
        first = await conn.send(session_id, "hello", client_message_id="pytest-idem-1")
        again = await conn.send(session_id, "hello", client_message_id="pytest-idem-1")
        assert first["type"] == "message.accepted"
        assert (again["message_id"], again["seq"]) == (first["message_id"], first["seq"])
        generated = await conn.send(session_id, "hello again")
        assert generated["message_id"] != first["message_id"]


async def test_resume_with_after_seq_replays_without_duplicates(gateway: Gateway) -> None:
    async with await Connection.open(gateway.url) as conn:
        created = await conn.create_session()
        session_id, key = created["session_id"], created["session_key"]
        ends = []
        for text in ("first question", "second question"):
            async for frame in conn.stream_turn(session_id, text):
                if frame["type"] == "turn.end":
                    ends.append(frame)
        assert [e["status"] for e in ends] == ["completed", "completed"]
        # wait for the assistant message that follows the second turn.end
        await frames_until(conn, lambda f: f.get("type") == "message" and f.get("role") == "assistant"
                           and f["seq"] > ends[1]["seq"])
        last_seq = conn.last_seq[session_id]
        resume_from = ends[0]["seq"]

    async with await Connection.open(gateway.url) as again:
        joined = await again.join(session_id, after_seq=resume_from, session_key=key)
        assert joined["type"] == "session.joined"
        assert joined["last_seq"] == last_seq
        assert joined["recovered"] is True
        replay = await frames_until(again, lambda f: f.get("type") == "presence")
        seqs = [f["seq"] for f in replay if f.get("session_id") == session_id and "seq" in f]
        assert seqs, "the replay holds the events after after_seq"
        assert all(seq > resume_from for seq in seqs)
        assert seqs == sorted(set(seqs)), "in order, each once"
        assert seqs[-1] == last_seq
        assert any(f.get("turn_id") == ends[1]["turn_id"] and f["type"] == "turn.end" for f in replay)
        assert not any(f.get("turn_id") == ends[0]["turn_id"] and f["type"] == "turn.end" for f in replay)


async def test_a_bad_token_raises_unauthorized(gateway: Gateway) -> None:
    with pytest.raises(SwitchboardError) as refused:
        await Connection.open(gateway.url, token="not-a-jwt")
    assert refused.value.code == "unauthorized"
    with pytest.raises(SwitchboardError) as wrong_key:
        await SwitchboardClient(gateway.url, token=gateway.token("u1") + "x").connect()
    assert wrong_key.value.code == "unauthorized"


async def test_a_signed_in_user_connects_with_a_bearer_token(gateway: Gateway) -> None:
    client = SwitchboardClient(gateway.url, token=gateway.token("pytest-user", org_id="acme"))
    async with await client.connect() as conn:
        principal = conn.welcome["principal"]
        assert principal["anonymous"] is False
        assert (principal["user_id"], principal["org_id"]) == ("pytest-user", "acme")
        created = await conn.create_session()
        assert "session_key" not in created


async def test_errors_carry_the_protocol_code(gateway: Gateway) -> None:
    async with await Connection.open(gateway.url) as conn:
        with pytest.raises(SwitchboardError) as not_member:
            await conn.send("s_00000000000000000000000000000000", "hi")
        assert not_member.value.code == "forbidden"
        with pytest.raises(SwitchboardError) as missing:
            await conn.join("s_00000000000000000000000000000000", session_key="nope")
        assert missing.value.code == "not_found"
        # the connection stays usable after an error
        assert (await conn.ping())["type"] == "pong"


async def test_cancel_ends_the_running_turn(slow_gateway: Gateway) -> None:
    async with await Connection.open(slow_gateway.url) as conn:
        session_id = (await conn.create_session())["session_id"]
        with pytest.raises(SwitchboardError) as unknown:
            await conn.decide_tool(session_id, "tc_00000000000000000000000000000000", True)
        assert unknown.value.code == "not_found"
        deltas: List[str] = []
        end: Dict[str, Any] = {}
        async for frame in conn.stream_turn(session_id, "How do I reset my password?"):
            if frame["type"] == "turn.delta":
                if not deltas:
                    await conn.cancel(session_id, frame["turn_id"])
                deltas.append(frame["text"])
            else:
                end = frame
        assert end["type"] == "turn.end"
        assert end["status"] == "cancelled", end
        assert end["text"] == "".join(deltas), "the text so far"
        # cancelling it again: the turn is over, `not_found` arrives as an event
        await conn.cancel(session_id, end["turn_id"])
        errors = await frames_until(conn, lambda f: f.get("type") == "error")
        assert errors[-1]["code"] == "not_found"


async def test_http_chat_returns_completed_text(gateway: Gateway) -> None:
    async with HttpClient(gateway.url) as http:
        reply = await http.chat("How do I reset my password?", timeout_ms=20_000)
        assert reply["status"] == "completed", reply
        assert reply["text"]
        assert reply["session_id"].startswith("s_")
        assert reply["session_key"]
        follow_up = await http.chat("And then?", session_id=reply["session_id"], session_key=reply["session_key"])
        assert follow_up["status"] == "completed"
        assert follow_up["session_id"] == reply["session_id"]
        assert follow_up["seq"] > reply["seq"]


async def test_http_errors_carry_the_code_and_status(gateway: Gateway) -> None:
    async with HttpClient(gateway.url, "not-a-key") as http:
        with pytest.raises(SwitchboardError) as refused:
            await http.publish("x", session="s_00000000000000000000000000000000")
        assert (refused.value.code, refused.value.status) == ("unauthorized", 401)
    async with HttpClient(gateway.url, gateway.publisher_key) as http:
        with pytest.raises(SwitchboardError) as missing:
            await http.publish("x", session="s_00000000000000000000000000000000")
        assert (missing.value.code, missing.value.status) == ("not_found", 404)
    async with HttpClient(gateway.url) as anonymous:
        with pytest.raises(SwitchboardError) as bad:
            await anonymous.chat("hi", timeout_ms=0)
        assert (bad.value.code, bad.value.status) == ("bad_request", 400)


async def test_publish_reaches_a_joined_socket(gateway: Gateway) -> None:
    async with await Connection.open(gateway.url) as conn:
        session_id = (await conn.create_session())["session_id"]
        async with HttpClient(gateway.url, gateway.publisher_key) as publisher:
            seq = await publisher.publish(
                "order.shipped", {"order": 42}, session=session_id, idempotency_key="pytest-order-42"
            )
            assert await publisher.publish(
                "order.shipped", {"order": 42}, session=session_id, idempotency_key="pytest-order-42"
            ) == seq
        events = await frames_until(conn, lambda f: f.get("type") == "event")
        event = events[-1]
        assert event["session_id"] == session_id
        assert event["seq"] == seq
        assert (event["name"], event["data"], event["publisher"]) == ("order.shipped", {"order": 42}, "pytest-publisher")


async def test_admin_helpers_document_and_assistant(gateway: Gateway) -> None:
    async with HttpClient(gateway.url, gateway.admin_key) as admin:
        stored = await admin.put_document(
            "pytest:refunds",
            "Refund policy",
            "Refunds of annual plans are prorated to the day and paid within 5 business days.",
            org_id="default",
            public=True,
        )
        assert stored == {"doc_id": "pytest:refunds", "org_id": "default"}
        listed = await admin.list_documents(org_id="default")
        assert "pytest:refunds" in [d["doc_id"] for d in listed["documents"]]
        assistant = await admin.put_assistant(
            "billing", org_id="default", display_name="Billing", documents=["pytest:"]
        )
        assert (assistant["name"], assistant["display_name"]) == ("billing", "Billing")
        with pytest.raises(SwitchboardError) as no_org:
            await admin.put_document("d", "t", "x")
        assert no_org.value.code == "bad_request"

    async with await Connection.open(gateway.url) as conn:
        created = await conn.create_session(assistant="billing")
        assert created["assistant"] == "billing"
        async for frame in conn.stream_turn(created["session_id"], "How are refunds of annual plans paid?"):
            if frame["type"] == "turn.end":
                assert frame["status"] == "completed"
                assert frame["assistant"] == "billing"
                assert [s["doc_id"] for s in frame["sources"]] == ["pytest:refunds"]
        with pytest.raises(SwitchboardError) as unknown:
            await conn.create_session(assistant="nobody")
        assert unknown.value.code == "not_found"
