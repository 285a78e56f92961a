"""`stylebot admin VERB ARGS…`: the admin chat commands for operators, from the shell."""

from __future__ import annotations

import getpass

from bots.core import Command, Core, build_runtime
from bots.core.admin import Admin, AdminRequest
from storage.settings import Settings


def run_admin(settings: Settings, verb: str, args: list[str]) -> int:
    runtime = build_runtime(settings)
    try:
        request = AdminRequest(f"shell:{getpass.getuser()}", "en", Command(verb, tuple(args)))
        reply, ok = Admin(Core(runtime)).run(request)
    finally:
        runtime.engine.dispose()
    print(reply.text)
    return 0 if ok else 1
