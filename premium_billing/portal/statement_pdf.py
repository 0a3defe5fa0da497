"""The statement of account as a PDF (fpdf2: pure Python, no system libraries), the same
figures as the printable page (`accounts.statement_of_account.statement`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from fpdf import FPDF

from premium_billing.money import format_major

# The PDF's built-in fonts cover Latin-1; anything else is shown as '?'.
_WIDE = str.maketrans({"—": "-", "–": "-", "·": "-", "’": "'", "“": '"', "”": '"', "…": "..."})


def _text(value: object) -> str:
    return str(value).translate(_WIDE).encode("latin-1", "replace").decode("latin-1")


def statement_pdf(s: dict[str, Any], insurer: str, issued_on: date) -> bytes:
    """The statement `s` (as `statement` returns it) as PDF bytes, A4, per currency a table
    of date, reference, description, amount and running balance."""
    money: Callable[[int, str], str] = lambda amount, currency: format_major(  # noqa: E731
        amount, currency, thousands=True
    )
    pdf = FPDF(format="A4")
    pdf.set_title(_text(f"Statement of account - {s['name']}"))
    pdf.set_author(_text(insurer))
    pdf.set_creator("premium-billing")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 8, _text(insurer), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 8, "Statement of account", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.cell(0, 6, _text(s["name"]), new_x="LMARGIN", new_y="NEXT")
    period = f"{s['from_'].isoformat()} to {s['to'].isoformat()} (issued {issued_on.isoformat()})"
    pdf.cell(0, 6, period, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    widths = (24, 34, 72, 30, 30)
    if not s["accounts"]:
        pdf.cell(0, 6, "No charges or payments.", new_x="LMARGIN", new_y="NEXT")
    for account in s["accounts"]:
        currency = account["currency"]
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(0, 7, currency, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "B", 9)
        for width, title, align in zip(
            widths, ("Date", "Reference", "Description", "Amount", "Balance"), "LLLRR",
            strict=True,
        ):  # fmt: skip
            pdf.cell(width, 6, title, border="B", align=align)
        pdf.ln()
        pdf.set_font("Helvetica", "", 9)
        pdf.cell(sum(widths[:4]), 6, "Opening balance")
        pdf.cell(widths[4], 6, money(account["opening_balance"], currency), align="R")
        pdf.ln()
        for line in account["lines"]:
            cells = (
                line["date"].isoformat(),
                line["reference"],
                line["description"][:48],
                money(line["amount"], currency),
                money(line["balance"], currency),
            )
            for width, value, align in zip(widths, cells, "LLLRR", strict=True):
                pdf.cell(width, 6, _text(value), align=align)
            pdf.ln()
        pdf.set_font("Helvetica", "B", 9)
        closing = account["closing_balance"]
        label = "Closing balance" + (" (in your credit)" if closing < 0 else "")
        pdf.cell(sum(widths[:4]), 7, label, border="T")
        pdf.cell(widths[4], 7, money(closing, currency), border="T", align="R")
        pdf.ln(10)
    return bytes(pdf.output())
