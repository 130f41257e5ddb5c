"""Idempotent upserts of companies, contacts and leads into Odoo, keyed so re-runs never duplicate.

Every upsert searches by a natural key first, writes only the fields that differ, and creates only
when nothing matches; it needs no local database, so a run killed halfway and executed again
finds what the first run created. The keys:

* company: `res.partner` with `is_company=True` and `company_registry` = the UEN, or `ref` = the
  UEN on an Odoo whose res.partner has no `company_registry` (16 and older; `partner_key_field`);
* contact: child `res.partner` of the company with the (case-insensitive) email;
* lead: `crm.lead` with the custom char field `x_leadgen_key` (`LEAD_KEY_FIELD`) = a
  deterministic key such as `lead_key(tenant=..., uen=...)`. Real Odoo needs that field created
  once by an administrator (Settings > Technical > Fields, model crm.lead, type Char, indexed).

Archived records count as existing (a lost lead is archived in Odoo; re-creating it would undo a
salesperson's decision). Values a salesperson may change after creation (a lead's `type`) are
set on creation only. Concurrent upserts of the *same* key are not guarded; the pipeline runs one
writer per tenant.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from leadgen_core.odoo.client import Domain, OdooClient, OdooWriteUncertain
from leadgen_core.person_fields import clean_person_name, clean_title

LEAD_KEY_FIELD = "x_leadgen_key"
LEAD_TAG_PREFIX = "leadgen:"
MATCH_LIMIT = 5  # more than one match means duplicates made by hand; the oldest wins
FLOAT_TOLERANCE = 0.005
HTML_FIELDS = frozenset({"comment", "description"})  # Odoo sanitizes these, so compare their text
MANY2ONE_FIELDS = frozenset({"parent_id", "partner_id"})  # read back as [id, display_name]
EMAIL_FIELDS = frozenset({"email", "email_from"})
ANY_ACTIVE: list[Any] = ["active", "in", [True, False]]  # mentioning `active` lifts the archive filter
_BREAKS = re.compile(r"<br\s*/?>|</p>|</div>|</li>", re.I)
_TAGS = re.compile(r"<[^>]*>")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)

log = logging.getLogger(__name__)

Action = Literal["created", "updated", "unchanged"]
Record = Mapping[str, Any]


@dataclass(frozen=True)
class SyncOutcome:
    """What an upsert did, to which model, and the Odoo id of the record."""

    action: Action
    model: str
    odoo_id: int


def lead_key(*, tenant: str, uen: str) -> str:
    """The deterministic idempotency key of a tenant's lead for a company."""
    return f"leadgen:{tenant.strip()}:{uen.strip().upper()}"


PARTNER_KEY_FIELDS = ("company_registry", "ref")


async def partner_key_field(client: OdooClient) -> str:
    """The res.partner field that holds the UEN: `company_registry` where the model has it (Odoo 17
    and later), else `ref` (the partner's internal reference, present in every version)."""
    return "company_registry" if "company_registry" in await client.field_names("res.partner") else "ref"


def company_vals(
    *,
    uen: str,
    name: str,
    website: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    key_field: str = "company_registry",
) -> dict[str, Any]:
    """The values of a company partner keyed by its UEN in KEY_FIELD; None leaves a field as Odoo has it."""
    uen = uen.strip().upper()
    if not uen or not name.strip():
        raise ValueError("a company needs a UEN and a name")
    if key_field not in PARTNER_KEY_FIELDS:
        raise ValueError(f"the UEN goes in one of {PARTNER_KEY_FIELDS}, not {key_field!r}")
    vals: dict[str, Any] = {"name": name.strip(), "is_company": True, key_field: uen}
    if website:
        vals["website"] = normalize_website(website)
    if phone:
        vals["phone"] = phone.strip()
    if email:
        vals["email"] = email.strip().lower()
    return vals


async def upsert_company(
    client: OdooClient,
    *,
    uen: str,
    name: str,
    website: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    key_field: str = "company_registry",
) -> SyncOutcome:
    """The company partner keyed by its UEN in KEY_FIELD; None leaves a field as Odoo has it."""
    vals = company_vals(uen=uen, name=name, website=website, phone=phone, email=email, key_field=key_field)
    domain: Domain = [ANY_ACTIVE, ["is_company", "=", True], [key_field, "=", vals[key_field]]]
    return await _upsert(client, model="res.partner", domain=domain, vals=vals)


def contact_vals(
    *, parent_id: int, email: str, name: str, title: str | None = None, phone: str | None = None
) -> dict[str, Any]:
    """The values of a contact (child partner) of company PARENT_ID, keyed by its lower-cased email."""
    address = email.strip().lower()
    if "@" not in address or not name.strip():
        raise ValueError("a contact needs a name and an email address")
    # Odoo shows these to salespeople: free text that is not a name or a title never goes in
    vals: dict[str, Any] = {"name": clean_person_name(name) or address, "email": address, "parent_id": parent_id}
    if clean_title(title):
        vals["function"] = clean_title(title)
    if phone:
        vals["phone"] = phone.strip()
    return vals


async def upsert_contact(
    client: OdooClient,
    *,
    parent_id: int,
    email: str,
    name: str,
    title: str | None = None,
    phone: str | None = None,
) -> SyncOutcome:
    """A contact (child partner) of company PARENT_ID, keyed by email."""
    vals = contact_vals(parent_id=parent_id, email=email, name=name, title=title, phone=phone)
    address = vals["email"]
    # =ilike is an exact, case-insensitive match once LIKE wildcards (the _ of a local part) are escaped
    domain: Domain = [ANY_ACTIVE, ["parent_id", "=", parent_id], ["email", "=ilike", escape_like(address)]]
    return await _upsert(
        client,
        model="res.partner",
        domain=domain,
        vals=vals,
        match=lambda rec: str(rec.get("email") or "").strip().lower() == address,
    )


def lead_vals(
    *,
    key: str,
    partner_id: int,
    name: str,
    score: float,
    bucket: str,
    rationale: str,
    contact_name: str | None = None,
    contact_email: str | None = None,
    expected_revenue: float | None = None,
) -> dict[str, Any]:
    """The values of the lead keyed by KEY (without its tags); SCORE in [0, 1] becomes the probability."""
    if not key.strip() or not name.strip():
        raise ValueError("a lead needs a key and a name")
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"score must be within [0, 1], got {score!r}")
    vals: dict[str, Any] = {
        "name": name.strip(),
        LEAD_KEY_FIELD: key,
        "partner_id": partner_id,
        "probability": round(score * 100, 2),
        "description": f"Leadgen score {score:.2f} ({bucket})\n{rationale.strip()}",
    }
    if contact_name:
        vals["contact_name"] = contact_name.strip()
    if contact_email:
        vals["email_from"] = contact_email.strip().lower()
    if expected_revenue is not None:
        vals["expected_revenue"] = float(expected_revenue)
    return vals


def with_bucket_tag(
    vals: Mapping[str, Any], *, tag_id: int, other_bucket_tags: set[int]
) -> Callable[[Record | None], dict[str, Any]]:
    """VALS plus the bucket tag, keeping tags a salesperson added; only the leadgen bucket tag is swapped."""

    def build(existing: Record | None) -> dict[str, Any]:
        current = set(existing.get("tag_ids") or []) if existing else set()
        return {**vals, "tag_ids": [[6, 0, sorted((current - other_bucket_tags) | {tag_id})]]}

    return build


LEAD_ON_CREATE: Mapping[str, Any] = {"type": "lead"}  # a salesperson may convert it later: set once


async def upsert_lead(
    client: OdooClient,
    *,
    key: str,
    partner_id: int,
    name: str,
    score: float,
    bucket: str,
    rationale: str,
    contact_name: str | None = None,
    contact_email: str | None = None,
    expected_revenue: float | None = None,
) -> SyncOutcome:
    """The lead keyed by KEY; SCORE in [0, 1] becomes the probability, BUCKET a `leadgen:<bucket>` tag."""
    vals = lead_vals(key=key, partner_id=partner_id, name=name, score=score, bucket=bucket, rationale=rationale,
                     contact_name=contact_name, contact_email=contact_email,
                     expected_revenue=expected_revenue)  # fmt: skip
    tag_id, other_bucket_tags = await _bucket_tag(client, bucket)
    return await _upsert(
        client,
        model="crm.lead",
        domain=[ANY_ACTIVE, [LEAD_KEY_FIELD, "=", key]],
        vals=with_bucket_tag(vals, tag_id=tag_id, other_bucket_tags=other_bucket_tags),
        fields=[*vals, "tag_ids"],
        on_create=LEAD_ON_CREATE,
    )


async def _bucket_tag(client: OdooClient, bucket: str) -> tuple[int, set[int]]:
    """The id of the bucket's tag (created once) and the ids of the other leadgen bucket tags."""
    wanted = f"{LEAD_TAG_PREFIX}{bucket.strip().lower()}"
    domain: Domain = [["name", "=like", escape_like(LEAD_TAG_PREFIX) + "%"]]
    tags = await client.search_read("crm.tag", domain, fields=["name"])
    tag_id = min((int(t["id"]) for t in tags if t.get("name") == wanted), default=None)
    if tag_id is None:
        outcome = await _upsert(client, model="crm.tag", domain=[["name", "=", wanted]], vals={"name": wanted})
        tag_id = outcome.odoo_id
    return tag_id, {int(t["id"]) for t in tags} - {tag_id}


async def _upsert(
    client: OdooClient,
    *,
    model: str,
    domain: Domain,
    vals: Mapping[str, Any] | Callable[[Record | None], Mapping[str, Any]],
    fields: Sequence[str] | None = None,
    match: Callable[[Record], bool] | None = None,
    on_create: Mapping[str, Any] | None = None,
) -> SyncOutcome:
    build = vals if callable(vals) else (lambda _existing: vals)
    read_fields = list(fields) if fields is not None else list(build(None))
    found = await _find(client, model=model, domain=domain, fields=read_fields, match=match)
    if found is None:
        new_vals = {**(on_create or {}), **build(None)}
        new_id = await _create(
            client,
            model=model,
            vals=new_vals,
            find=lambda: _find(client, model=model, domain=domain, fields=read_fields, match=match),
        )
        return SyncOutcome("created", model, new_id)
    rid = int(found["id"])
    changes = {k: v for k, v in build(found).items() if not same_value(k, found.get(k), v)}
    if not changes:
        return SyncOutcome("unchanged", model, rid)
    await client.write(model, [rid], vals=changes)
    return SyncOutcome("updated", model, rid)


async def _find(
    client: OdooClient, *, model: str, domain: Domain, fields: Sequence[str], match: Callable[[Record], bool] | None
) -> Record | None:
    rows = await client.search_read(model, domain, fields=fields, limit=MATCH_LIMIT)
    rows = [r for r in rows if match is None or match(r)]
    if len(rows) > 1:
        log.warning("odoo %s: %d records share one sync key; updating the oldest", model, len(rows))
    return min(rows, key=lambda r: int(r["id"])) if rows else None


async def _create(client: OdooClient, *, model: str, vals: Mapping[str, Any], find: Callable[[], Any]) -> int:
    try:
        return await client.create(model, vals)
    except OdooWriteUncertain:
        # the answer was lost, not necessarily the record: look before creating again
        log.warning("odoo %s: create may have been applied; checking by key before retrying", model)
        found = await find()
        if found is not None:
            return int(found["id"])
        return await client.create(model, vals)


def same_value(field: str, current: Any, desired: Any) -> bool:
    """Whether Odoo's stored CURRENT already equals the DESIRED value we would write."""
    if isinstance(desired, list) and desired and isinstance(desired[0], list) and desired[0][:1] == [6]:
        return set(current or []) == set(desired[0][2])  # a (6, 0, ids) command against the ids read
    if field in MANY2ONE_FIELDS and isinstance(current, list):
        current = current[0] if current else False
    if field in HTML_FIELDS:
        # we send plain text (Odoo wraps it in <p>); only a value that is markup is parsed as html
        wanted = html_text(desired) if str(desired).lstrip().startswith("<") else _lines(str(desired or ""))
        return html_text(current) == wanted
    if field in EMAIL_FIELDS:
        return str(current or "").strip().lower() == str(desired or "").strip().lower()
    if isinstance(desired, float) and not isinstance(current, bool) and isinstance(current, (int, float)):
        return abs(current - desired) <= FLOAT_TOLERANCE
    return bool((current or False) == (desired or False))


def html_text(value: Any) -> str:
    """The visible text of an html field value, one stripped line per paragraph or break."""
    if not isinstance(value, str):
        return ""
    return _lines(html.unescape(_TAGS.sub("", _BREAKS.sub("\n", value))))


def _lines(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def normalize_website(url: str) -> str:
    """A website with a scheme (Odoo would prefix http:// itself, making every re-run an update)."""
    url = url.strip()
    return url if _SCHEME.match(url) else f"https://{url}"


def escape_like(value: str) -> str:
    """VALUE as a literal LIKE pattern: backslash, % and _ escaped."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
