"""An httpx auth hook that keeps an agent's idguard access token fresh.

    auth = IdguardAuth("https://idguard.example.com", "agent-1", client_secret=os.environ["AGENT_SECRET"])
    client = httpx.Client(auth=auth)          # or httpx2.Client / AsyncClient: the same object works for all

Every request the client sends carries ``Authorization: Bearer <idguard token>``; the token is fetched from
idguard's token endpoint (``client_credentials``) when first needed, cached, and fetched again shortly before it
expires, so a long-running agent never restarts to renew it. When idguard itself refuses the token anyway (401 with
``WWW-Authenticate: Bearer realm="idguard", error="invalid_token"`` -- the token was revoked, or the agent's clock
ran ahead) the hook fetches a new one and sends the request once more, if its body can be sent again.

Client authentication: a client secret (``client_secret_basic``, or ``client_secret_post`` with
``auth_method="client_secret_post"``), or ``private_key_jwt`` with a PEM private key whose public half is registered
with idguard under ``key_id`` (assertions are signed with PyJWT: ``pip install pyjwt cryptography``).

Works with ``httpx`` (the OpenAI and Anthropic SDKs before their move to httpx2) and ``httpx2`` (their current
releases): ``IdguardAuth`` is an ``Auth`` of whichever of the two is installed, or of both. Token requests go out
through the standard library (``urllib``), so the hook adds no dependency for client secrets.

Secrets stay out of sight: the secret, the key and the tokens are never logged, printed or put in an exception
message, and ``repr()`` shows neither.
"""

from __future__ import annotations

import base64
import importlib
import os
import importlib.util
import json
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Optional

__all__ = ["IdguardAuth", "IdguardAuthError"]

_LIBS = [importlib.import_module(name) for name in ("httpx", "httpx2") if importlib.util.find_spec(name)]
if not _LIBS:
    raise ImportError("idguard_auth needs httpx or httpx2")
_AUTH_BASES = tuple(m.Auth for m in _LIBS)

# The headers an SDK may put its own api_key in. idguard refuses two different tokens in one request, so the hook
# removes the SDK's placeholder from all of them and presents the token in Authorization alone.
_KEY_SLOTS = ("x-api-key", "api-key", "x-goog-api-key")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class IdguardAuthError(Exception):
    """idguard refused to issue a token, or could not be reached. The message holds the OAuth error code and
    description idguard answered with, never a secret or a token."""


class IdguardAuth(*_AUTH_BASES):  # type: ignore[misc]
    """Fetches, caches and refreshes an idguard access token, and presents it on every request.

    ``issuer`` is idguard's ``[identity] issuer``: the assertion audience, and (with ``/oauth2/token``) the token
    endpoint unless ``token_url`` says otherwise. Exactly one of ``client_secret`` and ``private_key`` (PEM text or
    bytes) / ``private_key_file`` is given; a private key needs ``key_id``, the id it is registered under.

    A token is used until ``refresh_margin`` seconds (at most half its lifetime) before the ``expires_in`` idguard
    gave it, counted from when it was requested. Thread-safe: concurrent requests share one token and one fetch.
    ``token_fetches`` counts the tokens obtained so far.
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        issuer: str,
        client_id: str,
        *,
        client_secret: Optional[str] = None,
        private_key: Optional[str | bytes] = None,
        private_key_file: Optional[str] = None,
        key_id: Optional[str] = None,
        auth_method: str = "client_secret_basic",
        token_url: Optional[str] = None,
        scope: Optional[str] = None,
        refresh_margin: float = 60.0,
        timeout: float = 10.0,
        ssl_context: Optional[ssl.SSLContext] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if private_key_file is not None:
            if private_key is not None:
                raise ValueError("give private_key or private_key_file, not both")
            with open(private_key_file, "rb") as f:
                private_key = f.read()
        if (client_secret is None) == (private_key is None):
            raise ValueError("give exactly one of client_secret and private_key / private_key_file")
        if private_key is not None and not key_id:
            raise ValueError("private_key_jwt needs key_id: the id the public key is registered under in idguard")
        if client_secret is not None and auth_method not in ("client_secret_basic", "client_secret_post"):
            raise ValueError("auth_method must be client_secret_basic or client_secret_post")
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.token_url = token_url or self.issuer + "/oauth2/token"
        self.revocation_url = self.token_url.rsplit("/", 1)[0] + "/revoke"
        self.scope = scope
        self.refresh_margin = refresh_margin
        self.timeout = timeout
        self.token_fetches = 0
        self._secret = client_secret
        self._auth_method = auth_method if client_secret is not None else "private_key_jwt"
        self._key_id = key_id
        self._signing_key: Any = None
        self._algorithm: Optional[str] = None
        if private_key is not None:
            self._signing_key, self._algorithm = _load_private_key(private_key)
        self._ssl = ssl_context
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Optional[str] = None
        self._refresh_at = 0.0

    @classmethod
    def from_env(cls, **overrides: Any) -> "IdguardAuth":
        """From the environment: ``IDGUARD_ISSUER``, ``IDGUARD_CLIENT_ID``, and either ``IDGUARD_CLIENT_SECRET``
        or ``IDGUARD_PRIVATE_KEY_FILE`` with ``IDGUARD_KEY_ID``; ``IDGUARD_AUTH_METHOD`` (for a secret:
        ``client_secret_basic``, the default, or ``client_secret_post``), ``IDGUARD_TOKEN_URL`` and
        ``IDGUARD_SCOPE`` optionally. Keyword arguments override or add to them."""
        env = os.environ
        kwargs: dict[str, Any] = {
            "client_secret": env.get("IDGUARD_CLIENT_SECRET") or None,
            "private_key_file": env.get("IDGUARD_PRIVATE_KEY_FILE") or None,
            "key_id": env.get("IDGUARD_KEY_ID") or None,
            "token_url": env.get("IDGUARD_TOKEN_URL") or None,
            "scope": env.get("IDGUARD_SCOPE") or None,
        }
        if env.get("IDGUARD_AUTH_METHOD"):
            kwargs["auth_method"] = env["IDGUARD_AUTH_METHOD"]
        kwargs.update(overrides)
        missing = [name for name in ("IDGUARD_ISSUER", "IDGUARD_CLIENT_ID") if not env.get(name)]
        if missing:
            raise ValueError(f"set {' and '.join(missing)}")
        return cls(env["IDGUARD_ISSUER"], env["IDGUARD_CLIENT_ID"], **kwargs)

    def __repr__(self) -> str:
        return f"IdguardAuth(issuer={self.issuer!r}, client_id={self.client_id!r}, method={self._auth_method!r})"

    # -- the token -------------------------------------------------------------------------------------------

    def token(self) -> str:
        """The current token, fetched first when there is none or it is within the refresh margin of expiring.
        Blocking; safe from any thread. Raises ``IdguardAuthError`` when idguard refuses or cannot be reached."""
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._fetch_locked()
            assert self._token is not None
            return self._token

    def invalidate(self, rejected: Optional[str] = None) -> None:
        """Forget the cached token (only if it is still ``rejected``, when given), so the next use fetches one."""
        with self._lock:
            if rejected is None or self._token == rejected:
                self._token = None

    def revoke(self) -> None:
        """Revoke the cached token at idguard (RFC 7009) and forget it -- e.g. when the agent shuts down."""
        with self._lock:
            token, self._token = self._token, None
        if token is not None:
            self._post(self.revocation_url, {"token": token, "token_type_hint": "access_token"})

    def _fetch_locked(self) -> None:
        params = {"grant_type": "client_credentials"}
        if self.scope:
            params["scope"] = self.scope
        requested = self._clock()
        body = self._post(self.token_url, params)
        try:
            answer = json.loads(body)
            token = answer["access_token"]
            lifetime = float(answer.get("expires_in", 0))
        except (ValueError, KeyError, TypeError):
            raise IdguardAuthError("idguard's token response was not the JSON expected") from None
        if not isinstance(token, str) or not token:
            raise IdguardAuthError("idguard's token response has no access_token")
        self._token = token
        self._refresh_at = requested + lifetime - min(self.refresh_margin, lifetime / 2)
        self.token_fetches += 1

    def _post(self, url: str, params: dict[str, str]) -> bytes:
        """POSTs a form to idguard with this client's authentication; returns the body of a 200."""
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        if self._auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: both halves form-encoded before Basic encoding.
            pair = f"{_form(self.client_id)}:{_form(self._secret or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif self._auth_method == "client_secret_post":
            params = {**params, "client_id": self.client_id, "client_secret": self._secret or ""}
        else:
            params = {
                **params,
                "client_id": self.client_id,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self._assertion(),
            }
        data = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl) as response:
                return response.read()
        except urllib.error.HTTPError as e:
            # Only idguard's own OAuth error fields: they name what was wrong and never carry the secret.
            try:
                err = json.loads(e.read())
                detail = f"{err.get('error', '?')}: {err.get('error_description', '')}".rstrip(": ")
            except ValueError:
                detail = "no OAuth error body"
            raise IdguardAuthError(f"{url} answered {e.code} ({detail})") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise IdguardAuthError(f"{url} could not be reached: {reason}") from None

    def _assertion(self) -> str:
        """A ``private_key_jwt`` client assertion (RFC 7523): good for 60 s, once (a random ``jti``)."""
        import jwt  # PyJWT, needed only for private_key_jwt

        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.issuer,
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(24),
        }
        return jwt.encode(claims, self._signing_key, algorithm=self._algorithm, headers={"kid": self._key_id})

    # -- the httpx / httpx2 auth flow ---------------------------------------------------------------------------

    def sync_auth_flow(self, request: Any) -> Any:
        token = self.token()
        _present(request, token)
        response = yield request
        if _refused_by_idguard(response) and _replayable(request):
            self.invalidate(token)
            _present(request, self.token())
            yield request

    async def async_auth_flow(self, request: Any) -> Any:
        import anyio  # installed with httpx and httpx2

        # The token request is blocking: it runs on a worker thread, so the event loop keeps serving meanwhile.
        token = await anyio.to_thread.run_sync(self.token)
        _present(request, token)
        response = yield request
        if _refused_by_idguard(response) and _replayable(request):
            self.invalidate(token)
            _present(request, await anyio.to_thread.run_sync(self.token))
            yield request

    def auth_flow(self, request: Any) -> Any:
        # Clients call sync_auth_flow or async_auth_flow; this is for anything that calls the generic one.
        return self.sync_auth_flow(request)


def _present(request: Any, token: str) -> None:
    for name in _KEY_SLOTS:
        if name in request.headers:
            del request.headers[name]
    request.headers["Authorization"] = f"Bearer {token}"


def _refused_by_idguard(response: Any) -> bool:
    """idguard's own 401 for a token it no longer accepts. An upstream's 401 reaches the agent without
    idguard's realm (idguard replaces it with a generic one), so it is never retried with a new token."""
    if response.status_code != 401:
        return False
    challenge = response.headers.get("www-authenticate", "")
    return 'realm="idguard"' in challenge and 'error="invalid_token"' in challenge


def _replayable(request: Any) -> bool:
    """Whether the request body can be sent a second time: bytes given up front are; a stream (a generator,
    a file being read) is not, and its 401 reaches the caller, whose next request gets a fresh token."""
    try:
        request.content
    except Exception:  # httpx.RequestNotRead / httpx2.RequestNotRead
        return False
    return True


def _form(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _load_private_key(pem: str | bytes) -> tuple[Any, str]:
    """The key object and the algorithm its type fixes (idguard accepts exactly that one for the key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ValueError("private_key is not an unencrypted PEM private key") from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key, "ES256"
    if isinstance(key, rsa.RSAPrivateKey):
        return key, "RS256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key, "EdDSA"
    raise ValueError("private_key must be EC P-256, RSA or Ed25519")
