"""Authentication inside the local S3 server (SeaweedFS) beyond the S3 gateway's access key.

`weed server` also opens master, volume and filer ports. Their HTTP APIs would hand out every
object without asking, so each gets a JWT signing key (the filer and volume servers refuse an
unsigned read or write); their gRPC ports take mutual TLS only, with a certificate signed by a
CA made for this install (the CA's private key is discarded once the certificate is signed, so
nobody can mint another). SeaweedFS reads both from WEED_* variables (its security.toml keys,
upper-cased, dots as underscores). Everything lives in `<state>/secrets/` (0700, files 0600).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from dualengine.credentials import SECRETS_FOLDER, generated_secret, private_dir, write_private
from dualengine.settings import Settings

JWT_KEYS = {
    "WEED_JWT_SIGNING_KEY": "seaweedfs-volume-write-jwt-key",
    "WEED_JWT_SIGNING_READ_KEY": "seaweedfs-volume-read-jwt-key",
    "WEED_JWT_FILER_SIGNING_KEY": "seaweedfs-filer-write-jwt-key",
    "WEED_JWT_FILER_SIGNING_READ_KEY": "seaweedfs-filer-read-jwt-key",
}
GRPC_COMPONENTS = ("MASTER", "VOLUME", "FILER", "S3", "CLIENT")
TLS_FOLDER = "seaweedfs-tls"
COMMON_NAME = "dualengine-seaweedfs"


def environment(settings: Settings) -> dict[str, str]:
    """The WEED_* variables that turn on JWT and gRPC mTLS for every SeaweedFS component."""
    env = {var: generated_secret(settings, name)[0] for var, name in JWT_KEYS.items()}
    folder = ensure_grpc_certificates(settings)
    env["WEED_GRPC_CA"] = str(folder / "ca.crt")
    for component in GRPC_COMPONENTS:
        env[f"WEED_GRPC_{component}_CERT"] = str(folder / "node.crt")
        env[f"WEED_GRPC_{component}_KEY"] = str(folder / "node.key")
    env["WEED_GRPC_ALLOWED_SERVER_COMMONNAMES"] = COMMON_NAME
    for component in GRPC_COMPONENTS[:-1]:
        env[f"WEED_GRPC_{component}_ALLOWED_COMMONNAMES"] = COMMON_NAME
    return env


def ensure_grpc_certificates(settings: Settings) -> Path:
    """A CA certificate and one node certificate (server and client, 127.0.0.1) made once."""
    folder = private_dir(private_dir(settings.state) / SECRETS_FOLDER / TLS_FOLDER)
    if all((folder / name).exists() for name in ("ca.crt", "node.crt", "node.key")):
        return folder
    ca_pem, cert_pem, key_pem = _issue()
    write_private(folder / "node.key", key_pem)
    write_private(folder / "node.crt", cert_pem)
    write_private(folder / "ca.crt", ca_pem)
    return folder


def _issue() -> tuple[str, str, str]:
    """(CA certificate, node certificate, node key) as PEM; the CA key is not kept."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=3650)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{COMMON_NAME}-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    node = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return ca.public_bytes(pem).decode(), node.public_bytes(pem).decode(), key_pem
