"""Lab results and prescriptions: medical kinds that share much of a referral's vocabulary
(practice letterheads, patient, date of birth, insurance, lab values, medication), so a
classifier has to learn more than "it is medical". Layout and wording vary with the seed.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from .content import (
    CLINICS,
    FIRST,
    INSURERS,
    LAB_TESTS,
    LAST,
    Plan,
    Unit,
    _address,
    _Common,
    _counter,
    _deck,
    _letterhead,
    _paragraph,
    _phone,
    fmt_date,
)
from .render import Line, row, text_line

LABS = [
    ("Laboratory Dr. Brandt and Colleagues", "Schillerstrasse 14", "04109 Leipzig", "341"),
    ("MVZ Laboratory Medicine Rhein-Ruhr", "Huyssenallee 60", "45128 Essen", "201"),
    ("Central Laboratory Hanse", "Lornsenstrasse 7", "22767 Hamburg", "40"),
    ("Medlab Cologne", "Aachener Strasse 301", "50933 Koeln", "221"),
]
LAB_TITLES = ["Laboratory Report", "Laboratory Findings", "Lab Results",
              "Report of Laboratory Findings"]
# Panels of tests: (heading, [(name, low, high, unit, reference range), ...]). The first
# reuses the tests a referral quotes.
PANELS = [
    ("Haematology", [LAB_TESTS[0], LAB_TESTS[1],
                     ("Platelets", 120.0, 480.0, "/nl", "150-400"),
                     ("Haematocrit", 33.0, 52.0, "%", "37-47")]),
    ("Clinical chemistry", [LAB_TESTS[2], LAB_TESTS[5],
                            ("Sodium", 130.0, 148.0, "mmol/l", "135-145"),
                            ("ALT (GPT)", 8.0, 90.0, "U/l", "below 35"),
                            ("Gamma-GT", 6.0, 120.0, "U/l", "below 40")]),
    ("Metabolism", [LAB_TESTS[3], ("Glucose (fasting)", 70.0, 160.0, "mg/dl", "70-99"),
                    ("LDL cholesterol", 60.0, 210.0, "mg/dl", "below 116"),
                    ("Triglycerides", 50.0, 320.0, "mg/dl", "below 150")]),
    ("Inflammation and iron", [LAB_TESTS[4], LAB_TESTS[7],
                               ("Transferrin saturation", 8.0, 50.0, "%", "16-45")]),
    ("Endocrinology", [LAB_TESTS[6], ("Free T4", 0.7, 2.2, "ng/dl", "0.9-1.7"),
                       ("Vitamin D (25-OH)", 8.0, 60.0, "ng/ml", "30-100")]),
]
MATERIALS = ["EDTA blood, serum", "serum", "EDTA blood", "serum, citrate plasma"]
LAB_COMMENTS = [
    "Values marked H are above, values marked L below the reference range.",
    "Reference ranges refer to adults and to the method used in our laboratory.",
    "Potassium may be falsely high if the sample was stored too long before transport.",
    "The sample arrived haemolytic; please interpret the potassium value with caution.",
    "A control in two to four weeks is recommended.",
    "All results were checked and released by the responsible physician.",
    "Please contact us if you need further tests from the same sample within 7 days.",
]
PHARMACIES = [
    ("Linden Pharmacy", "Lindenstrasse 2", "10969 Berlin"),
    ("Pharmacy at the Market", "Marktplatz 5", "04109 Leipzig"),
    ("Town Hall Pharmacy", "Rathausplatz 1", "50667 Koeln"),
    ("Harbour Pharmacy", "Hafenstrasse 9", "20359 Hamburg"),
]
CARE_HOMES = [
    ("Sonnenhof Care Home", "Am Park 4", "22087 Hamburg"),
    ("Residence Rosengarten", "Rosenweg 18", "10115 Berlin"),
]
DRUGS = [  # name and strength, form, pack sizes, typical dose (morning-noon-evening-night)
    ("Metformin 1000 mg", "tablets", ("N2 60", "N3 180"), ("1", "0", "1", "0")),
    ("Ramipril 5 mg", "tablets", ("N1 20", "N3 100"), ("1", "0", "0", "0")),
    ("Atorvastatin 40 mg", "film-coated tablets", ("N2 50", "N3 100"), ("0", "0", "1", "0")),
    ("Bisoprolol 2.5 mg", "tablets", ("N1 30", "N3 100"), ("1", "0", "0", "0")),
    ("Pantoprazole 20 mg", "gastro-resistant tablets", ("N1 14", "N3 98"),
     ("1", "0", "0", "0")),
    ("Apixaban 5 mg", "film-coated tablets", ("N2 60", "N3 200"), ("1", "0", "1", "0")),
    ("Amlodipine 5 mg", "tablets", ("N1 20", "N3 100"), ("1", "0", "0", "0")),
    ("Levothyroxine 75 ug", "tablets", ("N2 50", "N3 100"), ("1", "0", "0", "0")),
    ("Ibuprofen 400 mg", "film-coated tablets", ("N1 20", "N2 50"), ("1/2", "0", "1/2", "0")),
    ("Torasemide 10 mg", "tablets", ("N1 30", "N3 100"), ("1", "0", "0", "0")),
    ("Insulin glargine 100 U/ml", "pre-filled pens", ("5 x 3 ml",), ("0", "0", "0", "18 U")),
    ("Salbutamol 100 ug", "metered-dose inhaler", ("N1 1",), ("if needed", "", "", "")),
]
DRUG_NOTES = ["with meals", "before breakfast", "if needed", "check pulse", "", "", ""]
RX_TEXT = {  # by addressee
    "pharmacy": [
        "Please prepare the medication below for collection by the patient.",
        "The original prescription follows by post.",
        "Substitution by a cheaper equivalent is permitted unless marked aut idem.",
        "The patient is known to you; please add the medication to the patient file.",
        "Please call the practice if any item is not available.",
    ],
    "care home": [
        "Please give the medication below to the resident from tomorrow on.",
        "The original prescription has been sent to your pharmacy.",
        "Please update the resident's medication record accordingly.",
        "Please call the practice if the resident shows any side effects.",
    ],
}


def _patient(rng: random.Random, style: int) -> tuple[str, str]:
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    birth = fmt_date(date(1935, 1, 1) + timedelta(days=rng.randrange(0, 70 * 365)), style)
    return name, birth


def _practice(rng: random.Random) -> tuple[str, str, tuple[str, str, str], str]:
    doctor = f"Dr. med. {rng.choice(FIRST)} {rng.choice(LAST)}"
    practice = rng.choice([f"Medical Practice {doctor}", f"Group Practice {doctor} and "
                           f"Dr. med. {rng.choice(LAST)}"])
    address = (f"{rng.choice(['Marktplatz', 'Gartenstrasse', 'Schulweg'])} {rng.randint(1, 60)}",
               rng.choice(["10115 Berlin", "22087 Hamburg", "04109 Leipzig", "50667 Koeln"]),
               "Germany")
    return doctor, practice, address, rng.choice(["General Practitioner", "Internal Medicine",
                                                  "Family Medicine"])


def plan_lab_result(rng: random.Random) -> Plan:
    c = _Common(rng)
    lab = rng.choice(LABS)
    c.phone, c.fax = _phone(rng, ("", "", "", "Germany", lab[3]))
    doctor, practice, address, _ = _practice(rng)
    patient, birth = _patient(rng, c.date_style)
    patient_id = f"PID-{rng.randint(100000, 999999)}"
    order = f"L{c.day:%y%m}-{rng.randint(10000, 99999)}"
    collected = c.later(-rng.randint(1, 3))
    title = rng.choice(LAB_TITLES)
    final = rng.random() < 0.75
    status = "Final report" if final else "Preliminary report: further results to follow"
    head = row(["Test", "Result", "Unit", "Reference range", "Flag"], "report", "bold",
               space_before=0.6)
    to_clinic = rng.random() < 0.3  # some reports go to a hospital ward, most to a practice
    if to_clinic:
        clinic = rng.choice(CLINICS)
        receiver = [clinic[0], rng.choice(["Ward 3B", "Outpatient Clinic", "Emergency Unit"]),
                    clinic[1], clinic[2]]
    else:
        receiver = [practice, address[0], f"{address[1]}, {address[2]}"]
    ids = [row(["Patient:", patient], "pair", space_before=0.4),
           row(["Date of birth:", birth], "pair"),
           row(["Patient ID:", patient_id], "pair"),
           row(["Lab order no.:", order], "pair"),
           row(["Collected:", f"{collected}, {rng.choice(MATERIALS)}"], "pair")]
    first: list[Line] = [*_letterhead(lab[0], (lab[1], lab[2], "Germany"), c.phone, c.fax,
                                      "Accredited medical laboratory"),
                         *_address(receiver),
                         text_line(f"Report date: {c.date}", space_before=1.0),
                         text_line(title, "title", space_before=1.0),
                         text_line(status, "small"), *ids]
    if not to_clinic and rng.random() < 0.5:
        first.append(text_line(f"Requested by: {doctor}"))
    fields = {"date": c.date, "patient_name": patient, "patient_id": patient_id,
              "date_of_birth": birth, "lab_order_number": order, "laboratory": lab[0]}
    panels = rng.sample(PANELS, len(PANELS))
    comments = _deck(rng, LAB_COMMENTS)
    state = {"panel": 0, "header": False}

    def unit() -> Unit:
        if state["panel"] >= 2 and rng.random() < 0.25:
            return Unit(_paragraph(comments(1, 2), c.family, 0.6))
        heading, tests = panels[state["panel"] % len(panels)]
        state["panel"] += 1
        lines = [] if state["header"] else [head]
        state["header"] = True
        lines.append(text_line(heading, "bold", space_before=0.5))
        for name, low, high, unit_name, ref in rng.sample(tests, rng.randint(2, len(tests))):
            value = rng.uniform(low, high)
            flag = _flag(value, ref)
            lines.append(row([name, f"{value:.1f}", unit_name, ref, flag], "report"))
        return Unit(lines)

    signer = f"Dr. rer. nat. {rng.choice(FIRST)} {rng.choice(LAST)}"
    closing_lines = [text_line(rng.choice(LAB_COMMENTS), space_before=0.8),
                     text_line(f"Released by {signer}", space_before=0.8),
                     text_line("Specialist in Laboratory Medicine")]

    return Plan(c.family, lab[0], c.fax, c.sent, fields, first,
                lambda: [text_line(f"{title} {patient}, {patient_id} (continued)", "title")],
                unit, lambda _: closing_lines, rng.randint(2, 4))


def _flag(value: float, ref: str) -> str:
    """H or L against a reference range written "a-b" or "below b"."""
    if ref.startswith("below "):
        return "H" if value >= float(ref.split()[1]) else ""
    low, high = (float(x) for x in ref.split("-"))
    return "H" if value > high else "L" if value < low else ""


def plan_prescription(rng: random.Random) -> Plan:
    c = _Common(rng)
    doctor, practice, address, speciality = _practice(rng)
    c.phone, c.fax = _phone(rng, ("", "", "", "Germany",
                                  rng.choice(["30", "40", "341", "221"])))
    patient, birth = _patient(rng, c.date_style)
    member = f"A{rng.randint(100000000, 999999999)}"
    insurer = rng.choice(INSURERS)
    layout = rng.choice(["pharmacy", "pharmacy", "care home", "plan"])
    if layout == "plan":
        title = rng.choice(["Medication Plan", "Medication Schedule"])
        receiver = rng.choice(CARE_HOMES + PHARMACIES)
    elif layout == "care home":
        title = rng.choice(["Repeat Prescription", "Prescription"])
        receiver = rng.choice(CARE_HOMES)
    else:
        title = rng.choice(["Prescription", "Prescription by Fax", "Rx"])
        receiver = rng.choice(PHARMACIES)
    first: list[Line] = [*_letterhead(practice, address, c.phone, c.fax, speciality),
                         *_address([receiver[0], receiver[1], receiver[2]]),
                         text_line(f"Date: {c.date}", space_before=1.0),
                         text_line(title, "title", space_before=1.0),
                         row(["Patient:", patient], "pair", space_before=0.4),
                         row(["Date of birth:", birth], "pair"),
                         text_line(f"Insurance: {insurer}, member no. {member}")]
    if layout != "plan":
        first += _paragraph(" ".join(rng.sample(RX_TEXT[layout], 2)), c.family, 0.6)
    else:
        first.append(row(["Medication", "Morning", "Noon", "Evening", "Night", "Note"],
                         "medplan", "bold", space_before=0.6))
    fields = {"date": c.date, "patient_name": patient, "date_of_birth": birth,
              "prescribing_doctor": doctor, "insurance_number": member}
    drugs = rng.sample(DRUGS, len(DRUGS))
    next_number = _counter()

    def unit() -> Unit:
        number = next_number()
        name, form, packs, dose = drugs[(number - 1) % len(drugs)]
        if layout == "plan":
            return Unit([row([name, *dose, rng.choice(DRUG_NOTES)], "medplan")])
        pzn = f"PZN {rng.randint(1000000, 9999999):08d}"
        pack = rng.choice(packs)
        dosage = "-".join(d for d in dose if d) if dose[0] != "if needed" else "if needed"
        lines = [text_line(f"Rx {number}: {name} {form}, {pack}", "bold",
                           space_before=0.5),
                 text_line(f"{pzn}   Dosage: {dosage}"
                           + ("   aut idem" if rng.random() < 0.2 else ""))]
        return Unit(lines)

    if rng.random() < 0.5:
        note = [text_line("Known allergies: none", space_before=0.6)]
    else:
        note = [text_line(f"Known allergies: {rng.choice(['penicillin', 'ASA', 'iodine'])}",
                          space_before=0.6)]
    closing_lines = [*note,
                     text_line(rng.choice(["Kind regards,", "With best regards,"]),
                               space_before=0.8),
                     text_line(doctor, space_before=1.5),
                     text_line(rng.choice(["Prescribing physician", speciality]))]
    return Plan(c.family, practice, c.fax, c.sent, fields, first,
                lambda: [text_line(f"{title} {patient} (continued)", "title")],
                unit, lambda _: closing_lines, rng.randint(2, 5))

