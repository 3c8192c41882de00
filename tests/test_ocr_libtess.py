"""The libtesseract engine (the default): tesseract's own library kept loaded in a child
process. Real tesseract, real child processes, real signals; nothing is mocked except where
a test says so."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import faxflow_ocr
import faxflow_ocr.libtess
import pluggy
import processes
import pytest
from faxflow_ocr import prep
from faxflow_ocr.engine import PytesseractEngine, page_file
from faxflow_ocr.failures import is_transient
from faxflow_ocr.libtess import LibtessEngine, TesseractFailed, find_library
from faxflow_ocr.options import OcrOptions
from faxflow_ocr.service import OcrService
from PIL import Image

import faxflow.config
import faxflow.hookspecs
from faxflow.app import App
from faxflow.samples import make_fax

LIBRARY = find_library()
pytestmark = pytest.mark.skipif(LIBRARY is None, reason="no libtesseract on this machine")


def page(resolution: str = "fine", noisy: bool = False, seed: int = 2) -> Image.Image:
    sample = make_fax(kind="letter", pages=1, resolution=resolution, noisy=noisy,  # type: ignore[arg-type]
                      fmt="tiff", seed=seed)
    return Image.open(io.BytesIO(sample.content)).convert("L")


def engine(workers: int = 1) -> LibtessEngine:
    assert LIBRARY is not None
    return LibtessEngine(LIBRARY, None, workers)


def children() -> dict[int, str]:
    """pid -> state of this process's libtesseract children started since the test began
    (other tests' engines may still be closing theirs)."""
    return {pid: state for pid, state in all_children().items() if pid not in BEFORE}


BEFORE: set[int] = set()


@pytest.fixture(autouse=True)
def _others() -> None:
    BEFORE.clear()
    BEFORE.update(all_children())


def all_children() -> dict[int, str]:
    return {pid: state for pid, (state, _) in processes.children("libtess_child.py").items()}


def test_it_reads_exactly_what_the_tesseract_command_reads(tmp_path: Path) -> None:
    """Same text renderer, same library: the text the CLI prints, byte for byte, for a
    black-and-white page (PBM) and a smoothed 8-bit one (TIFF), and the text of the
    pytesseract engine (the CLI run per page). The confidences are tesseract's per word;
    the child's are whole numbers (AllWordConfidences), the CLI's TSV has decimals."""
    bilevel = page()
    smoothed = page("standard", noisy=True, seed=3)
    smoothed = smoothed.resize((smoothed.width, smoothed.height * 2))
    library, command = engine(), PytesseractEngine()
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        for number, image in enumerate((bilevel, smoothed)):
            mine = library.ocr(image, "eng", 4, 204, 60, scratch=tmp_path)
            theirs = command.ocr(image, "eng", 4, 204, 60, scratch=tmp_path)
            name = page_file(image, str(tmp_path / f"page{number}"))
            printed = subprocess.run(["tesseract", name, "-", "--psm", "4", "--dpi", "204"],
                                     capture_output=True, env=env, check=True).stdout
            Path(name).unlink()
            assert mine.text == printed.decode().strip() and mine.text.count("\n") > 10
            assert mine.text == theirs.text and mine.words == theirs.words > 100
            assert mine.confidence is not None and theirs.confidence is not None
            assert abs(mine.confidence - theirs.confidence) < 1
    finally:
        library.close()
    assert list(tmp_path.iterdir()) == []  # page files, text and .err removed


def test_an_8_bit_page_goes_to_tesseract_as_a_tiff_it_reads_as_it_reads_a_pgm(
        tmp_path: Path) -> None:
    """The 8-bit page file is an uncompressed TIFF (leptonica reads a PGM a pixel at a
    time). Made from a page decoded from a G4 fax TIFF, whose compression and resolution
    Pillow would carry over: the file holds the same pixels, no resolution of its own, and
    tesseract reads from it exactly what it reads from a PGM of those pixels."""
    sample = make_fax(kind="letter", pages=1, resolution="fine", fmt="tiff", seed=4)
    with Image.open(io.BytesIO(sample.content)) as fax:
        smoothed = prep.smooth(fax.convert("L"), False, False)
    assert smoothed.info.get("compression") == "group4" and "dpi" in smoothed.info
    name = page_file(smoothed, str(tmp_path / "page"))
    with Image.open(name) as written:
        assert written.format == "TIFF" and written.mode == "L"
        assert written.info["compression"] == "raw" and written.info["dpi"] == (1, 1)
        assert written.tobytes() == smoothed.tobytes()
    smoothed.save(tmp_path / "page.pgm", format="PPM")
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    tsv = [subprocess.run(["tesseract", str(path), "-", "--psm", "4", "--dpi", "204", "tsv"],
                          capture_output=True, env=env, check=True).stdout
           for path in (Path(name), tmp_path / "page.pgm")]
    assert tsv[0] == tsv[1] and tsv[0].count(b"\n") > 50


def test_one_child_reads_page_after_page_and_ends_with_the_engine(tmp_path: Path) -> None:
    image = page()
    library = engine()
    try:
        for _ in range(3):
            library.ocr(image, "eng", 4, 204, 60, scratch=tmp_path)
        assert len(children()) == 1
    finally:
        library.close()
    assert children() == {}  # ended and reaped, no zombie


def test_an_engine_dropped_without_close_ends_its_children(tmp_path: Path) -> None:
    library = engine()
    library.ocr(page(), "eng", 4, 204, 60, scratch=tmp_path)
    assert len(children()) == 1
    del library  # the last reference: the finalizer closes the idle child
    assert children() == {}


def test_a_page_past_its_time_kills_the_child_and_the_next_page_gets_a_new_one(
        tmp_path: Path) -> None:
    image = page()
    library = engine()
    try:
        library.ocr(image, "eng", 4, 204, 60, scratch=tmp_path)
        (first,) = children()
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"took longer than 0\.2 s"):
            library.ocr(image, "eng", 4, 204, 0.2, scratch=tmp_path)
        assert time.monotonic() - started < 1.5
        assert first not in children()  # killed and reaped, not left reading
        result = library.ocr(image, "eng", 4, 204, 60, scratch=tmp_path)
        assert "Page 1" in result.text or result.words > 50
        assert len(children()) == 1 and first not in children()
    finally:
        library.close()


def test_a_child_killed_from_outside_is_a_transient_failure_and_is_replaced(
        tmp_path: Path) -> None:
    """SIGKILL from outside, as the kernel's OOM killer sends it, in the middle of a page:
    the fax comes back later (transient); the next page is read by a new child."""
    image = page()
    library = engine()
    try:
        library.ocr(image, "eng", 4, 204, 60, scratch=tmp_path)
        (pid,) = children()
        killer = threading.Timer(0.3, os.kill, (pid, signal.SIGKILL))
        killer.start()
        with pytest.raises(TesseractFailed) as caught:
            library.ocr(image, "eng", 4, 204, 60, scratch=tmp_path)
        killer.join()
        assert caught.value.status == -signal.SIGKILL
        assert str(caught.value) == "tesseract stopped (signal 9)"
        assert is_transient(caught.value)
        assert library.ocr(image, "eng", 4, 204, 60, scratch=tmp_path).words > 50
    finally:
        library.close()


def test_a_file_tesseract_cannot_read_is_the_page_s_error_and_the_child_lives_on(
        tmp_path: Path) -> None:
    library = engine()
    try:
        library.ocr(page(), "eng", 4, 204, 60, scratch=tmp_path)
        (pid,) = children()
        with library._child("eng", 30) as child:
            answer = child.call({"op": "ocr", "image": str(tmp_path / "missing.pnm"),
                                 "base": str(tmp_path / "x"), "psm": 4, "dpi": 200,
                                 "pdf": False}, 30)
        assert answer == {"ok": False, "error": "tesseract failed"}
        assert "missing.pnm" in (tmp_path / "x.err").read_text()  # tesseract's own words
        assert not is_transient(TesseractFailed("tesseract failed", None))
        assert list(children()) == [pid]
    finally:
        library.close()


def test_orientation_from_the_child_turns_a_page_upright(tmp_path: Path) -> None:
    image = page("fine", seed=4)
    library, command = engine(), PytesseractEngine()
    try:
        for turn in (90, 180, 270):
            turned = image.rotate(turn, expand=True)
            back = library.rotation(turned, 204, 60, tmp_path)
            assert back == (360 - turn) % 360
            assert back == command.rotation(turned, 204, 60, tmp_path)
        assert library.rotation(Image.new("L", (800, 1000), 255), 204, 60, tmp_path) is None
    finally:
        library.close()


def test_idle_children_are_at_most_one_per_pool_thread(tmp_path: Path) -> None:
    """Faxes in three language sets through a one-thread pool: one child kept idle, not
    three (each holds a loaded model)."""
    image = page()
    library = engine(workers=1)
    try:
        for languages in ("eng", "deu", "eng+deu"):
            library.ocr(image, languages, 4, 204, 60, scratch=tmp_path)
        assert len(children()) == 1
    finally:
        library.close()


def test_a_searchable_pdf_comes_from_the_child(tmp_path: Path) -> None:
    sample = make_fax(kind="invoice", pages=2, resolution="fine", fmt="pdf", seed=5)
    source = tmp_path / "in.pdf"
    source.write_bytes(sample.content)
    ocr = OcrService(OcrOptions(cache=False, workers=2), tmp_path / "cache")
    try:
        outcome = ocr.read(source, "in.pdf", "", "eng", tmp_path / "out.pdf")
    finally:
        ocr.close()
    assert isinstance(ocr.engine, LibtessEngine)
    text = subprocess.run(["pdftotext", str(tmp_path / "out.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert outcome.searchable_pdf and "Page 2" in text and "INVOICE" in text.upper()


def test_the_config_check_says_when_the_library_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Mocked: this machine has the library; a machine without it is what is pretended."""
    monkeypatch.setattr(faxflow_ocr, "find_library", lambda: None)
    pm = pluggy.PluginManager("faxflow")
    pm.add_hookspecs(faxflow.hookspecs)
    pm.register(faxflow_ocr, name="ocr")
    for table, expected in (("", True), ('engine = "pytesseract"', False)):
        config, _ = faxflow.config.parse(f"[plugins.ocr]\n{table}\n")
        problems = App(pm=pm, config=config).check_config(config)
        found = [p.message for p in problems if p.path == ("plugins", "ocr", "engine")]
        assert bool(found) is expected
        if expected:
            assert "libtesseract" in found[0] and 'engine = "pytesseract"' in found[0]


# --- what an outside review found (each failed before its fix) -----------------------------


def test_a_child_s_start_counts_in_the_page_s_time(tmp_path: Path) -> None:
    """A model file that never finishes loading (a FIFO nobody writes): the page fails at
    its own limit, not after the 30 s a start may take."""
    folder = tmp_path / "tessdata"
    folder.mkdir()
    os.mkfifo(folder / "eng.traineddata")
    assert LIBRARY is not None
    library = LibtessEngine(LIBRARY, str(folder), 1)
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            library.ocr(page(), "eng", 4, 204, 1.0, scratch=tmp_path)
    finally:
        library.close()
    assert time.monotonic() - started < 3
    assert children() == {}


def test_a_model_that_cannot_load_is_the_machine_s_fault(tmp_path: Path) -> None:
    """A damaged model: the fax comes back later (transient), as when the tesseract
    command is missing; it is not delivered with pages 'that could not be read'."""
    folder = tmp_path / "tessdata"
    folder.mkdir()
    (folder / "eng.traineddata").write_bytes(b"not a model" * 100)
    assert LIBRARY is not None
    library = LibtessEngine(LIBRARY, str(folder), 1)
    try:
        with pytest.raises(faxflow_ocr.libtess.StartFailed) as caught:
            library.ocr(page(), "eng", 4, 204, 30, scratch=tmp_path)
    finally:
        library.close()
    assert is_transient(caught.value)
    assert children() == {}


def test_a_child_that_died_before_its_request_is_a_transient_failure(
        tmp_path: Path) -> None:
    library = engine()
    try:
        library.ocr(page(), "eng", 4, 204, 60, scratch=tmp_path)
        with pytest.raises(TesseractFailed) as caught, library._child("eng", 30) as child:
            os.kill(child.proc.pid, signal.SIGKILL)
            while child.alive:
                time.sleep(0.01)
            child.call({"op": "ocr", "image": "x", "base": str(tmp_path / "x"),
                        "psm": 4, "dpi": 200, "pdf": False, "timeout": 30}, 30)
        assert caught.value.status == -signal.SIGKILL and is_transient(caught.value)
        assert child.proc.stdin is not None and child.proc.stdin.closed
        assert child.proc.stdout is not None and child.proc.stdout.closed
    finally:
        library.close()


def test_a_child_killed_while_idle_is_replaced_not_kept(tmp_path: Path) -> None:
    library = engine(workers=2)
    try:
        library.ocr(page(), "eng", 4, 204, 60, scratch=tmp_path)
        (dead,) = children()
        os.kill(dead, signal.SIGKILL)
        time.sleep(0.2)
        for _ in range(3):
            assert library.ocr(page(), "eng", 4, 204, 60, scratch=tmp_path).words > 50
        assert dead not in children()  # reaped: not even a zombie
        assert len(children()) == 1 and len(library._idle) == 1
    finally:
        library.close()


@pytest.mark.parametrize("first_pixel", [9, 10, 32])
def test_orientation_does_not_depend_on_the_page_s_first_pixel(
        tmp_path: Path, first_pixel: int) -> None:
    """Pixel values that are whitespace in a PGM header (tab, newline, space) at the start
    of the page: a sender could otherwise switch the orientation check off."""
    turned = page("fine", seed=4).rotate(90, expand=True)
    turned.putpixel((0, 0), first_pixel)
    library = engine()
    try:
        assert library.rotation(turned, 204, 60, tmp_path) == 270
    finally:
        library.close()


def test_children_end_with_a_worker_that_is_killed(tmp_path: Path) -> None:
    """SIGKILL to the worker: its child does not go on reading on its own."""
    script = tmp_path / "worker.py"
    script.write_text(
        "import io, sys, time\n"
        "from PIL import Image\n"
        "from faxflow.samples import make_fax\n"
        "from faxflow_ocr.libtess import LibtessEngine, find_library\n"
        "sample = make_fax(kind='letter', pages=1, resolution='fine', fmt='tiff', seed=2)\n"
        "image = Image.open(io.BytesIO(sample.content)).convert('L')\n"
        "engine = LibtessEngine(find_library(), None, 1)\n"
        "engine.ocr(image, 'eng', 4, 204, 60)\n"
        "print(engine._idle[0].proc.pid, flush=True)\n"
        "engine.ocr(image, 'eng', 4, 204, 60)\n")
    worker = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              text=True)
    assert worker.stdout is not None
    child = int(worker.stdout.readline())
    time.sleep(0.2)  # the child is reading the second page now
    worker.kill()
    worker.wait()
    # at once: the page it was reading takes ~1 s, and with nobody left to answer it would
    # have ended only after it, on EOF
    deadline = time.monotonic() + 0.4
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            break
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists() or state == "Z"
