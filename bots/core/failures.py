"""How a long-running bot reports a failure: an outage of a service it stands on (the database,
the broker) is one line naming it and what to check, repeated while it lasts; anything else
keeps its traceback (in the message, where the log filter redacts tokens)."""

from __future__ import annotations

import logging
import traceback

from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import DisconnectionError, OperationalError

OUTAGES: tuple[tuple[type[BaseException], str], ...] = (
    (OperationalError, "the database is unreachable or failing (STYLEBOT_DATABASE_URL); retrying"),
    (DisconnectionError, "the database connection was lost; retrying"),
    (BrokerError, "the broker is unreachable (STYLEBOT_BROKER_URL); retrying"),
)


def outage(exc: BaseException | None) -> str | None:
    """The one line for a service outage, or None when `exc` is something else."""
    seen, hops = exc, 0
    while seen is not None and hops < 5:  # an app error may wrap the driver's
        for kind, line in OUTAGES:
            if isinstance(seen, kind):
                return line
        seen, hops = seen.__cause__ or seen.__context__, hops + 1
    return None


def report(log: logging.Logger, event: str, exc: BaseException | None) -> None:
    line = outage(exc)
    if line is not None:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        log.warning("%s error=%s: %s (%s)", event, type(exc).__name__, line, first)
        return
    trace = "".join(traceback.format_exception(exc)) if exc else ""
    log.error("%s error=%s\n%s", event, type(exc).__name__, trace)
