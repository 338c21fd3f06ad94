"""The `bayestumor` command line: one module per command, imported explicitly below.

Every command module is light at import (argparse and `bayestumor.config` only); JAX, NumPyro
and matplotlib are imported inside the functions that run a command, so ``bayestumor --help``
and ``bayestumor COMMAND --help`` answer without starting JAX. Any `BayesTumorError` ends as
``bayestumor: error: …`` with exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from bayestumor.cli import (
    _calibrate,
    _cohort,
    _demo,
    _evaluate,
    _predict_gbm,
    _radiotherapy,
    _report,
    _simulate,
    _surrogate,
)
from bayestumor.errors import BayesTumorError
from bayestumor.utils import use_cpu_cores_for_chains

# Commands that sample with NUTS: they get one host device per CPU core, so that chains run in
# parallel. This happens first, before JAX's first computation fixes the device count (importing
# BlackJAX performs one); a sampler with more chains than devices runs them one after the other.
_SAMPLING_COMMANDS = frozenset({"calibrate", "demo", "predict-gbm"})

# In the order --help shows them.
_COMMANDS = (
    _simulate,
    _calibrate,
    _demo,
    _report,
    _surrogate,
    _cohort,
    _radiotherapy,
    _evaluate,
    _predict_gbm,
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command registered."""
    parser = argparse.ArgumentParser(
        prog="bayestumor",
        description="Bayesian calibration of brain-tumour growth models to MRI/PET scans.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `bayestumor` script; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in _SAMPLING_COMMANDS:
        use_cpu_cores_for_chains(os.cpu_count() or 1)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BayesTumorError as error:
        print(f"bayestumor: error: {error}", file=sys.stderr)
        return 2
