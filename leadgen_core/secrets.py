"""The one rule for secret references: which environment variables a tenant may point at.

A tenant's credentials (its Odoo key, later its own vendor keys) are stored as a reference,
`env:VARIABLE`, and read from the run worker's environment at run time. Without a rule, a
reference could name any variable the worker has: `env:LEADGEN_DATABASE_URL` made the night send
the owner DSN, password included, as a bearer token to the tenant's own URL. So a reference must

- name a variable that starts with one of the configured prefixes (`LEADGEN_SECRET_PREFIXES`,
  default `ODOO_,TENANT_SECRET_`), with something after the prefix, and
- never name a variable the product itself reads (DSNs, passwords, vendor keys, the alert
  webhook, `DAGSTER_*`, `PATH` ...), whatever the prefixes say.

Every place that records a reference (`leadgen odoo connect`, vendor keys) calls
`check_secret_ref`/`check_secret_env`, and every place that reads one at run time calls
`resolve_secret_ref`, so a reference written into the database by hand is refused too. Errors
name the variable, never its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from pydantic import AliasChoices

from leadgen_core.errors import ConfigError
from leadgen_core.settings import Settings, get_settings

SCHEME = "env"
ENV_NAME_RE = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
# Families of variables the product, Dagster, Postgres clients or the OS read: never a tenant's.
RESERVED_PREFIXES: tuple[str, ...] = (
    "LEADGEN_", "DAGSTER_", "PG", "SCHED_", "ACRA_", "OPENAI_", "TAVILY_", "LUSHA_", "ZEROBOUNCE_",
    "CRAWL", "AWS_", "GOOGLE_", "AZURE_", "PYTHON", "LD_", "SSL_", "REQUESTS_", "CURL_", "HTTP", "NO_PROXY",
)  # fmt: skip
# Single names read outside the settings model, and the process's own environment basics.
RESERVED_NAMES: frozenset[str] = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "TMPDIR", "LANG", "TZ", "HOSTNAME",
        "DATABASE_URL", "ODOO_SANDBOX_URL", "ALL_PROXY", "HTTPS_PROXY", "HTTP_PROXY",
    }
)  # fmt: skip


def _settings_env_names() -> frozenset[str]:
    """Every environment variable the settings model reads (so a new setting is reserved at once)."""
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices if isinstance(choice, str))
    return frozenset(names)


SETTINGS_ENV_NAMES = _settings_env_names()


def is_reserved(name: str) -> bool:
    """Whether NAME is a variable the product (or its platform) reads for itself."""
    upper = name.upper()
    if upper in RESERVED_NAMES or upper in SETTINGS_ENV_NAMES:
        return True
    return any(upper.startswith(prefix) for prefix in RESERVED_PREFIXES)


def _prefixes(prefixes: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(prefixes) if prefixes is not None else tuple(get_settings().secret_prefixes)


def check_secret_env(name: str, *, prefixes: Sequence[str] | None = None) -> str:
    """NAME when a tenant secret may be read from it; ConfigError (naming only NAME) otherwise."""
    allowed = _prefixes(prefixes)
    shown = name if isinstance(name, str) and len(name) <= 128 and name.isprintable() else "(unprintable)"
    if not isinstance(name, str) or not ENV_NAME_RE.fullmatch(name):
        raise ConfigError(f"secret variable {shown!r} must be an upper-case environment variable name")
    if is_reserved(name):
        raise ConfigError(f"secret variable {name} is one the product reads for itself: use a tenant variable")
    if not any(name.startswith(p) and len(name) > len(p) for p in allowed):
        raise ConfigError(
            f"secret variable {name} must start with one of {', '.join(allowed) or '(none configured)'} "
            "(LEADGEN_SECRET_PREFIXES)"
        )
    return name


def secret_ref(name: str, *, prefixes: Sequence[str] | None = None) -> str:
    """The stored reference `env:NAME` for a checked variable name."""
    return f"{SCHEME}:{check_secret_env(name, prefixes=prefixes)}"


def check_secret_ref(ref: str, *, prefixes: Sequence[str] | None = None) -> str:
    """The variable name a stored reference `env:NAME` points at, when the rule allows it."""
    kind, sep, name = str(ref).partition(":")
    if kind != SCHEME or not sep or not name:
        raise ConfigError("a secret reference must be env:VARIABLE")
    return check_secret_env(name, prefixes=prefixes)


def resolve_secret_ref(
    ref: str, environ: Mapping[str, str], *, owner: str, prefixes: Sequence[str] | None = None
) -> str:
    """The secret REF points at, read from ENVIRON; ConfigError naming OWNER and the variable only.

    OWNER says whose secret it is in the message ("the Odoo secret of tenant acme").
    """
    try:
        name = check_secret_ref(ref, prefixes=prefixes)
    except ConfigError as exc:
        raise ConfigError(f"{owner}: {exc}") from None
    value = environ.get(name, "")
    if not value.strip():
        raise ConfigError(f"{owner} is missing: set the environment variable {name} for the run worker")
    return value
