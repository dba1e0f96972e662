#!/usr/bin/python3
"""End-to-end load: 1,000 concurrent streams (20 tokens at 10/s each, ~2 s) complete with every token in
order, directly and through nginx. One client thread (selectors) holds all of them."""

import os
import resource
import signal
import sys
import threading

import harness
from harness import E2ETestCase, expected_tokens, validate_stream, wait_until

N = int(os.environ.get("CHATSTREAM_E2E_LOAD_STREAMS", "1000"))
TOKENS = 20


def peak_concurrency(results):
    """Most streams open at one instant (between their meta and their terminal event)."""
    marks = []
    for r in results:
        evs = [i for i in r.items if isinstance(i, harness.Event)]
        if len(evs) >= 2:
            marks.append((evs[0].t, 1))
            marks.append((evs[-1].t, -1))
    marks.sort(key=lambda m: (m[0], m[1]))
    peak = cur = 0
    for _, d in marks:
        cur += d
        peak = max(peak, cur)
    return peak


class Load(E2ETestCase):
    def setUp(self):
        limit = harness.raise_fd_limit(4 * N + 1024)
        if limit < 2 * N + 256:
            self.fail(f"RLIMIT_NOFILE is {limit}; {N} streams need about {2 * N + 256} (ulimit -n)")

    def check(self, results, server):
        errors = [(r.index, r.error, r.response and r.response.status) for r in results
                  if r.error or not r.response or r.response.status != 200]
        self.assertEqual(errors[:10], [], f"{len(errors)} of {N} streams failed")
        expected = expected_tokens(TOKENS)
        bad = []
        run_ids = set()
        for r in results:
            try:
                sm = validate_stream(r.items, terminal="done")
                if sm.text != expected:
                    raise AssertionError(f"text {sm.text!r}")
                if sm.terminal.json.get("tokens") != TOKENS:
                    raise AssertionError(f"done {sm.terminal.data}")
                run_ids.add(sm.run_id)
            except AssertionError as e:
                bad.append((r.index, str(e)[:300]))
        self.assertEqual(bad[:5], [], f"{len(bad)} of {N} streams broke the contract")
        self.assertEqual(len(run_ids), N, "every stream has its own run id")
        peak = peak_concurrency(results)
        self.assertGreaterEqual(peak, int(N * 0.9), f"streams were concurrent (peak {peak} of {N})")
        m = wait_until(lambda: (lambda m: m.value("chatstream_active_streams") == 0 and m)(server.metrics()), 5,
                       what="active_streams back to 0")
        self.assertGreaterEqual(m.value("chatstream_runs_total", status="complete"), N)
        self.assertGreaterEqual(m.value("chatstream_tokens_sent_total"), N * TOKENS)
        self.assertEqual(m.value("chatstream_slow_consumer_closes_total"), 0)
        self.assertEqual(m.value("chatstream_connections_rejected_total"), 0)
        durations = sorted(r.t_end - r.t_start for r in results)
        p50, p99 = durations[len(durations) // 2], durations[int(len(durations) * 0.99) - 1]
        print(f"\n  {N} streams: peak concurrency {peak}, duration p50 {p50:.2f}s p99 {p99:.2f}s,"
              f" max {durations[-1]:.2f}s", flush=True)
        # 20 tokens at 10/s take 1.9 s; the connect ramp and two cores add a little
        self.assertLess(p50, 6.0 * harness.SLOW)

    def test_direct(self):
        srv = self.start_server(workers=2, scripted_tokens=TOKENS, scripted_rate=10)
        results = harness.run_many_streams(srv.addr, N, {"message": "load"}, timeout=90)
        self.check(results, srv)

    def test_through_nginx(self):
        srv = self.start_server(workers=2, listen="unix", scripted_tokens=TOKENS, scripted_rate=10)
        ng = self.start_nginx("unix:" + srv.addr, web_root=harness.HERE)
        results = harness.run_many_streams(ng.addr, N, {"message": "load"}, timeout=90)
        self.check(results, srv)


    def test_through_nginx_reloaded_mid_answer(self):
        """A deploy of nginx's config (`nginx -s reload`) under 1,000 streams loses none: the old
        nginx workers finish the streams they carry while new ones take new connections."""
        srv = self.start_server(workers=2, listen="unix", scripted_tokens=TOKENS, scripted_rate=10)
        ng = self.start_nginx("unix:" + srv.addr, web_root=harness.HERE)
        reloaded = threading.Event()
        old_workers = set()

        def reload_when_streams_run():
            try:
                wait_until(lambda: srv.metrics().value("chatstream_active_streams") >= N // 2, 30,
                           what="half of the streams running")
                old_workers.update(harness.children_of(ng.proc.pid))
                os.kill(ng.proc.pid, signal.SIGHUP)
                reloaded.set()
            except AssertionError:
                pass

        reloader = threading.Thread(target=reload_when_streams_run, daemon=True)
        reloader.start()
        results = harness.run_many_streams(ng.addr, N, {"message": "load"}, timeout=90)
        reloader.join(5)
        self.assertTrue(reloaded.is_set(), "nginx was reloaded while the streams ran")
        self.check(results, srv)
        new_workers = set(harness.children_of(ng.proc.pid)) - old_workers
        self.assertTrue(old_workers and new_workers, "nginx really reloaded: new workers replaced the old ones")


if __name__ == "__main__":
    print(f"RLIMIT_NOFILE {resource.getrlimit(resource.RLIMIT_NOFILE)}", file=sys.stderr)
    harness.main()
