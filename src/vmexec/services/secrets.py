"""Secrets vmexec must be able to read back (access key secrets, needed to check signatures),
encrypted at rest with the server's ``secret_key``.

The encryption is ``cryptography``'s Fernet (AES-128-CBC + HMAC-SHA256, authenticated); its
key is derived from ``secret_key`` with HKDF-SHA256, so any long random string will do as a
``secret_key``. When none is configured, one is generated at the first start into a file of
the data directory, readable by its owner only (:func:`load_or_create_key`).

Exception tree::

    SecretUnreadable   a stored secret does not decrypt with this key (another server's key,
                       or a changed ``secret_key``)
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

#: The generated key file's mode: the key decrypts every stored secret.
KEY_FILE_MODE = 0o600
#: Characters of a generated key (URL-safe base64 of 32 random bytes).
MIN_KEY_CHARS = 32
_HKDF_INFO = b"vmexec secrets v1"


class SecretUnreadable(Exception):
    pass


class SecretBox:
    """Encrypts and decrypts short secrets with a key derived from ``secret_key``."""

    def __init__(self, secret_key: str) -> None:
        if len(secret_key) < MIN_KEY_CHARS:
            raise ValueError(f"secret_key must have at least {MIN_KEY_CHARS} characters")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=_HKDF_INFO).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        """Raises :class:`SecretUnreadable`."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except (InvalidToken, UnicodeDecodeError):
            raise SecretUnreadable("a stored secret does not decrypt with this server's "
                                   "secret_key") from None


def load_or_create_key(path: Path) -> str:
    """The key in ``path``, generated there (mode 0600, directory 0700 if created) when the
    file does not exist. Raises OSError, ValueError (a file with too short a key)."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_urlsafe(32)
        try:
            # O_EXCL: two servers starting at once must not each write a different key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
        except FileExistsError:
            return load_or_create_key(path)
        with os.fdopen(fd, "w") as file:
            file.write(key + "\n")
        log.info("generated the secret key %s (it encrypts the access key secrets: keep it "
                 "with the database)", path)
        return key
    if len(key) < MIN_KEY_CHARS:
        raise ValueError(f"the secret key in {path} is shorter than {MIN_KEY_CHARS} characters")
    return key
