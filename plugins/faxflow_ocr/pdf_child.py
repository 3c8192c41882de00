"""The child process that takes a fax's image out of a PDF page (extract.py), so the worker
never opens a hostile PDF itself.

qpdf (pikepdf) reads eagerly: a few-KB file can make it inflate an xref or object stream,
or walk a page tree, into gigabytes. Here that hits this process's address-space limit
(or its parent's timeout) and the page is drawn by poppler instead, which reads lazily.

Run as `python -I pdf_child.py PARENT_PID MEMORY_BYTES`. One JSON request per line on stdin,
one JSON answer per line on stdout; EOF on stdin ends it.

    {"op": "extract", "path": PDF, "page": 1, "pages": 3, "object": [12, 0],
     "width": 1728, "height": 2200, "size": [609.9, 808.2], "out": FILE}
        -> {"ok": true, "format": "TIFF", "mode": "1"}: FILE holds a TIFF around the
           page's G3/G4 data, or ("raw", "L") its pixels decoded, 8-bit gray, as
           Image.frombytes takes them
        -> {"ok": false, "why": "..."}: not a plain fax page; poppler draws it

A page is taken out only when what poppler draws is exactly that one image: the page's
content is `[q] a 0 0 d e f cm /Name Do [Q]` placing it over the whole page, `/Name` is the
image poppler lists for the page (`pages`, `object`: what pdfinfo and pdfimages said), and
nothing changes how it shows. Dictionaries are read by lists of the keys allowed, each of
the type poppler takes: a key poppler would read differently from qpdf or Pillow (a
/BlackIs1 of 1, a /K of -1.0, a /DefaultGray colour space, a JPEG's /ColorTransform) or
one left out of the list sends the page to poppler. So do encrypted files and files with
cross-reference streams, and any file whose xref tables do not list every object where it
is, each once (canonical()): there qpdf and poppler may find different objects.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import resource
import struct
import sys
import zlib
from collections.abc import Iterator
from typing import Any

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # -I leaves it out; last: no shadowing
from libtess_child import die_with_parent, memory_giver  # type: ignore[import-not-found]

PLAIN_COLOURS = {"/DeviceGray": "L", "/DeviceRGB": "RGB"}
MAX_CONTENT = 4096  # bytes: "q 609.88 0 0 840.12 0 0 cm /Im0 Do Q" is 40
# The page's content, as fax software writes it: numbers, one name, four operators,
# separated by PDF's white space (not Python's: a vertical tab is part of a name there).
_WHITE = b"\x00\t\n\x0c\r "  # PDF's white space
_SPACE = b"[" + re.escape(_WHITE) + b"]"
_TOKEN = re.compile(rb"%s*(?:(-?\d+(?:\.\d*)?|-?\.\d+)|/([A-Za-z0-9_.+-]{1,127})"
                    rb"|(q|Q|cm|Do))(?=%s|/|$)" % (_SPACE, _SPACE))
# Keys allowed in each dictionary read, with the Python type pikepdf gives their values
# (bool before int: a bool is an int to isinstance).
PAGE_KEYS = {"/Type", "/Parent", "/MediaBox", "/CropBox", "/TrimBox", "/BleedBox", "/ArtBox",
             "/Resources", "/Contents", "/Rotate", "/LastModified", "/PieceInfo",
             "/Metadata", "/StructParents", "/ID", "/PZ", "/Thumb", "/B", "/Tabs"}
RESOURCE_KEYS = {"/XObject", "/ProcSet"}  # a /ColorSpace could hold a /DefaultGray
IMAGE_KEYS = {"/Type": "name", "/Subtype": "name", "/Width": int, "/Height": int,
              "/ColorSpace": "name", "/BitsPerComponent": int, "/Filter": None,
              "/DecodeParms": None, "/Length": int, "/Interpolate": bool, "/Name": "name",
              "/Metadata": None, "/StructParent": int, "/ID": None}
CCITT_KEYS = {"/K": int, "/Columns": int, "/Rows": int, "/BlackIs1": bool,
              "/EncodedByteAlign": bool, "/EndOfLine": bool, "/EndOfBlock": bool}
PREDICTOR_KEYS = {"/Predictor": int, "/Colors": int, "/BitsPerComponent": int,
                  "/Columns": int}
STREAM_KEYS = {"/Length": int, "/Filter": None}
_SLACK = 0.005  # of the page's side: how far the image's edge may be from the page's


class NotPlain(Exception):
    """The page is something else than one image drawn over all of it."""


def content_ops(data: bytes) -> list[tuple[list[float | str], str]]:
    """The operators of a content stream made of numbers, names and q Q cm Do only."""
    ops: list[tuple[list[float | str], str]] = []
    operands: list[float | str] = []
    position, end = 0, len(data.rstrip(_WHITE))
    while position < end:
        match = _TOKEN.match(data, position)
        if match is None:
            raise NotPlain("the page draws more than one image")
        position = match.end()
        if match[1] is not None:
            operands.append(float(match[1]))
        elif match[2] is not None:
            operands.append("/" + match[2].decode())
        else:
            ops.append((operands, match[3].decode()))
            operands = []
    if operands:
        raise NotPlain("the page's content ends with operands")
    return ops


# The header before an `obj` keyword as poppler reads it (any digits, leading zeros too),
# searched in the bytes just before it: a longer one is no header here, the file refused.
_HEADER = re.compile(rb"([0-9]+)%s+([0-9]+)%s+\Z" % (_SPACE, _SPACE))
_HEADER_REACH = 64
_END = re.compile(rb"startxref%s+([0-9]{1,10})%s+%%%%EOF%s*$" % (_SPACE, _SPACE, _SPACE))
_SECTION = re.compile(rb"%s*([0-9]{1,10}) ([0-9]{1,10})%s*" % (_SPACE, _SPACE))
_ENTRY = re.compile(rb"([0-9]{10}) ([0-9]{5}) ([nf])(?: \r| \n|\r\n)")
_ROOT = re.compile(rb"/Root%s+([0-9]+)%s+([0-9]+)%s+R" % (_SPACE, _SPACE, _SPACE))
_LINEARIZED_T = re.compile(rb"/T%s+([0-9]+)" % _SPACE)


def _positions(data: bytes, word: bytes) -> Iterator[int]:
    """Where `word` occurs in `data` (a literal search: a regex with a look-behind scans
    every byte, 76 ms on a 30-page fax)."""
    at = data.find(word)
    while at >= 0:
        yield at
        at = data.find(word, at + 1)


def canonical(data: bytes) -> None:
    """NotPlain unless every object in the file is where its xref tables list it, each
    number defined once, and nothing else in the file looks like an object or a table.

    poppler rebuilds its xref table by scanning for `N G obj` whenever something in the
    file displeases it (a comment after `startxref`, a reference to a missing object: often
    without a word), and reads a linearized file's first table wherever that is; qpdf
    reads the tables `startxref` leads to. With every header listed where it is, each
    number once, every table consistent and one catalog, both find the same objects. A
    second copy of an object, a header in a form only one of them reads, or a table only
    one of them reads is how an attacker shows poppler one image and qpdf another (three
    attacker reviews built such files). A linearized file (two tables) passes."""
    end = _END.search(data, max(0, len(data) - 1024))
    if end is None or data[int(end[1]):int(end[1]) + 4] != b"xref":
        raise NotPlain("the file does not end with a startxref poppler reads as qpdf does")
    listed: dict[int, tuple[int, int]] = {}  # number -> (offset, generation)
    free: set[int] = set()
    heads: list[tuple[int, int]] = []  # each table, up to its first entry (a linearized /T)
    roots: set[tuple[bytes, ...]] = set()
    for at in _positions(data, b"xref"):
        if data[at - 5:at] == b"start":
            continue  # any other "xref" is a table: "endobjxref" is one too
        head = (at, -1)
        position = at + 4
        while (section := _SECTION.match(data, position)) is not None:
            first, count = int(section[1]), int(section[2])
            position = section.end()
            for number in range(first, first + count):
                entry = _ENTRY.match(data, position)
                if entry is None:
                    raise NotPlain("an xref table is damaged")
                if head[1] < 0:
                    head = (head[0], position)
                position = entry.end()
                if entry[3] == b"f":
                    free.add(number)
                elif listed.setdefault(number, (int(entry[1]), int(entry[2]))) != \
                        (int(entry[1]), int(entry[2])):
                    raise NotPlain("the xref tables list an object in two places")
        if not data.startswith(b"trailer", position):
            raise NotPlain("an xref table is damaged")
        heads.append(head)
        trailer = data[position:data.find(b"startxref", position)]
        if b"#" in trailer:  # /Ro#6ft is /Root to both readers, not to these checks
            raise NotPlain("a trailer writes a name with # escapes")
        roots |= {root.groups() for root in _ROOT.finditer(trailer)}
    if not listed or free & set(listed) - {0}:
        raise NotPlain("the xref tables disagree")
    found = set()
    for at in _positions(data, b"obj"):  # every `obj` keyword must close a listed header
        if data[at - 1:at].isalpha() or data[at + 3:at + 4].isalpha():
            continue  # part of a word: endobj, /Subobject
        header = _HEADER.search(data, max(0, at - _HEADER_REACH), at)
        if header is None or data[header.start() - 1:header.start()].isdigit():
            raise NotPlain("the file holds an obj keyword without a header")
        number = int(header[1])
        if number in found or listed.get(number) != (header.start(), int(header[2])):
            raise NotPlain("an object is defined where the xref tables do not say")
        found.add(number)
    if len(found) != len(listed):
        raise NotPlain("the xref tables and the objects in the file do not match")
    _delimited(data, sorted(offset for offset, _ in listed.values()),
               [start for start, _ in heads])
    if len(roots) != 1:
        raise NotPlain("the trailers name different catalogs")
    # poppler reads a file as linearized from its first object's dictionary: that one is
    # read here too, escapes and all, and its /T must lead into a table checked above.
    opening = data[:data.find(b"endobj")]
    if b"stream" not in opening and b"#" in opening:
        raise NotPlain("the first object writes a name with # escapes")
    if b"/Linearized" in opening:
        hint = _LINEARIZED_T.search(opening)
        if hint is None or not any(start <= int(hint[1]) <= end for start, end in heads):
            raise NotPlain("a linearized file whose /T is not at an xref table")


_TABLE_END = re.compile(rb"startxref%s+[0-9]+%s+%%%%EOF%s*" % (_SPACE, _SPACE, _SPACE))


def _delimited(data: bytes, objects: list[int], tables: list[int]) -> None:
    """NotPlain unless each object, from its header to the next object or table, is one
    `endobj`-ended body with at most one stream, ended by an `endstream` alone on its line,
    and nothing but white space after it; and each table region ends with its startxref.
    poppler, rebuilding its table, ends a stream at the first `endstream` it finds at the
    start of a line (not at /Length, as qpdf does): bytes between objects, or an
    `endstream` it skips, would let it read a longer or shorter stream than qpdf."""
    for start, end in itertools.pairwise([*sorted(objects + tables), len(data)]):
        region = data[start:end]
        if start in tables:
            if region.count(b"trailer") != 1 or region.count(b"startxref") > 1 or (
                    b"startxref" in region
                    and not _TABLE_END.fullmatch(region, region.find(b"startxref"))):
                raise NotPlain("something follows an xref table")
            _shallow(region)
            continue
        body, ending, rest = region.rpartition(b"endobj")
        if not ending or rest.strip(_WHITE) or region.count(b"endobj") != 1:
            raise NotPlain("something lies between the objects")
        ends = body.count(b"endstream")
        if body.count(b"stream") != 2 * ends or ends > 1:
            raise NotPlain("an object holds more than one stream end")
        if ends:
            at = body.index(b"endstream")
            if body[at - 1:at] not in (b"\n", b"\r") or body[at + 9:].strip(_WHITE):
                raise NotPlain("a stream does not end on a line of its own")
        _shallow(body[:body.index(b"stream")] if ends else body)


_NESTING = re.compile(rb"<<|>>|\[|\]")
MAX_DEPTH = 32  # a fax PDF's objects nest 2-4 deep


def _shallow(text: bytes) -> None:
    """NotPlain when arrays and dictionaries nest deeper than MAX_DEPTH: poppler stops
    parsing at 500 levels and takes the next token as the closing bracket, qpdf does not,
    so a key hidden 499 levels down (a second /Contents, a /Mask) is read by poppler
    only (an attacker review). Brackets in strings count too: that only refuses more."""
    depth = 0
    for token in _NESTING.finditer(text):
        depth += 1 if token[0] in (b"<<", b"[") else -1
        if depth > MAX_DEPTH:
            raise NotPlain("arrays or dictionaries nest too deep")


def _bounded(raw: bytes, limit: int) -> bytes:
    """zlib data inflated to at most `limit` bytes; NotPlain when there is more."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(raw, limit)
    except zlib.error:
        raise NotPlain("damaged compressed data") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise NotPlain("compressed data larger than expected, or cut short")
    return data


def _only(what: str, dictionary: Any, allowed: dict[str, Any] | set[str],
          pikepdf: Any) -> None:
    """NotPlain unless every key of `dictionary` is allowed, with a value of its type."""
    for key in dictionary.keys():  # noqa: SIM118 - a Stream is not iterable by its keys
        if key == "/Annots" and isinstance(dictionary.get(key), pikepdf.Array) \
                and len(dictionary.get(key)) == 0:
            continue  # "no annotations", as some producers write it
        if key not in allowed:
            raise NotPlain(f"{what} has {key}")
        kind = allowed.get(key) if isinstance(allowed, dict) else None
        value = dictionary.get(key)
        if kind == "name":
            ok = isinstance(value, pikepdf.Name)
        elif kind is bool:
            ok = type(value) is bool
        elif kind is int:
            ok = type(value) is int
        else:
            ok = True
        if not ok:
            raise NotPlain(f"{what} has {key} of an unusual type")


def _filters(stream: Any, pikepdf: Any) -> list[str]:
    found = stream.get("/Filter")
    if found is None:
        return []
    return [str(f) for f in found] if isinstance(found, pikepdf.Array) else [str(found)]


def _parms(stream: Any, pikepdf: Any) -> Any:
    """The /DecodeParms of a stream's one filter, or None. In the form poppler reads: a
    dictionary for a filter given by name, an array of one for an array of one; in any
    other form poppler ignores them and pikepdf does not (NotPlain)."""
    filters, parms = stream.get("/Filter"), stream.get("/DecodeParms")
    if parms is None:
        return None
    if isinstance(filters, pikepdf.Name) and isinstance(parms, pikepdf.Dictionary):
        return parms
    if isinstance(filters, pikepdf.Array) and isinstance(parms, pikepdf.Array) \
            and len(filters) == len(parms) == 1 \
            and (parms[0] is None or isinstance(parms[0], pikepdf.Dictionary)):
        return parms[0]
    raise NotPlain("decode parameters in another form than the filter's")


def _content(page: Any, pikepdf: Any) -> bytes:
    contents = page.get("/Contents")
    if isinstance(contents, pikepdf.Array) and len(contents) == 1:
        contents = contents[0]
    if not isinstance(contents, pikepdf.Stream):
        raise NotPlain("the page's content is not one stream")
    _only("the page's content", contents, STREAM_KEYS, pikepdf)
    raw = contents.read_raw_bytes()
    if len(raw) > MAX_CONTENT:
        raise NotPlain("the page's content is long")
    filters = _filters(contents, pikepdf)
    if filters == []:
        return bytes(raw)
    if filters == ["/FlateDecode"]:
        return _bounded(bytes(raw), MAX_CONTENT)
    raise NotPlain("the page's content is encoded unusually")


def _near(value: float, wanted: float, side: float) -> bool:
    return abs(value - wanted) <= max(1.0, _SLACK * side)


def plain_image(pdf: Any, request: dict[str, Any], pikepdf: Any) -> Any:
    """The image stream drawn over the whole of the request's page; NotPlain otherwise."""
    if pdf.is_encrypted:  # qpdf leaves some streams encrypted that poppler decrypts
        raise NotPlain("the file is encrypted")
    if "/XRefStm" in pdf.trailer or "/W" in pdf.trailer:
        raise NotPlain("the file has cross-reference streams")
    if pdf.Root.Pages.get("/Count") != request["pages"] or len(pdf.pages) != request["pages"]:
        raise NotPlain("qpdf and poppler count the pages differently")
    page = pdf.pages[request["page"] - 1].obj
    _only("the page", page, PAGE_KEYS, pikepdf)
    box = [float(v) for v in pikepdf.Page(page).mediabox]
    if "/CropBox" in page and [float(v) for v in page.CropBox] != box:
        raise NotPlain("the page has a crop box")
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    want_w, want_h = request["size"]
    if not (_near(width, want_w, want_w) and _near(height, want_h, want_h)):
        raise NotPlain("qpdf and poppler see different page sizes")
    ops = content_ops(_content(page, pikepdf))
    if len(ops) == 4 and ops[0] == ([], "q") and ops[3] == ([], "Q"):
        ops = ops[1:3]
    if len(ops) != 2 or ops[0][1] != "cm" or ops[1][1] != "Do" or len(ops[0][0]) != 6 \
            or len(ops[1][0]) != 1 or not isinstance(ops[1][0][0], str):
        raise NotPlain("the page draws more than one image")
    a, b, c, d, e, f = (float(v) for v in ops[0][0])
    if b or c or not (_near(a, width, width) and _near(d, height, height)
                      and _near(e, x0, width) and _near(f, y0, height)):
        raise NotPlain("the image does not cover the page as it stands")
    resources = page.get("/Resources")
    if not isinstance(resources, pikepdf.Dictionary):
        raise NotPlain("the page has no resources of its own")
    _only("the page's resources", resources, RESOURCE_KEYS, pikepdf)
    xobjects = resources.get("/XObject")
    image = xobjects.get(ops[1][0][0]) if isinstance(xobjects, pikepdf.Dictionary) else None
    if not isinstance(image, pikepdf.Stream) or list(image.objgen) != request["object"]:
        raise NotPlain("the image drawn is not the one poppler lists")
    _only("the image", image, IMAGE_KEYS, pikepdf)
    if image.get("/Subtype") != "/Image" or image.get("/Type", "/XObject") != "/XObject":
        raise NotPlain("not an image")
    if (image.get("/Width"), image.get("/Height")) != (request["width"], request["height"]):
        raise NotPlain("the image's size is not the one poppler lists")
    return image


def write(image: Any, out: Any, pikepdf: Any) -> dict[str, Any]:
    """The image to `out`: G3/G4 data as a TIFF around it, anything else decoded here,
    where time and memory are limited (a progressive JPEG may take minutes), as 8-bit
    gray pixels."""
    colour = PLAIN_COLOURS.get(str(image.get("/ColorSpace")))
    bits = image.get("/BitsPerComponent")
    width, height = image.Width, image.Height
    filters = _filters(image, pikepdf)
    if colour is None or bits not in (1, 8) or (bits == 1 and colour != "L") \
            or len(filters) != 1:
        raise NotPlain("an unusual colour space or encoding")
    parms = _parms(image, pikepdf)
    if filters == ["/CCITTFaxDecode"]:
        if parms is None or bits != 1:
            raise NotPlain("CCITT data without its parameters")
        _only("the CCITT parameters", parms, CCITT_KEYS, pikepdf)
        if parms.get("/Columns", 1728) != width or parms.get("/Rows", height) != height \
                or parms.get("/EncodedByteAlign", False) or parms.get("/EndOfLine", False) \
                or not parms.get("/EndOfBlock", True):
            raise NotPlain("CCITT data of another size or form")
        if parms.get("/K", 0) >= 0:
            # G3: libtiff and poppler part ways on data after an end-of-page mark, or
            # before the first end-of-line code (an attacker review showed each reading
            # rows the other does not); fax PDFs hold G4.
            raise NotPlain("G3 data, drawn by poppler")
        # A TIFF around the G3/G4 data, for the worker's libtiff: decoding it takes time
        # and memory in proportion to the page's pixels, and handing over its pixels
        # would cost more (Pillow packs 1-bit pixels slowly: 7 ms a fax page).
        if pikepdf.PdfImage(image).extract_to(stream=out) != ".tif":
            raise NotPlain("CCITT data pikepdf cannot wrap")
        return {"ok": True, "format": "TIFF", "mode": "1"}
    picture = _decoded(image, filters[0], parms, colour, bits, pikepdf)
    if picture.size != (width, height) or picture.mode not in ("1", "L", "RGB"):
        raise NotPlain("the decoded image is not the one described")
    # 8-bit gray, what the page pass makes of every page
    out.write(picture.convert("L").tobytes())
    return {"ok": True, "format": "raw", "mode": "L"}


def _decoded(image: Any, encoding: str, parms: Any, colour: str, bits: int,
             pikepdf: Any) -> Any:
    import io

    from PIL import Image

    width, height = image.Width, image.Height
    raw = bytes(image.read_raw_bytes())
    if encoding == "/DCTDecode" and parms is None and bits == 8:
        picture = Image.open(io.BytesIO(raw), formats=["JPEG"])
        # A JPEG's own header may say another size than /Width and /Height (a bomb). Gray
        # only: for colour, poppler and libjpeg each decide on the colour transform from
        # the markers and the PDF in their own way (an attacker review swapped texts
        # through /ColorTransform).
        if picture.size != (width, height) or picture.mode != colour or colour != "L":
            raise NotPlain("the JPEG is not a gray image of the size its dictionary says")
        picture.load()
        return picture
    if encoding == "/FlateDecode" and parms is None:
        mode = "1" if bits == 1 else colour
        row = (width + 7) // 8 if bits == 1 else width * len(colour)
        data = _bounded(raw, row * height)
        if len(data) != row * height:
            raise NotPlain("the image's data is short")
        return Image.frombytes(mode, (width, height), data)
    if encoding == "/FlateDecode":
        # PNG predictors (as img2pdf writes a PNG's pixels): the same rows as a PNG's
        _only("the predictor parameters", parms, PREDICTOR_KEYS, pikepdf)
        if 10 <= parms.get("/Predictor", 1) <= 15 and parms.get("/Colors", 1) == len(colour) \
                and parms.get("/BitsPerComponent", 8) == bits \
                and parms.get("/Columns", 1) == width:
            picture = Image.open(io.BytesIO(png(width, height, bits, colour, raw)),
                                 formats=["PNG"])
            picture.load()
            return picture
    raise NotPlain("an encoding read by poppler only")


def png(width: int, height: int, bits: int, colour: str, idat: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    colour_type = 0 if colour == "L" else 2
    header = struct.pack(">IIBBBBB", width, height, bits, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


_checked: list[tuple[str, int, int, int]] = []  # the last file canonical() passed


def _check_file(path: str) -> None:
    """canonical() on the file, once per file: the pages of a document come one after
    another, and the spool file does not change while they are read."""
    stat = os.stat(path)
    key = (path, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key in _checked:
        return
    with open(path, "rb") as f:
        canonical(f.read())
    _checked[:] = [key]


def extract(request: dict[str, Any]) -> dict[str, Any]:
    import pikepdf

    try:
        _check_file(request["path"])
        with pikepdf.open(request["path"]) as pdf:
            image = plain_image(pdf, request, pikepdf)
            if pdf.get_warnings():  # damage qpdf worked round: poppler judges it
                raise NotPlain("the file is damaged")
            fd = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                return write(image, out, pikepdf)
    except NotPlain as exc:
        return {"ok": False, "why": str(exc)}
    except MemoryError:
        return {"ok": False, "why": "more memory than a fax page needs"}
    except Exception as exc:  # qpdf fails on bad input with many types
        return {"ok": False, "why": f"{type(exc).__name__}: {str(exc)[:200]}"}


def main() -> None:
    parent, memory = int(sys.argv[1]), int(sys.argv[2])
    die_with_parent(parent)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # qpdf may print; the protocol has its own fd
    os.dup2(quiet, 2)
    import pikepdf  # noqa: F401 - loaded before the first page, counted in the start
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the worker checked /Width x /Height against max_pixels
    answers.write(json.dumps({"ok": True}) + "\n")
    give_back_memory = memory_giver()
    for line in sys.stdin:
        request = json.loads(line)
        answers.write(json.dumps(extract(request)) + "\n")
        give_back_memory()


if __name__ == "__main__":
    main()
