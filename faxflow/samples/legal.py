"""Court documents: notices of hearing, orders, requests for comment. They are formal letters
(addressee, reference, "please", a closing), so they share much of a business letter's
vocabulary, and an "order" of a court is not a purchase order. Wording varies with the seed.
"""

from __future__ import annotations

import random

from .content import (
    COMPANIES,
    FIRST,
    LAST,
    Plan,
    Unit,
    _address,
    _Common,
    _deck,
    _letterhead,
    _paragraph,
    _phone,
)
from .render import Line, text_line

COURTS = [
    ("Local Court Hamburg-Altona", "Max-Brauer-Allee 91", "22765 Hamburg", "40"),
    ("Regional Court Munich I", "Prielmayerstrasse 7", "80335 Muenchen", "89"),
    ("Labour Court Cologne", "Pohligstrasse 9", "50969 Koeln", "221"),
    ("Local Court Leipzig", "Bernhard-Goering-Strasse 64", "04275 Leipzig", "341"),
    ("Regional Court Stuttgart", "Urbanstrasse 20", "70182 Stuttgart", "711"),
]
LAW_FIRMS = ["Weber and Partners", "Hartmann Legal", "Keller Becker Attorneys",
             "Law Office Richter", "Brooks and Novak LLP"]
# Kind of document: title, opening sentences, the unit pool's special sentences.
DOCUMENTS = {
    "hearing": ("Notice of Hearing", [
        "In the above matter an oral hearing has been scheduled for {hearing} in room {room}.",
        "The parties are summoned to appear in person; the personal appearance of the "
        "managing director of the defendant is ordered.",
    ]),
    "order": ("Order", [
        "In the above matter the court makes the following order.",
        "The defendant is granted an extension of the time limit to reply until {deadline}.",
    ]),
    "comment": ("Request for Comment", [
        "The statement of the plaintiff of {filed} is enclosed with this fax.",
        "You are given the opportunity to comment in writing within two weeks, by {deadline}.",
    ]),
    "service": ("Notice of Service", [
        "The statement of claim was served on the defendant on {filed}.",
        "The defendant has been asked to state within two weeks whether it intends to "
        "defend the claim.",
    ]),
}
LEGAL_SENTENCES = [
    "Please quote the case number above in all correspondence.",
    "Documents submitted after the deadline may not be taken into account.",
    "The value in dispute is provisionally set at EUR {value}.",
    "An attempt at a settlement will be made at the beginning of the hearing.",
    "Costs of the proceedings are reserved for the final decision.",
    "Witnesses need not attend unless they are summoned separately.",
    "Applications for an adjournment must be justified and supported by evidence.",
    "Copies for the other parties are to be attached to every statement.",
    "The court points out that it currently considers the claim to be well founded.",
    "The court refers to the legal situation as set out in the order of {filed}.",
    "Please confirm receipt of this document by fax.",
    "This document was produced electronically and is valid without a signature.",
]


def plan_court_document(rng: random.Random) -> Plan:
    c = _Common(rng)
    court = rng.choice(COURTS)
    c.phone, c.fax = _phone(rng, ("", "", "", "Germany", court[3]))
    kind = rng.choice(sorted(DOCUMENTS))
    title, opening = DOCUMENTS[kind]
    register = rng.choice(["C", "O", "Ca", "S"])
    case = f"{rng.randint(1, 45)} {register} {rng.randint(100, 9999)}/{c.day:%y}"
    plaintiff, defendant = (company[0] for company in rng.sample(COMPANIES, 2))
    firm = rng.choice(LAW_FIRMS)
    lawyer = f"{rng.choice(['Ms.', 'Mr.'])} {rng.choice(LAST)}"
    time = rng.choice(["09:30", "10:00", "11:15", "13:30"])
    hearing = f"{c.later(rng.randint(21, 60))} at {time}"
    values = {"hearing": hearing, "room": f"{rng.randint(1, 3)}.{rng.randint(10, 40)}",
              "deadline": c.later(14), "filed": c.later(-rng.randint(5, 30)),
              "value": f"{rng.randint(2, 90) * 500:,}"}
    to_firm = rng.random() < 0.7
    receiver = ([firm, f"Attn. {lawyer}, attorney at law", c.receiver[1],
                 f"{c.receiver[2]}, {c.receiver[3]}"] if to_firm
                else [defendant, f"Attn. {c.addressee}", c.receiver[1], c.receiver[2]])
    parties = [text_line(f"In the matter of {plaintiff}", space_before=0.6),
               text_line("plaintiff,"),
               text_line(f"versus {defendant}"),
               text_line("defendant,")]
    if rng.random() < 0.5:  # some courts write the parties on one line
        parties = [text_line(f"{plaintiff} v. {defendant}", "bold", space_before=0.6)]
    first: list[Line] = [*_letterhead(court[0], (court[1], court[2], "Germany"), c.phone, c.fax,
                                      rng.choice(["Registry", "Court Office", "Registry of the "
                                                  "Civil Division"])),
                         *_address(receiver),
                         text_line(f"Date: {c.date}", space_before=1.0),
                         text_line(f"Case No.: {case}"),
                         text_line(title, "title", space_before=1.0), *parties,
                         text_line(f"Dear {lawyer if to_firm else c.addressee},",
                                   space_before=0.6),
                         *_paragraph(" ".join(s.format(**values) for s in opening),
                                     c.family, 0.3)]
    fields = {"date": c.date, "case_number": case, "court": court[0], "plaintiff": plaintiff,
              "defendant": defendant}
    if kind == "hearing":
        fields["hearing"] = hearing
    sentences = _deck(rng, LEGAL_SENTENCES)

    def unit() -> Unit:
        return Unit(_paragraph(sentences(1, 3).format(**values), c.family))

    clerk = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    closing_lines = [text_line(rng.choice(["Yours faithfully,", "Kind regards,", "On behalf "
                                           "of the court,"]), space_before=0.8),
                     text_line(clerk, space_before=1.5),
                     text_line(rng.choice(["Clerk of the court", "Registrar",
                                           "Judicial officer"]))]
    return Plan(c.family, court[0], c.fax, c.sent, fields, first,
                lambda: [text_line(f"{title}, case no. {case} (continued)", "title")],
                unit, lambda _: closing_lines, rng.randint(2, 4))
