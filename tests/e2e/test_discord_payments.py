"""Selling on Discord: premium app SKUs mapped to the products file. A purchase arrives as an
entitlement (the ENTITLEMENT_CREATE event, and on every interaction after it); the bot grants
the product once per entitlement id, consumes a consumable pack, thanks the buyer by DM, and
ends a pass when Discord deletes its entitlement or the entitlement's end passes. /buy shows
one premium button per product sold on Discord. SQL (users, payments, audit) after each step."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from bots.core import Core, Sender
from bots.core.messages import t
from storage.db import transaction
from storage.models import AuditEntry, Payment, User
from tests.e2e.discord_harness import DiscordStack, discord_stack
from tests.e2e.discord_payloads import APPLICATION_SUBSCRIPTION, PREMIUM_BUTTON, iso
from tests.e2e.discord_steps import EPHEMERAL, Person, answered, person
from tests.e2e.harness import settle

pytestmark = pytest.mark.e2e

PACK_SKU, PLUS_SKU, PRO_SKU, UNSOLD_SKU = (1_400_000_000_000_000_000 + n for n in (1, 2, 3, 9))
PRODUCTS = f"""
[products.pack10]
kind = "pack"
images = 10
telegram_stars = 50
discord_sku = "{PACK_SKU}"
title = {{ en = "10 extra images" }}
description = {{ en = "10 images on top of your daily allowance." }}

[products.plus30]
kind = "pass"
tier = "plus"
days = 30
telegram_stars = 250
discord_sku = "{PLUS_SKU}"
title = {{ en = "Plus for 30 days" }}
description = {{ en = "A bigger daily allowance for 30 days." }}

[products.pro30]
kind = "pass"
tier = "pro"
days = 30
discord_sku = "{PRO_SKU}"
title = {{ en = "Pro monthly" }}
description = {{ en = "Pro while the subscription runs." }}

[products.stars_only]
kind = "pack"
images = 3
telegram_stars = 20
discord_sku = ""
title = {{ en = "3 extra images" }}
description = {{ en = "Sold on Telegram only." }}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiscordStack]:
    tmp = tmp_path_factory.mktemp("discord-payments")
    products = tmp / "products.toml"
    products.write_text(PRODUCTS)
    with discord_stack(tmp, products_file=products, support_contact="@stylebot_help") as stack:
        yield stack


# --- what SQL and the emulator say ------------------------------------------------------------


def user_row(stack: DiscordStack, who: Person) -> User:
    with transaction(stack.runtime.engine) as s:
        found = s.get(User, f"discord:{who.id}")
        assert found is not None, "no user row"
        return found


def payments(stack: DiscordStack, who: Person) -> list[Payment]:
    with transaction(stack.runtime.engine) as s:
        rows = s.exec(
            select(Payment).where(Payment.user_id == f"discord:{who.id}").order_by(col(Payment.id))
        )
        return list(rows)


def audits(stack: DiscordStack, who: Person) -> list[AuditEntry]:
    with transaction(stack.runtime.engine) as s:
        rows = s.exec(
            select(AuditEntry)
            .where(AuditEntry.target == f"discord:{who.id}")
            .order_by(col(AuditEntry.id))
        )
        return list(rows)


def dms(stack: DiscordStack, who: Person) -> list[dict[str, Any]]:
    """What the bot wrote to the person directly."""
    dm = stack.emulator.dm_channel_of(who.id)
    return stack.emulator.channel_messages(dm) if dm else []


def thanked(stack: DiscordStack, who: Person, count: int = 1) -> list[dict[str, Any]]:
    return list(
        stack.emulator.wait_for(
            lambda: len(dms(stack, who)) >= count and dms(stack, who), 15.0, "the thanks by DM"
        )
    )


def soon(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def aware(at: datetime | None) -> datetime:
    assert at is not None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def interact(stack: DiscordStack, who: Person) -> dict[str, Any]:
    """Any interaction (here /quota): it lists the person's active entitlements."""
    asked = stack.emulator.slash("quota", who.user, who.channel)
    answered(stack, asked, "/quota")
    return asked


# --- the scenarios ---------------------------------------------------------------------------


def test_a_bought_pass_grants_the_tier_records_it_and_thanks_the_buyer(
    stack: DiscordStack,
) -> None:
    emu, who = stack.emulator, person(stack)
    bought = emu.entitle(who.user, PLUS_SKU)
    [thanks] = thanked(stack, who)
    me = user_row(stack, who)
    assert (me.tier, me.base_tier) == ("plus", "free")
    assert soon(29.9) < aware(me.tier_until) < soon(30.1)
    [paid] = payments(stack, who)
    assert (paid.platform, paid.charge_id, paid.product) == ("discord", bought["id"], "plus30")
    assert paid.event == "purchase"
    assert audits(stack, who), "the grant is audited"
    until = Core(stack.runtime).shop.when(aware(me.tier_until), "en")
    assert thanks["content"] == t("paid_pass", "en", tier="plus", until=until)
    assert not emu.calls_of("consume_entitlement", ok=None)  # a pass is not consumed


def test_the_same_entitlement_again_by_event_and_on_interactions_is_granted_once(
    stack: DiscordStack,
) -> None:
    emu, who = stack.emulator, person(stack)
    bought = emu.entitle(who.user, PLUS_SKU)
    thanked(stack, who)
    until = user_row(stack, who).tier_until
    emu.redeliver_entitlement(bought["id"])
    asked = interact(stack, who)
    assert [e["id"] for e in asked["entitlements"]] == [bought["id"]]
    interact(stack, who)
    stack.stop_bot()  # a new process knows nothing in memory: SQL keeps it to one grant
    stack.start_bot()
    interact(stack, who)
    settle(1.0)
    assert len(payments(stack, who)) == 1 and len(dms(stack, who)) == 1
    me = user_row(stack, who)
    assert (me.tier, me.tier_until) == ("plus", until)


def test_a_purchase_made_while_the_bot_was_away_is_granted_at_the_next_interaction(
    stack: DiscordStack,
) -> None:
    emu, who = stack.emulator, person(stack)
    bought = emu.entitle(who.user, PLUS_SKU, dispatch=False)  # the event never reached the bot
    interact(stack, who)
    thanked(stack, who)
    [paid] = payments(stack, who)
    assert paid.charge_id == bought["id"] and user_row(stack, who).tier == "plus"


def test_a_pack_is_credited_once_and_consumed(stack: DiscordStack) -> None:
    emu, who = stack.emulator, person(stack)
    before = emu.calls_of("consume_entitlement")
    bought = emu.entitle(who.user, PACK_SKU, consumable=True)
    thanked(stack, who)
    emu.wait_for(lambda: emu.entitlement(bought["id"])["consumed"], 10.0, "the consume call")
    consumed = emu.calls_of("consume_entitlement")[len(before) :]
    assert [c.args["entitlement_id"] for c in consumed] == [bought["id"]]
    me = user_row(stack, who)
    assert (me.extra_credits, me.tier) == (10, "free")
    assert dms(stack, who)[0]["content"] == t("paid_pack", "en", n=10, credits=10)
    [paid] = payments(stack, who)
    assert (paid.product, paid.charge_id, paid.event) == ("pack10", bought["id"], "purchase")
    emu.redeliver_entitlement(bought["id"])
    asked = interact(stack, who)
    assert asked["entitlements"] == []  # consumed: Discord lists it no more
    settle(1.0)
    assert user_row(stack, who).extra_credits == 10 and len(payments(stack, who)) == 1
    assert len(emu.calls_of("consume_entitlement", ok=None)) == len(before) + 1


def test_a_pack_whose_consume_failed_is_consumed_at_the_next_interaction_not_credited_twice(
    stack: DiscordStack,
) -> None:
    emu, who = stack.emulator, person(stack)
    emu.fail("consume_entitlement", 503)
    bought = emu.entitle(who.user, PACK_SKU, consumable=True)
    thanked(stack, who)
    emu.wait_for(lambda: emu.calls_of("consume_entitlement", ok=False), 10.0, "the failed call")
    assert not emu.entitlement(bought["id"])["consumed"]
    asked = interact(stack, who)  # still listed: the bot consumes it now, without a new credit
    assert [e["id"] for e in asked["entitlements"]] == [bought["id"]]
    emu.wait_for(lambda: emu.entitlement(bought["id"])["consumed"], 10.0, "the second consume")
    settle(0.5)
    assert user_row(stack, who).extra_credits == 10
    assert len(payments(stack, who)) == 1 and len(dms(stack, who)) == 1


def test_a_deleted_entitlement_ends_the_pass(stack: DiscordStack) -> None:
    emu, who = stack.emulator, person(stack)
    bought = emu.entitle(who.user, PLUS_SKU)
    thanked(stack, who)
    assert user_row(stack, who).tier == "plus"
    audited = len(audits(stack, who))
    emu.delete_entitlement(bought["id"])
    emu.wait_for(lambda: user_row(stack, who).tier == "free", 10.0, "the pass ended")
    me = user_row(stack, who)
    assert me.tier_until is None and me.base_tier is None
    settle(1.5)  # the maintenance loop (every second here) finds no pass left to expire
    events = [(p.charge_id, p.event) for p in payments(stack, who)]
    assert events == [(bought["id"], "purchase"), (bought["id"], "revoke")]
    assert [(a.actor, a.action) for a in audits(stack, who)[audited:]] == [("discord", "revoke")]
    emu.redeliver_entitlement(bought["id"], "DELETE")
    settle(1.0)
    assert len(payments(stack, who)) == 2 and user_row(stack, who).tier == "free"


def test_a_subscription_that_ended_ends_its_pass(stack: DiscordStack) -> None:
    emu, who = stack.emulator, person(stack)
    bought = emu.entitle(who.user, PRO_SKU, kind=APPLICATION_SUBSCRIPTION, days=30)
    thanked(stack, who)
    assert user_row(stack, who).tier == "pro"
    emu.end_entitlement(bought["id"])  # not renewed
    emu.wait_for(lambda: user_row(stack, who).tier == "free", 10.0, "the pass ended")
    settle(1.5)
    events = [(p.charge_id, p.event) for p in payments(stack, who)]
    assert events == [(bought["id"], "purchase"), (bought["id"], "revoke")]
    assert user_row(stack, who).tier_until is None


def test_a_refund_made_while_the_bot_was_away_is_taken_back_at_start(
    stack: DiscordStack,
) -> None:
    emu, who = stack.emulator, person(stack)
    bought = emu.entitle(who.user, PLUS_SKU)
    thanked(stack, who)
    assert user_row(stack, who).tier == "plus"
    stack.stop_bot()
    emu.delete_entitlement(bought["id"], dispatch=False)  # the DELETE event never reached it
    listed = len(emu.calls_of("list_entitlements"))
    stack.start_bot()
    emu.wait_for(lambda: user_row(stack, who).tier == "free", 5.0, "the pass taken back")
    me = user_row(stack, who)
    assert me.tier_until is None and me.base_tier is None
    events = [(p.charge_id, p.event) for p in payments(stack, who)]
    assert events == [(bought["id"], "purchase"), (bought["id"], "revoke")]
    assert [(a.actor, a.action) for a in audits(stack, who)][-1] == ("discord", "revoke")
    assert len(emu.calls_of("list_entitlements")) > listed
    stack.stop_bot()  # the next start finds nothing more to take back
    stack.start_bot()
    emu.wait_for(lambda: len(emu.calls_of("list_entitlements")) > listed + 1, 5.0, "a listing")
    settle(1.0)
    assert len(payments(stack, who)) == 2 and user_row(stack, who).tier == "free"


def test_a_subscription_that_ended_while_the_bot_was_away_is_ended_at_start(
    stack: DiscordStack,
) -> None:
    emu, who = stack.emulator, person(stack)
    bought = emu.entitle(who.user, PRO_SKU, kind=APPLICATION_SUBSCRIPTION, days=30)
    thanked(stack, who)
    stack.stop_bot()
    with emu.lock:  # its end passed unseen: listed, not deleted, ended
        emu.entitlements[int(bought["id"])]["ends_at"] = iso(emu.now() - 1)
    stack.start_bot()
    emu.wait_for(lambda: user_row(stack, who).tier == "free", 5.0, "the pass ended")
    events = [(p.charge_id, p.event) for p in payments(stack, who)]
    assert events == [(bought["id"], "purchase"), (bought["id"], "revoke")]


def test_a_purchase_made_while_the_bot_was_away_is_granted_at_start(stack: DiscordStack) -> None:
    emu, who = stack.emulator, person(stack)
    stack.stop_bot()
    bought = emu.entitle(who.user, PLUS_SKU, dispatch=False)
    pack = emu.entitle(who.user, PACK_SKU, consumable=True, dispatch=False)
    stack.start_bot()  # no interaction by the buyer: the start alone grants both
    thanked(stack, who, 2)
    emu.wait_for(lambda: emu.entitlement(pack["id"])["consumed"], 5.0, "the pack consumed")
    me = user_row(stack, who)
    assert (me.tier, me.extra_credits) == ("plus", 10)
    assert soon(29.9) < aware(me.tier_until) < soon(30.1)
    bought_ids = sorted((p.charge_id, p.event) for p in payments(stack, who))
    assert bought_ids == sorted([(bought["id"], "purchase"), (pack["id"], "purchase")])


def test_a_failing_listing_leaves_the_bot_serving(
    stack: DiscordStack, caplog: pytest.LogCaptureFixture
) -> None:
    emu, who = stack.emulator, person(stack)
    stack.stop_bot()
    emu.fail("list_entitlements", 403)  # not retried: the bot goes on without it
    stack.start_bot()
    emu.wait_for(lambda: emu.calls_of("list_entitlements", ok=False), 10.0, "the failed listing")
    interact(stack, who)  # still answering
    warned = [r for r in caplog.records if r.getMessage().startswith("entitlements_catch_up")]
    assert warned and all(r.levelname == "WARNING" and not r.exc_info for r in warned)


def test_with_dms_closed_the_purchase_is_still_granted(stack: DiscordStack) -> None:
    emu, who = stack.emulator, person(stack)
    emu.close_dms(who.id)
    bought = emu.entitle(who.user, PACK_SKU, consumable=True)
    emu.wait_for(lambda: emu.entitlement(bought["id"])["consumed"], 10.0, "the consume call")

    def refused() -> bool:
        dm = emu.dm_channel_of(who.id)
        return bool(dm and emu.calls_of("channel_message", ok=False, channel_id=dm))

    emu.wait_for(refused, 10.0, "the refused DM")
    assert dms(stack, who) == []
    assert user_row(stack, who).extra_credits == 10 and len(payments(stack, who)) == 1


def test_an_entitlement_to_an_unmapped_sku_grants_nothing(stack: DiscordStack) -> None:
    emu, who = stack.emulator, person(stack)
    emu.entitle(who.user, UNSOLD_SKU, consumable=True)
    interact(stack, who)
    settle(1.0)
    assert payments(stack, who) == [] and dms(stack, who) == []
    me = user_row(stack, who)
    assert (me.tier, me.extra_credits) == ("free", 0)


def test_buy_shows_one_premium_button_per_product_sold_on_discord(stack: DiscordStack) -> None:
    emu, who = stack.emulator, person(stack)
    asked = emu.slash("buy", who.user, who.channel)
    text = answered(stack, asked, "/buy")
    shown = emu.original(asked["id"])
    assert shown is not None and shown["flags"] & EPHEMERAL
    buttons = [b for row in shown["components"] for b in row["components"]]
    assert [(b["style"], b["sku_id"]) for b in buttons] == [
        (PREMIUM_BUTTON, str(sku)) for sku in (PACK_SKU, PLUS_SKU, PRO_SKU)
    ]
    buyer = Sender(f"discord:{who.id}", who.user["username"], "en-US")
    assert text == Core(stack.runtime).shop.buy_reply(buyer).text


def test_paysupport_and_terms_answer_privately(stack: DiscordStack) -> None:
    emu, who = stack.emulator, person(stack)
    support = emu.slash("paysupport", who.user, who.channel)
    assert "@stylebot_help" in answered(stack, support, "/paysupport")
    terms = emu.slash("terms", who.user, who.channel)
    assert answered(stack, terms, "/terms")
    for asked in (support, terms):
        assert (emu.original(asked["id"]) or {}).get("flags", 0) & EPHEMERAL
