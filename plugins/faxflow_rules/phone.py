"""Phone numbers as E.164, so ``0049 89 …``, ``+49 89 …`` and ``089 …`` are the same number."""

from __future__ import annotations

import fnmatch
import re

import phonenumbers

from faxflow.types import Number

_SEPARATORS = re.compile(r"[\s\-./()]")
_GLOB_CHARS = "*?["


class NumberError(ValueError):
    pass


def normalize(raw: str, country: str) -> str | None:
    """E.164 of a full number written any usual way; None when it is not a phone number."""
    try:
        parsed = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def of(number: Number | None, country: str) -> str | None:
    """E.164 of a job's number: Retarus' own normalization, else ours from the raw text."""
    if number is None:
        return None
    return number.e164 or normalize(number.raw, country)


def normalize_prefix(text: str, country: str) -> str:
    """E.164 form of the start of a number (``089`` -> ``+4989``, ``0049`` -> ``+49``).

    phonenumbers cannot parse a fragment, so this applies the country's international and
    trunk prefixes from its metadata instead.
    """
    digits = _SEPARATORS.sub("", text)
    if digits.startswith("+"):
        rest = digits[1:]
    else:
        meta = phonenumbers.PhoneMetadata.metadata_for_region(country.upper())
        if meta is None:
            raise NumberError(f"unknown country {country!r}")
        intl = re.match(meta.international_prefix or "00", digits)
        if intl and intl.end() > 0:
            rest = digits[intl.end():]
        elif meta.national_prefix and digits.startswith(meta.national_prefix):
            rest = f"{meta.country_code}{digits[len(meta.national_prefix):]}"
        else:
            rest = f"{meta.country_code}{digits}"
    if not re.fullmatch(r"[0-9*?\[\]!-]*", rest):
        raise NumberError(f"{text!r} is not a phone number or number pattern")
    return "+" + rest


class NumberPattern:
    """One entry of a number condition: an exact number, a prefix, or a glob (``+4989*``)."""

    def __init__(self, text: str, country: str, *, prefix: bool = False) -> None:
        self.text = text
        is_glob = prefix or any(c in text for c in _GLOB_CHARS)
        if is_glob:
            self.exact: str | None = None
            self.glob = normalize_prefix(text, country) + ("*" if prefix else "")
        else:
            e164 = normalize(text, country)
            if e164 is None:
                raise NumberError(f"{text!r} is not a valid phone number "
                                  f"(default country {country})")
            self.exact, self.glob = e164, ""

    def matches(self, e164: str) -> bool:
        if self.exact is not None:
            return e164 == self.exact
        return fnmatch.fnmatchcase(e164, self.glob)

    def __str__(self) -> str:
        return self.exact or self.glob
