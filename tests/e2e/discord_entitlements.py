"""Monetization on the emulated Discord: entitlements (what a person bought from the app's
store), their gateway events, their place on every interaction, and consuming a consumable.

A purchase is an ENTITLEMENT_CREATE; a refund or a test entitlement removed, an
ENTITLEMENT_DELETE; a subscription renewed or cancelled, an ENTITLEMENT_UPDATE with its new
ends_at. Each interaction lists its user's active entitlements (not deleted, not ended, not
consumed), as Discord does; consuming one takes it off that list."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from tests.e2e.discord_http import Req
from tests.e2e.discord_payloads import (
    APP_ID,
    PURCHASE,
    ApiError,
    entitlement_payload,
    iso,
)
from tests.e2e.discord_state import DiscordState

Reply = tuple[int, Any]
UNKNOWN_ENTITLEMENT = ApiError(404, 10029, "Unknown Entitlement")


class Entitlements(DiscordState):
    # --- test controls (any thread) -----------------------------------------------------------

    def entitle(
        self,
        user: dict[str, Any],
        sku_id: int,
        *,
        consumable: bool = False,
        kind: int = PURCHASE,
        days: float | None = None,
        dispatch: bool = True,
    ) -> dict[str, Any]:
        """The person buys `sku_id` in the app's store: a new entitlement, and (unless
        dispatch=False, as when the bot was away) its ENTITLEMENT_CREATE. `days` gives it an
        end, as a subscription has; a one-time purchase (the default) has none."""
        with self.lock:
            now = self.now()
            ends = now + days * 86400 if days is not None else None
            starts = now if days is not None else None
            self.users.setdefault(int(user["id"]), user)
            ent = entitlement_payload(
                self.snowflake(), sku_id, int(user["id"]), kind=kind, starts_at=starts, ends_at=ends
            )
            self.entitlements[int(ent["id"])] = ent
            if consumable:
                self.consumables.add(int(ent["id"]))
            made = copy.deepcopy(ent)
        if dispatch:
            self.dispatch("ENTITLEMENT_CREATE", made)
        return made

    def end_entitlement(self, entitlement_id: int | str, *, ago: float = 1.0) -> dict[str, Any]:
        """Its subscription ended (cancelled, not renewed): ENTITLEMENT_UPDATE with an ends_at
        `ago` seconds in the past. Entitlements are not deleted when they end."""
        with self.lock:
            ent = self._entitlement(entitlement_id)
            ent["ends_at"] = iso(self.now() - ago)
            made = copy.deepcopy(ent)
        self.dispatch("ENTITLEMENT_UPDATE", made)
        return made

    def delete_entitlement(
        self, entitlement_id: int | str, *, dispatch: bool = True
    ) -> dict[str, Any]:
        """Discord took it back (a refund, or a test entitlement deleted): ENTITLEMENT_DELETE,
        unless dispatch=False (the bot was away and missed it)."""
        with self.lock:
            ent = self._entitlement(entitlement_id)
            ent["deleted"] = True
            made = copy.deepcopy(ent)
        if dispatch:
            self.dispatch("ENTITLEMENT_DELETE", made)
        return made

    def redeliver_entitlement(self, entitlement_id: int | str, event: str = "CREATE") -> None:
        """The same ENTITLEMENT_<event> again, as a gateway replay might deliver it."""
        with self.lock:
            made = copy.deepcopy(self._entitlement(entitlement_id))
        self.dispatch(f"ENTITLEMENT_{event}", made)

    def entitlement(self, entitlement_id: int | str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._entitlement(entitlement_id))

    # --- what interactions carry (under the lock) ---------------------------------------------

    def active_entitlements(self, user_id: int, guild_id: int | None) -> list[dict[str, Any]]:
        """The user's (and the guild's) entitlements an interaction lists: not deleted, not
        consumed, not past their end."""
        now = self.now()
        return [
            copy.deepcopy(e)
            for e in self.entitlements.values()
            if (e["user_id"] == str(user_id) or (guild_id and e.get("guild_id") == str(guild_id)))
            and not e["deleted"]
            and not e["consumed"]
            and not _ended(e, now)
        ]

    # --- routes -------------------------------------------------------------------------------

    def _entitlement(self, entitlement_id: int | str) -> dict[str, Any]:
        found = self.entitlements.get(int(entitlement_id))
        if found is None:
            raise UNKNOWN_ENTITLEMENT
        return found

    def r_consume_entitlement(self, req: Req) -> Reply:
        """Only a one-time purchase of a consumable SKU, once; 204 with no body."""
        if req.arg("application_id") != str(APP_ID):
            raise ApiError(403, 50001, "Missing Access")
        ent = self._entitlement(req.arg("entitlement_id"))
        if ent["deleted"]:
            raise UNKNOWN_ENTITLEMENT
        if int(ent["id"]) not in self.consumables:
            raise ApiError(400, 0, "Entitlement is not for a consumable SKU")
        if ent["consumed"]:
            raise ApiError(400, 0, "Entitlement has already been consumed")
        ent["consumed"] = True
        return 204, None

    def r_list_entitlements(self, req: Req) -> Reply:
        """GET /applications/{id}/entitlements: user_id, guild_id, sku_ids, exclude_ended and
        exclude_deleted (default true) filter; before/after and limit page, oldest first."""
        if req.arg("application_id") != str(APP_ID):
            raise ApiError(403, 50001, "Missing Access")
        q, now = req.call.params, self.now()
        found = sorted(self.entitlements.values(), key=lambda e: int(e["id"]))
        for key in ("user_id", "guild_id"):
            if wanted := q.get(key):
                found = [e for e in found if e.get(key) == wanted]
        if skus := q.get("sku_ids"):
            found = [e for e in found if e["sku_id"] in skus.split(",")]
        if _yes(q.get("exclude_deleted", "true")):
            found = [e for e in found if not e["deleted"]]
        if _yes(q.get("exclude_ended", "false")):
            found = [e for e in found if not _ended(e, now)]
        limit = min(int(q.get("limit") or 100), 100)
        if before := q.get("before"):
            return 200, [e for e in found if int(e["id"]) < int(before)][-limit:]
        after = int(q.get("after") or 0)
        return 200, [e for e in found if int(e["id"]) > after][:limit]


def _ended(ent: dict[str, Any], now: float) -> bool:
    ends = ent.get("ends_at")
    return ends is not None and datetime.fromisoformat(ends).timestamp() <= now


def _yes(flag: str) -> bool:
    return flag.lower() in ("1", "true")
