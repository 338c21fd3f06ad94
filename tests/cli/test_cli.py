"""The command line as a user meets it: help without starting JAX, one error format, exit codes."""

import subprocess
import sys

import pytest

from bayestumor.cli import build_parser, main

HEAVY = ("jax", "numpyro", "blackjax", "arviz", "diffrax", "equinox", "matplotlib", "dask")


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)


@pytest.mark.parametrize("argv", [["--help"], ["calibrate", "--help"], ["demo", "--help"]])
def test_help_imports_no_numerical_library(argv):
    """`bayestumor --help` and `bayestumor calibrate --help` never import JAX (or NumPyro,
    ArviZ, matplotlib, Dask) — the import of JAX alone costs seconds — in a fresh interpreter."""
    code = (
        "import sys\n"
        "from bayestumor.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    completed = _fresh(code)
    assert "usage: bayestumor" in completed.stdout
    assert completed.stdout.strip().splitlines()[-1] == "[]"


def test_import_bayestumor_is_light_and_leaves_matplotlib_alone():
    """`import bayestumor` imports no numerical library; importing the plotting workflows does
    not switch the user's matplotlib backend."""
    completed = _fresh(
        "import sys, bayestumor\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import bayestumor.workflows, bayestumor.cohort, bayestumor.radiotherapy\n"
        "print(matplotlib.get_backend())\n"
    )
    light, backend = completed.stdout.strip().splitlines()[-2:]
    assert light == "[]"
    assert backend == "svg"


def test_every_command_is_registered_with_help():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == {
        "simulate",
        "calibrate",
        "demo",
        "report",
        "surrogate",
        "cohort",
        "rt",
        "evaluate",
        "predict-gbm",
    }
    for name, command in commands.items():
        assert command.format_help().startswith(f"usage: bayestumor {name}"), name


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["calibrate", "no-such-dir", "--out", "OUT"], "patient directory not found"),
        (["report", "no-such-run"], "not a calibration run directory"),
        (["surrogate", "info", "no-such-model"], "no-such-model"),
        (["rt", "fit", "no-such.csv", "--out", "OUT"], "no-such.csv"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    """Every user-facing failure ends as `bayestumor: error: …` with exit code 2, no traceback,
    and writes nothing."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("bayestumor: error: ") and message in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
