#!/usr/bin/python3
"""Lateness probe of the `relay` benchmark (bench/run.sh): how late token i of a stream arrives
compared with the fake upstream's schedule, read through chatstream and, at the same moment,
directly from bench/fake-llm.

fake-llm sends token i of an answer at start + i/R (absolute deadlines, no drift), so for every
probe stream lateness(i) = arrival(i) - i/R - min_j(arrival(j) - j/R): how much later than the
stream's best-placed token it came. Read directly from the fake it is the fake's own jitter plus the
kernel and this probe; read through chatstream it also holds what chatstream adds (its loop delay,
parsing, framing, the extra socket hop). The difference of the two percentiles, taken during the
same load, is the estimate of chatstream's added delay beyond its constant part; `first_token_ms`
(request → first token) shows the constant part (upstream connection and request included).

Standard library only; one thread, non-blocking sockets. Prints one JSON object.

  relay_probe.py --relay 127.0.0.1:19000 --fake 127.0.0.1:19100 --streams 20 --rate 20 --seconds 15
"""

import argparse
import json
import re
import selectors
import socket
import sys
import time

TOKEN = re.compile(rb"t(\d+) ")


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


class Probe:
    def __init__(self, kind, addr, request):
        self.kind = kind
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect(addr)  # loopback: immediate
        self.sock.setblocking(False)
        self.t_sent = time.monotonic()
        self.sock.sendall(request)
        self.buf = b""
        self.arrivals = []  # (token index, arrival time)
        self.order_errors = 0
        self.next_index = 0
        self.closed = False

    def on_readable(self):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        t = time.monotonic()
        if not data:
            self.closed = True
            return
        # Token text is what matters: "t<i> " inside a content field, whatever the framing (chunked
        # HTTP, SSE, OpenAI or chatstream JSON). Keep the tail of an incomplete line for the next read.
        self.buf += data
        cut = self.buf.rfind(b"\n")
        if cut < 0:
            return
        lines, self.buf = self.buf[:cut], self.buf[cut + 1:]
        for line in lines.split(b"\n"):
            if b'"content"' not in line:
                continue
            for m in TOKEN.finditer(line):
                i = int(m.group(1))
                if i != self.next_index:
                    self.order_errors += 1
                self.next_index = i + 1
                self.arrivals.append((i, t))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def http_post(host, path, body):
    body = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def summarize(probes, rate):
    lateness, first = [], []
    tokens = order_errors = 0
    for p in probes:
        order_errors += p.order_errors
        if not p.arrivals:
            continue
        tokens += len(p.arrivals)
        first.append((p.arrivals[0][1] - p.t_sent) * 1000)
        base = min(t - i / rate for i, t in p.arrivals)
        lateness += [(t - i / rate - base) * 1000 for i, t in p.arrivals]

    def stats(values):
        if not values:
            return None
        return {"p50": round(percentile(values, 50), 3), "p90": round(percentile(values, 90), 3),
                "p99": round(percentile(values, 99), 3), "max": round(max(values), 3), "count": len(values)}
    return {"streams": len(probes), "streams_with_tokens": sum(1 for p in probes if p.arrivals), "tokens": tokens,
            "order_errors": order_errors, "lateness_ms": stats(lateness), "first_token_ms": stats(first)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--relay", required=True, help="HOST:PORT of chatstream (or nginx in front of it)")
    ap.add_argument("--fake", help="HOST:PORT of fake-llm, read directly for comparison")
    ap.add_argument("--streams", type=int, default=20, help="probe streams per path (default 20)")
    ap.add_argument("--rate", type=float, default=20, help="fake-llm's --rate (default 20)")
    ap.add_argument("--seconds", type=float, default=15, help="how long to read each stream (default 15)")
    ap.add_argument("--spread", type=float, default=1.0, help="start the streams over this many seconds")
    args = ap.parse_args()

    def addr(text):
        host, _, port = text.rpartition(":")
        return host, int(port)

    relay = addr(args.relay)
    fake = addr(args.fake) if args.fake else None
    relay_req = http_post(args.relay, "/chat/stream", {"message": "relay probe"})
    fake_req = http_post(args.fake or "", "/v1/chat/completions",
                         {"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "relay probe"}]})
    sel = selectors.DefaultSelector()
    probes = {"relay": [], "direct": []}
    plan = []
    for k in range(args.streams):
        at = args.spread * k / max(1, args.streams)
        plan.append((at, "relay"))
        if fake:
            plan.append((at, "direct"))
    t0 = time.monotonic()
    end = t0 + args.spread + args.seconds
    while time.monotonic() < end:
        now = time.monotonic()
        while plan and now - t0 >= plan[0][0]:
            _, kind = plan.pop(0)
            p = Probe(kind, relay if kind == "relay" else fake, relay_req if kind == "relay" else fake_req)
            probes[kind].append(p)
            sel.register(p.sock, selectors.EVENT_READ, p)
        wait = min(0.05, end - now, (t0 + plan[0][0] - now) if plan else 0.05)
        for key, _ in sel.select(timeout=max(wait, 0)):
            p = key.data
            p.on_readable()
            if p.closed:
                sel.unregister(p.sock)
        # a probe reads for `seconds` from its own start
        for kind in probes:
            for p in probes[kind]:
                if not p.closed and time.monotonic() - p.t_sent > args.seconds:
                    p.closed = True
                    sel.unregister(p.sock)
                    p.close()
    for kind in probes:
        for p in probes[kind]:
            p.close()
    out = {"rate": args.rate, "seconds": args.seconds, "relay": summarize(probes["relay"], args.rate)}
    if fake:
        out["direct"] = summarize(probes["direct"], args.rate)
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
