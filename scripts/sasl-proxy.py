#!/usr/bin/env python3
"""A Kafka-protocol proxy that terminates SASL itself, as a Kafka broker does, and relays every
other request to an upstream broker that has no authentication (nisshi without
--authentication, started with --advertised-listener-url pointing at this proxy).

    sasl-proxy.py --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT
                  --mechanisms PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER,GSSAPI
                  [--users FILE] [--session-lifetime-ms N] [--stats FILE]
                  [--jwks-url URL --issuer ISS --audience AUD [--required-scope S] [--ca FILE]]
                  [--keytab FILE [--service kafka] [--service-host localhost]]
                  [--msk-credentials FILE [--msk-host localhost] [--msk-region us-east-1]]

One upstream connection per client connection. What it mirrors of Kafka's broker
(SaslServerAuthenticator, KIP-43/152/255/368):

- Before authentication only ApiVersions (relayed; the answer is patched to list
  SaslHandshake v0-1 and SaslAuthenticate v0-2), SaslHandshake and SaslAuthenticate are
  allowed; anything else closes the connection.
- SaslHandshake v0 (then raw, size-prefixed SASL tokens) and v1 (then SaslAuthenticate v0-2,
  v2 flexible). An unknown mechanism is answered with error 33 and the enabled list, then
  the connection is closed; a failed authentication is answered with error 58, then closed.
- PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802/7677) against the users file
  ({"user": "password"}), OAUTHBEARER (RFC 7628) with JWTs validated as Kafka's
  BrokerJwtValidator does: signature (JWKS from --jwks-url, refetched for an unknown kid),
  exp (required, not past, --clock-skew-s allowed, default 0; Kafka's default is 30), iat
  (required), sub (the principal), iss and aud when configured, and the scope claim
  (space-separated `scope` or a `scp` list) when --required-scope is given. An invalid token
  is answered with error 0 and an RFC 7628 error JSON ({"status":"invalid_token"}, or
  {"status":"insufficient_scope", "scope":"S"}); the client's following "\\x01" gets error
  58 with that JSON as the error message.
- GSSAPI (Kerberos V5, RFC 4752 as Kafka runs it) with scripts/gssapi_acceptor.py (PyPI
  `gssapi`, MIT krb5): the acceptor's key for SERVICE/HOST (--service, --service-host)
  comes from --keytab only; the realm and KDC from the krb5.conf named by KRB5_CONFIG in this
  process's environment. The principal is the client's Kerberos principal name
  (client@REALM). Any failure (a bad or replayed ticket, one for another service, a wrong
  security layer, an authorization id other than the client's) is answered with error 58
  and Kafka's generic message (the details only go to the log and the stats file).
  Re-authentication works as for the other mechanisms: the principal must not change.
- AWS_MSK_IAM (Amazon MSK's IAM authentication, aws-msk-iam-auth's JSON payload version
  2020_10_22) verified with scripts/msk_iam_sigv4.py, our own SigV4 code (the exact canonical
  request, and the payload hash it requires, are in that file's docstring): version, action
  kafka-cluster:Connect, algorithm, credential scope (service kafka-cluster, region
  --msk-region, the date of x-amz-date), the access key id known in --msk-credentials
  ({"AKID": {"secret": S, "principal": ARN, optional "session_token": T}}; a key with a
  session token requires it, one without refuses it), host = --msk-host, signed headers
  "host", x-amz-date within --msk-max-skew-s (300) of now and not past date + x-amz-expires,
  then the signature (constant-time compare). Success: error 0 and the auth bytes
  {"version":"2020_10_22","request-id":"<uuid>"}; principal = the key's configured principal.
  Failure: error 58 with what was wrong ("signature mismatch", "unknown access key", "host
  mismatch", "expired", ...) as the message, and in the stats file.
- KIP-368: SaslAuthenticate v1+ carries session_lifetime_ms = --session-lifetime-ms (for
  OAUTHBEARER the minimum of it and the token's remaining life; without it, the token's
  life). After expiry, any request other than SaslHandshake closes the connection
  (expired_closes). SaslHandshake + SaslAuthenticate on an authenticated connection
  re-authenticates: same mechanism and principal required (else error 58, closed).
- The stats file (JSON, rewritten atomically on each change) holds connections,
  authentications, reauthentications, expired_closes, failures by reason, the last failure
  (with the OAUTHBEARER error JSON and the reason), the last OAUTHBEARER extensions and the
  principals seen.

Prints "listening on PORT" once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import ssl
import struct
import sys
import time
import urllib.request
import uuid

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED = 33, 34, 58
# Kafka: sasl.server.max.receive.size before authentication, socket.request.max.bytes after.
MAX_PREAUTH_FRAME = 524288
MAX_FRAME = 104857600


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


class Close(Exception):
    """Close the client connection (after whatever was already written)."""


class AuthFailure(Exception):
    """An authentication failure. `message` is what the client gets (None: Kafka's generic
    text), `reason` a short key for the stats file, `detail` the full story for the log."""

    def __init__(self, reason: str, detail: str, message: str | None = None):
        super().__init__(detail)
        self.reason, self.detail, self.message = reason, detail, message


# ---------------------------------------------------------------------------
# stats


class Stats:
    def __init__(self, path: str | None):
        self.path = path
        self.data = {
            "pid": os.getpid(),
            "connections": 0,
            "authentications": 0,
            "reauthentications": 0,
            "expired_closes": 0,
            "failures": {},
            "last_failure": None,
            "authentications_by_mechanism": {},
            "last_extensions": None,
            "principals": [],
            # Per principal: authentications (one per connection), reauthentications and
            # expired_closes, so a test can tell its own client from others.
            "by_principal": {},
            "last_session_lifetime_ms": None,
        }
        self.write()

    def bump(self, key: str, n: int = 1) -> None:
        self.data[key] += n
        self.write()

    def authenticated(self, mechanism: str, principal: str, reauth: bool, lifetime: int) -> None:
        self.data["reauthentications" if reauth else "authentications"] += 1
        by = self.data["authentications_by_mechanism"]
        by[mechanism] = by.get(mechanism, 0) + 1
        if principal not in self.data["principals"]:
            self.data["principals"].append(principal)
        self.principal_bump(principal, "reauthentications" if reauth else "authentications")
        self.data["last_session_lifetime_ms"] = lifetime
        self.write()

    def principal_bump(self, principal: str | None, key: str) -> None:
        counts = self.data["by_principal"].setdefault(
            principal or "", {"authentications": 0, "reauthentications": 0, "expired_closes": 0})
        counts[key] += 1

    def failure(self, reason: str, **detail: object) -> None:
        self.data["failures"][reason] = self.data["failures"].get(reason, 0) + 1
        self.data["last_failure"] = dict(detail, reason=reason, time=time.time())
        self.write()

    def extensions(self, ext: dict) -> None:
        self.data["last_extensions"] = ext
        # Every distinct set seen (bounded), so that tests running side by side each find
        # their own rather than racing for the last one.
        seen = self.data.setdefault("extensions_seen", [])
        if ext and ext not in seen:
            seen.append(ext)
            del seen[:-200]
        self.write()

    def write(self) -> None:
        if not self.path:
            return
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=2)
            f.write("\n")
        os.replace(tmp, self.path)


# ---------------------------------------------------------------------------
# protocol primitives


class Reader:
    def __init__(self, buf: bytes, pos: int = 0):
        self.buf, self.pos = buf, pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError("truncated")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise ValueError("varint too long")

    def nstring(self) -> str | None:
        n = self.i16()
        return None if n < 0 else self.take(n).decode("utf-8")

    def bytes32(self) -> bytes:
        n = self.i32()
        if n < 0:
            raise ValueError("null bytes")
        return self.take(n)

    def compact_bytes(self) -> bytes:
        n = self.uvarint()
        if n == 0:
            raise ValueError("null bytes")
        return self.take(n - 1)

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def nstring(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def compact_nstring(s: str | None) -> bytes:
    if s is None:
        return b"\x00"
    b = s.encode()
    return uvarint(len(b) + 1) + b


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def response(correlation_id: int, body: bytes, flexible_header: bool = False) -> bytes:
    return frame(struct.pack(">i", correlation_id) + (b"\x00" if flexible_header else b"") + body)


def handshake_response(correlation_id: int, error: int, mechanisms: list[str]) -> bytes:
    body = struct.pack(">hi", error, len(mechanisms)) + b"".join(nstring(m) for m in mechanisms)
    return response(correlation_id, body)


def authenticate_response(correlation_id: int, version: int, error: int, message: str | None,
                          auth_bytes: bytes, lifetime_ms: int) -> bytes:
    if version >= 2:
        body = (struct.pack(">h", error) + compact_nstring(message) + uvarint(len(auth_bytes) + 1)
                + auth_bytes + struct.pack(">q", lifetime_ms) + b"\x00")
        return response(correlation_id, body, flexible_header=True)
    body = struct.pack(">h", error) + nstring(message) + struct.pack(">i", len(auth_bytes)) + auth_bytes
    if version >= 1:
        body += struct.pack(">q", lifetime_ms)
    return response(correlation_id, body)


# The versions this proxy implements; ApiVersions answers are patched to say exactly these.
OWN_VERSIONS = {SASL_HANDSHAKE: (0, 1), SASL_AUTHENTICATE: (0, 2)}


def patch_api_versions(payload: bytes, version: int) -> bytes:
    """payload: the response after its 4-byte correlation id (header v0 always)."""
    r = Reader(payload)
    error = r.i16()
    if error != 0:
        return payload
    entries = []
    if version >= 3:
        count = r.uvarint() - 1
        for _ in range(count):
            key, lo, hi = r.i16(), r.i16(), r.i16()
            start = r.pos
            r.skip_tags()
            entries.append((key, lo, hi, payload[start:r.pos]))
    else:
        for _ in range(r.i32()):
            entries.append((r.i16(), r.i16(), r.i16(), b""))
    rest = payload[r.pos:]
    seen = {e[0] for e in entries}
    out = []
    for key, lo, hi, tags in entries:
        if key in OWN_VERSIONS:
            lo, hi = OWN_VERSIONS[key]
        out.append((key, lo, hi, tags))
    for key, (lo, hi) in OWN_VERSIONS.items():
        if key not in seen:
            out.append((key, lo, hi, b"\x00" if version >= 3 else b""))
    out.sort()
    body = struct.pack(">h", error)
    body += uvarint(len(out) + 1) if version >= 3 else struct.pack(">i", len(out))
    body += b"".join(struct.pack(">hhh", k, lo, hi) + t for k, lo, hi, t in out)
    return body + rest


# ---------------------------------------------------------------------------
# mechanisms: step(token) -> (challenge, complete); raise AuthFailure


class Plain:
    name = "PLAIN"

    def __init__(self, users: dict):
        self.users = users
        self.principal: str | None = None
        self.expires_at_ms: int | None = None

    def step(self, token: bytes) -> tuple[bytes, bool]:
        parts = token.split(b"\x00")
        if len(parts) != 3:
            raise AuthFailure("malformed", "PLAIN: invalid message format",
                              "Invalid SASL/PLAIN response: expected 3 tokens, got " + str(len(parts)))
        authzid, user, password = (p.decode("utf-8", "replace") for p in parts)
        if not user:
            raise AuthFailure("malformed", "PLAIN: no username",
                              "Authentication failed: username not specified")
        if not password:
            raise AuthFailure("malformed", "PLAIN: no password",
                              "Authentication failed: password not specified")
        expected = self.users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise AuthFailure("unknown_user" if expected is None else "bad_password",
                              f"PLAIN: {'unknown user' if expected is None else 'wrong password'} {user!r}",
                              "Authentication failed: Invalid username or password")
        if authzid and authzid != user:
            raise AuthFailure("authzid", f"PLAIN: authzid {authzid!r} for user {user!r}",
                              "Authentication failed: Client requested an authorization id that is "
                              "different from username")
        self.principal = user
        return b"", True


def saslname(s: str) -> str:
    if re.search(r"=(?!2C|3D)", s):
        raise ValueError("bad saslname escape")
    return s.replace("=2C", ",").replace("=3D", "=")


class Scram:
    ITERATIONS = 4096

    def __init__(self, name: str, users: dict, cache: dict):
        self.name = name
        self.hash = hashlib.sha256 if name == "SCRAM-SHA-256" else hashlib.sha512
        self.users, self.cache = users, cache
        self.state = "first"
        self.principal: str | None = None
        self.expires_at_ms: int | None = None

    def hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self.hash).digest()

    def salted(self, user: str) -> tuple[bytes, bytes]:
        key = (self.name, user)
        if key not in self.cache:
            salt = secrets.token_bytes(16)
            self.cache[key] = (salt, hashlib.pbkdf2_hmac(self.hash().name, self.users[user].encode(),
                                                         salt, self.ITERATIONS))
        return self.cache[key]

    def step(self, token: bytes) -> tuple[bytes, bool]:
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthFailure("malformed", f"{self.name}: message is not UTF-8") from None
        if self.state == "first":
            m = re.fullmatch(r"(n|y),(?:a=([^,]*))?,(n=([^,]*),r=([^,]+)(?:,.*)?)", text, re.S)
            if not m:
                raise AuthFailure("malformed", f"{self.name}: invalid client first message {text[:80]!r}")
            try:
                user = saslname(m.group(4))
            except ValueError:
                raise AuthFailure("malformed", f"{self.name}: invalid username encoding") from None
            if m.group(2) and saslname(m.group(2)) != user:
                raise AuthFailure("authzid", f"{self.name}: authzid differs from user {user!r}",
                                  "Authentication failed: Client requested an authorization id that is "
                                  "different from username")
            if user not in self.users:
                raise AuthFailure("unknown_user", f"{self.name}: unknown user {user!r}")
            self.user, self.gs2 = user, text[:text.index("n=")]
            self.client_first_bare = m.group(3)
            self.nonce = m.group(5) + base64.b64encode(secrets.token_bytes(18)).decode()
            salt, _ = self.salted(user)
            self.server_first = f"r={self.nonce},s={base64.b64encode(salt).decode()},i={self.ITERATIONS}"
            self.state = "final"
            return self.server_first.encode(), False
        if self.state != "final":
            raise AuthFailure("malformed", f"{self.name}: message after the exchange ended")
        m = re.fullmatch(r"(c=([^,]*),r=([^,]*)(?:,[^p][^,]*)*),p=([^,]+)", text)
        if not m:
            raise AuthFailure("malformed", f"{self.name}: invalid client final message")
        if m.group(3) != self.nonce:
            raise AuthFailure("bad_nonce", f"{self.name}: nonce mismatch")
        if m.group(2) != base64.b64encode(self.gs2.encode()).decode():
            raise AuthFailure("malformed", f"{self.name}: channel binding mismatch")
        _, salted = self.salted(self.user)
        auth_message = f"{self.client_first_bare},{self.server_first},{m.group(1)}".encode()
        client_key = self.hmac(salted, b"Client Key")
        stored_key = self.hash(client_key).digest()
        signature = self.hmac(stored_key, auth_message)
        try:
            proof = base64.b64decode(m.group(4), validate=True)
        except ValueError:
            raise AuthFailure("malformed", f"{self.name}: proof is not base64") from None
        if len(proof) != len(signature):
            raise AuthFailure("bad_password", f"{self.name}: proof of wrong length for {self.user!r}")
        recovered = bytes(a ^ b for a, b in zip(proof, signature))
        if not hmac.compare_digest(self.hash(recovered).digest(), stored_key):
            raise AuthFailure("bad_password", f"{self.name}: wrong password for {self.user!r}")
        server_key = self.hmac(salted, b"Server Key")
        self.principal, self.state = self.user, "done"
        return f"v={base64.b64encode(self.hmac(server_key, auth_message)).decode()}".encode(), True


# Kafka's OAuthBearerClientInitialResponse grammar.
OAUTH_FIRST = re.compile(rb"n,(?:a=((?:[\x01-\x2b\x2d-\x3c\x3e-\x7f]|=2C|=3D)+))?,\x01((?:[A-Za-z]+=[\x21-\x7e \t\r\n]+\x01)*)\x01")
OAUTH_AUTH = re.compile(r"([\w]+)[ ]+([-_.a-zA-Z0-9]+)")


class TokenInvalid(Exception):
    def __init__(self, reason: str, detail: str, scope: str | None = None):
        super().__init__(detail)
        self.reason, self.detail, self.scope = reason, detail, scope


class Jwks:
    def __init__(self, url: str, ca: str | None):
        self.url = url
        self.ctx = ssl.create_default_context(cafile=ca) if url.startswith("https") else None
        self.keys: dict = {}
        self.fetched_at = 0.0

    def fetch(self) -> None:
        import jwt

        with urllib.request.urlopen(self.url, timeout=10, context=self.ctx) as resp:
            doc = json.loads(resp.read())
        keys = {}
        for k in jwt.PyJWKSet.from_dict(doc).keys:
            keys[k.key_id] = k
        self.keys, self.fetched_at = keys, time.monotonic()

    async def key(self, kid: str | None):
        if kid not in self.keys and time.monotonic() - self.fetched_at > 1:
            await asyncio.to_thread(self.fetch)
        if kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))
        if kid not in self.keys:
            raise TokenInvalid("token_signature", f"no key {kid!r} in the JWKS at {self.url}")
        return self.keys[kid]


class OAuthBearer:
    name = "OAUTHBEARER"

    def __init__(self, opts: argparse.Namespace, jwks: Jwks, stats: Stats):
        self.opts, self.jwks, self.stats = opts, jwks, stats
        self.error_json: str | None = None
        self.principal: str | None = None
        self.expires_at_ms: int | None = None

    async def step_async(self, token: bytes) -> tuple[bytes, bool]:
        if self.error_json is not None:
            if token == b"\x01":
                # Kafka: SaslAuthenticationException(errorMessage): the JSON is the message.
                raise AuthFailure("token_error_acknowledged", "client acknowledged the token error",
                                  self.error_json)
            raise AuthFailure("malformed", "OAUTHBEARER: expected %x01 after the error")
        m = OAUTH_FIRST.fullmatch(token)
        if not m:
            raise AuthFailure("malformed", "OAUTHBEARER: invalid client first message")
        authzid = saslname(m.group(1).decode()) if m.group(1) else ""
        pairs = {}
        for kv in m.group(2).decode().split("\x01"):
            if kv:
                k, v = kv.split("=", 1)
                pairs[k] = v
        auth = pairs.pop("auth", None)
        am = OAUTH_AUTH.fullmatch(auth or "")
        if not am or am.group(1).lower() != "bearer":
            raise AuthFailure("malformed", "OAUTHBEARER: no auth=Bearer <token>")
        self.stats.extensions(pairs)
        try:
            claims = await self.validate(am.group(2))
        except TokenInvalid as e:
            if e.scope is not None:
                self.error_json = '{"status":"insufficient_scope", "scope":"%s"}' % e.scope
            else:
                self.error_json = '{"status":"invalid_token"}'
            log(f"OAUTHBEARER: token rejected ({e.reason}): {e.detail}; answering {self.error_json}")
            self.stats.failure(e.reason, mechanism=self.name, detail=e.detail, error_json=self.error_json,
                               extensions=pairs)
            return self.error_json.encode(), False
        principal = claims["sub"]
        if authzid and authzid != principal:
            raise AuthFailure("authzid", f"OAUTHBEARER: authzid {authzid!r} for principal {principal!r}",
                              f"Authentication failed: Client requested an authorization id ({authzid}) "
                              f"that is different from the token's principal name ({principal})")
        self.principal = principal
        self.expires_at_ms = int(claims["exp"] * 1000)
        self.claims = claims
        return b"", True

    async def validate(self, token: str) -> dict:
        import jwt

        o = self.opts
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise TokenInvalid("token_malformed", f"not a JWT: {e}") from None
        if header.get("alg", "none").lower() == "none":
            raise TokenInvalid("token_signature", "unsigned token (alg none)")
        try:
            key = await self.jwks.key(header.get("kid"))
        except TokenInvalid:
            raise
        except Exception as e:  # noqa: BLE001 - the JWKS endpoint failing fails the token
            raise TokenInvalid("jwks_unavailable", f"fetching {self.jwks.url}: {e}") from None
        try:
            claims = jwt.decode(token, key, algorithms=[header["alg"]], leeway=o.clock_skew_s,
                                options={"verify_aud": False, "verify_iss": False,
                                         "require": ["exp", "iat"]})
        except jwt.ExpiredSignatureError:
            raise TokenInvalid("token_expired", "the token has expired (exp is past)") from None
        except jwt.InvalidSignatureError:
            raise TokenInvalid("token_signature", "signature does not verify against the JWKS") from None
        except jwt.MissingRequiredClaimError as e:
            raise TokenInvalid("token_claims", f"missing claim {e.claim}") from None
        except jwt.PyJWTError as e:
            raise TokenInvalid("token_invalid", f"{type(e).__name__}: {e}") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"].strip():
            raise TokenInvalid("token_claims", "no sub claim (the principal)")
        if o.issuer and claims.get("iss") != o.issuer:
            raise TokenInvalid("token_issuer", f"iss {claims.get('iss')!r}, expected {o.issuer!r}")
        if o.audience:
            aud = claims.get("aud")
            auds = aud if isinstance(aud, list) else [aud] if isinstance(aud, str) else []
            if o.audience not in auds:
                raise TokenInvalid("token_audience", f"aud {aud!r} does not contain {o.audience!r}")
        if o.required_scope:
            scope = claims.get("scope", claims.get("scp"))
            scopes = scope.split() if isinstance(scope, str) else scope if isinstance(scope, list) else []
            if o.required_scope not in scopes:
                raise TokenInvalid("token_scope", f"scope {scope!r} lacks {o.required_scope!r}",
                                   scope=o.required_scope)
        return claims


# ---------------------------------------------------------------------------
# connections


class MskIam:
    """The broker side of SASL AWS_MSK_IAM: one signed JSON payload, answered with the
    request-id JSON (see scripts/msk_iam_sigv4.py)."""

    name = "AWS_MSK_IAM"

    def __init__(self, opts: argparse.Namespace, credentials: dict):
        self.opts, self.credentials = opts, credentials
        self.principal: str | None = None
        # Only --session-lifetime-ms: the signature's expiry bounds the login, not the session.
        self.expires_at_ms: int | None = None
        self.done = False

    def step(self, token: bytes) -> tuple[bytes, bool]:
        import msk_iam_sigv4

        if self.done:
            raise AuthFailure("malformed", "AWS_MSK_IAM: message after the exchange ended")
        o = self.opts
        try:
            principal, key_id = msk_iam_sigv4.verify(token, self.credentials, o.msk_host, o.msk_region,
                                                     time.time(), o.msk_max_skew_s)
        except msk_iam_sigv4.MskIamError as e:
            raise AuthFailure(e.reason, f"AWS_MSK_IAM: {e}",
                              f"Authentication failed with SASL mechanism AWS_MSK_IAM: {e}") from None
        request_id = str(uuid.uuid4())
        log(f"AWS_MSK_IAM: access key {key_id} ({principal}), request-id {request_id}")
        self.principal, self.done = principal, True
        return msk_iam_sigv4.response(request_id), True


def load_msk_credentials(path: str) -> dict:
    """--msk-credentials: {access_key_id: {"secret", "principal", optional "session_token"}}."""
    try:
        doc = json.loads(open(path).read())
    except (OSError, ValueError) as e:
        raise SystemExit(f"sasl-proxy: --msk-credentials {path}: {e}") from None
    ok = isinstance(doc, dict) and all(
        isinstance(v, dict) and isinstance(v.get("secret"), str) and isinstance(v.get("principal"), str)
        and isinstance(v.get("session_token", ""), str) for v in doc.values())
    if not ok or not doc:
        raise SystemExit(f"sasl-proxy: --msk-credentials {path}: expected "
                         '{"ACCESS_KEY_ID": {"secret": "...", "principal": "...", "session_token": "..."?}, ...}')
    return doc


class Gssapi:
    """The broker side of SASL GSSAPI: one GssapiAcceptor per authentication."""

    name = "GSSAPI"

    def __init__(self, opts: argparse.Namespace):
        self.opts = opts
        self.acceptor = None
        self.principal: str | None = None
        # Kafka's GssKrb5Server reports no credential lifetime: only --session-lifetime-ms.
        self.expires_at_ms: int | None = None

    def step(self, token: bytes) -> tuple[bytes, bool]:
        import gssapi
        from gssapi_acceptor import AcceptorError, GssapiAcceptor

        o = self.opts
        try:
            if self.acceptor is None:
                self.acceptor = GssapiAcceptor(o.keytab, o.service, o.service_host)
            response, done, principal = self.acceptor.step(token)
        except AcceptorError as e:
            text = str(e)
            reason = "gssapi_authzid" if "asked to act as" in text else "gssapi"
            raise AuthFailure(reason, f"GSSAPI acceptor: {text}") from None
        except gssapi.exceptions.GSSError as e:
            raise AuthFailure("gssapi_acceptor_credentials",
                              f"GSSAPI: credentials for {o.service}@{o.service_host} from {o.keytab}: "
                              f"{e.gen_message()}") from None
        if done:
            self.principal = principal
        return response, done


def check_gssapi_acceptor(opts: argparse.Namespace) -> str:
    """Fail at start-up, as a broker does, when the keytab cannot accept for the service."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        import gssapi
    except ImportError as e:
        raise SystemExit(f"sasl-proxy: GSSAPI needs the PyPI package gssapi ({e})") from None
    name = gssapi.Name(f"{opts.service}@{opts.service_host}", gssapi.NameType.hostbased_service)
    try:
        creds = gssapi.Credentials(name=name, usage="accept", store={"keytab": opts.keytab})
        return str(creds.name)
    except gssapi.exceptions.GSSError as e:
        raise SystemExit(f"sasl-proxy: no acceptor credentials for {opts.service}@{opts.service_host} in "
                         f"{opts.keytab} (KRB5_CONFIG={os.environ.get('KRB5_CONFIG')}): "
                         f"{e.gen_message()}") from None


class Connection:
    def __init__(self, proxy: "Proxy", reader, writer):
        self.proxy, self.opts, self.stats = proxy, proxy.opts, proxy.stats
        self.reader, self.writer = reader, writer
        self.peer = writer.get_extra_info("peername")
        self.state = "initial"  # initial, authenticate, raw, authenticated, reauthenticate
        self.mech = None
        self.principal: str | None = None
        self.mechanism: str | None = None
        self.expires_at: float | None = None  # monotonic seconds
        self.reauth = False
        self.bad_mechanism: str | None = None
        self.patch: dict[int, int] = {}  # correlation id -> ApiVersions version
        self.up_reader = self.up_writer = None

    def send(self, data: bytes) -> None:
        # One write() per frame: asyncio buffers it whole, so frames never interleave.
        self.writer.write(data)

    async def read_frame(self, reader, limit: int) -> bytes | None:
        try:
            head = await reader.readexactly(4)
        except asyncio.IncompleteReadError as e:
            if e.partial:
                raise Close("truncated frame size") from None
            return None
        (size,) = struct.unpack(">i", head)
        if size < 0 or size > limit:
            self.stats.failure("frame_too_large", detail=f"frame of {size} bytes from {self.peer}")
            raise Close(f"frame of {size} bytes (limit {limit})")
        try:
            return await reader.readexactly(size)
        except asyncio.IncompleteReadError:
            raise Close("truncated frame") from None

    async def run(self) -> None:
        self.stats.bump("connections")
        up_task = None
        try:
            host, port = self.opts.upstream.rsplit(":", 1)
            self.up_reader, self.up_writer = await asyncio.open_connection(host, int(port))
            up_task = asyncio.create_task(self.pump_upstream())
            while True:
                limit = MAX_FRAME if self.state in ("authenticated",) else MAX_PREAUTH_FRAME
                data = await self.read_frame(self.reader, limit)
                if data is None:
                    break
                await self.handle(data)
                await self.writer.drain()
        except Close as e:
            log(f"{self.peer}: closing: {e}")
        except (ConnectionError, OSError) as e:
            log(f"{self.peer}: {type(e).__name__}: {e}")
        except Exception as e:  # noqa: BLE001 - one bad connection must not end the proxy
            log(f"{self.peer}: error: {type(e).__name__}: {e}")
            self.stats.failure("internal_error", detail=f"{type(e).__name__}: {e}")
        finally:
            try:
                await asyncio.wait_for(self.writer.drain(), 2)
            except Exception:  # noqa: BLE001
                pass
            self.writer.close()
            if self.up_writer:
                self.up_writer.close()
            if up_task:
                up_task.cancel()

    async def pump_upstream(self) -> None:
        try:
            while True:
                data = await self.read_frame(self.up_reader, 1 << 30)
                if data is None:
                    break
                if len(data) >= 4:
                    (corr,) = struct.unpack(">i", data[:4])
                    version = self.patch.pop(corr, None)
                    if version is not None:
                        try:
                            data = data[:4] + patch_api_versions(data[4:], version)
                        except ValueError as e:
                            log(f"{self.peer}: could not patch ApiVersions v{version}: {e}")
                self.send(frame(data))
                await self.writer.drain()
        except (Close, ConnectionError, OSError):
            pass
        finally:
            # The upstream is gone: so is the client's connection.
            self.writer.close()

    def relay(self, data: bytes) -> None:
        self.up_writer.write(frame(data))

    async def handle(self, data: bytes) -> None:
        if self.state == "raw":
            await self.raw_token(data)
            return
        try:
            r = Reader(data)
            api_key, version, corr = r.i16(), r.i16(), r.i32()
        except ValueError:
            self.stats.failure("malformed", detail="request header too short")
            raise Close("request header too short") from None
        if self.state == "authenticated":
            if self.expires_at is not None and time.monotonic() >= self.expires_at and api_key != SASL_HANDSHAKE:
                self.stats.principal_bump(self.principal, "expired_closes")
                self.stats.bump("expired_closes")
                raise Close(f"session expired: request api_key {api_key} after session end")
            if api_key == SASL_HANDSHAKE:
                self.reauth = True
                await self.handshake(r, version, corr)
                return
            if api_key == API_VERSIONS:
                self.patch[corr] = version
            self.relay(data)
            await self.up_writer.drain()
            return
        if self.state == "initial":
            if api_key == API_VERSIONS:
                self.patch[corr] = version
                self.relay(data)
                await self.up_writer.drain()
                return
            if api_key == SASL_HANDSHAKE:
                await self.handshake(r, version, corr)
                return
            self.stats.failure("request_before_authentication", detail=f"api_key {api_key}")
            raise Close(f"unexpected request api_key {api_key} during SASL handshake")
        # authenticate / reauthenticate: only SaslAuthenticate
        if api_key != SASL_AUTHENTICATE:
            self.stats.failure("illegal_sasl_state", detail=f"api_key {api_key} during SASL authentication")
            raise Close(f"unexpected request api_key {api_key} during SASL authentication")
        if version > 2:
            raise Close(f"SaslAuthenticate v{version} is not supported")
        try:
            r.nstring()  # client id
            if version >= 2:
                r.skip_tags()
                token = r.compact_bytes()
            else:
                token = r.bytes32()
        except (ValueError, UnicodeDecodeError):
            self.stats.failure("malformed", detail="unparsable SaslAuthenticate")
            raise Close("unparsable SaslAuthenticate") from None
        await self.authenticate(token, version, corr)

    async def handshake(self, r: Reader, version: int, corr: int) -> None:
        try:
            r.nstring()  # client id
            mechanism = r.nstring() or ""
        except (ValueError, UnicodeDecodeError):
            self.stats.failure("malformed", detail="unparsable SaslHandshake")
            raise Close("unparsable SaslHandshake") from None
        if version > 1:
            raise Close(f"SaslHandshake v{version} is not supported")
        enabled = self.opts.mechanisms
        if mechanism not in enabled:
            self.send(handshake_response(corr, UNSUPPORTED_SASL_MECHANISM, enabled))
            self.stats.failure("unsupported_mechanism", detail=f"mechanism {mechanism!r}")
            raise Close(f"unsupported SASL mechanism {mechanism!r}")
        self.send(handshake_response(corr, 0, enabled))
        self.bad_mechanism = None
        if self.reauth and mechanism != self.mechanism:
            self.bad_mechanism = (f"SASL mechanism '{mechanism}' requested by client is not supported for "
                                  f"re-authentication of mechanism '{self.mechanism}'")
        self.mech = self.proxy.mechanism(mechanism)
        if version == 0:
            if self.reauth:
                raise Close("re-authentication needs SaslHandshake v1")
            self.state = "raw"
        else:
            self.state = "reauthenticate" if self.reauth else "authenticate"

    def generic_message(self) -> str:
        what = "re-authentication" if self.reauth else "authentication"
        return (f"Authentication failed during {what} due to invalid credentials with SASL mechanism "
                f"{self.mech.name}")

    async def step(self, token: bytes) -> tuple[bytes, bool]:
        if isinstance(self.mech, OAuthBearer):
            return await self.mech.step_async(token)
        return self.mech.step(token)

    async def authenticate(self, token: bytes, version: int, corr: int) -> None:
        try:
            if self.bad_mechanism:
                raise AuthFailure("reauth_mechanism_changed", self.bad_mechanism, self.bad_mechanism)
            challenge, complete = await self.step(token)
            lifetime = 0
            if complete:
                if self.reauth and self.mech.principal != self.principal:
                    msg = (f"Cannot change principals during re-authentication from User.{self.principal}: "
                           f"User.{self.mech.principal}")
                    raise AuthFailure("reauth_principal_changed", msg, msg)
                lifetime = self.complete()
        except AuthFailure as e:
            message = e.message if e.message is not None else self.generic_message()
            # Counted before answering: a client that reads the stats file after the error
            # finds its failure there.
            if e.reason != "token_error_acknowledged":
                self.stats.failure(e.reason, mechanism=self.mech.name, detail=e.detail, error_message=message,
                                   reauthentication=self.reauth)
            self.send(authenticate_response(corr, version, SASL_AUTHENTICATION_FAILED, message, b"", 0))
            raise Close(f"authentication failed ({e.reason}): {e.detail}") from None
        self.send(authenticate_response(corr, version, 0, None, challenge, lifetime))

    def complete(self) -> int:
        """Authentication done: set the session, return session_lifetime_ms."""
        configured = self.opts.session_lifetime_ms
        lifetime = 0
        if self.mech.expires_at_ms is not None:
            left = max(0, self.mech.expires_at_ms - int(time.time() * 1000))
            lifetime = min(left, configured) if configured > 0 else left
        elif configured > 0:
            lifetime = configured
        self.expires_at = time.monotonic() + lifetime / 1000 if lifetime > 0 else None
        self.principal, self.mechanism = self.mech.principal, self.mech.name
        self.stats.authenticated(self.mech.name, self.principal, self.reauth, lifetime)
        log(f"{self.peer}: {'re-' if self.reauth else ''}authenticated {self.principal} with {self.mech.name}"
            f", session lifetime {lifetime} ms")
        self.state = "authenticated"
        return lifetime

    async def raw_token(self, token: bytes) -> None:
        """SaslHandshake v0: size-prefixed SASL tokens without Kafka headers; a failure just
        closes the connection."""
        try:
            challenge, complete = await self.step(token)
        except AuthFailure as e:
            self.stats.failure(e.reason, mechanism=self.mech.name, detail=e.detail, handshake_v0=True)
            raise Close(f"authentication failed ({e.reason}): {e.detail}") from None
        if complete:
            self.complete()
        if challenge or not complete:
            self.send(frame(challenge))


class Proxy:
    def __init__(self, opts: argparse.Namespace):
        self.opts = opts
        self.stats = Stats(opts.stats)
        self.users = json.loads(open(opts.users).read()) if opts.users else {}
        self.scram_cache: dict = {}
        self.jwks = Jwks(opts.jwks_url, opts.ca) if opts.jwks_url else None
        self.msk_credentials = load_msk_credentials(opts.msk_credentials) if opts.msk_credentials else {}

    def mechanism(self, name: str):
        if name == "PLAIN":
            return Plain(self.users)
        if name.startswith("SCRAM-"):
            return Scram(name, self.users, self.scram_cache)
        if name == "GSSAPI":
            return Gssapi(self.opts)
        if name == "AWS_MSK_IAM":
            return MskIam(self.opts, self.msk_credentials)
        return OAuthBearer(self.opts, self.jwks, self.stats)

    async def serve(self) -> None:
        host, port = self.opts.listen.rsplit(":", 1)
        server = await asyncio.start_server(lambda r, w: Connection(self, r, w).run(), host, int(port))
        print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
        async with server:
            await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", required=True, help="HOST:PORT (port 0: the kernel picks)")
    p.add_argument("--upstream", required=True, help="HOST:PORT of the broker without authentication")
    p.add_argument("--mechanisms", required=True, help="comma-separated enabled mechanisms")
    p.add_argument("--users", help="JSON file {username: password} for PLAIN and SCRAM")
    p.add_argument("--session-lifetime-ms", type=int, default=0, help="KIP-368 session lifetime (0: none)")
    p.add_argument("--jwks-url")
    p.add_argument("--issuer")
    p.add_argument("--audience")
    p.add_argument("--required-scope")
    p.add_argument("--ca", help="CA file for an https JWKS URL")
    p.add_argument("--clock-skew-s", type=int, default=0, help="leeway for exp (Kafka's default: 30)")
    p.add_argument("--keytab", help="GSSAPI: the keytab holding the service principal's keys")
    p.add_argument("--service", default="kafka", help="GSSAPI: service name (sasl.kerberos.service.name)")
    p.add_argument("--service-host", default="localhost",
                   help="GSSAPI: host part of the service principal SERVICE/HOST@REALM")
    p.add_argument("--msk-credentials",
                   help='AWS_MSK_IAM: JSON file {"AKID": {"secret": S, "principal": P, "session_token": T?}}')
    p.add_argument("--msk-host", default="localhost",
                   help="AWS_MSK_IAM: the host name this broker serves as (the payload's host must be it)")
    p.add_argument("--msk-region", default="us-east-1", help="AWS_MSK_IAM: the region in the credential scope")
    p.add_argument("--msk-max-skew-s", type=int, default=300,
                   help="AWS_MSK_IAM: how far x-amz-date may be from this clock")
    p.add_argument("--stats", help="JSON stats file, rewritten atomically on every change")
    opts = p.parse_args()
    opts.mechanisms = [m.strip() for m in opts.mechanisms.split(",") if m.strip()]
    known = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI", "AWS_MSK_IAM"}
    if set(opts.mechanisms) - known:
        p.error(f"unknown mechanisms {sorted(set(opts.mechanisms) - known)}; known: {sorted(known)}")
    if "OAUTHBEARER" in opts.mechanisms and not opts.jwks_url:
        p.error("OAUTHBEARER needs --jwks-url")
    if "GSSAPI" in opts.mechanisms and not opts.keytab:
        p.error("GSSAPI needs --keytab")
    if "AWS_MSK_IAM" in opts.mechanisms and not opts.msk_credentials:
        p.error("AWS_MSK_IAM needs --msk-credentials")
    if any(m not in ("OAUTHBEARER", "GSSAPI", "AWS_MSK_IAM") for m in opts.mechanisms) and not opts.users:
        p.error("PLAIN and SCRAM need --users")
    # gssapi_acceptor and msk_iam_sigv4 live beside this script.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if "AWS_MSK_IAM" in opts.mechanisms:
        n = len(load_msk_credentials(opts.msk_credentials))
        log(f"AWS_MSK_IAM: {n} access keys from {opts.msk_credentials}, host {opts.msk_host}, "
            f"region {opts.msk_region}")
    if "GSSAPI" in opts.mechanisms:
        log(f"GSSAPI: accepting as {check_gssapi_acceptor(opts)} with keys from {opts.keytab}")
    try:
        asyncio.run(Proxy(opts).serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
