"""A fake Jira (REST API v2 create/attach, v3 Cloud and v2 Server search) with Jira's
documented error answers, for tests: Jira cannot run here."""

from __future__ import annotations

import base64
import re
from typing import Any

from .http import FakeService, Reply, Request


class FakeJira(FakeService):
    def __init__(self, email: str = "fax@example.test", api_token: str = "jira-tok",
                 projects: tuple[str, ...] = ("FAX",), max_attachment: int = 1_000_000) -> None:
        super().__init__()
        self.auth = "Basic " + base64.b64encode(f"{email}:{api_token}".encode()).decode()
        self.projects = projects
        self.max_attachment = max_attachment
        self.issues: dict[str, dict[str, Any]] = {}

    def handle(self, r: Request) -> Reply:
        if r.headers.get("authorization") != self.auth:
            return Reply(401, {"errorMessages": ["You are not authenticated."]})
        if r.method == "GET" and r.path in ("/rest/api/3/search/jql", "/rest/api/2/search"):
            return self.search(r)
        if r.method == "POST" and r.path == "/rest/api/2/issue":
            return self.create(r)
        m = re.fullmatch(r"/rest/api/2/issue/([^/]+)/attachments", r.path)
        if r.method == "POST" and m:
            return self.attach(r, m.group(1))
        return Reply(404, {"errorMessages": ["Not found"]})

    def search(self, r: Request) -> Reply:
        m = re.fullmatch(r'labels = "([^"]+)"', r.arg("jql") or "")
        if not m:
            return Reply(400, {"errorMessages": ["Error in the JQL Query"]})
        found = [i for i in self.issues.values() if m.group(1) in i["fields"]["labels"]]
        issues = [{"id": i["id"], "key": i["key"],
                   "fields": {"attachment": [{"filename": n} for n in i["attachments"]],
                              "labels": i["fields"]["labels"]}}
                  for i in found[: int(r.arg("maxResults") or 50)]]
        return Reply(200, {"issues": issues, "total": len(found)})

    def create(self, r: Request) -> Reply:
        fields = r.json().get("fields", {})
        errors = {}
        if fields.get("project", {}).get("key") not in self.projects:
            errors["project"] = "valid project is required"
        if not fields.get("summary"):
            errors["summary"] = "You must specify a summary of the issue."
        if errors:
            return Reply(400, {"errorMessages": [], "errors": errors})
        number = len(self.issues) + 1
        key = f"{fields['project']['key']}-{number}"
        self.issues[key] = {"id": str(10000 + number), "key": key, "fields": fields,
                            "attachments": {}}
        return Reply(201, {"id": str(10000 + number), "key": key,
                           "self": f"{self.url}/rest/api/2/issue/{10000 + number}"})

    def attach(self, r: Request, key: str) -> Reply:
        if r.headers.get("x-atlassian-token") != "no-check":
            return Reply(403, {"errorMessages": ["XSRF check failed"]})
        if key not in self.issues:
            return Reply(404, {"errorMessages": ["Issue does not exist or you do not have "
                                                 "permission to see it."]})
        out = []
        for name, filename, content in r.multipart():
            if name != "file" or not filename:
                continue
            if len(content) > self.max_attachment:
                return Reply(413, {"errorMessages": ["The file is too large."]})
            self.issues[key]["attachments"][filename] = content
            out.append({"filename": filename, "size": len(content)})
        return Reply(200, out)
