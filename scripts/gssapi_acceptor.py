#!/usr/bin/env python3
"""The broker's side of SASL GSSAPI (RFC 4752) as Kafka runs it, for tests.

Import it (the SASL-terminating test proxy can) or run it as a line protocol over stdio:

    from gssapi_acceptor import GssapiAcceptor
    acceptor = GssapiAcceptor(keytab="service.keytab", service="kafka", host="localhost")
    response, done, principal = acceptor.step(token)   # once per SaslAuthenticate request

    python gssapi_acceptor.py --keytab K [--service kafka] [--host localhost]
        reads one JSON object per line: {"token": "<hex>"}
        writes one JSON object per line: {"response": "<hex>", "done": bool,
            "principal": str|null} or {"error": str} (after which the exchange is over)

The stages follow Java's GssKrb5Server, which Kafka brokers use:

1. Each client token goes to accept_sec_context; once the context is established its last
   token (the AP-REP that gives the client mutual authentication) is returned.
2. The client answers the AP-REP with an empty message (RFC 4752 section 3.1). The acceptor
   replies with a wrapped (integrity only) 4-byte message: a bitmask of the security layers
   it offers, 0x01 = none, the only one Kafka offers, and a 3-byte maximum message size.
3. The client sends a wrapped message: the layer it chose (must be 0x01), its 3-byte
   maximum size (0 for no layer) and an authorization identity. Kafka's client sends its own
   principal; an empty one means the same. Anything else is refused, as a broker's
   authorizer callback would. The exchange is done; the broker answers with an empty
   message and `principal` is the authenticated client.

Needs the PyPI package `gssapi` (which builds against libkrb5-dev). The acceptor's krb5
configuration comes from the environment (KRB5_CONFIG), as for any MIT program.
"""

import argparse
import json
import sys

import gssapi

# RFC 4752 security layer bits.
LAYER_NONE = 0x01
# What a Kafka broker announces as its maximum receive size (Java's default 65536).
SERVER_MAX_SIZE = 65536


class AcceptorError(Exception):
    """The exchange failed on the acceptor's side; the broker would reject the client."""


class GssapiAcceptor:
    """One authentication exchange on the broker's side. Not reusable."""

    def __init__(self, keytab, service="kafka", host="localhost"):
        # The acceptor's credentials come from this keytab only, never from KRB5_KTNAME.
        name = gssapi.Name(f"{service}@{host}", gssapi.NameType.hostbased_service)
        self._creds = gssapi.Credentials(name=name, usage="accept", store={"keytab": keytab})
        self._ctx = gssapi.SecurityContext(creds=self._creds, usage="accept")
        self._stage = 0
        self.principal = None

    def step(self, token):
        """Takes the client's message, returns (response bytes, done, client principal)."""
        try:
            if self._stage == 0:
                out = self._ctx.step(token)
                if self._ctx.complete:
                    mutual = gssapi.RequirementFlag.mutual_authentication
                    if mutual not in self._ctx.actual_flags:
                        raise AcceptorError("the client did not ask for mutual authentication")
                    self._stage = 1
                return (out or b"", False, None)
            if self._stage == 1:
                # Java ignores the content of this message; it should be empty.
                offer = bytes([LAYER_NONE]) + SERVER_MAX_SIZE.to_bytes(3, "big")
                self._stage = 2
                return (self._ctx.wrap(offer, False).message, False, None)
            if self._stage == 2:
                unwrapped = self._ctx.unwrap(token)
                message = unwrapped.message
                if unwrapped.encrypted:
                    raise AcceptorError("the client's security-layer message was encrypted")
                if len(message) < 4:
                    raise AcceptorError(
                        f"the client's security-layer message has {len(message)} bytes, "
                        "fewer than 4"
                    )
                if message[0] != LAYER_NONE:
                    raise AcceptorError(
                        f"the client chose security layer {message[0]:#04x}; only "
                        f"{LAYER_NONE:#04x} (none) was offered"
                    )
                authenticated = str(self._ctx.initiator_name)
                authzid = message[4:].decode("utf-8")
                if authzid not in ("", authenticated):
                    raise AcceptorError(
                        f"the client {authenticated} asked to act as {authzid}, which is "
                        "not allowed"
                    )
                self._stage = 3
                self.principal = authenticated
                return (b"", True, authenticated)
            raise AcceptorError("the exchange is already over")
        except gssapi.exceptions.GSSError as e:
            self._stage = 4
            raise AcceptorError(f"GSSAPI: {e.gen_message()}") from e
        except AcceptorError:
            self._stage = 4
            raise


def serve_stdio(args):
    acceptor = None
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        request = json.loads(line)
        try:
            if acceptor is None:
                acceptor = GssapiAcceptor(args.keytab, args.service, args.host)
            response, done, principal = acceptor.step(bytes.fromhex(request["token"]))
            reply = {
                "response": response.hex(),
                "done": done,
                "principal": principal,
            }
        except (AcceptorError, gssapi.exceptions.GSSError) as e:
            reply = {"error": str(e)}
        print(json.dumps(reply), flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keytab", required=True)
    parser.add_argument("--service", default="kafka")
    parser.add_argument("--host", default="localhost")
    return serve_stdio(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
