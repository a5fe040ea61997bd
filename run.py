#!/usr/bin/env python3
"""byom-playground: try, map and serve models for V7 Darwin's "Bring Your Own Model".

`python run.py` starts the API (gunicorn) and the playground UI (Streamlit) together;
the sub-commands below do one thing each. `python run.py COMMAND --help` explains each.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Sub-command name -> (module with add_arguments(parser) and main(args), one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "playground": ("playground.cli", "start the API and the UI together (the default)"),
    "serve": ("server.cli", "run the inference API alone, under gunicorn"),
    "ui": ("playground.cli_ui", "run the UI alone, against any endpoint (--api-url)"),
    "models": ("models.cli", "list model files and whether they are present; 'models pull' downloads them"),
    "check": ("tools.check", "check any HTTP endpoint against V7's BYOM contract"),
    "annotate": ("tools.annotate", "run a model over images and write Darwin JSON 2.0 files"),
    "new-model": ("tools.new_model", "write a working model file and its test to start from"),
    "bench": ("bench.latency", "measure latency in-process and through HTTP"),
    "load": ("bench.load", "load test: throughput, p50/p95/p99 at 1-8 clients, memory"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # one broken command must not take the others down
            sub_parser = sub.add_parser(name, help=f"{help_text} (unavailable: {exc})")
            sub_parser.set_defaults(handler=_unavailable(name, exc))
            continue
        sub_parser = sub.add_parser(
            name, help=help_text, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(handler=module.main)
    return parser


def _unavailable(name: str, exc: ImportError):
    def handler(_args: argparse.Namespace) -> int:
        print(f"error: the '{name}' command cannot start: {exc} (pip install -r requirements.txt)", file=sys.stderr)
        return 2

    return handler


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv.insert(0, "playground")
    args = build_parser().parse_args(argv)
    if getattr(args, "handler", None) is None:
        build_parser().print_help()
        return 0
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
