"""The optional safety check, run on the worker: a flagged result is held back, never blacked out.

Pluggable per deployment (STYLEBOT_SAFETY_CLASSIFIER): an image-classification model loaded with
transformers, or any factory "package.module:name" returning a Scorer. A result whose unsafe
label scores at or above the threshold is stored but not sent; the job ends refunded and the
person may /appeal (bots/core/appeals.py), so a false positive costs them nothing and an admin
one command. The scorer loads lazily, once per process, in the worker child that first needs it.
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, runtime_checkable

from PIL import Image
from sqlalchemy import update
from sqlmodel import Session, col

from quota.lifecycle import finish_failed
from storage.models import Job, utcnow
from storage.settings import Settings

log = logging.getLogger("stylebot.safety")

_FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@runtime_checkable
class Scorer(Protocol):
    def score(self, image: Image.Image) -> dict[str, float]:
        """Each label's score in [0, 1]."""
        ...


@dataclass(frozen=True)
class Verdict:
    """The unsafe label that scored highest, and its score."""

    label: str
    score: float


class TransformersScorer:
    """An image-classification model through transformers' pipeline, every label scored."""

    def __init__(self, model: str, device: str = "cpu") -> None:
        from transformers import pipeline  # heavy: only where a check is configured

        self.pipe: Any = pipeline("image-classification", model=model, device=device)

    def score(self, image: Image.Image) -> dict[str, float]:
        found = self.pipe(image.convert("RGB"), top_k=None)
        return {str(item["label"]).lower(): float(item["score"]) for item in found}


@cache
def load_scorer(spec: str, device: str = "cpu") -> Scorer:
    """The scorer a setting names (cached per process: a model loads once)."""
    if _FACTORY.fullmatch(spec):
        module, _, name = spec.partition(":")
        made = getattr(importlib.import_module(module), name)()
        if not isinstance(made, Scorer):
            raise TypeError(f"STYLEBOT_SAFETY_CLASSIFIER: {spec} made no scorer")
        return made
    scorer = TransformersScorer(spec, device)
    log.info("safety_ready classifier=%s device=%s", spec, device)
    return scorer


def verdict(scores: dict[str, float], labels: tuple[str, ...], threshold: float) -> Verdict | None:
    """The highest-scoring unsafe label at or above the threshold; None when nothing is."""
    unsafe = [(score, label) for label, score in scores.items() if label.lower() in labels]
    if not unsafe:
        return None
    score, label = max(unsafe)
    return Verdict(label, round(score, 4)) if score >= threshold else None


def check(settings: Settings, image: Image.Image, *, photo: bool = False) -> Verdict | None:
    """Check a result (or, with `photo`, an input when STYLEBOT_SAFETY_CHECK_INPUT is on)."""
    if not settings.safety_classifier or (photo and not settings.safety_check_input):
        return None
    scorer = load_scorer(settings.safety_classifier, settings.safety_device)
    return verdict(scorer.score(image), settings.safety_labels, settings.safety_threshold)


def hold(session: Session, job: Job, result_path: str, found: Verdict) -> bool:
    """running -> failed ("held"), refunded, in one transaction with the hold: the result stays
    stored for review. False if the job had ended already (another worker settled it)."""
    if not finish_failed(session, job, "held"):
        return False
    session.execute(
        update(Job)
        .where(col(Job.id) == job.id)
        .values(
            result_path=result_path, held_at=utcnow(), hold_label=found.label[:40],
            hold_score=found.score,
        )
    )  # fmt: skip
    return True
