"""Batched upserts: one lookup per model for a chunk of keys, one create for the missing, grouped writes.

The same idempotent rules as `sync.py`, for many records at a time. For a chunk of items of one
model, `upsert_batch`:

1. looks every key up with a single `search_read` whose domain holds all of them (`in`, or an OR
   of exact matches for case-insensitive emails);
2. creates the records that are missing with one `create` of a list of values (all or none: Odoo
   runs a request in one transaction);
3. writes only the fields that differ, one `write` per distinct set of changes (Odoo's `write`
   applies one dict of values to many ids).

One bad item still fails alone: when the batched create or a grouped write is refused (a record
Odoo rejects makes it roll back the whole request) or its answer is lost, each item of that call
is redone on its own with the single-item upsert, which looks its key up before creating, so a
create whose answer was lost is found instead of repeated. Errors that no item causes (Odoo
unreachable, credentials refused) are given to every item of the call and not retried one by one.
`upsert_batch` never raises: each item gets its `SyncOutcome` or its exception.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from leadgen_core.odoo.client import Domain, OdooClient, OdooServerError, OdooWriteUncertain
from leadgen_core.odoo.sync import (
    ANY_ACTIVE,
    LEAD_KEY_FIELD,
    LEAD_TAG_PREFIX,
    MATCH_LIMIT,
    Record,
    SyncOutcome,
    escape_like,
    same_value,
)

AUTH_HTTP_STATUSES = frozenset({401, 403})
AUTH_ODOO_ERRORS = frozenset({"odoo.exceptions.AccessDenied", "werkzeug.exceptions.Unauthorized"})

log = logging.getLogger(__name__)

ItemResult = SyncOutcome | Exception


@dataclass(frozen=True)
class Wanted:
    """One record to upsert: its key as Odoo stores it, its values, and its single-item upsert."""

    match: str  # the key `key_of` reads back from a found record
    build: Callable[[Record | None], Mapping[str, Any]]  # the values, given the record found (or None)
    single: Callable[[], Awaitable[SyncOutcome]]  # the per-item upsert, for the fallback
    on_create: Mapping[str, Any] = field(default_factory=dict)


def is_auth_error(exc: BaseException) -> bool:
    """Whether Odoo refused the credentials (every item would fail the same way)."""
    if not isinstance(exc, OdooServerError):
        return False
    if exc.http_status in AUTH_HTTP_STATUSES or exc.odoo_name in AUTH_ODOO_ERRORS:
        return True
    return "access denied" in str(exc).lower()


def _item_may_cause(exc: Exception) -> bool:
    # a refusal (validation, constraint) may be one item's fault; a lost answer must be checked by key
    return isinstance(exc, OdooWriteUncertain) or (isinstance(exc, OdooServerError) and not is_auth_error(exc))


async def upsert_batch(
    client: OdooClient,
    *,
    model: str,
    wanted: Sequence[Wanted],
    domain: Domain,
    key_of: Callable[[Record], str | None],
    fields: Sequence[str],
) -> list[ItemResult]:
    """Upsert every item of WANTED (found by DOMAIN, matched by KEY_OF); one result per item, in order."""
    if not wanted:
        return []
    limit = len(wanted) * MATCH_LIMIT
    try:
        rows = await client.search_read(model, domain, fields=list(fields), limit=limit)
    except Exception as exc:  # the lookup failed: no item can go on
        return [exc] * len(wanted)
    found = _oldest_by_key(model, rows, key_of)
    truncated = len(rows) >= limit  # a key missing from a full page may exist: look it up alone
    results: list[ItemResult | None] = [None] * len(wanted)
    to_create: list[int] = []
    to_write: dict[str, tuple[dict[str, Any], list[tuple[int, int]]]] = {}
    first_of: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []  # an item whose key an earlier item of the batch already has
    for i, item in enumerate(wanted):
        if item.match in first_of:
            repeats.append((i, first_of[item.match]))
            continue
        first_of[item.match] = i
        row = found.get(item.match)
        if row is None:
            if truncated:
                results[i] = await _single(item)
            else:
                to_create.append(i)
            continue
        rid = int(row["id"])
        changes = {k: v for k, v in item.build(row).items() if not same_value(k, row.get(k), v)}
        if not changes:
            results[i] = SyncOutcome("unchanged", model, rid)
            continue
        fingerprint = json.dumps(changes, sort_keys=True, default=str)
        to_write.setdefault(fingerprint, (changes, []))[1].append((i, rid))
    await _create_missing(client, model=model, wanted=wanted, indexes=to_create, results=results)
    for changes, targets in to_write.values():
        await _write_group(client, model=model, wanted=wanted, changes=changes, targets=targets, results=results)
    for i, first in repeats:  # one record per key: the repeat finds what the first made
        done = results[first]
        results[i] = SyncOutcome("unchanged", model, done.odoo_id) if isinstance(done, SyncOutcome) else done
    return [r if r is not None else RuntimeError("item not processed") for r in results]


def _oldest_by_key(model: str, rows: Sequence[Record], key_of: Callable[[Record], str | None]) -> dict[str, Record]:
    found: dict[str, Record] = {}
    shared: set[str] = set()
    for row in sorted(rows, key=lambda r: int(r["id"])):
        key = key_of(row)
        if key is None:
            continue
        if key in found:
            shared.add(key)
        else:
            found[key] = row  # more than one match means duplicates made by hand: the oldest wins
    if shared:
        log.warning("odoo %s: %d sync keys match several records; updating the oldest", model, len(shared))
    return found


async def _single(item: Wanted) -> ItemResult:
    try:
        return await item.single()
    except Exception as exc:  # one item's failure is its own result
        return exc


async def _create_missing(
    client: OdooClient,
    *,
    model: str,
    wanted: Sequence[Wanted],
    indexes: list[int],
    results: list[ItemResult | None],
) -> None:
    if not indexes:
        return
    vals_list = [{**wanted[i].on_create, **wanted[i].build(None)} for i in indexes]
    try:
        ids = await client.create_many(model, vals_list)
    except Exception as exc:
        alone = len(indexes) == 1 and not isinstance(exc, OdooWriteUncertain)  # its error is its own
        if alone or not _item_may_cause(exc):
            for i in indexes:
                results[i] = exc
            return
        log.warning("odoo %s: a create of %d records failed (%s); creating them one by one", model, len(indexes), exc)
        for i in indexes:
            results[i] = await _single(wanted[i])
        return
    for i, rid in zip(indexes, ids, strict=True):
        results[i] = SyncOutcome("created", model, rid)


async def _write_group(
    client: OdooClient,
    *,
    model: str,
    wanted: Sequence[Wanted],
    changes: Mapping[str, Any],
    targets: list[tuple[int, int]],
    results: list[ItemResult | None],
) -> None:
    try:
        await client.write(model, [rid for _, rid in targets], vals=changes)
    except Exception as exc:
        if len(targets) == 1 or not _item_may_cause(exc):
            for i, _ in targets:
                results[i] = exc
            return
        for i, _ in targets:
            results[i] = await _single(wanted[i])
        return
    for i, rid in targets:
        results[i] = SyncOutcome("updated", model, rid)


# --- the lookups of each model --------------------------------------------------------------
def companies_domain(key_field: str, uens: Sequence[str]) -> Domain:
    return [ANY_ACTIVE, ["is_company", "=", True], [key_field, "in", sorted(set(uens))]]


def contacts_domain(pairs: Sequence[tuple[int, str]]) -> Domain:
    """Children of the parents in PAIRS whose email matches one of PAIRS' addresses, case-insensitively."""
    emails = sorted({email for _, email in pairs})
    parents = sorted({parent for parent, _ in pairs})
    matches: Domain = [["email", "=ilike", escape_like(e)] for e in emails]
    return [ANY_ACTIVE, ["parent_id", "in", parents], *(["|"] * (len(matches) - 1)), *matches]


def contact_key(parent_id: int, email: str) -> str:
    return f"{parent_id}|{email.strip().lower()}"


def contact_key_of(row: Record) -> str | None:
    parent = row.get("parent_id")
    parent_id = parent[0] if isinstance(parent, list) and parent else parent
    email = row.get("email")
    if not isinstance(parent_id, int) or not isinstance(email, str) or not email:
        return None
    return contact_key(parent_id, email)


def leads_domain(keys: Sequence[str]) -> Domain:
    return [ANY_ACTIVE, [LEAD_KEY_FIELD, "in", sorted(set(keys))]]


@dataclass(frozen=True)
class BucketTags:
    """The crm.tag id of each leadgen bucket, and every leadgen bucket tag's id."""

    ids: Mapping[str, int]
    all_ids: frozenset[int]

    def of(self, bucket: str) -> tuple[int, set[int]]:
        tag_id = self.ids[bucket_tag_name(bucket)]
        return tag_id, set(self.all_ids - {tag_id})


def bucket_tag_name(bucket: str) -> str:
    return f"{LEAD_TAG_PREFIX}{bucket.strip().lower()}"


async def resolve_bucket_tags(client: OdooClient, buckets: Sequence[str], *, look_again: bool = True) -> BucketTags:
    """The tags of BUCKETS, the missing ones created in one call; one lookup for the whole night."""
    domain: Domain = [["name", "=like", escape_like(LEAD_TAG_PREFIX) + "%"]]
    ids: dict[str, int] = {}
    for tag in sorted(await client.search_read("crm.tag", domain, fields=["name"]), key=lambda t: int(t["id"])):
        ids.setdefault(str(tag.get("name")), int(tag["id"]))
    missing = sorted({bucket_tag_name(b) for b in buckets} - set(ids))
    if missing:
        try:
            created = await client.create_many("crm.tag", [{"name": name} for name in missing])
        except OdooWriteUncertain:
            if not look_again:
                raise
            # the answer was lost, not necessarily the tags: look again before creating again
            return await resolve_bucket_tags(client, buckets, look_again=False)
        ids.update(zip(missing, created, strict=True))
    return BucketTags(ids=ids, all_ids=frozenset(ids.values()))
