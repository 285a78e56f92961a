"""Selling with Telegram Stars (currency XTR, no payment provider): invoices, the pre-checkout
answer, the payment and refunds, each handed to the core's shop.

Telegram cancels a payment whose pre-checkout query is not answered within 10 seconds, so the
shop's check runs with a shorter deadline and anything slower is a polite no (nothing charged).
A successful payment is credited by the shop once per charge id, however often it arrives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable

from telegram import Bot, LabeledPrice, Update
from telegram.ext import Application, ContextTypes, MessageHandler, PreCheckoutQueryHandler, filters

from bots.core import Core, ReplyTarget
from bots.core.failures import report
from bots.core.messages import t
from bots.telegram.memory import FirstSight
from bots.telegram.sender import placement, send_text
from bots.telegram.translate import PLATFORM, idempotency_key, sender_of, target_of

log = logging.getLogger("stylebot.telegram.payments")

STARS = "XTR"
PRECHECKOUT_DEADLINE_S = 6.0  # well inside Telegram's 10 seconds, answer included
REFUND_TIMEOUT_S = 30.0


class Payments:
    def __init__(self, core: Core, bot: Bot, deadline_s: float = PRECHECKOUT_DEADLINE_S) -> None:
        self.shop, self.bot, self.deadline_s = core.shop, bot, deadline_s
        self.seen = FirstSight()  # the same payment message again: credited once, thanked once

    def register(self, app: Application) -> None:
        """Before the general message handler: a payment message is no request."""
        app.add_handler(PreCheckoutQueryHandler(self.on_precheckout))
        app.add_handler(MessageHandler(filters.SUCCESSFUL_PAYMENT, self.on_paid))
        app.add_handler(MessageHandler(filters.StatusUpdate.REFUNDED_PAYMENT, self.on_refunded))

    def start(self) -> None:
        """On the bot's event loop, once it runs: let admins refund through this bot."""
        self.shop.register_refunder(PLATFORM, self.refunder(asyncio.get_running_loop()))

    async def send_invoices(self, target: ReplyTarget, locale: str) -> None:
        """/buy: one Stars invoice per product with a Telegram price, after the shop's text."""
        for product in self.shop.for_platform(PLATFORM):
            assert product.telegram_stars is not None  # for_platform: priced here
            title = product.title_in(locale)
            await self.bot.send_invoice(
                int(target.chat_id),
                title,
                product.description_in(locale),
                payload=product.id,
                currency=STARS,
                prices=[LabeledPrice(title, product.telegram_stars)],
                **placement(target),
            )

    async def on_precheckout(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.pre_checkout_query
        if query is None:
            return
        sender = sender_of(query.from_user)
        check = asyncio.to_thread(
            self.shop.precheckout,
            sender,
            query.invoice_payload,
            query.total_amount,
            query.currency,
        )
        try:
            refusal = await asyncio.wait_for(check, self.deadline_s)
        except Exception as exc:  # too slow or failing: no money moves, the person may retry
            report(log, "precheckout_failed", exc)
            refusal = t("payment_check_failed", sender.locale)
        log.info(
            "precheckout user=%s product=%s ok=%s",
            sender.user_id,
            query.invoice_payload,
            refusal is None,
        )
        if refusal is None:
            await query.answer(ok=True)
        else:
            await query.answer(ok=False, error_message=refusal)

    async def on_paid(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.message
        if msg is None or msg.successful_payment is None or msg.from_user is None:
            return
        if not self.seen.first(idempotency_key(msg.chat.id, msg.message_id)):
            return
        paid, sender = msg.successful_payment, sender_of(msg.from_user)
        try:
            reply = await asyncio.to_thread(
                self.shop.paid,
                sender,
                platform=PLATFORM,
                charge_id=paid.telegram_payment_charge_id,
                product_id=paid.invoice_payload,
                amount=paid.total_amount,
                currency=paid.currency,
            )
        except Exception as exc:  # the Stars are taken: say so, with what support needs
            report(log, f"payment_not_recorded charge={paid.telegram_payment_charge_id}", exc)
            text = t("payment_not_recorded", sender.locale, charge=paid.telegram_payment_charge_id)
            await send_text(self.bot, target_of(msg), text)
            return
        log.info("paid user=%s product=%s", sender.user_id, paid.invoice_payload)
        await send_text(self.bot, target_of(msg), reply.text)

    async def on_refunded(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Telegram refunded a payment (the bot's own refund, or Telegram's): take back what it
        bought; the shop knows whether that was already done."""
        msg = update.message
        refund = msg.refunded_payment if msg is not None else None
        if refund is None:
            return
        charge = refund.telegram_payment_charge_id
        taken = await asyncio.to_thread(self.shop.refunded, PLATFORM, charge, "telegram")
        log.info("refunded charge=%s recorded=%s", charge, taken)

    def refunder(self, loop: asyncio.AbstractEventLoop) -> Callable[[str, str], None]:
        """What `/refund` calls from its worker thread: refundStarPayment on the bot's loop."""

        def refund(user_id: str, charge_id: str) -> None:
            call = self.bot.refund_star_payment(
                user_id=int(user_id), telegram_payment_charge_id=charge_id
            )
            future = asyncio.run_coroutine_threadsafe(call, loop)
            try:
                future.result(REFUND_TIMEOUT_S)  # raises what Telegram answered (BadRequest)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise

        return refund
