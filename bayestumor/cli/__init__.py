"""The `bayestumor` command line.

Each command group lives beside the code it drives and contributes an
``add_subparser(subparsers)`` function that registers its parser and sets ``func``. Heavy imports
(JAX, NumPyro) happen inside the command functions so that ``bayestumor --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from bayestumor.errors import InputError
from bayestumor.utils import use_cpu_cores_for_chains

# Commands that sample with NUTS: they get one host device per CPU core, so that chains run in
# parallel. This happens first, before JAX's first computation fixes the device count (importing
# BlackJAX performs one); a sampler with more chains than devices runs them one after the other.
_SAMPLING_COMMANDS = frozenset({"calibrate", "demo"})

# Modules that provide `add_subparser(subparsers)`, in the order shown by --help.
_COMMAND_MODULES = (
    "bayestumor.cli._simulate",
    "bayestumor.cli._calibrate",
    "bayestumor.cli._surrogate",
    "bayestumor.cli._cohort",
    "bayestumor.cli._radiotherapy",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command group registered."""
    parser = argparse.ArgumentParser(
        prog="bayestumor",
        description="Bayesian calibration of brain-tumour growth models to MRI/PET scans.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).add_subparser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `bayestumor` script; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in _SAMPLING_COMMANDS:
        use_cpu_cores_for_chains(os.cpu_count() or 1)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as error:
        print(f"bayestumor: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
