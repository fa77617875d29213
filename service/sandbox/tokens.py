"""Tokens: an identity-service look-alike issuing HS256 JWTs, and their verification.

Token response (like Amili's "Identiverse" for the Collection API):
    {"access_token": "<jwt>", "token_type": "Bearer", "expires_in": 3600, "expires_on": 1767225600,
     "not_before": 1767222000, "resource": "arm"}
With `--token-numbers string`, expires_in/expires_on/not_before are strings ("3600"), as some
Azure-AD-v1-style services send them.

JWT claims: iss "amili-sandbox", aud "arm", sub = client_id, iat, nbf, exp, jti,
scope "read:arm.customer write:arm.customer", and `clients`: the list of client numbers the token
may read and write.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

import jwt

ISSUER: Final = "amili-sandbox"
AUDIENCE: Final = "arm"
SCOPE: Final = "read:arm.customer write:arm.customer"


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    clients: frozenset[int] | None = None  # None: every client (static tokens)
    message: str = ""


class TokenIssuer:
    def __init__(
        self,
        *,
        secret: str | None,
        ttl: int,
        client_id: str,
        client_secret: str,
        clients: tuple[int, ...],
        static_tokens: tuple[str, ...] = (),
        numbers_as_strings: bool = False,
    ) -> None:
        self.secret = secret or secrets.token_hex(32)
        self.ttl = ttl
        self.client_id = client_id
        self.client_secret = client_secret
        self.clients = clients
        self.static_tokens = frozenset(static_tokens)
        self.numbers_as_strings = numbers_as_strings

    def credentials_ok(self, client_id: str, client_secret: str) -> bool:
        return secrets.compare_digest(client_id.encode(), self.client_id.encode()) and secrets.compare_digest(
            client_secret.encode(), self.client_secret.encode()
        )

    def issue(self, clients: tuple[int, ...] | None = None, ttl: int | None = None) -> dict[str, Any]:
        issued = time.time()
        now = int(issued)
        lifetime = self.ttl if ttl is None else ttl
        expires = math.ceil(issued + lifetime)  # valid for at least `lifetime` seconds
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": self.client_id,
            "iat": now,
            "nbf": min(now, expires),
            "exp": expires,
            "jti": secrets.token_urlsafe(12),
            "scope": SCOPE,
            "clients": list(self.clients if clients is None else clients),
        }
        token = jwt.encode(claims, self.secret, algorithm="HS256")
        numbers: dict[str, Any] = {"expires_in": lifetime, "expires_on": expires, "not_before": now}
        if self.numbers_as_strings:
            numbers = {k: str(v) for k, v in numbers.items()}
        return {"access_token": token, "token_type": "Bearer", **numbers, "resource": AUDIENCE}

    def verify(self, authorization: str | None) -> AuthResult:
        if not authorization:
            return AuthResult(False, message="missing Authorization header")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return AuthResult(False, message="Authorization header must be 'Bearer <token>'")
        if token in self.static_tokens:
            return AuthResult(True, clients=None)
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "clients"]},
            )
        except jwt.ExpiredSignatureError:
            return AuthResult(False, message="token expired")
        except jwt.InvalidTokenError as exc:
            return AuthResult(False, message=f"invalid token: {exc}")
        clients = claims.get("clients")
        if not isinstance(clients, list) or not all(isinstance(c, int) for c in clients):
            return AuthResult(False, message="invalid token: bad clients claim")
        return AuthResult(True, clients=frozenset(clients))
