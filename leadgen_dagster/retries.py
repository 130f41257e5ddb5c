"""Step retries: one policy where a retry helps, and no retry where it cannot.

Instance-wide run retries on step failure are off (dagster.yaml); instead the steps whose
failures are usually transient (the registry download, the vendor stages, Odoo) carry
`TRANSIENT_RETRY`, retried inside the same run with exponential backoff. Every company's outcome
is in `company_stage_status` and every paid answer in the response cache, so a retried step redoes
only unfinished companies and pays nothing twice.

A configuration error (a missing or refused secret, rejected credentials, an unknown tenant)
fails the same way every time: `permanent_failures` turns it into `dg.Failure(allow_retries=False)`
whose description names the cause, so it is neither retried nor buried under a stack trace.

When a step's last attempt fails too, Dagster would report "Exceeded max_retries of N" as the
step's and the run's error, the cause only further down, under a stack trace. `last_attempt` re-raises
the last attempt's error as a `dg.Failure` whose description is the cause ("odoo_sync for tenant
demo-beta: Odoo at … is unreachable for tenant demo-beta: …"), so the run page's first line names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from leadgen_core.errors import ConfigError, PartitionKeyError, VendorAuthError
from leadgen_core.settings import get_settings

# Errors that a retry cannot fix: the operator must change configuration first.
PERMANENT_ERRORS = (ConfigError, PartitionKeyError, VendorAuthError)


def transient_retry_policy() -> dg.RetryPolicy:
    """STEP_RETRIES attempts more, STEP_RETRY_DELAY_S apart and doubling, with jitter."""
    s = get_settings()
    return dg.RetryPolicy(
        max_retries=s.step_retries,
        delay=s.step_retry_delay_s,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


TRANSIENT_RETRY = transient_retry_policy()


@contextmanager
def permanent_failures(stage: str) -> Iterator[None]:
    """Re-raise configuration errors as a non-retried `dg.Failure` that names the cause first."""
    try:
        yield
    except PERMANENT_ERRORS as exc:
        raise dg.Failure(
            description=f"{stage}: {exc}",
            metadata={"cause": dg.MetadataValue.text(type(exc).__name__), "retried": False},
            allow_retries=False,
        ) from exc


def attempts_left(context: dg.AssetExecutionContext) -> int:
    """The retries the step's RetryPolicy still grants after this attempt (0 without a policy)."""
    policy = context.op_def.retry_policy
    return max(0, (policy.max_retries if policy else 0) - context.retry_number)


@contextmanager
def last_attempt(context: dg.AssetExecutionContext, stage: str) -> Iterator[None]:
    """On the step's last attempt, re-raise its error as a non-retried `dg.Failure` that leads with the
    cause; earlier attempts' errors go to Dagster's RetryPolicy unchanged."""
    try:
        yield
    except dg.Failure as exc:
        if not exc.allow_retries or attempts_left(context):
            raise
        raise dg.Failure(description=exc.description, metadata=exc.metadata, allow_retries=False) from exc
    except Exception as exc:
        if attempts_left(context):
            raise
        attempts = context.retry_number + 1
        raise dg.Failure(
            description=f"{stage}: {str(exc) or type(exc).__name__}",
            metadata={
                "cause": dg.MetadataValue.text(type(exc).__name__),
                "attempts": dg.MetadataValue.int(attempts),
            },
            allow_retries=False,
        ) from exc
