"""A fake Redmine (uploads, issues with the description filter) answering like Redmine's
REST API, for tests when no real Redmine is given (FAXFLOW_TEST_REDMINE_URL)."""

from __future__ import annotations

import re
from typing import Any

from .http import FakeService, Reply, Request


class FakeRedmine(FakeService):
    def __init__(self, api_key: str = "rm-key", projects: tuple[str, ...] = ("fax",),
                 max_upload: int = 1_000_000) -> None:
        super().__init__()
        self.api_key = api_key
        self.projects = projects
        self.max_upload = max_upload
        self.uploads: dict[str, bytes] = {}
        self.issues: dict[int, dict[str, Any]] = {}

    def handle(self, r: Request) -> Reply:
        if r.headers.get("x-redmine-api-key") != self.api_key:
            return Reply(401, b"", {"WWW-Authenticate": 'Basic realm="Redmine API"'})
        if r.path == "/uploads.json" and r.method == "POST":
            if r.headers.get("content-type") != "application/octet-stream":
                return Reply(406, b"")
            if len(r.body) > self.max_upload:
                return Reply(422, {"errors": ["This file cannot be uploaded because it exceeds "
                                              "the maximum allowed file size (1 MB)"]})
            token = f"{len(self.uploads) + 1}.abcdef"
            self.uploads[token] = r.body
            return Reply(201, {"upload": {"id": len(self.uploads), "token": token}})
        if r.path == "/issues.json" and r.method == "GET":
            return self.search(r)
        if r.path == "/issues.json" and r.method == "POST":
            return self.create(r)
        m = re.fullmatch(r"/issues/(\d+)\.json", r.path)
        if m and r.method == "GET":
            issue = self.issues.get(int(m.group(1)))
            if issue is None:
                return Reply(404, b"")
            view = self.public(issue)
            if "attachments" in (r.arg("include") or ""):
                view["attachments"] = [
                    {"id": n, "filename": a["filename"], "filesize": len(a["content"]),
                     "content_url": f"{self.url}/attachments/download/{issue['id']}/{n}"}
                    for n, a in enumerate(issue["attachments"])]
            return Reply(200, {"issue": view})
        m = re.fullmatch(r"/attachments/download/(\d+)/(\d+)", r.path)
        if m and r.method == "GET":
            return Reply(200, self.issues[int(m.group(1))]["attachments"][int(m.group(2))]
                         ["content"])
        return Reply(404, b"")

    @staticmethod
    def public(issue: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in issue.items() if k != "attachments"}

    def search(self, r: Request) -> Reply:
        issues = [self.public(i) for i in self.issues.values()]
        # Only the long filter form ("contains"), as the plugin and the tests send it.
        for name in ("description", "subject"):
            if name in r.query.get("f[]", []):
                if r.arg(f"op[{name}]") != "~":
                    return Reply(422, {"errors": ["unsupported operator"]})
                needle = (r.arg(f"v[{name}][]") or "").lower()
                issues = [i for i in issues if needle in i[name].lower()]
        limit = int(r.arg("limit") or 25)
        return Reply(200, {"issues": issues[:limit], "total_count": len(issues),
                           "offset": 0, "limit": limit})

    def create(self, r: Request) -> Reply:
        data = r.json().get("issue", {})
        errors = []
        if str(data.get("project_id")) not in self.projects:
            errors.append("Project cannot be blank")
        if not data.get("subject"):
            errors.append("Subject cannot be blank")
        for upload in data.get("uploads", []):
            if upload.get("token") not in self.uploads:
                errors.append("Attachment is invalid")
        if errors:
            return Reply(422, {"errors": errors})
        number = len(self.issues) + 1
        self.issues[number] = {
            "id": number, "subject": data["subject"], "description": data.get("description", ""),
            "project": {"id": 1, "name": data["project_id"]},
            "attachments": [{"filename": u["filename"], "content_type": u.get("content_type"),
                             "content": self.uploads[u["token"]]}
                            for u in data.get("uploads", [])],
        }
        return Reply(201, {"issue": self.public(self.issues[number])})
