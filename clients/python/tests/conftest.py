"""A real gateway for the tests: `SWITCHBOARD_BIN serve` on a free port, stopped at the end."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest

JWT_SECRET = "python-client-tests-hs256-secret-0123456789"
ADMIN_KEY = "python-admin-key-0123456789"
PUBLISHER_KEY = "python-publisher-key-0123456789"


@dataclass
class Gateway:
    url: str  # http://127.0.0.1:PORT
    admin_key: str
    publisher_key: str
    jwt_secret: str

    def token(self, sub: str, *, org_id: str = "default", roles: Optional[list] = None, ttl: int = 600) -> str:
        """An HS256 JWT the gateway accepts (docs/protocol.md §2.3)."""
        claims = {"sub": sub, "org_id": org_id, "exp": int(time.time()) + ttl}
        if roles:
            claims["roles"] = roles
        return hs256_jwt(claims, self.jwt_secret)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_jwt(claims: dict, secret: str) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _binary() -> str:
    binary = os.environ.get("SWITCHBOARD_BIN")
    if not binary:
        # clients/python/tests → the workspace's debug build
        binary = str(Path(__file__).resolve().parents[3] / "target" / "debug" / "switchboard")
    if not os.path.exists(binary):
        pytest.exit(f"no gateway binary at {binary}: set SWITCHBOARD_BIN or cargo build", returncode=2)
    return binary


@pytest.fixture(scope="session")
def gateway() -> Iterator[Gateway]:
    """The gateway most tests share: the offline agent streams with 1 ms between deltas."""
    yield from _run_gateway("1ms")


@pytest.fixture(scope="session")
def slow_gateway() -> Iterator[Gateway]:
    """A gateway whose offline agent waits 100 ms between deltas: turns long enough to cancel."""
    yield from _run_gateway("100ms")


def _run_gateway(delta_delay: str) -> Iterator[Gateway]:
    data_dir = tempfile.mkdtemp(prefix="switchboard-py-")
    out = open(os.path.join(data_dir, "stdout"), "w+")
    err = open(os.path.join(data_dir, "stderr"), "w+")
    env = {
        **os.environ,
        "SWITCHBOARD_JWT_HS256_SECRET": JWT_SECRET,
        "SWITCHBOARD_ADMIN_KEYS": f"pytest-admin:{ADMIN_KEY}",
        "SWITCHBOARD_PUBLISHER_KEYS": f"pytest-publisher:{PUBLISHER_KEY}",
        "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
    }
    process = subprocess.Popen(
        [
            _binary(),
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            data_dir,
            "--offline-agent-delay",
            delta_delay,
            "--allow-anonymous",
            "true",
        ],
        stdout=out,
        stderr=err,
        env=env,
    )
    try:
        url = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            out.seek(0)
            match = re.search(r"listening on (http://\S+)", out.read())
            if match:
                url = match.group(1)
                break
            if process.poll() is not None:
                break
            time.sleep(0.05)
        if url is None:
            err.seek(0)
            pytest.exit(f"the gateway did not start:\n{err.read()[-4000:]}", returncode=2)
        yield Gateway(url=url, admin_key=ADMIN_KEY, publisher_key=PUBLISHER_KEY, jwt_secret=JWT_SECRET)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.close()
        err.close()
        shutil.rmtree(data_dir, ignore_errors=True)
