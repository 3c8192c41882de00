"""Tests for faxflow-urgent, using the fixtures faxflow ships for plugin authors."""

import faxflow_urgent

from faxflow.types import PageText, Verdict


def test_labels_urgent_faxes(faxflow_app_factory, sample_fax):
    app = faxflow_app_factory(plugins={"urgent": faxflow_urgent},
                              config='[plugins.urgent]\nwords = ["asap"]\n')
    fax = sample_fax(kind="letter")
    fax.pages = [PageText(1, "Please call back ASAP")]
    [result] = app.classify(fax)
    assert result.labels == {"urgent"}


def test_holds_unreadable_faxes_when_asked(faxflow_app_factory, sample_fax):
    app = faxflow_app_factory(plugins={"urgent": faxflow_urgent},
                              config="[plugins.urgent]\nhold_unreadable = true\n")
    fax = sample_fax()
    fax.pages = [PageText(1, "", error="tesseract timed out")]
    votes = app.ack_votes(fax)
    assert votes["urgent"].verdict is Verdict.NOT_YET
