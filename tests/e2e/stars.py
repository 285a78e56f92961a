"""Telegram Stars in the Bot API emulator: invoices, pre-checkout queries, payments, refunds.

What Telegram does between the bot's calls is played here: a person paying an invoice is a
`pre_checkout_query` update the bot must answer within 10 seconds, then (if it said ok) a
message carrying `successful_payment`; a refund is `refundStarPayment` for a charge the
emulator knows, followed by the `refunded_payment` service message both sides receive.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from tests.e2e.methods import ApiError

STARS = "XTR"
PRECHECKOUT_DEADLINE_S = 10.0  # Telegram cancels a payment the bot has not answered by then


@dataclass
class Charge:
    """A payment Telegram made: whose, how much, for which invoice payload."""

    user_id: int
    chat_id: int
    amount: int
    payload: str
    refunded: bool = False


@dataclass
class PreCheckout:
    query: dict[str, Any]
    asked_at: float
    answer: dict[str, Any] | None = None  # {"ok": bool, "error_message": str | None}


class StarsMixin:
    """Needs the Emulator's lock, message store and inject()."""

    lock: threading.RLock
    charges: dict[str, Charge]
    prechecks: dict[str, PreCheckout]
    echo_refunds: bool  # send the refunded_payment service message after refundStarPayment

    def inject(self, update: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def user_message(self, chat_id: int, user: dict[str, Any], **content: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _bot_message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        raise NotImplementedError

    # --- methods ---------------------------------------------------------------------------

    def m_sendInvoice(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        prices = params.get("prices") or []
        if params.get("currency") == STARS and (params.get("provider_token") or len(prices) != 1):
            raise ApiError("Bad Request: CURRENCY_TOTAL_AMOUNT_INVALID")  # Stars: one price
        if not params.get("payload") or not params.get("title"):
            raise ApiError("Bad Request: invoice payload and title are required")
        invoice = {
            "title": params["title"],
            "description": params.get("description", ""),
            "start_parameter": params.get("start_parameter", ""),
            "currency": params["currency"],
            "total_amount": sum(int(p["amount"]) for p in prices),
        }
        return self._bot_message(params, invoice=invoice)

    def m_answerPreCheckoutQuery(self, params: dict[str, Any], files: dict[str, bytes]) -> bool:
        pending = self.prechecks.get(str(params["pre_checkout_query_id"]))
        if pending is None or pending.answer is not None:
            raise ApiError("Bad Request: QUERY_ID_INVALID")
        if time.monotonic() - pending.asked_at > PRECHECKOUT_DEADLINE_S:
            raise ApiError("Bad Request: query is too old and response timeout expired")
        ok = params["ok"] in (True, "true")
        if not ok and not params.get("error_message"):
            raise ApiError("Bad Request: ERROR_MESSAGE_EMPTY")
        pending.answer = {"ok": ok, "error_message": params.get("error_message")}
        return True

    def m_refundStarPayment(self, params: dict[str, Any], files: dict[str, bytes]) -> bool:
        charge = self.charges.get(str(params["telegram_payment_charge_id"]))
        if charge is None or charge.user_id != int(params["user_id"]):
            raise ApiError("Bad Request: CHARGE_ID_INVALID")
        if charge.refunded:
            raise ApiError("Bad Request: CHARGE_ALREADY_REFUNDED")
        charge.refunded = True
        if self.echo_refunds:  # both sides get the service message about it
            self.refunded_message(str(params["telegram_payment_charge_id"]))
        return True

    # --- what people (and Telegram) do: test controls, any thread ------------------------------

    def pre_checkout(
        self, user: dict[str, Any], payload: str, amount: int, currency: str = STARS
    ) -> str:
        """A person pressed Pay on an invoice: the query the bot must answer; returns its id."""
        query_id = uuid.uuid4().hex
        query = {
            "id": query_id,
            "from": user,
            "currency": currency,
            "total_amount": amount,
            "invoice_payload": payload,
        }
        with self.lock:
            self.prechecks[query_id] = PreCheckout(query, time.monotonic())
        self.inject({"pre_checkout_query": query})
        return query_id

    def answer_of(self, query_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.prechecks[query_id].answer

    def successful_payment(
        self, chat_id: int, user: dict[str, Any], payload: str, amount: int
    ) -> dict[str, Any]:
        """Telegram took the Stars: the service message the bot receives; a fresh charge id."""
        charge_id = f"stxTEST{uuid.uuid4().hex[:20]}"
        with self.lock:
            self.charges[charge_id] = Charge(user["id"], chat_id, amount, payload)
        payment = {
            "currency": STARS,
            "total_amount": amount,
            "invoice_payload": payload,
            "telegram_payment_charge_id": charge_id,
            "provider_payment_charge_id": "",
        }
        return self.user_message(chat_id, user, successful_payment=payment)

    def pay(
        self, chat_id: int, user: dict[str, Any], payload: str, amount: int, timeout: float = 15.0
    ) -> dict[str, Any] | None:
        """The whole of paying an invoice: the pre-checkout query, then (once the bot said ok)
        the successful payment message, which is returned; None when the bot refused."""
        query_id = self.pre_checkout(user, payload, amount)
        deadline = time.monotonic() + timeout
        while (answer := self.answer_of(query_id)) is None:
            assert time.monotonic() < deadline, "the pre-checkout query was never answered"
            time.sleep(0.05)
        if not answer["ok"]:
            return None
        return self.successful_payment(chat_id, user, payload, amount)

    def refunded_message(self, charge_id: str) -> dict[str, Any]:
        """The service message about a refund, in the chat where the person paid."""
        with self.lock:
            charge = self.charges[charge_id]
        refund = {
            "currency": STARS,
            "total_amount": charge.amount,
            "invoice_payload": charge.payload,
            "telegram_payment_charge_id": charge_id,
        }
        person = {"id": charge.user_id, "is_bot": False, "first_name": f"User{charge.user_id}"}
        return self.user_message(charge.chat_id, person, refunded_payment=refund)
