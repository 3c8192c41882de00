"""Parsing Fax2WSPull JSON into faxflow.types: pure functions, no network."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from faxflow.retarus import ProtocolError
from faxflow.retarus.parse import (
    as_date,
    as_datetime,
    file_name,
    parse_batch,
    parse_job,
    parse_number,
)
from faxflow.retarus.retry import RetryPolicy, parse_retry_after
from faxflow.types import Number

PUBLISHED = {
    "id": "29",
    "callId": "J5WA4IAA@BXATD0S.glagqaseq108.DC2",
    "costCenter": "my billing code",
    "dateReceived": "2023-08-03T12:09:43+0200",
    "totalDuration": 82,
    "senderIsdn": "00498912345678",
    "senderFaxId": "Retarus/Doe",
    "receiverIsdn": "+4989262080440",
    "receiverFaxId": "Retarus Faxolution",
    "faxResolution": "HIGH",
    "faxBaudRate": 33600,
    "faxPageCount": 1,
    "faxClassicStatus": "OK",
    "faxNumericStatus": "2.0.0",
    "archivingStatus": "SUCCEEDED",
    "archiveExpiry": "2023.08.10",
    "documents": [{"url": "https://api.us1.retarus.com/faxin/rest/v1/files/29.pdf"}],
}


def test_published_example_parses_into_every_field() -> None:
    job = parse_job(PUBLISHED)
    assert job is not None
    assert job.id == "29"
    assert job.call_id == "J5WA4IAA@BXATD0S.glagqaseq108.DC2"
    assert job.cost_center == "my billing code"
    assert job.date_received == datetime(2023, 8, 3, 12, 9, 43, tzinfo=timezone(timedelta(hours=2)))
    assert job.total_duration == 82
    assert job.sender_isdn == Number("00498912345678", "+498912345678")
    assert job.sender_fax_id == "Retarus/Doe"
    assert job.receiver_isdn == Number("+4989262080440", "+4989262080440")
    assert job.receiver_fax_id == "Retarus Faxolution"
    assert job.fax_resolution == "HIGH"
    assert job.fax_baud_rate == 33600
    assert job.fax_page_count == 1
    assert job.fax_classic_status == "OK"
    assert job.fax_numeric_status == "2.0.0"
    assert job.archiving_status == "SUCCEEDED"
    assert job.archive_expiry == date(2023, 8, 10)
    assert len(job.documents) == 1
    doc = job.documents[0]
    assert (doc.name, doc.extension) == ("29.pdf", "pdf")
    assert job.extra == {}
    assert job.raw == PUBLISHED


@pytest.mark.parametrize(
    "text",
    ["2023-08-03T12:09:43+0200", "2023-08-03T12:09:43+02:00", "2023-08-03T10:09:43Z"],
)
def test_both_date_styles_and_z_mean_the_same_instant(text: str) -> None:
    parsed = as_datetime(text)
    assert parsed is not None
    assert parsed == datetime(2023, 8, 3, 10, 9, 43, tzinfo=UTC)


def test_date_without_offset_is_taken_as_utc_and_garbage_is_none() -> None:
    assert as_datetime("2023-08-03T12:09:43") == datetime(2023, 8, 3, 12, 9, 43, tzinfo=UTC)
    for bad in ["", "yesterday", "2023-13-03T12:09:43+0200", 1691057383, None, {"a": 1}]:
        assert as_datetime(bad) is None


def test_archive_expiry_styles() -> None:
    assert as_date("2023.08.10") == date(2023, 8, 10)
    assert as_date("2023-08-10") == date(2023, 8, 10)
    for bad in ["2023.02.30", "10.08.2023", "", 20230810, None]:
        assert as_date(bad) is None


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("00498912345678", "+498912345678"),
        ("+4989262080440", "+4989262080440"),
        ("+49 89 2620804-40", "+4989262080440"),
        ("0012125550123", "+12125550123"),
        ("089262080440", None),  # national: no country known
        ("anonymous", None),
        ("+1", None),
    ],
)
def test_numbers_kept_raw_and_as_e164(raw: str, e164: str | None) -> None:
    assert parse_number(raw) == Number(raw, e164)


def test_missing_or_empty_numbers_are_none() -> None:
    assert parse_number(None) is None
    assert parse_number("") is None
    assert parse_number({"n": "1"}) is None


def test_unknown_fields_kept_in_extra() -> None:
    job = parse_job({"id": "1", "newField": {"x": 1}, "faxPageCount": 2, "tags": ["a"]})
    assert job is not None
    assert job.extra == {"newField": {"x": 1}, "tags": ["a"]}
    assert job.fax_page_count == 2


def test_missing_fields_are_none() -> None:
    job = parse_job({"id": "7"})
    assert job is not None
    assert job.call_id is None and job.date_received is None and job.sender_isdn is None
    assert job.archive_expiry is None and job.fax_page_count is None
    assert job.documents == ()


def test_wrong_types_tolerated_and_raw_kept() -> None:
    odd = {
        "id": 42,
        "faxPageCount": "3",
        "totalDuration": 82.0,
        "faxBaudRate": "fast",
        "callId": {"nested": True},
        "senderFaxId": ["x"],
        "dateReceived": 12345,
        "archiveExpiry": None,
        "faxClassicStatus": True,
        "documents": "not a list",
    }
    job = parse_job(odd)
    assert job is not None
    assert job.id == "42"
    assert job.fax_page_count == 3
    assert job.total_duration == 82
    assert job.fax_baud_rate is None
    assert job.call_id is None
    assert job.sender_fax_id is None
    assert job.date_received is None
    assert job.fax_classic_status is None
    assert job.documents == ()
    assert job.raw == odd


@pytest.mark.parametrize("bad_id", [None, "", {"id": 1}, ["1"], "a,b", True])
def test_job_without_usable_id_is_skipped_with_a_warning(
    bad_id: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="faxflow.retarus")
    data = {"id": bad_id} if bad_id is not None else {"callId": "x"}
    assert parse_job(data) is None
    assert "without a usable id" in caplog.text


def test_document_urls() -> None:
    assert file_name("https://h/faxin/rest/v1/files/K34A3QX3@J78AO6W.glaqsmucre101.QA1.pdf") == (
        "K34A3QX3@J78AO6W.glaqsmucre101.QA1.pdf"
    )
    # percent-decoded once: an id holding "%2F" literally arrives as "%252F"
    assert file_name("https://h/files/A%2FB%2BC%20D%252F.tif?x=1") == "A/B+C D%2F.tif"
    assert file_name("https://h/files/..") == ""
    assert file_name("") == ""


def test_bad_document_entry_is_kept_with_empty_name(caplog: pytest.LogCaptureFixture) -> None:
    job = parse_job({"id": "1", "documents": [{"url": 5, "pages": 2}, "x", {"url": "h/1.TIFF"}]})
    assert job is not None
    names = [(d.name, d.extension) for d in job.documents]
    assert names == [("", ""), ("", ""), ("1.TIFF", "tiff")]
    assert job.documents[0].extra == {"pages": 2}


def test_batch_meta_and_results() -> None:
    data = {
        "meta": {
            "version": 1,
            "next": "https://x/faxin/rest/v1/topics/t?fetch=10&timeout=60&ids=29",
            "exit": "https://x/faxin/rest/v1/topics/t?fetch=0&timeout=60&ids=29",
            "topic": "t",
            "resultSize": 2,
            "parameters": {"fetch": 10},
        },
        "results": [PUBLISHED, {"noid": 1}],
    }
    batch = parse_batch(data)
    assert [j.id for j in batch.jobs] == ["29"]
    assert batch.meta.version == 1
    assert batch.meta.topic == "t"
    assert batch.meta.result_size == 2
    assert batch.meta.next is not None and batch.meta.next.endswith("ids=29")
    assert batch.meta.parameters == {"fetch": 10}


def test_batch_tolerates_missing_meta_but_not_missing_results() -> None:
    assert parse_batch({"results": []}).meta.version is None
    bad: object
    for bad in [[], "x", None, {"meta": {}}, {"results": {"0": {}}}]:
        with pytest.raises(ProtocolError):
            parse_batch(bad)


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_is_capped_full_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(attempts=10, base_delay=1.0, max_delay=8.0)
    for attempt in range(1, 10):
        for _ in range(50):
            assert 0.0 <= policy.delay(attempt) <= min(8.0, 2 ** (attempt - 1))
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert policy.delay(1, retry_after=3600.0) == 8.0
