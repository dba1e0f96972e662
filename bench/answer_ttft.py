#!/usr/bin/env python3
"""Time to first token of the embedded answerer on the whole PostgreSQL manual, many questions in flight.

Loads the manual into a private PostgreSQL cluster (or uses --database-url where it is loaded), starts
`chatstream serve` (extractive provider, the default worker count), and keeps --in-flight streams
running: each client thread asks the questions of tests/quality/questions.json in turn through
`POST /chat/stream` and measures the time from writing the request to the first `token` event —
retrieval (full-text search), reranking, sentence choice and the first write all lie inside it — then
closes the stream (which cancels the run) and asks the next. Prints p50/p90/p99/max over --requests.

    python3 bench/answer_ttft.py [--binary build/chatstream] [--in-flight 50] [--requests 1500]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness  # noqa: E402


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "chatstream"))
    ap.add_argument("--manual", default="/usr/share/doc/postgresql-doc-15/html")
    ap.add_argument("--database-url")
    ap.add_argument("--in-flight", type=int, default=50)
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--workers", type=int, default=None, help="server workers (default: one per core)")
    args = ap.parse_args()
    harness.SOURCE_DIR = ROOT
    harness.BINARY = os.path.abspath(args.binary)
    with open(os.path.join(ROOT, "tests", "quality", "questions.json")) as f:
        questions = [q["q"] for q in json.load(f)["questions"]]

    pg = server = None
    try:
        url = args.database_url
        if not url:
            pg = harness.start_postgres()
            pg.migrate()
            pg.ingest(args.manual)
            url = pg.url
        server = harness.Server(workers=args.workers, database_url=url).start()
        # Warm-up: every question once (the cluster's caches, the workers' connections).
        for q in questions:
            s = harness.open_stream(server.addr, q, timeout=30)
            while (e := s.next_event(30)) is not None and e.type not in ("token", *harness.TERMINAL):
                pass
            s.close()

        lock = threading.Lock()
        ttfts: list[float] = []
        errors: list[str] = []
        counter = iter(range(args.requests))

        def client(offset: int) -> None:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                q = questions[(i + offset) % len(questions)]
                try:
                    s = harness.open_stream(server.addr, q, timeout=30)
                    while True:
                        e = s.next_event(30)
                        if e is None or e.type in harness.TERMINAL:
                            raise AssertionError(f"no token for {q!r}: {e and e.type} {e and e.data}")
                        if e.type == "token":
                            break
                    elapsed = (e.t - s.t_sent) * 1000.0
                    s.close()
                    with lock:
                        ttfts.append(elapsed)
                except Exception as exc:  # reported below; one failure must not hide the figures
                    with lock:
                        errors.append(f"{q}: {exc}")

        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.in_flight)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
    finally:
        if server is not None:
            server.stop()
        if pg is not None:
            pg.close()

    ttfts.sort()
    print(f"answer_ttft: {len(ttfts)} answers, {args.in_flight} in flight, {wall:.1f} s, "
          f"{len(errors)} errors")
    print(f"time to first token (ms): p50 {percentile(ttfts, 0.5):.1f}  p90 {percentile(ttfts, 0.9):.1f}  "
          f"p99 {percentile(ttfts, 0.99):.1f}  max {ttfts[-1] if ttfts else float('nan'):.1f}")
    for e in errors[:5]:
        print("  error:", e)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
