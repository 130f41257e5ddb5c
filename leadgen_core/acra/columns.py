"""The staging columns of the ACRA registry, in ACRA's own names and order.

The data.gov.sg datasets ("ACRA Information on Corporate Entities", one per initial letter) carry
more columns than these (`issuance_agency_id`, `former_entity_name1..15`, audit firms); staging
keeps the 27 the pipeline uses and ignores the rest. The maximum lengths are generous bounds on
what ACRA publishes: they exist so a corrupt row (a whole file glued into one field) is
quarantined instead of bloating the staging table, not to police ordinary values.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

STAGING_COLUMNS: Final[tuple[str, ...]] = (
    "uen",
    "entity_name",
    "entity_type_description",
    "business_constitution_description",
    "company_type_description",
    "paf_constitution_description",
    "entity_status_description",
    "registration_incorporation_date",
    "uen_issue_date",
    "address_type",
    "block",
    "street_name",
    "level_no",
    "unit_no",
    "building_name",
    "postal_code",
    "other_address_line1",
    "other_address_line2",
    "account_due_date",
    "annual_return_date",
    "primary_ssic_code",
    "primary_ssic_description",
    "primary_user_described_activity",
    "secondary_ssic_code",
    "secondary_ssic_description",
    "secondary_user_described_activity",
    "no_of_officers",
)

DATE_COLUMNS: Final[tuple[str, ...]] = (
    "registration_incorporation_date",
    "uen_issue_date",
    "account_due_date",
    "annual_return_date",
)

SSIC_CODE_COLUMNS: Final[tuple[str, ...]] = ("primary_ssic_code", "secondary_ssic_code")

# The staging columns the companies upsert reads (registry._UPSERT_TEMPLATE). A source without one
# of them would set that company field to NULL on every existing company (a two-column CSV once
# dropped every company from every tenant's candidates), so such a source is refused outright.
UPSERT_COLUMNS: Final[tuple[str, ...]] = (
    "uen",
    "entity_name",
    "entity_status_description",
    "registration_incorporation_date",
    "primary_ssic_code",
    "primary_ssic_description",
    "secondary_ssic_code",
    "postal_code",
    "block",
    "street_name",
    "level_no",
    "unit_no",
    "building_name",
)

# ACRA writes "na" for a missing value; empty strings appear in hand-edited exports.
NA_VALUES: Final[frozenset[str]] = frozenset({"", "na", "NA", "Na", "nA"})

# Upper bounds in characters (after trimming). Names and free-text activities are the long ones.
MAX_LENGTHS: Final[MappingProxyType[str, int]] = MappingProxyType(
    {
        "uen": 10,
        "entity_name": 300,
        "entity_type_description": 100,
        "business_constitution_description": 100,
        "company_type_description": 100,
        "paf_constitution_description": 100,
        "entity_status_description": 100,
        "registration_incorporation_date": 10,
        "uen_issue_date": 10,
        "address_type": 20,
        "block": 20,
        "street_name": 200,
        "level_no": 10,
        "unit_no": 20,
        "building_name": 200,
        "postal_code": 10,
        "other_address_line1": 300,
        "other_address_line2": 300,
        "account_due_date": 10,
        "annual_return_date": 10,
        "primary_ssic_code": 5,
        "primary_ssic_description": 300,
        "primary_user_described_activity": 500,
        "secondary_ssic_code": 5,
        "secondary_ssic_description": 300,
        "secondary_user_described_activity": 500,
        "no_of_officers": 6,
    }
)

assert tuple(MAX_LENGTHS) == STAGING_COLUMNS, "every staging column needs a maximum length"
assert set(UPSERT_COLUMNS) <= set(STAGING_COLUMNS), "the upsert reads staging columns only"
