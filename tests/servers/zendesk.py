"""A fake Zendesk (uploads, tickets with external_id lookup and Idempotency-Key) with
Zendesk's documented error answers, for tests: Zendesk cannot run here."""

from __future__ import annotations

import base64
from typing import Any

from .http import FakeService, Reply, Request


class FakeZendesk(FakeService):
    def __init__(self, email: str = "agent@example.test", api_token: str = "zd-tok",
                 max_upload: int = 1_000_000) -> None:
        super().__init__()
        creds = f"{email}/token:{api_token}".encode()
        self.auth = "Basic " + base64.b64encode(creds).decode()
        self.max_upload = max_upload
        self.uploads: dict[str, tuple[str, bytes]] = {}
        self.tickets: dict[int, dict[str, Any]] = {}
        self.idempotency: dict[str, int] = {}

    def handle(self, r: Request) -> Reply:
        if r.headers.get("authorization") != self.auth:
            return Reply(401, {"error": "Couldn't authenticate you"})
        if r.path == "/api/v2/uploads.json" and r.method == "POST":
            if len(r.body) > self.max_upload:
                return Reply(413, {"error": "Payload Too Large"})
            token = f"tok{len(self.uploads) + 1}"
            self.uploads[token] = (r.arg("filename") or "file", r.body)
            return Reply(201, {"upload": {"token": token, "attachment": {
                "file_name": r.arg("filename"), "size": len(r.body)}}})
        if r.path == "/api/v2/tickets.json" and r.method == "GET":
            wanted = r.arg("external_id")
            found = [self.public(t) for t in self.tickets.values()
                     if t["external_id"] == wanted]
            return Reply(200, {"tickets": found, "count": len(found)})
        if r.path == "/api/v2/tickets.json" and r.method == "POST":
            return self.create(r)
        return Reply(404, {"error": "InvalidEndpoint"})

    def create(self, r: Request) -> Reply:
        key = r.headers.get("idempotency-key")
        if key and key in self.idempotency:
            ticket = self.tickets[self.idempotency[key]]
            return Reply(201, {"ticket": self.public(ticket)}, {"x-idempotency-lookup": "hit"})
        data = r.json().get("ticket", {})
        comment = data.get("comment") or {}
        details = {}
        if not comment.get("body"):
            details["description"] = [{"description": "Description: cannot be blank"}]
        bad = [t for t in comment.get("uploads", []) if t not in self.uploads]
        if bad:
            details["base"] = [{"description": f"Invalid upload token {bad[0]}"}]
        if details:
            return Reply(422, {"error": "RecordInvalid",
                               "description": "Record validation errors", "details": details})
        number = len(self.tickets) + 1
        ticket = {"id": number, "subject": data.get("subject"),
                  "external_id": data.get("external_id"), "tags": data.get("tags", []),
                  "attachments": [self.uploads[t][0] for t in comment.get("uploads", [])],
                  "files": [self.uploads[t][1] for t in comment.get("uploads", [])],
                  "description": comment.get("body")}
        self.tickets[number] = ticket
        if key:
            self.idempotency[key] = number
        return Reply(201, {"ticket": self.public(ticket)})

    @staticmethod
    def public(ticket: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in ticket.items() if k != "files"}
