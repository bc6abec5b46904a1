"""A local stand-in for Google's token signing: RSA keys whose certificates are served as Google
serves https://www.googleapis.com/oauth2/v1/certs ({key id: X.509 PEM}), an EC P-256 key served
as IAP serves https://www.gstatic.com/iap/verify/public_key ({key id: public key PEM}), and tokens
signed with them by google-auth itself, so the functions verify them exactly as deployed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt
from google.auth.crypt import es256

GOOGLE_ISSUER = "https://accounts.google.com"
IAP_ISSUER = "https://cloud.google.com/iap"


def _rsa_pem() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key, pem


def _certificate(key: rsa.RSAPrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ion-ops-test-signer")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Signer:
    """Google's signer (``google``) and IAP's (``iap``), and a key nobody publishes (``forger``)
    that signs with the published key id."""

    certs_url: str
    iap_certs_url: str
    google: crypt.Signer
    iap: crypt.Signer
    forger: crypt.Signer

    def id_token(
        self,
        email: str,
        audience: str,
        *,
        issuer: str = GOOGLE_ISSUER,
        lifetime: int = 3600,
        signer: crypt.Signer | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": issuer,
            "aud": audience,
            "sub": "1" + str(abs(hash(email)))[:20],
            "email": email,
            "email_verified": True,
            "iat": now - 60 if lifetime > 0 else now - 7200,
            "exp": now + lifetime,
            **claims,
        }
        return jwt.encode(signer or self.google, payload).decode()

    def iap_jwt(self, email: str, audience: str, *, issuer: str = IAP_ISSUER) -> str:
        now = int(time.time())
        payload = {"iss": issuer, "aud": audience, "sub": "accounts.google.com:1", "email": email}
        payload |= {"iat": now - 60, "exp": now + 600}
        return jwt.encode(self.iap, payload).decode()


@contextmanager
def signing_standin() -> Iterator[Signer]:
    google_key, google_pem = _rsa_pem()
    _, forger_pem = _rsa_pem()
    iap_key = ec.generate_private_key(ec.SECP256R1())
    iap_pem = iap_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    iap_public = (
        iap_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    documents = {
        "/oauth2/v1/certs": {"test-key-1": _certificate(google_key)},
        "/iap/verify/public_key": {"iap-key-1": iap_public},
    }

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            pass

        def do_GET(self) -> None:
            document = documents.get(self.path)
            data = json.dumps(document or {"error": "not found"}).encode()
            self.send_response(200 if document else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=300")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield Signer(
            certs_url=f"{base}/oauth2/v1/certs",
            iap_certs_url=f"{base}/iap/verify/public_key",
            google=crypt.RSASigner.from_string(google_pem, key_id="test-key-1"),
            iap=es256.ES256Signer.from_string(iap_pem, key_id="iap-key-1"),
            forger=crypt.RSASigner.from_string(forger_pem, key_id="test-key-1"),
        )
    finally:
        server.shutdown()
        server.server_close()
