"""Business content of the sample faxes and how it is split into pages.

Every kind builds a Plan: the opening of page 1, a header for continuation
pages, an endless supply of body units (table rows, paragraphs) and a
closing.  paginate() fills the requested number of pages from it, so a
document of any length is one coherent document (one invoice number, one
patient) rather than unrelated pages.

Names, companies, IBANs and patient ids are random strings of the right
shape; the IBAN check digits are NOT valid (mod 97).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from .render import BOTTOM_MM, TOP_MM, Line, row, text_line, wrap

COMPANIES = [
    ("Nordwind Logistik GmbH", "Hafenstrasse 12", "20457 Hamburg", "Germany", "40"),
    ("Alpine Medical Supplies AG", "Bahnhofplatz 3", "6003 Luzern", "Switzerland", "41"),
    ("Brightwater Components Ltd", "Unit 7, Riverside Park", "Leeds LS11 5DN", "United Kingdom",
     "113"),
    ("Keller und Sohn Maschinenbau KG", "Industriestrasse 48", "70565 Stuttgart", "Germany",
     "711"),
    ("Meridian Office Solutions BV", "Keizersgracht 221", "1016 DV Amsterdam", "Netherlands",
     "20"),
    ("Hoffmann Pharma Distribution", "Lindenallee 5", "50968 Koeln", "Germany", "221"),
    ("Castellan Building Materials SpA", "Via Roma 118", "20121 Milano", "Italy", "2"),
    ("Westbrook Dental Laboratory", "14 Chapel Street", "Bristol BS1 4QD", "United Kingdom",
     "117"),
    ("Sonnenfeld Agrartechnik GmbH", "Am Muehlbach 9", "84028 Landshut", "Germany", "871"),
    ("Lumen Print and Packaging SARL", "27 Rue de la Paix", "67000 Strasbourg", "France", "3"),
    ("Fjord Marine Electronics AS", "Strandkaien 40", "5013 Bergen", "Norway", "55"),
    ("Oberland Facility Services GmbH", "Tegernseer Strasse 77", "81541 Muenchen", "Germany",
     "89"),
]
COUNTRY_CODES = {"Germany": "49", "Switzerland": "41", "United Kingdom": "44",
                 "Netherlands": "31", "Italy": "39", "France": "33", "Norway": "47"}
CLINICS = [
    ("Havel Clinic", "Spandauer Damm 130", "14050 Berlin"),
    ("St. Marien Hospital", "Kuhlenstrasse 12", "45127 Essen"),
    ("University Hospital Lindenhof", "Lindenweg 3", "69120 Heidelberg"),
    ("Elbe Valley Clinic", "Am Elbufer 21", "01067 Dresden"),
    ("Rhine Heart Centre", "Rheinallee 44", "40545 Duesseldorf"),
]
DEPARTMENTS = ["Department of Cardiology", "Department of Internal Medicine",
               "Department of Gastroenterology", "Department of Orthopaedics",
               "Department of Pneumology", "Outpatient Clinic"]
FIRST = ["Anna", "Thomas", "Sabine", "Michael", "Julia", "Peter", "Claudia", "Stefan",
         "Laura", "Daniel", "Monika", "Oliver", "Karen", "Martin", "Susan", "Frank",
         "Helga", "Jonas", "Petra", "Lukas"]
LAST = ["Weber", "Schneider", "Fischer", "Hartmann", "Brooks", "Keller", "Richter",
        "Lambert", "Wagner", "Becker", "Collins", "Schulz", "Meyer", "Novak", "Bauer",
        "Krueger", "Vogel", "Hansen", "Winter", "Berger"]
TITLES = ["Accounts Receivable", "Sales Manager", "Head of Purchasing", "Customer Service",
          "Finance Department", "Managing Director", "Logistics Coordinator"]
ITEMS = [
    "Pallet wrap film 500 mm", "Nitrile gloves size M (box/100)", "Hydraulic hose DN12 2 m",
    "Toner cartridge TN-2420", "Stainless bolt M8x40 (pack/50)", "Copy paper A4 80 g (box)",
    "Surgical masks type IIR (box/50)", "Ball bearing 6204-2RS", "Cable tie 300 mm (pack/100)",
    "Service call, technician hours", "Freight and packaging", "LED panel 600x600 36 W",
    "Disinfectant 5 l canister", "Label roll 100x150 mm", "Gear motor 0.75 kW",
    "Safety shoes S3 size 43", "Printer drum unit DR-2400", "Shipping carton 400x300x200",
    "Calibration certificate", "Spare filter cartridge F7", "Wound dressing 10x10 cm",
    "Infusion set with valve", "Drill bit set HSS 1-10 mm", "Office chair armrest pad",
]
BANKS = ["Hamburger Sparkasse", "Commerzbank AG", "Deutsche Bank AG", "UBS Switzerland AG",
         "Barclays Bank PLC", "ING Bank N.V.", "Intesa Sanpaolo"]
INVOICE_TEXT = [
    "Thank you for your order. Please find below our invoice for the goods delivered.",
    "The goods were shipped on {ship} with delivery note {dn} via our regular carrier.",
    "Please transfer the total amount by {due} quoting the invoice number as reference.",
    "Prices are net prices plus statutory VAT unless otherwise stated in the order.",
    "Partial deliveries will be invoiced separately as agreed in your framework contract.",
]
ORDER_TEXT = [
    "We hereby order the following items under the terms of our framework agreement.",
    "Please deliver to the address below and quote our order number on all documents.",
    "Delivery is requested by {due}. Please inform us at once about any delays.",
    "Invoices without our order number cannot be processed and will be returned.",
]
LETTER_SUBJECTS = [
    "Change of contact person", "Annual price adjustment", "Your complaint of last week",
    "Confirmation of our meeting", "Renewal of the service contract",
    "Updated delivery conditions", "Request for a quotation", "Change of bank details",
]
LETTER_SENTENCES = [
    "Thank you for your letter and for the constructive conversation on the phone.",
    "As agreed, we are sending you the requested documents by fax today.",
    "We have reviewed the matter carefully and would like to inform you of the result.",
    "The new conditions will apply to all orders received from the first of next month.",
    "Please check the details below and let us know if anything needs to be corrected.",
    "Our service team will contact you within the next few days to arrange an appointment.",
    "We regret any inconvenience this may have caused and appreciate your patience.",
    "The signed contract should be returned to us no later than the end of this month.",
    "All other terms of our agreement remain unchanged.",
    "A copy of this letter has also been sent to your accounting department.",
    "For technical questions please contact our support line during office hours.",
    "We look forward to continuing our successful cooperation in the coming year.",
    "The outstanding items will be shipped as soon as they are back in stock.",
    "Please note that our warehouse will be closed between Christmas and New Year.",
    "We would be grateful for a short written confirmation of receipt.",
    "The enclosed schedule lists the dates of all planned maintenance visits.",
]
DIAGNOSES = [
    "Suspected stable angina pectoris (I20.9)",
    "Type 2 diabetes mellitus with poor glycaemic control (E11.65)",
    "Persistent atrial fibrillation (I48.1)",
    "Chronic obstructive pulmonary disease (J44.9)",
    "Primary osteoarthritis of the right knee (M17.1)",
    "Iron deficiency anaemia (D50.9)",
    "Suspected cholelithiasis (K80.2)",
    "Essential hypertension, poorly controlled (I10)",
]
REFERRAL_REASONS = [
    "I am referring the above patient for further diagnosis and treatment.",
    "I would be grateful for your assessment and a recommendation for further therapy.",
    "Please admit the patient for inpatient diagnostics if you consider it necessary.",
]
CLINICAL_SENTENCES = [
    "The patient reports increasing shortness of breath on exertion over the last weeks.",
    "There is no history of recent infection, fever or weight loss.",
    "Blood pressure was 156/94 mmHg at rest, heart rate 88 per minute.",
    "The resting ECG showed sinus rhythm without signs of acute ischaemia.",
    "Symptoms persist despite the current medication and lifestyle advice.",
    "The patient is a non-smoker and drinks alcohol only occasionally.",
    "Physical examination revealed no abnormal findings apart from mild ankle oedema.",
    "An ultrasound examination in our practice was inconclusive.",
    "Family history is positive for coronary heart disease.",
    "The patient has been informed about the referral and agrees to it.",
    "Previous findings and laboratory results are enclosed with this fax.",
    "Known allergies: penicillin (skin rash).",
    "The patient lives alone and is independent in daily activities.",
    "Pain is rated 6 out of 10 and limits walking to about 500 metres.",
]
SECTIONS = ["History", "Findings", "Previous treatment", "Course of disease", "Question"]
MEDICATION = ["Metformin 1000 mg 1-0-1", "Ramipril 5 mg 1-0-0", "Atorvastatin 40 mg 0-0-1",
              "Bisoprolol 2.5 mg 1-0-0", "Pantoprazole 20 mg 1-0-0", "Apixaban 5 mg 1-0-1",
              "Amlodipine 5 mg 1-0-0", "Levothyroxine 75 ug 1-0-0", "Ibuprofen 400 mg as needed"]
LAB_TESTS = [("Haemoglobin", 10.5, 16.0, "g/dl", "12.0-16.0"),
             ("Leukocytes", 4.0, 11.0, "/nl", "4.0-10.0"),
             ("Creatinine", 0.6, 1.6, "mg/dl", "0.5-1.1"),
             ("HbA1c", 5.2, 9.8, "%", "below 6.5"),
             ("CRP", 0.5, 40.0, "mg/l", "below 5.0"),
             ("Potassium", 3.4, 5.4, "mmol/l", "3.5-5.1"),
             ("TSH", 0.3, 4.8, "mU/l", "0.4-4.0"),
             ("Ferritin", 8.0, 250.0, "ug/l", "15-150")]
INSURERS = ["AOK Nordost", "Techniker Krankenkasse", "Barmer", "DAK Gesundheit", "private"]


@dataclass
class Unit:
    """A block that stays on one page: a table row or a paragraph with heading."""

    lines: list[Line]
    amount: float = 0.0


@dataclass
class Plan:
    family: str
    sender_name: str
    sender_number: str
    sent: str  # date and time in the TTI line
    fields: dict[str, str]
    first: list[Line]
    continued: Callable[[], list[Line]]
    next_unit: Callable[[], Unit]
    closing: Callable[[float], list[Line]]  # gets the sum of the placed units' amounts
    last_page_units: int  # how many units a 1-page document typically has


def money(value: float) -> str:
    return f"{value:,.2f}"


MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]


def fmt_date(day: date, style: int) -> str:
    # Month names spelled out here: strftime("%B") would follow the process locale.
    if style == 0:
        return f"{day:%d.%m.%Y}"
    if style == 1:
        return f"{day:%Y-%m-%d}"
    return f"{day.day:02d} {MONTHS[day.month - 1]} {day.year}"


def _phone(rng: random.Random, company: tuple[str, ...]) -> tuple[str, str]:
    country, area = COUNTRY_CODES[company[3]], company[4]
    local = f"{rng.randint(200, 989)}{rng.randint(1000, 9999)}"
    return f"+{country} {area} {local}0", f"+{country} {area} {local}{rng.randint(1, 99)}"


def _letterhead(name: str, address: tuple[str, str, str], phone: str, fax: str,
                extra: str) -> list[Line]:
    return [
        text_line(name, "head"),
        text_line(f"{address[0]}, {address[1]}, {address[2]}", "small"),
        text_line(f"Phone {phone}   Fax {fax}   {extra}".rstrip(), "small"),
    ]


def _address(lines: list[str]) -> list[Line]:
    return [text_line(text, space_before=1.2 if i == 0 else 0.0) for i, text in enumerate(lines)]


def _paragraph(text: str, family: str, space_before: float = 0.5) -> list[Line]:
    return [text_line(part, space_before=space_before if i == 0 else 0.0)
            for i, part in enumerate(wrap(text, family))]


def _deck(rng: random.Random, pool: list[str]) -> Callable[[int, int], str]:
    """Paragraphs of low..high sentences, dealt from a shuffled deck so that
    sentences do not repeat until the pool is used up."""
    cards: list[str] = []

    def deal(low: int, high: int) -> str:
        picked: list[str] = []
        for _ in range(rng.randint(low, high)):
            if not cards:
                cards.extend(rng.sample(pool, len(pool)))
            picked.append(cards.pop())
        return " ".join(picked)

    return deal


class _Common:
    """Values every kind needs: parties, dates, numbers."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.family = rng.choice(["sans", "serif", "sans"])
        self.sender, self.receiver = rng.sample(COMPANIES, 2)
        self.date_style = rng.randrange(3)
        self.day = date(2026, 1, 5) + timedelta(days=rng.randrange(0, 320))
        self.date = fmt_date(self.day, self.date_style)
        self.phone, self.fax = _phone(rng, self.sender)
        self.sent = f"{self.day:%d/%m/%Y} {rng.randint(7, 18):02d}:{rng.randint(0, 59):02d}"
        self.contact = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        self.addressee = f"{rng.choice(['Ms.', 'Mr.'])} {rng.choice(LAST)}"
        self.vat_id = f"VAT ID DE{rng.randint(100000000, 999999999)}"
        self.title = rng.choice(TITLES)

    def later(self, days: int) -> str:
        return fmt_date(self.day + timedelta(days=days), self.date_style)

    def sender_head(self) -> list[Line]:
        s = self.sender
        return _letterhead(s[0], (s[1], s[2], s[3]), self.phone, self.fax, self.vat_id)

    def receiver_block(self) -> list[Line]:
        r = self.receiver
        return _address([r[0], f"Attn. {self.addressee}", r[1], f"{r[2]}, {r[3]}"])

    def signature(self) -> list[Line]:
        return [text_line("Kind regards,", space_before=0.8),
                text_line(self.contact, space_before=1.5),
                text_line(f"{self.title}, {self.sender[0]}")]


def _item_unit(rng: random.Random, number: int, columns: str) -> Unit:
    description = rng.choice(ITEMS)
    qty = rng.choice([1, 1, 2, 3, 4, 5, 6, 10, 12, 20, 25, 50])
    # log-uniform: many cheap items, few expensive ones
    unit_price = round(math.exp(rng.uniform(math.log(0.8), math.log(480.0))), 2)
    amount = round(qty * unit_price, 2)
    article = f"{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
    if columns == "invoice":
        cells = [str(number), description, str(qty), money(unit_price), money(amount)]
    elif columns == "order":
        cells = [str(number), article, description, str(qty), money(unit_price), money(amount)]
    else:
        cells = [str(number), article, description, str(qty), rng.choice(["pcs", "pcs", "box"])]
    return Unit([row(cells, columns)], amount)


def _counter() -> Callable[[], int]:
    count = 0

    def next_number() -> int:
        nonlocal count
        count += 1
        return count

    return next_number


def plan_invoice(rng: random.Random) -> Plan:
    c = _Common(rng)
    number = f"INV-{c.day.year}-{rng.randint(1, 999999):06d}"
    customer = f"K{rng.randint(100000, 999999)}"
    order = f"PO-{rng.randint(100000, 999999)}"
    note = f"DN-{rng.randint(300000, 399999)}"
    due = c.later(rng.choice([14, 30, 30, 45]))
    iban_digits = "".join(rng.choice("0123456789") for _ in range(18))
    iban_raw = f"DE{rng.randint(10, 99)}{iban_digits}"
    iban = " ".join(iban_raw[i:i + 4] for i in range(0, len(iban_raw), 4))
    bic = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(6)) + "XXX"
    bank = rng.choice(BANKS)
    header = row(["Pos", "Description", "Qty", "Unit price", "Amount EUR"], "invoice", "bold",
                 space_before=0.6)
    intro = " ".join(s.format(ship=c.later(-3), dn=note, due=due)
                     for s in rng.sample(INVOICE_TEXT, rng.randint(2, 3)))
    first = [*c.sender_head(), *c.receiver_block(),
             text_line(f"Date: {c.date}", space_before=1.0),
             text_line(f"Invoice No.: {number}   Customer No.: {customer}"),
             text_line(f"Your order: {order}   Delivery note: {note}"),
             text_line(f"Invoice {number}", "title", space_before=1.0),
             text_line(f"Dear {c.addressee},", space_before=0.6),
             *_paragraph(intro, c.family, 0.3), header]
    fields = {"date": c.date, "invoice_number": number, "customer_number": customer,
              "order_number": order, "delivery_note_number": note, "due_date": due, "iban": iban}
    next_number = _counter()

    def closing(net: float) -> list[Line]:
        vat = round(net * 0.19, 2)
        total = round(net + vat, 2)
        fields["total"] = money(total)
        return [row(["", "Net amount", "", "", money(net)], "invoice", space_before=0.4),
                row(["", "VAT 19%", "", "", money(vat)], "invoice"),
                row(["", "Total amount due", "", "", money(total)], "invoice", "bold"),
                text_line(f"Payment due by {due} without deduction.", space_before=0.8),
                text_line(f"Bank: {bank}   BIC: {bic}"),
                text_line(f"IBAN: {iban}"),
                *c.signature()]

    return Plan(c.family, c.sender[0], c.fax, c.sent, fields, first,
                lambda: [text_line(f"Invoice {number} (continued)", "title"), header],
                lambda: _item_unit(rng, next_number(), "invoice"), closing,
                rng.randint(5, 14))


CREDIT_TITLES = ["Credit Note", "Credit Memo", "Credit Note (Correction)"]
CREDIT_REASONS = [
    "Return of goods under return authorisation {rma}",
    "Price difference on our invoice {invoice}",
    "Goods damaged in transit, see claim report {rma}",
    "Volume rebate for the last quarter",
    "Cancellation of our invoice {invoice} (invoiced twice)",
]
CREDIT_TEXT = [
    "With reference to our invoice {invoice} we credit you the following amounts.",
    "Following your complaint we have checked the matter and issue this credit note.",
    "The amount credited will be offset against your next invoice.",
    "The amount credited will be transferred to your account within 14 days.",
    "Please do not pay this document: it is a credit note, not an invoice.",
    "This credit note settles your claim in full.",
    "We apologise for the inconvenience and thank you for your understanding.",
]


def plan_credit_note(rng: random.Random) -> Plan:
    """Like an invoice on purpose (same table, VAT and totals): the classifier must tell
    them apart by the few words that differ."""
    c = _Common(rng)
    title = rng.choice(CREDIT_TITLES)
    number = f"CN-{c.day.year}-{rng.randint(1, 99999):05d}"
    invoice = f"INV-{c.day.year}-{rng.randint(1, 999999):06d}"
    customer = f"K{rng.randint(100000, 999999)}"
    rma = f"RMA-{rng.randint(10000, 99999)}"
    reason = rng.choice(CREDIT_REASONS).format(rma=rma, invoice=invoice)
    negative = rng.random() < 0.5  # some print credited amounts with a minus sign
    sign = "-" if negative else ""
    header = row(["Pos", "Description", "Qty", "Unit price",
                  "Amount EUR" if negative else "Credit EUR"], "invoice", "bold",
                 space_before=0.6)
    intro = " ".join(s.format(invoice=invoice)
                     for s in rng.sample(CREDIT_TEXT, rng.randint(2, 3)))
    numbers = [text_line(f"{title} No.: {number}   Customer No.: {customer}"),
               text_line(f"Original invoice: {invoice}")]
    if rng.random() < 0.5:
        numbers.reverse()
    first = [*c.sender_head(), *c.receiver_block(),
             text_line(f"Date: {c.date}", space_before=1.0), *numbers,
             text_line(f"{title} {number}", "title", space_before=1.0),
             text_line(f"Reason: {reason}", space_before=0.4),
             text_line(f"Dear {c.addressee},", space_before=0.6),
             *_paragraph(intro, c.family, 0.3), header]
    fields = {"date": c.date, "credit_note_number": number, "invoice_number": invoice,
              "customer_number": customer}
    next_number = _counter()

    def unit() -> Unit:
        item = _item_unit(rng, next_number(), "invoice")
        cells = item.lines[0].cells
        return Unit([row([*cells[:3], f"{sign}{cells[3]}", f"{sign}{cells[4]}"], "invoice")],
                    item.amount)

    settle = rng.choice(["The amount will be credited to your customer account.",
                         f"The amount will be refunded to your account by {c.later(14)}."])

    def closing(net: float) -> list[Line]:
        vat = round(net * 0.19, 2)
        total = round(net + vat, 2)
        fields["total"] = f"{sign}{money(total)}"
        return [row(["", "Net credit", "", "", f"{sign}{money(net)}"], "invoice",
                    space_before=0.4),
                row(["", "VAT 19%", "", "", f"{sign}{money(vat)}"], "invoice"),
                row(["", "Total credit", "", "", fields["total"]], "invoice", "bold"),
                text_line(settle, space_before=0.8),
                *c.signature()]

    return Plan(c.family, c.sender[0], c.fax, c.sent, fields, first,
                lambda: [text_line(f"{title} {number} (continued)", "title"), header],
                unit, closing, rng.randint(2, 6))


def plan_order(rng: random.Random) -> Plan:
    c = _Common(rng)
    number = f"PO-{c.day.year}-{rng.randint(1, 99999):05d}"
    supplier_no = f"S{rng.randint(10000, 99999)}"
    due = c.later(rng.choice([7, 10, 14, 21]))
    header = row(["Pos", "Art. No.", "Description", "Qty", "Unit price", "Amount EUR"], "order",
                 "bold", space_before=0.6)
    intro = " ".join(s.format(due=due) for s in rng.sample(ORDER_TEXT, rng.randint(2, 3)))
    first = [*c.sender_head(), *c.receiver_block(),
             text_line(f"Date: {c.date}", space_before=1.0),
             text_line(f"Order No.: {number}   Supplier No.: {supplier_no}"),
             text_line(f"Requested delivery date: {due}"),
             text_line(f"Purchase Order {number}", "title", space_before=1.0),
             text_line("Dear Sir or Madam,", space_before=0.6),
             *_paragraph(intro, c.family, 0.3), header]
    fields = {"date": c.date, "order_number": number, "supplier_number": supplier_no,
              "delivery_date": due}
    next_number = _counter()
    delivery = c.sender

    def closing(net: float) -> list[Line]:
        fields["total"] = money(net)
        return [row(["", "", "Order total (net)", "", "", money(net)], "order", "bold",
                     space_before=0.4),
                text_line("Delivery address:", "bold", space_before=0.8),
                text_line(f"{delivery[0]}, Goods Receipt, {delivery[1]}, {delivery[2]}"),
                text_line(f"Please confirm this order by fax to {c.fax}.", space_before=0.6),
                *c.signature()]

    return Plan(c.family, c.sender[0], c.fax, c.sent, fields, first,
                lambda: [text_line(f"Purchase Order {number} (continued)", "title"), header],
                lambda: _item_unit(rng, next_number(), "order"), closing, rng.randint(3, 10))


def plan_delivery_note(rng: random.Random) -> Plan:
    c = _Common(rng)
    number = f"DN-{rng.randint(300000, 399999)}"
    order = f"PO-{c.day.year}-{rng.randint(1, 99999):05d}"
    carrier = rng.choice(["DHL Freight", "DB Schenker", "UPS", "own truck"])
    packages = rng.randint(1, 12)
    weight = f"{rng.uniform(2.0, 380.0):.1f}"
    header = row(["Pos", "Art. No.", "Description", "Qty", "Unit"], "delivery", "bold",
                 space_before=0.6)
    first = [*c.sender_head(), *c.receiver_block(),
             text_line(f"Delivery date: {c.date}", space_before=1.0),
             text_line(f"Delivery Note No.: {number}"),
             text_line(f"Your order: {order}   Carrier: {carrier}"),
             text_line(f"Delivery Note {number}", "title", space_before=1.0),
             text_line("We deliver the following goods according to your order.",
                       space_before=0.6),
             header]
    fields = {"date": c.date, "delivery_note_number": number, "order_number": order}
    next_number = _counter()

    def closing(_: float) -> list[Line]:
        return [text_line(f"Packages: {packages}   Gross weight: {weight} kg", space_before=1.0),
                text_line("Please check the goods on receipt and note any damage below."),
                text_line("Goods received in good condition:", space_before=1.2),
                text_line("Date, signature and company stamp", "small", space_before=1.8),
                *c.signature()]

    return Plan(c.family, c.sender[0], c.fax, c.sent, fields, first,
                lambda: [text_line(f"Delivery Note {number} (continued)", "title"), header],
                lambda: _item_unit(rng, next_number(), "delivery"), closing,
                rng.randint(3, 12))


def plan_letter(rng: random.Random) -> Plan:
    c = _Common(rng)
    subject = rng.choice(LETTER_SUBJECTS)
    reference = f"{c.contact[0]}{c.contact.split()[1][0]}/{rng.randint(100, 9999)}"
    first = [*c.sender_head(), *c.receiver_block(),
             text_line(f"Date: {c.date}", space_before=1.0),
             text_line(f"Our ref.: {reference}"),
             text_line(subject, "title", space_before=1.0),
             text_line(f"Dear {c.addressee},", space_before=0.6)]

    sentences = _deck(rng, LETTER_SENTENCES)

    def unit() -> Unit:
        return Unit(_paragraph(sentences(2, 4), c.family))

    return Plan(c.family, c.sender[0], c.fax, c.sent,
                {"subject": subject, "reference": reference, "date": c.date}, first,
                lambda: [text_line(f"{subject} (continued)", "title")], unit,
                lambda _: c.signature(), rng.randint(2, 5))


def plan_referral(rng: random.Random) -> Plan:
    c = _Common(rng)
    doctor = f"Dr. med. {rng.choice(FIRST)} {rng.choice(LAST)}"
    practice = f"Medical Practice {doctor}"
    address = (f"{rng.choice(['Marktplatz', 'Gartenstrasse', 'Schulweg'])} {rng.randint(1, 60)}",
               rng.choice(["10115 Berlin", "22087 Hamburg", "04109 Leipzig", "50667 Koeln"]),
               "Germany")
    clinic = rng.choice(CLINICS)
    department = rng.choice(DEPARTMENTS)
    patient = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    patient_id = f"PID-{rng.randint(100000, 999999)}"
    birth = fmt_date(date(1935, 1, 1) + timedelta(days=rng.randrange(0, 70 * 365)), c.date_style)
    diagnosis = rng.choice(DIAGNOSES)
    c.phone, c.fax = _phone(rng, ("", "", "", "Germany", rng.choice(["30", "40", "341", "221"])))
    member = f"A{rng.randint(100000000, 999999999)}"
    insurance = f"Insurance: {rng.choice(INSURERS)}, member no. {member}"
    first = [*_letterhead(practice, address, c.phone, c.fax, "General Practitioner"),
             *_address([clinic[0], department, clinic[1], clinic[2]]),
             text_line(f"Date: {c.date}", space_before=1.0),
             text_line("Referral", "title", space_before=1.0),
             row(["Patient:", patient], "pair", space_before=0.4),
             row(["Date of birth:", birth], "pair"),
             row(["Patient ID:", patient_id], "pair"),
             text_line(insurance),
             text_line(f"Diagnosis: {diagnosis}", "bold", space_before=0.4),
             text_line("Dear colleagues,", space_before=0.8),
             *_paragraph(rng.choice(REFERRAL_REASONS), c.family, 0.3)]
    fields = {"date": c.date, "patient_name": patient, "patient_id": patient_id,
              "date_of_birth": birth, "diagnosis": diagnosis, "referring_doctor": doctor,
              "recipient_name": clinic[0]}

    sections = rng.sample(SECTIONS, len(SECTIONS))
    next_section = _counter()
    sentences = _deck(rng, CLINICAL_SENTENCES)

    def unit() -> Unit:
        choice = rng.random()
        if choice < 0.2:
            meds = rng.sample(MEDICATION, rng.randint(2, 4))
            return Unit([text_line("Current medication", "bold", space_before=0.6),
                         *(text_line(m) for m in meds)])
        if choice < 0.4:
            lines = [text_line("Laboratory results", "bold", space_before=0.6)]
            for name, low, high, unit_name, ref in rng.sample(LAB_TESTS, rng.randint(2, 4)):
                value = f"{rng.uniform(low, high):.1f}"
                lines.append(row([name, value, unit_name, f"ref. {ref}"], "lab"))
            return Unit(lines)
        heading = text_line(sections[next_section() % len(sections)], "bold", space_before=0.6)
        return Unit([heading, *_paragraph(sentences(2, 4), c.family, 0.0)])

    def closing(_: float) -> list[Line]:
        return [text_line("Please send your report to our practice by fax.", space_before=0.8),
                text_line("Kind regards,", space_before=0.8),
                text_line(doctor, space_before=1.5),
                text_line("Referring physician")]

    return Plan(c.family, practice, c.fax, c.sent, fields, first,
                lambda: [text_line(f"Referral {patient}, {patient_id} (continued)", "title")],
                unit, closing, rng.randint(2, 4))




def _height(lines: list[Line]) -> float:
    return sum(line.height_pt for line in lines)


def paginate(plan: Plan, pages: int) -> list[list[Line]]:
    """Fill exactly `pages` pages with body lines (without TTI line and footer)."""
    capacity = (BOTTOM_MM - TOP_MM) / 25.4 * 72.0 - 2.0  # points, with a little slack
    result: list[list[Line]] = []
    pending: Unit | None = None
    total = 0.0
    for page in range(1, pages + 1):
        body = list(plan.first if page == 1 else plan.continued())
        last = page == pages
        placed = 0
        # Full pages break where the next unit no longer fits; the last page holds a
        # typical number of units and the closing (totals, signature).
        while not last or placed < plan.last_page_units:
            unit = pending or plan.next_unit()
            pending = None
            tail = plan.closing(total + unit.amount) if last else []
            if _height(body) + _height(unit.lines) + _height(tail) > capacity:
                pending = unit
                break
            body += unit.lines
            total += unit.amount
            placed += 1
        if last:
            body += plan.closing(total)
        if _height(body) > capacity or (not last and placed == 0):
            raise RuntimeError(f"content does not fit on page {page}")
        result.append(body)
    return result
