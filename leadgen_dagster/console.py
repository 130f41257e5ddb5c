"""The console logger of every leadgen job: Dagster's own, at INFO unless a run asks for DEBUG.

Dagster's default console logger prints every event at DEBUG (step start, outputs, resource init),
which buries the stages' progress lines in `make dev` and `leadgen night`. The event log the UI
reads is kept in full whatever this level; `leadgen night -v` (or run config
`loggers.console.config.log_level: DEBUG`) brings the DEBUG lines back.
"""

from __future__ import annotations

import logging

import dagster as dg

DEFAULT_LEVEL = "INFO"


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, is_required=False, default_value=DEFAULT_LEVEL),
        "name": dg.Field(str, is_required=False, default_value="dagster"),
    },
    description="Dagster's colored console logger, at INFO by default.",
)
def console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    return dg.colored_console_logger.logger_fn(init_context)  # type: ignore[no-any-return]


LOGGERS = {"console": console_logger}
