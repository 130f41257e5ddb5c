"""Fixtures of the browser walkthrough: the product started as a user starts it, and a real Chromium.

Real: `leadgen dev` in a subprocess (the same command `make dev` runs) on free ports, against a
fresh database on the test server, with its own LEADGEN_HOME: migrations, the sandbox simulators,
the demo tenants, the Dagster webserver and daemon, and the start-up nights. The browser is
Debian's Chromium (/usr/bin/chromium, installed by `make e2e`/`make test` when missing), driven by
Playwright; no browser is downloaded. Nothing is simulated beyond the sandbox vendors and Odoo.
Screenshots of each step go to tests/e2e/screenshots/ (gitignored).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import ROOT, create_database, drop_database

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "tests" / "e2e" / "screenshots"
START_TIMEOUT_S = 300
STOP_TIMEOUT_S = 30
CLEAN_STOP_S = 10  # issue 12: Ctrl-C leaves nothing running within 10 s
VENDOR_VARS = ("TAVILY_API_KEY", "LUSHA_API_KEY", "ZEROBOUNCE_API_KEY", "OPENAI_API_KEY", "LEADGEN_DATABASE_URL",
               "LEADGEN_APP_DATABASE_URL", "DAGSTER_HOME")  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
    return {k: v for k, v in pairs}


@dataclass
class Product:
    """A running `leadgen dev`: its UI, its environment (database and sandbox), its log."""

    ui: str
    home: Path
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[Any]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`leadgen ARGS` in a shell that loaded .leadgen/sandbox.env, as the README says."""
        env = {**self.env, **read_env_file(self.home / "sandbox.env")}
        return subprocess.run(  # noqa: S603
            [str(ROOT / ".venv" / "bin" / "leadgen"), *args],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def sandbox(self, key: str) -> str:
        return read_env_file(self.home / "sandbox.env")[key]

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])

    def stop(self) -> float:
        """SIGTERM, as Ctrl-C would; the seconds it took to exit."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return time.monotonic() - started


def _wait_started(product: Product, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if product.proc.poll() is not None:
            raise RuntimeError(f"leadgen dev exited with {product.proc.returncode}:\n{product.log_tail()}")
        if "launched registry_refresh_job" in product.log.read_text(encoding="utf-8", errors="replace"):
            httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=5).raise_for_status()
            return
        time.sleep(1)
    raise RuntimeError(f"leadgen dev did not start within {START_TIMEOUT_S}s:\n{product.log_tail()}")


@pytest.fixture(scope="module")  # closed after the walkthrough: Playwright's loop and leadgen dev must not outlive it
def product(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    name, owner = create_database(pg_server, prefix="leadgen_e2e")
    home = tmp_path_factory.mktemp("leadgen_home")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in VENDOR_VARS}
    env.update({"LEADGEN_DATABASE_URL": owner, "LEADGEN_HOME": str(home),
                "LEADGEN_UI_URL": f"http://127.0.0.1:{port}"})  # fmt: skip
    log = home / "leadgen-dev.log"
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(  # noqa: S603
            [str(ROOT / ".venv" / "bin" / "leadgen"), "dev", "--port", str(port)],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    prod = Product(ui=f"http://127.0.0.1:{port}", home=home, env=env, log=log, proc=proc)
    children: list[psutil.Process] = []
    try:
        _wait_started(prod, port)
        yield prod
        children = psutil.Process(proc.pid).children(recursive=True)  # Dagster's services, code servers, runs
    finally:
        seconds = prod.stop()
        if SCREENSHOTS.is_dir():
            shutil.copy(log, SCREENSHOTS / "leadgen-dev.log")  # beside the screenshots, for a failed run
        drop_database(pg_server, name)
    # Ctrl-C stops `dagster dev` cleanly (its webserver, daemon and code servers) within 10 s, never by SIGKILL
    stopped = log.read_text(encoding="utf-8", errors="replace")
    assert "did not stop within" not in stopped and "killing its process group" not in stopped, stopped[-3000:]
    assert "[leadgen dev] stopped" in stopped and seconds < CLEAN_STOP_S, f"stop took {seconds:.1f}s"
    assert len(children) >= 4, children  # dagster dev, its webserver, daemon and code server at least
    left = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not left, [(c.pid, c.cmdline()[:4]) for c in left]
    # the log a person reads: each run's progress at INFO, not Dagster's DEBUG line per event (LEADGEN_LOG_LEVEL)
    assert " - INFO - tenant_night_job - " in stopped and " - DEBUG - " not in stopped, stopped[-3000:]


@pytest.fixture(scope="module")  # closed after the walkthrough: Playwright's loop and leadgen dev must not outlive it
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `make e2e` (it installs Debian's chromium) or apt-get install chromium"
        )
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")  # closed after the walkthrough: Playwright's loop and leadgen dev must not outlive it
def shots() -> Path:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS
