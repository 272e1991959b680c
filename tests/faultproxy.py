"""A fault-injecting HTTP proxy that runs as its own process in front of the test store.

    python -m tests.faultproxy --upstream http://127.0.0.1:PORT

It prints ``READY <port>`` once it listens on 127.0.0.1, then forwards every request
to the upstream server and relays the answer, unless a rule picks the request for a
fault. Tests drive it through :class:`FaultProxy`, which starts the process and talks
to its control endpoints under ``/__faultproxy__/`` (no bucket name can start with
an underscore, so they never shadow an object):

- ``PUT /__faultproxy__/rules`` sets the rules (JSON, see :class:`Rule`);
- ``GET /__faultproxy__/log`` returns every proxied request (:class:`Record`);
- ``DELETE /__faultproxy__/log`` clears the log;
- ``GET /__faultproxy__/held?count=N&timeout=S`` waits until N requests are held;
- ``GET /__faultproxy__/idle?timeout=S`` waits until no request is in progress (so
  the log holds everything a killed client had started);
- ``POST /__faultproxy__/release`` lets every held request finish normally.

The faults (:class:`Fault` ``kind``) are real misbehaviour on a real socket:
``reset`` (TCP RST after ``after`` body bytes), ``status`` (an error status with an
S3/OSS XML error body, ``SlowDown`` by default), ``short`` (``after`` bytes of a body
whose Content-Length promised more, then FIN), ``whole`` (the Range header is dropped
and the whole object comes back as a 200), ``content_range`` (the header is rewritten:
``shift`` moves the range by one byte, ``total`` claims another object size),
``stall`` (``after`` body bytes, then nothing until the client gives up),
``stall_headers`` (no answer at all until the client gives up), ``hold`` (``after``
body bytes, then wait for a release from the test), ``slow`` (``after`` body bytes,
then the rest trickled at ``rate`` bytes per second until done or the client hangs
up), ``strip_if_match`` (the request goes upstream without ``If-Match``: a server
that ignores it), and ``etag`` (the answer's ETag is replaced by a new one each time:
a proxy that rewrites it).

Which requests a rule faults is deterministic: by their ordinal among the requests
the rule matches, or by a probability drawn from a generator seeded with the rule's
seed and the request itself (method, range, and how often that exact request was
seen), so the same requests are faulted whatever order threads send them in.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

CONTROL = "/__faultproxy__/"
# A request header clients may set to tell their requests apart in the log.
TAG_HEADER = "X-Test-Run"
ROOT = Path(__file__).resolve().parent.parent
# Headers that describe one hop, never forwarded as they are.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# A stall waits for the client to give up, but never longer than this.
STALL_CAP = 30.0
KINDS = frozenset(
    {
        "reset",
        "status",
        "short",
        "whole",
        "content_range",
        "stall",
        "stall_headers",
        "hold",
        "slow",
        "strip_if_match",
        "etag",
    }
)
# A slow body goes out in writes of this many bytes (paced by the fault's rate).
SLOW_WRITE = 4096


@dataclasses.dataclass(frozen=True)
class Fault:
    """One way to misbehave; see the module docstring for each ``kind``."""

    kind: str
    after: int = 0
    """Body bytes sent before a reset, short body, stall or hold."""
    status: int = 503
    code: str = "SlowDown"
    echo: str | None = None
    """For ``status``: a request header whose value the error message repeats."""
    mode: str = "shift"
    """For ``content_range``: ``shift`` or ``total``."""
    rate: int = 65536
    """For ``slow``: body bytes per second after the first ``after``."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")


@dataclasses.dataclass(frozen=True)
class Rule:
    """Which requests get a fault, and which fault (one of ``faults``, drawn per request)."""

    faults: tuple[Fault, ...]
    method: str | None = None
    ranged: bool | None = None
    """True: only requests with a Range header; False: only those without."""
    path_prefix: str | None = None
    range: str | None = None
    """Only requests with exactly this Range header (``bytes=0-102399``)."""
    nth: tuple[int, ...] | None = None
    """Ordinals (from 0) among the requests this rule matches; None for every one."""
    from_nth: int = 0
    probability: float = 1.0
    times: int | None = None
    """Stop after this many faults."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Rule:
        faults = tuple(Fault(**fault) for fault in raw.pop("faults"))
        nth = raw.pop("nth", None)
        return cls(faults=faults, nth=None if nth is None else tuple(nth), **raw)


@dataclasses.dataclass(frozen=True)
class Record:
    """One request the proxy forwarded or faulted."""

    seq: int
    method: str
    path: str
    range: str | None
    if_match: str | None
    fault: str | None
    status: int | None
    length: int | None
    """The Content-Length the client was told."""
    sent: int
    """Body bytes actually sent."""
    complete: bool
    ended: str | None = None
    """How a stall, hold or slow body ended: ``client`` (it gave up), ``released`` or ``cap``."""
    tag: str | None = None
    """The request's ``X-Test-Run`` header."""


# -- the proxy process ---------------------------------------------------------------


class _Held:
    """A request waiting for a release: a pipe the releasing thread writes to."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self.write_end, b"x")

    def close(self) -> None:
        os.close(self.read_end)
        os.close(self.write_end)


class _State:
    """Everything the handler threads share, behind one lock."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.lock = threading.Condition()
        self.rules: list[tuple[Rule, int]] = []  # (rule, seed)
        self.matched: dict[int, int] = {}  # rule position -> requests matched
        self.applied: dict[int, int] = {}  # rule position -> faults applied
        self.repeats: dict[tuple[str, str | None], int] = {}
        self.log: list[Record] = []
        self.held: set[_Held] = set()
        self.busy = 0

    def set_rules(self, rules: list[Rule], seed: int) -> None:
        with self.lock:
            self.rules = [(rule, seed) for rule in rules]
            self.matched.clear()
            self.applied.clear()
            self.repeats.clear()

    def choose(self, method: str, path: str, range_: str | None) -> Fault | None:
        """The fault for this request, if a rule picks it (first rule wins)."""
        with self.lock:
            # Not the path: it holds the test's random bucket name, and the draws must
            # come out the same on every run.
            key = (method, range_)
            repeat = self.repeats.get(key, 0)
            self.repeats[key] = repeat + 1
            for position, (rule, seed) in enumerate(self.rules):
                if not _matches(rule, method, path, range_):
                    continue
                ordinal = self.matched.get(position, 0)
                self.matched[position] = ordinal + 1
                if rule.nth is not None and ordinal not in rule.nth:
                    continue
                if ordinal < rule.from_nth:
                    continue
                if rule.times is not None and self.applied.get(position, 0) >= rule.times:
                    continue
                draw = random.Random(f"{seed}|{position}|{method}|{range_}|{repeat}")
                if draw.random() >= rule.probability:
                    continue
                self.applied[position] = self.applied.get(position, 0) + 1
                return draw.choice(rule.faults)
            return None

    def started(self) -> None:
        with self.lock:
            self.busy += 1

    def record(self, **fields: Any) -> None:
        """Log a finished request (however it finished)."""
        with self.lock:
            self.log.append(Record(seq=len(self.log), **fields))
            self.busy -= 1
            self.lock.notify_all()

    def wait_idle(self, timeout: float) -> int:
        with self.lock:
            self.lock.wait_for(lambda: self.busy == 0, timeout)
            return self.busy

    def hold(self, held: _Held) -> None:
        with self.lock:
            self.held.add(held)
            self.lock.notify_all()

    def unhold(self, held: _Held) -> None:
        with self.lock:
            self.held.discard(held)

    def wait_held(self, count: int, timeout: float) -> int:
        with self.lock:
            self.lock.wait_for(lambda: len(self.held) >= count, timeout)
            return len(self.held)

    def release(self) -> int:
        with self.lock:
            held = list(self.held)
        for item in held:
            item.release()
        return len(held)


def _matches(rule: Rule, method: str, path: str, range_: str | None) -> bool:
    if rule.method is not None and rule.method != method:
        return False
    if rule.ranged is not None and rule.ranged != (range_ is not None):
        return False
    if rule.range is not None and rule.range != range_:
        return False
    return rule.path_prefix is None or path.startswith(rule.path_prefix)


class _Abort(Exception):
    """The connection was reset on purpose: stop handling it."""


def _error_body(fault: Fault, request_headers: Any) -> bytes:
    message = "Please reduce your request rate."
    if fault.echo is not None:
        message += f" {fault.echo}: {request_headers.get(fault.echo, '')}"
    request_id = uuid.uuid4().hex.upper()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{fault.code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>faultproxy</HostId></Error>"
    ).encode()


def _shifted_range(value: str | None, mode: str) -> str | None:
    if not value or not value.startswith("bytes "):
        return value
    span, _, total = value[6:].partition("/")
    first, _, last = span.partition("-")
    if mode == "total":
        return f"bytes {first}-{last}/{int(total) + 1}"
    return f"bytes {int(first) + 1}-{int(last) + 1}/{total}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: ClassVar[_State]

    def setup(self) -> None:
        super().setup()
        self._upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the log endpoint is the record; stderr stays quiet

    def handle(self) -> None:
        try:
            super().handle()
        except (_Abort, ConnectionError, TimeoutError):
            self.close_connection = True
        finally:
            if self._upstream is not None:
                self._upstream.close()

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    # -- control ---------------------------------------------------------------------

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith(CONTROL):
            self._control(body)
        else:
            self._proxy(body)

    def _control(self, body: bytes) -> None:
        url = urlsplit(self.path)
        action = url.path[len(CONTROL) :]
        state = self.state
        answer: Any
        if action == "rules" and self.command == "PUT":
            document = json.loads(body)
            rules = [Rule.from_json(raw) for raw in document["rules"]]
            state.set_rules(rules, int(document.get("seed", 0)))
            answer = {"rules": len(rules)}
        elif action == "log" and self.command == "GET":
            with state.lock:
                answer = {"requests": [dataclasses.asdict(r) for r in state.log]}
        elif action == "log" and self.command == "DELETE":
            with state.lock:
                state.log.clear()
            answer = {"cleared": True}
        elif action == "held" and self.command == "GET":
            query = parse_qs(url.query)
            count = int(query.get("count", ["1"])[0])
            timeout = float(query.get("timeout", ["10"])[0])
            answer = {"held": state.wait_held(count, timeout)}
        elif action == "idle" and self.command == "GET":
            timeout = float(parse_qs(url.query).get("timeout", ["10"])[0])
            answer = {"busy": state.wait_idle(timeout)}
        elif action == "release" and self.command == "POST":
            answer = {"released": state.release()}
        else:
            self._send_simple(404, b"unknown control request", "text/plain")
            return
        self._send_simple(200, json.dumps(answer).encode(), "application/json")

    def _send_simple(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- proxying --------------------------------------------------------------------

    def _proxy(self, body: bytes) -> None:
        self.state.started()
        range_ = self.headers.get("Range")
        fault = self.state.choose(self.command, self.path, range_)
        kind = fault.kind if fault is not None else None
        entry: dict[str, Any] = {
            "method": self.command,
            "path": self.path,
            "range": range_,
            "if_match": self.headers.get("If-Match"),
            "fault": kind,
            "status": None,
            "length": None,
            "sent": 0,
            "complete": False,
            "ended": None,
            "tag": self.headers.get(TAG_HEADER),
        }
        try:
            self._answer(fault, body, entry)
        finally:
            self.state.record(**entry)

    def _answer(self, fault: Fault | None, body: bytes, entry: dict[str, Any]) -> None:
        if fault is not None and fault.kind == "status":
            payload = _error_body(fault, self.headers)
            entry["status"] = fault.status
            self._send_simple(fault.status, payload, "application/xml")
            entry["complete"] = True
            return
        if fault is not None and fault.kind == "stall_headers":
            entry["ended"] = self._wait()
            raise _Abort
        if fault is not None and fault.kind == "reset" and self.command == "HEAD":
            self._reset()  # a HEAD has no body to cut: the connection dies unanswered
        drop = {"range"} if fault is not None and fault.kind == "whole" else set()
        if fault is not None and fault.kind == "strip_if_match":
            drop.add("if-match")
        status, reason, headers, payload = self._forward(body, drop)
        if fault is not None and fault.kind == "content_range":
            headers = [
                (name, _shifted_range(value, fault.mode) or value)
                if name.lower() == "content-range"
                else (name, value)
                for name, value in headers
            ]
        if fault is not None and fault.kind == "etag":
            headers = [
                (name, f'"{uuid.uuid4().hex}"') if name.lower() == "etag" else (name, value)
                for name, value in headers
            ]
        entry["status"] = status
        entry["length"] = len(payload)
        self.send_response_only(status, reason)
        for name, value in headers:
            # A HEAD answer keeps the upstream's length: it describes the object.
            if name.lower() != "content-length" or self.command == "HEAD":
                self.send_header(name, value)
        if self.command == "HEAD":
            self.end_headers()
            entry["complete"] = True
            return
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self._send_body(fault, payload, entry)

    def _send_body(self, fault: Fault | None, payload: bytes, entry: dict[str, Any]) -> None:
        if fault is not None and fault.kind == "slow":
            self._trickle(fault, payload, entry)
            return
        if fault is None or fault.kind not in ("reset", "short", "stall", "hold"):
            self.wfile.write(payload)
            entry["sent"], entry["complete"] = len(payload), True
            return
        head = payload[: fault.after]
        self.wfile.write(head)
        entry["sent"] = len(head)
        if fault.kind == "reset":
            self._reset()
        if fault.kind == "short":
            self.close_connection = True
            return
        if fault.kind == "stall":
            entry["ended"] = self._wait()
            raise _Abort
        entry["ended"] = self._hold()
        if entry["ended"] != "released":
            raise _Abort
        self.wfile.write(payload[fault.after :])
        entry["sent"], entry["complete"] = len(payload), True

    def _trickle(self, fault: Fault, payload: bytes, entry: dict[str, Any]) -> None:
        """Send ``after`` bytes, then the rest at ``fault.rate``; stop when the client leaves."""
        self.wfile.write(payload[: fault.after])
        entry["sent"] = sent = min(fault.after, len(payload))
        began = time.monotonic()
        while sent < len(payload):
            # Paced against the clock, so the rate holds however the writes are delayed.
            due = began + (sent - fault.after) / fault.rate - time.monotonic()
            if due > 0:
                readable, _, _ = select.select([self.connection], [], [], due)
                if readable:  # a client that hung up makes its socket readable (EOF)
                    entry["ended"] = "client"
                    raise _Abort
            try:
                self.wfile.write(payload[sent : sent + SLOW_WRITE])
            except OSError:
                entry["ended"] = "client"
                raise _Abort from None
            sent = min(sent + SLOW_WRITE, len(payload))
            entry["sent"] = sent
        entry["complete"] = True

    def _forward(
        self, body: bytes, drop: set[str]
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Send the request upstream and read the whole answer (test objects are small)."""
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() not in _HOP_BY_HOP and name.lower() not in drop
        }
        for attempt in range(2):
            connection = self._upstream
            if connection is None:
                state = self.state
                connection = http.client.HTTPConnection(
                    state.upstream_host, state.upstream_port, timeout=60
                )
                self._upstream = connection
            try:
                connection.request(self.command, self.path, body=body or None, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (http.client.HTTPException, OSError):
                # A pooled upstream connection the server closed meanwhile: one more try.
                connection.close()
                self._upstream = None
                if attempt:
                    raise
                continue
            if response.will_close:
                connection.close()
                self._upstream = None
            kept = [
                (name, value)
                for name, value in response.getheaders()
                if name.lower() not in _HOP_BY_HOP
            ]
            return response.status, response.reason, kept, payload
        raise AssertionError("unreachable")

    def _reset(self) -> None:
        """Abort the connection with a TCP RST, as a crashed server or a middlebox does."""
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The socket's file objects hold references; close them all so the RST goes now.
        for stream in (self.rfile, self.wfile):
            with contextlib.suppress(OSError, ValueError):
                stream.close()
        sock.close()
        raise _Abort

    def _wait(self, release: int | None = None) -> str:
        """Block until ``release`` is readable, the client leaves, or ``STALL_CAP`` passes.

        A client that gave up closes its socket, which makes it readable. Returns
        ``released``, ``client`` or ``cap``.
        """
        watched: list[Any] = [self.connection]
        if release is not None:
            watched.append(release)
        readable, _, _ = select.select(watched, [], [], STALL_CAP)
        if release is not None and release in readable:
            return "released"
        return "client" if readable else "cap"

    def _hold(self) -> str:
        """Wait for the test's release (or the client leaving); say which came."""
        held = _Held()
        self.state.hold(held)
        try:
            return self._wait(held.read_end)
        finally:
            self.state.unhold(held)
            held.close()


def serve(upstream: str, port: int) -> None:
    _Handler.state = _State(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    serve(args.upstream, args.port)


# -- the test side -------------------------------------------------------------------


class FaultProxy:
    """A running proxy process and its control endpoints."""

    def __init__(self, upstream: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.faultproxy", "--upstream", upstream],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("READY "):
            self._process.kill()
            raise RuntimeError(f"the fault proxy did not start: {line!r}")
        self.port = int(line.split()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _call(self, method: str, action: str, body: Any = None, timeout: float = 30) -> Any:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            payload = None if body is None else json.dumps(body).encode()
            connection.request(method, CONTROL + action, body=payload)
            response = connection.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(f"fault proxy: {response.status} {data!r}")
            return json.loads(data)
        finally:
            connection.close()

    def set_rules(self, *rules: Rule, seed: int = 0) -> None:
        self._call("PUT", "rules", {"seed": seed, "rules": [rule.to_json() for rule in rules]})

    def clear(self) -> None:
        """No rules and an empty log."""
        self.set_rules()
        self._call("DELETE", "log")

    def log(self) -> list[Record]:
        """Every request so far, once the ones in progress have finished.

        A request is logged after its last byte went out, so a client can be done
        with an answer a moment before it is in the log: waiting for the proxy to be
        idle first makes the count exact. (Only while a request is held does that
        wait last; release it first.)
        """
        self.wait_idle()
        return [Record(**raw) for raw in self._call("GET", "log")["requests"]]

    def wait_held(self, count: int = 1, timeout: float = 20.0) -> int:
        query = f"held?count={count}&timeout={timeout}"
        held: int = self._call("GET", query, timeout=timeout + 10)["held"]
        return held

    def release(self) -> int:
        released: int = self._call("POST", "release")["released"]
        return released

    def wait_idle(self, timeout: float = 20.0) -> None:
        """Wait until every request in progress has finished and is in the log."""
        busy = self._call("GET", f"idle?timeout={timeout}", timeout=timeout + 10)["busy"]
        if busy:
            raise RuntimeError(f"the fault proxy still has {busy} requests in progress")


if __name__ == "__main__":
    main()
