"""The `clonewatch` command line (DESIGN.md "Command line")."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from streamer.config import load_config
from streamer.errors import ConfigError

logger = logging.getLogger("clonewatch")


class _ContextFormatter(logging.Formatter):
    """Appends the call id and stage of `extra=` to each line, when given."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = [
            f"{key}={getattr(record, key)}"
            for key in ("call_id", "stage")
            if getattr(record, key, None) is not None
        ]
        return f"{line} [{' '.join(context)}]" if context else line


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_ContextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def _run(main: Coroutine[Any, Any, int | None]) -> int:
    try:
        import uvloop  # the faster loop, where it installs

        result = uvloop.run(main)
    except ImportError:
        result = asyncio.run(main)
    return int(result or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clonewatch", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the live service")
    serve.add_argument("--config", help="TOML file over the embedded defaults")
    serve.add_argument("--events", help="append every event as one JSON line to this file")
    return parser


def _cmd_serve(args: argparse.Namespace) -> int:
    from streamer.app import serve

    config = load_config(args.config)
    return _run(serve(config, args.events))


COMMANDS = {"serve": _cmd_serve}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `clonewatch` console script."""
    args = _parser().parse_args(argv)
    _setup_logging(args.log_level)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"clonewatch: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"clonewatch: file not found: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
