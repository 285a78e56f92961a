"""`stylebot …`: the entry point. Settings are parsed here, once, and passed down."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bots.core.admin import ADMIN_COMMANDS
from bots.core.preflight import preflight
from storage.settings import Settings, SettingsError, load_settings
from tasks.styles import StylesError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stylebot", description="Styled images in chat, fairly queued."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="one round trip through the real path on embedded defaults")
    demo.add_argument(
        "photo", nargs="?", type=Path, help="a JPEG/PNG/WebP (default: a bundled sample)"
    )
    demo.add_argument("--style", default="ghibli")
    demo.add_argument(
        "--out", type=Path, help="where to write the result (default: data/demo-STYLE.jpg)"
    )
    chat = sub.add_parser("chat", help="talk to the bot in this terminal (console adapter)")
    chat.add_argument("--user", default="console:you", help="platform-qualified id to chat as")
    chat.add_argument("--locale", default="en", choices=["en", "ar"])
    chat.add_argument("--no-worker", action="store_true", help="don't start a worker process")
    worker = sub.add_parser("worker", help="run a Celery worker on the gpu queue")
    worker.add_argument("--concurrency", type=int, default=1, help="processes (one per GPU)")
    worker.add_argument("--loglevel", default="INFO")
    sub.add_parser("migrate", help="apply database migrations (Alembic) and exit")
    health = sub.add_parser(
        "health",
        help="container healthcheck: this host's bot or worker (exit 0 or 1)",
        description="bot: the delivery and housekeeping loops ran recently and the database "
        "answers. worker: a worker process of this host has a fresh heartbeat (it beats once "
        "warm-up is done). One line; exit 0 healthy, 1 not (yet).",
    )
    health.add_argument("role", choices=["bot", "worker"])
    telegram = sub.add_parser(
        "telegram", help="run the Telegram bot (see the README: Run on Telegram)"
    )
    telegram.add_argument(
        "--with-worker", action="store_true", help="also start a worker process (a local try)"
    )
    discord = sub.add_parser("discord", help="run the Discord bot (see the README: Run on Discord)")
    discord.add_argument(
        "--with-worker", action="store_true", help="also start a worker process (a local try)"
    )
    admin = sub.add_parser(
        "admin",
        help="run an admin command from the shell (stylebot admin -h)",
        description="The admin chat commands, from the shell (audited as shell:<login>). "
        "Example: stylebot admin grant telegram:123 5",
    )
    admin.add_argument("verb", choices=sorted(ADMIN_COMMANDS))
    admin.add_argument("args", nargs="*")
    bench = sub.add_parser(
        "bench",
        help="measure this machine (stylebot bench queue|gpu|overlap|load -h)",
        description="Benchmarks on this machine. queue: the queue path's overhead and "
        "worker scaling (Redis + PostgreSQL); gpu: images/s of the diffusers path, naive "
        "pipeline versus our worker, against the compute limit; overlap: what the worker's "
        "CPU/GPU overlap buys, a sleeping stand-in for the GPU; load: a viral minute of people "
        "through the Telegram bot on its emulator (a source checkout). `-h` after any for options.",
    )
    bench.add_argument("what", choices=["queue", "gpu", "overlap", "load"])
    bench.add_argument("args", nargs=argparse.REMAINDER)
    return p


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from bots.console.demo import run_demo

    return run_demo(settings, args.photo, args.style, args.out)


def _chat(settings: Settings, args: argparse.Namespace) -> int:
    from bots.console.repl import run_chat

    return run_chat(settings, args.user, args.locale, with_worker=not args.no_worker)


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from tasks.worker import run_worker

    run_worker(settings, concurrency=args.concurrency, loglevel=args.loglevel)
    return 0


def _telegram(settings: Settings, args: argparse.Namespace) -> int:
    from bots.telegram import run_telegram

    return run_telegram(settings, with_worker=args.with_worker)


def _discord(settings: Settings, args: argparse.Namespace) -> int:
    from bots.discord import run_discord

    return run_discord(settings, with_worker=args.with_worker)


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from storage.migrate import current, upgrade

    upgrade(settings.sqlalchemy_url)
    print(f"database at revision {current(settings.sqlalchemy_url)}")
    return 0


def _health(settings: Settings, args: argparse.Namespace) -> int:
    from storage.health import check_bot, check_worker

    ok, line = check_bot(settings) if args.role == "bot" else check_worker(settings)
    print(line)
    return 0 if ok else 1


def _admin(settings: Settings, args: argparse.Namespace) -> int:
    from bots.console.shell_admin import run_admin

    return run_admin(settings, args.verb, args.args)


def _bench(_settings: Settings, args: argparse.Namespace) -> int:
    if args.what == "load":
        from bench.load import main as bench_load

        return bench_load(args.args, prog="stylebot bench load")
    if args.what == "gpu":
        from bench.gpu import main as bench_gpu

        return bench_gpu(args.args, prog="stylebot bench gpu")
    if args.what == "overlap":
        from bench.overlap import main as bench_overlap

        return bench_overlap(args.args, prog="stylebot bench overlap")
    from bench.queue import main as bench_queue

    return bench_queue(args.args, prog=f"stylebot bench {args.what}")


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "demo": _demo,
    "chat": _chat,
    "worker": _worker,
    "migrate": _migrate,
    "health": _health,
    "admin": _admin,
    "telegram": _telegram,
    "discord": _discord,
    "bench": _bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        preflight(settings, args.command)  # before logging: its INFO lines would bury the one line
        from bots.logs import setup_logging

        setup_logging(
            "WARNING" if args.command in ("demo", "chat", "health") else "INFO",
            secrets=(settings.telegram_token, settings.discord_token),
        )
        return COMMANDS[args.command](settings, args)
    except (SettingsError, StylesError) as exc:
        print(f"stylebot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
