"""Provider tokens at rest: AES-256-GCM under the key from ``settings.encryption_key``.

Stored value: 12-byte random nonce || ciphertext || 16-byte tag (what AESGCM.encrypt returns
after the nonce). The connection's user id and provider are bound as associated data, so a
ciphertext copied onto another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class InvalidKey(ValueError):
    """The configured encryption key is not 32 bytes of URL-safe base64."""


class DecryptionFailed(Exception):
    """Wrong key, tampered ciphertext or the wrong row."""


def decode_key(encoded: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(encoded.encode() + b"=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidKey("BLENDTUNE_ENCRYPTION_KEY is not URL-safe base64") from exc
    if len(key) != 32:
        raise InvalidKey(f"BLENDTUNE_ENCRYPTION_KEY must decode to 32 bytes, not {len(key)}")
    return key


class TokenCipher:
    def __init__(self, encoded_key: str) -> None:
        self._aead = AESGCM(decode_key(encoded_key))

    def encrypt(self, plaintext: str, associated: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), associated)

    def decrypt(self, blob: bytes, associated: bytes) -> str:
        if len(blob) < NONCE_BYTES + 16:
            raise DecryptionFailed("ciphertext too short")
        try:
            plain = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated)
        except InvalidTag as exc:
            raise DecryptionFailed("authentication failed") from exc
        return plain.decode()


def associated_data(user_id: object, provider: str) -> bytes:
    return f"provider_connections:{user_id}:{provider}".encode()
