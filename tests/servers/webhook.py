"""A webhook receiver as the docs ask receivers to be: it checks the signature and keeps one
delivery per Idempotency-Key, answering 409 to a repeat."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from .http import FakeService, Reply, Request


class Receiver(FakeService):
    def __init__(self, secret: str = "hook-secret") -> None:
        super().__init__()
        self.secret = secret.encode()
        self.deliveries: dict[str, Request] = {}

    def handle(self, r: Request) -> Reply:
        expected = "sha256=" + hmac.new(self.secret, r.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(r.headers.get("x-faxflow-signature", ""), expected):
            return Reply(401, {"error": "bad signature"})
        key = r.headers.get("idempotency-key", "")
        if key in self.deliveries:
            return Reply(409, {"error": "already received"})
        self.deliveries[key] = r
        return Reply(200, {"ok": True})

    def only(self) -> Any:
        (delivery,) = self.deliveries.values()
        return delivery
