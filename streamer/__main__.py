"""The `clonewatch` command line (DESIGN.md "Command line")."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
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
    parser = argparse.ArgumentParser(
        prog="clonewatch", description="Real-time voice-clone detection for monitored lines."
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the live service")
    serve.add_argument("--config", help="TOML file over the embedded defaults")
    serve.add_argument("--events", help="append every event as one JSON line to this file")

    users = sub.add_parser("users", help="manage console users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="create or update a console user")
    add.add_argument("name")
    add.add_argument("--role", choices=["operator", "supervisor"], required=True)
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--config", help="TOML file over the embedded defaults")

    replay = sub.add_parser("replay", help="replay recordings and captures through the pipeline")
    replay.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    replay.add_argument("--json", type=Path, help="one JSON line per input file")
    replay.add_argument("--timeline", type=Path, metavar="DIR", help="per-window CSV per file")
    replay.add_argument("--plot", type=Path, metavar="DIR", help="a PNG per file")
    replay.add_argument("--realtime", action="store_true", help="pace input like a live call")
    replay.add_argument("--workers", type=int, default=0, help="processes; 0 = one per core")
    replay.add_argument("--config", help="TOML file over the embedded defaults")

    evaluate = sub.add_parser("evaluate", help="error rates of a model on labelled audio")
    evaluate.add_argument("data", type=Path, metavar="MANIFEST_OR_DIR")
    evaluate.add_argument("--json", type=Path, help="write the report as JSON")
    evaluate.add_argument("--plot", type=Path, metavar="FILE", help="DET plot as PNG")
    evaluate.add_argument("--split", help="only rows of this split (manifest column `split`)")
    evaluate.add_argument("--channel", help="only this simulated channel")
    evaluate.add_argument("--model", type=Path, help="model .onnx (default: the configured one)")
    evaluate.add_argument("--config", help="TOML file over the embedded defaults")

    from streamer.call_client import add_arguments

    add_arguments(sub.add_parser("call", help="play a recording into a service as a live call"))
    return parser


def _cmd_serve(args: argparse.Namespace) -> int:
    from streamer.app import serve

    config = load_config(args.config)
    return _run(serve(config, args.events))


def _cmd_users(args: argparse.Namespace) -> int:
    from alerts.auth import Role, UserStore

    config = load_config(args.config)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("clonewatch: passwords differ", file=sys.stderr)
            return 2
    store = UserStore(config.store.path)
    try:
        store.add_user(args.name, Role(args.role), password)
    except ValueError as exc:
        print(f"clonewatch: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"user {args.name} ({args.role}) saved in {config.store.path}")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from streamer.replay_command import ReplayOptions, run_replay

    options = ReplayOptions(args.json, args.timeline, args.plot, args.realtime, args.workers)
    return run_replay(args.paths, load_config(args.config), options)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from inference.evaluate import run_evaluate

    config = load_config(args.config)
    return run_evaluate(
        args.data,
        args.model or config.model_path(),
        json_out=args.json,
        plot_out=args.plot,
        split=args.split,
        channel=args.channel,
        verdict=config.verdict,
    )


def _cmd_call(args: argparse.Namespace) -> int:
    from streamer.call_client import run_call

    return _run(run_call(args))


COMMANDS = {
    "serve": _cmd_serve,
    "users": _cmd_users,
    "replay": _cmd_replay,
    "evaluate": _cmd_evaluate,
    "call": _cmd_call,
}


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
