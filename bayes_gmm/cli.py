"""Command line: ``bayes-gmm demo`` (more commands build on it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, seed=args.seed, echo=print)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayes-gmm",
        description="Gaussian mixtures that never die of a singular covariance (MAP-EM).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the seed-problem story end to end",
                          description="Plain EM fails on the seed problem; MAP-EM does not. Writes figures to --out.")
    demo.add_argument("--out", default="demo_output", help="output folder (created if missing; default: demo_output)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the classic random start (default: 0)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
