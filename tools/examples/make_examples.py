#!/usr/bin/python3
"""Writes the bundled example datasets under examples/ (all synthetic, written
for this project; nothing is copied from a public dataset).

    /usr/bin/python3 tools/examples/make_examples.py            # writes examples/
    /usr/bin/python3 tools/examples/make_examples.py --out DIR  # elsewhere
    /usr/bin/python3 tools/examples/make_examples.py --no-go    # skip the Go checks

Python standard library only. Every set has its own fixed seed, so a rerun
writes the same bytes. After writing, the script checks its own output: every
JSONL line parses, the credit validation split is balanced, invoice targets
validate against examples/invoices/schema.json (a small validator for exactly
the keywords the schema uses; an unknown keyword is an error), length limits
of the text sets hold, train and validation do not share inputs, every
support ticket carries cue words of its own class only (and a bag-of-words
naive Bayes fit on train reaches 95% on validation), and every
codegen completion builds, passes `go vet`, is gofmt-clean and passes its tests
(one package per split, so `go` runs once per split).

Sets:
  credit/       tabular + short-text classification (Good/Standard/Bad)
  invoices/     document -> JSON extraction against a JSON Schema (IDP)
  preferences/  prompt/chosen/rejected pairs for DPO
  codegen/      prompt/plan/completion/tests for plan-then-code generation
  chat/         system/user/assistant conversations for chat-template SFT
  tickets/      support-ticket routing (billing/technical/account), an easy
                short-text classification set for proving that SFT learns
"""

import argparse
import csv
import io
import json
import math
import os
import random
import re
import shutil
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = 20240611


def rng_for(name):
    # random.seed with a str hashes it with SHA-512: stable across runs and
    # independent of PYTHONHASHSEED.
    return random.Random(f"distill-examples-{SEED}-{name}")


def dump_jsonl(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, separators=(", ", ": ")) + "\n")


def write_text(path, text):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def words(s):
    return len(s.split())


def clip(x, lo, hi):
    return lo if x < lo else hi if x > hi else x


# ---------------------------------------------------------------------------
# 1. credit: CreditMix-style classification
# ---------------------------------------------------------------------------

CREDIT_FEATURES = [
    "annual_income",          # currency units per year, integer
    "monthly_balance",        # money left on the account at month end, integer
    "num_credit_cards",       # integer
    "interest_rate",          # percent, integer
    "num_delayed_payments",   # integer, last 24 months
    "outstanding_debt",       # currency units, integer
    "credit_utilization",     # percent of credit limits in use, one decimal
    "credit_history_months",  # age of the oldest account, integer months
    "payment_of_min_amount",  # "Yes" if the customer usually pays only the minimum
]
CREDIT_LABELS = ["Good", "Standard", "Bad"]

# The hidden rule. A linear score over the features (monthly_balance is not in
# it: a distractor that is correlated with the others through the customer's
# profile), plus Gaussian noise, cut at two thresholds; then a few labels are
# flipped at random.
SCORE_NOISE_SD = 0.5
THRESH_GOOD = 1.6     # score >= THRESH_GOOD  -> Good
THRESH_BAD = -2.0     # score <  THRESH_BAD   -> Bad, else Standard
LABEL_FLIP = 0.04


def credit_score(r):
    """The noiseless score; the label rule is score + N(0, 0.5) cut at the
    thresholds, then 4% of labels flipped."""
    inc = r["annual_income"]
    return (
        2.0                                                 # base
        + 1.2 * math.log2(inc / 40000.0)                      # +1.2 per doubling of income
        - 0.30 * r["num_delayed_payments"]                  # each late payment
        - 0.04 * (r["credit_utilization"] - 30.0)           # utilisation above 30%
        - 0.07 * (r["interest_rate"] - 12)                  # rate above 12%
        + 0.006 * (r["credit_history_months"] - 120)        # +0.072 per year of history
        - 1.6 * (r["outstanding_debt"] / inc)               # debt-to-income
        - 0.8 * (r["payment_of_min_amount"] == "Yes")       # minimum payments only
        - 0.2 * max(0, r["num_credit_cards"] - 5)           # many cards
    )


def score_label(s):
    if s >= THRESH_GOOD:
        return "Good"
    if s < THRESH_BAD:
        return "Bad"
    return "Standard"


def credit_row(rng):
    q = rng.gauss(0.0, 1.0)  # latent creditworthiness: features correlate through it
    income = int(round(clip(math.exp(rng.gauss(10.75 + 0.25 * q, 0.45)), 12000, 250000) / 10.0)) * 10
    monthly = income / 12.0
    balance = int(round(monthly * clip(0.08 + 0.06 * q + rng.gauss(0, 0.07), 0.0, 0.6)))
    cards = int(clip(round(4 - 0.8 * q + rng.gauss(0, 1.6)), 0, 11))
    rate = int(clip(round(14 - 4 * q + rng.gauss(0, 4)), 1, 34))
    delays = int(clip(round(4 - 3.0 * q + rng.gauss(0, 2.5)), 0, 25))
    debt = int(round(income * clip(0.25 - 0.12 * q + rng.gauss(0, 0.12), 0.0, 1.2) / 10.0)) * 10
    util = round(clip(35 - 9 * q + rng.gauss(0, 12), 5.0, 98.0), 1)
    hist = int(clip(round(150 + 55 * q + rng.gauss(0, 70)), 3, 420))
    p_min = 1.0 / (1.0 + math.exp(-(-1.2 * q - 0.2)))
    pmin = "Yes" if rng.random() < p_min else "No"
    r = {
        "annual_income": income,
        "monthly_balance": balance,
        "num_credit_cards": cards,
        "interest_rate": rate,
        "num_delayed_payments": delays,
        "outstanding_debt": debt,
        "credit_utilization": util,
        "credit_history_months": hist,
        "payment_of_min_amount": pmin,
    }
    label = score_label(credit_score(r) + rng.gauss(0.0, SCORE_NOISE_SD))
    if rng.random() < LABEL_FLIP:
        label = rng.choice([c for c in CREDIT_LABELS if c != label])
    r["label"] = label
    return r


def k_money(x):
    """52340 -> '52k', 1830 -> '1.8k', 950 -> '950'."""
    if x >= 10000:
        return f"{round(x / 1000)}k"
    if x >= 1000:
        return f"{x / 1000:.1f}k"
    return str(x)


def history_str(m):
    y, mo = divmod(m, 12)
    if y == 0:
        return f"{mo}m"
    return f"{y}y {mo}m"


def plural(n, one, many):
    return f"{n} {one if n == 1 else many}"


def credit_text(r, rng):
    d = r["num_delayed_payments"]
    late = "no late payments" if d == 0 else plural(d, "late payment", "late payments")
    util = f"{round(r['credit_utilization'])}%"
    if rng.random() < 0.5:
        pays = "pays minimum only" if r["payment_of_min_amount"] == "Yes" else "pays in full"
        t = (f"Income {k_money(r['annual_income'])}, balance {k_money(r['monthly_balance'])}/mo, "
             f"{plural(r['num_credit_cards'], 'card', 'cards')}, interest {r['interest_rate']}%, {late}, "
             f"debt {k_money(r['outstanding_debt'])}, utilisation {util}, "
             f"history {history_str(r['credit_history_months'])}, {pays}.")
    else:
        pays = "yes" if r["payment_of_min_amount"] == "Yes" else "no"
        t = (f"Earns {k_money(r['annual_income'])} a year; {plural(r['num_credit_cards'], 'card', 'cards')} "
             f"at {r['interest_rate']}%; {late}; owes {k_money(r['outstanding_debt'])}; "
             f"utilisation {util}; {history_str(r['credit_history_months'])} of history; "
             f"month-end balance {k_money(r['monthly_balance'])}; minimum payments: {pays}.")
    return t


CREDIT_README = """\
# credit: CreditMix-style credit classification

Synthetic customers, each with nine features and a credit class `label` in
{Good, Standard, Bad}. Written for this project by
`tools/examples/make_examples.py` (seeded, deterministic); no real data.

| file | rows | format |
|---|---|---|
| `train.jsonl` | 600 | one object per line: the nine features + `label` |
| `val.jsonl` | 150 | same, balanced: 50 per class |
| `train.csv` | 600 | the rows of `train.jsonl`, header row, `label` last |
| `text_train.jsonl` | 600 | `{"text": ..., "label": ...}`, the same rows as a short sentence (<= 30 words) |
| `text_val.jsonl` | 150 | the same for `val.jsonl` |

Training rows keep the population's natural class mix (about Good 30%,
Standard 45%, Bad 25%, see the script's summary); the validation rows are
drawn from the same population and kept until there are 50 of each class.

## Columns

| column | type | meaning |
|---|---|---|
| `annual_income` | integer | yearly income, currency units |
| `monthly_balance` | integer | money left on the account at month end |
| `num_credit_cards` | integer | open credit cards |
| `interest_rate` | integer | interest rate on credit, percent |
| `num_delayed_payments` | integer | late payments in the last 24 months |
| `outstanding_debt` | integer | total outstanding debt, currency units |
| `credit_utilization` | number | share of credit limits in use, percent, one decimal |
| `credit_history_months` | integer | age of the oldest credit account, months |
| `payment_of_min_amount` | "Yes"/"No" | usually pays only the minimum amount |
| `label` | "Good"/"Standard"/"Bad" | the class |

## How the label is made

A hidden linear score, higher is better:

    score = 2.0
          + 1.2 * log2(annual_income / 40000)
          - 0.30 * num_delayed_payments
          - 0.04 * (credit_utilization - 30)
          - 0.07 * (interest_rate - 12)
          + 0.006 * (credit_history_months - 120)
          - 1.6 * outstanding_debt / annual_income
          - 0.8 * [payment_of_min_amount == "Yes"]
          - 0.2 * max(0, num_credit_cards - 5)

Gaussian noise (sd 0.5) is added, and the noisy score is cut at two
thresholds: >= 1.6 is Good, < -2.0 is Bad, in between is Standard. Then 4% of
the labels are replaced by a different class at random (label noise), so
even the exact rule does not reach 100%: expect about 85-90% from the
noiseless rule. `monthly_balance` is not in the score; it is correlated with
the other features (all are drawn from one latent creditworthiness) and is a
mild distractor.

In words: high income, few late payments, low utilisation, a low interest
rate, a long history and paying more than the minimum make a customer Good;
several late payments, high utilisation, heavy debt relative to income and
minimum-only payments make them Bad.

The text variant writes money in thousands (`52k`), rounds utilisation to
a whole percent and the history to years and months; its labels are those of
the corresponding rows.
"""


def make_credit(out):
    rng = rng_for("credit")
    trng = rng_for("credit-text")
    train = [credit_row(rng) for _ in range(600)]
    val, per = [], {c: 0 for c in CREDIT_LABELS}
    while len(val) < 150:
        r = credit_row(rng)
        if per[r["label"]] < 50:
            per[r["label"]] += 1
            val.append(r)
    d = os.path.join(out, "credit")
    os.makedirs(d, exist_ok=True)
    dump_jsonl(os.path.join(d, "train.jsonl"), train)
    dump_jsonl(os.path.join(d, "val.jsonl"), val)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CREDIT_FEATURES + ["label"])
    for r in train:
        w.writerow([r[k] for k in CREDIT_FEATURES] + [r["label"]])
    write_text(os.path.join(d, "train.csv"), buf.getvalue())
    dump_jsonl(os.path.join(d, "text_train.jsonl"),
               [{"text": credit_text(r, trng), "label": r["label"]} for r in train])
    dump_jsonl(os.path.join(d, "text_val.jsonl"),
               [{"text": credit_text(r, trng), "label": r["label"]} for r in val])
    write_text(os.path.join(d, "README.md"), CREDIT_README)
    return train, val


# ---------------------------------------------------------------------------
# 2. invoices: document -> JSON (IDP)
# ---------------------------------------------------------------------------

INVOICE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://distill.local/examples/invoices/schema.json",
    "title": "Invoice",
    "description": "Fields extracted from one invoice document.",
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string", "minLength": 1, "maxLength": 20},
        "date": {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                 "description": "Issue date, YYYY-MM-DD."},
        "vendor": {"type": "string", "minLength": 1, "maxLength": 60},
        "currency": {"enum": ["EUR", "USD", "GBP"]},
        "total": {"type": "number", "minimum": 0,
                  "description": "Grand total including tax."},
        "line_items": {
            "type": "array",
            "minItems": 1,
            "maxItems": 5,
            "items": {
                "type": "object",
                "properties": {
                    "description": {"type": "string", "minLength": 1, "maxLength": 60},
                    "quantity": {"type": "integer", "minimum": 1},
                    "unit_price": {"type": "number", "minimum": 0},
                },
                "required": ["description", "quantity", "unit_price"],
                "additionalProperties": False,
            },
        },
        "paid": {"type": "boolean"},
        "notes": {"type": ["string", "null"], "maxLength": 120},
    },
    "required": ["invoice_number", "date", "vendor", "currency", "total", "line_items", "paid"],
    "additionalProperties": False,
}

VENDOR_HEADS = ["Northwind", "Bluefin", "Kestrel", "Alder", "Copperleaf", "Harbor", "Quillon",
                "Mosswood", "Brightline", "Granite", "Lumen", "Fernhill", "Oakridge", "Silverpine",
                "Redcliff", "Tidewater", "Cobalt", "Juniper", "Marlow", "Ashgrove", "Pebble",
                "Vantage", "Orchid", "Ironbridge", "Saltmarsh", "Willowby", "Halcyon", "Brackenfield"]
# suffix -> preferred currency (None: any)
VENDOR_TAILS = [("Supplies Ltd", "GBP"), ("Trading Ltd", "GBP"), ("& Sons", "GBP"), ("GmbH", "EUR"),
                ("B.V.", "EUR"), ("S.A.", "EUR"), ("LLC", "USD"), ("Systems Inc.", "USD"),
                ("Logistics", None), ("Studio", None), ("Office Services", None), ("Print Co.", None)]
CITIES = {"GBP": ["Leeds", "Bristol", "Norwich", "Glasgow", "Cardiff"],
          "EUR": ["Utrecht", "Lyon", "Graz", "Porto", "Leipzig"],
          "USD": ["Denver", "Tucson", "Albany", "Boise", "Omaha"]}
STREETS = ["Harbour Street", "Mill Lane", "Station Road", "Kingsway", "Elm Avenue", "Market Square",
           "Canal Walk", "Bridge Road", "Park Row", "Quarry Hill"]
CUSTOMERS = ["Pinecrest Dental", "Meadow School", "Rivera Architects", "Blue Door Cafe",
             "Hollis & Park Legal", "Summit Physio", "Larkspur Hotel", "Dunmore Library",
             "Fox Lane Bakery", "Crescent Clinic", "Tally Accounting", "Wren Studio"]
# description, low and high unit price in cents
ITEMS = [("Printer paper A4 (box)", 1800, 3500), ("Toner cartridge", 4500, 12000),
         ("USB-C cable 2m", 600, 1800), ("Office chair", 8900, 32000), ("Desk lamp", 1900, 6500),
         ("Consulting hours", 6000, 15000), ("Website hosting (monthly)", 900, 4900),
         ("Software licence", 2900, 19900), ("Coffee beans 1kg", 1400, 3200),
         ("Delivery", 500, 2500), ("Whiteboard markers (pack)", 400, 1200),
         ("Network switch 8-port", 2500, 9000), ("Cleaning service", 4000, 18000),
         ("Laptop stand", 2200, 6000), ("Stationery bundle", 1000, 4000),
         ("Design work (hours)", 4500, 11000), ("Catering lunch", 900, 2500),
         ("Replacement keyboard", 1500, 8500), ("Filing cabinet", 9000, 26000),
         ("Window repair", 7500, 30000), ("Monitor 27 inch", 15000, 42000),
         ("Training session", 20000, 90000), ("Water cooler rental", 1500, 4500),
         ("Shredding service", 2500, 7500), ("Business cards (500)", 2000, 6000),
         ("Plants and pots", 800, 5500), ("Label printer", 5000, 16000),
         ("Annual maintenance", 25000, 120000), ("Postage", 200, 1500), ("Extension lead", 700, 2200)]
NOTES = ["Deliver to the back entrance.", "PO 4471 applies.", "Thank you for your prompt payment.",
         "Goods remain our property until paid.", "Please quote the invoice number with payment.",
         "Second delivery scheduled next week.", "Prices include a 10% loyalty discount.",
         "Contact accounts@example.com with questions.", "Partial shipment; remainder to follow.",
         "Late payments incur 2% monthly interest."]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
CUR_SYM = {"EUR": "€", "USD": "$", "GBP": "£"}
VAT = {"GBP": [20, 20, 0], "EUR": [19, 21, 0], "USD": [0, 0, 6, 8]}
DAYS_IN = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def cents_str(c, euro_style=False):
    s = f"{c // 100:,}.{c % 100:02d}"
    if euro_style:
        s = s.replace(",", "_").replace(".", ",").replace("_", ".")
    return s


def money(c, cur, style):
    """Amount in the document. style: 0 plain '12.50', 1 'EUR 12.50', 2 symbol '€12.50'
    (or '12,50 €' for some EUR documents)."""
    if style == 0:
        return cents_str(c)
    if style == 1:
        return f"{cur} {cents_str(c)}"
    if cur == "EUR":
        return f"{cents_str(c, True)} €"
    return f"{CUR_SYM[cur]}{cents_str(c)}"


def date_str(y, m, d, fmt):
    if fmt == 0:
        return f"{y:04d}-{m:02d}-{d:02d}"
    if fmt == 1:
        return f"{d} {MONTHS[m - 1][:3]} {y}"
    if fmt == 2:
        return f"{MONTHS[m - 1]} {d}, {y}"
    return f"{d:02d}-{MONTHS[m - 1][:3]}-{y}"


def add_days(y, m, d, n):
    while n > 0:
        dim = DAYS_IN[m - 1] + (1 if m == 2 and y % 4 == 0 else 0)
        step = min(n, dim - d + 1)
        d += step
        n -= step
        if d > dim:
            d = 1
            m += 1
            if m > 12:
                m, y = 1, y + 1
    return y, m, d


OCR_SUBS = [("I", "l"), ("o", "0"), ("i", "1"), ("e", "c"), ("m", "rn"), ("S", "5")]


def ocr_noise(rng, s, p):
    """Damage layout words (labels, not values): occasional OCR-like swaps."""
    out = []
    for w in s.split(" "):
        if w and rng.random() < p and not any(ch.isdigit() for ch in w):
            a, b = rng.choice(OCR_SUBS)
            if a in w:
                w = w.replace(a, b, 1)
        out.append(w)
    return " ".join(out)


def invoice_fields(rng):
    head = rng.choice(VENDOR_HEADS)
    tail, pref = rng.choice(VENDOR_TAILS)
    vendor = f"{head} {tail}"
    cur = pref if pref and rng.random() < 0.85 else rng.choice(["EUR", "USD", "GBP"])
    y = rng.choice([2023, 2024, 2025])
    m = rng.randint(1, 12)
    d = rng.randint(1, DAYS_IN[m - 1])
    k = rng.randrange(4)
    if k == 0:
        num = f"INV-{y}-{rng.randint(1, 9999):05d}"
    elif k == 1:
        num = f"{head[:2].upper()}{rng.randint(1000, 99999)}"
    elif k == 2:
        num = f"{y}/{rng.randint(1, 999):04d}"
    else:
        num = str(rng.randint(10000, 999999))
    n_items = rng.choice([1, 1, 2, 2, 2, 3, 3, 4, 5])
    descs = rng.sample(range(len(ITEMS)), n_items)
    items = []
    for i in descs:
        desc, lo, hi = ITEMS[i]
        qty = rng.choice([1, 1, 1, 2, 2, 3, 4, 5, 6, 10, 12]) if hi < 20000 else rng.choice([1, 1, 2])
        price = rng.randint(lo // 5, hi // 5) * 5  # cents, multiples of 5
        if rng.random() < 0.3:
            price = (price // 100) * 100
        items.append((desc, qty, price))
    subtotal = sum(q * p for _, q, p in items)
    vat = rng.choice(VAT[cur])
    tax = (subtotal * vat + 50) // 100
    total = subtotal + tax
    paid = rng.random() < 0.45
    notes = rng.choice(NOTES) if rng.random() < 0.35 else None
    return {"vendor": vendor, "cur": cur, "date": (y, m, d), "num": num, "items": items,
            "subtotal": subtotal, "vat": vat, "tax": tax, "total": total, "paid": paid,
            "notes": notes, "customer": rng.choice(CUSTOMERS),
            "address": f"{rng.randint(1, 240)} {rng.choice(STREETS)}, {rng.choice(CITIES[cur])}"}


def invoice_target(f):
    y, m, d = f["date"]
    return {
        "invoice_number": f["num"],
        "date": f"{y:04d}-{m:02d}-{d:02d}",
        "vendor": f["vendor"],
        "currency": f["cur"],
        "total": f["total"] / 100,
        "line_items": [{"description": desc, "quantity": q, "unit_price": p / 100}
                       for desc, q, p in f["items"]],
        "paid": f["paid"],
        "notes": f["notes"],
    }


def paid_line(rng, f, total_s, due):
    if f["paid"]:
        return rng.choice(["Status: PAID", "*** PAID ***", f"Paid in full on {due}. Thank you.",
                           "Amount due: 0.00", "PAYMENT RECEIVED - thank you"])
    return rng.choice(["Status: Unpaid", f"Payment due by {due}", f"Balance due: {total_s}",
                       "Please pay within 30 days.", f"Amount due: {total_s}"])


def invoice_document(rng, f):
    cur = f["cur"]
    style = rng.randrange(3)
    dfmt = rng.randrange(4)
    y, m, d = f["date"]
    issued = date_str(y, m, d, dfmt)
    due = date_str(*add_days(y, m, d, rng.choice([7, 14, 30])), dfmt)
    mon = lambda c: money(c, cur, style)
    total_s = money(f["total"], cur, style if style else 1)
    layout = rng.randrange(4)
    extras = []
    if rng.random() < 0.5:
        extras.append(f"PO number: {rng.randint(1000, 99999)}")
    if rng.random() < 0.4:
        extras.append(f"Customer ID: C-{rng.randint(100, 99999):05d}")
    L = []
    if layout == 0:  # classic table
        L += [f["vendor"], f["address"], "", " " * rng.randint(10, 30) + "INVOICE", "",
              f"Invoice No: {f['num']}", f"Date: {issued}", f"Bill to: {f['customer']}"]
        L += extras + [""]
        L.append(f"{'Description':<28}{'Qty':>4}{'Unit price':>14}{'Amount':>14}")
        for desc, q, p in f["items"]:
            L.append(f"{desc:<28}{q:>4}{mon(p):>14}{mon(q * p):>14}")
        L.append("")
        L.append(f"{'Subtotal:':>46} {mon(f['subtotal'])}")
        if f["vat"]:
            L.append(f"{'VAT ' + str(f['vat']) + '%:':>46} {mon(f['tax'])}")
        L.append(f"{'TOTAL ' + cur + ':':>46} {cents_str(f['total'], style == 2 and cur == 'EUR')}")
        L.append(paid_line(rng, f, total_s, due))
        if f["notes"]:
            L.append(f"Notes: {f['notes']}")
    elif layout == 1:  # key-value with bullet items
        L += [f"From: {f['vendor']} ({f['address']})", f"To: {f['customer']}",
              f"Invoice #: {f['num']}", f"Issued: {issued}", f"Currency: {cur}"]
        L += extras + ["", "Items:"]
        for desc, q, p in f["items"]:
            L.append(f"  - {q} x {desc} @ {mon(p)} = {mon(q * p)}")
        if f["vat"]:
            L.append(f"Net {mon(f['subtotal'])}, tax {f['vat']}% {mon(f['tax'])}")
        L.append(f"Total: {total_s}")
        L.append(paid_line(rng, f, total_s, due))
        if f["notes"]:
            L.append(f"Note: {f['notes']}")
    elif layout == 2:  # email-ish prose
        parts = "; ".join(f"{q} {desc} at {mon(p)} each" for desc, q, p in f["items"])
        L.append(rng.choice(["Hello,", "Hi team,", "Dear customer,"]))
        L.append(f"please find invoice {f['num']} from {f['vendor']}, dated {issued}, "
                 f"billed in {cur}.")
        L.append(f"Items: {parts}.")
        if f["vat"]:
            L.append(f"Tax at {f['vat']}% comes to {mon(f['tax'])}.")
        L.append(f"Invoice total: {total_s}. {paid_line(rng, f, total_s, due)}")
        if f["notes"]:
            L.append(f"Comments: {f['notes']}")
        L += extras
        L.append(rng.choice(["Regards,", "Best wishes,", "Thanks,"]))
        L.append(f"Accounts, {f['vendor']}")
    else:  # scanned, pipes and OCR noise
        L += [f"{f['vendor']}  |  {f['address']}",
              ocr_noise(rng, "TAX INVOICE", 0.3),
              f"{ocr_noise(rng, 'Invoice number', 0.3)}: {f['num']}   |   {ocr_noise(rng, 'Invoice date', 0.3)}: {issued}"]
        L += extras
        L.append("-" * 60)
        L.append("| " + ocr_noise(rng, "Item | Qty | Price | Line total", 0.25))
        for desc, q, p in f["items"]:
            L.append(f"| {desc} | {q} | {mon(p)} | {mon(q * p)}")
        L.append("-" * 60)
        if f["vat"]:
            L.append(f"{ocr_noise(rng, 'Sub total', 0.3)} {mon(f['subtotal'])}   VAT {f['vat']}% {mon(f['tax'])}")
        L.append(f"{ocr_noise(rng, 'Grand Total', 0.3)} ({cur}) {cents_str(f['total'], style == 2 and cur == 'EUR')}")
        L.append(paid_line(rng, f, total_s, due))
        if f["notes"]:
            L.append(f"Notes: {f['notes']}")
    if rng.random() < 0.5:
        L.append(rng.choice(["", "\n"]) + rng.choice(
            ["Page 1 of 1", "Thank you for your business!", f"IBAN GB{rng.randint(10, 99)} "
             f"BANK {rng.randint(1000, 9999)} {rng.randint(1000, 9999)} {rng.randint(10, 99)}",
             "Registered in England No. " + str(rng.randint(1000000, 9999999)),
             f"VAT reg {rng.randint(100, 999)} {rng.randint(1000, 9999)} {rng.randint(10, 99)}"]))
    lines = [ln.rstrip() if rng.random() < 0.8 else ln + "  " for ln in L]
    return "\n".join(lines).rstrip() + "\n"


INVOICES_README = """\
# invoices: invoice document -> JSON (IDP)

Synthetic invoices as plain-text documents, each with the JSON object an
extractor should produce. Written for this project by
`tools/examples/make_examples.py` (seeded, deterministic); vendors,
customers and numbers are invented.

| file | rows | format |
|---|---|---|
| `schema.json` | - | JSON Schema (draft 2020-12) of the target object |
| `train.jsonl` | 200 | `{"document": "<invoice text>", "target": {...}}` |
| `val.jsonl` | 50 | same |

## The target

| field | type | notes |
|---|---|---|
| `invoice_number` | string, <= 20 chars | as printed, without `#`/`No.` |
| `date` | string `YYYY-MM-DD` | the issue date (documents print it as `2024-03-12`, `12 Mar 2024`, `March 12, 2024` or `12-Mar-2024`) |
| `vendor` | string | the issuing company, as printed |
| `currency` | `EUR`/`USD`/`GBP` | from a code or symbol (`€`, `$`, `£`) |
| `total` | number >= 0 | grand total including tax |
| `line_items` | 1-5 objects | `description` (as printed), `quantity` (integer >= 1), `unit_price` (number) |
| `paid` | boolean | true for "PAID", "Paid in full", "Amount due: 0.00", "PAYMENT RECEIVED"; false for a balance or a due date |
| `notes` | string or null | the text after `Notes:`/`Note:`/`Comments:`, else null |

All fields but `notes` are required; the targets here always carry `notes`
(null when the document has none); no other keys are allowed.

## The documents

Four layouts (a classic table, key-value with bullet items, an e-mail in
prose, and a "scanned" table with pipes and OCR-like damage to the labels,
never to the values), four date formats, three money styles (`1,234.50`,
`EUR 1,234.50`, `€`/`$`/`£` with European `1.234,50 €` for euros) and
distractors: PO numbers, customer IDs, bank and registration lines, due
dates, subtotals and tax lines. Totals are consistent: the sum of quantity x
unit price plus tax at the stated rate (rounded to the cent).
"""


def make_invoices(out):
    rng = rng_for("invoices")
    rows, seen = [], []
    while len(rows) < 250:
        f = invoice_fields(rng)
        if f["num"] in seen:
            continue
        seen.append(f["num"])
        rows.append({"document": invoice_document(rng, f), "target": invoice_target(f)})
    d = os.path.join(out, "invoices")
    os.makedirs(d, exist_ok=True)
    write_text(os.path.join(d, "schema.json"), json.dumps(INVOICE_SCHEMA, indent=2, ensure_ascii=False) + "\n")
    dump_jsonl(os.path.join(d, "train.jsonl"), rows[:200])
    dump_jsonl(os.path.join(d, "val.jsonl"), rows[200:])
    write_text(os.path.join(d, "README.md"), INVOICES_README)
    return rows[:200], rows[200:]


# ---------------------------------------------------------------------------
# 3. preferences: DPO pairs
# ---------------------------------------------------------------------------
# The preference: the chosen answer is polite, concise and correct; the
# rejected one is wrong (in the same polite style), rude (correct but rude),
# rambling (hedged and wordy), or wrong and rude.

CAPITALS = [("France", "Paris", "Lyon"), ("Germany", "Berlin", "Munich"), ("Italy", "Rome", "Milan"),
            ("Spain", "Madrid", "Barcelona"), ("Portugal", "Lisbon", "Porto"), ("Japan", "Tokyo", "Osaka"),
            ("Canada", "Ottawa", "Toronto"), ("Australia", "Canberra", "Sydney"),
            ("Brazil", "Brasilia", "Rio de Janeiro"), ("Egypt", "Cairo", "Alexandria"),
            ("Kenya", "Nairobi", "Mombasa"), ("Norway", "Oslo", "Bergen"), ("Sweden", "Stockholm", "Gothenburg"),
            ("Finland", "Helsinki", "Turku"), ("Denmark", "Copenhagen", "Aarhus"), ("Poland", "Warsaw", "Krakow"),
            ("Greece", "Athens", "Thessaloniki"), ("Ireland", "Dublin", "Cork"), ("Austria", "Vienna", "Salzburg"),
            ("Hungary", "Budapest", "Debrecen"), ("the Czech Republic", "Prague", "Brno"),
            ("the Netherlands", "Amsterdam", "Rotterdam"), ("Belgium", "Brussels", "Antwerp"),
            ("Switzerland", "Bern", "Zurich"), ("Argentina", "Buenos Aires", "Cordoba"),
            ("Chile", "Santiago", "Valparaiso"), ("Peru", "Lima", "Cusco"), ("Mexico", "Mexico City", "Guadalajara"),
            ("India", "New Delhi", "Mumbai"), ("China", "Beijing", "Shanghai"), ("South Korea", "Seoul", "Busan"),
            ("Thailand", "Bangkok", "Chiang Mai"), ("Vietnam", "Hanoi", "Ho Chi Minh City"),
            ("Turkey", "Ankara", "Istanbul"), ("Russia", "Moscow", "Saint Petersburg"),
            ("Ukraine", "Kyiv", "Lviv"), ("Iceland", "Reykjavik", "Akureyri"),
            ("New Zealand", "Wellington", "Auckland"), ("Morocco", "Rabat", "Casablanca"),
            ("Nigeria", "Abuja", "Lagos"), ("Ghana", "Accra", "Kumasi"), ("Cuba", "Havana", "Santiago de Cuba"),
            ("Colombia", "Bogota", "Medellin"), ("the Philippines", "Manila", "Cebu"),
            ("Malaysia", "Kuala Lumpur", "Penang"), ("Pakistan", "Islamabad", "Karachi"),
            ("Saudi Arabia", "Riyadh", "Jeddah"), ("Scotland", "Edinburgh", "Glasgow"),
            ("Wales", "Cardiff", "Swansea"), ("Croatia", "Zagreb", "Split")]
ANTONYMS = [("hot", "cold", "warm"), ("big", "small", "large"), ("fast", "slow", "quick"), ("up", "down", "over"),
            ("open", "closed", "wide"), ("early", "late", "soon"), ("happy", "sad", "glad"), ("full", "empty", "packed"),
            ("tall", "short", "high"), ("wet", "dry", "damp"), ("push", "pull", "press"), ("win", "lose", "gain"),
            ("buy", "sell", "purchase"), ("strong", "weak", "tough"), ("rich", "poor", "wealthy"),
            ("thick", "thin", "dense"), ("loud", "quiet", "noisy"), ("cheap", "expensive", "inexpensive"),
            ("clean", "dirty", "tidy"), ("first", "last", "initial"), ("inside", "outside", "within"),
            ("true", "false", "correct"), ("north", "south", "east"), ("left", "right", "west"),
            ("above", "below", "over"), ("before", "after", "prior"), ("asleep", "awake", "dozing"),
            ("remember", "forget", "recall"), ("accept", "reject", "take"), ("increase", "decrease", "grow"),
            ("maximum", "minimum", "most"), ("ancient", "modern", "old"), ("question", "answer", "query"),
            ("friend", "enemy", "ally"), ("success", "failure", "victory"), ("visible", "invisible", "clear"),
            ("possible", "impossible", "likely"), ("always", "never", "often"), ("arrive", "leave", "come"),
            ("smooth", "rough", "flat"), ("heavy", "light", "weighty"), ("sharp", "blunt", "pointed"),
            ("generous", "mean", "kind"), ("shallow", "deep", "low"), ("give", "take", "offer")]
PLURALS = [("mouse", "mice", "mouses"), ("child", "children", "childs"), ("tooth", "teeth", "tooths"),
           ("foot", "feet", "foots"), ("goose", "geese", "gooses"), ("man", "men", "mans"),
           ("woman", "women", "womans"), ("person", "people", "persones"), ("leaf", "leaves", "leafs"),
           ("knife", "knives", "knifes"), ("wolf", "wolves", "wolfs"), ("box", "boxes", "boxs"),
           ("city", "cities", "citys"), ("baby", "babies", "babys"), ("bus", "buses", "buss"),
           ("potato", "potatoes", "potatos"), ("tomato", "tomatoes", "tomatos"), ("sheep", "sheep", "sheeps"),
           ("deer", "deer", "deers"), ("crisis", "crises", "crisises"), ("ox", "oxen", "oxes"),
           ("life", "lives", "lifes"), ("wife", "wives", "wifes"), ("half", "halves", "halfs"),
           ("church", "churches", "churchs"), ("dish", "dishes", "dishs"), ("story", "stories", "storys"),
           ("key", "keys", "kies"), ("toy", "toys", "toies"), ("hero", "heroes", "heros"),
           ("calf", "calves", "calfs"), ("loaf", "loaves", "loafs"), ("analysis", "analyses", "analysises"),
           ("thesis", "theses", "thesises"), ("fox", "foxes", "foxs")]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
SHAPES = [("triangle", 3), ("square", 4), ("pentagon", 5), ("hexagon", 6), ("heptagon", 7), ("octagon", 8),
          ("nonagon", 9), ("decagon", 10)]
CONVERSIONS = [("minutes", "hour", "hours", 60), ("seconds", "minute", "minutes", 60),
               ("days", "week", "weeks", 7), ("grams", "kilogram", "kilograms", 1000),
               ("centimetres", "metre", "metres", 100), ("months", "year", "years", 12),
               ("hours", "day", "days", 24), ("millimetres", "centimetre", "centimetres", 10)]

POLITE = ["Sure! ", "Happy to help. ", "Good question! ", "Of course. ", "", "", ""]
RUDE_OPEN = ["Ugh. ", "Seriously? ", "Obviously. ", "Come on. ", "Fine. "]
RUDE_CLOSE = [" Look it up yourself.", " Everyone knows that.", " Stop wasting my time.",
              " Try harder next time.", " Do your own homework."]
RAMBLE = ["Well, um, that is a tricky one, let me think, maybe {a}, not sure.",
          "Hmm, there are many ways to look at this, but possibly {a}, I guess?",
          "Great question, people often wonder, and honestly it might be {a}, or not.",
          "So, first, some background would help, but I suppose {a}, roughly."]


def pref_items(rng):
    """(prompt, sentence(answer) -> str, correct answer, wrong answer, short answer form)."""
    items = []
    for country, cap, wrong in CAPITALS:
        p = rng.choice(["What is the capital of {c}?", "Which city is the capital of {c}?",
                        "Name the capital city of {c}."]).format(c=country)
        items.append((p, lambda a, c=country: f"The capital of {c} is {a}.", cap, wrong))
    for w, a, bad in ANTONYMS:
        p = rng.choice(['What is the opposite of "{w}"?', 'Give the antonym of "{w}".',
                        'Which word means the opposite of "{w}"?']).format(w=w)
        items.append((p, lambda x, w=w: f'The opposite of "{w}" is "{x}".', a, bad))
    for w, pl, bad in PLURALS:
        p = rng.choice(['What is the plural of "{w}"?', 'How do you write "{w}" in the plural?']).format(w=w)
        items.append((p, lambda x, w=w: f'The plural of "{w}" is "{x}".', pl, bad))
    for i, day in enumerate(WEEKDAYS):
        nxt, prv = WEEKDAYS[(i + 1) % 7], WEEKDAYS[(i - 1) % 7]
        items.append((f"What day comes after {day}?", lambda x, d=day: f"{x} comes after {d}.", nxt,
                      WEEKDAYS[(i + 2) % 7]))
        items.append((f"Which day comes before {day}?", lambda x, d=day: f"{x} comes before {d}.", prv,
                      WEEKDAYS[(i + 1) % 7]))
    for i, mo in enumerate(MONTHS):
        n = DAYS_IN[i]
        items.append((f"How many days are there in {mo}" + (" in a non-leap year?" if i == 1 else "?"),
                      lambda x, m=mo: f"{m} has {x} days.", str(n), str(31 if n != 31 else 30)))
        items.append((f"Which month comes after {mo}?", lambda x, m=mo: f"{x} comes after {m}.",
                      MONTHS[(i + 1) % 12], MONTHS[(i + 2) % 12]))
    for shape, n in SHAPES:
        items.append((f"How many sides does a {shape} have?", lambda x, s=shape: f"A {s} has {x} sides.",
                      str(n), str(n + rng.choice([-1, 1]))))
    for small, one, many, f in CONVERSIONS:
        for n in rng.sample([2, 3, 4, 5, 6, 8, 10, 12], 5):
            items.append((f"How many {small} are there in {n} {many}?",
                          lambda x, s=small, n=n, m=many: f"There are {x} {s} in {n} {m}.", str(n * f),
                          str(n * f + rng.choice([-f, f, -1, 1, 10]))))
    seen = {it[0] for it in items}
    ops = [("+", "plus", lambda a, b: a + b), ("-", "minus", lambda a, b: a - b), ("x", "times", lambda a, b: a * b)]
    while len(items) < 400:
        sym, word, fn = rng.choice(ops)
        if sym == "x":
            a, b = rng.randint(2, 19), rng.randint(2, 12)
        else:
            a, b = rng.randint(10, 99), rng.randint(2, 60)
            if sym == "-" and b > a:
                a, b = b, a
        p = rng.choice([f"What is {a} {sym} {b}?", f"What is {a} {word} {b}?", f"Please compute {a} {sym} {b}.",
                        f"Can you tell me what {a} {word} {b} is?"])
        if p in seen:
            continue
        seen.add(p)
        ans = fn(a, b)
        wrong = ans + rng.choice([-10, -2, -1, 1, 2, 10, b])
        items.append((p, lambda x, a=a, b=b, s=sym: f"{a} {s} {b} = {x}.", str(ans), str(wrong)))
    return items


def pref_row(rng, item):
    prompt, sent, good, bad = item
    chosen = rng.choice(POLITE) + sent(good)
    kind = rng.choice(["wrong", "wrong", "rude", "rude", "ramble", "wrong_rude"])
    if kind == "wrong":
        rejected = rng.choice(POLITE) + sent(bad)
    elif kind == "rude":
        rejected = rng.choice(RUDE_OPEN) + sent(good) + rng.choice(RUDE_CLOSE)
    elif kind == "wrong_rude":
        rejected = rng.choice(RUDE_OPEN) + sent(bad) + rng.choice(RUDE_CLOSE)
    else:
        rejected = rng.choice(RAMBLE).format(a=good)
    if words(rejected) > 15:  # keep within the length budget: drop the rude opener
        rejected = sent(bad if "wrong" in kind else good) + rng.choice(RUDE_CLOSE)
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


PREFERENCES_README = """\
# preferences: DPO pairs

Synthetic preference pairs for DPO, written for this project by
`tools/examples/make_examples.py` (seeded, deterministic).

| file | rows | format |
|---|---|---|
| `train.jsonl` | 300 | `{"prompt": ..., "chosen": ..., "rejected": ...}` |
| `val.jsonl` | 100 | same; no prompt appears in both splits |

Prompts are short questions (<= 20 words) with one right answer: arithmetic,
capital cities, antonyms, plurals, weekdays and months, polygon sides, unit
conversions. Answers are <= 15 words.

The preference is consistent: the **chosen** answer is polite, concise and
correct, one sentence that states the answer (sometimes after a short
friendly opener such as "Sure!"). The **rejected** answer is one of: the
same polite sentence with a wrong answer (about 1/3), a correct answer
wrapped in rudeness (about 1/3), a rambling hedged answer (about 1/6), or
wrong and rude (about 1/6). A model that learned the preference answers
correctly and politely in one sentence; preference accuracy and reward
margins on `val.jsonl` measure it.
"""


def make_preferences(out):
    rng = rng_for("preferences")
    items = pref_items(rng)
    rng.shuffle(items)
    rows = [pref_row(rng, it) for it in items]
    d = os.path.join(out, "preferences")
    os.makedirs(d, exist_ok=True)
    dump_jsonl(os.path.join(d, "train.jsonl"), rows[:300])
    dump_jsonl(os.path.join(d, "val.jsonl"), rows[300:400])
    write_text(os.path.join(d, "README.md"), PREFERENCES_README)
    return rows[:300], rows[300:400]


# ---------------------------------------------------------------------------
# 4. codegen: plan-then-code Go functions
# ---------------------------------------------------------------------------
# Each task is a complete Go file in package solution (the completion), a
# numbered plan, and a test file in the same package whose expected values
# come from a Python reference of the same function.

def go_lit(v, t):
    if t == "int":
        return str(int(v))
    if t == "float64":
        return repr(float(v))
    if t == "string":
        assert all(32 <= ord(ch) < 127 for ch in v), v
        return json.dumps(v)
    if t == "bool":
        return "true" if v else "false"
    if t.startswith("[]"):
        return t + "{" + ", ".join(go_lit(x, t[2:]) for x in v) + "}"
    raise ValueError(t)


def go_round(x):
    # Go's math.Round: half away from zero.
    return math.copysign(math.floor(abs(x) + 0.5), x)


def tabs(code):
    out = []
    for ln in code.strip("\n").split("\n"):
        n = len(ln) - len(ln.lstrip(" "))
        out.append("\t" * (n // 4 + 1) + ln.lstrip(" ") if ln.strip() else "")
    return "\n".join(out)


class GoTask:
    def __init__(self, name, params, ret, desc, plan, body, ref, cases, imports=()):
        self.name, self.params, self.ret, self.desc = name, params, ret, desc
        self.plan, self.body, self.ref, self.cases, self.imports = plan, body, ref, cases, list(imports)

    def signature(self):
        ps = ", ".join(f"{n} {t}" for n, t in self.params)
        return f"{self.name}({ps}) {self.ret}"

    def source(self):
        src = "package solution\n\n"
        if len(self.imports) == 1:
            src += f'import "{self.imports[0]}"\n\n'
        elif self.imports:
            src += "import (\n" + "".join(f'\t"{i}"\n' for i in sorted(self.imports)) + ")\n\n"
        src += f"// {self.name} {self.desc}.\n"
        src += f"func {self.signature()} {{\n{tabs(self.body)}\n}}\n"
        return src

    def test_source(self):
        imports = {"testing"}
        body = []
        for i, args in enumerate(self.cases):
            call = f"{self.name}(" + ", ".join(go_lit(a, t) for a, (_, t) in zip(args, self.params)) + ")"
            want = self.ref(*args)
            msg = f'\t\tt.Errorf("case {i}: got %v, want %v", got, want)'
            if self.ret == "(int, bool)":
                w, ok = want
                body += [f"\tif got, ok := {call}; got != {w} || {'!ok' if ok else 'ok'} {{",
                         f'\t\tt.Errorf("case {i}: got %v, %v, want {w}, {go_lit(ok, "bool")}", got, ok)', "\t}"]
            elif self.ret == "float64":
                imports.add("math")
                body += [f"\tif got, want := {call}, {go_lit(want, 'float64')}; math.Abs(got-want) > 1e-9 {{",
                         msg, "\t}"]
            elif self.ret.startswith("[]"):
                imports.add("fmt")
                verb = "%q" if self.ret == "[]string" else "%v"
                body += [f"\tif got, want := {call}, {go_lit(want, self.ret)}; "
                         f'fmt.Sprintf("{verb}", got) != fmt.Sprintf("{verb}", want) {{', msg, "\t}"]
            else:
                body += [f"\tif got, want := {call}, {go_lit(want, self.ret)}; got != want {{", msg, "\t}"]
        src = "package solution\n\n"
        if len(imports) == 1:
            src += 'import "testing"\n\n'
        else:
            src += "import (\n" + "".join(f'\t"{i}"\n' for i in sorted(imports)) + ")\n\n"
        src += f"func Test{self.name}(t *testing.T) {{\n" + "\n".join(body) + "\n}\n"
        return src

    def row(self):
        return {
            "prompt": f"Write a Go function {self.signature()} in package solution that {self.desc}.",
            "plan": " ".join(f"{i + 1}. {s}" for i, s in enumerate(self.plan)),
            "completion": "```go\n" + self.source() + "```",
            "tests": self.test_source(),
        }


INTS = [[], [7], [3, -2, 7, 10, 0, 11], [12, 15, 4, 55, 100, 101, 60], [-8, -3, 9, 9, 21, 30, -14]]
INT1 = [(x,) for x in INTS]
STRS = ["", "a", "Hello World", "racecar", "Never odd or even", "go is FUN 2 learn", "  spaced   out  words "]
STR1 = [(s,) for s in STRS]


def sum_where(name, desc, cond, pycond, plan_pick):
    body = f"""
total := 0
for _, x := range xs {{
    if {cond} {{
        total += x
    }}
}}
return total"""
    return GoTask(name, [("xs", "[]int")], "int", desc,
                  ["Start a total at 0.", f"Loop over xs and add each element that {plan_pick}.", "Return the total."],
                  body, lambda xs: sum(x for x in xs if pycond(x)), INT1)


def count_where(name, desc, cond, pycond, plan_pick):
    body = f"""
n := 0
for _, x := range xs {{
    if {cond} {{
        n++
    }}
}}
return n"""
    return GoTask(name, [("xs", "[]int")], "int", desc,
                  ["Start a counter at 0.", f"Loop over xs and count each element that {plan_pick}.",
                   "Return the counter."],
                  body, lambda xs: sum(1 for x in xs if pycond(x)), INT1)


def filter_where(name, desc, cond, pycond, plan_pick):
    body = f"""
var out []int
for _, x := range xs {{
    if {cond} {{
        out = append(out, x)
    }}
}}
return out"""
    return GoTask(name, [("xs", "[]int")], "[]int", desc,
                  ["Start with an empty result slice.", f"Append each element of xs that {plan_pick}, in order.",
                   "Return the result."],
                  body, lambda xs: [x for x in xs if pycond(x)], INT1)


def map_each(name, desc, expr, pyexpr, plan_do):
    body = f"""
out := make([]int, len(xs))
for i, x := range xs {{
    out[i] = {expr}
}}
return out"""
    return GoTask(name, [("xs", "[]int")], "[]int", desc,
                  ["Make a result slice with the same length as xs.", f"Set each result element to {plan_do}.",
                   "Return the result."],
                  body, lambda xs: [pyexpr(x) for x in xs], INT1)


def first_where(name, desc, cond, pycond, plan_pick, last=False):
    loop = "for i := len(xs) - 1; i >= 0; i-- {\n    x := xs[i]" if last else "for _, x := range xs {"
    body = f"""
{loop}
    if {cond} {{
        return x, true
    }}
}}
return 0, false"""

    def ref(xs):
        for x in (reversed(xs) if last else xs):
            if pycond(x):
                return x, True
        return 0, False
    return GoTask(name, [("xs", "[]int")], "(int, bool)", desc,
                  [f"Loop over xs {'from the end' if last else 'from the start'}.",
                   f"Return the first element that {plan_pick} together with true.",
                   "After the loop return 0 and false."],
                  body, ref, INT1)


def fizzbuzz(name, a, b, wa, wb):
    body = f"""
out := make([]string, 0, n)
for i := 1; i <= n; i++ {{
    switch {{
    case i%{a} == 0 && i%{b} == 0:
        out = append(out, "{wa}{wb}")
    case i%{a} == 0:
        out = append(out, "{wa}")
    case i%{b} == 0:
        out = append(out, "{wb}")
    default:
        out = append(out, strconv.Itoa(i))
    }}
}}
return out"""

    def ref(n):
        out = []
        for i in range(1, n + 1):
            if i % a == 0 and i % b == 0:
                out.append(wa + wb)
            elif i % a == 0:
                out.append(wa)
            elif i % b == 0:
                out.append(wb)
            else:
                out.append(str(i))
        return out
    desc = (f'returns the strings for 1..n where multiples of both {a} and {b} become "{wa}{wb}", '
            f'multiples of {a} "{wa}", multiples of {b} "{wb}", and other numbers their decimal form')
    return GoTask(name, [("n", "int")], "[]string", desc,
                  ["Loop i from 1 to n.", f"Check divisibility by both {a} and {b} first, then {a}, then {b}.",
                   "Otherwise append strconv.Itoa(i).", "Return the slice."],
                  body, ref, [(0,), (1,), (a * b,), (a * b + 2,)], ["strconv"])


def codegen_tasks():
    T = []
    # --- reducers over []int
    T.append(GoTask("Sum", [("xs", "[]int")], "int", "returns the sum of the elements of xs",
                    ["Start a total at 0.", "Add every element of xs to it.", "Return the total."],
                    """
total := 0
for _, x := range xs {
    total += x
}
return total""", lambda xs: sum(xs), INT1))
    T.append(sum_where("SumEven", "returns the sum of the even elements of xs", "x%2 == 0",
                       lambda x: x % 2 == 0, "is even"))
    T.append(sum_where("SumOdd", "returns the sum of the odd elements of xs", "x%2 != 0",
                       lambda x: x % 2 != 0, "is odd (x%2 != 0, so negatives count)"))
    for k in [0, 5, 10, 50, 100]:
        T.append(sum_where(f"SumAbove{k}", f"returns the sum of the elements of xs greater than {k}",
                           f"x > {k}", lambda x, k=k: x > k, f"is greater than {k}"))
    T.append(GoTask("SumSquares", [("xs", "[]int")], "int", "returns the sum of the squares of the elements of xs",
                    ["Start a total at 0.", "Add x*x for every element x.", "Return the total."],
                    """
total := 0
for _, x := range xs {
    total += x * x
}
return total""", lambda xs: sum(x * x for x in xs), INT1))
    T.append(GoTask("SumAbs", [("xs", "[]int")], "int", "returns the sum of the absolute values of the elements of xs",
                    ["Start a total at 0.", "Negate each negative element before adding it.", "Return the total."],
                    """
total := 0
for _, x := range xs {
    if x < 0 {
        x = -x
    }
    total += x
}
return total""", lambda xs: sum(abs(x) for x in xs), INT1))
    T.append(GoTask("Product", [("xs", "[]int")], "int",
                    "returns the product of the elements of xs, or 1 for an empty slice",
                    ["Start the product at 1.", "Multiply it by every element.", "Return the product."],
                    """
p := 1
for _, x := range xs {
    p *= x
}
return p""", lambda xs: math.prod(xs), INT1))
    T.append(count_where("CountEven", "returns how many elements of xs are even", "x%2 == 0",
                         lambda x: x % 2 == 0, "is even"))
    T.append(count_where("CountOdd", "returns how many elements of xs are odd", "x%2 != 0",
                         lambda x: x % 2 != 0, "is odd"))
    T.append(count_where("CountNegative", "returns how many elements of xs are negative", "x < 0",
                         lambda x: x < 0, "is below zero"))
    T.append(count_where("CountZeros", "returns how many elements of xs are zero", "x == 0",
                         lambda x: x == 0, "equals zero"))
    for k in [3, 4, 5, 6, 7, 9]:
        T.append(count_where(f"CountDivisibleBy{k}", f"returns how many elements of xs are divisible by {k}",
                             f"x%{k} == 0", lambda x, k=k: x % k == 0, f"leaves remainder 0 when divided by {k}"))
    for k in [0, 10, 18, 100]:
        T.append(count_where(f"CountAbove{k}", f"returns how many elements of xs are greater than {k}",
                             f"x > {k}", lambda x, k=k: x > k, f"is greater than {k}"))
    T.append(GoTask("Range", [("xs", "[]int")], "int",
                    "returns the largest element of xs minus the smallest, or 0 for an empty slice",
                    ["Return 0 for an empty slice.", "Track the minimum and maximum in one loop.",
                     "Return max minus min."],
                    """
if len(xs) == 0 {
    return 0
}
lo, hi := xs[0], xs[0]
for _, x := range xs[1:] {
    if x < lo {
        lo = x
    }
    if x > hi {
        hi = x
    }
}
return hi - lo""", lambda xs: max(xs) - min(xs) if xs else 0, INT1))
    T.append(GoTask("CountDistinct", [("xs", "[]int")], "int", "returns how many different values xs contains",
                    ["Make a set as map[int]bool.", "Insert every element.", "Return the size of the map."],
                    """
seen := make(map[int]bool)
for _, x := range xs {
    seen[x] = true
}
return len(seen)""", lambda xs: len(set(xs)), INT1))
    T.append(GoTask("CountOccurrences", [("xs", "[]int"), ("x", "int")], "int",
                    "returns how many times x appears in xs",
                    ["Start a counter at 0.", "Loop over xs and count elements equal to x.", "Return the counter."],
                    """
n := 0
for _, v := range xs {
    if v == x {
        n++
    }
}
return n""", lambda xs, x: xs.count(x), [([], 3), ([1, 2, 1, 1], 1), ([4, 5], 6), ([9, 9, 21, 9], 9)]))
    # --- (int, bool)
    T.append(GoTask("MaxInts", [("xs", "[]int")], "(int, bool)",
                    "returns the largest element and true, or 0 and false if xs is empty",
                    ["Return 0, false for an empty slice.", "Start with the first element as the best.",
                     "Replace it with any larger element.", "Return the best and true."],
                    """
if len(xs) == 0 {
    return 0, false
}
best := xs[0]
for _, x := range xs[1:] {
    if x > best {
        best = x
    }
}
return best, true""", lambda xs: (max(xs), True) if xs else (0, False), INT1))
    T.append(GoTask("MinInts", [("xs", "[]int")], "(int, bool)",
                    "returns the smallest element and true, or 0 and false if xs is empty",
                    ["Return 0, false for an empty slice.", "Start with the first element as the best.",
                     "Replace it with any smaller element.", "Return the best and true."],
                    """
if len(xs) == 0 {
    return 0, false
}
best := xs[0]
for _, x := range xs[1:] {
    if x < best {
        best = x
    }
}
return best, true""", lambda xs: (min(xs), True) if xs else (0, False), INT1))

    def second(xs):
        d = sorted(set(xs))
        return (d[-2], True) if len(d) >= 2 else (0, False)
    T.append(GoTask("SecondLargest", [("xs", "[]int")], "(int, bool)",
                    "returns the second largest distinct value and true, or 0 and false if there is none",
                    ["Track the largest and the second largest distinct values with found flags.",
                     "For each x: if it beats the largest, shift the largest down; else if it is below the largest "
                     "and beats the second, replace the second.", "Return the second and whether it was found."],
                    """
first, second := 0, 0
haveFirst, haveSecond := false, false
for _, x := range xs {
    switch {
    case !haveFirst || x > first:
        if haveFirst {
            second, haveSecond = first, true
        }
        first, haveFirst = x, true
    case x < first && (!haveSecond || x > second):
        second, haveSecond = x, true
    }
}
return second, haveSecond""", second, INT1 + [([5, 5, 5],), ([2, 8, 8, 3],)]))
    T.append(first_where("FirstEven", "returns the first even element and true, or 0 and false if there is none",
                         "x%2 == 0", lambda x: x % 2 == 0, "is even"))
    T.append(first_where("LastNegative", "returns the last negative element and true, or 0 and false if there is none",
                         "x < 0", lambda x: x < 0, "is negative", last=True))
    for k in [10, 50]:
        T.append(first_where(f"FirstAbove{k}",
                             f"returns the first element greater than {k} and true, or 0 and false if there is none",
                             f"x > {k}", lambda x, k=k: x > k, f"is greater than {k}"))
    # --- []int -> []int and friends
    T.append(filter_where("FilterEven", "returns the even elements of xs in order", "x%2 == 0",
                          lambda x: x % 2 == 0, "is even"))
    T.append(filter_where("FilterOdd", "returns the odd elements of xs in order", "x%2 != 0",
                          lambda x: x % 2 != 0, "is odd"))
    T.append(filter_where("FilterPositive", "returns the positive elements of xs in order", "x > 0",
                          lambda x: x > 0, "is greater than zero"))
    for k in [10, 50]:
        T.append(filter_where(f"FilterAbove{k}", f"returns the elements of xs greater than {k} in order",
                              f"x > {k}", lambda x, k=k: x > k, f"is greater than {k}"))
    T.append(map_each("Double", "returns a new slice with every element of xs doubled", "x * 2",
                      lambda x: x * 2, "twice the input element"))
    T.append(map_each("Square", "returns a new slice with every element of xs squared", "x * x",
                      lambda x: x * x, "the input element times itself"))
    T.append(map_each("Negate", "returns a new slice with every element of xs negated", "-x",
                      lambda x: -x, "minus the input element"))
    for k in [1, 5, 10]:
        T.append(map_each(f"Add{k}", f"returns a new slice with {k} added to every element of xs", f"x + {k}",
                          lambda x, k=k: x + k, f"the input element plus {k}"))
    for k in [3, 10]:
        T.append(map_each(f"MultiplyBy{k}", f"returns a new slice with every element of xs multiplied by {k}",
                          f"x * {k}", lambda x, k=k: x * k, f"the input element times {k}"))
    T.append(map_each("AbsAll", "returns a new slice with the absolute value of every element of xs",
                      "max(x, -x)", lambda x: abs(x), "the larger of x and -x"))
    T.append(GoTask("ReverseInts", [("xs", "[]int")], "[]int", "returns a new slice with the elements of xs in reverse order",
                    ["Make a result slice of the same length.", "Copy xs[i] to position len-1-i.", "Return it."],
                    """
out := make([]int, len(xs))
for i, x := range xs {
    out[len(xs)-1-i] = x
}
return out""", lambda xs: xs[::-1], INT1))
    T.append(GoTask("PrefixSums", [("xs", "[]int")], "[]int",
                    "returns the running totals of xs: element i is the sum of xs[0..i]",
                    ["Make a result slice of the same length.", "Keep a running total while looping.",
                     "Store the total after adding each element."],
                    """
out := make([]int, len(xs))
total := 0
for i, x := range xs {
    total += x
    out[i] = total
}
return out""", lambda xs: [sum(xs[:i + 1]) for i in range(len(xs))], INT1))
    T.append(GoTask("Dedup", [("xs", "[]int")], "[]int",
                    "returns xs without repeated values, keeping the first occurrence of each in order",
                    ["Keep a set of values already seen.", "Append each element the first time it is seen.",
                     "Return the result."],
                    """
seen := make(map[int]bool)
var out []int
for _, x := range xs {
    if !seen[x] {
        seen[x] = true
        out = append(out, x)
    }
}
return out""", lambda xs: list(dict.fromkeys(xs)), INT1 + [([1, 1, 2, 1, 3, 2],)]))
    T.append(GoTask("RotateLeft", [("xs", "[]int"), ("k", "int")], "[]int",
                    "returns a new slice with xs rotated left by k positions (k >= 0, may exceed the length)",
                    ["Return an empty slice for empty input.", "Reduce k modulo the length.",
                     "Append xs[k:] then xs[:k] to a new slice."],
                    """
if len(xs) == 0 {
    return []int{}
}
k %= len(xs)
out := make([]int, 0, len(xs))
out = append(out, xs[k:]...)
return append(out, xs[:k]...)""",
                    lambda xs, k: (xs[k % len(xs):] + xs[:k % len(xs)]) if xs else [],
                    [([], 3), ([1, 2, 3, 4, 5], 2), ([1, 2, 3], 0), ([1, 2, 3], 7)]))
    T.append(GoTask("Chunk", [("xs", "[]int"), ("size", "int")], "[][]int",
                    "splits xs into consecutive chunks of length size (size >= 1); the last chunk may be shorter",
                    ["Loop start from 0 in steps of size.", "Cut end at min(start+size, len(xs)).",
                     "Append a copy of xs[start:end] to the result."],
                    """
var out [][]int
for start := 0; start < len(xs); start += size {
    end := min(start+size, len(xs))
    out = append(out, append([]int(nil), xs[start:end]...))
}
return out""", lambda xs, n: [xs[i:i + n] for i in range(0, len(xs), n)],
                    [([], 2), ([1, 2, 3, 4, 5], 2), ([1, 2, 3], 3), ([1, 2, 3], 5)]))
    T.append(GoTask("MergeSorted", [("a", "[]int"), ("b", "[]int")], "[]int",
                    "merges two ascending slices into one ascending slice",
                    ["Walk both slices with two indexes.", "Append the smaller head each step.",
                     "Append whatever remains of either slice."],
                    """
out := make([]int, 0, len(a)+len(b))
i, j := 0, 0
for i < len(a) && j < len(b) {
    if a[i] <= b[j] {
        out = append(out, a[i])
        i++
    } else {
        out = append(out, b[j])
        j++
    }
}
out = append(out, a[i:]...)
return append(out, b[j:]...)""", lambda a, b: sorted(a + b),
                    [([], []), ([1, 4, 9], [2, 3, 10, 11]), ([5], []), ([1, 1], [1])]))
    T.append(GoTask("IsSorted", [("xs", "[]int")], "bool", "reports whether xs is in non-decreasing order",
                    ["Compare each element with the one before it.", "Return false at the first decrease.",
                     "Return true after the loop."],
                    """
for i := 1; i < len(xs); i++ {
    if xs[i] < xs[i-1] {
        return false
    }
}
return true""", lambda xs: all(xs[i] >= xs[i - 1] for i in range(1, len(xs))),
                    INT1 + [([1, 2, 2, 8],)]))
    T.append(GoTask("ContainsInt", [("xs", "[]int"), ("x", "int")], "bool", "reports whether x is an element of xs",
                    ["Loop over xs.", "Return true when an element equals x.", "Return false after the loop."],
                    """
for _, v := range xs {
    if v == x {
        return true
    }
}
return false""", lambda xs, x: x in xs, [([], 1), ([1, 2, 3], 2), ([1, 2, 3], 4), ([-5], -5)]))
    T.append(GoTask("IndexOfInt", [("xs", "[]int"), ("x", "int")], "int",
                    "returns the index of the first element equal to x, or -1 if there is none",
                    ["Loop over xs with the index.", "Return the index of the first match.", "Return -1 after the loop."],
                    """
for i, v := range xs {
    if v == x {
        return i
    }
}
return -1""", lambda xs, x: xs.index(x) if x in xs else -1, [([], 1), ([4, 2, 2], 2), ([1, 2, 3], 9)]))
    T.append(GoTask("AllPositive", [("xs", "[]int")], "bool",
                    "reports whether every element of xs is greater than zero (true for an empty slice)",
                    ["Loop over xs.", "Return false at the first element <= 0.", "Return true after the loop."],
                    """
for _, x := range xs {
    if x <= 0 {
        return false
    }
}
return true""", lambda xs: all(x > 0 for x in xs), INT1 + [([1, 2, 3],)]))
    # --- strings
    T.append(GoTask("ReverseString", [("s", "string")], "string", "returns s with its characters (runes) reversed",
                    ["Convert s to a slice of runes.", "Swap runes from both ends towards the middle.",
                     "Convert back to a string."],
                    """
r := []rune(s)
for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
    r[i], r[j] = r[j], r[i]
}
return string(r)""", lambda s: s[::-1], STR1))
    T.append(GoTask("IsPalindrome", [("s", "string")], "bool", "reports whether s reads the same forwards and backwards",
                    ["Convert s to runes.", "Compare runes from both ends moving inwards.",
                     "Return false on the first mismatch, else true."],
                    """
r := []rune(s)
for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
    if r[i] != r[j] {
        return false
    }
}
return true""", lambda s: s == s[::-1], STR1 + [("abba",), ("Abba",)]))
    T.append(GoTask("IsPalindromeFold", [("s", "string")], "bool",
                    "reports whether s reads the same forwards and backwards, ignoring case and spaces",
                    ["Lower-case s and remove the spaces.", "Compare runes from both ends moving inwards.",
                     "Return false on a mismatch, else true."],
                    """
r := []rune(strings.ReplaceAll(strings.ToLower(s), " ", ""))
for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
    if r[i] != r[j] {
        return false
    }
}
return true""", lambda s: (lambda t: t == t[::-1])(s.lower().replace(" ", "")), STR1 + [("Abba",)], ["strings"]))
    T.append(GoTask("CountVowels", [("s", "string")], "int",
                    "returns how many vowels (a, e, i, o, u, either case) s contains",
                    ["Lower-case s.", "Loop over its runes.", "Count runes found in \"aeiou\"."],
                    """
n := 0
for _, r := range strings.ToLower(s) {
    if strings.ContainsRune("aeiou", r) {
        n++
    }
}
return n""", lambda s: sum(1 for c in s.lower() if c in "aeiou"), STR1, ["strings"]))
    T.append(GoTask("CountUpper", [("s", "string")], "int", "returns how many upper-case letters s contains",
                    ["Loop over the runes of s.", "Count those for which unicode.IsUpper is true.", "Return the count."],
                    """
n := 0
for _, r := range s {
    if unicode.IsUpper(r) {
        n++
    }
}
return n""", lambda s: sum(1 for c in s if c.isupper()), STR1, ["unicode"]))
    T.append(GoTask("CountDigits", [("s", "string")], "int", "returns how many decimal digits s contains",
                    ["Loop over the runes of s.", "Count runes between '0' and '9'.", "Return the count."],
                    """
n := 0
for _, r := range s {
    if r >= '0' && r <= '9' {
        n++
    }
}
return n""", lambda s: sum(1 for c in s if "0" <= c <= "9"), STR1 + [("a1b22c333",)]))
    T.append(GoTask("CountWords", [("s", "string")], "int", "returns the number of whitespace-separated words in s",
                    ["Split s with strings.Fields.", "Return the number of fields."],
                    "return len(strings.Fields(s))", lambda s: len(s.split()), STR1, ["strings"]))
    T.append(GoTask("LongestWord", [("s", "string")], "string",
                    "returns the longest whitespace-separated word of s (the first one on ties, \"\" if none)",
                    ["Split s with strings.Fields.", "Keep the first word whose length beats the best so far.",
                     "Return the best word."],
                    """
best := ""
for _, w := range strings.Fields(s) {
    if len(w) > len(best) {
        best = w
    }
}
return best""", lambda s: max(s.split(), key=len) if s.split() else "", STR1, ["strings"]))
    T.append(GoTask("CapitalizeWords", [("s", "string")], "string",
                    "upper-cases the first letter of every word of s and joins the words with single spaces",
                    ["Split s with strings.Fields.", "Upper-case the first byte of each word.",
                     "Join the words with one space."],
                    """
words := strings.Fields(s)
for i, w := range words {
    words[i] = strings.ToUpper(w[:1]) + w[1:]
}
return strings.Join(words, " ")""", lambda s: " ".join(w[:1].upper() + w[1:] for w in s.split()), STR1,
                    ["strings"]))
    T.append(GoTask("RunLengthEncode", [("s", "string")], "string",
                    "encodes runs of equal bytes as the byte followed by the run length, e.g. \"aaab\" to \"a3b1\"",
                    ["Walk s with an index i.", "Advance j while s[j] equals s[i].",
                     "Write s[i] and j-i to a strings.Builder, then continue from j."],
                    """
var b strings.Builder
for i := 0; i < len(s); {
    j := i
    for j < len(s) && s[j] == s[i] {
        j++
    }
    b.WriteByte(s[i])
    b.WriteString(strconv.Itoa(j - i))
    i = j
}
return b.String()""", lambda s: "".join(f"{k}{len(g)}" for k, g in _runs(s)),
                    STR1 + [("aaabccdddd",)], ["strconv", "strings"]))
    T.append(GoTask("RemoveSpaces", [("s", "string")], "string", "returns s with every space character removed",
                    ["Use strings.ReplaceAll to replace \" \" with \"\".", "Return the result."],
                    'return strings.ReplaceAll(s, " ", "")', lambda s: s.replace(" ", ""), STR1, ["strings"]))
    T.append(GoTask("Slugify", [("s", "string")], "string",
                    "lower-cases s and joins its words with hyphens, e.g. \"Hello World\" to \"hello-world\"",
                    ["Lower-case s.", "Split it into words with strings.Fields.", "Join them with \"-\"."],
                    'return strings.Join(strings.Fields(strings.ToLower(s)), "-")',
                    lambda s: "-".join(s.lower().split()), STR1, ["strings"]))
    T.append(GoTask("Initials", [("s", "string")], "string",
                    "returns the upper-cased first letters of the words of s, e.g. \"ada lovelace\" to \"AL\"",
                    ["Split s with strings.Fields.", "Take the first byte of each word.",
                     "Upper-case the joined letters."],
                    """
var b strings.Builder
for _, w := range strings.Fields(s) {
    b.WriteByte(w[0])
}
return strings.ToUpper(b.String())""", lambda s: "".join(w[0] for w in s.split()).upper(), STR1, ["strings"]))
    for c in ["a", "e", "s"]:
        T.append(GoTask(f"CountLetter{c.upper()}", [("s", "string")], "int",
                        f"returns how many times the letter {c} appears in s, ignoring case",
                        ["Lower-case s.", f"Count \"{c}\" with strings.Count.", "Return the count."],
                        f'return strings.Count(strings.ToLower(s), "{c}")', lambda s, c=c: s.lower().count(c),
                        STR1, ["strings"]))
    for k in [3, 5]:
        T.append(GoTask(f"CountWordsLongerThan{k}", [("s", "string")], "int",
                        f"returns how many whitespace-separated words of s have more than {k} letters",
                        ["Split s with strings.Fields.", f"Count the words whose length is above {k}.",
                         "Return the count."],
                        f"""
n := 0
for _, w := range strings.Fields(s) {{
    if len(w) > {k} {{
        n++
    }}
}}
return n""", lambda s, k=k: sum(1 for w in s.split() if len(w) > k), STR1, ["strings"]))
    T.append(GoTask("RepeatJoin", [("s", "string"), ("n", "int"), ("sep", "string")], "string",
                    "returns s repeated n times with sep between the copies (\"\" when n <= 0)",
                    ["Return \"\" when n <= 0.", "Build a slice holding n copies of s.", "Join it with sep."],
                    """
if n <= 0 {
    return ""
}
parts := make([]string, n)
for i := range parts {
    parts[i] = s
}
return strings.Join(parts, sep)""", lambda s, n, sep: sep.join([s] * n) if n > 0 else "",
                    [("ab", 3, "-"), ("x", 0, ","), ("go", 1, "+"), ("", 3, ":")], ["strings"]))
    T.append(GoTask("PadLeft", [("s", "string"), ("width", "int")], "string",
                    "pads s on the left with spaces to width bytes (s unchanged if already that long)",
                    ["Return s if len(s) >= width.", "Otherwise prefix width-len(s) spaces."],
                    """
if len(s) >= width {
    return s
}
return strings.Repeat(" ", width-len(s)) + s""", lambda s, w: s.rjust(w),
                    [("7", 3), ("hello", 3), ("", 2), ("ab", 2)], ["strings"]))
    T.append(GoTask("JoinInts", [("xs", "[]int"), ("sep", "string")], "string",
                    "formats the elements of xs in decimal and joins them with sep",
                    ["Convert each element with strconv.Itoa.", "Collect the strings in a slice.",
                     "Join them with sep."],
                    """
parts := make([]string, len(xs))
for i, x := range xs {
    parts[i] = strconv.Itoa(x)
}
return strings.Join(parts, sep)""", lambda xs, sep: sep.join(str(x) for x in xs),
                    [([], ","), ([1, 2, 3], ", "), ([-4, 10], "|")], ["strconv", "strings"]))
    T.append(GoTask("MinutesToClock", [("m", "int")], "string",
                    "formats m minutes after midnight (0 <= m < 1440) as \"HH:MM\"",
                    ["Hours are m / 60, minutes m % 60.", "Format both with two digits using fmt.Sprintf."],
                    'return fmt.Sprintf("%02d:%02d", m/60, m%60)', lambda m: f"{m // 60:02d}:{m % 60:02d}",
                    [(0,), (5,), (75,), (1439,)], ["fmt"]))
    T.append(GoTask("IsAnagram", [("a", "string"), ("b", "string")], "bool",
                    "reports whether a and b contain the same letters with the same counts, ignoring case",
                    ["Count runes of the lower-cased a in a map.", "Subtract the runes of the lower-cased b.",
                     "Return true only if every count is zero."],
                    """
counts := make(map[rune]int)
for _, r := range strings.ToLower(a) {
    counts[r]++
}
for _, r := range strings.ToLower(b) {
    counts[r]--
}
for _, c := range counts {
    if c != 0 {
        return false
    }
}
return true""", lambda a, b: sorted(a.lower()) == sorted(b.lower()),
                    [("listen", "Silent"), ("abc", "abd"), ("", ""), ("aab", "abb")], ["strings"]))
    T.append(GoTask("SwapCase", [("s", "string")], "string",
                    "returns s with upper-case letters made lower-case and lower-case letters made upper-case",
                    ["Map over the runes of s with strings.Map.", "Lower-case upper-case runes and vice versa.",
                     "Leave other runes unchanged."],
                    """
return strings.Map(func(r rune) rune {
    switch {
    case unicode.IsUpper(r):
        return unicode.ToLower(r)
    case unicode.IsLower(r):
        return unicode.ToUpper(r)
    }
    return r
}, s)""", lambda s: s.swapcase(), STR1, ["strings", "unicode"]))
    # --- numbers
    T.append(GoTask("Factorial", [("n", "int")], "int", "returns n! for n >= 0 (0! is 1)",
                    ["Start the result at 1.", "Multiply it by every i from 2 to n.", "Return the result."],
                    """
f := 1
for i := 2; i <= n; i++ {
    f *= i
}
return f""", lambda n: math.factorial(n), [(0,), (1,), (5,), (10,)]))
    T.append(GoTask("Fibonacci", [("n", "int")], "int", "returns the n-th Fibonacci number, with F(0) = 0 and F(1) = 1",
                    ["Keep two consecutive values a = 0, b = 1.", "Advance them n times: a, b = b, a+b.",
                     "Return a."],
                    """
a, b := 0, 1
for i := 0; i < n; i++ {
    a, b = b, a+b
}
return a""", lambda n: _fib(n), [(0,), (1,), (2,), (10,), (30,)]))
    T.append(GoTask("GCD", [("a", "int"), ("b", "int")], "int",
                    "returns the greatest common divisor of two non-negative integers",
                    ["Use Euclid's algorithm.", "While b != 0, set a, b = b, a % b.", "Return a."],
                    """
for b != 0 {
    a, b = b, a%b
}
return a""", lambda a, b: math.gcd(a, b), [(12, 18), (7, 13), (0, 5), (100, 75)]))
    T.append(GoTask("LCM", [("a", "int"), ("b", "int")], "int",
                    "returns the least common multiple of two non-negative integers (0 if either is 0)",
                    ["Return 0 if a or b is 0.", "Compute the gcd with Euclid's algorithm.",
                     "Return a / gcd * b."],
                    """
if a == 0 || b == 0 {
    return 0
}
x, y := a, b
for y != 0 {
    x, y = y, x%y
}
return a / x * b""", lambda a, b: 0 if a == 0 or b == 0 else a * b // math.gcd(a, b),
                    [(4, 6), (7, 3), (0, 9), (12, 18)]))
    T.append(GoTask("IsPrime", [("n", "int")], "bool", "reports whether n is a prime number",
                    ["Return false for n < 2.", "Try divisors d while d*d <= n.",
                     "Return false if one divides n, else true."],
                    """
if n < 2 {
    return false
}
for d := 2; d*d <= n; d++ {
    if n%d == 0 {
        return false
    }
}
return true""", lambda n: _is_prime(n), [(-3,), (0,), (1,), (2,), (9,), (17,), (97,), (91,)]))
    T.append(GoTask("DigitSum", [("n", "int")], "int", "returns the sum of the decimal digits of n (ignoring its sign)",
                    ["Make n non-negative.", "Add n % 10 and divide n by 10 until it is 0.", "Return the sum."],
                    """
if n < 0 {
    n = -n
}
sum := 0
for n > 0 {
    sum += n % 10
    n /= 10
}
return sum""", lambda n: sum(int(c) for c in str(abs(n))), [(0,), (7,), (1234,), (-507,)]))
    T.append(GoTask("DigitCount", [("n", "int")], "int",
                    "returns how many decimal digits n has, ignoring its sign (0 has one digit)",
                    ["Make n non-negative.", "Count divisions by 10 until n drops below 10.",
                     "Return the count plus one."],
                    """
if n < 0 {
    n = -n
}
count := 1
for n >= 10 {
    n /= 10
    count++
}
return count""", lambda n: len(str(abs(n))), [(0,), (9,), (10,), (-12345,)]))
    T.append(GoTask("ReverseDigits", [("n", "int")], "int",
                    "returns the non-negative integer n with its decimal digits reversed, e.g. 120 to 21",
                    ["Start the result at 0.", "Move the last digit of n to the end of the result until n is 0.",
                     "Return the result."],
                    """
r := 0
for n > 0 {
    r = r*10 + n%10
    n /= 10
}
return r""", lambda n: int(str(n)[::-1]), [(0,), (5,), (120,), (12345,)]))
    T.append(GoTask("ToBinary", [("n", "int")], "string", "returns the binary representation of the non-negative integer n",
                    ["Use strconv.FormatInt with base 2.", "Convert n to int64 first."],
                    "return strconv.FormatInt(int64(n), 2)", lambda n: format(n, "b"), [(0,), (1,), (5,), (255,)],
                    ["strconv"]))
    T.append(GoTask("PowInt", [("base", "int"), ("exp", "int")], "int", "returns base raised to the non-negative power exp",
                    ["Start the result at 1.", "Multiply by base exp times.", "Return the result."],
                    """
r := 1
for i := 0; i < exp; i++ {
    r *= base
}
return r""", lambda b, e: b ** e, [(2, 10), (3, 0), (-2, 3), (10, 5)]))
    T.append(GoTask("SumTo", [("n", "int")], "int", "returns 1 + 2 + ... + n, or 0 when n < 1",
                    ["Return 0 when n < 1.", "Use the formula n*(n+1)/2."],
                    """
if n < 1 {
    return 0
}
return n * (n + 1) / 2""", lambda n: n * (n + 1) // 2 if n >= 1 else 0, [(-4,), (0,), (1,), (100,)]))
    T.append(GoTask("SumRange", [("a", "int"), ("b", "int")], "int",
                    "returns the sum of the integers from a to b inclusive, or 0 when a > b",
                    ["Start a total at 0.", "Add every i from a to b.", "Return the total."],
                    """
total := 0
for i := a; i <= b; i++ {
    total += i
}
return total""", lambda a, b: sum(range(a, b + 1)), [(1, 10), (5, 5), (3, 1), (-2, 2)]))
    T.append(GoTask("CollatzSteps", [("n", "int")], "int",
                    "returns how many Collatz steps (halve if even, else 3n+1) take n >= 1 to 1",
                    ["Count steps until n is 1.", "Halve n when even, else set it to 3n+1.", "Return the count."],
                    """
steps := 0
for n != 1 {
    if n%2 == 0 {
        n /= 2
    } else {
        n = 3*n + 1
    }
    steps++
}
return steps""", lambda n: _collatz(n), [(1,), (2,), (6,), (27,)]))
    T.append(GoTask("IsPerfectSquare", [("n", "int")], "bool", "reports whether the non-negative integer n is a perfect square",
                    ["Increase i while i*i < n.", "Return whether i*i equals n."],
                    """
i := 0
for i*i < n {
    i++
}
return i*i == n""", lambda n: math.isqrt(n) ** 2 == n, [(0,), (1,), (15,), (16,), (99,), (144,)]))
    T.append(GoTask("Clamp", [("x", "int"), ("lo", "int"), ("hi", "int")], "int",
                    "limits x to the range [lo, hi] (lo <= hi)",
                    ["Return lo if x is below it.", "Return hi if x is above it.", "Otherwise return x."],
                    """
if x < lo {
    return lo
}
if x > hi {
    return hi
}
return x""", lambda x, lo, hi: min(max(x, lo), hi), [(5, 0, 10), (-3, 0, 10), (42, 0, 10), (7, 7, 7)]))
    T.append(GoTask("IsLeapYear", [("year", "int")], "bool", "reports whether year is a leap year in the Gregorian calendar",
                    ["A year divisible by 400 is a leap year.", "Otherwise one divisible by 100 is not.",
                     "Otherwise one divisible by 4 is."],
                    "return year%400 == 0 || (year%4 == 0 && year%100 != 0)",
                    lambda y: y % 400 == 0 or (y % 4 == 0 and y % 100 != 0), [(1900,), (2000,), (2023,), (2024,)]))
    T.append(GoTask("CountPrimesBelow", [("n", "int")], "int", "returns how many prime numbers are smaller than n",
                    ["Sieve of Eratosthenes over [0, n).", "Mark multiples of each unmarked p from p*p.",
                     "Count the unmarked numbers from 2 upwards."],
                    """
if n < 3 {
    return 0
}
composite := make([]bool, n)
count := 0
for p := 2; p < n; p++ {
    if composite[p] {
        continue
    }
    count++
    for m := p * p; m < n; m += p {
        composite[m] = true
    }
}
return count""", lambda n: sum(1 for k in range(n) if _is_prime(k)), [(0,), (2,), (3,), (10,), (100,)]))
    for a, b in [(3, 5), (2, 7), (4, 6)]:
        T.append(GoTask(f"SumMultiplesOf{a}Or{b}Below", [("n", "int")], "int",
                        f"returns the sum of the positive integers below n that are multiples of {a} or {b}",
                        ["Start a total at 0.", f"Loop i from 1 to n-1 and add i when it is divisible by {a} or {b}.",
                         "Return the total."],
                        f"""
total := 0
for i := 1; i < n; i++ {{
    if i%{a} == 0 || i%{b} == 0 {{
        total += i
    }}
}}
return total""", lambda n, a=a, b=b: sum(i for i in range(1, n) if i % a == 0 or i % b == 0),
                        [(0,), (10,), (16,), (1000,)]))
    T.append(GoTask("Max3", [("a", "int"), ("b", "int"), ("c", "int")], "int", "returns the largest of a, b and c",
                    ["Start with a.", "Replace it with b or c when larger.", "Return it."],
                    """
m := a
if b > m {
    m = b
}
if c > m {
    m = c
}
return m""", lambda a, b, c: max(a, b, c), [(1, 2, 3), (3, 2, 1), (-1, -5, -2), (4, 4, 4)]))
    T.append(GoTask("Min3", [("a", "int"), ("b", "int"), ("c", "int")], "int", "returns the smallest of a, b and c",
                    ["Start with a.", "Replace it with b or c when smaller.", "Return it."],
                    """
m := a
if b < m {
    m = b
}
if c < m {
    m = c
}
return m""", lambda a, b, c: min(a, b, c), [(1, 2, 3), (3, 2, 1), (-1, -5, -2), (4, 4, 4)]))
    T.append(GoTask("Abs", [("x", "int")], "int", "returns the absolute value of x",
                    ["Return -x when x is negative.", "Otherwise return x."],
                    """
if x < 0 {
    return -x
}
return x""", lambda x: abs(x), [(0,), (5,), (-5,)]))
    T.append(GoTask("Sign", [("x", "int")], "int", "returns -1, 0 or 1 for negative, zero or positive x",
                    ["Return -1 for x < 0.", "Return 1 for x > 0.", "Otherwise return 0."],
                    """
switch {
case x < 0:
    return -1
case x > 0:
    return 1
}
return 0""", lambda x: (x > 0) - (x < 0), [(0,), (9,), (-9,)]))
    # --- fizzbuzz variants
    for name, a, b, wa, wb in [("FizzBuzz", 3, 5, "Fizz", "Buzz"), ("FooBar", 2, 3, "Foo", "Bar"),
                               ("PingPong", 3, 7, "Ping", "Pong"), ("TickTock", 4, 6, "Tick", "Tock"),
                               ("ZigZag", 2, 5, "Zig", "Zag"), ("HipHop", 5, 7, "Hip", "Hop"),
                               ("BimBam", 3, 4, "Bim", "Bam"), ("DingDong", 6, 10, "Ding", "Dong")]:
        T.append(fizzbuzz(name, a, b, wa, wb))
    # --- floats and the workstation's domains
    F1 = lambda vals: [(v,) for v in vals]
    T.append(GoTask("Average", [("xs", "[]float64")], "float64",
                    "returns the arithmetic mean of xs, or 0 for an empty slice",
                    ["Return 0 for an empty slice.", "Sum the elements.", "Divide by float64(len(xs))."],
                    """
if len(xs) == 0 {
    return 0
}
sum := 0.0
for _, x := range xs {
    sum += x
}
return sum / float64(len(xs))""", lambda xs: sum(xs) / len(xs) if xs else 0.0,
                    [([],), ([2.5],), ([1.0, 2.0, 4.5],), ([-3.0, 3.0, 9.0, 1.5],)]))
    T.append(GoTask("CelsiusToFahrenheit", [("c", "float64")], "float64", "converts a temperature from Celsius to Fahrenheit",
                    ["Multiply by 9/5.", "Add 32."], "return c*9/5 + 32", lambda c: c * 9 / 5 + 32,
                    F1([0.0, 100.0, -40.0, 36.6])))
    T.append(GoTask("FahrenheitToCelsius", [("f", "float64")], "float64", "converts a temperature from Fahrenheit to Celsius",
                    ["Subtract 32.", "Multiply by 5/9."], "return (f - 32) * 5 / 9", lambda f: (f - 32) * 5 / 9,
                    F1([32.0, 212.0, -40.0, 98.6])))
    T.append(GoTask("CelsiusToKelvin", [("c", "float64")], "float64", "converts a temperature from Celsius to Kelvin",
                    ["Add 273.15."], "return c + 273.15", lambda c: c + 273.15, F1([0.0, -273.15, 25.0])))
    T.append(GoTask("KmToMiles", [("km", "float64")], "float64", "converts kilometres to miles (1 km = 0.621371 miles)",
                    ["Multiply km by 0.621371."], "return km * 0.621371", lambda k: k * 0.621371,
                    F1([0.0, 1.0, 42.195, 100.0])))
    T.append(GoTask("CreditUtilization", [("balance", "float64"), ("limit", "float64")], "float64",
                    "returns balance as a percentage of limit, or 0 when limit <= 0",
                    ["Return 0 when limit <= 0.", "Return balance / limit * 100."],
                    """
if limit <= 0 {
    return 0
}
return balance / limit * 100""", lambda b, lim: b / lim * 100 if lim > 0 else 0.0,
                    [(500.0, 2000.0), (0.0, 1000.0), (1200.0, 0.0), (3300.0, 3000.0)]))
    T.append(GoTask("DebtToIncome", [("debt", "float64"), ("income", "float64")], "float64",
                    "returns debt divided by income, or 0 when income <= 0",
                    ["Return 0 when income <= 0.", "Return debt / income."],
                    """
if income <= 0 {
    return 0
}
return debt / income""", lambda d, i: d / i if i > 0 else 0.0,
                    [(18000.0, 52000.0), (0.0, 30000.0), (5000.0, 0.0)]))
    for r in [5, 19, 20, 21]:
        T.append(GoTask(f"AddVAT{r}", [("net", "float64")], "float64",
                        f"adds {r}% VAT to a net amount and rounds the result to cents",
                        [f"Multiply net by {100 + r} to get the gross amount in cents.",
                         "Round with math.Round.", "Divide by 100."],
                        f"return math.Round(net*{100 + r}) / 100", lambda n, r=r: go_round(n * (100 + r)) / 100,
                        F1([0.0, 10.0, 99.99, 1234.56]), ["math"]))
    T.append(GoTask("LineTotal", [("qty", "[]int"), ("price", "[]float64")], "float64",
                    "returns the sum of qty[i] * price[i] over the invoice lines (the slices have equal length)",
                    ["Start a total at 0.", "Add float64(qty[i]) * price[i] for every line.", "Return the total."],
                    """
total := 0.0
for i, q := range qty {
    total += float64(q) * price[i]
}
return total""", lambda q, p: sum(a * b for a, b in zip(q, p)),
                    [([], []), ([2], [12.5]), ([3, 1, 10], [4.0, 99.99, 0.25])]))
    for name, good, std in [("ClassifyScore", 700, 600), ("ClassifyScoreStrict", 750, 650)]:
        T.append(GoTask(name, [("score", "int")], "string",
                        f'returns "Good" for a score of at least {good}, "Standard" for at least {std}, else "Bad"',
                        [f"Return \"Good\" when score >= {good}.", f"Return \"Standard\" when score >= {std}.",
                         "Otherwise return \"Bad\"."],
                        f"""
switch {{
case score >= {good}:
    return "Good"
case score >= {std}:
    return "Standard"
}}
return "Bad\"""", lambda s, g=good, st=std: "Good" if s >= g else "Standard" if s >= st else "Bad",
                        [(good,), (good - 1,), (std,), (std - 1,), (300,)]))
    for p in [10, 25]:
        T.append(GoTask(f"Discount{p}", [("price", "float64")], "float64",
                        f"returns price reduced by {p}%",
                        [f"Multiply price by {100 - p}.", "Divide by 100."],
                        f"return price * {100 - p} / 100", lambda x, p=p: x * (100 - p) / 100,
                        F1([0.0, 100.0, 19.99])))
    return T


def _runs(s):
    out = []
    for ch in s:
        if out and out[-1][0] == ch:
            out[-1][1].append(ch)
        else:
            out.append((ch, [ch]))
    return out


def _fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def _is_prime(n):
    if n < 2:
        return False
    d = 2
    while d * d <= n:
        if n % d == 0:
            return False
        d += 1
    return True


def _collatz(n):
    s = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        s += 1
    return s


CODEGEN_README = """\
# codegen: plan-then-code Go functions

Small Go functions with a plan, a reference completion and tests, written
for this project by `tools/examples/make_examples.py` (seeded,
deterministic).

| file | rows | format |
|---|---|---|
| `train.jsonl` | 100 | `{"prompt", "plan", "completion", "tests"}` |
| `val.jsonl` | 31 | same; no function name appears in both splits |

- `prompt`: "Write a Go function `Name(args) ret` in package solution that ...".
- `plan`: numbered steps on one line, "1. ... 2. ...", for the optional plan stage.
- `completion`: a complete Go file in a fenced block (```` ```go ... ``` ````):
  `package solution`, imports, a doc comment and the function.
- `tests`: a `_test.go` file in `package solution` with one `TestName`
  function; expected values come from a Python reference of the same
  function, so a passing test is an independent check.

Families: reductions, filters and maps over `[]int`, `(int, bool)` searches,
string functions, integer maths, parameterised FizzBuzz variants, and float
helpers from this workstation's domains (credit utilisation, VAT, invoice
line totals, score classes). Parameterised variants (`SumAbove10`,
`CountDivisibleBy7`, `PingPong`, `AddVAT19`, ...) give distinct but related
tasks.

The generator checks every completion: each split is written as one package
(one file and one test file per row), then `gofmt -l`, `go vet` and
`go test` run on it; all completions are gofmt-clean, vet-clean and pass
their tests. To check a model's completion the same way, write it as
`solution.go` and the row's `tests` as `solution_test.go` in a module and
run `go vet ./... && go test ./...`.
"""


def make_codegen(out):
    rng = rng_for("codegen")
    tasks = codegen_tasks()
    names = [t.name for t in tasks]
    assert len(names) == len(set(names)), "duplicate function names"
    rng.shuffle(tasks)
    train, val = tasks[:100], tasks[100:]
    d = os.path.join(out, "codegen")
    os.makedirs(d, exist_ok=True)
    dump_jsonl(os.path.join(d, "train.jsonl"), [t.row() for t in train])
    dump_jsonl(os.path.join(d, "val.jsonl"), [t.row() for t in val])
    write_text(os.path.join(d, "README.md"), CODEGEN_README.replace("| 31 |", f"| {len(val)} |"))
    return train, val


# ---------------------------------------------------------------------------
# 5. chat: a small assistant persona over the credit rule and invoices
# ---------------------------------------------------------------------------

CHAT_SYSTEM = ("You are Ledger, a concise assistant for a finance team. You classify customers' credit as "
               "Good, Standard or Bad and answer questions about invoices, in one or two short sentences.")

# Reference customer for explanations: how each term of the score compares with it.
CREDIT_REF = {"annual_income": 47000, "num_delayed_payments": 4, "credit_utilization": 35.0, "interest_rate": 14,
              "credit_history_months": 150, "outstanding_debt": 11750, "payment_of_min_amount": "Yes",
              "num_credit_cards": 4, "monthly_balance": 300}


def credit_terms(r):
    inc = r["annual_income"]
    return {
        "income": 1.2 * math.log2(inc / 40000.0),
        "delays": -0.30 * r["num_delayed_payments"],
        "util": -0.04 * (r["credit_utilization"] - 30.0),
        "rate": -0.07 * (r["interest_rate"] - 12),
        "history": 0.006 * (r["credit_history_months"] - 120),
        "debt": -1.6 * (r["outstanding_debt"] / inc),
        "minpay": -0.8 * (r["payment_of_min_amount"] == "Yes"),
        "cards": -0.2 * max(0, r["num_credit_cards"] - 5),
    }


def term_phrase(key, r, good):
    d = r["num_delayed_payments"]
    u = round(r["credit_utilization"])
    if key == "income":
        return f"{'a high' if good else 'a low'} income ({k_money(r['annual_income'])})"
    if key == "delays":
        if good:
            return "no late payments" if d == 0 else f"only {plural(d, 'late payment', 'late payments')}"
        return plural(d, "late payment", "late payments")
    if key == "util":
        return f"{'low' if good else 'high'} utilisation ({u}%)"
    if key == "rate":
        return f"{'a low' if good else 'a high'} interest rate ({r['interest_rate']}%)"
    if key == "history":
        return f"{'a long' if good else 'a short'} credit history ({history_str(r['credit_history_months'])})"
    if key == "debt":
        return "little debt for the income" if good else "heavy debt for the income"
    if key == "minpay":
        return "paying in full" if good else "minimum-only payments"
    return f"{'few' if good else 'many'} cards ({r['num_credit_cards']})"


FIXES = {"income": "A higher income", "delays": "Paying on time from now on",
         "util": "Bringing utilisation below 30%", "rate": "Refinancing at a lower interest rate",
         "history": "Time (a longer credit history)", "debt": "Paying down debt",
         "minpay": "Paying more than the minimum", "cards": "Closing some cards"}


def credit_explain(r):
    terms, ref = credit_terms(r), credit_terms(CREDIT_REF)
    diff = sorted(((terms[k] - ref[k], k) for k in terms), key=lambda t: (t[0], t[1]))
    neg = [k for v, k in diff if v < -0.05]
    pos = [k for v, k in reversed(diff) if v > 0.05]
    label = score_label(credit_score(r))
    if label == "Good":
        why = " and ".join(term_phrase(k, r, True) for k in pos[:2]) or "a solid profile overall"
        fix = "Nothing urgent; keep payments on time and utilisation low."
    elif label == "Bad":
        why = " and ".join(term_phrase(k, r, False) for k in neg[:2]) or "a weak profile overall"
        fix = f"{FIXES[neg[0]] if neg else 'Paying on time'} would help most."
    else:
        p = term_phrase(pos[0], r, True) if pos else "an average profile"
        n = term_phrase(neg[0], r, False) if neg else "nothing outstanding"
        why = f"{p}, but {n}"
        fix = f"{FIXES[neg[0]]} would help most." if neg else "Keeping payments on time would lift it to Good."
    return label, why, fix


CHAT_FACTS = [
    (["What makes a customer Good?", "How does a customer get a Good credit class?",
      "What does a Good customer look like?"],
     "High income, few late payments, low utilisation, a low interest rate, a long history and paying in full."),
    (["What pushes a customer to Bad?", "Which factors lead to a Bad class?", "Why would someone be rated Bad?"],
     "Several late payments, high utilisation, heavy debt for the income and minimum-only payments."),
    (["Does the monthly balance affect the credit class?", "Is monthly_balance part of the rule?"],
     "No. The month-end balance is recorded but the score ignores it."),
    (["Which credit classes are there?", "What labels can a customer get?"],
     "Three: Good, Standard and Bad."),
    (["How much does one late payment cost?", "Do late payments matter a lot?"],
     "Each late payment lowers the score by 0.3, one of the strongest effects."),
    (["Does paying only the minimum hurt?", "Is paying the minimum amount a problem?"],
     "Yes. Minimum-only payments lower the score by 0.8."),
    (["Which currencies can an invoice use?", "What currencies are allowed on invoices?"],
     "EUR, USD or GBP."),
    (["Which invoice fields are required?", "What must every extracted invoice contain?"],
     "Everything except notes: invoice_number, date, vendor, currency, total, line_items and paid."),
    (["How many line items can an invoice have?", "What is the limit on line items?"],
     "Between 1 and 5."),
    (["How long can an invoice number be?", "What is the maximum invoice number length?"],
     "Up to 20 characters."),
    (["In what format should invoice dates be?", "How do I write the invoice date?"],
     "As YYYY-MM-DD, for example 2024-03-12."),
    (["Does the invoice total include tax?", "Is the total before or after VAT?"],
     "It is the grand total, including tax."),
]
OFF_TOPIC = [("What's the weather like tomorrow?", "I can't check weather; I help with credit classes and invoices."),
             ("Can you write me a poem?", "Sorry, I only help with credit classes and invoices."),
             ("Who won the football last night?", "I don't follow sport; ask me about credit or invoices."),
             ("Tell me a joke.", "I'll stick to credit classes and invoices, sorry."),
             ("What's the best pizza topping?", "That's outside my scope; I help with credit and invoices.")]


def chat_conv(rng):
    kind = rng.choices(["classify", "classify2", "fact", "invoice", "arith", "date", "offtopic"],
                       weights=[30, 12, 14, 26, 8, 6, 4])[0]
    sysm = {"role": "system", "content": CHAT_SYSTEM}
    U = lambda c: {"role": "user", "content": c}
    A = lambda c: {"role": "assistant", "content": c}
    if kind in ("classify", "classify2"):
        r = credit_row(rng)
        label, why, fix = credit_explain(r)
        q = rng.choice(["Classify this customer: {t}", "What credit class fits? {t}", "{t} Good, Standard or Bad?",
                        "Which class for this customer? {t}"]).format(t=credit_text(r, rng))
        if kind == "classify":
            return [sysm, U(q), A(f"{label}: {why}.")]
        follow = rng.choice(["What would improve it?", "How could they move up?", "What should they work on?"])
        return [sysm, U(q), A(f"{label}: {why}."), U(follow), A(fix)]
    if kind == "fact":
        qs, a = rng.choice(CHAT_FACTS)
        return [sysm, U(rng.choice(qs)), A(a)]
    if kind == "offtopic":
        q, a = rng.choice(OFF_TOPIC)
        return [sysm, U(q), A(a)]
    if kind == "arith":
        items = [(rng.randint(1, 6), rng.randint(2, 80) * 25) for _ in range(rng.randint(2, 3))]
        vat = rng.choice([0, 20, 19, 21])
        net = sum(q * c for q, c in items)
        lines = " and ".join(f"{q} x {cents_str(c)}" for q, c in items)
        if vat:
            gross = net + (net * vat + 50) // 100
            return [sysm, U(f"What is {lines} plus {vat}% VAT?"),
                    A(f"{cents_str(gross)} ({cents_str(net)} net plus {cents_str(gross - net)} VAT).")]
        return [sysm, U(f"What is the net total of {lines}?"), A(f"{cents_str(net)}.")]
    if kind == "date":
        y, m = rng.choice([2023, 2024, 2025]), rng.randint(1, 12)
        d = rng.randint(1, DAYS_IN[m - 1])
        s = date_str(y, m, d, rng.randint(1, 3))
        return [sysm, U(rng.choice([f"Convert '{s}' to the invoice date format.", f"Write {s} as YYYY-MM-DD."])),
                A(f"{y:04d}-{m:02d}-{d:02d}")]
    f = invoice_fields(rng)
    doc = invoice_document(rng, f).strip()
    t = invoice_target(f)
    total = f"{cents_str(f['total'])} {f['cur']}"
    ask = rng.choice(["total", "paid", "vendor", "date", "items", "number"])
    q, a = {
        "total": ("What is the total of this invoice?", f"The total is {total}."),
        "paid": ("Is this invoice paid?",
                 "Yes, it is marked as paid." if f["paid"] else f"No, {total} is still due."),
        "vendor": ("Who issued this invoice?", f"{f['vendor']}."),
        "date": ("When was this invoice issued? Use YYYY-MM-DD.", t["date"]),
        "items": ("How many line items are on this invoice?",
                  f"{len(f['items'])}: " + ", ".join(desc for desc, _, _ in f["items"]) + "."),
        "number": ("What is the invoice number?", f"{f['num']}"),
    }[ask]
    return [sysm, U(f"{q}\n\n{doc}"), A(a)]


CHAT_README = """\
# chat: assistant conversations for chat-template SFT

Conversations in the `messages` form that chat templates consume, written
for this project by `tools/examples/make_examples.py` (seeded,
deterministic).

| file | rows | format |
|---|---|---|
| `train.jsonl` | 200 | `{"messages": [{"role": "system", ...}, {"role": "user", ...}, {"role": "assistant", ...}]}` |
| `val.jsonl` | 50 | same; no conversation appears in both splits |

Every conversation starts with the same system message (the "Ledger"
persona), then alternates user and assistant and ends with an assistant
turn; about one in seven has two user/assistant rounds (a follow-up), so
the loss mask has to cover every assistant turn, not only the last.

Topics: classifying a customer from a short description (the answer uses
the credit rule of `../credit` without its noise, and names the two factors
that matter most), general questions about that rule and the invoice schema,
questions on an invoice document (total, paid, vendor, date, line items,
number), VAT arithmetic, date conversion to YYYY-MM-DD, and a few
off-topic questions the persona politely declines.
"""


def make_chat(out):
    rng = rng_for("chat")
    rows, seen = [], set()
    while len(rows) < 250:
        msgs = chat_conv(rng)
        key = json.dumps(msgs)
        if key in seen:
            continue
        seen.add(key)
        rows.append({"messages": msgs})
    d = os.path.join(out, "chat")
    os.makedirs(d, exist_ok=True)
    dump_jsonl(os.path.join(d, "train.jsonl"), rows[:200])
    dump_jsonl(os.path.join(d, "val.jsonl"), rows[200:])
    write_text(os.path.join(d, "README.md"), CHAT_README)
    return rows[:200], rows[200:]


# ---------------------------------------------------------------------------
# 6. tickets: support-ticket routing (short-text classification)
# ---------------------------------------------------------------------------

TICKET_LABELS = ["billing", "technical", "account"]

# The class cue words. Every ticket holds at least one cue of its own class
# and none of another class (the self-check enforces it), so the label is
# decided by the words alone: zero label noise.
TICKET_CUES = {
    "billing": ["invoice", "charge", "charged", "refund", "payment", "card", "subscription",
                "price", "billed", "receipt", "plan"],
    "technical": ["error", "crash", "crashes", "crashed", "bug", "slow", "app", "login",
                  "loading", "freezes", "freezing", "blank", "sync", "timeout", "update"],
    "account": ["password", "email", "username", "delete", "two-factor", "2fa", "account",
                "accounts", "profile", "locked", "phone"],
}

# Core phrases, one per ticket, "?" or "." its natural end. Slots: {plan},
# {month}, {amount}, {screen}, {device}, {code}.
TICKET_CORES = {
    "billing": [
        ("i was charged twice for my {plan} subscription", "."),
        ("please refund the {amount} charge on my card", "."),
        ("my invoice for {month} shows the wrong price", "."),
        ("the payment failed on my card", "."),
        ("why did my subscription price go up in {month}", "?"),
        ("i need a copy of the invoice from {month}", "."),
        ("can i get a refund for the {month} payment", "?"),
        ("my card was charged after i cancelled the subscription", "."),
        ("the invoice total does not match my payment", "."),
        ("i was billed {amount} instead of the {plan} price", "."),
        ("where can i find the receipt for my {amount} payment", "?"),
        ("there is a {amount} charge i do not recognise", "."),
        ("how do i switch my card for the {plan} subscription", "?"),
        ("the refund for my {plan} plan never arrived", "."),
    ],
    "technical": [
        ("the app crashes when i open the {screen} page", "."),
        ("i get error {code} on the {screen} screen", "."),
        ("the login page is not loading on my {device}", "."),
        ("the app is very slow since the last update", "."),
        ("there is a bug in the {screen} screen", "."),
        ("the {screen} page keeps freezing on my {device}", "."),
        ("i only see a blank screen after the update", "."),
        ("sync fails with error {code} on my {device}", "."),
        ("why does the app crash on my {device}", "?"),
        ("the {screen} screen shows a timeout error", "."),
        ("is the {screen} page bug fixed in the next update", "?"),
        ("the app crashed twice while loading the {screen} page", "."),
        ("the login button does nothing, looks like a bug", "."),
        ("the {screen} page is so slow it freezes the app", "."),
    ],
    "account": [
        ("i forgot my password and need a reset link", "."),
        ("please change the email address on my account", "."),
        ("how do i change my username", "?"),
        ("please delete my account and all my data", "."),
        ("i lost my phone and cannot get the two-factor code", "."),
        ("how do i turn off two-factor for my account", "?"),
        ("can you merge my two accounts into one", "?"),
        ("my account is locked after too many password attempts", "."),
        ("i want to use a new email for my profile", "."),
        ("my username was taken, can i pick another one", "?"),
        ("reset my password please, the old email is gone", "."),
        ("how can i delete my profile and username", "?"),
        ("my 2fa code stopped working on my new phone", "."),
        ("please move my account to my new work email", "."),
    ],
}

TICKET_SLOTS = {
    "plan": ["basic", "pro", "team", "family", "yearly", "monthly", "starter"],
    "month": ["January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"],
    "amount": ["$12", "$49", "$99", "€15", "€30", "£20", "£45", "19.99", "120 dollars", "60 euros"],
    "screen": ["dashboard", "settings", "reports", "search", "calendar", "notifications",
               "export", "upload"],
    "device": ["iphone", "android", "laptop", "tablet", "windows pc", "mac", "chromebook"],
    "code": ["500", "403", "E42", "0x80", "503", "E7", "404"],
}
# Neutral filler: the same lists for every class, so they carry no signal.
TICKET_OPENERS = ["", "", "", "hi,", "hello,", "hey team,", "hi there,", "good morning,",
                  "quick question:", "sorry to bother you,", "urgent:", "not sure who to ask,",
                  "hello again,", "hey,", "morning all,"]
TICKET_TAILS = ["", "", "", "", "", " again", " today", " since yesterday", " this week",
                " for some reason", " once more"]
TICKET_CLOSERS = ["", "", "", "thanks", "thank you", "thanks a lot", "please help", "cheers",
                  "any help appreciated", "thanks in advance", "let me know", "kind regards",
                  "asap please", "help please"]


def ticket_typo(rng, phrase):
    """One typo in one word of a filler phrase (4+ letters): swap two inner
    letters, drop one or double one."""
    ws = phrase.split(" ")
    idx = [i for i, w in enumerate(ws) if len(re.sub(r"[^a-z]", "", w)) >= 4]
    if not idx:
        return phrase
    i = rng.choice(idx)
    w = ws[i]
    pos = [j for j in range(1, len(w) - 1) if w[j].isalpha() and w[j + 1].isalpha()]
    if not pos:
        return phrase
    j = rng.choice(pos)
    kind = rng.choice(["swap", "drop", "double"])
    if kind == "swap":
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    elif kind == "drop":
        w = w[:j] + w[j + 1:]
    else:
        w = w[:j] + w[j] + w[j:]
    ws[i] = w
    return " ".join(ws)


def sentence_case(s):
    s = re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), s)
    return re.sub(r"\bi\b", "I", s)


def ticket_text(rng, label):
    core, end = rng.choice(TICKET_CORES[label])
    core = re.sub(r"\{(\w+)\}", lambda m: rng.choice(TICKET_SLOTS[m.group(1)]), core)
    opener, tail, closer = rng.choice(TICKET_OPENERS), rng.choice(TICKET_TAILS), rng.choice(TICKET_CLOSERS)
    filler = [i for i, p in enumerate((opener, tail, closer)) if p]
    if filler and rng.random() < 0.3:  # a typo, in the filler only
        which = rng.choice(filler)
        if which == 0:
            opener = ticket_typo(rng, opener)
        elif which == 1:
            tail = ticket_typo(rng, tail)
        else:
            closer = ticket_typo(rng, closer)
    if end == "?":
        end = rng.choice(["?", "?", "?", "??", ""])
    else:
        end = rng.choice([".", ".", ".", "!", "", "..."])
    parts = [opener] if opener else []
    parts.append(core + tail + end)
    if closer:
        parts.append(closer + rng.choice(["", ".", "!", ""]))
    t = " ".join(parts)
    return t.lower() if rng.random() < 0.4 else sentence_case(t)


def ticket_key(text):
    """What counts as the same ticket: case, punctuation and spacing ignored."""
    return " ".join(re.findall(r"[a-z0-9$€£']+", text.lower()))


def ticket_words(text):
    return re.findall(r"[a-z0-9][a-z0-9'-]*", text.lower())


TICKETS_README = """\
# tickets: support-ticket routing

Short customer support tickets, each routed to one of three queues:
`billing`, `technical` or `account`. Written for this project by
`tools/examples/make_examples.py` (seeded, deterministic); no real data.
Small and easy on purpose: a tiny model trained from random initialisation
on a laptop CPU should reach 95%+ validation accuracy within a minute or two,
which makes it the set for checking that an SFT classification run learns.

| file | rows | format |
|---|---|---|
| `train.jsonl` | 600 | `{"text": "...", "label": "billing"}`, 200 per class, shuffled |
| `val.jsonl` | 150 | same, 50 per class, shuffled |

Every text is 6-14 words (split on spaces). No text appears in both splits,
not even up to case, punctuation and spacing; the validation tickets are new
combinations of the same phrases, so this measures learning the cues, not
generalising to unseen wording.

## How a ticket is built

    [opener] core phrase [tail][end] [closer]

- the **core phrase** is one of 14 templates per class, with slots filled
  from small lists (plan names, months, amounts, screens, devices, error
  codes), and carries the class cue words below; the slot lists are shared
  by the classes that use them;
- **opener** (`hi,`, `quick question:`, `sorry to bother you,` ...), **tail**
  (` again`, ` since yesterday` ...) and **closer** (`thanks`, `please help`
  ...) are neutral filler drawn from the same lists for every class;
- light variation: about 30% of tickets have one typo (swapped, dropped or
  doubled letter) in a filler word, never in the core phrase; about 60% are
  sentence-cased (capitals after sentence ends, `I`), the rest all lower
  case; the end mark varies (`.`, `!`, `...`, `?`, `??`, none).

## Class cue words

Every ticket contains at least one cue word of its own class and none of
another class (the generator's self-check enforces it), so the label is
fully determined by the words: there is no label noise.

| label | cue words |
|---|---|
{cue_rows}
"""


def make_tickets(out):
    rng = rng_for("tickets")
    seen, per = set(), {c: [] for c in TICKET_LABELS}
    for c in TICKET_LABELS:
        while len(per[c]) < 250:
            t = ticket_text(rng, c)
            k = ticket_key(t)
            if k in seen or not 6 <= words(t) <= 14:
                continue
            seen.add(k)
            per[c].append({"text": t, "label": c})
    train = [r for c in TICKET_LABELS for r in per[c][:200]]
    val = [r for c in TICKET_LABELS for r in per[c][200:]]
    rng.shuffle(train)
    rng.shuffle(val)
    d = os.path.join(out, "tickets")
    os.makedirs(d, exist_ok=True)
    dump_jsonl(os.path.join(d, "train.jsonl"), train)
    dump_jsonl(os.path.join(d, "val.jsonl"), val)
    cue_rows = "\n".join(f"| `{c}` | {', '.join(TICKET_CUES[c])} |" for c in TICKET_LABELS)
    write_text(os.path.join(d, "README.md"), TICKETS_README.replace("{cue_rows}", cue_rows))
    return train, val


# ---------------------------------------------------------------------------
# top-level README
# ---------------------------------------------------------------------------

TOP_README = """\
# Example datasets

Small datasets bundled with distill so every pipeline can be tried on a
laptop without downloading anything. All of them are synthetic and were
written for this project: `tools/examples/make_examples.py` generates them
with fixed seeds (Python standard library only), so rerunning it rewrites the
same bytes, and checks its own output. Regenerate with

    /usr/bin/python3 tools/examples/make_examples.py

(`--no-go` skips the Go build/vet/test of the codegen set; `--out DIR`
writes elsewhere.) Each folder has a README with the details.

| set | task / method | files | rows (train/val) |
|---|---|---|---|
| [`credit/`](credit/) | classification (SFT, KD, calibration) | `train.jsonl`, `val.jsonl`, `train.csv`, `text_train.jsonl`, `text_val.jsonl` | 600 / 150 (val: 50 per class) |
| [`invoices/`](invoices/) | IDP: document -> JSON under a schema | `schema.json`, `train.jsonl`, `val.jsonl` | 200 / 50 |
| [`preferences/`](preferences/) | DPO | `train.jsonl`, `val.jsonl` | 300 / 100 |
| [`codegen/`](codegen/) | plan-then-code Go generation | `train.jsonl`, `val.jsonl` | {cg_train} / {cg_val} |
| [`chat/`](chat/) | chat-template SFT | `train.jsonl`, `val.jsonl` | 200 / 50 |
| [`tickets/`](tickets/) | easy text classification (SFT proof) | `train.jsonl`, `val.jsonl` | 600 / 150 (50 per class in val) |

## Formats

All JSONL files are UTF-8, one JSON object per line.

- **credit** `{{"annual_income": 52340, "monthly_balance": 410, "num_credit_cards": 3,
  "interest_rate": 14, "num_delayed_payments": 3, "outstanding_debt": 18240,
  "credit_utilization": 71.2, "credit_history_months": 98,
  "payment_of_min_amount": "Yes", "label": "Bad"}}`; labels Good/Standard/Bad;
  `train.csv` holds the training rows with a header; the text variant is
  `{{"text": "Income 52k, balance 410/mo, 3 cards, ...", "label": "Bad"}}`
  (<= 30 words). The label comes from a hidden linear score with noise (see
  `credit/README.md`).
- **invoices** `{{"document": "<plain-text invoice>", "target": {{...}}}}`; every
  target validates against `invoices/schema.json` (JSON Schema 2020-12,
  `additionalProperties: false`, all fields required but `notes`).
- **preferences** `{{"prompt": ..., "chosen": ..., "rejected": ...}}`; prompts <= 20
  words, answers <= 15; chosen answers are polite, concise and correct.
- **codegen** `{{"prompt": ..., "plan": "1. ... 2. ...", "completion": "```go\\n...\\n```",
  "tests": "<Go test file>"}}`; completions are whole files in `package
  solution` and build, vet and pass their tests.
- **chat** `{{"messages": [{{"role": "system", "content": ...}}, {{"role": "user", ...}},
  {{"role": "assistant", ...}}, ...]}}`; one system turn, then alternating user and
  assistant turns ending with the assistant.
- **tickets** `{{"text": "Hi, the payment failed on my card. Thanks", "label": "billing"}}`;
  labels billing/technical/account, 6-14 words, balanced (200 / 50 per
  class); every text holds cue words of its own class only, so there is no
  label noise (see `tickets/README.md`).

Sizes: {sizes}.
"""


# ---------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------

SCHEMA_KEYWORDS = {"$schema", "$id", "title", "description", "type", "properties", "required",
                   "additionalProperties", "items", "minItems", "maxItems", "enum", "minimum",
                   "minLength", "maxLength", "pattern", "format"}


def type_ok(v, t):
    if t == "null":
        return v is None
    if t == "boolean":
        return isinstance(v, bool)
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "string":
        return isinstance(v, str)
    if t == "array":
        return isinstance(v, list)
    if t == "object":
        return isinstance(v, dict)
    raise ValueError(f"unknown type {t}")


def validate(v, schema, path="$"):
    """Errors of v against schema, for the keywords in SCHEMA_KEYWORDS only."""
    unknown = set(schema) - SCHEMA_KEYWORDS
    if unknown:
        raise ValueError(f"validator does not support {sorted(unknown)} at {path}")
    errs = []
    if "type" in schema:
        ts = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(type_ok(v, t) for t in ts):
            return [f"{path}: {v!r} is not of type {ts}"]
    if "enum" in schema and not any(type(v) is type(e) and v == e for e in schema["enum"]):
        errs.append(f"{path}: {v!r} not in {schema['enum']}")
    if isinstance(v, str):
        if "minLength" in schema and len(v) < schema["minLength"]:
            errs.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(v) > schema["maxLength"]:
            errs.append(f"{path}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], v):
            errs.append(f"{path}: {v!r} does not match {schema['pattern']}")
        if schema.get("format") == "date":
            m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", v)
            ok = bool(m) and 1 <= int(m.group(2)) <= 12 and 1 <= int(m.group(3)) <= (
                DAYS_IN[int(m.group(2)) - 1] + (int(m.group(2)) == 2 and int(m.group(1)) % 4 == 0))
            if not ok:
                errs.append(f"{path}: {v!r} is not a date")
    if type_ok(v, "number") and "minimum" in schema and v < schema["minimum"]:
        errs.append(f"{path}: {v} below {schema['minimum']}")
    if isinstance(v, list):
        if "minItems" in schema and len(v) < schema["minItems"]:
            errs.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(v) > schema["maxItems"]:
            errs.append(f"{path}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, x in enumerate(v):
                errs += validate(x, schema["items"], f"{path}[{i}]")
    if isinstance(v, dict):
        props = schema.get("properties", {})
        for k in schema.get("required", []):
            if k not in v:
                errs.append(f"{path}: missing {k}")
        for k, x in v.items():
            if k in props:
                errs += validate(x, props[k], f"{path}.{k}")
            elif schema.get("additionalProperties") is False:
                errs.append(f"{path}: unexpected property {k}")
    return errs


def read_jsonl(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{n}: {e}")
    return rows


def check(cond, msg):
    if not cond:
        raise SystemExit("check failed: " + msg)


def check_credit(d):
    tr, va = read_jsonl(f"{d}/train.jsonl"), read_jsonl(f"{d}/val.jsonl")
    check(len(tr) == 600 and len(va) == 150, "credit sizes")
    for r in tr + va:
        check(list(r) == CREDIT_FEATURES + ["label"], f"credit columns {list(r)}")
        check(r["label"] in CREDIT_LABELS, "credit label")
    check(all(sum(r["label"] == c for r in va) == 50 for c in CREDIT_LABELS), "credit val balance")
    with open(f"{d}/train.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    check(rows[0] == CREDIT_FEATURES + ["label"], "csv header")
    check([[str(r[k]) for k in CREDIT_FEATURES + ["label"]] for r in tr] == rows[1:], "csv rows = train.jsonl")
    ttr, tva = read_jsonl(f"{d}/text_train.jsonl"), read_jsonl(f"{d}/text_val.jsonl")
    check([t["label"] for t in ttr] == [r["label"] for r in tr], "text train labels")
    check([t["label"] for t in tva] == [r["label"] for r in va], "text val labels")
    check(max(words(t["text"]) for t in ttr + tva) <= 30, "credit text <= 30 words")
    key = lambda r: tuple(r[k] for k in CREDIT_FEATURES)
    check(not {key(r) for r in tr} & {key(r) for r in va}, "credit train/val overlap")
    acc = sum(score_label(credit_score(r)) == r["label"] for r in va) / len(va)
    dist = {c: sum(r["label"] == c for r in tr) for c in CREDIT_LABELS}
    return f"credit: train {dist}, val 50/50/50, noiseless rule accuracy on val {acc:.3f}"


def check_invoices(d):
    with open(f"{d}/schema.json", encoding="utf-8") as f:
        schema = json.load(f)
    tr, va = read_jsonl(f"{d}/train.jsonl"), read_jsonl(f"{d}/val.jsonl")
    check(len(tr) == 200 and len(va) == 50, "invoice sizes")
    for r in tr + va:
        check(list(r) == ["document", "target"], "invoice keys")
        errs = validate(r["target"], schema)
        check(not errs, f"invoice target invalid: {errs}")
        t, doc = r["target"], r["document"]
        check(t["invoice_number"] in doc and t["vendor"] in doc, "invoice number/vendor in document")
        check(all(li["description"] in doc for li in t["line_items"]), "descriptions in document")
        check(t["notes"] is None or t["notes"] in doc, "notes in document")
        sub = sum(round(li["quantity"] * li["unit_price"] * 100) for li in t["line_items"])
        check(sub <= round(t["total"] * 100) <= sub * 1.25 + 1, "total = subtotal + tax")
    # the validator must also reject bad targets
    good = tr[0]["target"]
    bad = [dict(good, currency="JPY"), dict(good, total=-1), dict(good, extra=1), dict(good, line_items=[]),
           dict(good, date="12 Mar 2024"), dict(good, paid="yes"), dict(good, invoice_number="X" * 21),
           {k: v for k, v in good.items() if k != "vendor"},
           dict(good, line_items=[dict(good["line_items"][0], quantity=1.5)]),
           dict(good, line_items=[dict(good["line_items"][0], sku="A")])]
    check(all(validate(b, schema) for b in bad), "validator rejects mutated targets")
    check(not validate(dict(good, notes=None), schema) and not validate(
        {k: v for k, v in good.items() if k != "notes"}, schema), "notes optional and nullable")
    check(not {r["document"] for r in tr} & {r["document"] for r in va}, "invoice train/val overlap")
    paid = sum(r["target"]["paid"] for r in tr + va)
    notes = sum(r["target"]["notes"] is not None for r in tr + va)
    return f"invoices: 250 targets valid, {paid} paid, {notes} with notes"


def check_preferences(d):
    tr, va = read_jsonl(f"{d}/train.jsonl"), read_jsonl(f"{d}/val.jsonl")
    check(len(tr) == 300 and len(va) == 100, "preference sizes")
    for r in tr + va:
        check(list(r) == ["prompt", "chosen", "rejected"], "preference keys")
        check(words(r["prompt"]) <= 20 and words(r["chosen"]) <= 15 and words(r["rejected"]) <= 15,
              f"preference lengths {r}")
        check(r["chosen"] != r["rejected"], "chosen != rejected")
    check(not {r["prompt"] for r in tr} & {r["prompt"] for r in va}, "preference prompt overlap")
    return "preferences: 300/100, lengths ok, no prompt overlap"


def extract_go(completion):
    m = re.fullmatch(r"```go\n(.*)```", completion, re.S)
    check(m is not None, "completion fenced as ```go")
    return m.group(1)


def check_codegen(d, run_go):
    splits = {"train": read_jsonl(f"{d}/train.jsonl"), "val": read_jsonl(f"{d}/val.jsonl")}
    names = {}
    for split, rows in splits.items():
        for r in rows:
            check(list(r) == ["prompt", "plan", "completion", "tests"], "codegen keys")
            check(r["plan"].startswith("1. "), "plan numbered")
            m = re.search(r"^func (\w+)\(", extract_go(r["completion"]), re.M)
            names.setdefault(split, []).append(m.group(1))
    check(not set(names["train"]) & set(names["val"]), "codegen name overlap")
    if not run_go:
        return "codegen: Go checks skipped (--no-go)"
    go = shutil.which("go") or "/usr/local/go/bin/go"
    check(os.path.exists(go), "go not found (use --no-go to skip)")
    gofmt = os.path.join(os.path.dirname(os.path.realpath(go)), "gofmt")
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod", CGO_ENABLED="0", GO111MODULE="on")
    with tempfile.TemporaryDirectory(prefix="distill-examples-") as tmp:
        write_text(f"{tmp}/go.mod", "module distill.local/examplecheck\n\ngo 1.22\n")
        for split, rows in splits.items():
            os.makedirs(f"{tmp}/{split}")
            for i, (r, name) in enumerate(zip(rows, names[split])):
                write_text(f"{tmp}/{split}/r{i:03d}_{name.lower()}.go", extract_go(r["completion"]))
                write_text(f"{tmp}/{split}/r{i:03d}_{name.lower()}_test.go", r["tests"])
        for cmd in ([gofmt, "-l", "."], [go, "build", "./..."], [go, "vet", "./..."],
                    [go, "test", "-count=1", "./..."]):
            p = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
            check(p.returncode == 0 and not (cmd[0] == gofmt and p.stdout.strip()),
                  f"{' '.join(os.path.basename(c) for c in cmd[:2])}:\n{p.stdout}{p.stderr}")
    n = sum(len(v) for v in splits.values())
    return f"codegen: {n} completions gofmt-clean, build, vet and pass their tests"


def check_chat(d):
    tr, va = read_jsonl(f"{d}/train.jsonl"), read_jsonl(f"{d}/val.jsonl")
    check(len(tr) == 200 and len(va) == 50, "chat sizes")
    for r in tr + va:
        m = r["messages"]
        check(m[0]["role"] == "system" and len(m) % 2 == 1, "chat starts with system")
        check(all(x["role"] == ("user" if i % 2 == 0 else "assistant") for i, x in enumerate(m[1:])),
              "chat alternates user/assistant")
        check(all(list(x) == ["role", "content"] and x["content"] for x in m), "chat message keys")
    key = lambda r: json.dumps(r["messages"])
    check(not {key(r) for r in tr} & {key(r) for r in va}, "chat overlap")
    multi = sum(len(r["messages"]) > 3 for r in tr + va)
    return f"chat: 250 conversations, {multi} with two rounds"


def naive_bayes_accuracy(train, val):
    """Bag-of-words multinomial naive Bayes (add-one smoothing) fit on train,
    accuracy on val: a floor for what a small model can reach."""
    counts = {c: {} for c in TICKET_LABELS}
    totals = {c: 0 for c in TICKET_LABELS}
    for r in train:
        for w in ticket_words(r["text"]):
            counts[r["label"]][w] = counts[r["label"]].get(w, 0) + 1
            totals[r["label"]] += 1
    vocab = set().union(*counts.values())
    prior = {c: math.log(sum(r["label"] == c for r in train) / len(train)) for c in TICKET_LABELS}

    def score(text, c):
        return prior[c] + sum(math.log((counts[c].get(w, 0) + 1) / (totals[c] + len(vocab)))
                              for w in ticket_words(text))

    hits = sum(max(TICKET_LABELS, key=lambda c: score(r["text"], c)) == r["label"] for r in val)
    return hits / len(val)


def check_tickets(d):
    tr, va = read_jsonl(f"{d}/train.jsonl"), read_jsonl(f"{d}/val.jsonl")
    check(len(tr) == 600 and len(va) == 150, "ticket sizes")
    for r in tr + va:
        check(list(r) == ["text", "label"] and r["label"] in TICKET_LABELS, f"ticket row {r}")
        check(6 <= words(r["text"]) <= 14, f"ticket 6-14 words: {r['text']!r}")
        ws = set(ticket_words(r["text"]))
        for c in TICKET_LABELS:
            hit = ws & set(TICKET_CUES[c])
            check(bool(hit) == (c == r["label"]),
                  f"ticket cues: {r['text']!r} ({r['label']}) has {c} cues {sorted(hit)}")
    check(all(sum(r["label"] == c for r in tr) == 200 for c in TICKET_LABELS), "ticket train balance")
    check(all(sum(r["label"] == c for r in va) == 50 for c in TICKET_LABELS), "ticket val balance")
    trk = [ticket_key(r["text"]) for r in tr]
    vak = [ticket_key(r["text"]) for r in va]
    check(len(set(trk)) == len(trk) and len(set(vak)) == len(vak), "ticket duplicates within a split")
    check(not set(trk) & set(vak), "ticket train/val overlap")
    check(len({r["label"] for r in tr[:30]}) == 3, "ticket train shuffled")
    used = set().union(*(ticket_words(r["text"]) for r in tr))
    check(all(w in used for c in TICKET_LABELS for w in TICKET_CUES[c]), "every ticket cue occurs in train")
    acc = naive_bayes_accuracy(tr, va)
    check(acc >= 0.95, f"ticket naive Bayes val accuracy {acc:.3f} < 0.95")
    n = [words(r["text"]) for r in tr + va]
    return (f"tickets: 600/150 balanced, {min(n)}-{max(n)} words, cues exclusive, no overlap, "
            f"naive Bayes val accuracy {acc:.3f}")


# ---------------------------------------------------------------------------

SETS = ["credit", "invoices", "preferences", "codegen", "chat", "tickets"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "examples"), help="output folder (default examples/)")
    ap.add_argument("--no-go", action="store_true", help="skip the Go checks of the codegen set")
    args = ap.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    for s in SETS:  # only our own set folders: stale files do not survive a rerun
        shutil.rmtree(os.path.join(out, s), ignore_errors=True)
    make_credit(out)
    make_invoices(out)
    make_preferences(out)
    _, cg_val = make_codegen(out)
    make_chat(out)
    make_tickets(out)

    sizes = []
    for s in SETS:
        n = sum(os.path.getsize(os.path.join(out, s, f)) for f in os.listdir(os.path.join(out, s)))
        sizes.append(f"{s} {n / 1024:.0f} KiB")
    write_text(os.path.join(out, "README.md"),
               TOP_README.format(cg_train=100, cg_val=len(cg_val), sizes=", ".join(sizes)))

    report = [check_credit(f"{out}/credit"), check_invoices(f"{out}/invoices"),
              check_preferences(f"{out}/preferences"), check_codegen(f"{out}/codegen", not args.no_go),
              check_chat(f"{out}/chat"), check_tickets(f"{out}/tickets")]
    total = 0
    for dirpath, _, files in os.walk(out):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    check(total < 2 * 1024 * 1024, f"total size {total} over 2 MiB")
    for line in report:
        print(line)
    print(f"wrote {out} ({total / 1024:.0f} KiB; {', '.join(sizes)})")


if __name__ == "__main__":
    main()
