"""Every sample kind and the function that plans its content.

The first five are the original kinds; the others were added for the classifier, each close
to one of them in vocabulary: credit_note to invoice, lab_result and prescription to
referral, court_document to letter.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from .content import (
    Plan,
    plan_credit_note,
    plan_delivery_note,
    plan_invoice,
    plan_letter,
    plan_order,
    plan_referral,
)
from .legal import plan_court_document
from .medical import plan_lab_result, plan_prescription

PLANNERS: dict[str, Callable[[random.Random], Plan]] = {
    "invoice": plan_invoice,
    "referral": plan_referral,
    "order": plan_order,
    "delivery_note": plan_delivery_note,
    "letter": plan_letter,
    "credit_note": plan_credit_note,
    "lab_result": plan_lab_result,
    "prescription": plan_prescription,
    "court_document": plan_court_document,
}
KINDS: tuple[str, ...] = tuple(PLANNERS)
