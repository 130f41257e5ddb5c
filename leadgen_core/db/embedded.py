"""The private Postgres started from the `pgserver` wheel when LEADGEN_DATABASE_URL is unset.

pgserver keeps a handle count across processes: the server runs while any process that asked
for it is alive (cleanup_mode "stop"), so `make dev`'s launcher keeps it up for Dagster's
children, and a one-off CLI command starts and stops it on its own.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from leadgen_core.errors import ConfigError

_SERVERS: dict[str, Any] = {}
START_ATTEMPTS = 4
RETRY_PAUSE_S = 5.0


def private_runtime_dir(home: str | Path) -> None:
    """Without XDG_RUNTIME_DIR (a container, cron, CI), the embedded Postgres' platformdirs warns on
    every start and falls back to a shared /tmp folder; a private one under HOME serves."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    run_dir = Path(home).resolve() / "run"
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(run_dir)


def embedded_dsn(home: str | Path, *, name: str = "pg") -> str:
    """Start (or join) the embedded server under HOME/NAME and return its superuser DSN."""
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - pgserver is a hard dependency
        raise ConfigError("pgserver is not installed; set LEADGEN_DATABASE_URL or `pip install pgserver`") from exc
    path = Path(home, name).resolve()
    path.mkdir(parents=True, exist_ok=True)
    key = str(path)
    if key not in _SERVERS:
        # A unix socket path is limited to ~107 bytes; pgserver puts the socket in the data dir.
        if len(key) > 90:
            raise ConfigError(f"LEADGEN_HOME path is too long for a Postgres socket: {key}")
        _SERVERS[key] = _start(pgserver, path)
    return str(_SERVERS[key].get_uri())


def _start(pgserver: Any, path: Path) -> Any:
    """pgserver gives `pg_ctl start` 10 s; on a loaded machine the postmaster may need longer.

    It keeps starting after pg_ctl gives up, so a later attempt finds it running and joins it.
    """
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            return pgserver.get_server(path, cleanup_mode="stop")
        except subprocess.TimeoutExpired:
            if attempt == START_ATTEMPTS:
                break
            time.sleep(RETRY_PAUSE_S)
    raise ConfigError(f"the embedded Postgres under {path} did not start in time; see {path / 'log'}")
