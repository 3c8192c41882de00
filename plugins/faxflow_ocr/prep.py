"""Page clean-up before OCR: grayscale, square pixels, a cheap noise measure, despeckling."""

from __future__ import annotations

import math

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
_ALONE = [255 if v <= 30 else 0 for v in range(256)]  # 3x3 mean of one ink pixel is 28
_ONES = ImageFilter.Kernel((3, 3), [1] * 9, scale=9)


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
    if dark == 0:
        return 0.0
    alone = ImageChops.darker(ink, ink.filter(_ONES).point(_ALONE))
    return alone.histogram()[255] / dark


def despeckle(gray: Image.Image) -> Image.Image:
    # A 3x3 median cut noisy pages from 5-6.5% to 1.2% CER but costs clean ones (0.2 -> 0.6%),
    # so it is only applied to pages noise_ratio calls noisy.
    return gray.filter(ImageFilter.MedianFilter(3))


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


def skew_angle(gray: Image.Image, limit: float = 3.0) -> float:
    """Degrees to turn the page counter-clockwise so its text lines are level.

    Text rows give the sharpest row profile (highest variance of row darkness) when level.
    The page is shrunk to 16 vertical strips (each one column: its row profile) at half
    height; a trial angle shears those columns against each other (the same as rotating,
    for these small angles) and sums them: about a millisecond per angle. Coarse steps of
    0.5 degrees, then 0.1.
    """
    columns, sy = 16, 2
    strips = ImageChops.invert(gray).resize((columns, max(1, gray.height // sy)),
                                            Image.Resampling.BOX)
    sx = gray.width / columns

    def sharpness(angle: float) -> float:
        slope = math.tan(math.radians(angle)) * sx / sy
        sheared = strips.transform(strips.size, Image.Transform.AFFINE,
                                   (1, 0, 0, slope, 1, 0), resample=Image.Resampling.BILINEAR)
        rows = sheared.resize((1, sheared.height), Image.Resampling.BOX)
        return float(ImageStat.Stat(rows).var[0])

    best = max((a / 2 for a in range(round(-2 * limit), round(2 * limit) + 1)), key=sharpness)
    return max((best + a / 10 for a in range(-4, 5)), key=sharpness)


def deskew(gray: Image.Image, angle: float) -> Image.Image:
    return gray.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255)
