"""The hostile corpus: one `Case` per fax, with what must become of it.

`expect` is "delivered" (written to the output folder and acknowledged), "quarantined"
(kept in the quarantine folder with a reason matching `reason`, and acknowledged) or
"handled" (either, for input where both are defensible). `xfail` names a known bug: the test
asserts the right behaviour and is expected to fail until the bug is fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faxflow.simulator import file_name
from faxflow.simulator.minipdf import one_page_pdf
from hostile import documents as docs
from hostile.servers import Override

FIELDS = ("callId", "costCenter", "dateReceived", "totalDuration", "senderIsdn", "senderFaxId",
          "receiverIsdn", "receiverFaxId", "faxResolution", "faxBaudRate", "faxPageCount",
          "faxClassicStatus", "faxNumericStatus", "archivingStatus", "archiveExpiry")
SENDER_FIELDS = ("senderFaxId", "senderIsdn", "costCenter", "callId")
MB = 1024 * 1024
DOWNLOAD_CAP = 2_000_000  # [retarus] max_download_bytes in the test's configuration


@dataclass
class Case:
    name: str
    expect: str  # "delivered" | "quarantined" | "handled"
    reason: str = ""  # regex the quarantine reason must match (case-insensitive)
    documents: list[tuple[str, bytes]] | None = None  # (extension, content); None: plain PDF
    fields: dict[str, Any] = field(default_factory=dict)  # given to sim.add_fax
    override: Override | None = None  # what a poll shows instead (see RawSimulator)
    xfail: str | None = None
    job_id: str = ""  # set once added to the simulator


def plain_pdf() -> bytes:
    # One shared document for the metadata cases: OCR reads it once, then the cache answers.
    return one_page_pdf("Hostile metadata test fax")


def document_cases() -> list[Case]:
    def doc(name: str, ext: str, make: Callable[[], bytes], expect: str, reason: str = "",
            xfail: str | None = None) -> Case:
        return Case(name, expect, reason, [(ext, make())], xfail=xfail)

    return [
        doc("corrupt-pdf", "pdf", docs.corrupt_pdf, "quarantined", r"PDF is damaged"),
        doc("truncated-pdf", "pdf", docs.truncated_pdf, "quarantined", r"PDF is damaged"),
        doc("encrypted-pdf", "pdf", docs.encrypted_pdf, "quarantined", r"password|encrypt"),
        doc("empty-pdf", "pdf", lambda: b"", "quarantined", r"empty \(0 bytes\)"),
        doc("empty-tif", "tif", lambda: b"", "quarantined", r"empty \(0 bytes\)"),
        doc("html-as-pdf", "pdf", docs.html_page, "quarantined", r"not a PDF"),
        doc("json-as-pdf", "pdf", docs.json_error, "quarantined", r"not a PDF"),
        doc("png-as-tif", "tif", docs.png_named_tif, "quarantined", r"not a TIFF"),
        doc("bomb-tiff", "tif", docs.bomb_tiff, "quarantined", r"too large"),
        # A page refused before decoding is a page that could not be read: the fax is
        # quarantined naming document and page (it was delivered with an empty text until
        # unreadable pages became the core's business; [worker] unreadable_pages).
        doc("bomb-pdf", "pdf", docs.bomb_pdf, "quarantined",
            r"^core: extract_text: document 1 of 1 \(.+\.pdf\): 1 of 1 pages unreadable: "
            r"page 1: page is too large"),
        doc("huge-page-pdf", "pdf", docs.huge_page_pdf, "quarantined",
            r"1 of 1 pages unreadable: page 1: page is too large"),
        doc("huge-page-among-good", "pdf", docs.pdf_with_a_huge_page, "quarantined",
            r"document 1 of 1 \(.+\.pdf\): 1 of 2 pages unreadable: page 2: page is too "
            r"large: \d+ x \d+ pixels"),
        # pdfinfo prints its width as "1e+06": too large, not a letter page drawn at 1.9 Gpx
        doc("wide-page-pdf", "pdf", docs.wide_page_pdf, "quarantined",
            r"1 of 1 pages unreadable: page 1: page is too large: \d{7} x \d+ pixels"),
        # bombs for qpdf, which only the PDF reader's child opens: the page is drawn by
        # poppler (tests/test_ocr_extract.py measures the worker's memory)
        doc("xref-stream-bomb", "pdf", docs.xref_stream_bomb_pdf, "delivered"),
        doc("flate-image-bomb", "pdf", docs.flate_image_bomb_pdf, "delivered"),
        doc("lying-page-count", "pdf", docs.lying_page_count_pdf, "quarantined",
            r"PDF is damaged: .*Page count \(2147483647\)"),
        # Over max_pages (3 here): quarantined from the headers by default (it was delivered
        # with pages 4-500 silently empty); too_many_pages = "deliver" is tested in test_ocr.
        doc("500-pages", "pdf", docs.many_pages_pdf, "quarantined",
            r"document 1 of 1 \(.+\.pdf\): 500 pages, more than max_pages \(3\)"),
        doc("truncated-tiff", "tif", docs.truncated_tiff, "quarantined",
            r"document 1 of 1 \(.+\.tif\): TIFF is damaged: Missing dimensions"),
        doc("tiff-cut-in-a-page", "tif", docs.tiff_cut_in_a_page, "quarantined",
            r"page 1: page could not be read: OSError: decoder error"),
        # Tens of seconds of rendering per page: stopped at document_timeout (8 s here).
        doc("slow-pdf", "pdf", lambda: docs.dashed_strokes_pdf(pages=3, lines=800, dash=0.005),
            "quarantined", r"document 1 of 1 \(.+\.pdf\): not read within its time budget "
            r"of 8 s \(document_timeout\); 0 of 3 pages read"),
        doc("tiff-lzw", "tif", docs.tiff_lzw, "delivered"),
        doc("tiff-packbits", "tiff", docs.tiff_packbits, "delivered"),
        doc("tiff-jpeg", "tif", docs.tiff_jpeg, "delivered"),
        doc("tiff-raw-8bit", "tif", docs.tiff_raw_8bit, "delivered"),
        doc("tiff-mixed-pages", "tif", docs.tiff_mixed_pages, "delivered"),
        doc("tiff-ifd-loop", "tif", docs.tiff_ifd_loop, "delivered"),
        # The extension lies but the content is a readable fax: read by its content.
        doc("tiff-named-pdf", "pdf", docs.tiff_lzw, "delivered"),
        doc("pdf-named-tif", "tif", plain_pdf, "delivered"),
        doc("over-the-size-cap", "pdf", lambda: docs.oversized_pdf(DOWNLOAD_CAP + 1000),
            "quarantined", r"over the cap"),
        Case("pdf-and-broken-tif", "quarantined", r"document 2 of 2 \(.+\.tif\): not a TIFF",
             [("pdf", plain_pdf()), ("tif", docs.html_page())]),
        # The reason names the damaged one of several documents, not only what is wrong.
        Case("corrupt-among-several", "quarantined",
             r"^core: extract_text: document 2 of 3 \(.+\.pdf\): PDF is damaged",
             # (the simulator serves one document per extension)
             [("tif", docs.tiff_lzw()), ("pdf", docs.corrupt_pdf()),
              ("tiff", docs.tiff_packbits())]),
    ]


def metadata_cases(token: str, other_host: str) -> list[Case]:
    """`token` marks every path-traversal payload, so a file it escaped to can be found;
    `other_host` is the base URL of the recording server."""
    def up(label: str) -> str:
        return "../" * 12 + f"tmp/hostile-{token}-{label}"

    control = "Dr.\x00 Evil\r\nBcc: victim@example.org\x1b[31m\u202egpj.exe\u200f 📠\x7f"
    cases = [
        Case("missing-every-field", "delivered", override=Override(drop=FIELDS)),
        Case("missing-documents", "quarantined", r"lists no document",
             override=Override(drop=("documents",))),
        Case("documents-not-a-list", "quarantined", r"lists no document|document",
             override=Override(documents=None, replace={"documents": "x.pdf"})),
        Case("document-entries-wrong-types", "quarantined", r"document",
             override=Override(documents=[42, {"url": 7}, None])),
        Case("every-field-null", "delivered",
             override=Override(replace=dict.fromkeys(FIELDS))),
        Case("wrong-types", "delivered", override=Override(replace={
            "senderIsdn": {"number": "+4930123"}, "senderFaxId": ["a", "b"],
            "costCenter": {"x": [1]}, "callId": [1, 2], "dateReceived": 1700000000,
            "receiverIsdn": [], "faxPageCount": "many", "totalDuration": {"s": 1},
            "faxResolution": 5, "faxBaudRate": "fast", "archiveExpiry": {},
            "faxClassicStatus": True, "faxNumericStatus": 2.0, "archivingStatus": [None]})),
        Case("numbers-as-floats-and-bools", "delivered", override=Override(replace={
            "senderIsdn": 4930123456.0, "receiverIsdn": True, "costCenter": 1e308,
            "faxPageCount": -5, "totalDuration": 10**30})),
        Case("huge-csid", "handled", r"too long|max_output|characters",
             fields={"senderFaxId": "A" * MB}),
        Case("huge-everything", "handled", r"too long|max_output|characters",
             fields={"costCenter": "C" * MB, "callId": "I" * MB, "receiverFaxId": "R" * MB,
                     "senderIsdn": "9" * MB}),
        Case("control-and-bidi", "delivered",
             fields={"senderFaxId": control, "costCenter": "\x00\x01\x02\r\n",
                     "callId": "\r\nX-Injected: 1", "senderIsdn": "+49\u202e30 123 456",
                     "receiverFaxId": "😀" * 50}),
        Case("traversal-relative", "delivered",
             fields={name: up(name) for name in SENDER_FIELDS}),
        Case("traversal-absolute", "delivered",
             fields={name: f"/tmp/hostile-{token}-abs-{name}" for name in SENDER_FIELDS}),
        Case("traversal-windows", "delivered",
             fields={name: f"..\\..\\..\\hostile-{token}-win-{name}" for name in SENDER_FIELDS}),
        Case("traversal-encoded", "delivered",
             fields={name: f"%2e%2e%2f%2e%2e%2fhostile-{token}-enc" for name in SENDER_FIELDS}),
        Case("traversal-dots-only", "delivered",
             fields={"senderFaxId": "..", "costCenter": ".", "callId": "...",
                     "senderIsdn": "../.."}),
    ]
    ids = {
        "id-traversal": up("id"),
        "id-dotdot": "..",
        "id-dot": ".",
        "id-absolute": f"/tmp/hostile-{token}-id-abs",
        "id-nul": "a\x00b",
        "id-windows": f"..\\..\\hostile-{token}-id-win",
        "id-encoded": f"%2e%2e%2f%2e%2e%2fhostile-{token}-id-enc",
        "id-newline": "fax\r\nX-Injected: 1",
        "id-bidi-emoji": "fax-\u202egpj.exe-📠",
        "id-long": "L" * 3000,
        "id-spaces-only": "   ",
    }
    cases += [Case(name, "delivered", fields={"id": value}) for name, value in ids.items()]

    def elsewhere(name: str, expect: str, reason: str, url: str) -> Case:
        return Case(name, expect, reason, override=Override(documents=[{"url": url}]))

    cases += [
        # The job's own file, but the URL names another server: the client must fetch it
        # from the configured API base (by the URL's last segment) and never contact it.
        elsewhere("url-other-host", "delivered", "",
                  other_host + "/faxin/rest/v1/files/{name}"),
        elsewhere("url-other-host-other-file", "quarantined", r"not found|gone",
                  other_host + "/steal/other.pdf"),
        elsewhere("url-with-credentials", "delivered", "",
                  "http://user:pw@" + other_host.split("//", 1)[1] + "/files/{name}"),
        elsewhere("url-file-scheme", "quarantined", r"not found|gone", "file:///etc/passwd"),
        elsewhere("url-ends-in-dotdot", "quarantined", r"file name|no document|document",
                  other_host + "/files/.."),
        elsewhere("url-traversal-segment", "quarantined", r"not found|gone",
                  "{api}/files/..%2F..%2F..%2Fetc%2Fpasswd"),
    ]
    return cases


def all_cases(token: str, other_host: str) -> list[Case]:
    return document_cases() + metadata_cases(token, other_host)


def add(sim: Any, topic: str, case: Case) -> str:
    """Add one case's fax to the simulator; returns its id (URL placeholders filled)."""
    documents = [{"extension": ext, "content": content}
                 for ext, content in (case.documents or [("pdf", plain_pdf())])]
    job = sim.add_fax(topic, documents=documents, **case.fields)
    case.job_id = job["id"]
    if case.override is not None:
        if case.override.documents is not None:
            case.override.documents = [
                {**d, "url": d["url"].replace("{name}", file_name(case.job_id, "pdf"))}
                if isinstance(d, dict) and isinstance(d.get("url"), str) else d
                for d in case.override.documents]
        sim.overrides[case.job_id] = case.override
    return case.job_id
