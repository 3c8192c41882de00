"""Drawing sample pages and turning them into fax bitmaps.

A page is drawn in grayscale on a square-pixel master (MASTER_DPI), then
resampled to ITU-T T.4 fax geometry and thresholded to 1 bit.  Standard
resolution has half the scanlines of fine resolution, so its pixels are
twice as tall as wide: text looks squashed in pixel space, like real fax.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_FILES = {
    "sans": "DejaVuSans.ttf",
    "sans_bold": "DejaVuSans-Bold.ttf",
    "serif": "DejaVuSerif.ttf",
    "serif_bold": "DejaVuSerif-Bold.ttf",
    "mono": "DejaVuSansMono.ttf",
}

# The fax scan line is 215 mm wide (1728 pels); an A4 page is 297 mm long.
PAGE_W_MM = 215.0
PAGE_H_MM = 297.0
# 300 dpi is well above both fax resolutions (so antialiasing is good) and
# nearly half the pixels of a 400 dpi master, which matters for 200 pages.
MASTER_DPI = 300

# name: (width px, height px, x dpi, y dpi)
GEOMETRY: dict[str, tuple[int, int, int, int]] = {
    "fine": (1728, 2287, 204, 196),
    "standard": (1728, 1143, 204, 98),
}

# style: (font, size in points)
STYLES: dict[str, tuple[str, float]] = {
    "tti": ("mono", 8.0),
    "head": ("bold", 14.0),
    "title": ("bold", 11.0),
    "bold": ("bold", 10.0),
    "body": ("regular", 10.0),
    "small": ("regular", 8.5),
    "footer": ("regular", 8.5),
}
BASE_LINE_PT = 10.0 * 1.42

LEFT_MM = 22.0
TEXT_WIDTH_MM = 172.0
TTI_Y_MM = 3.0
TOP_MM = 11.0
FOOTER_Y_MM = 285.0
BOTTOM_MM = 280.0  # flowing text must end above this

# Table layouts: (offset from the left margin in mm, alignment of the cell).
COLUMNS: dict[str, tuple[tuple[float, str], ...]] = {
    "tti": ((-17.0, "l"), (20.0, "l"), (62.0, "l"), (188.0, "r")),
    "invoice": ((0.0, "l"), (14.0, "l"), (114.0, "r"), (143.0, "r"), (172.0, "r")),
    "order": ((0.0, "l"), (14.0, "l"), (36.0, "l"), (116.0, "r"), (143.0, "r"), (172.0, "r")),
    "delivery": ((0.0, "l"), (14.0, "l"), (39.0, "l"), (140.0, "r"), (144.0, "l")),
    "lab": ((5.0, "l"), (80.0, "r"), (84.0, "l"), (120.0, "l")),
    "pair": ((0.0, "l"), (45.0, "l")),
    "report": ((0.0, "l"), (75.0, "r"), (78.0, "l"), (105.0, "l"), (150.0, "l")),
    "medplan": ((0.0, "l"), (60.0, "l"), (80.0, "l"), (94.0, "l"), (114.0, "l"), (129.0, "l")),
}
MIN_CELL_GAP_MM = 2.5


class FontsMissingError(RuntimeError):
    """The DejaVu fonts needed to draw sample faxes are not installed."""


@dataclass(frozen=True)
class Line:
    """One drawn line of text; several cells make a table row."""

    cells: tuple[str, ...]
    style: str = "body"
    columns: str | None = None
    space_before: float = 0.0  # extra space above, in body line heights

    @property
    def text(self) -> str:
        """The ground truth: cells joined by single spaces, empty cells dropped."""
        return " ".join(cell for cell in self.cells if cell)

    @property
    def height_pt(self) -> float:
        return self.space_before * BASE_LINE_PT + line_height_pt(self.style)


def text_line(text: str, style: str = "body", space_before: float = 0.0) -> Line:
    return Line((text,), style, None, space_before)


def row(cells: list[str] | tuple[str, ...], columns: str, style: str = "body",
        space_before: float = 0.0) -> Line:
    return Line(tuple(cells), style, columns, space_before)


def line_height_pt(style: str) -> float:
    return max(BASE_LINE_PT, STYLES[style][1] * 1.35)


def check_fonts() -> None:
    missing = [name for name in FONT_FILES.values() if not (FONT_DIR / name).is_file()]
    if missing:
        raise FontsMissingError(
            f"DejaVu fonts missing in {FONT_DIR}: {', '.join(missing)}; "
            "install the Debian/Ubuntu package fonts-dejavu-core"
        )


@functools.lru_cache(maxsize=64)
def font(family: str, style: str) -> ImageFont.FreeTypeFont:
    """The font for a style in a document family ("sans" or "serif"), at master size."""
    check_fonts()
    kind, size_pt = STYLES[style]
    if kind == "mono":
        name = FONT_FILES["mono"]
    elif kind == "bold":
        name = FONT_FILES[f"{family}_bold"]
    else:
        name = FONT_FILES[family]
    return ImageFont.truetype(str(FONT_DIR / name), round(size_pt * MASTER_DPI / 72.0))


def mm(value: float) -> float:
    return value * MASTER_DPI / 25.4


def wrap(text: str, family: str, style: str = "body", width_mm: float = TEXT_WIDTH_MM) -> list[str]:
    """Greedy word wrap to the text width; returns the drawn lines."""
    f = font(family, style)
    limit = mm(width_mm)
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if current and f.getlength(candidate) > limit:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def render_master(lines: list[Line], family: str) -> Image.Image:
    """Draw a page at MASTER_DPI in grayscale (255 = white paper)."""
    width, height = round(mm(PAGE_W_MM)), round(mm(PAGE_H_MM))
    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    pt = MASTER_DPI / 72.0
    y = mm(TOP_MM)
    for line in lines:
        f = font(family, line.style)
        if line.style == "tti":
            line_y = mm(TTI_Y_MM)
        elif line.style == "footer":
            line_y = mm(FOOTER_Y_MM)
        else:
            y += line.space_before * BASE_LINE_PT * pt
            line_y = y
            y += line_height_pt(line.style) * pt
        if line.columns is None:
            draw.text((mm(LEFT_MM), line_y), line.cells[0], font=f, fill=0)
            _check_width(f.getlength(line.cells[0]), mm(LEFT_MM), line)
            continue
        right_edge = 0.0
        for (offset, align), cell in zip(COLUMNS[line.columns], line.cells, strict=True):
            if not cell:
                continue
            x = mm(LEFT_MM + offset)
            w = f.getlength(cell)
            start = x - w if align == "r" else x
            # Overlapping cells would make the ground truth unreadable.
            if right_edge and start < right_edge + mm(MIN_CELL_GAP_MM):
                raise RuntimeError(f"table cells overlap in {line.text!r}")
            draw.text((x, line_y), cell, font=f, fill=0, anchor="ra" if align == "r" else "la")
            right_edge = start + w
    if y > mm(BOTTOM_MM):
        raise RuntimeError(f"page content overflows: {y / mm(1):.0f} mm > {BOTTOM_MM} mm")
    return img


def _check_width(width: float, x: float, line: Line) -> None:
    if x + width > mm(PAGE_W_MM - 8.0):
        raise RuntimeError(f"line runs off the page: {line.text!r}")


@functools.lru_cache(maxsize=4)
def _gauss_lut(sigma: float) -> list[int]:
    """Map uniform bytes to a gaussian around 128 (inverse normal CDF)."""
    from statistics import NormalDist

    dist = NormalDist(128.0, sigma)
    return [min(255, max(0, round(dist.inv_cdf((i + 0.5) / 256)))) for i in range(256)]


def to_fax(master: Image.Image, resolution: str, *, noisy: bool, skew: float,
           upside_down: bool, rng: random.Random) -> Image.Image:
    """Resample a master page to fax geometry, threshold it to 1 bit, add noise."""
    width, height, xdpi, _ = GEOMETRY[resolution]
    page = master
    if skew or noisy:
        # Skew and blur happen where a fax scanner sees the page: at its square
        # 204 dpi (and it is 4x cheaper than rotating the master).
        square = (width, round(master.height * width / master.width))
        page = page.resize(square, resample=Image.Resampling.LANCZOS, reducing_gap=3.0)
        if skew:
            # bilinear is half the cost of bicubic and the blur hides the difference
            page = page.rotate(skew, resample=Image.Resampling.BILINEAR, fillcolor=255)
        if noisy:
            page = page.filter(ImageFilter.GaussianBlur(radius=0.8 * xdpi / 204))
    # Square pixels -> 204 x 196 or 204 x 98 dpi (the vertical squash of standard mode).
    gray = page.resize((width, height), resample=Image.Resampling.LANCZOS, reducing_gap=3.0)
    threshold = 128
    if noisy:
        # Threshold jitter: gaussian gray-level noise before binarising.  The noise
        # comes from our own seeded generator (not C rand()), so it is reproducible.
        noise = Image.frombytes("L", (width, height), rng.randbytes(width * height))
        gray = Image.blend(gray, noise.point(_gauss_lut(28.0)), 0.18)
        threshold = 150
    lut = [0 if v < threshold else 255 for v in range(256)]
    bitmap = gray.point(lut, mode="1")
    if noisy:
        _add_transmission_noise(bitmap, rng)
    if upside_down:
        bitmap = bitmap.transpose(Image.Transpose.ROTATE_180)
    return bitmap


def _add_transmission_noise(bitmap: Image.Image, rng: random.Random) -> None:
    width, height = bitmap.size
    draw = ImageDraw.Draw(bitmap)
    # salt-and-pepper specks (~0.05 % of pixels), some as 2x2 clusters
    for _ in range(int(width * height * 0.0005)):
        x, y = rng.randrange(width - 1), rng.randrange(height - 1)
        if rng.random() < 0.25:
            draw.rectangle((x, y, x + 1, y + 1), fill=0)
        else:
            draw.point((x, y), fill=0)
    # a faint, broken vertical streak (dirt on the sender's scanner glass)
    sx = rng.randrange(width // 5, 4 * width // 5)
    draw.point([(sx, y) for y in range(height) if rng.random() < 0.35], fill=0)
    # a few corrupted scanlines (transmission errors): the previous line repeated
    for _ in range(3):
        y = rng.randrange(5, height - 1)
        bitmap.paste(bitmap.crop((0, y - 1, width, y)), (0, y))
