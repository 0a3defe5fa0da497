"""ISO 20022 CAMT.053 (BankToCustomerStatement) files, any version 001.02 and later.

Standard library only: `xml.etree.ElementTree.XMLPullParser`, fed in chunks, every `Ntry`
dropped from the tree once read, so a large file streams in bounded memory. A DOCTYPE (and
with it every entity declaration, the "billion laughs" bomb, external entities) is refused
before the parser sees it; files must be UTF-8, as ISO 20022 messages are.

Two passes over the file: the first reads the statements' headers (account, currency,
opening and closing booked balances, which a multi-day file spreads over several `Stmt`),
the second yields the entries. A non-seekable stream is spooled to a temporary file first.
"""

from __future__ import annotations

import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import IO, Any, BinaryIO

from premium_billing.errors import InvalidAmount
from premium_billing.money import format_major, is_currency, parse_major
from premium_billing.reconciliation.bank_files.records import (
    OccurrenceCounter,
    Statement,
    StatementError,
    StatementLine,
    derive_reference,
    unique_reference,
)

NAMESPACE_PREFIX = "urn:iso:std:iso:20022:tech:xsd:camt.053.001."
CHUNK_SIZE = 64 * 1024
SPOOL_IN_MEMORY = 8 * 1024 * 1024
_FORBIDDEN = (b"<!DOCTYPE", b"<!ENTITY")
# Entries that are not (yet) booked are not money on the account.
_NOT_BOOKED = {"PDNG", "INFO", "FUTR"}


@dataclass
class _StatementHeader:
    account: str | None
    currency: str | None
    opening: int | None
    closing: int | None


def read_camt053(stream: BinaryIO) -> Statement:
    """Read a CAMT.053 file. The stream must stay open until `lines` is consumed."""
    source, start = _rewindable(stream)
    try:
        headers = _read_headers(source, start)
    except BaseException:
        if source is not stream:
            source.close()
        raise
    accounts = {h.account for h in headers}
    currencies = {h.currency for h in headers if h.currency}
    single = len(accounts) == 1 and len(currencies) <= 1
    return Statement(
        format="camt053",
        account=headers[0].account if single else None,
        currency=next(iter(currencies)) if len(currencies) == 1 else None,
        opening_balance=headers[0].opening if single else None,
        closing_balance=headers[-1].closing if single else None,
        lines=_entries(source, start, headers)
        if source is stream
        else _ClosingIterator(_entries(source, start, headers), source),
    )


class _ClosingIterator(Iterator[StatementLine]):
    """Iterates `lines`, closing our spooled copy of the upload when done or dropped."""

    def __init__(self, lines: Iterator[StatementLine], spool: IO[bytes]) -> None:
        self._lines = lines
        self._spool: IO[bytes] | None = spool

    def __next__(self) -> StatementLine:
        try:
            return next(self._lines)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def __del__(self) -> None:
        self.close()


# -- streaming --------------------------------------------------------------------------


def _rewindable(stream: BinaryIO) -> tuple[IO[bytes], int]:
    try:
        if stream.seekable():
            return stream, stream.tell()
    except (AttributeError, OSError, ValueError):
        pass
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    shutil.copyfileobj(stream, spool)
    spool.seek(0)
    return spool, 0


def _events(source: IO[bytes], start: int) -> Iterator[tuple[ET.Element, list[ET.Element]]]:
    """Each closed Ntry and Stmt element with its open ancestors; a DOCTYPE is refused."""
    source.seek(start)
    parser = ET.XMLPullParser(events=("start", "end"))  # type: ignore[var-annotated]
    stack: list[ET.Element] = []
    wanted: set[str] = set()
    in_prolog = True
    carry = b""
    first = True
    while True:
        chunk = source.read(CHUNK_SIZE)
        if first:
            _check_encoding(chunk)
            first = False
        if in_prolog and chunk:
            window = carry + chunk
            for forbidden in _FORBIDDEN:
                if forbidden in window:
                    raise StatementError(
                        "the XML has a DOCTYPE / entity declarations, which are refused"
                    )
            carry = window[-16:]
        try:
            if chunk:
                parser.feed(chunk)
            else:
                parser.close()
            events: list[Any] = list(parser.read_events())
        except ET.ParseError as exc:
            raise StatementError(f"not well-formed XML: {exc}") from None
        for event, element in events:
            if event == "start":
                if in_prolog:
                    in_prolog = False
                    namespace = _namespace(element)
                    wanted = {f"{{{namespace}}}Ntry", f"{{{namespace}}}Stmt"}
                stack.append(element)
            else:
                stack.pop()
                if element.tag in wanted:
                    yield element, stack
        if not chunk:
            break
    if in_prolog:
        raise StatementError("the file holds no XML element")


def _check_encoding(head: bytes) -> None:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head[:64]:
        raise StatementError("CAMT.053 files must be UTF-8 (this one looks like UTF-16/32)")


def _namespace(element: ET.Element) -> str:
    tag = element.tag
    namespace = tag[1:].split("}", 1)[0] if tag.startswith("{") else ""
    if not namespace.startswith(NAMESPACE_PREFIX) or _local(tag) != "Document":
        raise StatementError(
            f"not a CAMT.053 document (root {tag!r}, expected the namespace {NAMESPACE_PREFIX}NN)",
            element=_local(tag),
        )
    return namespace


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


@lru_cache(maxsize=64)
def _ns_of(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


@lru_cache(maxsize=512)
def _qualified(namespace: str, path: str) -> tuple[str, ...]:
    return tuple(f"{{{namespace}}}{part}" for part in path.split("/"))


def _find(element: ET.Element, path: str) -> ET.Element | None:
    found: ET.Element = element
    for tag in _qualified(_ns_of(element.tag), path):
        child = found.find(tag)  # a single tag: the C fast path, no ElementPath
        if child is None:
            return None
        found = child
    return found


def _findall(element: ET.Element, path: str) -> list[ET.Element]:
    level = [element]
    for tag in _qualified(_ns_of(element.tag), path):
        level = [child for parent in level for child in parent.iterfind(tag)]
        if not level:
            break
    return level


def _text(element: ET.Element, path: str) -> str | None:
    found = _find(element, path)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


# -- pass 1: statement headers ----------------------------------------------------------


def _read_headers(source: IO[bytes], start: int) -> list[_StatementHeader]:
    headers: list[_StatementHeader] = []
    for element, stack in _events(source, start):
        if _local(element.tag) == "Ntry":
            stack[-1].remove(element)
        else:
            headers.append(_header(element, len(headers) + 1))
            stack[-1].remove(element)
    if not headers:
        raise StatementError("no Stmt element: not a bank-to-customer statement")
    return headers


def _header(stmt: ET.Element, index: int) -> _StatementHeader:
    path = f"Stmt[{index}]"
    account = _text(stmt, "Acct/Id/IBAN") or _text(stmt, "Acct/Id/Othr/Id")
    currency = _text(stmt, "Acct/Ccy")
    opening = closing = previous_closing = None
    for number, balance in enumerate(_findall(stmt, "Bal"), start=1):
        code = _text(balance, "Tp/CdOrPrtry/Cd") or _text(balance, "Tp/CdOrPrtry/Prtry")
        if code not in ("OPBD", "CLBD", "PRCD"):
            continue
        amount, balance_currency = _amount(balance, f"{path}/Bal[{number}]")
        indicator = _text(balance, "CdtDbtInd")
        if indicator not in ("CRDT", "DBIT"):
            raise StatementError(
                f"{indicator!r} is neither CRDT nor DBIT", element=f"{path}/Bal[{number}]/CdtDbtInd"
            )
        signed = -amount if indicator == "DBIT" else amount
        currency = currency or balance_currency
        if code == "OPBD" and opening is None:
            opening = signed
        elif code == "PRCD" and previous_closing is None:
            previous_closing = signed
        elif code == "CLBD" and closing is None:
            closing = signed
    if currency is not None and not is_currency(currency):
        raise StatementError(f"unknown currency {currency!r}", element=f"{path}/Acct/Ccy")
    return _StatementHeader(
        account=account,
        currency=currency,
        opening=opening if opening is not None else previous_closing,
        closing=closing,
    )


def _amount(parent: ET.Element, path: str) -> tuple[int, str]:
    element = _find(parent, "Amt")
    if element is None:
        raise StatementError("missing", element=f"{path}/Amt")
    currency = (element.get("Ccy") or "").strip()
    if not is_currency(currency):
        raise StatementError(f"unknown currency {currency!r}", element=f"{path}/Amt")
    text = (element.text or "").strip()
    if text.startswith(("-", "+")):
        raise StatementError(f"amount {text!r} must not carry a sign", element=f"{path}/Amt")
    try:
        return parse_major(text, currency), currency
    except InvalidAmount as exc:
        if "decimals" in exc.message:
            reason = f"amount {text!r} has more decimals than {currency} allows"
        else:
            reason = f"amount {text!r} is not a number"
        raise StatementError(reason, element=f"{path}/Amt") from None


# -- pass 2: entries --------------------------------------------------------------------


def _entries(
    source: IO[bytes], start: int, headers: list[_StatementHeader]
) -> Iterator[StatementLine]:
    references = OccurrenceCounter()
    derived = OccurrenceCounter()
    statement_index = 0
    entry_index = 0
    for element, stack in _events(source, start):
        if _local(element.tag) == "Ntry":
            entry_index += 1
            header = headers[min(statement_index, len(headers) - 1)]
            lines = _entry(element, entry_index, header, references, derived)
            stack[-1].remove(element)
            yield from lines
        else:
            statement_index += 1
            stack[-1].remove(element)


def _date(parent: ET.Element, tag: str, path: str) -> date | None:
    element = _find(parent, tag)
    if element is None:
        return None
    text = _text(element, "Dt")
    if text is None:
        date_time = _text(element, "DtTm")
        text = date_time[:10] if date_time else None
    if text is None:
        raise StatementError("has neither Dt nor DtTm", element=f"{path}/{tag}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise StatementError(f"{text!r} is not a date", element=f"{path}/{tag}") from None


def _unique(parts: list[str]) -> list[str]:
    return list(dict.fromkeys(p for p in parts if p))


def _all_texts(elements: list[ET.Element], path: str) -> list[str]:
    found: list[str] = []
    for element in elements:
        for item in _findall(element, path):
            if item.text and item.text.strip():
                found.append(" ".join(item.text.split()))
    return found


def _entry(
    entry: ET.Element,
    index: int,
    header: _StatementHeader,
    references: OccurrenceCounter,
    derived: OccurrenceCounter,
) -> list[StatementLine]:
    """The lines of one booked entry: itself, or each of its transaction details when it
    books a batch (several TxDtls: a Swiss QR/ISR batch, a SEPA batch booking, a batched
    return), each with its own amount, payer, reference and bank reference."""
    path = f"Ntry[{index}]"
    amount, currency = _amount(entry, path)
    indicator = _text(entry, "CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        raise StatementError(f"{indicator!r} is neither CRDT nor DBIT", element=f"{path}/CdtDbtInd")
    status = _text(entry, "Sts") or _text(entry, "Sts/Cd")
    if status in _NOT_BOOKED:
        return []
    signed = -amount if indicator == "DBIT" else amount

    booking_date = _date(entry, "BookgDt", path)
    value_date = _date(entry, "ValDt", path)
    if booking_date is None:
        if value_date is None:
            raise StatementError("missing (and no ValDt either)", element=f"{path}/BookgDt")
        booking_date = value_date

    transactions = _findall(entry, "NtryDtls/TxDtls")
    reversal = (_text(entry, "RvslInd") or "").lower() in ("true", "1")
    code = _bank_transaction_code(entry)
    entry_reference = _text(entry, "AcctSvcrRef") or _text(entry, "NtryRef")

    def line(parts: list[ET.Element], amount: int, bank_reference: str | None) -> StatementLine:
        reasons = _unique(
            _all_texts(parts, "RtrInf/Rsn/Cd") + _all_texts(parts, "RtrInf/Rsn/Prtry")
        )
        is_return = reversal or any(_find(tx, "RtrInf") is not None for tx in parts)
        reference = " ".join(_remittance(parts, entry))
        direction = indicator if amount == signed else ("DBIT" if amount < 0 else "CRDT")
        payer_name, payer_account = _counterparty(parts, direction, is_return, header.account)
        if bank_reference is None:
            # Payer-assigned ids (EndToEndId, InstrId, MndtId) are not unique over time (a
            # payer may send EndToEndId "115" every month): they identify the line only
            # together with the date, amount and direction.
            payer_ids = _all_texts(parts, "Refs/EndToEndId") + _all_texts(parts, "Refs/InstrId")
            bank_reference = derive_reference(
                derived,
                "camt053",
                header.account,
                booking_date,
                amount,
                currency,
                reversal,
                ",".join(payer_ids),
                _derivation_text(parts, entry),
            )
        return StatementLine(
            line_no=index,
            booking_date=booking_date,
            value_date=value_date,
            amount=amount,
            currency=currency,
            payer_name=payer_name,
            payer_account=payer_account,
            reference=reference,
            bank_reference=bank_reference,
            is_return=is_return,
            return_reason=", ".join(reasons) or None,
            bank_transaction_code=code,
            names=tuple(_transaction_ids(parts)) if is_return else (),
        )

    # A batch whose details carry no amount at all cannot be split: one line, as booked.
    itemised = any(_find(tx, tag) is not None for tx in transactions for tag in _DETAIL_AMOUNTS)
    if len(transactions) < 2 or not itemised:
        bank_reference = (
            entry_reference
            or next(iter(_all_texts(transactions, "Refs/AcctSvcrRef")), None)
            or next(iter(_all_texts(transactions, "Refs/TxId")), None)
        )
        if bank_reference:
            bank_reference = unique_reference(references, header.account, bank_reference)
        return [line(transactions, signed, bank_reference)]

    # A batch: the details must add up to the entry, else the file is refused.
    amounts = [
        _detail_amount(tx, currency, indicator, f"{path}/NtryDtls/TxDtls[{n}]")
        for n, tx in enumerate(transactions, start=1)
    ]
    if sum(amounts) != signed:
        raise StatementError(
            f"its {len(transactions)} transaction details add up to"
            f" {format_major(sum(amounts), currency)} {currency},"
            f" not the entry's {format_major(signed, currency)} {currency}",
            element=path,
        )
    ids = [_detail_id(tx) for tx in transactions]
    seen = [i for i in ids if i is not None]
    if entry_reference:
        base = unique_reference(references, header.account, entry_reference)
    else:
        base = derive_reference(
            derived,
            "camt053-batch",
            header.account,
            booking_date,
            signed,
            currency,
            reversal,
            ",".join(i or "" for i in ids),
        )
    lines = []
    for position, (tx, detail_amount, detail_id) in enumerate(
        zip(transactions, amounts, ids, strict=True), start=1
    ):
        if detail_id is None or seen.count(detail_id) > 1:
            detail_id = str(position)  # no id of its own, or one its batch repeats
        reference = unique_reference(references, header.account, f"{base}/{detail_id}")
        lines.append(line([tx], detail_amount, reference))
    return lines


_DETAIL_AMOUNTS = ("Amt", "AmtDtls/TxAmt/Amt", "AmtDtls/CntrValAmt/Amt")


def _detail_amount(tx: ET.Element, currency: str, indicator: str, path: str) -> int:
    """A batch detail's signed amount in the entry's currency: its Amt (001.04 on), else
    AmtDtls/TxAmt (001.02); its own CdtDbtInd, else the entry's."""
    for tag in _DETAIL_AMOUNTS:
        element = _find(tx, tag)
        if element is None or (element.get("Ccy") or "").strip() != currency:
            continue
        parent_path, _, _ = tag.rpartition("/")
        parent = _find(tx, parent_path) if parent_path else tx
        assert parent is not None
        amount, _ = _amount(parent, f"{path}/{parent_path}" if parent_path else path)
        own = _text(tx, "CdtDbtInd") or indicator
        if own not in ("CRDT", "DBIT"):
            raise StatementError(f"{own!r} is neither CRDT nor DBIT", element=f"{path}/CdtDbtInd")
        return -amount if own == "DBIT" else amount
    raise StatementError(f"a batch detail without an amount in {currency}", element=path)


def _detail_id(tx: ET.Element) -> str | None:
    """A batch detail's own id: EndToEndId (unless NOTPROVIDED), AcctSvcrRef, TxId."""
    for tag in ("Refs/EndToEndId", "Refs/AcctSvcrRef", "Refs/TxId"):
        value = _text(tx, tag)
        if value and value.upper() != "NOTPROVIDED":
            return value
    return None


def _transaction_ids(transactions: list[ET.Element]) -> list[str]:
    """The ids a returned item names of the payment it returns (EndToEndId, TxId, ...)."""
    ids: list[str] = []
    for tag in (
        "Refs/EndToEndId",
        "Refs/TxId",
        "Refs/InstrId",
        "Refs/AcctSvcrRef",
        "RtrInf/OrgnlBkTxCd",
    ):
        ids.extend(_all_texts(transactions, tag))
    return [i for i in _unique(ids) if i.upper() != "NOTPROVIDED"]


def _derivation_text(transactions: list[ET.Element], entry: ET.Element) -> str:
    """The remittance text as the derived bank references of earlier versions read it
    (unstructured first): a file imported before gets the same references again."""
    text = _unique(
        _all_texts(transactions, "RmtInf/Ustrd")
        + _all_texts(transactions, "RmtInf/Strd/CdtrRefInf/Ref")
    )
    text = text or _unique(_all_texts(transactions, "AddtlTxInf"))
    return " ".join(text or _unique(_all_texts([entry], "AddtlNtryInf")))


def _remittance(transactions: list[ET.Element], entry: ET.Element) -> list[str]:
    """The remittance: structured creditor references (RF, QR, ISR) and referred document
    numbers first, then the unstructured text; else AddtlTxInf, else AddtlNtryInf."""
    remittance = _unique(
        _all_texts(transactions, "RmtInf/Strd/CdtrRefInf/Ref")
        + _all_texts(transactions, "RmtInf/Strd/RfrdDocInf/Nb")
        + _all_texts(transactions, "RmtInf/Ustrd")
    )
    if not remittance:
        remittance = _unique(_all_texts(transactions, "AddtlTxInf"))
    if not remittance:
        remittance = _unique(_all_texts([entry], "AddtlNtryInf"))
    return remittance


def _counterparty(
    transactions: list[ET.Element], indicator: str, is_return: bool, own_account: str | None
) -> tuple[str | None, str | None]:
    """The other party: the debtor of a credit, the creditor of a debit.

    A returned item lists the parties of the original payment, so the other side comes
    first there (the debtor of a returned direct debit is the policyholder).
    """
    sides = [("Dbtr", "DbtrAcct"), ("Cdtr", "CdtrAcct")]
    if indicator == "DBIT":
        sides.reverse()
    if is_return:
        sides.reverse()
    else:
        sides = sides[:1]
    for party, account_tag in sides:
        for tx in transactions:
            name = (
                _text(tx, f"RltdPties/{party}/Nm")
                or _text(tx, f"RltdPties/{party}/Pty/Nm")
                or _text(tx, f"RltdPties/Ultmt{party}/Nm")
                or _text(tx, f"RltdPties/Ultmt{party}/Pty/Nm")
            )
            account = _text(tx, f"RltdPties/{account_tag}/Id/IBAN") or _text(
                tx, f"RltdPties/{account_tag}/Id/Othr/Id"
            )
            if account is not None and own_account is not None and account == own_account:
                continue
            if name or account:
                return name, account
    return None, None


def _bank_transaction_code(entry: ET.Element) -> str | None:
    domain = _text(entry, "BkTxCd/Domn/Cd")
    if domain:
        family = _text(entry, "BkTxCd/Domn/Fmly/Cd")
        sub_family = _text(entry, "BkTxCd/Domn/Fmly/SubFmlyCd")
        return "/".join(part for part in (domain, family, sub_family) if part)
    return _text(entry, "BkTxCd/Prtry/Cd")
