"""AWS SigV4 for the SASL mechanism AWS_MSK_IAM (Amazon MSK's IAM authentication), written
from the SigV4 specification with hashlib and hmac only (no botocore), so that it checks a
client independently of any AWS library. Used by scripts/sasl-proxy.py (the broker side:
verify) and by scripts/test-env.py's probe and self-check (the client side: sign).

The client's single SaslAuthenticate message is UTF-8 JSON in aws-msk-iam-auth's format,
version "2020_10_22":

    {"version": "2020_10_22", "host": "<broker host>", "user-agent": "<any>",
     "action": "kafka-cluster:Connect", "x-amz-algorithm": "AWS4-HMAC-SHA256",
     "x-amz-credential": "<AKID>/<YYYYMMDD>/<region>/kafka-cluster/aws4_request",
     "x-amz-date": "<YYYYMMDDTHHMMSSZ>", "x-amz-signedheaders": "host",
     "x-amz-expires": "900", "x-amz-signature": "<hex>"}

plus "x-amz-security-token" with session credentials. The signature is SigV4 query-string
presigning (a presigned URL) of `GET https://<host>/?Action=kafka-cluster%3AConnect`, service
kafka-cluster:

    canonical request = "GET\\n/\\n" + <canonical query> + "\\nhost:" + <host> + "\\n\\nhost\\n"
                        + hex(sha256(b""))
    canonical query   = Action, X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires,
                        X-Amz-SignedHeaders (and X-Amz-Security-Token when sent) = the JSON's
                        lower-case keys' values, name and value each URI-encoded (A-Za-z0-9-_.~
                        kept, every other UTF-8 byte %XX upper-case, "/" too), sorted by the
                        encoded name, joined with "&"
    string to sign    = "AWS4-HMAC-SHA256\\n" + x-amz-date + "\\n" + YYYYMMDD/region/kafka-cluster/
                        aws4_request + "\\n" + hex(sha256(canonical request))
    signing key       = HMAC-SHA256 chain: "AWS4"+secret -> YYYYMMDD -> region -> kafka-cluster
                        -> aws4_request; signature = hex(HMAC(signing key, string to sign))

Payload hash: the SHA-256 of the empty string (e3b0c442...b855), never "UNSIGNED-PAYLOAD".
That is what aws-msk-iam-auth sends: it presigns with the AWS SDK v2 `Aws4Signer.presign`,
whose presign hashes the (empty) request body; only the S3 signer (AwsS3V4Signer) presigns
with UNSIGNED-PAYLOAD. The other MSK signers agree (the JavaScript plugins hard-code
e3b0c442...; botocore's SigV4QueryAuth, used by aws-msk-iam-sasl-signer-python, hashes the
empty body for an https URL). A Rust client on the aws-sigv4 crate must therefore sign
`SignableBody::Bytes(b"")` (or `SignableBody::Precomputed(<that hex>)`), not
`SignableBody::UnsignedPayload`: a signature over UNSIGNED-PAYLOAD is refused here as a
signature mismatch, exactly one payload hash being accepted.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json

VERSION = "2020_10_22"
ACTION = "kafka-cluster:Connect"
SERVICE = "kafka-cluster"
ALGORITHM = "AWS4-HMAC-SHA256"
SIGNED_HEADERS = "host"
TERMINATOR = "aws4_request"
# See the module's docstring: the SHA-256 of the empty body, as aws-msk-iam-auth signs.
PAYLOAD_HASH = hashlib.sha256(b"").hexdigest()
# SigV4: a presigned URL lives at most 7 days.
MAX_EXPIRES_S = 604800
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

# The JSON's lower-case keys and the query parameters they carry, in SigV4 spelling.
QUERY_PARAMETERS = {
    "action": "Action",
    "x-amz-algorithm": "X-Amz-Algorithm",
    "x-amz-credential": "X-Amz-Credential",
    "x-amz-date": "X-Amz-Date",
    "x-amz-expires": "X-Amz-Expires",
    "x-amz-signedheaders": "X-Amz-SignedHeaders",
    "x-amz-security-token": "X-Amz-Security-Token",
}
REQUIRED = ["version", "host", "action", "x-amz-algorithm", "x-amz-credential", "x-amz-date",
            "x-amz-signedheaders", "x-amz-expires", "x-amz-signature"]

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def uri_encode(text: str) -> str:
    """SigV4's UriEncode: unreserved characters kept, every other UTF-8 byte (including "/")
    as %XX with upper-case hex."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))


def canonical_query(params: dict[str, str]) -> str:
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_request(host: str, params: dict[str, str]) -> str:
    # Canonical header value: trimmed, inner runs of spaces collapsed (a host has none).
    host_value = " ".join(host.split())
    return "\n".join(["GET", "/", canonical_query(params), f"host:{host_value}", "", SIGNED_HEADERS,
                      PAYLOAD_HASH])


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str = SERVICE) -> bytes:
    key = _hmac(("AWS4" + secret).encode("utf-8"), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, TERMINATOR)


def string_to_sign(amz_date: str, scope: str, creq: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(creq.encode("utf-8")).hexdigest()])


def query_params(payload: dict[str, str]) -> dict[str, str]:
    """The signed query parameters a payload carries (SigV4 names)."""
    return {name: payload[key] for key, name in QUERY_PARAMETERS.items() if key in payload}


def compute_signature(secret: str, payload: dict[str, str]) -> str:
    """The signature the payload must carry, from its own fields (credential scope, date,
    host, query parameters)."""
    _, date, region, service, _ = payload["x-amz-credential"].split("/")
    scope = "/".join([date, region, service, TERMINATOR])
    creq = canonical_request(payload["host"], query_params(payload))
    sts = string_to_sign(payload["x-amz-date"], scope, creq)
    return hmac.new(signing_key(secret, date, region, service), sts.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(host: str, region: str, access_key_id: str, secret: str, session_token: str | None = None,
         when: datetime.datetime | None = None, expires: int = 900,
         user_agent: str = "kafka-backup-test-env") -> dict[str, str]:
    """The client side: a signed AWS_MSK_IAM payload (a dict; json.dumps it to send)."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    amz_date = when.astimezone(datetime.timezone.utc).strftime(AMZ_DATE_FORMAT)
    payload = {
        "version": VERSION,
        "host": host,
        "user-agent": user_agent,
        "action": ACTION,
        "x-amz-algorithm": ALGORITHM,
        "x-amz-credential": f"{access_key_id}/{amz_date[:8]}/{region}/{SERVICE}/{TERMINATOR}",
        "x-amz-date": amz_date,
        "x-amz-signedheaders": SIGNED_HEADERS,
        "x-amz-expires": str(expires),
    }
    if session_token is not None:
        payload["x-amz-security-token"] = session_token
    payload["x-amz-signature"] = compute_signature(secret, payload)
    return payload


class MskIamError(Exception):
    """A refused payload: `reason` a short key (for the stats file), the text what was wrong."""

    def __init__(self, reason: str, text: str):
        super().__init__(text)
        self.reason = reason


def verify(token: bytes, credentials: dict, host: str, region: str, now: float,
           max_skew_s: int = 300) -> tuple[str, str]:
    """The broker side, as MSK checks a payload. credentials: {access_key_id: {"secret",
    "principal", optional "session_token"}}; host: the name this broker serves as; now: Unix
    seconds. Returns (principal, access key id); raises MskIamError."""
    try:
        payload = json.loads(token.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise MskIamError("malformed", "malformed payload: not UTF-8 JSON") from None
    if not isinstance(payload, dict):
        raise MskIamError("malformed", "malformed payload: not a JSON object")
    bad = sorted(k for k, v in payload.items() if not isinstance(v, str))
    if bad:
        raise MskIamError("malformed", f"malformed payload: {', '.join(bad)} not a string")
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise MskIamError("malformed", f"malformed payload: missing {', '.join(missing)}")
    if payload["version"] != VERSION:
        raise MskIamError("version", f"unsupported version {payload['version']!r} (expected {VERSION})")
    if payload["action"] != ACTION:
        raise MskIamError("action", f"unsupported action {payload['action']!r} (expected {ACTION})")
    if payload["x-amz-algorithm"] != ALGORITHM:
        raise MskIamError("algorithm", f"unsupported algorithm {payload['x-amz-algorithm']!r} "
                                       f"(expected {ALGORITHM})")
    scope = payload["x-amz-credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise MskIamError("credential_scope", f"malformed credential {payload['x-amz-credential']!r} "
                                              "(AKID/YYYYMMDD/region/kafka-cluster/aws4_request)")
    key_id, scope_date, scope_region, service, terminator = scope
    if service != SERVICE or terminator != TERMINATOR:
        raise MskIamError("credential_scope", f"credential scope for service {service!r} / {terminator!r}, "
                                              f"expected {SERVICE} / {TERMINATOR}")
    entry = credentials.get(key_id)
    if entry is None:
        raise MskIamError("unknown_access_key", f"unknown access key {key_id!r}")
    if payload["host"].lower() != host.lower():
        raise MskIamError("host_mismatch", f"host mismatch: the payload is signed for {payload['host']!r}, "
                                           f"this broker is {host!r}")
    if scope_region != region:
        raise MskIamError("region_mismatch", f"region mismatch: the credential scope names {scope_region!r}, "
                                             f"this broker is in {region!r}")
    if payload["x-amz-signedheaders"] != SIGNED_HEADERS:
        raise MskIamError("signed_headers", f"signed headers {payload['x-amz-signedheaders']!r}, "
                                            f"expected {SIGNED_HEADERS!r}")
    amz_date = payload["x-amz-date"]
    try:
        signed_at = datetime.datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        raise MskIamError("malformed", f"malformed x-amz-date {amz_date!r} (YYYYMMDDTHHMMSSZ)") from None
    if len(amz_date) != 16 or scope_date != amz_date[:8]:
        raise MskIamError("credential_scope", f"credential date {scope_date!r} is not the date of "
                                              f"x-amz-date {amz_date!r}")
    expires = payload["x-amz-expires"]
    if not expires.isascii() or not expires.isdigit() or not 1 <= int(expires) <= MAX_EXPIRES_S:
        raise MskIamError("expires", f"x-amz-expires {expires!r} is not a number of seconds from 1 to "
                                     f"{MAX_EXPIRES_S}")
    if signed_at - now > max_skew_s:
        raise MskIamError("date_in_future", f"x-amz-date {amz_date} is {signed_at - now:.0f} s in the future "
                                            f"(more than {max_skew_s} s)")
    if now > signed_at + int(expires):
        raise MskIamError("expired", f"expired: signed at {amz_date}, valid for {expires} s, "
                                     f"{now - signed_at:.0f} s ago")
    if now - signed_at > max_skew_s:
        raise MskIamError("expired", f"expired: x-amz-date {amz_date} is {now - signed_at:.0f} s old "
                                     f"(more than {max_skew_s} s)")
    want_token = entry.get("session_token")
    got_token = payload.get("x-amz-security-token")
    if want_token is None and got_token is not None:
        raise MskIamError("security_token", f"a security token was sent with the long-term access key {key_id!r}")
    if want_token is not None:
        if got_token is None:
            raise MskIamError("security_token", f"no security token for the session access key {key_id!r}")
        if not hmac.compare_digest(want_token.encode("utf-8"), got_token.encode("utf-8")):
            raise MskIamError("security_token", f"invalid security token for access key {key_id!r}")
    expected = compute_signature(entry["secret"], payload)
    if not hmac.compare_digest(expected.encode("ascii"), payload["x-amz-signature"].encode("utf-8")):
        raise MskIamError("signature_mismatch", f"signature mismatch for access key {key_id!r} (the canonical "
                                                "request hashes the empty payload, "
                                                f"{PAYLOAD_HASH[:8]}..., not UNSIGNED-PAYLOAD)")
    return entry["principal"], key_id


def response(request_id: str) -> bytes:
    """The broker's auth bytes on success."""
    return json.dumps({"version": VERSION, "request-id": request_id}, separators=(",", ":")).encode("utf-8")
