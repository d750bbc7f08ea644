"""Who may call the service: optional API keys, sent as ``Authorization: Bearer <key>``.

With no keys configured the service is open (bound to 127.0.0.1 by default). With keys, every API
route needs one; ``/health`` and ``/ready`` stay open (probes carry no credentials), and
``protect_metrics``/``protect_demo`` decide for ``/metrics`` and for the pages people open in a
browser (``/demo``, ``/docs``, ``/openapi.json``). The keys come from ``LORANER_API_KEYS`` and
``LORANER_API_KEYS_FILE``; they are kept only as SHA-256 digests and never logged or echoed in an error.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

from fastapi import Depends, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from loraner.errors import ConfigError
from loraner.serve.schemas import ErrorResponse
from loraner.serve.settings import ServeSettings

MIN_KEY_CHARS = 16
KEY_HINT = "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
KEYS_FILE_SETTING = "LORANER_API_KEYS_FILE (--api-keys-file)"

# FastAPI's own parser of the header; it also declares the scheme in the OpenAPI schema (Swagger UI's
# "Authorize" button). auto_error=False: the 401 below names the fix and has the service's JSON shape.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key of this service (LORANER_API_KEYS / LORANER_API_KEYS_FILE)",
)

# Label Studio sends an ML backend's credentials as HTTP Basic (user and password): routes that Label
# Studio calls also take a key as the password, whatever the user name.
BASIC = HTTPBasic(
    auto_error=False,
    scheme_name="apiKeyAsPassword",
    description="An API key of this service as the password (any user name): Label Studio's ML backend "
    "authentication",
)

UNAUTHORIZED = {
    401: {
        "model": ErrorResponse,
        "description": "No API key, or not one of this service's keys (send Authorization: Bearer KEY)",
        "headers": {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    }
}


def load_api_keys(settings: ServeSettings) -> tuple[bytes, ...]:
    """SHA-256 digests of every configured key (settings, then the keys file); empty: no auth.

    A key that is too short, or has spaces, commas or non-ASCII characters, is a start-up error naming
    where it came from (never the key); so is a keys file that cannot be read or holds no key."""
    found = [
        (f"LORANER_API_KEYS (--api-keys) item {i}", key.get_secret_value())
        for i, key in enumerate(settings.api_keys, start=1)
    ]
    if settings.api_keys_file is not None:
        found += read_keys_file(settings.api_keys_file)
    for where, key in found:
        problem = key_problem(key)
        if problem:
            raise ConfigError(f"{where}: {problem}")
    return tuple(dict.fromkeys(_digest(key) for _, key in found))


def read_keys_file(path: Path) -> list[tuple[str, str]]:
    """``(path:line, key)`` for each line that is neither blank nor a ``#`` comment."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{KEYS_FILE_SETTING}: {path}: file not found") from None
    except PermissionError:
        raise ConfigError(f"{KEYS_FILE_SETTING}: {path}: permission denied (cannot read it)") from None
    except IsADirectoryError:
        raise ConfigError(f"{KEYS_FILE_SETTING}: {path}: a directory, not a file of keys") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{KEYS_FILE_SETTING}: {path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{KEYS_FILE_SETTING}: {path}: cannot read it ({exc.strerror})") from None
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        key = line.strip()
        if key and not key.startswith("#"):
            keys.append((f"{KEYS_FILE_SETTING}: {path}:{number}", key))
    if not keys:
        raise ConfigError(
            f"{KEYS_FILE_SETTING}: {path}: no keys in it (one per line; blank lines and # comments are "
            "ignored): an empty file would leave the service open"
        )
    return keys


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an API key, or None. The message never quotes the key."""
    if any(not ("!" <= ch <= "~") or ch == "," for ch in key):
        return "an API key must be printable ASCII without spaces or commas"
    if len(key) < MIN_KEY_CHARS:
        return f"an API key needs at least {MIN_KEY_CHARS} characters ({KEY_HINT})"
    return None


def key_matches(given: str, digests: tuple[bytes, ...]) -> bool:
    """Whether ``given`` is one of the keys. Digests of equal length are compared in constant time
    against every key (no early exit), so neither the time nor the length tells how close a guess was."""
    candidate = _digest(given)
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(candidate, digest)
    return matched


def require_key(digests: tuple[bytes, ...], *, basic: bool = False) -> Any:
    """The dependency routes get when keys are configured: a 401 with ``WWW-Authenticate: Bearer``
    (as JSON, like every other error) unless the request carries one of the keys; with ``basic``, as the
    password of HTTP Basic too (``WWW-Authenticate`` then offers both)."""
    offer = 'Bearer, Basic realm="loraner"' if basic else "Bearer"

    def verify(given: str | None) -> None:
        if given is None:
            raise StarletteHTTPException(
                401,
                "this service needs an API key: send the header Authorization: Bearer KEY"
                + (" (or HTTP Basic with the key as the password)" if basic else ""),
                headers={"WWW-Authenticate": offer},
            )
        if not key_matches(given, digests):
            raise StarletteHTTPException(
                401, "the API key is not valid", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )

    async def check(credentials: HTTPAuthorizationCredentials | None = Security(BEARER)) -> None:
        verify(credentials.credentials if credentials is not None else None)

    async def check_either(
        credentials: HTTPAuthorizationCredentials | None = Security(BEARER),
        password: HTTPBasicCredentials | None = Security(BASIC),
    ) -> None:
        if credentials is not None:
            verify(credentials.credentials)
        else:
            verify(password.password if password is not None else None)

    return Depends(check_either if basic else check)


def _digest(key: str) -> bytes:
    # Header values arrive decoded as latin-1; encoding back gives the bytes that were sent.
    return hashlib.sha256(key.encode("latin-1", "replace")).digest()
