"""Selling image packs and tier passes in the chat, the same on every platform; Core builds one.

The adapter shows the products and takes the money (Telegram Stars invoices, Discord premium
buttons); the shop checks a payment before it is made, credits it exactly once after, takes it
back on a refund, and ends passes when their time is up. Every one of those writes a payments
row (quota.payments) and an audit row in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from babel.dates import format_datetime
from sqlmodel import Session

from bots.core.messages import t
from bots.core.requests import Reply, Sender
from bots.core.runtime import Runtime
from quota import payments as pay
from quota.controls import audit
from quota.products import Product, load_products
from storage.db import transaction
from storage.jobs import ensure_user
from storage.models import User

log = logging.getLogger("stylebot.shop")

Refunder = Callable[[str, str], None]  # (platform user id, charge id); raises on failure
STARS = "XTR"
DISCORD = "discord"  # also the currency recorded for Discord grants: Discord keeps the price


@dataclass(frozen=True)
class RefundResult:
    """What an admin's /refund came to: outcome done | unknown | already | discord |
    unavailable | failed, and for done, what was taken back."""

    outcome: str
    charge: str
    platform: str = ""
    user: str = ""
    product: str = ""
    undone: pay.Undone | None = None


class Shop:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        path = rt.settings.products_file
        self.products: dict[str, Product] = load_products(path) if path else {}
        self.refunders: dict[str, Refunder] = {}

    # --- what is for sale --------------------------------------------------------------

    def for_platform(self, platform: str) -> list[Product]:
        """The products with a price on `platform`, in file order."""
        if platform == "telegram":
            return [p for p in self.products.values() if p.telegram_stars is not None]
        if platform == DISCORD:
            return [p for p in self.products.values() if p.discord_sku is not None]
        return []

    def by_sku(self, sku_id: str) -> Product | None:
        return next((p for p in self.products.values() if p.discord_sku == sku_id), None)

    def is_consumable(self, sku_id: str) -> bool:
        """A pack: Discord's consumable SKU, to be consumed once granted."""
        product = self.by_sku(sku_id)
        return product is not None and product.kind == "pack"

    def buy_reply(self, sender: Sender) -> Reply:
        """/buy: what is for sale here, one line each; the adapter adds the payment buttons."""
        loc, products = sender.locale, self.for_platform(sender.platform)
        if not products:
            return Reply(t("shop_not_here" if self.products else "shop_closed", loc))
        intro, notes = t("shop_intro", loc), self.quota_notes(sender.user_id, loc)
        items = [self._item(p, sender.platform, loc) for p in products]
        return Reply("\n".join([intro, *notes, *items]))

    @staticmethod
    def _item(p: Product, platform: str, loc: str) -> str:
        title, description = p.title_in(loc), p.description_in(loc)
        if platform == "telegram":  # Discord shows the price on its own button
            stars = p.telegram_stars or 0
            return t("shop_item_stars", loc, title=title, price=stars, description=description)
        return t("shop_item", loc, title=title, description=description)

    def terms_reply(self, sender: Sender) -> Reply:
        return Reply(t("shop_terms", sender.locale))

    def paysupport_reply(self, sender: Sender) -> Reply:
        contact = self.rt.settings.support_contact
        if contact:
            return Reply(t("shop_paysupport", sender.locale, contact=contact))
        return Reply(t("shop_paysupport_admins", sender.locale))

    # --- buying --------------------------------------------------------------------------

    def precheckout(
        self, sender: Sender, product_id: str, amount: int, currency: str
    ) -> str | None:
        """None: take the payment; else why not, politely. One indexed read: fast."""
        loc = sender.locale
        product = self.products.get(product_id)
        if product is None or product not in self.for_platform(sender.platform):
            return t("shop_gone", loc)
        if currency != STARS or amount != product.telegram_stars:
            return t("shop_price_changed", loc)
        with transaction(self.rt.engine) as s:
            user = s.get(User, sender.user_id)
        if user is not None and user.banned:
            return t("shop_banned", loc)
        if user is not None and product.tier and pay.rank(user.tier) > pay.rank(product.tier):
            return t("shop_pass_lower", loc, tier=user.tier)
        return None

    def paid(
        self,
        sender: Sender,
        *,
        platform: str,
        charge_id: str,
        product_id: str,
        amount: int,
        currency: str,
    ) -> Reply:
        """Credit a payment once per (platform, charge_id); thank the person either way."""
        charge = pay.Charge(platform, charge_id, sender.user_id, product_id, amount, currency)
        product = self.products.get(product_id)
        with transaction(self.rt.engine) as s:
            ensure_user(s, sender.user_id, sender.username, sender.locale)
            self._grant(s, charge, product, "purchase", None)
            user = s.get(User, sender.user_id)
            assert user is not None
            return self._thanks(product, user, charge_id, sender.locale)

    def entitled(
        self, sender: Sender, *, entitlement_id: str, sku_id: str, ends_at: datetime | None
    ) -> Reply | None:
        """Discord: grant an entitlement once; None for an unknown SKU or one granted before."""
        product = self.by_sku(sku_id)
        if product is None:
            return None
        charge = pay.Charge(DISCORD, entitlement_id, sender.user_id, product.id, 0, DISCORD)
        with transaction(self.rt.engine) as s:
            ensure_user(s, sender.user_id, sender.username, sender.locale)
            granted = self._grant(s, charge, product, "entitlement", ends_at)
            if not granted and not self._renewed(s, charge, product, ends_at):
                return None
            user = s.get(User, sender.user_id)
            assert user is not None
            return self._thanks(product, user, entitlement_id, sender.locale)

    def _grant(
        self,
        s: Session,
        charge: pay.Charge,
        product: Product | None,
        action: str,
        ends_at: datetime | None,
    ) -> bool:
        """Record the purchase and grant it; False (granting nothing) if it was recorded before."""
        now = self.rt.clock()
        # The user row first: the payment row's foreign key would share-lock it, and two
        # deliveries holding that share could then never upgrade it (a deadlock on PostgreSQL).
        before = pay.state(pay.locked_user(s, charge.user_id))
        payment_id = pay.record_once(s, charge, pay.PURCHASE, "unmatched product", now)
        if payment_id is None:
            return False
        if product is None:
            log.error("payment_unmatched charge=%s product=%s", charge.charge_id, charge.product)
        elif product.kind == "pack":
            pay.set_detail(s, payment_id, pay.credit_pack(s, charge.user_id, product.images))
        else:
            length = timedelta(days=product.days)
            if ends_at is not None and ends_at > now:  # a Discord subscription says until when
                length = ends_at - now
            assert product.tier is not None
            pay.set_detail(
                s, payment_id, pay.start_pass(s, charge.user_id, product.tier, length, now)
            )
        after = pay.state(pay.locked_user(s, charge.user_id))
        audit(
            s,
            actor=charge.user_id,
            action=action,
            now=now,
            target=charge.user_id,
            before=before,
            after=f"{after}; {_ref(charge)}",
        )
        return True

    def _renewed(
        self, s: Session, charge: pay.Charge, product: Product, ends_at: datetime | None
    ) -> bool:
        """A Discord subscription renewed: the same entitlement, now ending later. The pass is
        extended to the new end once per (entitlement, end), and the purchase row's detail
        grows with it, so ending the entitlement later takes back all that is unused."""
        bought = pay.find(s, charge.charge_id, platform=DISCORD)
        granted = pay.granted_pass(bought.detail if bought else None)
        if bought is None or granted is None or ends_at is None or ends_at <= granted.end:
            return False
        now = self.rt.clock()
        before = pay.state(pay.locked_user(s, charge.user_id))
        renewal = replace(charge, charge_id=f"{charge.charge_id}@{ends_at:%Y%m%dT%H%M%S}")
        payment_id = pay.record_once(s, renewal, pay.RENEWAL, "", now)
        if payment_id is None:
            return False
        more = ends_at - granted.end
        assert product.tier is not None
        pay.set_detail(s, payment_id, pay.start_pass(s, charge.user_id, product.tier, more, now))
        pay.set_detail(s, bought.id or 0, granted.extended(more))
        after = pay.state(pay.locked_user(s, charge.user_id))
        audit(
            s,
            actor=charge.user_id,
            action="renewal",
            now=now,
            target=charge.user_id,
            before=before,
            after=f"{after}; {_ref(renewal)}",
        )
        return True

    def _thanks(self, product: Product | None, user: User, charge_id: str, loc: str) -> Reply:
        if product is None:
            return Reply(t("paid_unmatched", loc, charge=charge_id))
        if product.kind == "pack":
            return Reply(t("paid_pack", loc, n=product.images, credits=user.extra_credits))
        until = self.when(user.tier_until or self.rt.clock(), loc)
        return Reply(t("paid_pass", loc, tier=user.tier, until=until))

    # --- taking back -------------------------------------------------------------------

    def register_refunder(self, platform: str, fn: Refunder) -> None:
        """How the adapter running here refunds on its platform (admins' /refund uses it)."""
        self.refunders[platform] = fn

    def refunded(self, platform: str, charge_id: str, actor: str) -> bool:
        """The platform refunded a payment: take back what is unused. False if unknown or done."""
        return self._take_back(platform, charge_id, pay.REFUND, actor) is not None

    def entitlement_ended(self, entitlement_id: str, actor: str) -> bool:
        """Discord deleted or ended an entitlement: take back what is unused, once."""
        return self._take_back(DISCORD, entitlement_id, pay.REVOKE, actor) is not None

    def _take_back(
        self, platform: str, charge_id: str, event: str, actor: str
    ) -> RefundResult | None:
        now = self.rt.clock()
        with transaction(self.rt.engine) as s:
            bought = pay.find(s, charge_id, platform=platform)
            if bought is None:
                return None
            charge = pay.Charge(
                platform, charge_id, bought.user_id, bought.product, bought.amount, bought.currency
            )
            before = pay.state(pay.locked_user(s, bought.user_id))  # before the insert, as _grant
            payment_id = pay.record_once(s, charge, event, "", now)
            if payment_id is None:
                return None
            undone = pay.take_back(s, bought.user_id, bought.detail, now)
            pay.set_detail(s, payment_id, undone.detail)
            after = pay.state(pay.locked_user(s, bought.user_id))
            audit(
                s,
                actor=actor,
                action=event,
                now=now,
                target=bought.user_id,
                before=before,
                after=f"{after}; {_ref(charge)}",
            )
        return RefundResult("done", charge_id, platform, bought.user_id, bought.product, undone)

    def refund(self, charge_id: str, actor: str) -> RefundResult:
        """An admin's /refund: ask the platform to refund, then take the purchase back."""
        with transaction(self.rt.engine) as s:
            bought = pay.find(s, charge_id)
            done = bought is not None and pay.find(s, charge_id, pay.REFUND, bought.platform)
        if bought is None:
            return RefundResult("unknown", charge_id)
        result = RefundResult("", charge_id, bought.platform, bought.user_id, bought.product)
        if done:
            return _with(result, "already")
        if bought.platform == DISCORD:
            return _with(result, "discord")
        refunder = self.refunders.get(bought.platform)
        if refunder is None:
            return _with(result, "unavailable")
        try:  # outside any transaction: the platform may take seconds to answer
            refunder(bought.user_id.partition(":")[2], charge_id)
        except Exception as exc:
            log.warning("refund_failed charge=%s error=%s", charge_id, type(exc).__name__)
            return _with(result, "failed")
        taken = self._take_back(bought.platform, charge_id, pay.REFUND, actor)
        if taken is not None:
            return taken
        with transaction(self.rt.engine) as s:  # the platform's own notice recorded it first
            audit(
                s,
                actor=actor,
                action="refund",
                now=self.rt.clock(),
                target=bought.user_id,
                after=f"refunded on {bought.platform}: {charge_id}",
            )
        return _with(result, "done")

    # --- passes --------------------------------------------------------------------------

    def expire_passes(self, now: datetime) -> int:
        return expire_passes(self.rt, now)

    def quota_notes(self, user_id: str, locale: str, s: Session | None = None) -> list[str]:
        """/quota's line about a running pass (pass `s` when a transaction is open already)."""
        if s is None:
            with transaction(self.rt.engine) as fresh:
                return self.quota_notes(user_id, locale, fresh)
        user = s.get(User, user_id)
        if user is None or user.tier_until is None:
            return []
        return [t("pass_note", locale, tier=user.tier, until=self.when(user.tier_until, locale))]

    def when(self, moment: datetime, locale: str) -> str:
        """A date and time in the operator's zone, as the locale writes it, with the zone."""
        zone = self.rt.settings.zone
        shown = format_datetime(moment, "d MMM y, HH:mm", tzinfo=zone, locale=locale)
        return f"{shown} {self.rt.settings.timezone}"


def expire_passes(rt: Runtime, now: datetime) -> int:
    """End every pass whose time is up (quota.payments.expire_due); run by housekeeping."""
    with transaction(rt.engine) as s:
        ended = pay.expire_due(s, now)
    if ended:
        log.info("passes_expired users=%d", ended)
    return ended


def _ref(charge: pay.Charge) -> str:
    return f"{charge.product} {charge.platform}:{charge.charge_id}"


def _with(result: RefundResult, outcome: str) -> RefundResult:
    return RefundResult(outcome, result.charge, result.platform, result.user, result.product)
