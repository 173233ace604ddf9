"""OFAC SDN list parsing (the published XML format) and screening of names (fuzzy) and digital
currency addresses (exact)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from defusedxml import ElementTree
from django.conf import settings
from rapidfuzz import fuzz, process

from compliance.models import SanctionsAddress, SanctionsEntry, SanctionsList, SanctionsName
from compliance.validation import InvalidInput, normalize_sanctioned_address

ADDRESS_THRESHOLD = Decimal("100")
_DIGITAL_CURRENCY = "Digital Currency Address - "
# Legal-form words carry no identity; leaving them in lets "X LTD" vs "X LLC" score lower than it should.
_LEGAL_FORMS = {
    "LLC", "LTD", "LIMITED", "INC", "INCORPORATED", "CORP", "CORPORATION", "CO", "COMPANY", "GMBH", "AG", "SA",
    "PLC", "LP", "LLP", "OU", "OOO", "ZAO", "OAO", "PJSC", "JSC", "BV", "NV", "SRL", "SPA", "THE",
}


def name_threshold() -> Decimal:
    return Decimal(str(getattr(settings, "COMPLIANCE_SANCTIONS_NAME_THRESHOLD", "88")))


def normalize_name(name: str) -> str:
    text = unicodedata.normalize("NFKD", name or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).upper()
    text = re.sub(r"[^A-Z0-9 ]+", " ", text)
    words = [w for w in text.split() if w not in _LEGAL_FORMS]
    return " ".join(words)


@dataclass
class ParsedEntry:
    uid: int
    name: str
    sdn_type: str
    programs: list[str]
    remarks: str
    aliases: list[tuple[str, bool]] = field(default_factory=list)  # (name, weak)
    addresses: list[tuple[str, str]] = field(default_factory=list)  # (currency, address)


@dataclass
class ParsedList:
    publish_date: date | None
    record_count: int
    entries: list[ParsedEntry]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(node, name: str):
    for child in node:
        if _local(child.tag) == name:
            return child
    return None


def _text(node, name: str) -> str:
    child = _child(node, name)
    return (child.text or "").strip() if child is not None and child.text else ""


def _children(node, name: str):
    return [c for c in node if _local(c.tag) == name]


def _full_name(node) -> str:
    return " ".join(part for part in (_text(node, "firstName"), _text(node, "lastName")) if part)


def parse_sdn_xml(content: bytes) -> ParsedList:
    """Parse sdn.xml as published by OFAC (namespace-agnostic: the namespace URI has changed over time)."""
    try:
        root = ElementTree.fromstring(content)
    except Exception as exc:  # noqa: BLE001 - defusedxml raises several unrelated types
        raise InvalidInput(f"not a well-formed SDN XML file: {exc}", code="invalid_sanctions_file") from None
    if _local(root.tag) != "sdnList":
        raise InvalidInput("the root element is not sdnList", code="invalid_sanctions_file")
    publish_date = None
    info = _child(root, "publshInformation")  # sic: OFAC's element name
    raw_count = _text(info, "Record_Count") if info is not None else ""
    # The publisher's count is what proves the file whole; a file that does not state it is not trusted.
    if not raw_count.isdigit():
        raise InvalidInput("the file does not state its Record_Count (publshInformation)",
                           code="invalid_sanctions_file")
    record_count = int(raw_count)
    raw_date = _text(info, "Publish_Date")
    if raw_date:
        try:
            publish_date = datetime.strptime(raw_date, "%m/%d/%Y").date()
        except ValueError:
            raise InvalidInput(f"bad Publish_Date {raw_date!r}", code="invalid_sanctions_file") from None
    entries = []
    for node in _children(root, "sdnEntry"):
        uid_text = _text(node, "uid")
        if not uid_text.isdigit():
            raise InvalidInput("an sdnEntry has no numeric uid", code="invalid_sanctions_file")
        programs_node = _child(node, "programList")
        entry = ParsedEntry(
            uid=int(uid_text), name=_full_name(node), sdn_type=_text(node, "sdnType"),
            programs=[(p.text or "").strip() for p in _children(programs_node, "program")] if programs_node is not None
            else [],
            remarks=_text(node, "remarks"),
        )
        aka_list = _child(node, "akaList")
        for aka in _children(aka_list, "aka") if aka_list is not None else []:
            alias = _full_name(aka)
            if alias:
                entry.aliases.append((alias, _text(aka, "category").lower() == "weak"))
        id_list = _child(node, "idList")
        for ident in _children(id_list, "id") if id_list is not None else []:
            id_type = _text(ident, "idType")
            number = _text(ident, "idNumber")
            if id_type.startswith(_DIGITAL_CURRENCY) and number:
                entry.addresses.append((id_type[len(_DIGITAL_CURRENCY):].strip(), number))
        entries.append(entry)
    # A truncated download parses fine but is short; the publisher states the count, so hold it to that.
    if record_count != len(entries):
        raise InvalidInput(f"the file states {record_count} records but holds {len(entries)}",
                           code="invalid_sanctions_file")
    if len({e.uid for e in entries}) != len(entries):
        raise InvalidInput("duplicate sdnEntry uids", code="invalid_sanctions_file")
    return ParsedList(publish_date=publish_date, record_count=record_count, entries=entries)


def store_list(*, parsed: ParsedList, source: str, sha256: str, imported_by, is_current: bool = True,
               compared_to: SanctionsList | None = None) -> SanctionsList:
    sanctions_list = SanctionsList.objects.create(
        source=source, publish_date=parsed.publish_date, record_count=parsed.record_count,
        entry_count=len(parsed.entries), sha256=sha256, is_current=is_current, held=not is_current,
        compared_to=compared_to, imported_by=imported_by)
    entries = SanctionsEntry.objects.bulk_create([
        SanctionsEntry(sanctions_list=sanctions_list, uid=e.uid, name=e.name[:500], sdn_type=e.sdn_type,
                       programs=e.programs, remarks=e.remarks) for e in parsed.entries], batch_size=2000)
    names, addresses = [], []
    for row, e in zip(entries, parsed.entries, strict=True):
        names.append(SanctionsName(entry=row, name=e.name[:500], normalized=normalize_name(e.name)[:500],
                                   is_primary=True))
        for alias, weak in e.aliases:
            names.append(SanctionsName(entry=row, name=alias[:500], normalized=normalize_name(alias)[:500],
                                       weak=weak))
        for currency, address in e.addresses:
            addresses.append(SanctionsAddress(entry=row, currency=currency[:16], address=address[:200],
                                              normalized=normalize_sanctioned_address(address)[:200]))
    SanctionsName.objects.bulk_create(names, batch_size=5000)
    SanctionsAddress.objects.bulk_create(addresses, batch_size=5000)
    return sanctions_list


_NAME_CACHE: dict[int, tuple[list[str], list[tuple[int, str]]]] = {}


def _names_of(sanctions_list: SanctionsList):
    cached = _NAME_CACHE.get(sanctions_list.id)
    if cached is None:
        # OFAC: weak aliases are too broad to be the sole basis of a match, so they are not screened.
        rows = list(SanctionsName.objects.filter(entry__sanctions_list=sanctions_list, weak=False)
                    .exclude(normalized="").values_list("normalized", "entry__uid", "name"))
        cached = ([r[0] for r in rows], [(r[1], r[2]) for r in rows])
        _NAME_CACHE.clear()
        _NAME_CACHE[sanctions_list.id] = cached
    return cached


def screen_name(*, sanctions_list: SanctionsList, name: str, threshold: Decimal) -> list[dict]:
    normalized = normalize_name(name)
    if not normalized:
        return []
    choices, meta = _names_of(sanctions_list)
    found = process.extract(normalized, choices, scorer=fuzz.token_sort_ratio, score_cutoff=float(threshold),
                            limit=10)
    matches: dict[int, dict] = {}
    for _choice, score, index in found:
        uid, listed_name = meta[index]
        score_text = str(Decimal(str(score)).quantize(Decimal("0.01")))
        if uid not in matches or Decimal(matches[uid]["score"]) < Decimal(score_text):
            matches[uid] = {"uid": uid, "name": listed_name, "score": score_text}
    return sorted(matches.values(), key=lambda m: Decimal(m["score"]), reverse=True)


def screen_address(*, sanctions_list: SanctionsList, address: str) -> list[dict]:
    rows = (SanctionsAddress.objects.filter(entry__sanctions_list=sanctions_list,
                                            normalized=normalize_sanctioned_address(address))
            .values_list("entry__uid", "entry__name", "currency", "address"))
    return [{"uid": uid, "name": name, "currency": currency, "address": listed, "score": "100.00"}
            for uid, name, currency, listed in rows]
