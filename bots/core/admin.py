"""Admin commands: one grammar on every platform and in `stylebot admin`, audited.

    /grant <user> <n>      /setlimit <tier> <n>    /settier <user> <tier>
    /ban <user> [reason]   /unban <user>           /capacity [open|paused-free|closed|auto]
    /stats                 /whois <user>           /refund <charge id>
    /appeals               /release <job id>       /confirm <job id>

<user> is a platform-qualified id (telegram:123), a username the bot has seen, or — where
the platform has replies — the person whose message the admin answered (`reply_to`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import Session, col

from bots.core import appeals
from bots.core.admin_views import capacity_view, refund_notes, stats_view, whois_view
from bots.core.commands import Command
from bots.core.messages import t
from bots.core.requests import Reply
from bots.core.service import Core
from quota.controls import MODE_KEY, MODES, SURGE_KEY, audit, capacity_mode, put, tier_limit
from quota.stats import find_user
from quota.tiers import TIER_NAMES
from storage.db import transaction
from storage.models import User

USAGE = {
    "grant": "/grant <user> <n>",
    "setlimit": "/setlimit <tier> <n>",
    "settier": "/settier <user> <tier>",
    "ban": "/ban <user> [reason]",
    "unban": "/unban <user>",
    "capacity": "/capacity [open|paused-free|closed|auto]",
    "stats": "/stats",
    "whois": "/whois <user>",
    "refund": "/refund <charge id>",
    **appeals.USAGE,  # held-back results (bots/core/appeals.py)
}
ADMIN_COMMANDS = frozenset(USAGE)
MAX_GRANT = 1000
MAX_LIMIT = 100_000


@dataclass(frozen=True)
class AdminRequest:
    actor: str  # telegram:123, or shell:<login> from `stylebot admin`
    locale: str
    command: Command
    reply_to: str | None = None  # platform-qualified id of the person replied to


class AdminError(Exception):
    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key, self.params = key, params


def parse_int(value: str, low: int, high: int) -> int:
    if not re.fullmatch(r"[+-]?\d{1,9}", value) or not low <= int(value) <= high:
        raise AdminError("bad_number", value=value[:20], low=low, high=high)
    return int(value)


def resolve_user(session: Session, ref: str) -> User:
    user = find_user(session, ref)
    if user is None:
        raise AdminError("unknown_user", user=ref[:40])
    return user


class Admin:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.rt = core.rt
        self.verbs: dict[str, Callable[[Session, AdminRequest], Reply]] = {
            "grant": self._grant,
            "setlimit": self._setlimit,
            "settier": self._settier,
            "ban": self._ban,
            "unban": self._unban,
            "capacity": self._capacity,
            "stats": self._stats,
            "whois": self._whois,
            "appeals": lambda s, req: appeals.appeals_view(
                self.core, s, req.command.args, req.locale
            ),
            "release": lambda s, req: appeals.release(
                self.core, s, req.actor, req.command.args, req.locale
            ),
            "confirm": lambda s, req: appeals.confirm(
                self.core, s, req.actor, req.command.args, req.locale
            ),
        }
        # Verbs that call a platform: no transaction may stay open across the call.
        self.calls: dict[str, Callable[[AdminRequest], Reply]] = {"refund": self._refund}

    def allowed(self, actor: str) -> bool:
        return actor.startswith("shell:") or actor in self.rt.settings.admins

    def run(self, req: AdminRequest) -> tuple[Reply, bool]:
        """Check, execute and audit one admin command; (reply, succeeded)."""
        name, loc = req.command.name, req.locale
        with transaction(self.rt.engine) as s:
            if not self.allowed(req.actor):
                audit(s, actor=req.actor, action=name, now=self.rt.clock(), allowed=False)
                return Reply(t("not_allowed", loc)), False
        try:
            if name in self.calls:
                return self.calls[name](req), True
            with transaction(self.rt.engine) as s:
                return self.verbs[name](s, req), True
        except (AdminError, appeals.AppealRefused) as err:
            return Reply(t(err.key, loc, **err.params)), False

    def handle(self, req: AdminRequest) -> Reply:
        return self.run(req)[0]

    # --- parsing helpers -----------------------------------------------------------------

    @staticmethod
    def _args(req: AdminRequest, count: int) -> tuple[str, ...]:
        """Exactly `count` arguments, the first being the user unless it came as a reply."""
        args = req.command.args
        if req.reply_to is not None and len(args) == count - 1:
            args = (req.reply_to, *args)
        if len(args) != count:
            raise AdminError("usage", usage=USAGE[req.command.name])
        return args

    def _done(
        self, s: Session, req: AdminRequest, target: str, before: object, after: object
    ) -> None:
        audit(
            s,
            actor=req.actor,
            action=req.command.name,
            now=self.rt.clock(),
            target=target,
            before=before,
            after=after,
        )

    # --- verbs -----------------------------------------------------------------------------

    def _grant(self, s: Session, req: AdminRequest) -> Reply:
        ref, amount = self._args(req, 2)
        n = parse_int(amount, 1, MAX_GRANT)
        user = resolve_user(s, ref)
        before = user.extra_credits
        s.execute(
            update(User).where(col(User.id) == user.id).values(extra_credits=User.extra_credits + n)
        )
        self._done(s, req, user.id, before, before + n)
        return Reply(t("granted", req.locale, user=user.id, credits=before + n, n=n))

    def _setlimit(self, s: Session, req: AdminRequest) -> Reply:
        args = req.command.args
        if len(args) != 2:
            raise AdminError("usage", usage=USAGE["setlimit"])
        name, n = args[0].lower(), parse_int(args[1], 0, MAX_LIMIT)
        if name not in self.rt.tiers:
            raise AdminError("unknown_tier", tier=args[0][:20], tiers=", ".join(TIER_NAMES))
        before = tier_limit(s, self.rt.tiers[name])
        put(s, f"limit:{name}", str(n), self.rt.clock())
        self._done(s, req, name, before, n)
        return Reply(t("limit_set", req.locale, tier=name, before=before, after=n))

    def _settier(self, s: Session, req: AdminRequest) -> Reply:
        ref, name = self._args(req, 2)
        if name.lower() not in self.rt.tiers:
            raise AdminError("unknown_tier", tier=name[:20], tiers=", ".join(TIER_NAMES))
        user = resolve_user(s, ref)
        before, user.tier = user.tier, name.lower()
        notes, logged, after = [], before, user.tier
        if user.tier_until is not None:  # the admin's choice stands: no pass end undoes it
            logged = f"{before} until {user.tier_until:%Y-%m-%d %H:%M}, then {user.base_tier}"
            after = f"{user.tier} (pass ended)"
            notes.append(t("tier_set_pass_cleared", req.locale))
            user.tier_until = user.base_tier = None
        s.add(user)
        self._done(s, req, user.id, logged, after)
        text = t("tier_set", req.locale, user=user.id, before=before, after=user.tier)
        return Reply(" ".join([text, *notes]))

    def _ban(self, s: Session, req: AdminRequest) -> Reply:
        args = req.command.args
        if req.reply_to is not None:
            args = (req.reply_to, *args)
        if not args:
            raise AdminError("usage", usage=USAGE["ban"])
        user = resolve_user(s, args[0])
        reason = " ".join(args[1:])[:200] or None
        user.banned, user.ban_reason = True, reason
        s.add(user)
        self._done(s, req, user.id, "not banned", f"banned: {reason or '-'}")
        return Reply(t("user_banned", req.locale, user=user.id))

    def _unban(self, s: Session, req: AdminRequest) -> Reply:
        (ref,) = self._args(req, 1)
        user = resolve_user(s, ref)
        before = "banned" if user.banned else "not banned"
        user.banned, user.ban_reason = False, None
        s.add(user)
        self._done(s, req, user.id, before, "not banned")
        return Reply(t("user_unbanned", req.locale, user=user.id))

    def _capacity(self, s: Session, req: AdminRequest) -> Reply:
        args = req.command.args
        if not args:
            return capacity_view(self.core, s, req.locale)
        mode = args[0].lower()
        if len(args) != 1 or mode not in MODES:
            raise AdminError("bad_mode", mode=args[0][:20], modes=", ".join(MODES))
        before, now = capacity_mode(s), self.rt.clock()
        put(s, MODE_KEY, mode, now)
        put(s, SURGE_KEY, "0", now)  # a new mode starts from the configured free limit
        self._done(s, req, "capacity", before, mode)
        return Reply(t("capacity_set", req.locale, before=before, after=mode))

    def _stats(self, s: Session, req: AdminRequest) -> Reply:
        if req.command.args:
            raise AdminError("usage", usage=USAGE["stats"])
        return stats_view(self.core, s, req.locale)

    def _whois(self, s: Session, req: AdminRequest) -> Reply:
        (ref,) = self._args(req, 1)
        return whois_view(self.core, s, resolve_user(s, ref), req.locale)

    def _refund(self, req: AdminRequest) -> Reply:
        """Refund on the platform (outside any transaction), then take the purchase back."""
        args = req.command.args
        if len(args) != 1 or len(args[0]) > 200:
            raise AdminError("usage", usage=USAGE["refund"])
        result = self.core.shop.refund(args[0], req.actor)
        params = {"charge": result.charge[:60], "platform": result.platform}
        if result.outcome != "done":
            raise AdminError(f"refund_{result.outcome}", **params)
        loc = req.locale
        text = t("refund_done", loc, user=result.user, product=result.product, **params)
        return Reply(" ".join([text, *refund_notes(self.core, result, loc)]))
