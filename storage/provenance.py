"""Content Credentials (C2PA) on results: a signed manifest that declares the image AI-made.

Only when the operator gives a signing certificate chain and key (STYLEBOT_C2PA_CERT,
STYLEBOT_C2PA_KEY); otherwise results carry no metadata at all. The manifest names stylebot and
its action, and nothing of the person: no ingredient, no thumbnail of their photo, none of the
result either (c2pa would make one by default), no title, no job id.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from PIL import Image

from storage.settings import Settings, SettingsError

log = logging.getLogger("stylebot.provenance")

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATOR = "stylebot"
# Expected of any certificate here: the reader below trusts no root (a deployment's verifier
# brings its own trust list), so a chain that is otherwise sound reads back as "untrusted".
ACCEPTED_FAILURES = frozenset({"signingCredential.untrusted"})
_CONTEXT_SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}
_INSTALL = "install the provenance extra: pip install 'stylebot[provenance]'"


@dataclass(frozen=True)
class Provenance:
    """What signs results: the PEM certificate chain, the PEM private key, the algorithm."""

    cert_chain: bytes = field(repr=False)
    key: bytes = field(repr=False)
    alg: str = "es256"
    tsa_url: str = ""  # a timestamp authority; empty: none (it would be a network call)

    def sign_jpeg(self, jpeg: bytes) -> bytes:
        """The JPEG with a signed manifest embedded; raises what c2pa raises."""
        import c2pa

        info = c2pa.C2paSignerInfo(self.alg, self.cert_chain, self.key, self.tsa_url or None)
        out = io.BytesIO()
        with (
            c2pa.Signer.from_info(info) as signer,
            c2pa.Context.from_dict(_CONTEXT_SETTINGS) as context,
            c2pa.Builder(manifest(), context) as builder,
        ):
            builder.sign(signer, "image/jpeg", io.BytesIO(jpeg), out)
        return out.getvalue()

    def label(self, jpeg: bytes, job_id: str) -> bytes:
        """Signed if signing works; otherwise the result unsigned and a warning (no data in it)."""
        try:
            return self.sign_jpeg(jpeg)
        except Exception as exc:  # a result is worth more than its label
            log.warning("provenance_unsigned job=%s error=%s", job_id, _kind(exc))
            return jpeg


def manifest() -> dict[str, Any]:
    """The manifest definition: made by a trained model (created), restyling a photo (edited)."""
    agent = {"name": GENERATOR, "version": _version()}
    made = {"digitalSourceType": TRAINED_ALGORITHMIC_MEDIA, "softwareAgent": agent}
    return {
        "claim_generator_info": [agent],
        "format": "image/jpeg",
        "ingredients": [],
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {"action": "c2pa.created", **made},
                        {"action": "c2pa.edited", **made, "description": "AI-stylized"},
                    ]
                },
            }
        ],
    }


@cache
def _version() -> str:
    try:
        return metadata.version("stylebot")
    except metadata.PackageNotFoundError:
        return "0"


def _kind(exc: BaseException) -> str:
    """An exception's class name only: c2pa's messages may quote what it was given."""
    return type(exc).__name__.lstrip("_")


def load_provenance(settings: Settings, *, check: bool = False) -> Provenance | None:
    """The signer the settings describe, None without a certificate; SettingsError naming the
    setting at fault. check: also sign a test image and read it back (start-up)."""
    if settings.c2pa_cert is None or settings.c2pa_key is None:
        return None
    chain = _read(settings.c2pa_cert, "STYLEBOT_C2PA_CERT", b"-----BEGIN CERTIFICATE-----")
    key = _read(settings.c2pa_key, "STYLEBOT_C2PA_KEY", b"-----BEGIN PRIVATE KEY-----")
    found = Provenance(chain, key, settings.c2pa_alg, settings.c2pa_tsa_url)
    try:
        import c2pa  # noqa: F401
    except (ImportError, OSError):  # not installed, or its native library does not load here
        raise SettingsError(f"STYLEBOT_C2PA_CERT: signing results needs c2pa: {_INSTALL}") from None
    if check:
        _check(found)
    return found


def _read(path: Path, setting: str, marker: bytes) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SettingsError(
            f"{setting}: cannot read {path} ({exc.strerror or type(exc).__name__})"
        ) from None
    if marker not in data:
        what = (
            "a PEM certificate chain (the signer's certificate first)"
            if setting.endswith("CERT")
            else "an unencrypted PKCS#8 PEM private key (`openssl pkcs8 -topk8 -nocrypt` makes one)"
        )
        raise SettingsError(f"{setting}: {path} is not {what}")
    return data


def _check(found: Provenance) -> None:
    """Sign a small image without the timestamp authority, and read it back."""
    blank = io.BytesIO()
    Image.new("RGB", (16, 16), "white").save(blank, format="JPEG")
    try:
        signed = Provenance(found.cert_chain, found.key, found.alg).sign_jpeg(blank.getvalue())
    except Exception as exc:
        raise SettingsError(_sign_error(exc, found.alg)) from None
    failures = sorted(set(validation_failures(signed)) - ACCEPTED_FAILURES)
    if failures:
        raise SettingsError(
            "STYLEBOT_C2PA_CERT: a test image signed with it fails validation "
            f"({', '.join(failures)})"
        )


def _sign_error(exc: Exception, alg: str) -> str:
    """One line naming the likely setting; c2pa's reasons name formats, never key bytes."""
    reason = " ".join(str(exc).split())[:200] or _kind(exc)
    if "invalid signing credentials" in reason or "Invalid signing algorithm" in reason:
        return (
            f"STYLEBOT_C2PA_KEY: c2pa cannot sign {alg} with this key ({reason}); "
            "is STYLEBOT_C2PA_ALG the key's algorithm?"
        )
    if "does not match" in reason:
        return f"STYLEBOT_C2PA_KEY: not the key of the certificate in STYLEBOT_C2PA_CERT ({reason})"
    return f"STYLEBOT_C2PA_CERT: c2pa cannot sign with this certificate chain ({reason})"


def validation_failures(jpeg: bytes, trust_anchors: str = "") -> list[str]:
    """The failure codes c2pa reports for a signed JPEG's active manifest."""
    import c2pa

    settings = {"trust": {"trust_anchors": trust_anchors}} if trust_anchors else {}
    with (
        c2pa.Context.from_dict(settings) as context,
        c2pa.Reader("image/jpeg", io.BytesIO(jpeg), context=context) as reader,
    ):
        results = reader.get_validation_results() or {}
    return [item["code"] for item in results.get("activeManifest", {}).get("failure", [])]


def check_provenance(settings: Settings) -> None:
    """Start-up: a configured signer signs, or one SettingsError line says why not."""
    load_provenance(settings, check=True)
