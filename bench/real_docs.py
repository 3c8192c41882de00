"""Real scanned documents for `bench/ocr.py real`, gathered from Debian source packages.

    .venv/bin/python bench/real_docs.py fetch DIR      # ~35 MB download, ~1 minute

Downloads four Debian source packages with `apt-get source --download-only` (its own apt
configuration under DIR/.apt: the machine's apt sources are not touched), checks every file
against the sha256 below, and builds 27 documents (39 pages) from the test images in them:
fax-like 300 dpi bilevel pages (G4 TIFF, CCITT and JBIG2 PDFs), multi-column magazine and
newspaper pages, a typed page, gray camera shots of book pages, a scanned page as a JPEG
PDF, photos,
small and low-text pages, a blank page, a page skewed past the range faxflow searches, and
two 4-page documents with pages turned 0/90/180/270. DIR/manifest.json lists each
document's pages by class and the words expected in it. Nothing here is committed: the
documents are built at bench time.

Licences (from each package's debian/copyright): leptonica BSD-2-Clause; tesseract's test
images Apache-2.0; pikepdf's test resources CC-BY-4.0 (congress.pdf public domain, from the
US Congressional Record); unpaper's test images GPL-2.0. Used here only to measure.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import img2pdf
from PIL import Image

Image.MAX_IMAGE_PIXELS = None  # our own test images, some of them large scans

SOURCES = """Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
# package=version: the file we need from it and its sha256
PACKAGES = {
    "leptonlib=1.82.0-3": ("leptonlib_1.82.0.orig.tar.gz",
                           "155302ee914668c27b6fe3ca9ff2da63b245f6d62f3061c8f27563774b8ae2d6"),
    "tesseract=5.3.0-2": ("tesseract_5.3.0.orig-test.tar.gz",
                          "2788d27de6e448f8ffa7dd19a22c5781768440dee60a34607099f0c66d44b911"),
    "pikepdf=6.0.0+dfsg-1": ("pikepdf_6.0.0+dfsg.orig.tar.xz",
                             "eafb9426030404593164613abcd8e032954e10bcbe175a891002e4f9aeba0e97"),
    "unpaper=7.0.0-0.1": ("unpaper_7.0.0.orig.tar.xz",
                          "2575fbbf26c22719d1cb882b59602c9900c7f747118ac130883f63419be46a80"),
}
LEPT = "leptonica-1.82.0/prog/"
TESS = "tesseract-0.0~git20210423.3ea1099/testing/"
PIKE = "pikepdf-6.0.0+dfsg/tests/resources/"
UNPA = "unpaper-7.0.0/tests/source_images/"
# member: sha256
MEMBERS = {
    LEPT + "feyn.tif": "3d64590834da81c4bf14cd915b1fc6bd7b7c9391337b12548a329e0d71946a91",
    LEPT + "witten.tif": "238146149157d0a9d47f0b312007486b77fce091bcf477696f63e617b59f5801",
    LEPT + "rabi.png": "74b7f916b29632afe5638549c284f0c509b5ea633bf3261c6fa157559c983dba",
    LEPT + "pageseg1.tif": "259d73c5deecbfa92969121786042b7242abb9e0dd871d2750e2761f316316fc",
    LEPT + "pageseg2.tif": "580693657a0db7b24cfe67cf345d04db166034dfdf0b9f7811554998e72611ae",
    LEPT + "pageseg3.tif": "6df7d25335bc4fc0c516a82bb8de688db063617a04891f343a8857da01622020",
    LEPT + "pageseg4.tif": "169d69c9e62f89c672a06918f4b8ceb7770bf8b5d7d12eca90d1ce86ff54c377",
    LEPT + "patent.png": "d479709e5017fee9657bd5241a4eb023efd7c07b9fffc1610e2eecd0c33a594a",
    LEPT + "shearer.148.tif": "d6229ce755bc97d7dc0fd965bafe3a35e2719f0174fe8fa4a91b80c70288daba",
    LEPT + "lucasta.1.300.tif": "0cbf176cf6c188d1d1b2142b948ca89d19afb5fc31831f4f77ab55f96d5f1845",
    LEPT + "harmoniam-11.tif": "1dee6618f8025e1b16c732b6f4a2cd27d27b206a79b4bd223e3fca9574fe6fa7",
    LEPT + "scots-frag.tif": "2edc2ef83275d2dfbcadd5778c11eceaae80f0d992e52c081c099c16935d7232",
    LEPT + "tickets.tif": "c2d439b0ca65c4d9115a0a359b37933d2556d36017b1a4086edc178fbd281d16",
    LEPT + "table.27.tif": "643a634d6530e446f09051df425b65620bc975e29121f61e36638c705cf8af47",
    LEPT + "form1.tif": "71a73a5b6057cc98598c428d974977c34f455a110dbab82703196eeeb17b74c6",
    LEPT + "marge.jpg": "4569abb9997dc7923bb8297d306a28b2ae8d707fd0bd5bb01f4c7e5ae667968f",
    LEPT + "tetons.jpg": "ad3f39f6f5c2bfd29b451d8849f195f4d669b23d376f65934919b3bacbcbe5b4",
    LEPT + "church.png": "0a7fb4105a602c90a632bdb6c5a5e53f486a34edd7e4284b8eab5cda3b44d8cf",
    LEPT + "1555.007.jpg": "e3e19b4c4d15788dfdb08ba53ba1a053890f8e204515fbe62fe5161e65a58aeb",
    LEPT + "zanotti-78.jpg": "0d3eee0f8779c50d349ec1ba168332ded3802218418acdee8ba2104601b561c3",
    TESS + "8087_054.3B.tif": "dab6db0f4c32296f313c7f1e7e139b13d7c69be65c64d6016f85ea67ebca9102",
    TESS + "8071_093.3B.tif": "d4f01cba19c99f8894d94a6d43eb8ed8013f8cf17fc08af9346bb9fb3697d452",
    TESS + "phototest.tif": "d2241a1eb6d6cd2eb6544b8e228c2862c852b7467d16ed636caa32179b780692",
    TESS + "phototest-rotated-L.png":
        "f9c80afb481abc07fdc6ff013df3048ef31141e7b1b90ec90ccbee8c3eddbea7",
    TESS + "phototest-rotated-R.png":
        "8b78f03821e57eec1c3ea3e15f1decb0cd1114322ffceaa1e27c4db91c3eb658",
    TESS + "phototest-rotated-180.png":
        "9a2ceaab3685a36a2041ef49b5683db2bedb4ff82d87136be4b52afa030e8114",
    TESS + "HelloGoogle.tif": "3d1486ad24325316f0e55076aac19866971aa297bfa4af95264405acbaa196fa",
    TESS + "eurotext.tif": "7b9bd14aba7d5e30df686fbb6f71782a97f48f81b32dc201a1b75afe6de747d6",
    PIKE + "sandwich.pdf": "f151acaf4970369708cd9650f9680a0f9598e8b401c6187b8b3a148eeff41c7c",
    PIKE + "jbig2.pdf": "51b886fa4ef26f17c3c284598dfc3f393fbc1c98c0db3ac561d3dbbc5e212080",
    PIKE + "jbig2global.pdf": "fb88cd4670abc1ac1d012350b69a15b9af5b886e8358b2435c1cd48ae90582c0",
    PIKE + "congress.pdf": "aa56b73d2ca24841b9aab2d617f941579238ef5096ea4d65f2cd15e8ffaba502",
    UNPA + "imgsrc001.png": "b757029c9224e5bd433232b037ec2d6614694c27cc3d2886e80bb6a1f85b9fe3",
    UNPA + "imgsrc002.png": "2f2c70e82217b6d8d587a7b690b9dfd12b1e10ebebf09a37e3b20b1cff6d895a",
}
PHOTOTEST = ["quick", "brown", "lazy", "jumped", "format"]


@dataclass
class Doc:
    name: str
    build: Callable[[dict[str, bytes]], bytes]
    pages: list[str]  # class of each page
    words: list[str] = field(default_factory=list)  # expected in the text (any case)
    source: str = ""


def as_is(member: str) -> Callable[[dict[str, bytes]], bytes]:
    return lambda files: files[member]


def g4_tiff(*members: str, turns: tuple[int, ...] = (), dpi: float | None = None,
            ) -> Callable[[dict[str, bytes]], bytes]:
    """Bilevel pages as one G4 TIFF (a fax's format); `turns`: degrees counter-clockwise
    per page; `dpi`: when the image has none (or a wrong one)."""

    def build(files: dict[str, bytes]) -> bytes:
        frames = []
        for index, member in enumerate(members):
            with Image.open(io.BytesIO(files[member])) as image:
                page = image.convert("1") if image.mode != "1" else image.copy()
                resolution = dpi or image.info.get("dpi", (300, 300))[0] or 300
            turn = turns[index] if turns else 0
            if turn:
                page = page.rotate(turn, expand=True)
            page.info["dpi"] = (resolution, resolution)
            frames.append(page)
        out = io.BytesIO()
        frames[0].save(out, format="TIFF", compression="group4", save_all=True,
                       append_images=frames[1:], dpi=frames[0].info["dpi"])
        return out.getvalue()

    return build


def image_pdf(*members: str, dpi: float | None = None) -> Callable[[dict[str, bytes]], bytes]:
    """Images as PDF pages, wrapped by img2pdf without re-encoding (JPEG stays JPEG, a G4
    TIFF becomes a CCITT page)."""

    def build(files: dict[str, bytes]) -> bytes:
        extra = {"layout_fun": img2pdf.get_fixed_dpi_layout_fun((dpi, dpi))} if dpi else {}
        images = []
        for member in members:
            data = files[member]
            if member.endswith(".png"):  # palette/alpha PNGs: as plain gray
                with Image.open(io.BytesIO(data)) as image:
                    out = io.BytesIO()
                    image.convert("L").save(out, format="PNG", dpi=image.info.get("dpi",
                                                                                  (300, 300)))
                    data = out.getvalue()
            images.append(data)
        return bytes(img2pdf.convert(images, **extra))

    return build


def blank_page(files: dict[str, bytes]) -> bytes:
    """A blank letter page at 300 dpi: the top 300 rows of 8087_054.3B.tif (white: the
    scans here have no specks in their margins) repeated down the page."""
    with Image.open(io.BytesIO(files[TESS + "8087_054.3B.tif"])) as scan:
        band = scan.crop((0, 0, scan.width, 300))
        page = Image.new("1", scan.size, 1)
        for y in range(0, scan.height, 300):
            page.paste(band, (0, y))
    out = io.BytesIO()
    page.save(out, format="TIFF", compression="group4", dpi=(300, 300))
    return out.getvalue()


def feyn_ccitt(files: dict[str, bytes]) -> bytes:
    return image_pdf("feyn.tif")({"feyn.tif": g4_tiff(LEPT + "feyn.tif")(files)})


DOCS = [
    Doc("feyn-ccitt.pdf", feyn_ccitt, ["bilevel"], ["Memories", "Feynman"], "leptonica"),
    Doc("witten.tif", as_is(LEPT + "witten.tif"), ["bilevel"], ["Reflections", "Spacetime"],
        "leptonica (dpi tag 1200)"),
    Doc("rabi.tif", g4_tiff(LEPT + "rabi.png"), ["bilevel"], ["Postdoc", "Europe"],
        "leptonica"),
    Doc("pageseg.tif", g4_tiff(*(LEPT + f"pageseg{n}.tif" for n in (1, 2, 3, 4))),
        ["bilevel"] * 4, ["PROGRESS", "deals", "wheels"],
        "leptonica, 4 pages"),
    Doc("patent.tif", g4_tiff(LEPT + "patent.png"), ["bilevel"], [], "leptonica"),
    Doc("shearer.tif", as_is(LEPT + "shearer.148.tif"), ["bilevel"], [], "leptonica"),
    Doc("lucasta.tif", as_is(LEPT + "lucasta.1.300.tif"), ["bilevel"], [], "leptonica"),
    Doc("scots-frag.tif", as_is(LEPT + "scots-frag.tif"), ["bilevel"],
        ["SCOTSMAN", "Farming"], "leptonica"),
    Doc("tickets.tif", g4_tiff(LEPT + "tickets.tif", dpi=300), ["bilevel"], [],
        "leptonica (dpi tag 72, set to 300)"),
    Doc("unlv-8087.pdf", image_pdf(TESS + "8087_054.3B.tif"), ["bilevel"], [],
        "tesseract test images (UNLV), CCITT PDF"),
    Doc("unlv-8071.tif", as_is(TESS + "8071_093.3B.tif"), ["bilevel"], ["Kids", "Dad"],
        "tesseract test images (UNLV), landscape"),
    Doc("sandwich.pdf", as_is(PIKE + "sandwich.pdf"), ["bilevel"], [],
        "pikepdf, CCITT PDF with a text layer"),
    Doc("jbig2.pdf", as_is(PIKE + "jbig2.pdf"), ["bilevel"], ["MESSAGE", "PRESIDENT"],
        "pikepdf, JBIG2 PDF"),
    Doc("jbig2global.pdf", as_is(PIKE + "jbig2global.pdf"), ["typewriter"], ["linzen", "water"],
        "pikepdf, JBIG2 PDF with global dictionary, a typed recipe (Dutch)"),
    Doc("congress.pdf", as_is(PIKE + "congress.pdf"), ["gray scan"], ["MESSAGE", "PRESIDENT"],
        "pikepdf, scanned page as a JPEG PDF"),
    Doc("camera-pages.pdf", image_pdf(LEPT + "1555.007.jpg", LEPT + "zanotti-78.jpg",
                                      dpi=150), ["gray scan"] * 2, [], "leptonica"),
    Doc("harmoniam.tif", as_is(LEPT + "harmoniam-11.tif"), ["low-text"], ["HARMONIAM"],
        "leptonica, title page"),
    Doc("table.tif", as_is(LEPT + "table.27.tif"), ["low-text"], [], "leptonica, ruled table"),
    Doc("form.tif", as_is(LEPT + "form1.tif"), ["small"], [], "leptonica"),
    Doc("hello.tif", as_is(TESS + "HelloGoogle.tif"), ["small"], ["Hello", "Google"],
        "tesseract test images"),
    Doc("eurotext.tif", as_is(TESS + "eurotext.tif"), ["small"], ["quick", "brown"],
        "tesseract test images"),
    Doc("photos.pdf", image_pdf(LEPT + "marge.jpg", LEPT + "tetons.jpg", LEPT + "church.png",
                                dpi=150), ["photo"] * 3, [], "leptonica"),
    Doc("blank.tif", blank_page, ["blank"], [], "derived: the white top margin of a UNLV scan"),
    Doc("skew-past-range.pdf", image_pdf(UNPA + "imgsrc001.png", dpi=300), ["bilevel"],
        ["Some", "text", "here"], "unpaper test image, skewed ~3.4 degrees, black border"),
    Doc("unpaper-2.pdf", image_pdf(UNPA + "imgsrc002.png", dpi=150), ["bilevel"], [],
        "unpaper test image"),
    Doc("phototest-turned.pdf", image_pdf(TESS + "phototest.tif",
                                          TESS + "phototest-rotated-L.png",
                                          TESS + "phototest-rotated-180.png",
                                          TESS + "phototest-rotated-R.png"),
        ["upright", "rotated", "rotated", "rotated"], PHOTOTEST,
        "tesseract test images: upright, turned left, 180, right"),
    Doc("feyn-turned.tif", g4_tiff(*[LEPT + "feyn.tif"] * 4, turns=(0, 90, 180, 270)),
        ["upright", "rotated", "rotated", "rotated"], ["Memories", "Feynman"],
        "leptonica feyn.tif turned 0/90/180/270 with Pillow"),
]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(folder: Path) -> dict[str, Path]:
    """The source tarballs, through apt-get with a private configuration."""
    apt = folder / ".apt"
    for sub in ("parts", "lists/partial", "cache/archives/partial", "src"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "parts" / "debian-src.sources").write_text(SOURCES)
    options = ["-o", "Dir::Etc::SourceList=/dev/null",
               "-o", f"Dir::Etc::SourceParts={apt / 'parts'}",
               "-o", f"Dir::State::Lists={apt / 'lists'}",
               "-o", f"Dir::Cache={apt / 'cache'}", "-q"]
    wanted = {name: (apt / "src" / name, digest) for name, digest in PACKAGES.values()}
    if not all(path.is_file() and sha256(path.read_bytes()) == digest
               for path, digest in wanted.values()):
        subprocess.run(["apt-get", *options, "update"], check=True, capture_output=True)
        for package in PACKAGES:
            # The .debian.tar of some versions is gone from the mirror while the upstream
            # tarball is still there: what counts is the checksum of the file we need.
            subprocess.run(["apt-get", *options, "source", "--download-only", package],
                           cwd=apt / "src", capture_output=True)
    paths = {}
    for name, (path, digest) in wanted.items():
        if not path.is_file():
            sys.exit(f"{name}: not downloaded (apt-get source failed)")
        if sha256(path.read_bytes()) != digest:
            sys.exit(f"{name}: sha256 mismatch")
        paths[name] = path
    return paths


def extract(tarballs: dict[str, Path]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for path in tarballs.values():
        with tarfile.open(path) as tar:
            for member in tar:
                if member.name in MEMBERS:
                    handle = tar.extractfile(member)
                    assert handle is not None
                    data = handle.read()
                    if sha256(data) != MEMBERS[member.name]:
                        sys.exit(f"{member.name}: sha256 mismatch")
                    files[member.name] = data
    missing = sorted(set(MEMBERS) - set(files))
    if missing:
        sys.exit(f"not found in the source packages: {', '.join(missing)}")
    return files


def fetch(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    files = extract(download(folder))
    manifest = []
    for doc in DOCS:
        content = doc.build(files)
        (folder / doc.name).write_bytes(content)
        manifest.append({"name": doc.name, "pages": doc.pages, "words": doc.words,
                         "source": doc.source, "sha256": sha256(content)})
        print(f"{doc.name:24} {len(doc.pages)} page(s)  {', '.join(sorted(set(doc.pages)))}")
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{len(DOCS)} documents, {sum(len(d.pages) for d in DOCS)} pages in {folder}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["fetch"])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    fetch(args.folder)


if __name__ == "__main__":
    main()
