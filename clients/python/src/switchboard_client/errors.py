"""The one exception of the package: a protocol error (docs/protocol.md §5, §6.10)."""

from __future__ import annotations

from typing import Any, Mapping, Optional

# Close codes of docs/protocol.md §5.4, read as the error code they stand for when the
# socket closes without an `error` frame first.
_CLOSE_CODES = {
    1009: "too_large",
    1011: "unavailable",
    1012: "unavailable",
    4000: "unavailable",
    4008: "unavailable",
    4029: "rate_limited",
    4401: "unauthorized",
}


class SwitchboardError(Exception):
    """An `error` frame, an HTTP error body, or a closed connection.

    `code` is the protocol's error code (`unauthorized`, `not_found`, `rate_limited`…,
    docs/protocol.md §5.2): act on it, not on `message`, which is written for a person.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: Optional[int] = None,
        retry_after_ms: Optional[int] = None,
        close_code: Optional[int] = None,
        frame: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        #: the HTTP status, for errors of the `/v1` API
        self.status = status
        #: when the same request may succeed, from `retry_after_ms` or `Retry-After`
        self.retry_after_ms = retry_after_ms
        #: the WebSocket close code, when the connection closed
        self.close_code = close_code
        #: the `error` frame itself, for errors read on the socket
        self.frame = dict(frame) if frame is not None else None

    @classmethod
    def from_frame(cls, frame: Mapping[str, Any]) -> "SwitchboardError":
        retry = frame.get("retry_after_ms")
        return cls(
            str(frame.get("code", "internal")),
            str(frame.get("message", "")),
            retry_after_ms=retry if isinstance(retry, int) else None,
            frame=frame,
        )

    @classmethod
    def from_close(cls, close_code: Optional[int], reason: str = "") -> "SwitchboardError":
        code = _CLOSE_CODES.get(close_code or 0, "unavailable")
        text = reason or f"the connection closed (code {close_code})"
        return cls(code, text, close_code=close_code)
