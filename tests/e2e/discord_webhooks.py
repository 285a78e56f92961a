"""Interaction routes: the callback, the @original response, follow-ups. No bot token here: the
interaction token is the credential, valid 15 minutes; the callback must come within 3 seconds."""

from __future__ import annotations

from typing import Any

from tests.e2e.discord_http import Req
from tests.e2e.discord_payloads import (
    APP_ID,
    BOT_USER,
    CALLBACK_WINDOW_S,
    EPHEMERAL,
    LOADING,
    TOKEN_LIFETIME_S,
    ApiError,
    form_error,
    message_payload,
)
from tests.e2e.discord_state import DiscordState, Pending, check_content

Reply = tuple[int, Any]

# Which callback types each interaction type accepts: PING 1; commands 4 5 9; components and
# modal submits also 6 7 (but no modal after a modal); autocomplete only 8. 10/12 are the
# (deprecated) premium and launch-activity answers.
ALLOWED = {1: {1}, 2: {4, 5, 9, 10, 12}, 3: {4, 5, 6, 7, 9, 10, 12}, 4: {8}, 5: {4, 5, 6, 7, 10}}
UNKNOWN_MESSAGE = ApiError(404, 10008, "Unknown Message")
TRUE = ("1", "true", "True")


class WebhookRoutes(DiscordState):
    # --- the callback -------------------------------------------------------------------------

    def r_callback(self, req: Req) -> Reply:
        iid = req.arg("interaction_id")
        pending = self.interactions.get(int(iid)) if iid.isdigit() else None
        if pending is None or pending.payload["token"] != req.arg("token"):
            raise ApiError(404, 10062, "Unknown interaction")
        if pending.acked is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if self.now() - pending.created > CALLBACK_WINDOW_S:
            raise ApiError(404, 10062, "Unknown interaction")
        body = req.body or {}
        rtype = int(body.get("type") or 0)
        if rtype not in ALLOWED.get(pending.payload["type"], set()):
            raise form_error("type", "Value must be one of the valid interaction response types.")
        msg = self._respond(pending, rtype, body.get("data") or {}, req)
        pending.acked = body
        if req.call.params.get("with_response") not in TRUE:
            return 204, None
        return 200, self._callback_response(pending, rtype, msg)

    def _respond(
        self, pending: Pending, rtype: int, data: dict[str, Any], req: Req
    ) -> dict[str, Any] | None:
        channel = self.channels[int(pending.payload["channel_id"])]
        ephemeral = int(data.get("flags") or 0) & EPHEMERAL
        if rtype == 4:
            msg = self.new_message(
                channel, data, req.parts, flags=ephemeral, msg_type=_kind(pending)
            )
            return self._adopt(pending, msg, original=True)
        if rtype == 5:  # the "is thinking..." placeholder the later edit or follow-up fills
            msg = message_payload(
                self.snowflake(), channel, BOT_USER, self.now(), flags=LOADING | ephemeral
            )
            msg["type"] = _kind(pending)
            self.messages[int(msg["id"])] = msg
            return self._adopt(pending, msg, original=True)
        if rtype in (6, 7):  # on a component: the message it's on becomes @original
            target = self._component_message(pending)
            pending.original_id = int(target["id"])
            if rtype == 7:
                self.edit_message(target, data, req.parts)
                return target
        if rtype == 8 and len(data.get("choices") or []) > 25:
            raise form_error("data.choices", "Must be 25 or fewer in length.")
        if rtype == 9 and not (data.get("custom_id") and data.get("title")):
            raise form_error("data", "A modal needs a custom_id, a title and components.")
        return None

    def _adopt(self, pending: Pending, msg: dict[str, Any], original: bool) -> dict[str, Any]:
        """Mark a message as the interaction's (webhook_id, interaction_metadata)."""
        payload = pending.payload
        user = (payload.get("member") or {}).get("user") or payload.get("user")
        meta: dict[str, Any] = {
            "id": payload["id"],
            "type": payload["type"],
            "user": user,
            "authorizing_integration_owners": payload["authorizing_integration_owners"],
        }
        if original:
            pending.original_id = int(msg["id"])
        elif pending.original_id is not None:
            meta["original_response_message_id"] = str(pending.original_id)
        msg.update(webhook_id=str(APP_ID), application_id=str(APP_ID), interaction_metadata=meta)
        return msg

    def _component_message(self, pending: Pending) -> dict[str, Any]:
        shown = pending.payload.get("message")
        if shown is None:
            raise form_error("type", "Only a component's interaction can update its message.")
        return self.messages.setdefault(int(shown["id"]), dict(shown))

    def _callback_response(
        self, pending: Pending, rtype: int, msg: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The InteractionCallbackResponse discord.py reads after ?with_response=1."""
        about: dict[str, Any] = {"id": pending.payload["id"], "type": pending.payload["type"]}
        body: dict[str, Any] = {"interaction": about}
        if msg is not None:
            about["response_message_id"] = msg["id"]
            about["response_message_loading"] = rtype == 5
            about["response_message_ephemeral"] = bool(msg["flags"] & EPHEMERAL)
            body["resource"] = {"type": rtype, "message": msg}
        return body

    # --- the token's routes -------------------------------------------------------------------

    def _pending(self, req: Req) -> Pending:
        if req.arg("application_id") != str(APP_ID):
            raise ApiError(404, 10015, "Unknown Webhook")
        iid = self.tokens.get(req.arg("token"))
        if iid is None or self.now() - self.interactions[iid].created > TOKEN_LIFETIME_S:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        req.call.args["interaction_id"] = str(iid)  # so calls_of(..., interaction_id=) works
        return self.interactions[iid]

    def _message_of(self, pending: Pending, req: Req) -> dict[str, Any]:
        wanted = req.call.args.get("message_id", "@original")
        mid = pending.original_id if wanted == "@original" else int(wanted)
        if mid is None or mid not in self.messages:
            raise UNKNOWN_MESSAGE
        if mid != pending.original_id and mid not in pending.followup_ids:
            raise UNKNOWN_MESSAGE
        return self.messages[mid]

    def r_get_original(self, req: Req) -> Reply:
        return 200, self._message_of(self._pending(req), req)

    def r_edit_original(self, req: Req) -> Reply:
        msg = self._message_of(self._pending(req), req)
        self.edit_message(msg, req.body or {}, req.parts)
        return 200, msg

    def r_delete_original(self, req: Req) -> Reply:
        msg = self._message_of(self._pending(req), req)
        del self.messages[int(msg["id"])]
        return 204, None

    r_get_followup = r_get_original
    r_edit_followup = r_edit_original
    r_delete_followup = r_delete_original

    def r_followup(self, req: Req) -> Reply:
        """Always answers the message (wait is implied for interactions). The first follow-up
        after a deferral fills the thinking message and keeps the deferral's ephemerality."""
        pending = self._pending(req)
        if pending.acked is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        cap = pending.max_followups
        if cap is not None and len(pending.followup_ids) >= cap:
            message = "This interaction has hit the maximum number of follow up messages"
            raise ApiError(400, 40094, message)
        body = req.body or {}
        loading = self.messages.get(pending.original_id or 0)
        if loading is not None and loading["flags"] & LOADING:
            check_content(body, req.parts)
            self.edit_message(loading, body, req.parts)
            msg = loading
        else:
            channel = self.channels[int(pending.payload["channel_id"])]
            flags = int(body.get("flags") or 0) & EPHEMERAL
            msg = self.new_message(channel, body, req.parts, flags=flags, msg_type=_kind(pending))
            self._adopt(pending, msg, original=False)
        pending.followup_ids.append(int(msg["id"]))
        return 200, msg


def _kind(pending: Pending) -> int:
    """Message type of a response: 20 CHAT_INPUT_COMMAND, 23 CONTEXT_MENU_COMMAND, 0 else."""
    if pending.payload["type"] != 2:
        return 0
    return 20 if pending.payload["data"].get("type", 1) == 1 else 23
