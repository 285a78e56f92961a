"""Content Credentials on results: a C2PA manifest signed with a test certificate chain made
here, offline, read back with c2pa's Reader; and no metadata at all without a certificate."""

from __future__ import annotations

import json
import logging
import sys
from datetime import timedelta
from pathlib import Path

import c2pa
import pytest
from PIL import Image

from storage.images import ImageStore
from storage.provenance import (
    TRAINED_ALGORITHMIC_MEDIA,
    Provenance,
    check_provenance,
    load_provenance,
    validation_failures,
)
from storage.settings import Settings, SettingsError, load_settings
from tests.c2pautil import Chain, codes, corrupt, make_chain, read_manifest

pytestmark = pytest.mark.unit

JOB = "ab" * 16


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return make_chain(tmp_path_factory.mktemp("c2pa"))


def _settings(tmp_path: Path, **env: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None, **env)  # type: ignore[call-arg,arg-type]


def _store(tmp_path: Path, provenance: Provenance | None) -> ImageStore:
    return ImageStore(tmp_path / "images", timedelta(hours=1), provenance=provenance)


def _photo() -> Image.Image:
    img = Image.linear_gradient("L").resize((96, 64)).convert("RGB")
    img.paste((200, 40, 40), (10, 10, 40, 40))
    return img


def segments(jpeg: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of each segment before the image data."""
    assert jpeg[:2] == b"\xff\xd8"
    found, i = [], 2
    while jpeg[i + 1] != 0xDA:  # start of scan: entropy-coded data follows
        length = int.from_bytes(jpeg[i + 2 : i + 4], "big")
        found.append((jpeg[i + 1], jpeg[i + 4 : i + 2 + length]))
        i += 2 + length
    return found


def without_app11(jpeg: bytes) -> bytes:
    """The JPEG with its APP11 (JUMBF: where C2PA lives) segments cut out."""
    out, i = bytearray(jpeg[:2]), 2
    while jpeg[i + 1] != 0xDA:
        end = i + 2 + int.from_bytes(jpeg[i + 2 : i + 4], "big")
        if jpeg[i + 1] != 0xEB:
            out += jpeg[i:end]
        i = end
    return bytes(out + jpeg[i:])


def test_signed_result_declares_ai_and_validates(tmp_path: Path, chain: Chain) -> None:
    provenance = load_provenance(_settings(tmp_path, c2pa_cert=chain.cert, c2pa_key=chain.key))
    assert provenance is not None
    jpeg = _store(tmp_path, provenance).save_result(JOB, _photo()).read_bytes()

    manifest, results, state = read_manifest(jpeg)
    # Sound but from a root this reader was not told to trust: that, and nothing else, fails.
    assert state == "Valid"
    assert codes(results, "failure") == {"signingCredential.untrusted"}
    assert {"claimSignature.validated", "claimSignature.insideValidity"} <= codes(
        results, "success"
    )
    assert "assertion.dataHash.match" in codes(results, "success")  # the pixels are covered
    assert codes(results, "informational") <= {"signingCredential.ocsp.skipped"}

    # Trusting the test root, the same file is Trusted with no failure at all.
    _, trusted, state = read_manifest(jpeg, chain.root_pem)
    assert state == "Trusted" and codes(trusted, "failure") == set()
    assert "signingCredential.trusted" in codes(trusted, "success")

    assert manifest["claim_generator_info"][0]["name"] == "stylebot"
    assert manifest["signature_info"]["common_name"] == "stylebot test signer"
    [actions] = [a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions")]
    listed = [(a["action"], a["digitalSourceType"]) for a in actions["data"]["actions"]]
    assert listed == [
        ("c2pa.created", TRAINED_ALGORITHMIC_MEDIA),
        ("c2pa.edited", TRAINED_ALGORITHMIC_MEDIA),
    ]
    assert all(a["softwareAgent"]["name"] == "stylebot" for a in actions["data"]["actions"])


def test_manifest_holds_nothing_of_the_person(tmp_path: Path, chain: Chain) -> None:
    provenance = load_provenance(_settings(tmp_path, c2pa_cert=chain.cert, c2pa_key=chain.key))
    plain = _store(tmp_path / "plain", None).save_result(JOB, _photo()).read_bytes()
    jpeg = _store(tmp_path / "signed", provenance).save_result(JOB, _photo()).read_bytes()

    manifest, _, _ = read_manifest(jpeg)
    assert "thumbnail" not in manifest  # no claim thumbnail, of the photo or the result
    assert manifest.get("ingredients", []) == []  # the source photo is not an ingredient
    assert [a["label"] for a in manifest["assertions"]] == ["c2pa.actions.v2"]
    assert "title" not in manifest and JOB not in json.dumps(manifest)
    # Only the manifest was added: the rest of the file is the unsigned JPEG, byte for byte.
    assert [m for m, _ in segments(jpeg)].count(0xEB) >= 1
    assert without_app11(jpeg) == plain
    assert len(jpeg) - len(plain) < 20_000  # a manifest, not an embedded image


def test_without_settings_results_carry_no_metadata(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert load_provenance(settings) is None
    check_provenance(settings)  # nothing to check: no error
    jpeg = _store(tmp_path, load_provenance(settings)).save_result(JOB, _photo()).read_bytes()
    found = segments(jpeg)
    # The JFIF header and the tables; no APPn but APP0 (no EXIF, XMP, ICC, JUMBF), no comment.
    assert [p[:5] for m, p in found if 0xE0 <= m <= 0xEF] == [b"JFIF\x00"]
    assert 0xFE not in [m for m, _ in found]
    assert b"c2pa" not in jpeg and b"http://ns.adobe.com/xap" not in jpeg
    with pytest.raises(c2pa.C2paError):
        read_manifest(jpeg)


def test_signing_failure_stores_the_result_unsigned(
    tmp_path: Path, chain: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = Provenance(chain.cert.read_bytes(), chain.other_key)  # c2pa refuses to sign
    caplog.set_level(logging.WARNING, "stylebot.provenance")
    path = _store(tmp_path, wrong).save_result(JOB, _photo())
    assert (
        path.read_bytes()
        == _store(tmp_path / "plain", None).save_result(JOB, _photo()).read_bytes()
    )
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(f"provenance_unsigned job={JOB} error=")
    assert (
        "PRIVATE" not in caplog.text and chain.other_key.decode().split("\n")[1] not in caplog.text
    )


@pytest.mark.parametrize(
    ("mistake", "setting", "words"),
    [
        ("corrupt key", "STYLEBOT_C2PA_KEY", "c2pa cannot sign es256 with this key"),
        ("other key", "STYLEBOT_C2PA_KEY", "not the key of the certificate"),
        ("wrong alg", "STYLEBOT_C2PA_KEY", "is STYLEBOT_C2PA_ALG the key's algorithm?"),
        ("not a key", "STYLEBOT_C2PA_KEY", "is not an unencrypted PKCS#8 PEM private key"),
        ("no key file", "STYLEBOT_C2PA_KEY", "cannot read"),
        ("not a cert", "STYLEBOT_C2PA_CERT", "is not a PEM certificate chain"),
        ("root signs", "STYLEBOT_C2PA_CERT", "c2pa cannot sign with this certificate chain"),
    ],
)
def test_unusable_certificate_or_key_is_one_line(
    tmp_path: Path, chain: Chain, mistake: str, setting: str, words: str
) -> None:
    cert, key, alg = chain.cert, tmp_path / "key.pem", "es256"
    key.write_bytes(chain.key.read_bytes())
    if mistake == "corrupt key":
        key.write_bytes(corrupt(chain.key.read_bytes()))
    elif mistake == "other key":
        key.write_bytes(chain.other_key)
    elif mistake == "wrong alg":
        alg = "ps256"
    elif mistake == "not a key":
        key.write_bytes(chain.cert.read_bytes())
    elif mistake == "no key file":
        key = tmp_path / "missing.pem"
    elif mistake == "not a cert":
        cert = tmp_path / "cert.pem"
        cert.write_text("hello\n")
    elif mistake == "root signs":  # a chain of the root alone: c2pa refuses a self-signed signer
        cert = tmp_path / "root.pem"
        cert.write_text(chain.root_pem)
    settings = _settings(tmp_path, c2pa_cert=cert, c2pa_key=key, c2pa_alg=alg)
    with pytest.raises(SettingsError) as caught:
        check_provenance(settings)
    line = str(caught.value)
    assert line.startswith(f"{setting}: ") and words in line and "\n" not in line
    assert "PRIVATE KEY" not in line


def test_worker_refuses_to_start_before_the_broker(tmp_path: Path, chain: Chain) -> None:
    from tasks.worker import run_worker

    key = tmp_path / "key.pem"
    key.write_bytes(corrupt(chain.key.read_bytes()))
    settings = _settings(
        tmp_path, c2pa_cert=chain.cert, c2pa_key=key, broker_url="redis://127.0.0.1:1/11"
    )
    with pytest.raises(SettingsError, match=r"^STYLEBOT_C2PA_KEY: "):
        run_worker(settings)  # the broker check (a closed port) would have said BROKER_URL


def test_cert_and_key_come_together(tmp_path: Path, chain: Chain) -> None:
    with pytest.raises(SettingsError, match=r"^STYLEBOT_C2PA_KEY: needed with STYLEBOT_C2PA_CERT"):
        load_settings(data_dir=tmp_path, c2pa_cert=chain.cert, _env_file=None)
    with pytest.raises(SettingsError, match=r"^STYLEBOT_C2PA_CERT: needed with STYLEBOT_C2PA_KEY"):
        load_settings(data_dir=tmp_path, c2pa_key=chain.key, _env_file=None)
    empty = load_settings(data_dir=tmp_path, c2pa_cert="", c2pa_key=" ", _env_file=None)
    assert (empty.c2pa_cert, empty.c2pa_key) == (None, None)  # `STYLEBOT_C2PA_CERT=`: unset


def test_validation_failures_reports_a_tampered_image(tmp_path: Path, chain: Chain) -> None:
    provenance = Provenance(chain.cert.read_bytes(), chain.key.read_bytes())
    signed = provenance.sign_jpeg(_store(tmp_path, None).save_result(JOB, _photo()).read_bytes())
    assert validation_failures(signed) == ["signingCredential.untrusted"]
    tampered = bytearray(signed)
    tampered[-100] ^= 0xFF  # a byte of the image data, which the manifest's hash covers
    assert "assertion.dataHash.mismatch" in validation_failures(bytes(tampered))


def test_certificate_without_c2pa_installed_is_one_line(
    tmp_path: Path, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "c2pa", None)  # what an image without the extra has
    settings = _settings(tmp_path, c2pa_cert=chain.cert, c2pa_key=chain.key)
    with pytest.raises(SettingsError, match=r"^STYLEBOT_C2PA_CERT: .*stylebot\[provenance\]"):
        check_provenance(settings)
