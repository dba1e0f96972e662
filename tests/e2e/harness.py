"""Shared machinery of chatstream's end-to-end tests (Python 3 standard library only).

The tests start the REAL binary (`chatstream serve`) and the REAL nginx (the config rendered by
scripts/render-nginx.sh) on free loopback ports, talk to them over raw sockets, and stop them at the
end even when a test fails (each process runs in its own session; its whole process group is killed).

Which binary: `--binary PATH` on the command line (ctest passes `$<TARGET_FILE:chatstream>`, so the
sanitizer pass tests the sanitizer binary), else $CHATSTREAM_BIN, else <source>/build/chatstream.

Pieces:
  Server / start_server(**flags)      one `chatstream serve` master and its workers
                                      (database_url=URL or a Postgres: with a database)
  Postgres / start_postgres()         a private PostgreSQL cluster (scripts/pg.sh) on a free port;
                                      migrate(), ingest(), psql(), rows(), session(), stop()/start()
  Nginx / start_nginx(upstream)       nginx with the rendered config
  FakeLLM / start_fake_llm(**flags)   bench/fake-llm, the fake OpenAI upstream (stats(), reset())
  Conn, request(), raw_exchange()     HTTP/1.1 over a socket, byte-exact, incl. malformed requests
  ResponseParser                      incremental HTTP response parser (chunked, pipelined, 1xx)
  SSEParser, Stream, open_stream()    Server-Sent Events with the arrival time of every item
  validate_stream()                   the invariants docs/protocol.md states for every stream
  run_many_streams()                  a single-threaded (selectors) client for many streams
  parse_metrics()                     Prometheus text format
  E2ETestCase                         unittest base class wiring the above with cleanups
"""

from __future__ import annotations

import argparse
import atexit
import errno
import json
import os
import re
import resource
import select as select_module
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("CHATSTREAM_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BINARY = os.environ.get("CHATSTREAM_BIN") or os.path.join(SOURCE_DIR, "build", "chatstream")
NGINX = os.environ.get("CHATSTREAM_NGINX") or "/usr/sbin/nginx"
PSQL = os.environ.get("CHATSTREAM_PSQL") or "/usr/bin/psql"
# The fake OpenAI upstream (bench/fake-llm): $CHATSTREAM_FAKE_LLM or --fake-llm, else next to the
# binary, else <source>/build/fake-llm (the sanitizer build has no bench targets; it borrows build/'s).
FAKE_LLM = os.environ.get("CHATSTREAM_FAKE_LLM")

# Generous waits (process start-up, log flushes) scale with this; contract bounds do not.
SLOW = float(os.environ.get("CHATSTREAM_E2E_SLOW", "1"))

now = time.monotonic

SANITIZER_PATTERNS = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer)"
    r"|runtime error:|SUMMARY: UndefinedBehaviorSanitizer"
)


def main() -> None:
    """Entry point of every test file: `python3 test_x.py [--binary B] [--source-dir S] [unittest args]`."""
    global BINARY, SOURCE_DIR, FAKE_LLM
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--binary")
    ap.add_argument("--source-dir")
    ap.add_argument("--fake-llm")
    ap.add_argument("--list-classes", action="store_true")
    args, rest = ap.parse_known_args()
    if args.list_classes:
        # For tests/e2e/CMakeLists.txt: one ctest test per class, so ctest runs them in parallel.
        for name in test_classes(sys.modules["__main__"]):
            print(name)
        return
    if args.fake_llm:
        FAKE_LLM = os.path.abspath(args.fake_llm)
    if args.source_dir:
        SOURCE_DIR = os.path.abspath(args.source_dir)
        if not args.binary and not os.environ.get("CHATSTREAM_BIN"):
            BINARY = os.path.join(SOURCE_DIR, "build", "chatstream")
    if args.binary:
        BINARY = os.path.abspath(args.binary)
    raise_fd_limit()
    sys.stderr.write(f"e2e: binary {BINARY}{' (sanitizers)' if is_sanitizer_build() else ''}\n")
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2, testRunner=TimedTestRunner)


def test_classes(module) -> list[str]:
    """The names of the module's TestCase classes that hold at least one test, in file order."""
    loader = unittest.defaultTestLoader
    names = []
    for name, obj in vars(module).items():
        if (isinstance(obj, type) and issubclass(obj, unittest.TestCase) and obj.__module__ == module.__name__
                and loader.getTestCaseNames(obj)):
            names.append(name)
    return names


class _TimedResult(unittest.TextTestResult):
    """Prints each test's wall time next to its verdict and keeps them for the slowest-first list."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.timings: list[tuple[float, str]] = []
        self._started = 0.0

    def startTest(self, test):
        self._started = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        elapsed = time.monotonic() - self._started
        self.timings.append((elapsed, test.id()))
        self.stream.write(f"    ({elapsed:.2f} s)\n")
        super().stopTest(test)


class TimedTestRunner(unittest.TextTestRunner):
    """unittest's runner plus the five slowest tests of the file (where the suite's time goes)."""
    resultclass = _TimedResult

    def run(self, test):
        result = super().run(test)
        slowest = sorted(result.timings, reverse=True)[:5]
        if slowest:
            self.stream.write("slowest: " + ", ".join(f"{t.rsplit('.', 2)[-2]}.{t.rsplit('.', 1)[-1]} "
                                                      f"{s:.1f} s" for s, t in slowest) + "\n")
        return result


def raise_fd_limit(want: int = 16384) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else want
    target = max(soft, min(target, max(want, soft)))
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


_sanitizer_cache: dict[str, bool] = {}


def is_sanitizer_build(path: str | None = None) -> bool:
    path = path or BINARY
    if path not in _sanitizer_cache:
        try:
            with open(path, "rb") as f:
                _sanitizer_cache[path] = b"__asan_init" in f.read()
        except OSError:
            _sanitizer_cache[path] = False
    return _sanitizer_cache[path]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


Address = Any  # ("127.0.0.1", port) or "/path/to.sock"


def connect(addr: Address, timeout: float = 5.0, rcvbuf: int | None = None) -> socket.socket:
    """A connected socket; rcvbuf shrinks the receive buffer (set before connect, so the TCP window is
    small too) to make a slow reader felt by the server at once."""
    if isinstance(addr, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    try:
        s.connect(addr)
    except BaseException:
        s.close()
        raise
    return s


def expected_tokens(n: int) -> str:
    """The scripted provider's answer of n tokens: "t0 t1 … t{n-1} "."""
    return "".join(f"t{i} " for i in range(n))


def json_body(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def is_uuid(s: Any) -> bool:
    if not isinstance(s, str):
        return False
    try:
        uuid.UUID(s)
    except ValueError:
        return False
    return re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", s) is not None


# ---------------------------------------------------------------------------------------------------
# HTTP requests and responses
# ---------------------------------------------------------------------------------------------------

def build_request(method: str, path: str, body: Any = None, headers: dict | list | None = None,
                  host: str = "127.0.0.1", content_type: str | None = "application/json",
                  chunked: bool | list[int] = False, http_version: str = "HTTP/1.1") -> bytes:
    """Bytes of one request. body: bytes, str, or a JSON-able object. chunked=True sends the body as
    one chunk; a list of sizes splits it into chunks of those sizes (the rest in a last chunk)."""
    if body is not None and not isinstance(body, (bytes, bytearray)):
        body = body.encode("utf-8") if isinstance(body, str) else json_body(body)
    hdrs: list[tuple[str, str]] = [("Host", host)]
    if body is not None and content_type is not None:
        hdrs.append(("Content-Type", content_type))
    if body is not None:
        if chunked:
            hdrs.append(("Transfer-Encoding", "chunked"))
        else:
            hdrs.append(("Content-Length", str(len(body))))
    extra = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in extra}
    hdrs = [(k, v) for k, v in hdrs if k.lower() not in names] + extra
    head = f"{method} {path} {http_version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"
    out = head.encode("latin-1")
    if body is not None:
        out += encode_chunked(bytes(body), chunked if isinstance(chunked, list) else None) if chunked else bytes(body)
    return out


def encode_chunked(body: bytes, sizes: list[int] | None = None) -> bytes:
    parts, pos = [], 0
    for n in sizes or []:
        if pos >= len(body):
            break
        parts.append(body[pos:pos + n])
        pos += n
    if pos < len(body):
        parts.append(body[pos:])
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"


@dataclass
class Response:
    status: int = 0
    reason: str = ""
    version: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    informational: list[int] = field(default_factory=list)   # 1xx seen before this response
    chunked: bool = False
    body: bytearray = field(default_factory=bytearray)
    pieces: list[tuple[float, bytes]] = field(default_factory=list)  # decoded body, as it arrived
    complete: bool = False
    t_headers: float = 0.0
    t_complete: float = 0.0
    raw_head: bytes = b""

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def text(self) -> str:
        return bytes(self.body).decode("utf-8")

    def json(self) -> Any:
        return json.loads(bytes(self.body).decode("utf-8"))

    def __repr__(self) -> str:
        b = bytes(self.body)
        return (f"<Response {self.status} {self.reason!r} headers={self.headers} "
                f"body={b[:300]!r}{'…' if len(b) > 300 else ''}>")


class ProtocolError(AssertionError):
    """The peer broke HTTP or SSE framing (an AssertionError: the test fails, it does not error)."""


class ResponseParser:
    """Incremental parser of a sequence of HTTP/1.1 responses on one connection."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.state = "head"
        self.current: Response | None = None
        self.done: list[Response] = []
        self.remaining = 0
        self.no_body_next: list[bool] = []   # per expected response: HEAD request → no body
        self._informational: list[int] = []

    def expect(self, head_request: bool = False) -> None:
        self.no_body_next.append(head_request)

    def feed(self, data: bytes, t: float) -> None:
        self.buf += data
        while self._step(t):
            pass

    def eof(self, t: float) -> None:
        """The peer closed: completes a body delimited by the close."""
        if self.state == "until_close" and self.current is not None:
            self._finish(t)

    @property
    def in_progress(self) -> bool:
        return self.state != "head" or bool(self.buf)

    def _finish(self, t: float) -> None:
        assert self.current is not None
        self.current.complete = True
        self.current.t_complete = t
        self.done.append(self.current)
        self.current = None
        self.state = "head"

    def _piece(self, data: bytes, t: float) -> None:
        assert self.current is not None
        if data:
            self.current.body += data
            self.current.pieces.append((t, bytes(data)))

    def _step(self, t: float) -> bool:
        if self.state == "head":
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 1 << 20:
                    raise ProtocolError(f"no end of response head in 1 MiB: {bytes(self.buf[:200])!r}")
                return False
            head = bytes(self.buf[:end])
            del self.buf[:end + 4]
            lines = head.split(b"\r\n")
            m = re.fullmatch(rb"(HTTP/1\.[01]) (\d{3})(?: (.*))?", lines[0])
            if not m:
                raise ProtocolError(f"bad status line {lines[0]!r}")
            status = int(m.group(2))
            headers = []
            for line in lines[1:]:
                if b":" not in line or line[:1] in (b" ", b"\t"):
                    raise ProtocolError(f"bad header line {line!r}")
                k, v = line.split(b":", 1)
                headers.append((k.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
            if 100 <= status < 200:
                self._informational.append(status)
                return True
            r = Response(status=status, reason=(m.group(3) or b"").decode("latin-1"),
                         version=m.group(1).decode(), headers=headers,
                         informational=self._informational, t_headers=t, raw_head=head)
            self._informational = []
            self.current = r
            head_req = self.no_body_next.pop(0) if self.no_body_next else False
            te = (r.header("Transfer-Encoding") or "").lower()
            cl = r.header("Content-Length")
            if head_req or status in (204, 304):
                self._finish(t)
            elif "chunked" in te:
                r.chunked = True
                self.state = "chunk_size"
            elif cl is not None:
                if not cl.strip().isdigit():
                    raise ProtocolError(f"bad Content-Length {cl!r}")
                self.remaining = int(cl)
                self.state = "body_len"
                if self.remaining == 0:
                    self._finish(t)
            else:
                self.state = "until_close"
            return True
        if self.state == "body_len":
            if not self.buf:
                return False
            take = bytes(self.buf[:self.remaining])
            del self.buf[:len(take)]
            self._piece(take, t)
            self.remaining -= len(take)
            if self.remaining == 0:
                self._finish(t)
            return True
        if self.state == "until_close":
            if self.buf:
                self._piece(bytes(self.buf), t)
                self.buf.clear()
            return False
        if self.state == "chunk_size":
            end = self.buf.find(b"\r\n")
            if end < 0:
                if len(self.buf) > 4096:
                    raise ProtocolError(f"bad chunk size line {bytes(self.buf[:100])!r}")
                return False
            line = bytes(self.buf[:end]).split(b";", 1)[0].strip()
            del self.buf[:end + 2]
            if not re.fullmatch(rb"[0-9a-fA-F]+", line):
                raise ProtocolError(f"bad chunk size {line!r}")
            self.remaining = int(line, 16)
            self.state = "chunk_data" if self.remaining else "trailers"
            return True
        if self.state == "chunk_data":
            if not self.buf:
                return False
            take = bytes(self.buf[:self.remaining])
            del self.buf[:len(take)]
            self._piece(take, t)
            self.remaining -= len(take)
            if self.remaining == 0:
                self.state = "chunk_crlf"
            return True
        if self.state == "chunk_crlf":
            if len(self.buf) < 2:
                return False
            if self.buf[:2] != b"\r\n":
                raise ProtocolError(f"chunk not followed by CRLF: {bytes(self.buf[:20])!r}")
            del self.buf[:2]
            self.state = "chunk_size"
            return True
        if self.state == "trailers":
            end = self.buf.find(b"\r\n")
            if end < 0:
                return False
            line = bytes(self.buf[:end])
            del self.buf[:end + 2]
            if line == b"":
                self._finish(t)
            return True
        raise AssertionError(self.state)


class PeerClosed(ConnectionError):
    pass


class Conn:
    """One client connection (TCP or unix) with an incremental response parser."""

    def __init__(self, addr: Address, timeout: float = 5.0, rcvbuf: int | None = None):
        self.addr = addr
        self.sock = connect(addr, timeout, rcvbuf)
        self.parser = ResponseParser()
        self.closed_by_peer = False
        self.reset_by_peer = False
        self.extra_after_close = b""

    def send(self, data: bytes, expect: int = 0, head: bool = False) -> None:
        for _ in range(expect):
            self.parser.expect(head)
        self.sock.sendall(data)

    def request(self, method: str, path: str, body: Any = None, headers: dict | None = None,
                timeout: float = 10.0, **kw) -> Response:
        self.send(build_request(method, path, body, headers, **kw), expect=1, head=(method == "HEAD"))
        return self.read_response(timeout)

    def pump(self, timeout: float) -> bool:
        """Reads what arrives within timeout (returns at the first data). False if nothing came."""
        if self.closed_by_peer:
            return False
        self.sock.settimeout(max(timeout, 0.0001))
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            return False
        except ConnectionResetError:
            self.closed_by_peer = self.reset_by_peer = True
            self.parser.eof(now())
            return False
        t = now()
        if not data:
            self.closed_by_peer = True
            self.parser.eof(t)
            return False
        self.parser.feed(data, t)
        return True

    def read_head(self, timeout: float = 10.0) -> Response:
        """Waits until the next response's status line and headers are in; returns it (body may still come)."""
        deadline = now() + timeout
        while True:
            if self.parser.done:
                return self.parser.done[0]
            if self.parser.current is not None:
                return self.parser.current
            if self.closed_by_peer:
                raise PeerClosed(f"connection closed before a response head; got {bytes(self.parser.buf)!r}")
            left = deadline - now()
            if left <= 0:
                raise TimeoutError(f"no response head within {timeout}s; got {bytes(self.parser.buf)!r}")
            self.pump(left)

    def read_response(self, timeout: float = 10.0) -> Response:
        """The next complete response (removed from the queue)."""
        deadline = now() + timeout
        while not self.parser.done:
            if self.closed_by_peer:
                raise PeerClosed("connection closed before the response was complete; "
                                 f"partial: {self.parser.current!r} buffered: {bytes(self.parser.buf)[:300]!r}")
            left = deadline - now()
            if left <= 0:
                raise TimeoutError(f"response not complete within {timeout}s; partial: {self.parser.current!r}")
            self.pump(left)
        return self.parser.done.pop(0)

    def wait_closed(self, timeout: float) -> bool:
        """True if the peer closes (FIN or RST) within timeout; data that arrives meanwhile is parsed."""
        deadline = now() + timeout
        while not self.closed_by_peer:
            left = deadline - now()
            if left <= 0:
                return False
            self.pump(left)
        return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def request(addr: Address, method: str, path: str, body: Any = None, headers: dict | None = None,
            timeout: float = 10.0, **kw) -> Response:
    """One request on a fresh connection."""
    with Conn(addr, timeout) as c:
        return c.request(method, path, body, headers, timeout=timeout, **kw)


def raw_exchange(addr: Address, data: bytes, timeout: float = 3.0, close_write: bool = False) -> tuple[bytes, bool]:
    """Sends bytes as they are; returns (everything received, whether the peer closed within timeout)."""
    s = connect(addr, timeout)
    got = bytearray()
    closed = False
    try:
        s.sendall(data)
        if close_write:
            s.shutdown(socket.SHUT_WR)
        deadline = now() + timeout
        while True:
            left = deadline - now()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            got += chunk
    finally:
        s.close()
    return bytes(got), closed


def parse_responses(data: bytes) -> list[Response]:
    p = ResponseParser()
    p.feed(data, now())
    p.eof(now())
    return p.done


# ---------------------------------------------------------------------------------------------------
# Server-Sent Events
# ---------------------------------------------------------------------------------------------------

@dataclass
class Event:
    id: str | None
    event: str | None
    data: str
    lines: list[str]
    t: float
    retry: str | None = None

    _json: Any = None

    @property
    def json(self) -> Any:
        if self._json is None:
            try:
                self._json = json.loads(self.data)
            except ValueError as e:
                raise ProtocolError(f"data of event {self.event!r} is not JSON: {self.data!r} ({e})")
        return self._json

    @property
    def type(self) -> str | None:
        return self.event


@dataclass
class Comment:
    text: str
    t: float


@dataclass
class Retry:
    value: str
    t: float


class SSEParser:
    """Splits an event stream into Retry, Event and Comment items, each stamped with the arrival time
    of the bytes that completed it. Comments are items of their own (never part of an event)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.block: list[str] = []
        self.items: list[Event | Comment | Retry] = []
        self.crlf_seen = False

    def feed(self, data: bytes, t: float) -> None:
        self.buf += data
        while True:
            i = self.buf.find(b"\n")
            if i < 0:
                return
            raw = bytes(self.buf[:i])
            del self.buf[:i + 1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
                self.crlf_seen = True
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ProtocolError(f"event stream line is not UTF-8: {raw!r} ({e})")
            if line == "":
                self._dispatch(t)
            elif line.startswith(":"):
                self.items.append(Comment(line[1:].removeprefix(" "), t))
            else:
                self.block.append(line)

    def _dispatch(self, t: float) -> None:
        if not self.block:
            return
        fields: dict[str, list[str]] = {}
        for line in self.block:
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
        lines, self.block = self.block, []
        if set(fields) == {"retry"}:
            self.items.append(Retry(fields["retry"][-1], t))
            return
        self.items.append(Event(
            id=fields["id"][-1] if "id" in fields else None,
            event=fields["event"][-1] if "event" in fields else None,
            data="\n".join(fields.get("data", [])),
            lines=lines, t=t,
            retry=fields["retry"][-1] if "retry" in fields else None))

    @property
    def pending(self) -> bool:
        return bool(self.buf or self.block)


class Stream:
    """An open POST /chat/stream: the response head plus an incrementally parsed event stream."""

    def __init__(self, conn: Conn, response: Response, t_sent: float):
        self.conn = conn
        self.response = response
        self.t_sent = t_sent
        self.sse = SSEParser()
        self._fed = 0
        self._pos = 0

    @property
    def items(self) -> list:
        return self.sse.items

    @property
    def ended(self) -> bool:
        return self.response.complete

    def _drain_pieces(self) -> None:
        while self._fed < len(self.response.pieces):
            t, data = self.response.pieces[self._fed]
            self._fed += 1
            self.sse.feed(data, t)

    def next(self, timeout: float = 10.0):
        """The next item, or None once the body has ended and every item was returned."""
        deadline = now() + timeout
        while True:
            self._drain_pieces()
            if self._pos < len(self.sse.items):
                self._pos += 1
                return self.sse.items[self._pos - 1]
            if self.response.complete:
                return None
            if self.conn.closed_by_peer:
                raise PeerClosed(f"connection closed in the middle of the stream after {len(self.items)} items")
            left = deadline - now()
            if left <= 0:
                raise TimeoutError(f"no stream item within {timeout}s (have {len(self.items)} items)")
            self.conn.pump(left)

    def next_event(self, timeout: float = 10.0) -> Event | None:
        deadline = now() + timeout
        while True:
            item = self.next(max(deadline - now(), 0.0001))
            if item is None or isinstance(item, Event):
                return item

    def read_all(self, timeout: float = 30.0) -> list:
        """Reads until the chunked body ends; returns every item of the stream."""
        deadline = now() + timeout
        while self.next(max(deadline - now(), 0.0001)) is not None:
            pass
        if self.sse.pending:
            raise ProtocolError(f"stream body ended inside an event: {bytes(self.sse.buf)!r} {self.sse.block!r}")
        # The completed response was left in the parser's queue; drop it so the connection can be reused.
        if self.conn.parser.done and self.conn.parser.done[0] is self.response:
            self.conn.parser.done.pop(0)
        return self.items

    def events(self) -> list[Event]:
        return [i for i in self.items if isinstance(i, Event)]

    def close(self) -> None:
        self.conn.close()


def open_stream(addr: Address, message: str | None = "hello", body: Any = None, headers: dict | None = None,
                path: str = "/chat/stream", conn: Conn | None = None, timeout: float = 10.0,
                **kw) -> Stream:
    """Sends POST /chat/stream and waits for the response head. A non-200 answer is returned as a Stream
    whose .response holds it (check .response.status)."""
    if body is None:
        body = {"message": message}
    c = conn or Conn(addr, timeout)
    t0 = now()
    c.send(build_request("POST", path, body, headers, **kw), expect=1)
    r = c.read_head(timeout)
    return Stream(c, r, t0)


TERMINAL = ("done", "error", "cancelled")


@dataclass
class StreamSummary:
    run_id: str
    session_id: str
    meta: Event
    events: list[Event]
    types: list[str]
    text: str
    terminal: Event
    comments: list[Comment]
    tokens: list[Event]
    retry: Retry | None


def validate_stream(items: list, retry_ms: int | None = 3000, heartbeat_ms: int | None = None,
                    terminal: str | None = None) -> StreamSummary:
    """Asserts the invariants docs/protocol.md gives for every stream and returns a summary.

    retry first (when retry_ms is given); meta is the first event with run_id/session_id/heartbeat_ms;
    every event has exactly the three lines `id: <run_id>:<seq>`, `event: <type>`, `data: <json>` with
    seq 0, 1, 2, …; data is a JSON object whose "type" is the event type; exactly one terminal event
    (done/error/cancelled) and nothing after it; comments are `: ping`."""
    def fail(msg: str) -> None:
        raise AssertionError(f"{msg}\nstream items: {describe_items(items)}")

    retry = None
    pos = 0
    if retry_ms is not None:
        if not items or not isinstance(items[0], Retry):
            fail(f"the stream must start with `retry: {retry_ms}`")
        retry = items[0]
        if retry.value != str(retry_ms):
            fail(f"retry is {retry.value!r}, expected {retry_ms}")
        pos = 1
    events = [i for i in items[pos:] if isinstance(i, Event)]
    comments = [i for i in items if isinstance(i, Comment)]
    if any(isinstance(i, Retry) for i in items[pos:]):
        fail("a second retry field")
    if not events:
        fail("no events")
    for c in comments:
        if c.text != "ping":
            fail(f"unexpected comment {c.text!r} (heartbeats are `: ping`)")
    meta = events[0]
    if meta.event != "meta":
        fail(f"first event is {meta.event!r}, expected meta")
    mj = meta.json
    run_id, session_id = mj.get("run_id"), mj.get("session_id")
    if not isinstance(run_id, str) or not run_id:
        fail(f"meta.run_id missing or not a string: {mj}")
    if not isinstance(session_id, str) or not session_id:
        fail(f"meta.session_id missing or not a string: {mj}")
    if not isinstance(mj.get("heartbeat_ms"), int) or isinstance(mj.get("heartbeat_ms"), bool):
        fail(f"meta.heartbeat_ms missing or not an integer: {mj}")
    if heartbeat_ms is not None and mj["heartbeat_ms"] != heartbeat_ms:
        fail(f"meta.heartbeat_ms is {mj['heartbeat_ms']}, expected {heartbeat_ms}")
    for seq, ev in enumerate(events):
        if len(ev.lines) != 3 or not ev.lines[0].startswith("id: ") or not ev.lines[1].startswith("event: ") \
                or not ev.lines[2].startswith("data: "):
            fail(f"event {seq} is not exactly the lines `id: `, `event: `, `data: `: {ev.lines!r}")
        if ev.id != f"{run_id}:{seq}":
            fail(f"event {seq} ({ev.event}) has id {ev.id!r}, expected {run_id}:{seq}")
        j = ev.json
        if not isinstance(j, dict):
            fail(f"event {seq} data is not a JSON object: {ev.data!r}")
        if j.get("type") != ev.event:
            fail(f"event {seq}: data.type {j.get('type')!r} != event {ev.event!r}")
    types = [e.event for e in events]
    terms = [i for i, t in enumerate(types) if t in TERMINAL]
    if len(terms) != 1:
        fail(f"expected exactly one terminal event, got {[types[i] for i in terms]}")
    if terms[0] != len(events) - 1:
        fail(f"events after the terminal {types[terms[0]]}: {types[terms[0] + 1:]}")
    if items and items[-1] is not events[-1]:
        fail("items after the terminal event")
    term = events[-1]
    if terminal is not None and term.event != terminal:
        fail(f"stream ended with {term.event} {term.data}, expected {terminal}")
    tokens = [e for e in events if e.event == "token"]
    for e in tokens:
        if not isinstance(e.json.get("content"), str):
            fail(f"token without string content: {e.data}")
    text = "".join(e.json["content"] for e in tokens)
    return StreamSummary(run_id=run_id, session_id=session_id, meta=meta, events=events, types=types,
                         text=text, terminal=term, comments=comments, tokens=tokens, retry=retry)


def describe_items(items: list, limit: int = 40) -> str:
    out = []
    for i in items[:limit]:
        if isinstance(i, Event):
            out.append(f"{i.event}:{i.data[:80]}")
        elif isinstance(i, Comment):
            out.append(f":{i.text}")
        else:
            out.append(f"retry:{i.value}")
    more = f" … (+{len(items) - limit})" if len(items) > limit else ""
    return "[" + ", ".join(out) + more + "]"


# ---------------------------------------------------------------------------------------------------
# Many concurrent streams, one thread
# ---------------------------------------------------------------------------------------------------

@dataclass
class StreamResult:
    index: int
    response: Response | None = None
    items: list = field(default_factory=list)
    error: str | None = None
    t_start: float = 0.0
    t_connected: float = 0.0
    t_end: float = 0.0


def run_many_streams(addr: Address, n: int, body: Any, timeout: float = 60.0,
                     connect_batch: int = 200) -> list[StreamResult]:
    """Opens n streams at once from one thread (non-blocking sockets + selectors), reads every one to
    its end, and returns what each received. At most connect_batch connects are in flight at a time
    (the rest start as soon as one completes) so the listen backlog is not flooded."""
    req = build_request("POST", "/chat/stream", body)
    sel = selectors.DefaultSelector()
    results = [StreamResult(i) for i in range(n)]
    state: dict[int, dict] = {}
    pending = list(range(n))[::-1]
    connecting = 0
    deadline = now() + timeout
    open_count = 0

    def start_one() -> None:
        nonlocal connecting, open_count
        i = pending.pop()
        r = results[i]
        fam = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setblocking(False)
        r.t_start = now()
        err = s.connect_ex(addr)
        # (On a unix socket EAGAIN means the listen backlog is full: a failure, not "in progress".)
        if err not in (0, errno.EINPROGRESS):
            r.error = f"connect: {os.strerror(err)}"
            s.close()
            return
        connecting += 1
        open_count += 1
        st = {"sock": s, "phase": "connect", "parser": ResponseParser(), "sse": SSEParser(), "fed": 0, "out": req}
        st["parser"].expect()
        state[s.fileno()] = st
        st["i"] = i
        sel.register(s, selectors.EVENT_WRITE, st)

    def finish(st: dict, error: str | None = None) -> None:
        nonlocal open_count, connecting
        r = results[st["i"]]
        if st["phase"] == "connect":
            connecting -= 1
        st["phase"] = "closed"
        r.t_end = now()
        if error and not r.error:
            r.error = error
        try:
            sel.unregister(st["sock"])
        except (KeyError, ValueError):
            pass
        st["sock"].close()
        open_count -= 1

    while pending or open_count:
        while pending and connecting < connect_batch:
            start_one()
        left = deadline - now()
        if left <= 0:
            for st in list(state.values()):
                if st["phase"] != "closed":
                    finish(st, f"timeout after {timeout}s in phase {st['phase']} "
                               f"({len(st['sse'].items)} items)")
            break
        for key, mask in sel.select(timeout=min(left, 1.0)):
            st = key.data
            s = st["sock"]
            r = results[st["i"]]
            if st["phase"] == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    finish(st, f"connect: {os.strerror(err)}")
                    continue
                connecting -= 1
                st["phase"] = "send"
                r.t_connected = now()
            if st["phase"] == "send":
                try:
                    sent = s.send(st["out"])
                except BlockingIOError:
                    continue
                except OSError as e:
                    finish(st, f"send: {e}")
                    continue
                st["out"] = st["out"][sent:]
                if not st["out"]:
                    st["phase"] = "read"
                    sel.modify(s, selectors.EVENT_READ, st)
                continue
            if st["phase"] == "read":
                try:
                    while True:
                        data = s.recv(65536)
                        t = now()
                        if not data:
                            st["parser"].eof(t)
                            break
                        st["parser"].feed(data, t)
                        if len(data) < 65536:
                            break
                except BlockingIOError:
                    data = b"?"
                except OSError as e:
                    finish(st, f"recv: {e}")
                    continue
                p: ResponseParser = st["parser"]
                resp = p.done[0] if p.done else p.current
                if resp is not None:
                    r.response = resp
                    while st["fed"] < len(resp.pieces):
                        t, piece = resp.pieces[st["fed"]]
                        st["fed"] += 1
                        try:
                            st["sse"].feed(piece, t)
                        except ProtocolError as e:
                            finish(st, str(e))
                            break
                    r.items = st["sse"].items
                if st["phase"] == "closed":
                    continue
                if resp is not None and resp.complete:
                    finish(st)
                elif not data:
                    finish(st, "connection closed before the stream ended")
    sel.close()
    return results


# ---------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


class Metrics:
    def __init__(self, text: str):
        self.text = text
        self.samples: dict[tuple[str, tuple], float] = {}
        self.types: dict[str, str] = {}
        self.helps: dict[str, str] = {}
        for ln, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] == "TYPE":
                    self.types[parts[2]] = parts[3].strip() if len(parts) > 3 else ""
                elif len(parts) >= 3 and parts[1] == "HELP":
                    self.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
                continue
            m = _SAMPLE.match(line)
            if not m:
                raise AssertionError(f"metrics line {ln} is not Prometheus text format: {line!r}")
            labels = {}
            if m.group(3):
                rest = m.group(3)
                pos = 0
                while pos < len(rest):
                    lm = _LABEL.match(rest, pos)
                    if not lm:
                        raise AssertionError(f"metrics line {ln}: bad labels {rest!r}")
                    labels[lm.group(1)] = lm.group(2)
                    pos = lm.end()
            try:
                value = float(m.group(4))
            except ValueError:
                raise AssertionError(f"metrics line {ln}: bad value {m.group(4)!r}")
            self.samples[(m.group(1), tuple(sorted(labels.items())))] = value

    def get(self, name: str, **labels) -> float | None:
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def value(self, name: str, **labels) -> float:
        """The sample with exactly these labels; 0 when absent (a counter never incremented)."""
        v = self.get(name, **labels)
        return 0.0 if v is None else v

    def sum(self, name: str, **labels) -> float:
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= set(ls))

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.samples)

    def names(self) -> set[str]:
        return {n for n, _ in self.samples}


def parse_metrics(text: str) -> Metrics:
    return Metrics(text)


# ---------------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------------

def children_of(pid: int) -> list[int]:
    """Live (non-zombie) child processes of pid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode("latin-1")
        except OSError:
            continue
        rest = stat.rsplit(")", 1)[-1].split()
        if len(rest) >= 2 and int(rest[1]) == pid and rest[0] not in ("Z", "X"):
            out.append(int(name))
    return sorted(out)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().decode("latin-1").rsplit(")", 1)[-1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        return False


def rss_kib(pid: int) -> int:
    """VmRSS of a live process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.02, what: str = "condition"):
    """Polls pred until it returns a truthy value (returned) or raises AssertionError after timeout."""
    deadline = now() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except (OSError, AssertionError, ValueError, TimeoutError) as e:
            last_exc = e
        if now() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout}s"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


_live_groups: set[int] = set()


def _kill_all_at_exit() -> None:
    for pg in list(_live_groups):
        kill_group(pg)


atexit.register(_kill_all_at_exit)


def _flag_args(flags: dict) -> list[str]:
    args = []
    for k, v in flags.items():
        if v is None or v is False:
            continue
        name = "--" + k.replace("_", "-")
        args += [name] if v is True else [name, str(v)]
    return args


_DEFAULT_PROVIDER: Any = object()
_DATABASE_ENV = ("DATABASE_URL", "CHATSTREAM_DATABASE_URL", "PGHOST", "PGDATABASE", "PGSERVICE")


class Server:
    """`chatstream serve` in its own session, stderr (JSON logs) into a file in a temp dir."""

    def __init__(self, workers: int | None = 1, listen: str | None = None, env: dict | None = None,
                 args: Iterable[str] = (), provider: str | None = _DEFAULT_PROVIDER, binary: str | None = None,
                 **flags):
        # database_url may be a Postgres fixture. Without an explicit provider, a server with a
        # database gets the server's own default (extractive), one without gets `scripted`.
        if isinstance(flags.get("database_url"), Postgres):
            flags["database_url"] = flags["database_url"].url
        if provider is _DEFAULT_PROVIDER:
            provider = None if flags.get("database_url") else "scripted"
        self.database_url = flags.get("database_url")
        self.tmp = tempfile.mkdtemp(prefix="chatstream-e2e-")
        self.binary = binary or BINARY
        if listen == "unix":
            listen = "unix:" + os.path.join(self.tmp, "cs.sock")
        if listen is None:
            self.port = free_port()
            listen = f"127.0.0.1:{self.port}"
        self.listen = listen
        if listen.startswith("unix:"):
            self.addr: Address = listen[5:]
            self.port = None
        else:
            host, _, port = listen.rpartition(":")
            self.addr = (host, int(port))
            self.port = int(port)
        self.url = f"http://{listen}" if self.port else listen
        self.workers = workers
        self.argv = [self.binary, "serve", "--listen", listen]
        if workers is not None:
            self.argv += ["--workers", str(workers)]
        if provider:
            self.argv += ["--provider", provider]
        self.argv += _flag_args(flags) + list(args)
        # A database comes only from database_url= or env=: a DATABASE_URL (or PG*) in the caller's
        # environment must not turn the database-less tests into database tests.
        self.env = {k: v for k, v in os.environ.items() if k not in _DATABASE_ENV}
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1:abort_on_error=0")
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self.env.update(env or {})
        self.log_path = os.path.join(self.tmp, "chatstream.log")
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, wait: bool = True, timeout: float = 15.0) -> "Server":
        if not os.path.exists(self.binary):
            raise AssertionError(f"chatstream binary not found: {self.binary} (build it: make build)")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)
        _live_groups.add(self.proc.pid)
        if wait:
            self.wait_ready(timeout * SLOW)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = now() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"chatstream exited with status {self.proc.returncode} at start-up:\n"
                                     f"argv: {self.argv}\n{self.log_tail()}")
            try:
                r = request(self.addr, "GET", "/healthz", timeout=1.0)
                if r.status == 200 and (not self.workers or len(self.worker_pids()) >= self.workers):
                    return
            except (OSError, TimeoutError, AssertionError):
                pass
            if now() > deadline:
                raise AssertionError(f"chatstream not ready within {timeout}s: argv {self.argv}\n{self.log_tail()}")
            time.sleep(0.02)

    def worker_pids(self) -> list[int]:
        return children_of(self.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int | None:
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL the whole process group. Returns the master's exit status
        (None if it had to be killed)."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            rc = self.wait(timeout * SLOW)
        else:
            self.returncode = rc
        kill_group(self.proc.pid)  # stray workers, whatever happened
        if rc is None:
            self.proc.wait()
        _live_groups.discard(self.proc.pid)
        if not self._log.closed:
            self._log.close()
        return rc

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 30) -> str:
        lines = self.log_text().splitlines()
        return "\n".join(f"  | {line}" for line in lines[-n:]) or "  | (empty log)"

    def sanitizer_report(self) -> str | None:
        text = self.log_text()
        m = SANITIZER_PATTERNS.search(text)
        if not m:
            return None
        start = text.rfind("\n", 0, max(0, m.start() - 200)) + 1
        return text[start:start + 4000]

    # Convenience
    def request(self, method: str, path: str, body: Any = None, headers: dict | None = None, **kw) -> Response:
        return request(self.addr, method, path, body, headers, **kw)

    def healthz(self) -> dict:
        r = self.request("GET", "/healthz")
        return r.json()

    def conn_to(self, worker: int | None = None, avoid: int | None = None, tries: int = 400) -> tuple["Conn", int]:
        """A keep-alive connection accepted by worker pid `worker` (or by any worker but `avoid`), found
        by opening fresh connections and asking /healthz which worker took each (the kernel spreads
        them). Returns (conn, pid); the caller closes it. AssertionError after `tries` connections."""
        for _ in range(tries):
            c = Conn(self.addr)
            pid = c.request("GET", "/healthz").json()["pid"]
            if (worker is None or pid == worker) and (avoid is None or pid != avoid):
                return c, pid
            c.close()
        raise AssertionError(f"no connection reached worker {worker} (avoid {avoid}) of {self.worker_pids()} "
                             f"in {tries} tries")

    def metrics(self) -> Metrics:
        r = self.request("GET", "/metrics")
        if r.status != 200:
            raise AssertionError(f"GET /metrics answered {r!r}")
        return parse_metrics(r.text())

    def stream(self, message: str = "hello", **kw) -> Stream:
        return open_stream(self.addr, message, **kw)


def start_server(**kw) -> Server:
    return Server(**kw).start()


class Nginx:
    """nginx with the config rendered by scripts/render-nginx.sh, in the foreground, in its own session."""

    def __init__(self, upstream: str, web_root: str | None = None, loopback_exempt: bool = True):
        self.tmp = tempfile.mkdtemp(prefix="chatstream-nginx-")
        self.dir = os.path.join(self.tmp, "nginx")
        self.port = free_port()
        self.addr = ("127.0.0.1", self.port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.upstream = upstream
        self.web_root = web_root or os.path.join(SOURCE_DIR, "web")
        self.loopback_exempt = loopback_exempt
        self.proc: subprocess.Popen | None = None

    def render(self) -> str:
        cmd = ["bash", os.path.join(SOURCE_DIR, "scripts", "render-nginx.sh"), "--out", self.dir,
               "--port", str(self.port), "--web-root", self.web_root, "--upstream", self.upstream, "--check"]
        if not self.loopback_exempt:
            cmd.append("--no-loopback-exempt")
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise AssertionError(f"render-nginx.sh failed ({p.returncode}): {p.stderr}{p.stdout}")
        return p.stdout.strip()

    def start(self, timeout: float = 10.0) -> "Nginx":
        if not os.path.exists(NGINX):
            raise AssertionError(f"nginx not found at {NGINX} (scripts/deps.sh installs it)")
        conf = self.render()
        self.error_log = os.path.join(self.dir, "error.log")
        self._out = open(os.path.join(self.tmp, "nginx.out"), "wb")
        self.proc = subprocess.Popen([NGINX, "-p", self.dir + "/", "-c", conf, "-e", self.error_log],
                                     stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        _live_groups.add(self.proc.pid)
        deadline = now() + timeout * SLOW
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                connect(self.addr, 0.5).close()
                return self
            except OSError:
                pass
            if now() > deadline:
                raise AssertionError(f"nginx not listening on {self.port} within {timeout}s\n{self.log_tail()}")
            time.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        kill_group(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.wait()
        _live_groups.discard(self.proc.pid)
        self._out.close()

    def log_tail(self, n: int = 30) -> str:
        out = []
        for p in (getattr(self, "error_log", None), os.path.join(self.tmp, "nginx.out")):
            if p and os.path.exists(p):
                with open(p, "rb") as f:
                    out += f.read().decode("utf-8", "replace").splitlines()[-n:]
        return "\n".join(f"  | {line}" for line in out) or "  | (empty)"

    def request(self, method: str, path: str, body: Any = None, headers: dict | None = None, **kw) -> Response:
        return request(self.addr, method, path, body, headers, **kw)

    def stream(self, message: str = "hello", **kw) -> Stream:
        return open_stream(self.addr, message, **kw)


def start_nginx(upstream: str, **kw) -> Nginx:
    return Nginx(upstream, **kw).start()


# ---------------------------------------------------------------------------------------------------
# The fake OpenAI upstream
# ---------------------------------------------------------------------------------------------------

def fake_llm_binary() -> str:
    if FAKE_LLM:
        return FAKE_LLM
    candidates = [os.path.join(os.path.dirname(BINARY), "fake-llm"), os.path.join(SOURCE_DIR, "build", "fake-llm")]
    for path in candidates:
        if os.path.exists(path):
            return path
    raise AssertionError(f"fake-llm not found in {candidates} (build it: cmake --build build --target fake-llm)")


class FakeLLM:
    """bench/fake-llm on a free loopback port (--listen 127.0.0.1:0; the port is read from its
    "listening on" line), in its own session. Flags as keywords: FakeLLM(tokens=5, rate=0,
    fault="500", fail_times=2, split_sse_lines=True). base_url is what --llm-base-url takes."""

    def __init__(self, binary: str | None = None, args: Iterable[str] = (), **flags):
        self.binary = binary or fake_llm_binary()
        self.tmp = tempfile.mkdtemp(prefix="chatstream-fake-llm-")
        self.log_path = os.path.join(self.tmp, "fake-llm.log")
        self.argv = [self.binary, "--listen", "127.0.0.1:0"] + _flag_args(flags) + list(args)
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.addr: Address = None
        self.base_url = ""

    def start(self, timeout: float = 10.0) -> "FakeLLM":
        if not os.path.exists(self.binary):
            raise AssertionError(f"fake-llm not found: {self.binary}")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        _live_groups.add(self.proc.pid)
        deadline = now() + timeout * SLOW
        while True:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.log_text())
            if m:
                self.port = int(m.group(1))
                self.addr = ("127.0.0.1", self.port)
                self.base_url = f"http://127.0.0.1:{self.port}/v1"
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"fake-llm exited with {self.proc.returncode} at start: {self.argv}\n{self.log_text()}")
            if now() > deadline:
                raise AssertionError(f"fake-llm did not say where it listens within {timeout}s\n{self.log_text()}")
            time.sleep(0.01)

    def stats(self) -> dict:
        r = request(self.addr, "GET", "/v1/stats")
        if r.status != 200:
            raise AssertionError(f"fake-llm GET /stats answered {r!r}")
        return r.json()

    def reset(self) -> None:
        r = request(self.addr, "POST", "/v1/reset")
        if r.status != 200:
            raise AssertionError(f"fake-llm POST /reset answered {r!r}")

    def wait_stat(self, name: str, at_least: int, timeout: float) -> dict:
        """Polls /stats until stats[name] >= at_least; returns the stats (AssertionError after timeout)."""
        last: dict = {}

        def check():
            last.update(self.stats())
            return last[name] >= at_least and last
        try:
            return wait_until(check, timeout, interval=0.02, what=f"fake-llm {name} >= {at_least}")
        except AssertionError as e:
            raise AssertionError(f"{e}; stats: { {k: v for k, v in last.items() if k != 'last_request_body'} }")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        kill_group(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.wait()
        _live_groups.discard(self.proc.pid)
        if not self._log.closed:
            self._log.close()

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


def start_fake_llm(**kw) -> FakeLLM:
    return FakeLLM(**kw).start()


# ---------------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------------

# Stops a cluster when the test process dies however it dies (even SIGKILL from a ctest timeout,
# which atexit never sees): a detached process that waits for EOF on a pipe only we hold open, then
# stops the cluster and removes its directory. "stopped\n" on the pipe means "done already, just go".
_PG_GUARD = r"""
import os, shutil, subprocess, sys
if os.fork() > 0:
    os._exit(0)
os.setsid()
line = sys.stdin.readline()
if line != "stopped\n":
    subprocess.run(["bash", sys.argv[1], "stop", sys.argv[2]], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    shutil.rmtree(sys.argv[2], ignore_errors=True)
"""


class Postgres:
    """A private PostgreSQL 15 cluster made by scripts/pg.sh: data, socket and log in a temp dir,
    listening on 127.0.0.1:<free port>, database `chatstream`, trust auth. fast=True sets PG_FAST=1
    (no fsync: throwaway test data). stop()/start() stop and restart the same cluster (an outage);
    close() stops it and removes the directory. Always stopped at the end: E2ETestCase cleanups,
    atexit, and a guard process for a test process that is killed."""

    def __init__(self, fast: bool = True, port: int | None = None, binary: str | None = None):
        self.dir = tempfile.mkdtemp(prefix="chatstream-pg-")
        self.port = port or free_port()
        self.fast = fast
        self.binary = binary or BINARY
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/chatstream?sslmode=disable"
        self.pg_sh = os.path.join(SOURCE_DIR, "scripts", "pg.sh")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.running = False
        self._guard: subprocess.Popen | None = None
        self._sessions: list["PsqlSession"] = []
        self._wire: dict[str, "PgWire"] = {}  # psql(): one connection per database URL

    def _pg_sh(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env.pop("PG_FAST", None)
        if self.fast:
            env["PG_FAST"] = "1"
        return subprocess.run(["bash", self.pg_sh, *args], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=timeout * SLOW)

    def start(self) -> "Postgres":
        for tool in (PSQL, "/usr/lib/postgresql/15/bin/pg_ctl"):
            if not os.path.exists(tool):
                raise AssertionError(f"{tool} not found (scripts/deps.sh installs PostgreSQL 15)")
        p = self._pg_sh("start", self.dir, str(self.port))
        if p.returncode != 0:
            raise AssertionError(f"scripts/pg.sh start {self.dir} {self.port} failed ({p.returncode}):\n"
                                 f"{p.stderr}{p.stdout}\n{self.log_tail()}")
        url = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        if url != self.url:
            raise AssertionError(f"scripts/pg.sh printed {url!r}, expected {self.url!r}")
        self.running = True
        _live_clusters.add(self)
        if self._guard is None:
            self._guard = subprocess.Popen([sys.executable, "-c", _PG_GUARD, self.pg_sh, self.dir],
                                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL, text=True)
            self._guard.wait()  # the forked guard lives on, holding the pipe's read end
        return self

    def stop(self) -> None:
        """Fast shutdown (pg_ctl -m fast): every client connection is closed."""
        for session in list(self._sessions):
            session.close()
        self.close_connections()
        p = self._pg_sh("stop", self.dir)
        if p.returncode != 0:
            raise AssertionError(f"scripts/pg.sh stop failed ({p.returncode}): {p.stderr}{p.stdout}")
        self.running = False

    def close(self) -> None:
        """Stops the cluster (if running) and removes its directory."""
        self.close_connections()
        try:
            if self.running:
                self.stop()
        finally:
            _live_clusters.discard(self)
            if self._guard is not None and self._guard.stdin and not self._guard.stdin.closed:
                try:
                    self._guard.stdin.write("stopped\n")
                    self._guard.stdin.close()
                except OSError:
                    pass
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()[-n:]
        except OSError:
            lines = []
        return "\n".join(f"  | {line}" for line in lines) or "  | (no postgres.log)"

    # --- databases ------------------------------------------------------------------------------

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def create_database(self, name: str, migrate: bool = True) -> str:
        """A fresh database in this cluster (optionally migrated); returns its URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"database name {name!r}")
        self.psql(f"CREATE DATABASE {name}", url=self.url_for("postgres"))
        url = self.url_for(name)
        if migrate:
            self.migrate(url)
        return url

    def chatstream(self, *args: str, url: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Runs `chatstream ARGS --database-url URL` (migrate, ingest) and returns what it did."""
        env = {k: v for k, v in os.environ.items() if k not in _DATABASE_ENV}
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        return subprocess.run([self.binary, *args, "--database-url", url or self.url], capture_output=True,
                              text=True, env=env, stdin=subprocess.DEVNULL, timeout=timeout * SLOW)

    def migrate(self, url: str | None = None) -> str:
        p = self.chatstream("migrate", url=url)
        if p.returncode != 0 or SANITIZER_PATTERNS.search(p.stderr):
            raise AssertionError(f"chatstream migrate failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        return p.stdout

    def ingest(self, *paths: str, url: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        p = self.chatstream("ingest", *paths, url=url)
        if SANITIZER_PATTERNS.search(p.stderr):
            raise AssertionError(f"sanitizer report from chatstream ingest:\n{p.stderr}")
        if check and p.returncode != 0:
            raise AssertionError(f"chatstream ingest {paths} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        return p

    # --- SQL ------------------------------------------------------------------------------------

    def psql(self, sql: str, url: str | None = None, timeout: float = 30.0) -> str:
        """Runs sql (one or more statements) and returns what `psql -qtAX` would print: the rows of
        every statement that returns some, one per line, columns joined with "|", NULL as "".
        Through one kept connection per database (PgWire), not a psql process per statement: the
        tests poll the database in loops, and a process plus a backend per query cost the suite
        ~40 s of CPU per pass."""
        key = url or self.url
        conn = self._wire.get(key)
        if conn is not None and not conn.usable():
            conn.close()
            conn = None
        try:
            if conn is None:
                conn = PgWire(key, timeout * SLOW)
                self._wire[key] = conn
            rows = conn.query(sql, timeout * SLOW)
        except PgError as e:
            raise AssertionError(f"SQL failed on {sql!r}: {e}") from None
        except (OSError, ConnectionError) as e:
            if conn is not None:
                conn.close()
            self._wire.pop(key, None)
            raise AssertionError(f"SQL failed on {sql!r}: the connection: {e!r}") from None
        return "".join("|".join("" if v is None else v for v in row) + "\n" for row in rows)

    def close_connections(self) -> None:
        for conn in self._wire.values():
            conn.close()
        self._wire.clear()

    def rows(self, sql: str, url: str | None = None) -> list[dict]:
        """The rows of a SELECT as dicts (through json_agg, so text comes back byte-exact, newlines
        and quotes included; jsonb columns come back parsed)."""
        out = self.psql(f"SELECT coalesce(json_agg(q), '[]'::json) FROM ({sql}) q", url)
        return json.loads(out)

    def scalar(self, sql: str, url: str | None = None) -> Any:
        """The single value of a one-row, one-column SELECT (None when there is no row)."""
        rows = self.rows(sql, url)
        if not rows:
            return None
        if len(rows) != 1 or len(rows[0]) != 1:
            raise AssertionError(f"expected one value from {sql!r}, got {rows!r}")
        return next(iter(rows[0].values()))

    def session(self, url: str | None = None) -> "PsqlSession":
        """An open psql session (e.g. to hold a lock); closed by stop() and close()."""
        s = PsqlSession(url or self.url, self)
        self._sessions.append(s)
        return s


class PgError(Exception):
    """An ErrorResponse of the server: SQLSTATE and message."""


class PgWire:
    """A minimal client of PostgreSQL's frontend/backend protocol 3.0 (standard library only): trust
    authentication over TCP, the simple query protocol, every value as text. Enough for the tests'
    own queries; chatstream itself talks to PostgreSQL through libpq."""

    def __init__(self, url: str, timeout: float = 30.0):
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 5432), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        params = {"user": urllib.parse.unquote(u.username or "postgres"),
                  "database": (u.path or "/").lstrip("/") or "postgres",
                  "client_encoding": "UTF8", "application_name": "chatstream-e2e"}
        body = struct.pack("!I", 196608) + b"".join(k.encode() + b"\0" + v.encode() + b"\0"
                                                    for k, v in params.items()) + b"\0"
        try:
            self.sock.sendall(struct.pack("!I", len(body) + 4) + body)
            while True:
                kind, payload = self._message()
                if kind == b"R":
                    if struct.unpack("!I", payload[:4])[0] != 0:
                        raise PgError("the test cluster asked for a password (it trusts 127.0.0.1)")
                elif kind == b"E":
                    raise PgError(self._error_text(payload))
                elif kind == b"Z":
                    return
        except BaseException:
            self.sock.close()
            raise

    def usable(self) -> bool:
        """False when the server closed the connection or said something while it was idle (a
        FATAL before closing it: the cluster was stopped, restarted or killed)."""
        try:
            readable, _, _ = select_module.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def query(self, sql: str, timeout: float) -> list[list[str | None]]:
        """Runs sql (simple query: may hold several statements) and returns the rows of all of them."""
        self.sock.settimeout(timeout)
        data = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!I", len(data) + 4) + data)
        rows: list[list[str | None]] = []
        error = None
        while True:
            kind, payload = self._message()
            if kind == b"D":
                n, = struct.unpack("!H", payload[:2])
                pos, row = 2, []
                for _ in range(n):
                    size, = struct.unpack("!i", payload[pos:pos + 4])
                    pos += 4
                    if size < 0:
                        row.append(None)
                    else:
                        row.append(bytes(payload[pos:pos + size]).decode("utf-8"))
                        pos += size
                rows.append(row)
            elif kind == b"E":
                error = self._error_text(payload)
            elif kind == b"Z":
                if error is not None:
                    raise PgError(error)
                return rows
            # T (row description), C (command complete), N (notice), S, I, A: nothing to keep

    def close(self) -> None:
        try:
            self.sock.sendall(b"X\0\0\0\4")
        except OSError:
            pass
        self.sock.close()

    def _recv_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _message(self) -> tuple[bytes, bytes]:
        head = self._recv_exact(5)
        size, = struct.unpack("!I", head[1:])
        return head[:1], self._recv_exact(size - 4)

    @staticmethod
    def _error_text(payload: bytes) -> str:
        fields = {}
        for part in payload.split(b"\0"):
            if part:
                fields[part[:1]] = part[1:].decode("utf-8", "replace")
        return f"{fields.get(b'S', 'ERROR')} {fields.get(b'C', '')}: {fields.get(b'M', '')}".strip()


class PsqlSession:
    """One psql process kept open: statements are written to its stdin, run() waits for their end."""

    def __init__(self, url: str, owner: Postgres | None = None):
        self.owner = owner
        self.proc = subprocess.Popen([PSQL, url, "-qtAX", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self._seq = 0
        self.output = b""

    def run(self, sql: str, timeout: float = 10.0) -> str:
        """Sends sql, then a marker SELECT; returns what psql printed before the marker."""
        self._seq += 1
        marker = f"__chatstream_marker_{self._seq}__"
        self.proc.stdin.write(f"{sql.rstrip().rstrip(';')};\nSELECT '{marker}';\n".encode())
        self.proc.stdin.flush()
        deadline = now() + timeout * SLOW
        fd = self.proc.stdout.fileno()
        while marker.encode() not in self.output:
            left = deadline - now()
            if left <= 0:
                raise AssertionError(f"psql session: no answer to {sql!r} within {timeout}s: {self.output[-500:]!r}")
            r, _, _ = select_module.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"psql session ended: {self.output[-500:]!r}")
                self.output += chunk
        head, _, self.output = self.output.partition(marker.encode() + b"\n")
        return head.decode("utf-8", "replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"ROLLBACK;\n\\q\n")
                self.proc.stdin.close()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                kill_group(self.proc.pid)
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        if self.owner is not None and self in self.owner._sessions:
            self.owner._sessions.remove(self)


_live_clusters: set[Postgres] = set()


def _stop_clusters_at_exit() -> None:
    for pg in list(_live_clusters):
        try:
            pg.close()
        except Exception:  # exit path: best effort, the guard process is the backstop
            pass


atexit.register(_stop_clusters_at_exit)


def start_postgres(**kw) -> Postgres:
    return Postgres(**kw).start()


# ---------------------------------------------------------------------------------------------------
# unittest glue
# ---------------------------------------------------------------------------------------------------

def _test_failed(case: unittest.TestCase) -> bool:
    outcome = getattr(case, "_outcome", None)
    return outcome is not None and not getattr(outcome, "success", True)


class E2ETestCase(unittest.TestCase):
    """Base class: servers and nginx started through it are always stopped (process groups killed);
    a sanitizer report in a server's log fails the test; logs are printed when a test fails."""

    maxDiff = 4000

    def _stop_server(self, server: Server) -> None:
        server.stop()
        failed = _test_failed(self)
        if failed:
            sys.stderr.write(f"\n--- chatstream log ({' '.join(server.argv[1:])[:300]}), full log in "
                             f"{server.log_path}:\n{server.log_tail()}\n")
        report = server.sanitizer_report()
        if report:
            raise AssertionError(f"sanitizer report in the chatstream log ({server.log_path}):\n{report}")
        if not failed:
            shutil.rmtree(server.tmp, ignore_errors=True)

    def _stop_nginx(self, ng: Nginx) -> None:
        ng.stop()
        if _test_failed(self):
            sys.stderr.write(f"\n--- nginx log ({ng.dir}):\n{ng.log_tail()}\n")
        else:
            shutil.rmtree(ng.tmp, ignore_errors=True)

    def start_server(self, **kw) -> Server:
        s = Server(**kw)
        self.addCleanup(self._stop_server, s)
        return s.start()

    def start_nginx(self, upstream: str, **kw) -> Nginx:
        ng = Nginx(upstream, **kw)
        self.addCleanup(self._stop_nginx, ng)
        return ng.start()

    def _stop_fake_llm(self, fake: FakeLLM) -> None:
        fake.stop()
        if _test_failed(self):
            sys.stderr.write(f"\n--- fake-llm log ({' '.join(fake.argv[1:])[:300]}):\n{fake.log_text()[-3000:]}\n")
        else:
            shutil.rmtree(fake.tmp, ignore_errors=True)

    def start_fake_llm(self, **kw) -> FakeLLM:
        """A fake OpenAI upstream for this test, stopped at its end (after the servers started later)."""
        fake = FakeLLM(**kw)
        self.addCleanup(self._stop_fake_llm, fake)
        return fake.start()

    @classmethod
    def start_class_fake_llm(cls, **kw) -> FakeLLM:
        fake = FakeLLM(**kw)

        def stop() -> None:
            fake.stop()
            shutil.rmtree(fake.tmp, ignore_errors=True)
        cls.addClassCleanup(stop)
        return fake.start()

    def _stop_postgres(self, pg: Postgres) -> None:
        if _test_failed(self):
            sys.stderr.write(f"\n--- postgres log ({pg.log_path}):\n{pg.log_tail()}\n")
        pg.close()

    def start_postgres(self, **kw) -> Postgres:
        """A private cluster for this test, stopped and removed at its end (after the servers the
        test started later: cleanups run last-in, first-out)."""
        pg = Postgres(**kw)
        self.addCleanup(self._stop_postgres, pg)
        return pg.start()

    @classmethod
    def start_class_postgres(cls, **kw) -> Postgres:
        pg = Postgres(**kw)
        cls.addClassCleanup(pg.close)
        return pg.start()

    @classmethod
    def start_class_server(cls, **kw) -> Server:
        s = Server(**kw)

        def stop() -> None:
            rc = s.stop()
            report = s.sanitizer_report()
            if report:
                raise AssertionError(f"sanitizer report in the chatstream log ({s.log_path}):\n{report}")
            if rc is None:
                sys.stderr.write(f"\nchatstream did not exit on SIGTERM; log in {s.log_path}:\n{s.log_tail()}\n")
            else:
                shutil.rmtree(s.tmp, ignore_errors=True)

        cls.addClassCleanup(stop)
        return s.start()

    # --- assertions ------------------------------------------------------------------------------

    def assertJsonError(self, r: Response, status: int, code: str, msg: str = "") -> dict:
        """The contract's error shape: {"error": {"status": S, "code": C, "message": "…"}}, JSON."""
        ctx = f"{msg}\nresponse: {r!r}"
        self.assertEqual(r.status, status, f"status{ctx}")
        ctype = (r.header("Content-Type") or "").lower()
        self.assertTrue(ctype.split(";")[0].strip() == "application/json", f"Content-Type {ctype!r}{ctx}")
        try:
            j = r.json()
        except ValueError as e:
            self.fail(f"error body is not JSON ({e}){ctx}")
        self.assertIsInstance(j, dict, ctx)
        self.assertEqual(set(j), {"error"}, f"top-level keys{ctx}")
        e = j["error"]
        self.assertIsInstance(e, dict, ctx)
        self.assertEqual(set(e) - {"details"}, {"status", "code", "message"}, f"error keys{ctx}")
        self.assertEqual(e["status"], status, f"error.status{ctx}")
        self.assertNotIsInstance(e["status"], bool)
        self.assertEqual(e["code"], code, f"error.code{ctx}")
        self.assertIsInstance(e["message"], str, ctx)
        self.assertTrue(e["message"].strip(), f"empty error.message{ctx}")
        return e

    def assertBetween(self, value: float, low: float, high: float, what: str = "") -> None:
        self.assertTrue(low <= value <= high, f"{what}: {value:.3f} not in [{low}, {high}]")
