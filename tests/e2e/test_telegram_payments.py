"""Telegram end to end, selling with Stars: /buy and its invoices, the pre-checkout answer, a
payment credited exactly once, a refused pre-checkout, refunds both ways, and a pass that
expires. The real PTB Application on the Bot API emulator (which plays Telegram's side of a
payment), PostgreSQL and Redis; SQL checked after each step."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bots.core import Sender
from bots.core.messages import t
from bots.core.shop import Shop
from quota.products import load_products
from storage.db import transaction
from storage.models import AuditEntry, Payment, User, utcnow
from tests.e2e.emulator import Call
from tests.e2e.harness import Stack, running_stack, settle
from tests.e2e.methods import user

pytestmark = pytest.mark.e2e

ADMIN = 999
PRODUCTS = Path(__file__).resolve().parents[2] / "quota" / "products.example.toml"
CATALOG = load_products(PRODUCTS)
PACK, PASS = CATALOG["pack10"], CATALOG["plus30"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stars"), products_file=PRODUCTS) as stack:
        yield stack


# --- what was said, and what SQL says ----------------------------------------------------------


def sent_to(stack: Stack, chat: int) -> list[Call]:
    return stack.emulator.calls_of("sendMessage", chat_id=chat)


def reply_to(stack: Stack, chat: int, message: dict[str, Any], what: str) -> str:
    """The text the bot sent in answer to `message`."""

    def found() -> list[str]:
        return [
            c.params["text"]
            for c in sent_to(stack, chat)
            if c.params.get("reply_parameters", {}).get("message_id") == message["message_id"]
        ]

    return str(stack.emulator.wait_for(found, 20, what)[0])


def admin(stack: Stack, text: str) -> str:
    """An admin command in the admin's private chat; its answer."""
    asked = stack.emulator.user_message(ADMIN, user(ADMIN), text=text)
    return reply_to(stack, ADMIN, asked, f"the answer to {text}")


def person(stack: Stack, uid: int) -> User:
    with transaction(stack.runtime.engine) as s:
        found = s.get(User, f"telegram:{uid}")
        assert found is not None
        return found


def payments_of(stack: Stack, uid: int) -> list[Payment]:
    with transaction(stack.runtime.engine) as s:
        query = select(Payment).where(Payment.user_id == f"telegram:{uid}")
        return list(s.exec(query.order_by(col(Payment.id))).all())


def audits_of(stack: Stack, uid: int) -> list[AuditEntry]:
    with transaction(stack.runtime.engine) as s:
        query = select(AuditEntry).where(AuditEntry.target == f"telegram:{uid}")
        return list(s.exec(query.order_by(col(AuditEntry.id))).all())


def bought(stack: Stack, uid: int, product_id: str, stars: int) -> tuple[dict[str, Any], str]:
    """Pay an invoice the whole way; the successful-payment message and the thanks."""
    paid = stack.emulator.pay(uid, user(uid), product_id, stars)
    assert paid is not None, "the pre-checkout query was refused"
    return paid, reply_to(stack, uid, paid, "the thanks")


def charge_of(message: dict[str, Any]) -> str:
    return str(message["successful_payment"]["telegram_payment_charge_id"])


# --- the scenarios -----------------------------------------------------------------------------


def test_the_menu_has_buy_paysupport_and_terms_while_selling(stack: Stack) -> None:
    menus = {c.params.get("language_code"): c for c in stack.emulator.calls_of("setMyCommands")}
    assert set(menus) == {None, "ar"}
    for lang, call in menus.items():
        commands = {c["command"]: c["description"] for c in call.params["commands"]}
        assert {"buy", "paysupport", "terms", "quota", "ghibli"} <= set(commands)
        assert commands["buy"] == t("cmd_buy", lang or "en")


def test_buy_sends_one_stars_invoice_per_product(stack: Stack) -> None:
    emu, uid = stack.emulator, 9101
    asked = emu.user_message(uid, user(uid), text="/buy")
    invoices = emu.wait_for(
        lambda: (
            len(emu.calls_of("sendInvoice", chat_id=uid)) == len(CATALOG)
            and emu.calls_of("sendInvoice", chat_id=uid)
        ),
        20,
        "an invoice per product",
    )
    expected = Shop(stack.runtime).buy_reply(Sender(f"telegram:{uid}")).text
    assert reply_to(stack, uid, asked, "the /buy text") == expected
    order = [c.method for c in emu.calls if c.params.get("chat_id") == uid]
    assert order == ["sendMessage", *["sendInvoice"] * len(CATALOG)]  # the words come first
    shown = {
        c.params["payload"]: (c.params["currency"], c.params["prices"], c.params["title"])
        for c in invoices
    }
    assert shown == {
        p.id: ("XTR", [{"label": p.title["en"], "amount": p.telegram_stars}], p.title["en"])
        for p in CATALOG.values()
    }
    assert not any("provider_token" in c.params for c in invoices)  # Stars: no provider
    assert {c.result["invoice"]["total_amount"] for c in invoices} == {
        p.telegram_stars for p in CATALOG.values()
    }
    assert payments_of(stack, uid) == []


def test_a_pack_is_credited_at_once_and_audited(stack: Stack) -> None:
    emu, uid = stack.emulator, 9102
    paid, thanks = bought(stack, uid, PACK.id, PACK.telegram_stars or 0)
    [query_id] = [q for q, p in emu.prechecks.items() if p.query["from"]["id"] == uid]
    assert emu.answer_of(query_id) == {"ok": True, "error_message": None}
    assert thanks == t("paid_pack", "en", n=PACK.images, credits=PACK.images)
    assert person(stack, uid).extra_credits == PACK.images
    [payment] = payments_of(stack, uid)
    assert (payment.platform, payment.charge_id, payment.event) == (
        "telegram",
        charge_of(paid),
        "purchase",
    )
    assert (payment.product, payment.amount, payment.currency) == (PACK.id, 50, "XTR")
    [entry] = audits_of(stack, uid)
    assert (entry.actor, entry.action) == (f"telegram:{uid}", "purchase")
    assert entry.after is not None and charge_of(paid) in entry.after


def test_the_same_payment_update_twice_is_one_credit(stack: Stack) -> None:
    emu, uid = stack.emulator, 9103
    paid, thanks = bought(stack, uid, PACK.id, PACK.telegram_stars or 0)
    emu.inject({"message": paid})  # Telegram hands the same update over again
    settle(1.0)
    assert [c.params["text"] for c in sent_to(stack, uid)] == [thanks]
    assert person(stack, uid).extra_credits == PACK.images
    assert len(payments_of(stack, uid)) == 1
    stack.bot.payments.seen = type(stack.bot.payments.seen)()  # a new process: memory gone
    emu.inject({"message": paid})
    emu.wait_for(lambda: len(sent_to(stack, uid)) == 2, 20, "an answer to the repeat")
    settle(0.5)
    assert person(stack, uid).extra_credits == PACK.images
    assert len(payments_of(stack, uid)) == 1


def test_a_banned_person_is_refused_at_pre_checkout_and_nothing_is_recorded(
    stack: Stack,
) -> None:
    emu, uid = stack.emulator, 9104
    emu.user_message(uid, user(uid), text="/quota")  # known to the bot before the ban
    emu.wait_for(lambda: sent_to(stack, uid), 20, "the quota")
    admin(stack, f"/ban telegram:{uid} spam")
    assert person(stack, uid).banned
    audits_before = len(audits_of(stack, uid))
    assert emu.pay(uid, user(uid), PACK.id, PACK.telegram_stars or 0) is None
    [query_id] = [q for q, p in emu.prechecks.items() if p.query["from"]["id"] == uid]
    answer = emu.answer_of(query_id)
    expected = Shop(stack.runtime).precheckout(
        Sender(f"telegram:{uid}"), PACK.id, PACK.telegram_stars or 0, "XTR"
    )
    assert answer == {"ok": False, "error_message": expected} and expected
    assert payments_of(stack, uid) == [] and person(stack, uid).extra_credits == 0
    assert len(audits_of(stack, uid)) == audits_before
    assert len(sent_to(stack, uid)) == 1  # the quota: nothing said in the chat after it


def test_a_changed_price_or_an_unknown_product_is_refused(stack: Stack) -> None:
    emu, uid = stack.emulator, 9105
    refusals = {
        (PACK.id, (PACK.telegram_stars or 0) - 1): t("shop_price_changed", "en"),
        ("nosuch", 10): t("shop_gone", "en"),
    }
    for (payload, stars), refusal in refusals.items():
        query_id = emu.pre_checkout(user(uid), payload, stars)
        answer = emu.wait_for(partial(emu.answer_of, query_id), 15, "the answer")
        assert answer == {"ok": False, "error_message": refusal}
    assert payments_of(stack, uid) == []


def test_an_admin_refund_goes_through_telegram_and_takes_the_pack_back(stack: Stack) -> None:
    emu, uid = stack.emulator, 9106
    paid, _ = bought(stack, uid, PACK.id, PACK.telegram_stars or 0)
    charge = charge_of(paid)
    assert person(stack, uid).extra_credits == PACK.images
    answer = admin(stack, f"/refund {charge}")
    [call] = emu.calls_of("refundStarPayment", telegram_payment_charge_id=charge)
    assert int(call.params["user_id"]) == uid
    done = t("refund_done", "en", charge=charge, user=f"telegram:{uid}", product=PACK.id)
    assert answer.startswith(done)
    assert emu.charges[charge].refunded
    assert person(stack, uid).extra_credits == 0
    # Telegram's service message about the refund follows; it is the same refund.
    emu.wait_for(
        lambda: any(
            (m.get("refunded_payment") or {}).get("telegram_payment_charge_id") == charge
            for m in list(emu.messages.values())
        ),
        what="the refunded_payment message",
    )
    settle(1.0)
    events = [(p.event, p.charge_id) for p in payments_of(stack, uid)]
    assert events == [("purchase", charge), ("refund", charge)]
    assert person(stack, uid).extra_credits == 0
    assert "refund" in [a.action for a in audits_of(stack, uid)]


def test_a_refund_telegram_refuses_changes_nothing(stack: Stack) -> None:
    emu, uid = stack.emulator, 9109
    paid, _ = bought(stack, uid, PACK.id, PACK.telegram_stars or 0)
    charge = charge_of(paid)
    emu.fail("refundStarPayment", 502)
    answer = admin(stack, f"/refund {charge}")
    assert answer == t("refund_failed", "en", platform="telegram", charge=charge)
    assert not emu.charges[charge].refunded
    assert [p.event for p in payments_of(stack, uid)] == ["purchase"]
    assert person(stack, uid).extra_credits == PACK.images


def test_a_refund_of_an_unknown_charge_changes_nothing(stack: Stack) -> None:
    before = len(stack.emulator.calls_of("refundStarPayment", ok=None))
    answer = admin(stack, "/refund stxNOSUCHCHARGE")
    assert answer == t("refund_unknown", "en", charge="stxNOSUCHCHARGE")
    settle(0.5)
    with transaction(stack.runtime.engine) as s:
        assert not s.exec(select(Payment).where(Payment.charge_id == "stxNOSUCHCHARGE")).all()
    assert len(stack.emulator.calls_of("refundStarPayment", ok=None)) == before


def test_a_refund_made_by_telegram_is_recorded_from_its_service_message(stack: Stack) -> None:
    emu, uid = stack.emulator, 9107
    paid, _ = bought(stack, uid, PACK.id, PACK.telegram_stars or 0)
    emu.refunded_message(charge_of(paid))  # Telegram support refunded it, not the bot
    emu.wait_for(lambda: len(payments_of(stack, uid)) == 2, 20, "the refund recorded")
    assert [p.event for p in payments_of(stack, uid)] == ["purchase", "refund"]
    assert person(stack, uid).extra_credits == 0


def test_a_pass_lasts_its_days_and_then_the_tier_is_what_it_was(stack: Stack) -> None:
    uid = 9108
    start = utcnow()
    _, thanks = bought(stack, uid, PASS.id, PASS.telegram_stars or 0)
    them = person(stack, uid)
    assert them.tier_until is not None
    shop = Shop(stack.runtime)
    assert thanks == t("paid_pass", "en", tier="plus", until=shop.when(them.tier_until, "en"))
    assert (them.tier, them.base_tier) == ("plus", "free")
    assert them.tier_until is not None
    until = them.tier_until.replace(tzinfo=start.tzinfo)
    assert timedelta(days=PASS.days) <= until - start < timedelta(days=PASS.days, minutes=5)
    real_clock = stack.runtime.clock
    stack.runtime.clock = lambda: real_clock() + timedelta(days=PASS.days, hours=1)
    try:
        stack.emulator.wait_for(
            lambda: person(stack, uid).tier == "free", 20, "maintenance ending the pass"
        )
    finally:
        stack.runtime.clock = real_clock
    them = person(stack, uid)
    assert (them.tier, them.tier_until, them.base_tier) == ("free", None, None)
    assert [p.event for p in payments_of(stack, uid)] == ["purchase", "expiry"]
    assert [(a.actor, a.action) for a in audits_of(stack, uid)] == [
        (f"telegram:{uid}", "purchase"),
        ("auto", "expiry"),
    ]


def test_a_slow_check_is_still_answered_in_time_and_charges_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, uid, payments = stack.emulator, 9110, stack.bot.payments

    def stuck(*args: object) -> str | None:
        time.sleep(3.0)  # the database is having a bad moment
        return None

    monkeypatch.setattr(payments, "deadline_s", 0.5)
    monkeypatch.setattr(payments.shop, "precheckout", stuck)
    asked = time.monotonic()
    query_id = emu.pre_checkout(user(uid), PACK.id, PACK.telegram_stars or 0)
    answer = emu.wait_for(lambda: emu.answer_of(query_id), 10, "the answer")
    assert time.monotonic() - asked < 2.5
    assert answer == {"ok": False, "error_message": t("payment_check_failed", "en")}
    assert payments_of(stack, uid) == []
