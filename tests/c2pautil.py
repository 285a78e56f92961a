"""A C2PA test certificate chain made offline, and what c2pa's Reader says of a signed file."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ISSUER_KU = dict.fromkeys(
    (
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "encipher_only",
        "decipher_only",
    ),
    False,
)


@dataclass
class Chain:
    cert: Path  # the signer's certificate, then the root's
    key: Path
    root_pem: str
    other_key: bytes  # a key of the same kind that belongs to no certificate here


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "stylebot tests"),
        ]
    )


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_chain(folder: Path) -> Chain:
    """A root CA and an ES256 end-entity certificate with what C2PA asks of a signer: key
    usage digitalSignature (critical), an extended key usage (emailProtection), not a CA."""
    now = datetime.now(UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("stylebot test root"))
        .issuer_name(_name("stylebot test root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **ISSUER_KU),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(_name("stylebot test signer"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **ISSUER_KU),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    root_pem = root.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = folder / "chain.pem", folder / "signer.key"
    cert_path.write_bytes(signer.public_bytes(serialization.Encoding.PEM) + root_pem)
    key_path.write_bytes(_pkcs8(key))
    key_path.chmod(0o600)
    other = _pkcs8(ec.generate_private_key(ec.SECP256R1()))
    return Chain(cert_path, key_path, root_pem.decode(), other)


def read_manifest(
    jpeg: bytes, trust_anchors: str = ""
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(active manifest, validation results, validation state) as c2pa reads them."""
    settings = {"trust": {"trust_anchors": trust_anchors}} if trust_anchors else {}
    with (
        c2pa.Context.from_dict(settings) as context,
        c2pa.Reader("image/jpeg", io.BytesIO(jpeg), context=context) as reader,
    ):
        store = json.loads(reader.json())
        results = reader.get_validation_results()
        state = reader.get_validation_state()
    assert results is not None and state is not None
    return store["manifests"][store["active_manifest"]], results["activeManifest"], state


def codes(results: dict[str, Any], kind: str) -> set[str]:
    return {item["code"] for item in results.get(kind, [])}


def corrupt(pem: bytes) -> bytes:
    lines = pem.split(b"\n")
    lines[1] = lines[1][:10] + bytes(reversed(lines[1][10:30])) + lines[1][30:]
    return b"\n".join(lines)
