"""Request ids that carry what feedback needs, signed, so routing never writes per request.

A request id encodes the key, the primary persona, the weight-set version and the experiment arm
of the decision, plus a MAC (keyed BLAKE2b, ``ION_REQUEST_ID_SECRET``). ``POST /v2/feedback``
reads them back from the id alone: no store of every answered request is needed, and feedback
for an id this service did not issue is refused.

Layout (24 bytes, base64url, prefixed ``rq_``): format version, weights version, key index,
persona index, arm index (255 = no experiment), issue time (unix seconds), 7 random bytes, 7 MAC
bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import random
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from functions.routing.engine import ALL_KEYS, PERSONAS, ResonanceKey

PREFIX = "rq_"
NO_ARM = 255
_FORMAT = 1
_LAYOUT = struct.Struct(">BHBBBI7s")
_MAC_BYTES = 7
_ENCODED_LENGTH = len(PREFIX) + 32
_URLSAFE = bytes.maketrans(b"+/", b"-_")


@dataclass(frozen=True, slots=True)
class IssuedRequest:
    key: ResonanceKey
    persona: str
    weights_version: int
    arm_index: int | None
    issued_at: datetime


class RequestIds:
    def __init__(self, secret: bytes) -> None:
        self._secret = hashlib.blake2b(secret, digest_size=32).digest()
        # The keyed hash with the key already absorbed: a copy per id skips hashing the key block.
        self._keyed = hashlib.blake2b(key=self._secret, digest_size=_MAC_BYTES)
        # The random bytes only make ids unique (the MAC makes them unforgeable), so a seeded PRNG
        # does: os.urandom is a syscall that drops the GIL, and under gunicorn's threads getting
        # it back costs more than the rest of the request.
        self._nonces = random.Random(os.urandom(16))

    def _mac(self, payload: bytes) -> bytes:
        keyed = self._keyed.copy()
        keyed.update(payload)
        return keyed.digest()

    def issue(
        self, key_index: int, persona_index: int, weights_version: int, arm_index: int | None, now: float
    ) -> str:
        payload = _LAYOUT.pack(
            _FORMAT,
            weights_version,
            key_index,
            persona_index,
            NO_ARM if arm_index is None else arm_index,
            int(now),
            self._nonces.getrandbits(56).to_bytes(7, "big"),
        )
        keyed = self._keyed.copy()
        keyed.update(payload)
        # base64.urlsafe_b64encode, without its two Python-level calls.
        encoded = binascii.b2a_base64(payload + keyed.digest(), newline=False).translate(_URLSAFE)
        return PREFIX + encoded.decode()

    def verify(self, request_id: str) -> IssuedRequest | None:
        """What the id says, or None when it is not an id this service issued."""
        if len(request_id) != _ENCODED_LENGTH or not request_id.startswith(PREFIX):
            return None
        try:
            raw = base64.urlsafe_b64decode(request_id[len(PREFIX) :])
        except (binascii.Error, ValueError):
            return None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(payload) != _LAYOUT.size or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        fmt, version, key_index, persona_index, arm_index, issued, _ = _LAYOUT.unpack(payload)
        if fmt != _FORMAT or key_index >= len(ALL_KEYS) or persona_index >= len(PERSONAS):
            return None
        return IssuedRequest(
            key=ALL_KEYS[key_index],
            persona=PERSONAS[persona_index],
            weights_version=version,
            arm_index=None if arm_index == NO_ARM else arm_index,
            issued_at=datetime.fromtimestamp(issued, UTC),
        )
