"""`model` in `[plugins.ocr]`: which tesseract model folder is read with (issue 17)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from faxflow_ocr import options as opts
from faxflow_ocr.engine import find_tessdata
from faxflow_ocr.options import OcrOptions
from faxflow_ocr.service import OcrService
from processes import children

from faxflow.samples import cer, make_fax


@pytest.fixture
def standard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where `pip install 'faxflow[ocr-standard]'` puts the models, empty for now."""
    folder = tmp_path / "share" / "tessdata"
    folder.mkdir(parents=True)
    monkeypatch.setattr(opts, "standard_folder", lambda: str(folder))
    return folder


def messages(table: dict[str, object]) -> list[str]:
    return [p.format() for p in opts.parse(table)[1]]


def test_fast_is_tesseract_s_own_folder() -> None:
    assert OcrOptions().model == "fast" and OcrOptions().model_folder is None
    assert messages({"model": "fast"}) == []
    assert "must be one of fast, standard" in messages({"model": "best"})[0]


def test_standard_needs_its_package(standard: Path) -> None:
    [message] = messages({"model": "standard"})
    assert "plugins.ocr.model" in message and "pip install 'faxflow[ocr-standard]'" in message
    shutil.copy(Path(find_tessdata(), "eng.traineddata"), standard)
    assert messages({"model": "standard"}) == []
    assert opts.model_folder({"model": "standard"}) == str(standard)
    assert OcrOptions(model="standard").model_folder == str(standard)


def test_model_and_tessdata_are_not_both_set(tmp_path: Path) -> None:
    assert "set model or tessdata, not both" in " ".join(
        messages({"model": "standard", "tessdata": str(tmp_path)}))
    assert OcrOptions(tessdata=str(tmp_path)).model_folder == str(tmp_path)


@pytest.mark.parametrize("engine", ["libtesseract", "pytesseract"])
def test_pages_are_read_with_the_model_s_folder(standard: Path, tmp_path: Path,
                                                engine: str) -> None:
    # A copy of tesseract's own model stands in for the 23 MB standard one.
    for name in ("eng.traineddata", "osd.traineddata"):
        shutil.copy(Path(find_tessdata(), name), standard)
    sample = make_fax(kind="order", pages=1, resolution="fine", fmt="tiff", seed=2)
    path = tmp_path / "m.tif"
    path.write_bytes(sample.content)
    others = _libtess_children()  # other tests' engines may still be closing theirs
    ocr = OcrService(OcrOptions(model="standard", cache=False, workers=1, engine=engine), None)
    try:
        outcome = ocr.read(path, path.name, "", "eng")
        if engine == "pytesseract":
            assert f"--tessdata-dir {standard}" in getattr(ocr.engine, "folder", "")
        else:  # the child that read the page was started with the folder
            assert [str(standard)] == [args[2] for args in _libtess_children()
                                       if args not in others]
    finally:
        ocr.close()
    assert OcrOptions(model="standard").fingerprint() != OcrOptions().fingerprint()
    assert cer(sample.page_texts[0], outcome.pages[0].text) < 0.01


def _libtess_children() -> list[list[str]]:
    """The command lines of this process's libtesseract children, from the script on."""
    return [args[next(i for i, a in enumerate(args) if a.endswith("libtess_child.py")):]
            for _, args in children("libtess_child.py").values()]
