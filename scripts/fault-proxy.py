#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 proxy for the tests: put it in front of moto (or any HTTP
object store) and point the client's endpoint at it.

    fault-proxy.py --upstream 127.0.0.1:PORT --mode MODE --every N [--delay SECONDS]

It listens on 127.0.0.1 (a port chosen by the kernel), prints `listening on PORT` once ready,
and forwards every request unchanged (Host header included, so S3 signatures still match) over
one upstream connection per client connection, with keep-alive. Bodies are read whole with
their framing (Content-Length or chunked) and passed on byte for byte.

Every Nth PUT, and for the modes that name it every Nth GET, is faulted (counted per method,
so a retry of a faulted request is the next one and passes):

- error-before: answer 503 without forwarding (PUT and GET).
- error-after:  forward the PUT, then answer 503 instead of the real answer: the object is
                stored, the answer is lost (PUT only).
- reset:        reset the connection halfway through the PUT's request body (nothing is
                forwarded), or forward the GET and reset halfway through its response body.
- reset-after:  forward the PUT, then reset the connection instead of answering (PUT only).
- slow:         forward, then hold the answer for --delay seconds, longer than the client
                waits (PUT and GET).
- none:         forward everything (for a baseline).

`GET /__fault-proxy__/stats` (answered by the proxy itself) returns JSON counts: requests
per method and faults per method, so tests can check that faults happened.
"""

import argparse
import asyncio
import json
import socket
import struct
import sys

STATS_PATH = b"/__fault-proxy__/stats"
FAULTED_METHODS = {
    "error-before": {"PUT", "GET"},
    "error-after": {"PUT"},
    "reset": {"PUT", "GET"},
    "reset-after": {"PUT"},
    "slow": {"PUT", "GET"},
    "none": set(),
}


class Closed(Exception):
    """The peer closed the connection between messages."""


class Message:
    """One HTTP/1.1 request or response: the head as received, its parsed headers, and the
    body bytes exactly as framed on the wire (chunk framing included)."""

    def __init__(self, head, start_line, headers, body):
        self.head = head
        self.start_line = start_line
        self.headers = headers
        self.body = body

    def header(self, name):
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def wants_close(self):
        return (self.header("connection") or "").lower() == "close"

    def raw(self):
        return self.head + self.body


async def read_head(reader):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            raise Closed() from None
        raise
    lines = head[:-4].split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.decode("latin-1").strip().lower(), value.decode("latin-1").strip()))
    return head, lines[0].decode("latin-1"), headers


async def read_chunked(reader):
    """The chunked body, framing and trailers included, as received."""
    parts = []
    while True:
        line = await reader.readuntil(b"\r\n")
        parts.append(line)
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:
                trailer = await reader.readuntil(b"\r\n")
                parts.append(trailer)
                if trailer == b"\r\n":
                    return b"".join(parts)
        parts.append(await reader.readexactly(size + 2))


async def read_body(reader, msg, until_eof):
    if "chunked" in (msg.header("transfer-encoding") or "").lower():
        return await read_chunked(reader)
    length = msg.header("content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    return await reader.read() if until_eof else b""


async def read_request(reader, body=True):
    head, start, headers = await read_head(reader)
    msg = Message(head, start, headers, b"")
    if body:
        msg.body = await read_body(reader, msg, until_eof=False)
    return msg


async def read_response(reader, method):
    while True:
        head, start, headers = await read_head(reader)
        status = int(start.split(" ")[1])
        # Interim answers (100 Continue): the proxy has sent the whole body already.
        if not 100 <= status < 200 or status == 101:
            break
    msg = Message(head, start, headers, b"")
    msg.until_eof = False
    if method != "HEAD" and status not in (204, 304) and not 100 <= status < 200:
        msg.until_eof = msg.header("content-length") is None and "chunked" not in (
            msg.header("transfer-encoding") or ""
        ).lower()
        msg.body = await read_body(reader, msg, until_eof=True)
    return msg


VERBOSE = False


def log(text):
    if VERBOSE:
        print(text, file=sys.stderr, flush=True)


def reset(writer):
    """Closes with a TCP RST (SO_LINGER 0) rather than a FIN: what a dropped connection
    looks like to the client."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


def plain_response(status, reason, body, content_type="application/xml"):
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


ERROR_503 = plain_response(
    503,
    "Service Unavailable",
    b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>ServiceUnavailable</Code>"
    b"<Message>injected by fault-proxy</Message></Error>",
)


class Proxy:
    def __init__(self, upstream, mode, every, delay):
        self.upstream = upstream
        self.mode = mode
        self.every = every
        self.delay = delay
        self.requests = {}
        self.faults = {}
        self.connections = 0
        # Response body bytes forwarded from upstream, per method (what a client downloaded).
        self.response_bytes = {}

    def stats(self):
        return {
            "mode": self.mode,
            "every": self.every,
            "connections": self.connections,
            "requests": self.requests,
            "faults": self.faults,
            "response_bytes": self.response_bytes,
        }

    def decide(self, method):
        """Counts the request; whether it is to be faulted."""
        n = self.requests.get(method, 0) + 1
        self.requests[method] = n
        fault = method in FAULTED_METHODS[self.mode] and n % self.every == 0
        if fault:
            self.faults[method] = self.faults.get(method, 0) + 1
        return fault

    async def handle(self, client_reader, client_writer):
        self.connections += 1
        up = None
        try:
            while True:
                try:
                    request = await read_request(client_reader, body=False)
                except Closed:
                    return
                method, target = request.start_line.split(" ")[:2]
                if target.encode() == STATS_PATH:
                    body = json.dumps(self.stats()).encode()
                    client_writer.write(plain_response(200, "OK", body, "application/json"))
                    await client_writer.drain()
                    if request.wants_close():
                        return
                    continue
                fault = self.decide(method)
                log(f"{method} {target} fault={fault}")
                if fault and self.mode == "reset" and method == "PUT":
                    # Take half the body, then drop the connection: nothing reaches upstream.
                    length = int(request.header("content-length") or 0)
                    if length:
                        await client_reader.readexactly(length // 2)
                    reset(client_writer)
                    return
                if (request.header("expect") or "").lower() == "100-continue":
                    # The client waits for this before it sends the body.
                    client_writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    await client_writer.drain()
                request.body = await read_body(client_reader, request, until_eof=False)
                if fault and self.mode == "error-before":
                    client_writer.write(ERROR_503)
                    await client_writer.drain()
                    continue
                if up is None:
                    up = await asyncio.open_connection(*self.upstream)
                up[1].write(request.raw())
                await up[1].drain()
                response = await read_response(up[0], method)
                log(f"  -> {response.start_line} ({len(response.body)} body bytes)")
                self.response_bytes[method] = self.response_bytes.get(method, 0) + len(response.body)
                if response.wants_close() or response.until_eof:
                    up[1].close()
                    up = None
                if fault and self.mode == "error-after":
                    client_writer.write(ERROR_503)
                    await client_writer.drain()
                    continue
                if fault and self.mode == "reset-after":
                    reset(client_writer)
                    return
                if fault and self.mode == "reset":
                    # A GET: the head and half the body, then a reset.
                    raw = response.raw()
                    client_writer.write(raw[: len(response.head) + len(response.body) // 2])
                    await client_writer.drain()
                    # Let the bytes leave before the RST discards what is still queued.
                    await asyncio.sleep(0.05)
                    reset(client_writer)
                    return
                if fault and self.mode == "slow":
                    await asyncio.sleep(self.delay)
                client_writer.write(response.raw())
                await client_writer.drain()
                if request.wants_close() or response.wants_close():
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            # The client gave up (a timeout) or upstream went away: drop this connection only.
            print(f"connection dropped: {e!r}", file=sys.stderr)
        finally:
            if up is not None:
                up[1].close()
            if not client_writer.transport.is_closing():
                client_writer.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT")
    parser.add_argument("--mode", choices=sorted(FAULTED_METHODS), default="none")
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--delay", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    host, _, port = args.upstream.rpartition(":")
    proxy = Proxy((host, int(port)), args.mode, args.every, args.delay)
    server = await asyncio.start_server(
        proxy.handle, "127.0.0.1", args.port, limit=1 << 20
    )
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
