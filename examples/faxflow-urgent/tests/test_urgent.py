"""Tests for faxflow-urgent, using the fixtures faxflow ships for plugin authors."""

from faxflow_urgent import block, pager, urgent

from faxflow.types import Outcome, PageText, Route, Verdict


def test_labels_urgent_faxes(faxflow_app_factory, sample_fax):
    app = faxflow_app_factory(plugins={"urgent": urgent},
                              config='[plugins.urgent]\nwords = ["asap"]\n')
    fax = sample_fax(kind="letter")
    fax.pages = [PageText(1, "Please call back ASAP")]
    [result] = app.classify(fax)
    assert result.labels == {"urgent"}


def test_reads_the_page_with_the_ocr_plugin(faxflow_app_factory, sample_fax):
    app = faxflow_app_factory(plugins={"urgent": urgent}, load=["ocr"],
                              config='[plugins.ocr]\nlanguages = "eng"\n')
    fax = sample_fax(text=["Dringend: bitte sofort zurueckrufen"])
    fax.pages = app.extract_text(fax, fax.documents[0])
    [result] = app.classify(fax)
    assert result.labels == {"urgent"}


def test_blocked_senders_are_held_before_delivery(faxflow_app_factory, sample_fax):
    app = faxflow_app_factory(plugins={"sender_block": block},
                              config='[plugins.sender_block]\nnumbers = ["+4930123456"]\n')
    votes = app.hold_votes(sample_fax(sender="+4930123456"))
    assert votes["sender_block"].verdict is Verdict.QUARANTINE
    assert app.hold_votes(sample_fax(sender="+4940111111"))["sender_block"] is None


def test_pager_writes_one_line_once(faxflow_app_factory, sample_fax, tmp_path):
    app = faxflow_app_factory(plugins={"pager": pager},
                              config=f'[plugins.pager]\noutbox = "{tmp_path / "out.txt"}"\n')
    fax = sample_fax()
    route = Route("urgent/0", "pager", {"to": "+4917012345678", "text": "Urgent fax"})
    assert app.deliver(fax, route, uncertain=False).outcome is Outcome.DELIVERED
    assert app.deliver(fax, route, uncertain=True).outcome is Outcome.DELIVERED  # a retry
    (line,) = (tmp_path / "out.txt").read_text().splitlines()
    assert line.endswith("\t+4917012345678\tUrgent fax")
    bad = app.deliver(fax, Route("u/1", "pager", {"to": "+49 evil\nline"}), uncertain=False)
    assert bad.outcome is Outcome.PERMANENT
