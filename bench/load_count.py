"""What `stylebot bench load` counts, from the emulator's stamped call log and the driver's
requests: each request's replies and its first one, the reply kinds, message rates per second
(overall and per chat), lost and duplicated replies. Pure functions; no emulator, no bot."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any, Protocol

IMAGE_METHODS = ("sendPhoto", "sendDocument", "sendMediaGroup")
REPLY_METHODS = ("sendMessage", *IMAGE_METHODS)
PACED_PREFIXES = ("send", "edit", "copy", "forward")  # what Telegram's flood limits count
NOT_MESSAGES = ("sendChatAction",)
# Two messages into one chat this close were sent closer than 1/s; a little under a second
# apart can be the bot pacing at exactly 1/s and one request taking longer on the way.
CLOSE_S = 0.9
# First replies by what they say: catalog keys -> the kind shown in the report.
KINDS = {
    "queued": ("queued", "queued_eta"),
    "busy": ("busy", "no_workers", "paused_free", "closed", "busy_error"),
    "quota: daily limit": ("quota_daily",),
    "quota: one at a time": ("quota_in_flight",),
    "refused: not a usable image": (
        "image_empty", "image_not_image", "image_too_big_file", "image_too_many_pixels",
        "image_corrupt", "image_unreadable", "image_unsupported_format",
    ),
    "duplicate": ("duplicate",),
    "earlier result sent again": ("duplicate_result",),
    "result": ("result",),
    "failed": ("failed",),
    "style keyboard": ("pick_style",),
}  # fmt: skip


class CallLike(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def params(self) -> dict[str, Any]: ...
    @property
    def status(self) -> int: ...
    @property
    def sent_id(self) -> int | None: ...  # the message id a send created


class RequestLike(Protocol):
    @property
    def chat_id(self) -> int: ...
    @property
    def message_id(self) -> int: ...
    @property
    def at(self) -> float: ...


@dataclass(frozen=True)
class Reply:
    at: float
    method: str
    text: str
    sent_id: int | None = None

    @property
    def kind(self) -> str:
        return kind_of(self.text)  # a photo's caption says which it is, too

    @property
    def is_result(self) -> bool:
        """The styled image (or the apology for not making it), not a first answer."""
        return self.method in IMAGE_METHODS or self.kind == "failed"


@cache
def _prefixes() -> tuple[tuple[str, str], ...]:
    """(the fixed start of an English sentence, its kind), longest first."""
    from bots.core.messages import template

    pairs = [
        (template(key, "en").split("{", 1)[0], kind) for kind, keys in KINDS.items() for key in keys
    ]
    return tuple(sorted(((p, k) for p, k in pairs if p), key=lambda pk: -len(pk[0])))


def kind_of(text: str) -> str:
    """What a text reply says, by the catalog sentence it starts like; "other" if none."""
    return next((kind for prefix, kind in _prefixes() if text.startswith(prefix)), "other")


def _answered(call: CallLike) -> tuple[int, int] | None:
    """(chat id, message id) of the message this call replies to, if it is an ok reply."""
    if call.method not in REPLY_METHODS or call.status != 200:
        return None
    where = call.params.get("reply_parameters") or {}
    if "message_id" not in where or "chat_id" not in call.params:
        return None
    return int(call.params["chat_id"]), int(where["message_id"])


def replies(calls: Iterable[tuple[float, CallLike]]) -> dict[tuple[int, int], list[Reply]]:
    """Every ok reply, by the (chat id, message id) it answers, in arrival order."""
    found: dict[tuple[int, int], list[Reply]] = defaultdict(list)
    for at, call in sorted(calls, key=lambda ac: ac[0]):
        key = _answered(call)
        if key is not None:
            text = str(call.params.get("text") or call.params.get("caption") or "")
            found[key].append(Reply(at, call.method, text, call.sent_id))
    return found


@dataclass(frozen=True)
class Answers:
    """How the requests were answered."""

    first_ms: list[float]  # injection -> first reply, per answered request
    kinds: Counter[str]  # the first replies' kinds
    no_reply: int  # requests that got nothing at all
    no_result: int  # admitted requests (a job) whose result never came
    duplicated: int  # requests with two results, or two first answers
    results: int
    statuses_left: int  # "queued" status messages not deleted once the result came


def deleted(calls: Iterable[tuple[float, CallLike]]) -> set[tuple[int, int]]:
    """(chat id, message id) of every message the bot tried to delete."""
    return {
        (int(c.params.get("chat_id") or 0), int(c.params.get("message_id") or 0))
        for _, c in calls
        if c.method == "deleteMessage"
    }


def answers(
    requests: Sequence[RequestLike],
    found: dict[tuple[int, int], list[Reply]],
    with_job: set[tuple[int, int]],
    gone: set[tuple[int, int]],
) -> Answers:
    """`with_job`: the (chat id, message id) of the requests that became a job; `gone`: the
    messages the bot deleted (see `deleted`)."""
    first_ms: list[float] = []
    kinds: Counter[str] = Counter()
    no_reply = no_result = duplicated = results = left = 0
    for req in requests:
        key = (req.chat_id, req.message_id)
        got = found.get(key, [])
        if not got:
            no_reply += 1
            continue
        first_ms.append(1000 * (got[0].at - req.at))
        kinds[got[0].kind] += 1
        n_results = sum(r.is_result for r in got)
        results += n_results
        if n_results > 1 or len(got) - n_results > 1:
            duplicated += 1
        elif key in with_job and n_results == 0:
            no_result += 1
        elif n_results and _status_left(got, req.chat_id, gone):
            left += 1
    return Answers(first_ms, kinds, no_reply, no_result, duplicated, results, left)


def _status_left(got: list[Reply], chat: int, gone: set[tuple[int, int]]) -> bool:
    status = next((r for r in got if r.kind == "queued"), None)
    return status is not None and (chat, status.sent_id or 0) not in gone


def messages(calls: Iterable[tuple[float, CallLike]]) -> list[tuple[float, int, str]]:
    """(time, chat id, method) of every ok message the bot sent or edited, in time order: what
    Telegram's flood limits count."""
    out = []
    for at, call in calls:
        method = call.method
        if call.status == 200 and method.startswith(PACED_PREFIXES) and method not in NOT_MESSAGES:
            out.append((at, int(call.params.get("chat_id") or 0), method))
    return sorted(out)


def peak(times: Sequence[float], window_s: float = 1.0) -> tuple[int, float]:
    """The most of `times` (sorted) within any `window_s`-long window (t - window_s, t], and
    where that window starts (the first of them); (0, 0.0) for none."""
    best, start, lo = 0, 0.0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window_s:
            lo += 1
        if hi - lo + 1 > best:
            best, start = hi - lo + 1, times[lo]
    return best, start


@dataclass(frozen=True)
class Rates:
    sent: int  # messages sent or edited
    by_method: Counter[str]
    mean_per_s: float  # while the people were sending
    peak_overall: int  # most in any one second, all chats together
    peak_at: float  # when that second began (monotonic)
    peak_chat: int  # most in any one second into one chat
    chats_over: int  # chats that got more than one message within a second
    chats_close: int  # of which with two under CLOSE_S apart: more than the arrival's jitter
    closest_s: float | None  # the shortest gap between two messages into one chat


def rates(sent: Sequence[tuple[float, int, str]], sending: tuple[float, float]) -> Rates:
    """The message rates of `sent` (from `messages`); `sending`: when the people sent."""
    by_chat: dict[int, list[float]] = defaultdict(list)
    for at, chat, _ in sent:
        by_chat[chat].append(at)
    peaks = {chat: peak(times)[0] for chat, times in by_chat.items()}
    overall, at = peak([at for at, _, _ in sent])
    gaps = {chat: [b - a for a, b in pairwise(times)] for chat, times in by_chat.items()}
    every_gap = [gap for chat_gaps in gaps.values() for gap in chat_gaps]
    start, end = sending
    during = sum(1 for at, _, _ in sent if start <= at <= end)
    return Rates(
        sent=len(sent),
        by_method=Counter(method for _, _, method in sent),
        mean_per_s=during / (end - start) if end > start else 0.0,
        peak_overall=overall,
        peak_at=at,
        peak_chat=max(peaks.values(), default=0),
        chats_over=sum(1 for p in peaks.values() if p > 1),
        chats_close=sum(1 for g in gaps.values() if g and min(g) < CLOSE_S),
        closest_s=min(every_gap, default=None),
    )
