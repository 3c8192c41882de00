"""Page clean-up before OCR: grayscale, square pixels, a cheap noise measure, despeckling."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageFilter, ImageStat

# Standard-resolution fax is 204 x 98 dpi; a fine one 204 x 196. Pixels more than 1.5x taller
# than wide are stretched back to square: tesseract reads squashed text badly (2.45% CER
# raw vs 0.87% with the rows doubled).
ASPECT_LIMIT = 1.5
# At 98 dpi clean pages have one-pixel glyph details (i dots, serif tips): they measured
# 0-0.003 isolated pixels per dark pixel, noisy standard pages 0.0057-0.025 (30 pages each).
STANDARD_NOISE_SCALE = 4
FAX_WIDTHS = (1728, 2048, 2432)  # pels per line of A4, B4, A3 fax
_INK = [255 if v < 128 else 0 for v in range(256)]  # dark pixel -> 255
MIN_INK = 0.001  # share of dark pixels below which a page is blank for the noise measure


def to_gray(image: Image.Image) -> Image.Image:
    return image if image.mode == "L" else image.convert("L")


def row_factor(width: int, height: int, xdpi: float, ydpi: float) -> int:
    """How many times each row must be repeated to get square pixels (1 = already square)."""
    if xdpi > 0 and ydpi > 0:
        ratio = xdpi / ydpi
        return round(ratio) if ratio >= ASPECT_LIMIT else 1
    # No resolution recorded: a fax-width page much shorter than A4 is standard resolution.
    if width in FAX_WIDTHS and height / width < 0.8:
        return 2
    return 1


def square_pixels(image: Image.Image, factor: int) -> Image.Image:
    if factor <= 1:
        return image
    # Nearest neighbour, i.e. each row repeated: smoother resampling measured worse
    # (1.4-1.6% CER instead of 0.9% on standard pages).
    return image.resize((image.width, image.height * factor), Image.Resampling.NEAREST)


def thicken(gray: Image.Image) -> Image.Image:
    """Ink one pixel wider to the right.

    The 1-pixel vertical strokes of a standard page read better a little bolder: 1.05% ->
    0.84% CER on 10 clean standard pages (seeds 1-2), 1.16% -> 0.99% on 15 (seeds 3-5).
    Not on noisy pages: before the median it fattens the specks too (2.5% -> 3.5%), after it
    measured 2.5% -> 2.6%. Cheap: one shifted copy, taken before the rows are doubled.
    """
    shifted = Image.new("L", gray.size, 255)
    shifted.paste(gray.crop((0, 0, gray.width - 1, gray.height)), (1, 0))
    return ImageChops.darker(gray, shifted)


def thin_rows(gray: Image.Image) -> Image.Image:
    """Ink one pixel shorter at the top: a pixel stays dark only if the one above is dark too.

    For noisy standard pages after the median. Their strokes come out fat (blur and a
    darker threshold on the sender's side, then doubled rows) and close the eyes of e, a,
    o; one row less measured 2.46% -> 1.67% CER on 10 noisy standard pages (seeds 1-2),
    3.30% -> 2.05% on 15 (seeds 3-5). Clean standard pages have thin strokes and lose them
    (1.05% -> 3.9%), and taking a column instead of a row measured worse (2.1%).
    """
    shifted = Image.new("L", gray.size, 255)
    shifted.paste(gray.crop((0, 0, gray.width, gray.height - 1)), (0, 1))
    return ImageChops.lighter(gray, shifted)


def noise_ratio(gray: Image.Image) -> float:
    """Isolated dark pixels (no dark neighbour in 3x3) per dark pixel.

    Specks from the line and the sender's scanner glass are single pixels; text strokes
    never are. Measured before square_pixels (doubling rows would pair up the specks), on the
    middle third of the page: specks are spread evenly, and a third costs a third of the time.
    Clean generated pages measure 0, noisy ones 0.002-0.04 (less after pdftoppm).
    """
    third = gray.height // 3
    ink = gray.crop((0, third, gray.width, 2 * third)).point(_INK)
    dark = ink.histogram()[255]
    if dark < MIN_INK * ink.width * ink.height:
        # A blank page's few specks are all "isolated": nothing there to clean up (and a
        # 3x3 median costs ~120 ms on a 300 dpi page).
        return 0.0
    # Ink in any of the 8 neighbours, from shifted copies (a 3x3 kernel filter took twice
    # as long): the pixels beside, then the rows above and below. The outermost pixels,
    # which lack neighbours, are not counted.
    w, h = ink.size
    middle = ink.crop((1, 0, w - 1, h))
    beside = ImageChops.lighter(ink.crop((0, 0, w - 2, h)), ink.crop((2, 0, w, h)))
    row = ImageChops.lighter(beside, middle)
    around = ImageChops.lighter(
        ImageChops.lighter(row.crop((0, 0, w - 2, h - 2)), row.crop((0, 2, w - 2, h))),
        beside.crop((0, 1, w - 2, h - 1)))
    alone = ImageChops.subtract(middle.crop((0, 1, w - 2, h - 1)), around)
    return alone.histogram()[255] / dark


def despeckle(gray: Image.Image) -> Image.Image:
    # A 3x3 median cut noisy pages from 5-6.5% to 1.2% CER but costs clean ones (0.2 -> 0.6%),
    # so it is only applied to pages noise_ratio calls noisy.
    if is_bilevel(gray):
        # On a black and white page the median of 9 pixels is their majority: a 3x3 mean
        # (two exact passes: k/3 * 255, then their mean) over or under half. Same pixels
        # as MedianFilter(3), edges included (both repeat the edge pixels), at a third of
        # the time (30 vs 98 ms on a fine page).
        return box3(gray).point(_MAJORITY)
    return gray.filter(ImageFilter.MedianFilter(3))


_MAJORITY = [0] * 128 + [255] * 128


def is_bilevel(gray: Image.Image) -> bool:
    """An 8-bit page with only black and white in it."""
    return gray.mode == "L" and sum(gray.histogram()[1:255]) == 0


# The light blur before OCR (smooth()): (filter, radius or sigma in px) by page condition,
# measured on 25 standard pages (5 kinds, seeds 1-5) and 15 fine ones (seeds 1-3), CER of
# the default path without -> with:
#   clean fine       box 1.0    0.43% -> 0.20%  (box 0.7: 0.33%, Gaussian 0.7-1.0: 0.33%)
#   clean standard   box 1.2    0.93% -> 0.64%  (box 1.0: 0.74%, 1.5: 0.78%; Gaussian
#                                                0.9-1.3: 0.70-0.76%, 2.0: 2.9%)
#   noisy standard   Gauss 0.7  1.90% -> 1.30%  (box 0.5: 1.51%, 0.7: 1.64%; Gauss 1.0: 1.80%)
#   noisy fine       none       0.39%           (Gauss 0.7: 0.39%, box 0.7-1.0: 0.47%)
# A box blur is one pass (16 ms a fine page, Gaussian 39 ms); noisy pages come out of the
# median already smoothed, which is why they take less or none.
SMOOTHING: dict[tuple[bool, bool], tuple[str, float] | None] = {
    # (standard resolution, noisy): ...
    (False, False): ("box", 1.0),
    (True, False): ("box", 1.2),
    (True, True): ("gauss", 0.7),
    (False, True): None,
}


def smooth(gray: Image.Image, standard: bool, noisy: bool) -> Image.Image:
    """A light blur: tesseract's LSTM models learnt from anti-aliased text, a fax page is
    1 bit with stair-stepped edges (most of all a standard page with its rows doubled)."""
    how = SMOOTHING[(standard, noisy)]
    if how is None:
        return gray
    kind, size = how
    blur = ImageFilter.BoxBlur(size) if kind == "box" else ImageFilter.GaussianBlur(size)
    return gray.filter(blur)


def box3(gray: Image.Image) -> Image.Image:
    """The mean of each pixel's 3x3 neighbourhood, edge pixels repeated: BoxBlur(1), to
    within one gray level (rounding), in 12 ms instead of 20 on a fine page. Pillow's
    vertical pass turns the page over and back; here the rows above and below are
    shifted copies. Not for the page tesseract reads: one gray level changed the text
    of 4 of 15 clean fine pages (CER 0.20% -> 0.23%), so smoothing keeps Pillow's."""
    width, height = gray.size
    if height < 2:
        return gray.filter(ImageFilter.BoxBlur(1))
    across = gray.filter(ImageFilter.BoxBlur((1, 0)))
    above = Image.new("L", across.size)
    above.paste(across.crop((0, 0, width, 1)), (0, 0))
    above.paste(across.crop((0, 0, width, height - 1)), (0, 1))
    below = Image.new("L", across.size)
    below.paste(across.crop((0, height - 1, width, height)), (0, height - 1))
    below.paste(across.crop((0, 1, width, height)), (0, 0))
    return Image.blend(ImageChops.add(above, below, scale=2.0), across, 1 / 3)


def deskew(gray: Image.Image, angle: float) -> Image.Image:
    """The page levelled by `angle` degrees (counter-clockwise, as `Layout.skew` gives it)
    by shifting each column up or down (a vertical shear about the page's centre), whole
    pixels at a time, instead of turning it.

    For the few degrees levelled, a shear straightens the lines as a turn does and leaves
    the glyphs slanted by that angle, which tesseract does not mind; it copies pixels
    instead of resampling them (2 ms instead of 60 ms on a fine page, and a black and white
    page stays one, so tesseract does not threshold it again). On 15 noisy pages per
    resolution (seeds 1-3, skewed 0.5-1.5 degrees) CER measured 1.33% against 1.53% for a
    bilinear turn on standard pages, 0.42% against 0.38% on fine ones, at 0.87-0.92x
    the CPU per page."""
    slope = math.tan(math.radians(angle))
    width, height = gray.size
    levelled = Image.new(gray.mode, gray.size, 255)
    x = 0
    while x < width:
        shift = _shift(x, width, slope)
        end = x + 1
        while end < width and _shift(end, width, slope) == shift:
            end += 1  # a strip of columns with the same shift is one copy
        levelled.paste(gray.crop((x, 0, end, height)), (x, -shift))
        x = end
    return levelled


def _shift(x: int, width: int, slope: float) -> int:
    return round((x - width / 2) * slope)


def unlevel(x: float, y: float, size: tuple[int, int], angle: float) -> tuple[float, float]:
    """Where a point of a page levelled by `deskew(page, angle)` was on the page before."""
    return x, y + _shift(int(x), size[0], math.tan(math.radians(angle)))


# --- text-line layout: orientation and skew before tesseract reads the page ------------------

SKEW_LIMIT = 3.0  # degrees searched either way; an answer at the edge means "no answer"
LAYOUT_DPI = 100  # the page is looked at with about this many pixels per inch
_STRIPS = 16
# Measured on 80 generated pages (5 kinds x fine/standard x clean/noisy x 2 seeds, each
# turned 0/90/180/270) and 33 scanned pages (docs/benchmarks.md, real documents):
MIN_ALIGNMENT = 0.25  # text measures 0.3-0.9 on its lines' axis; photos, blank pages less
ALIGNMENT_MARGIN = 1.5  # the lines' axis against the other one (text: 2-20x)
ASCENDER_RATIO = 1.4  # upright Latin text 1.4-8, upside down 0.13-0.72: turn below 1/1.4
# At or above this a page that reads badly is a poor page, not a turned one (no OSD); the
# real pages measured 1.29-9 upright and at most 0.72 turned, one camera shot of a book
# page 1.15 upside down.
SURE_UPRIGHT = 1.25
MIN_LINE_INK = 0.05  # of a strip's darkest row: rows below are gaps between lines
MIN_LINE_PIECES = 8  # pieces of text line (line x strip) of a text line's height
# Share of the page that is ink at LAYOUT_DPI below which a page holds no text worth
# smoothing: a real blank scan measured 0.005% (its specks mostly vanish at that
# resolution), a fax page whose only text is "Page 2 of 2" 0.02%, a text page 2-11%.
MIN_TEXT_INK = 0.0001
_NOT_SOLID = [0 if v > 204 else v for v in range(256)]


@dataclass(frozen=True, slots=True)
class Layout:
    """What the page's rows of ink say, from profiles of 16 strips (about 10 ms a page).

    `lines`: text lines were found, i.e. neighbouring strips have the same rhythm of lines
    and gaps (`alignment`, 0-1) along one axis and clearly less along the other; a blank
    page, a photo or a few scattered words have none. `turn`: degrees to turn the page
    counter-clockwise to make it upright when the lines say so clearly (0: upright), None
    when they do not. `skew`: degrees to turn the page counter-clockwise to level its lines
    (the angle whose rows are sharpest, +-3 degrees in steps of 1, 0.5 and 0.1), None when
    there are no lines or the best angle is at the edge of the search range.

    `ascenders`: Latin text has more ink above its lines' core (b d f h k l t, capitals,
    digits) than below it (g j p q y), so upright lines measure > 1, upside-down < 1.
    `ink`: the share of the page that is ink at about 100 dpi (MIN_TEXT_INK)."""

    lines: bool
    turn: int | None
    skew: float | None
    alignment: tuple[float, float]  # rows, columns
    ascenders: float  # ink above the lines' core / ink below, on the lines' axis
    ink: float = 1.0

    @property
    def blank(self) -> bool:
        """Next to no ink: nothing for tesseract to read, so nothing to smooth."""
        return self.ink < MIN_TEXT_INK

    @property
    def upright(self) -> bool:
        """Upright enough that a page reading badly is a poor page, not a turned one."""
        return self.lines and self.alignment[0] > self.alignment[1] \
            and self.ascenders >= SURE_UPRIGHT


def layout(gray: Image.Image, dpi: float) -> Layout:
    scale = max(1, round((dpi or 200) / LAYOUT_DPI))
    small = gray.reduce(scale) if scale > 1 else gray
    ink = small.point(_INK if _mostly_bilevel(small) else _otsu_ink(small))
    share = ink.histogram()[255] / (ink.width * ink.height)
    if not share:
        return Layout(False, None, None, (0.0, 0.0), 1.0, 0.0)
    ppi = (dpi or 200) / scale  # pixels per inch of `ink`
    rows = _Axis(ink.resize((_STRIPS, ink.height), Image.Resampling.BOX), ink.width, ppi)
    # Turned so that the columns' lines run the way rows' lines do: up in `columns` is the
    # page's left side (turn 270 to read), down its right side (turn 90). Shrinking first
    # and turning the 16 strips is the same as turning the page first, and cheaper.
    columns = _Axis(ink.resize((ink.width, _STRIPS), Image.Resampling.BOX)
                    .transpose(Image.Transpose.ROTATE_270), ink.height, ppi)
    alignment = (round(rows.alignment, 3), round(columns.alignment, 3))
    best, other = (rows, columns) if rows.alignment >= columns.alignment else (columns, rows)
    if best.alignment < MIN_ALIGNMENT or best.alignment < ALIGNMENT_MARGIN * other.alignment:
        return Layout(False, None, None, alignment, 1.0, share)
    angle = best.refine()
    ratio, runs = best.ascenders(angle)
    if runs < MIN_LINE_PIECES:  # a rule or a scanner's edge lines up too, but is no text
        return Layout(False, None, None, alignment, 1.0, share)
    upright, flipped = (0, 180) if best is rows else (270, 90)
    turn = upright if ratio >= ASCENDER_RATIO else flipped if ratio <= 1 / ASCENDER_RATIO \
        else None
    skew = angle if best is rows and abs(angle) < SKEW_LIMIT - 0.05 else None
    return Layout(True, turn, skew, alignment, round(ratio, 2), share)


class _Axis:
    """The page's ink cut into 16 strips, each shrunk to one column: its row profile."""

    def __init__(self, strips: Image.Image, across: int, ppi: float) -> None:
        """`strips`: 16 x length, `across`: pixels across the lines (the page's width)."""
        self.ppi = ppi
        # A strip row more than 80% ink is no text (a black border, a photo): left out.
        self.strips = strips.point(_NOT_SOLID)
        self.width = across / _STRIPS
        # Only the rhythm of lines and gaps counts, not where the text block sits on the
        # page: a running mean over ~0.3 inch is taken off.
        window = max(2, round(0.3 * ppi))
        low = self.strips.resize((_STRIPS, max(1, strips.height // window)),
                                 Image.Resampling.BOX).resize(self.strips.size,
                                                              Image.Resampling.BILINEAR)
        self.detail = ImageChops.subtract(self.strips, low, 2, 128)  # (a - b) / 2 + 128
        steps = round(SKEW_LIMIT)  # 1-degree steps first; refine() on the lines' axis
        self.angle = max((float(a) for a in range(-steps, steps + 1)), key=self.sharpness)
        self.alignment = _neighbours(_shear(self.detail, self.angle, self.width, 128))

    def sharpness(self, angle: float) -> float:
        level = _shear(self.detail, angle, self.width, 128)
        return float(ImageStat.Stat(level.resize((1, level.height),
                                                 Image.Resampling.BOX)).var[0])

    def refine(self) -> float:
        best = max((self.angle + a / 2 for a in (-1, 0, 1)
                    if abs(self.angle + a / 2) <= SKEW_LIMIT), key=self.sharpness)
        return max((best + a / 10 for a in range(-2, 3) if abs(best + a / 10) <= SKEW_LIMIT),
                   key=self.sharpness)

    def ascenders(self, angle: float) -> tuple[float, int]:
        return _ascenders(_shear(self.strips, angle, self.width), self.ppi)


def _neighbours(detail: Image.Image) -> float:
    """How alike neighbouring strips are (0-1, like a correlation): the variance left in
    the mean of each pair of strips against that of one strip. Only neighbours are
    compared, so columns of text whose lines do not line up across the page still count,
    and so does a page skewed by less than a degree from the angle found."""

    def within(image: Image.Image) -> float:  # mean variance inside one column
        means = image.resize((image.width, 1), Image.Resampling.BOX)
        return float(ImageStat.Stat(image).var[0] - ImageStat.Stat(means).var[0])

    one = within(detail)
    if one <= 1e-6:
        return 0.0
    pairs = within(detail.resize((detail.width // 2, detail.height), Image.Resampling.BOX))
    return max(0.0, min(1.0, 2 * pairs / one - 1))


def _shear(strips: Image.Image, angle: float, strip_width: float,
           fill: int = 0) -> Image.Image:
    slope = math.tan(math.radians(angle)) * strip_width
    return strips.transform(strips.size, Image.Transform.AFFINE, (1, 0, 0, slope, 1, 0),
                            resample=Image.Resampling.BILINEAR, fillcolor=fill)


def _ascenders(strips: Image.Image, ppi: float) -> tuple[float, int]:
    """Ink above the core of each text line against ink below it, over all strips, and
    the number of pieces of text line (runs of a text line's height in one strip).

    Latin text has more ascenders (b d f h k l t, capitals, digits) than descenders
    (g j p q y), so upright lines give > 1 and upside-down ones < 1."""
    data = strips.tobytes()
    width, height = strips.size
    shortest, tallest = max(3, round(0.04 * ppi)), round(0.5 * ppi)
    above = below = pieces = 0
    for x in range(width):
        column = data[x::width]
        empty = max(column) * MIN_LINE_INK
        y = 0
        while y < height:
            if column[y] <= empty:
                y += 1
                continue
            start = y
            while y < height and column[y] > empty:
                y += 1
            if not shortest <= y - start <= tallest:
                continue
            run = column[start:y]
            core = 0.4 * max(run)
            first = next(i for i, v in enumerate(run) if v >= core)
            last = len(run) - next(i for i, v in enumerate(reversed(run)) if v >= core)
            above += sum(run[:first])
            below += sum(run[last:])
            pieces += 1
    return (above + 1) / (below + 1), pieces


def _mostly_bilevel(gray: Image.Image) -> bool:
    histogram = gray.histogram()
    return sum(histogram[16:240]) < 0.05 * sum(histogram)


def _otsu_ink(gray: Image.Image) -> list[int]:
    """The point table marking as ink (255) what Otsu's threshold calls dark."""
    histogram = gray.histogram()
    total = sum(histogram)
    weighted = sum(i * h for i, h in enumerate(histogram))
    below = below_sum = 0
    best, threshold = -1.0, 128
    for value, count in enumerate(histogram):
        below += count
        below_sum += value * count
        if below == 0 or below == total:
            continue
        mean_below = below_sum / below
        mean_above = (weighted - below_sum) / (total - below)
        between = below * (total - below) * (mean_below - mean_above) ** 2
        if between > best:
            best, threshold = between, value
    return [255 if v <= threshold else 0 for v in range(256)]
