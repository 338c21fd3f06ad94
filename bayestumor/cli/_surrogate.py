"""``bayestumor surrogate``: generate training data, train, check and inspect the neural surrogate.

bayestumor surrogate generate --out data/surrogate --split train --samples 3072
bayestumor surrogate train configs/surrogate_fk-mni152-4mm-v1.json
bayestumor surrogate check fk-mni152-4mm-v1 --samples 128
bayestumor surrogate info fk-mni152-4mm-v1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers) -> None:
    """Register ``bayestumor surrogate`` and its sub-commands."""
    parser = subparsers.add_parser(
        "surrogate",
        help="neural surrogate of the PDE: generate data, train, check accuracy",
        description="Generate PDE training data, train the surrogate network, check it "
        "against fresh PDE solves on held-out anatomy, and inspect shipped models.",
    )
    commands = parser.add_subparsers(dest="surrogate_command", required=True, metavar="ACTION")

    generate = commands.add_parser("generate", help="PDE solves on augmented MNI152 crops")
    generate.add_argument("--out", default="data/surrogate", help="data folder (git-ignored)")
    generate.add_argument("--split", default="train", choices=("train", "test", "phantom"))
    generate.add_argument("--samples", type=int, default=3072, help="number of PDE solves")
    generate.add_argument("--shard-size", type=int, default=64)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--quiet", action="store_true", help="no progress bar")
    generate.set_defaults(func=_generate)

    train = commands.add_parser("train", help="train a network from a JSON config")
    train.add_argument("config", help="training config (JSON), e.g. configs/surrogate_*.json")
    train.add_argument("--models", default=None, help="models folder (default: repository's)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)

    check = commands.add_parser(
        "check", help="accuracy against fresh PDE solves on held-out seeds and unseen anatomy"
    )
    check.add_argument("model", help="model name under models/, or a model folder")
    check.add_argument("--samples", type=int, default=128, help="fresh solves per split")
    check.add_argument("--seed", type=int, default=12345, help="seed of the fresh solves")
    check.add_argument("--json", default=None, help="also write the table as JSON here")
    check.add_argument(
        "--write-card",
        action="store_true",
        help="store the result in the model folder (accuracy.json, model card, checksums)",
    )
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(func=_check)

    info = commands.add_parser("info", help="verify a model folder and print its header")
    info.add_argument("model", help="model name under models/, or a model folder")
    info.set_defaults(func=_info)


def _model_dir(model: str) -> Path:
    from bayestumor.forward.surrogate import models_dir

    path = Path(model)
    return path if path.is_dir() else models_dir() / model


def _generate(args: argparse.Namespace) -> int:
    from bayestumor.forward.surrogate import DataConfig, generate

    config = DataConfig(
        split=args.split, n_samples=args.samples, shard_size=args.shard_size, seed=args.seed
    )
    manifest = generate(config, args.out, progress=not args.quiet)
    print(f"wrote {manifest}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from bayestumor.forward.surrogate import TrainConfig, models_dir, save_network, train

    config = TrainConfig.from_json(args.config)
    net, record = train(config, progress=not args.quiet)
    out = Path(args.models) / config.name if args.models else models_dir() / config.name
    save_network(out, net, extra={"trained_on": record["platform"], "device": record["device"]})
    (out / "training_config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n")
    (out / "training_record.json").write_text(json.dumps(record, indent=1) + "\n")
    print(
        f"trained {record['steps_done']} steps in {record['wall_seconds']:.0f} s; wrote {out} "
        "(run `bayestumor surrogate check --write-card` to add the card and checksums)"
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from bayestumor.forward.surrogate import check_model, format_table, write_card

    directory = _model_dir(args.model)
    result = check_model(
        directory,
        n_samples=args.samples,
        seed=args.seed,
        progress=not args.quiet,
        verify=not args.write_card,
    )
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.write_card:
        write_card(directory, result)
        print(f"wrote accuracy, model card and checksums to {directory}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from bayestumor.forward.surrogate import verify_model_dir

    header = verify_model_dir(_model_dir(args.model))
    print(json.dumps(header, indent=1))
    return 0
