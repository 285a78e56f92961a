"""Selling on SQLite and PostgreSQL: each payment credited once, passes started, extended and
ended, refunds taking back only what is unused, and every step in the payments and audit tables.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bots.core import Admin, AdminRequest, Command, Core, Maintenance, Runtime, Sender, answer_plain
from bots.core.messages import t
from bots.core.requests import Reply
from quota.products import EXAMPLE
from storage.db import transaction
from storage.models import AuditEntry, Payment, User
from tests.conftest import Clock

pytestmark = pytest.mark.sql

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ANN = Sender("telegram:100", "ann")
ADMIN = "telegram:1"
SKUS = """
[products.pack5]
kind = "pack"
images = 5
discord_sku = "9001"
title = { en = "5 images" }
description = { en = "Five more." }

[products.pro7]
kind = "pass"
tier = "pro"
days = 7
discord_sku = "9002"
title = { en = "Pro week" }
description = { en = "Pro for 7 days." }
"""


@pytest.fixture
def shop_core(runtime: Runtime, clock: Clock) -> Core:
    runtime.settings.products_file = EXAMPLE
    runtime.settings.admins = (ADMIN,)
    return Core(runtime)


def buy(core: Core, product: str, charge: str, sender: Sender = ANN) -> str:
    price = core.shop.products[product].telegram_stars or 0
    reply = core.shop.paid(
        sender, platform="telegram", charge_id=charge, product_id=product, amount=price,
        currency="XTR",
    )  # fmt: skip
    return reply.text


def user(core: Core, user_id: str = ANN.user_id) -> User:
    with transaction(core.rt.engine) as s:
        found = s.get(User, user_id)
        assert found is not None
        return found


def payments(core: Core) -> list[tuple[str, str, str, str, int]]:
    with transaction(core.rt.engine) as s:
        rows = s.exec(select(Payment).order_by(Payment.id)).all()  # type: ignore[arg-type]
    return [(p.platform, p.charge_id, p.event, p.product, p.amount) for p in rows]


def audits(core: Core) -> list[AuditEntry]:
    with transaction(core.rt.engine) as s:
        return list(s.exec(select(AuditEntry).order_by(AuditEntry.id)).all())  # type: ignore[arg-type]


def admin_run(core: Core, text: str, actor: str = ADMIN) -> tuple[str, bool]:
    name, *args = text.split()
    reply, ok = Admin(core).run(AdminRequest(actor, "en", Command(name, tuple(args))))
    return reply.text, ok


def set_credits(core: Core, n: int) -> None:
    with transaction(core.rt.engine) as s:
        found = s.get(User, ANN.user_id)
        assert found is not None
        found.extra_credits = n
        s.add(found)


def test_the_same_payment_twice_credits_the_pack_once(shop_core: Core) -> None:
    first = buy(shop_core, "pack10", "ch-1")
    assert first == "Thank you! 10 extra images are yours: you have 10 now, and they never expire."
    assert buy(shop_core, "pack10", "ch-1") == first
    assert user(shop_core).extra_credits == 10
    assert payments(shop_core) == [("telegram", "ch-1", "purchase", "pack10", 50)]
    [row] = audits(shop_core)
    assert (row.actor, row.action, row.target) == (ANN.user_id, "purchase", ANN.user_id)
    assert row.before == "free, 0 extra" and row.after == "free, 10 extra; pack10 telegram:ch-1"
    buy(shop_core, "pack50", "ch-2")
    assert user(shop_core).extra_credits == 60


def test_a_pass_starts_then_extends(shop_core: Core, clock: Clock) -> None:
    text = buy(shop_core, "plus30", "ch-1")
    assert text == "Thank you! You're on plus until 30 Dec 2026, 12:00 UTC."
    u = user(shop_core)
    assert (u.tier, u.base_tier, u.tier_until) == ("plus", "free", T0 + timedelta(days=30))
    clock.now = T0 + timedelta(days=10)
    buy(shop_core, "plus30", "ch-2")  # added to the running pass, not from today
    u = user(shop_core)
    assert (u.tier, u.base_tier, u.tier_until) == ("plus", "free", T0 + timedelta(days=60))
    assert shop_core.shop.quota_notes(ANN.user_id, "en") == [
        "Your plus pass runs until 29 Jan 2027, 12:00 UTC."
    ]
    quota = answer_plain(shop_core, ANN, Command("quota"))
    assert quota is not None and "Tier: plus" in quota.text
    assert [e for _, _, e, _, _ in payments(shop_core)] == ["purchase", "purchase"]
    assert [a.action for a in audits(shop_core)] == ["purchase", "purchase"]


def test_precheckout_says_no_before_any_money_moves(shop_core: Core) -> None:
    shop = shop_core.shop
    assert shop.precheckout(ANN, "pack10", 50, "XTR") is None
    assert "no longer for sale" in (shop.precheckout(ANN, "gold", 50, "XTR") or "")
    assert "price has changed" in (shop.precheckout(ANN, "pack10", 49, "XTR") or "")
    assert "price has changed" in (shop.precheckout(ANN, "pack10", 50, "USD") or "")
    buy(shop_core, "pro30", "ch-1")
    assert "already have pro" in (shop.precheckout(ANN, "plus30", 250, "XTR") or "")
    with transaction(shop_core.rt.engine) as s:
        found = s.get(User, ANN.user_id)
        assert found is not None
        found.banned = True
        s.add(found)
    refusal = shop.precheckout(ANN, "pack10", 50, "XTR")
    assert (
        refusal
        == "Sorry, you can't use this bot, so I can't take this payment. Nothing was charged."
    )
    assert len(payments(shop_core)) == 1


def test_a_refund_takes_back_only_the_unused_images(shop_core: Core) -> None:
    buy(shop_core, "pack10", "ch-1")
    set_credits(shop_core, 7)  # three of them used
    assert shop_core.shop.refunded("telegram", "ch-1", "telegram")
    assert user(shop_core).extra_credits == 0
    assert not shop_core.shop.refunded("telegram", "ch-1", "telegram")  # once
    assert not shop_core.shop.refunded("telegram", "nope", "telegram")
    set_credits(shop_core, 5)  # an admin's grant, later: not the refunded pack's
    assert user(shop_core).extra_credits == 5
    assert payments(shop_core) == [
        ("telegram", "ch-1", "purchase", "pack10", 50),
        ("telegram", "ch-1", "refund", "pack10", 50),
    ]
    refund = audits(shop_core)[-1]
    assert (refund.actor, refund.action, refund.before, refund.after) == (
        "telegram", "refund", "free, 7 extra", "free, 0 extra; pack10 telegram:ch-1",
    )  # fmt: skip


def test_a_refund_of_a_pack_leaves_other_credits(shop_core: Core) -> None:
    buy(shop_core, "pack50", "ch-0")
    set_credits(shop_core, 55)  # 50 bought + 5 granted by an admin
    shop_core.shop.refunded("telegram", "ch-0", "telegram")
    assert user(shop_core).extra_credits == 5


def test_a_refunded_pass_loses_its_unused_time_and_ends(shop_core: Core, clock: Clock) -> None:
    buy(shop_core, "plus30", "ch-1")
    buy(shop_core, "plus30", "ch-2")
    clock.now = T0 + timedelta(days=5)
    assert shop_core.shop.refunded("telegram", "ch-2", "telegram")
    u = user(shop_core)
    assert (u.tier, u.tier_until) == ("plus", T0 + timedelta(days=30))  # its 30 days taken back
    assert shop_core.shop.refunded("telegram", "ch-1", "telegram")
    u = user(shop_core)
    assert (u.tier, u.tier_until, u.base_tier) == ("free", None, None)


def test_a_pass_refunded_at_once_ends_then_and_there(shop_core: Core, clock: Clock) -> None:
    clock.now = T0 + timedelta(microseconds=654321)  # sub-second times must not leave a sliver
    buy(shop_core, "plus30", "ch-1")
    assert shop_core.shop.refunded("telegram", "ch-1", "telegram")
    u = user(shop_core)
    assert (u.tier, u.tier_until, u.base_tier) == ("free", None, None)
    clock.now += timedelta(seconds=2)
    Maintenance(shop_core.rt).run_once()
    assert [e for _, _, e, _, _ in payments(shop_core)] == ["purchase", "refund"]


def test_a_pass_expires_back_to_the_tier_before(shop_core: Core, clock: Clock) -> None:
    buy(shop_core, "pack10", "ch-0")
    with transaction(shop_core.rt.engine) as s:
        found = s.get(User, ANN.user_id)
        assert found is not None
        found.tier = "plus"  # an admin's plus, before the pro pass
        s.add(found)
    buy(shop_core, "pro30", "ch-1")
    clock.now = T0 + timedelta(days=30) - timedelta(seconds=1)
    Maintenance(shop_core.rt).run_once()
    assert user(shop_core).tier == "pro"
    clock.now = T0 + timedelta(days=30)
    Maintenance(shop_core.rt).run_once()
    Maintenance(shop_core.rt).run_once()  # once only
    u = user(shop_core)
    assert (u.tier, u.tier_until, u.base_tier, u.extra_credits) == ("plus", None, None, 10)
    assert payments(shop_core)[-1] == ("telegram", "ch-1", "expiry", "pro30", 0)
    expiry = audits(shop_core)[-1]
    assert (expiry.actor, expiry.action, expiry.target, expiry.after) == (
        "auto", "expiry", ANN.user_id, "plus",
    )  # fmt: skip
    assert expiry.before == "pro until 2026-12-30 12:00, 10 extra"
    assert shop_core.shop.quota_notes(ANN.user_id, "en") == []


def test_stats_show_todays_sales_by_product(shop_core: Core, clock: Clock) -> None:
    assert "No sales today." in admin_run(shop_core, "stats")[0]
    clock.now = T0 - timedelta(days=1)
    buy(shop_core, "pack10", "yesterday")
    clock.now = T0
    buy(shop_core, "pack10", "ch-1")
    buy(shop_core, "pack10", "ch-2")
    buy(shop_core, "plus30", "ch-3")
    shop_core.shop.refunded("telegram", "ch-2", "telegram")
    stats = admin_run(shop_core, "stats")[0]
    assert "Sales today: pack10: 2 sold, 50 XTR; plus30: 1 sold, 250 XTR." in stats


def test_whois_shows_the_running_pass(shop_core: Core) -> None:
    buy(shop_core, "plus30", "ch-1")
    whois = admin_run(shop_core, f"whois {ANN.user_id}")[0]
    assert "tier plus" in whois
    assert whois.endswith(
        "Pass: plus until 30 Dec 2026, 12:00 UTC, then free. Last payments: plus30 (charge ch-1)."
    )


def test_whois_lists_the_last_payments_with_their_charge_ids(shop_core: Core) -> None:
    shop_core.shop.register_refunder("telegram", Refunder())
    buy(shop_core, "pack10", "ch-1")
    buy(shop_core, "pack50", "ch-2")
    assert admin_run(shop_core, "refund ch-1")[1]
    whois = admin_run(shop_core, f"whois {ANN.user_id}")[0]
    assert whois.endswith("Last payments: pack50 (charge ch-2), pack10 (charge ch-1, refunded).")


def test_settier_ends_a_running_pass_so_the_admins_choice_stands(
    shop_core: Core, clock: Clock
) -> None:
    buy(shop_core, "plus30", "ch-1")
    text, ok = admin_run(shop_core, f"settier {ANN.user_id} pro")
    assert ok and text == (
        "Done: telegram:100 is on pro now (was plus). Their running pass was ended, so this "
        "tier stands."
    )
    u = user(shop_core)
    assert (u.tier, u.tier_until, u.base_tier) == ("pro", None, None)
    clock.now = T0 + timedelta(days=31)
    Maintenance(shop_core.rt).run_once()
    assert user(shop_core).tier == "pro"
    row = audits(shop_core)[-1]
    assert (row.action, row.after) == ("settier", "pro (pass ended)")
    assert row.before == "plus until 2026-12-30 12:00, then free"


class Refunder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = fail

    def __call__(self, user_id: str, charge_id: str) -> None:
        self.calls.append((user_id, charge_id))
        if self.fail:
            raise RuntimeError("CHARGE_ALREADY_REFUNDED")


def test_admin_refund_calls_the_platform_then_takes_back(shop_core: Core) -> None:
    refunder = Refunder()
    shop_core.shop.register_refunder("telegram", refunder)
    buy(shop_core, "pack10", "ch-1")
    set_credits(shop_core, 4)
    text, ok = admin_run(shop_core, "refund ch-1")
    assert ok and text == (
        "Done: payment ch-1 of telegram:100 (pack10) is refunded. 4 unused images were taken back."
    )
    assert refunder.calls == [("100", "ch-1")]
    assert user(shop_core).extra_credits == 0
    assert payments(shop_core)[-1] == ("telegram", "ch-1", "refund", "pack10", 50)
    row = audits(shop_core)[-1]
    assert (row.actor, row.action, row.target) == (ADMIN, "refund", ANN.user_id)
    assert admin_run(shop_core, "refund ch-1") == ("Payment ch-1 was refunded already.", False)
    assert refunder.calls == [("100", "ch-1")]  # not asked twice


def test_admin_refund_of_a_pass_says_what_is_left(shop_core: Core) -> None:
    shop_core.shop.register_refunder("telegram", Refunder())
    buy(shop_core, "plus30", "ch-1")
    text, ok = admin_run(shop_core, "refund ch-1")
    assert ok and text.endswith("Their pass ended; they're on free again.")
    assert user(shop_core).tier == "free"


def test_admin_refund_refusals_are_one_polite_line(shop_core: Core) -> None:
    buy(shop_core, "pack10", "ch-1")
    before = (payments(shop_core), len(audits(shop_core)), user(shop_core).extra_credits)
    assert admin_run(shop_core, "refund ch-1") == (
        "I can't reach telegram from here to refund ch-1; please use /refund in the telegram bot.",
        False,
    )
    failing = Refunder(fail=True)
    shop_core.shop.register_refunder("telegram", failing)
    assert admin_run(shop_core, "refund ch-1") == (
        "telegram did not accept the refund of ch-1, so nothing was changed. "
        "Please try again later.",
        False,
    )
    assert failing.calls == [("100", "ch-1")]
    assert admin_run(shop_core, "refund ch-9") == ("I have no payment ch-9.", False)
    assert admin_run(shop_core, "refund") == ("Usage: /refund <charge id>", False)
    text, ok = admin_run(shop_core, "refund ch-1", actor="telegram:666")
    assert not ok and "only admins" in text
    after = (payments(shop_core), len(audits(shop_core)) - 1, user(shop_core).extra_credits)
    assert after == before  # the one new audit row is the refused non-admin's attempt


def test_discord_entitlements_grant_once_and_end(
    runtime: Runtime, clock: Clock, tmp_path: Path
) -> None:
    path = tmp_path / "products.toml"
    path.write_text(SKUS, "utf-8")
    runtime.settings.products_file = path
    runtime.settings.admins = (ADMIN,)
    core = Core(runtime)
    shop, bob = core.shop, Sender("discord:200", "bob")
    assert shop.is_consumable("9001") and not shop.is_consumable("9002")
    assert not shop.is_consumable("1234")
    granted = shop.entitled(bob, entitlement_id="e1", sku_id="9001", ends_at=None)
    assert granted is not None and "5 extra images" in granted.text
    assert shop.entitled(bob, entitlement_id="e1", sku_id="9001", ends_at=None) is None
    assert shop.entitled(bob, entitlement_id="e9", sku_id="1234", ends_at=None) is None
    ends = T0 + timedelta(days=3)
    assert shop.entitled(bob, entitlement_id="e2", sku_id="9002", ends_at=ends) is not None
    bob_row = user(core, bob.user_id)
    assert (bob_row.extra_credits, bob_row.tier, bob_row.tier_until) == (5, "pro", ends)
    assert admin_run(core, "refund e1")[0].startswith("Payment e1 was made on Discord")
    assert shop.entitlement_ended("e2", "discord")
    assert not shop.entitlement_ended("e2", "discord")
    bob_row = user(core, bob.user_id)
    assert (bob_row.extra_credits, bob_row.tier, bob_row.tier_until) == (5, "free", None)
    assert [(e, c) for _, c, e, _, _ in payments(core)] == [
        ("purchase", "e1"), ("purchase", "e2"), ("revoke", "e2"),
    ]  # fmt: skip
    assert [a.action for a in audits(core)] == ["entitlement", "entitlement", "revoke"]
    stats = admin_run(core, "stats")[0]
    assert "Sales today: pack5: 1 sold on Discord; pro7: 1 sold on Discord." in stats


def test_a_renewed_discord_subscription_extends_the_pass_once_and_ends_whole(
    runtime: Runtime, clock: Clock, tmp_path: Path
) -> None:
    path = tmp_path / "products.toml"
    path.write_text(SKUS, "utf-8")
    runtime.settings.products_file = path
    core = Core(runtime)
    shop, bob = core.shop, Sender("discord:200", "bob")
    first, second = T0 + timedelta(days=3), T0 + timedelta(days=6)
    assert shop.entitled(bob, entitlement_id="e2", sku_id="9002", ends_at=first) is not None
    # The same entitlement updated with a later end: the next period, granted once.
    renewed = shop.entitled(bob, entitlement_id="e2", sku_id="9002", ends_at=second)
    assert renewed is not None and "pro" in renewed.text
    assert shop.entitled(bob, entitlement_id="e2", sku_id="9002", ends_at=second) is None
    assert shop.entitled(bob, entitlement_id="e2", sku_id="9002", ends_at=first) is None
    assert user(core, bob.user_id).tier_until == second
    assert [e for _, _, e, _, _ in payments(core)] == ["purchase", "renewal"]
    # Ended a day in: the whole unused rest (five days) is taken back, the pass is over.
    clock.now = T0 + timedelta(days=1)
    assert shop.entitlement_ended("e2", "discord")
    bob_row = user(core, bob.user_id)
    assert (bob_row.tier, bob_row.tier_until) == ("free", None)


def test_buy_terms_and_paysupport_are_plain_commands(shop_core: Core) -> None:
    def ask(name: str, sender: Sender = ANN) -> str:
        reply = answer_plain(shop_core, sender, Command(name))
        assert reply is not None
        return reply.text

    buy_text = ask("buy")
    assert (
        "• 10 extra images — 50 Stars:" in buy_text and "• Pro for 30 days — 750 Stars" in buy_text
    )
    assert "can buy image packs" in ask("buy", Sender("console:ann"))
    assert "Terms of sale" in ask("terms")
    assert "people who run this bot" in ask("paysupport")
    shop_core.rt.settings.support_contact = "@helpdesk"
    assert "write to @helpdesk" in ask("paysupport")
    assert ask("help").endswith(t("help_buy", "en"))  # sold on Telegram: /help names /buy
    assert answer_plain(shop_core, Sender("console:ann"), Command("help")) == Reply(t("help", "en"))
    shop_core.shop.products.clear()
    assert ask("buy") == "Nothing is for sale right now."
    assert ask("help") == t("help", "en")


def concurrently(n: int, fn: Callable[[int], str]) -> list[str]:
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(fn, range(n)))


def test_one_payment_delivered_to_many_processes_at_once_is_one_credit(shop_core: Core) -> None:
    replies = concurrently(8, lambda _: buy(shop_core, "pack10", "ch-race"))
    assert len(set(replies)) == 1
    assert user(shop_core).extra_credits == 10
    assert payments(shop_core) == [("telegram", "ch-race", "purchase", "pack10", 50)]
    assert len(audits(shop_core)) == 1


def test_passes_bought_at_once_all_extend(shop_core: Core) -> None:
    concurrently(4, lambda i: buy(shop_core, "plus30", f"ch-{i}"))
    u = user(shop_core)
    assert (u.tier, u.base_tier, u.tier_until) == ("plus", "free", T0 + timedelta(days=120))
