"""A safety classifier that flags everything, for STYLEBOT_SAFETY_CLASSIFIER="package:factory".

The worker process imports it by that name, so it lives in an importable module (not a test)."""

from __future__ import annotations

from PIL import Image

SPEC = "tests.e2e.safety_flagger:flag_everything"


class FlagEverything:
    def score(self, image: Image.Image) -> dict[str, float]:
        return {"nsfw": 0.97, "safe": 0.03}


def flag_everything() -> FlagEverything:
    return FlagEverything()
