"""No input makes `leadgen` print a traceback: a property-based test (Hypothesis) of every command.

Real: the root `leadgen` group run in process by click's runner, with its own error handling,
against the session Postgres (no tenant exists, so every tenant lookup is refused); files
written to a temporary directory. Generated: random and adversarial strings (control characters,
lone surrogates, NaN/Infinity, 400-digit numbers, 50,000-deep JSON, impossible dates, hostile
paths) for every option and argument of every command. Each invalid invocation must print one
line on stderr and exit 2. Commands that would start servers or write outside the temporary
directory (`dev`, `sandbox up`, `demo seed`, `instance render`, `db migrate`) only get input that
their parsers must refuse, so no example starts anything.
"""

from __future__ import annotations

import base64
import json
import os
import re
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadgen_core.errors import ConfigError
from leadgen_core.leads.export import Cursor
from leadgen_dagster.cli import main
from tests.conftest import DbHandle, add_tenant

EXAMPLES = settings(
    max_examples=int(os.environ.get("LEADGEN_FUZZ_EXAMPLES", "60")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
DEEP = "[" * 50_000
ADVERSARIAL = [
    "", " ", "\n", "x\ny", "a\tb", "\x00", "\x1b[2J", "\r\n", "\x7f", "\u202e", "\udcff", "\ufeff",
    "-", "--", "Infinity", "-Infinity", "NaN", "nan", "inf", "1e999", "-1", "0", "9" * 400,
    DEEP, '{"a":' * 2_000, "/", "/dev/null", "/nonexistent/dir/file", "http://user:pw@host/",
    "javascript:alert(1)", "%s%n%x", "'; DROP TABLE tenants; --", "é" * 300, "2026-02-30",
    "2099-01-01", "1999-12-31", "demo-alpha\n", "${HOME}", "$(id)",
]  # fmt: skip
HELP = {"-h", "--help"}
value = st.one_of(st.sampled_from(ADVERSARIAL), st.text(max_size=40)).filter(lambda v: v not in HELP)
not_a_number = value.filter(lambda v: not re.fullmatch(r"\s*[+-]?\d+\s*", v))
not_a_date = value.filter(lambda v: not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v))
# A name `tenants add` must refuse: a control character, nothing usable for an id, or too long.
bad_name = st.one_of(
    st.builds(
        lambda a, c, b: a + c + b, st.text(max_size=10), st.sampled_from("\n\t\r\x00\x1b\x7f\x85"), st.text(max_size=10)
    ),  # fmt: skip
    st.text(alphabet=" -_.!中文。", max_size=20),  # no Latin letter or digit, even with accents dropped (é is e)
    st.text(alphabet=string.ascii_letters, min_size=201, max_size=260),
)
date_value = st.one_of(value, st.dates().map(str))
unknown_option = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8).map(lambda s: f"--zz-{s}")


@pytest.fixture
def cli_env(clean_db: DbHandle, tmp_path: Path) -> Iterator[Path]:
    """The owner DSN of the (tenant-less) session database; os.environ restored whole afterwards
    (`leadgen night` sets variables for the process)."""
    saved = dict(os.environ)
    os.environ["LEADGEN_DATABASE_URL"] = clean_db.owner_dsn
    for key in ("ODOO_SANDBOX_URL", "DAGSTER_HOME"):
        os.environ.pop(key, None)
    try:
        yield tmp_path
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run(argv: list[str]) -> Result:
    return CliRunner().invoke(main, argv)


def assert_refused(argv: list[str], result: Result) -> None:
    """Exit 2, exactly one line on stderr (`error: ...`), and no exception but the exit."""
    shown = f"argv={argv!r:.300}\nstdout={result.stdout[:500]!r}\nstderr={result.stderr[:500]!r}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{shown}"
    )
    assert result.exit_code == 2, shown
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    assert "Traceback" not in result.output, shown


def write(tmp: Path, name: str, data: bytes) -> str:
    path = tmp / name
    path.write_bytes(data)
    return str(path)


# --- every command: unknown options and stray arguments --------------------------------------

COMMANDS = [
    ["db", "migrate"], ["db", "status"], ["tenants", "add"], ["tenants", "list"], ["tenants", "deactivate"],
    ["tenants", "activate"], ["icp", "set"], ["icp", "show"], ["odoo", "connect"], ["acra", "synth"],
    ["acra", "load"], ["jobs", "enqueue-upsert"], ["jobs", "status"], ["jobs", "retry"], ["sandbox", "up"],
    ["demo", "seed"], ["dev"], ["instance", "render"], ["night"], ["export", "scores"], ["suppress", "add"],
    ["suppress", "list"], ["suppress", "remove"], ["budget", "show"], ["vendors", "connect"], ["vendors", "list"],
    ["vendors", "disconnect"],
]  # fmt: skip


def test_the_fuzzed_commands_are_every_command() -> None:
    import click

    def leaves(cmd: click.Command, path: list[str]) -> list[list[str]]:
        if isinstance(cmd, click.Group):
            return [p for name, sub in cmd.commands.items() for p in leaves(sub, [*path, name])]
        return [path]

    assert sorted(leaves(main, [])) == sorted(COMMANDS)


@EXAMPLES
@given(command=st.sampled_from(COMMANDS), option=unknown_option, extra=st.lists(value, max_size=2))
def test_unknown_options_are_one_line(cli_env: Path, command: list[str], option: str, extra: list[str]) -> None:
    argv = [*command, option, *extra]
    assert_refused(argv, run(argv))


# --- values: each command's parser and validation --------------------------------------------


def invalid_invocations(tmp: Path) -> st.SearchStrategy[list[str]]:
    """An argv per command that its parser or its validation must refuse (no tenant exists)."""
    file_bytes = st.one_of(
        st.binary(max_size=300),
        st.sampled_from(
            [
                DEEP.encode(),
                b'{"industries": ["x"], "weights": {"age": NaN}}',
                b"\xff\xfe\x00",
                b"9" * 5000,
                b'{"industries": ["x"], "employee_range": {"min": 2147483648}}',
                b"uen,entity_name\n53999999Z,Evil\n",
            ]
        ),  # fmt: skip
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogateescape")),
    )
    a_file = file_bytes.map(lambda data: write(tmp, "input.bin", data))
    bad_path = st.sampled_from(["/nonexistent/dir/x.csv", str(tmp), str(tmp / "input.bin" / "under-a-file"), "\x00"])
    bad_url = value.filter(lambda v: not re.match(r"^https?://[^\s/]+", v))
    return st.one_of(
        st.tuples(st.just(["tenants", "add"]), bad_name).map(lambda t: [*t[0], "--", t[1]]),
        st.tuples(st.sampled_from([["tenants", "activate"], ["tenants", "deactivate"]]), value).map(
            lambda t: [*t[0], "--", t[1]]
        ),
        st.tuples(value, a_file).map(lambda t: ["icp", "set", "--tenant", t[0], "--file", t[1]]),
        st.tuples(value, bad_path).map(lambda t: ["icp", "set", "--tenant", t[0], "--file", t[1]]),
        value.map(lambda t: ["icp", "show", "--tenant", t]),
        st.tuples(value, value, value, st.sampled_from(["jsonrpc", "json2", "soap", ""]), value, value).map(
            lambda t: [
                "odoo",
                "connect",
                "--tenant",
                t[0],
                "--url",
                t[1],
                "--db",
                t[2],
                "--protocol",
                t[3],
                "--login",
                t[4],
                "--secret-env",
                t[5],
            ]  # fmt: skip
        ),
        st.tuples(not_a_number, bad_path).map(lambda t: ["acra", "synth", "--rows", t[0], "-o", t[1]]),
        st.tuples(st.integers(1, 50), value.filter(lambda v: v.strip().lower() not in ("0", "1")), bad_path).map(
            lambda t: ["acra", "synth", "--rows", str(t[0]), "--malformed-rate", t[1], "-o", t[2]]
        ),
        st.tuples(st.integers(1, 50), bad_path).map(lambda t: ["acra", "synth", "--rows", str(t[0]), "-o", t[1]]),
        st.tuples(a_file, date_value).map(lambda t: ["acra", "load", t[0], "--date", t[1], "--no-upsert"]),
        st.tuples(value, value).map(lambda t: ["jobs", "enqueue-upsert", "--tenant", t[0], "--terms", t[1]]),
        st.tuples(st.sampled_from(["status", "retry"]), st.one_of(value, st.integers().map(str)), value).map(
            lambda t: ["jobs", t[0], "--tenant", t[2], "--", t[1]]
        ),
        st.tuples(st.sampled_from(["status", "retry"]), st.integers(-(2**70), 2**70)).map(
            lambda t: ["jobs", t[0], "--", str(t[1])]
        ),
        value.filter(lambda v: v.strip().lower() not in ("demo", "realistic")).map(
            lambda v: ["sandbox", "up", "--profile", v]
        ),
        value.filter(lambda v: not re.fullmatch(r"\s*\d+(\.\d*)?\s*", v) or float(v) > 1000 or float(v) < 0.001).map(
            lambda v: ["sandbox", "up", "--time-scale", v]
        ),
        not_a_number.map(lambda v: ["sandbox", "up", "--registry-rows", v]),
        bad_url.map(lambda v: ["demo", "seed", "--odoo-url", v, "--no-registry"]),
        not_a_number.map(lambda v: ["dev", "--port", v]),
        st.just(["instance", "render", "--home", str(tmp / "input.bin" / "under-a-file")]),
        st.tuples(value, date_value).map(lambda t: ["night", "--tenant", t[0], "--date", t[1], "--dry-run"]),
        st.tuples(value, not_a_date).map(lambda t: ["night", "--tenant", t[0], "--date", t[1]]),
        st.tuples(value, date_value, st.sampled_from(["csv", "json", "xml"]), value, st.integers()).map(
            lambda t: [
                "export",
                "scores",
                "--tenant",
                t[0],
                "--date",
                t[1],
                "--format",
                t[2],
                "--after",
                t[3],
                "--limit",
                str(t[4]),
            ]  # fmt: skip
        ),
        st.tuples(value, value).map(lambda t: ["suppress", "add", "--tenant", t[0], "--", t[1]]),
        st.tuples(value, value).map(lambda t: ["suppress", "remove", "--tenant", t[0], "--", t[1]]),
        value.map(lambda t: ["suppress", "list", "--tenant", t]),
        st.tuples(value, date_value).map(lambda t: ["budget", "show", "--tenant", t[0], "--date", t[1]]),
        st.tuples(
            value,
            st.sampled_from(["lusha", "tavily", "zerobounce", "openai", "odoo", ""]),
            value,
            st.sampled_from(["--plan", "--tier", "--key-kind"]),
            value,
        ).map(lambda t: ["vendors", "connect", "--tenant", t[0], "--vendor", t[1], "--secret-env", t[2], t[3], t[4]]),
        value.map(lambda t: ["vendors", "list", "--tenant", t]),
        st.tuples(value, value).map(lambda t: ["vendors", "disconnect", "--tenant", t[0], "--vendor", t[1]]),
    )


@EXAMPLES
@given(data=st.data())
def test_every_command_refuses_bad_values_in_one_line(cli_env: Path, data: st.DataObject) -> None:
    # instance render's target must sit under a regular file, whatever the example wrote
    (cli_env / "input.bin").write_bytes(b"")
    argv = data.draw(invalid_invocations(cli_env))
    assert_refused(argv, run(argv))


# --- the cases the review found, named -------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [DEEP.encode(), b"9" * 5000, b'{"industries": ["x"], "weights": {"age": Infinity}}', b"\xff\xfe"],
    ids=["nested", "5000-digits", "infinity", "bad-utf8"],
)
def test_icp_set_hostile_files(cli_env: Path, content: bytes) -> None:
    argv = ["icp", "set", "--tenant", "nobody", "--file", write(cli_env, "rules.json", content)]
    result = run(argv)
    assert_refused(argv, result)
    assert "not valid JSON" in result.stderr


def test_unreadable_files_are_one_line(cli_env: Path) -> None:
    fifo_dir = cli_env / "a-directory.json"
    fifo_dir.mkdir()
    for argv in (
        ["icp", "set", "--tenant", "x", "--file", str(fifo_dir)],
        ["acra", "load", str(fifo_dir)],
        ["acra", "synth", "--rows", "5", "-o", str(cli_env / "missing-dir" / "out.csv")],
    ):
        assert_refused(argv, run(argv))


@pytest.mark.parametrize("day", ["2099-01-01", "2025-12-31", "1900-01-01"])
def test_night_outside_the_partition_range_is_one_line(cli_env: Path, day: str) -> None:
    result = run(["night", "--tenant", "nobody", "--date", day])
    assert_refused(["night", day], result)
    assert f"no night for {day}" in result.stderr


def test_nan_ranges_are_refused(cli_env: Path) -> None:
    for argv in (["sandbox", "up", "--time-scale", "nan"], ["acra", "synth", "--malformed-rate", "nan", "-o", "x"]):
        assert_refused(argv, run(argv))


# --- export cursors -----------------------------------------------------------------------------


def cursor_of(payload: str) -> str:
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


HOSTILE_CURSORS = [
    cursor_of('[1, "2026-03-02", Infinity, 5]'),
    cursor_of('[1, "2026-03-02", NaN, 5]'),
    cursor_of('[1, "2026-03-02", 0.5, 1e400]'),
    cursor_of('[1, "2026-03-02", 0.5, 100000000000000000000000000000]'),
    cursor_of('[1, "2026-03-02", 1e308, 5]'),
    cursor_of("[" * 5000 + "]" * 5000),
    cursor_of('[1, "9999-99-99", 0.5, 5]'),
    "A" * 10_000,
]


@pytest.mark.parametrize("token", HOSTILE_CURSORS)
def test_hostile_cursors_are_config_errors(token: str) -> None:
    with pytest.raises(ConfigError, match="invalid cursor"):
        Cursor.decode(token)


@settings(max_examples=300, deadline=None, database=None)
@given(payload=st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=12),
                            lambda kids: st.lists(kids, max_size=5), max_leaves=12))  # fmt: skip
def test_any_cursor_payload_decodes_or_is_a_config_error(payload: object) -> None:
    token = cursor_of(json.dumps(payload))
    try:
        cursor = Cursor.decode(token)
    except ConfigError:
        return
    assert 0 <= cursor.score <= 1 and cursor.company_id > 0


def test_cli_export_with_hostile_cursors_is_one_line(cli_env: Path, owner_conn) -> None:  # type: ignore[no-untyped-def]
    add_tenant(owner_conn, "acme")
    for token in HOSTILE_CURSORS:
        argv = ["export", "scores", "--tenant", "acme", "--after", token]
        result = run(argv)
        assert_refused(argv, result)
        assert "invalid cursor" in result.stderr
