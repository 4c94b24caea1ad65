"""A self-signed TLS certificate for a local fake provider, made at its start.

``TLS_CERT_NAMES`` on a target (e.g. the model server) turns TLS on: a new key and certificate
for those names (DNS names, and 127.0.0.1 as an IP address) are made with the ``cryptography``
package (a dependency of drill) in a folder of the run (``$DRILL_STACK_LOG_DIR/tls/<node>``, else
a temporary folder), and the server answers HTTPS only. Nothing trusts this certificate but what
a drill points at it: drill's forward proxy connects to it over 127.0.0.1 (docs/http-faults.md).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["self_signed", "server_context"]


def self_signed(names: list[str], folder: Path) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` (a P-256 key, valid for a day) into ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def server_context(names: list[str], node: str) -> ssl.SSLContext:
    """A server-side TLS context with a certificate made now for ``names`` (its key file is
    removed once loaded)."""
    base = os.environ.get("DRILL_STACK_LOG_DIR")
    folder = Path(base) / "tls" / node if base else Path(tempfile.mkdtemp(prefix=f"drill-tls-{node}-"))
    cert, key = self_signed(names, folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    key.unlink()  # loaded: the run's folder keeps the certificate, never the key
    return context
