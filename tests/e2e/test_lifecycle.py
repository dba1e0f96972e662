#!/usr/bin/python3
"""End-to-end: the life of runs and processes — disconnects, cancellation, timeouts, worker restarts,
graceful drain on SIGTERM, the command line and the logs."""

import json
import os
import signal
import subprocess
import time
import uuid

import harness
from harness import Conn, E2ETestCase, expected_tokens, now, validate_stream, wait_until


class Disconnect(E2ETestCase):
    def test_disconnect_cancels_run_after_the_grace(self):
        # Without a resume within --disconnect-grace the run is cancelled (docs/protocol.md).
        srv = self.start_server(workers=1, scripted_tokens=1000, scripted_rate=10, disconnect_grace="300ms")
        before = srv.metrics()
        s = srv.stream("hello")
        self.assertEqual(s.response.status, 200)
        while True:
            ev = s.next_event(5)
            if ev.event == "token":
                break
        m = srv.metrics()
        self.assertEqual(m.value("chatstream_active_streams"), 1, "the stream is counted while it runs")
        t0 = now()
        s.close()

        def settled():
            m = srv.metrics()
            return (m.value("chatstream_runs_total", status="disconnected")
                    - before.value("chatstream_runs_total", status="disconnected") == 1
                    and m.value("chatstream_active_streams") == 0) and m
        self.assertEqual(srv.metrics().value("chatstream_active_streams"), 1, "the run waits for a resume")
        m = wait_until(settled, 1.5, what="runs_total{status=disconnected} +1 and active_streams 0")
        self.assertGreater(now() - t0, 0.25, "the run waited the grace")
        self.assertLess(now() - t0, 1.5)
        self.assertGreaterEqual(m.value("chatstream_disconnect_grace_expired_total"), 1)
        self.assertEqual(m.value("chatstream_runs_total", status="complete"),
                         before.value("chatstream_runs_total", status="complete"))
        # the provider stopped: no tokens keep being counted for the dead run
        tokens = m.value("chatstream_tokens_sent_total")
        time.sleep(0.5)
        self.assertEqual(srv.metrics().value("chatstream_tokens_sent_total"), tokens,
                         "tokens are still produced after the client left")
        self.assertEqual(srv.healthz().get("active_streams"), 0)

    def test_disconnect_before_first_token_without_grace(self):
        # --disconnect-grace 0: a client that leaves cancels its run at once.
        srv = self.start_server(workers=1, scripted_first_token_delay="2s", scripted_tokens=5, disconnect_grace="0")
        s = srv.stream("hello")
        self.assertEqual(s.next_event(5).event, "meta")
        s.close()
        wait_until(lambda: srv.metrics().value("chatstream_runs_total", status="disconnected") == 1, 1.0,
                   what="disconnected run counted")
        self.assertEqual(srv.metrics().value("chatstream_active_streams"), 0)


class Cancel(E2ETestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_class_server(workers=1, scripted_tokens=1000, scripted_rate=20)

    def test_cancel_running_stream(self):
        srv = self.server
        before = srv.metrics()
        s = srv.stream("hello")
        meta = s.next_event(5)
        self.assertEqual(meta.event, "meta")
        run_id = meta.json["run_id"]
        while s.next_event(5).event != "token":
            pass
        r = srv.request("POST", "/chat/cancel", {"run_id": run_id})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"run_id": run_id, "cancelled": True})
        t0 = now()
        sm = validate_stream(s.read_all(5), terminal="cancelled")
        self.assertLess(now() - t0, 1.0, "the stream ends promptly after the cancel")
        c = sm.terminal.json
        self.assertEqual(c.get("reason"), "cancel_request", c)
        self.assertIsInstance(c.get("tokens"), int, c)
        self.assertGreaterEqual(c["tokens"], len(sm.tokens))
        self.assertTrue(expected_tokens(1000).startswith(sm.text), "tokens before the cancel are in order")
        self.assertFalse(s.conn.closed_by_peer, "the connection stays open after cancelled")
        # the run is finished: cancelling it again is 404
        r2 = srv.request("POST", "/chat/cancel", {"run_id": run_id})
        self.assertJsonError(r2, 404, "not_found")
        s.close()
        m = srv.metrics()
        self.assertEqual(m.value("chatstream_runs_total", status="cancelled")
                         - before.value("chatstream_runs_total", status="cancelled"), 1)
        self.assertEqual(m.value("chatstream_active_streams"), 0)

    def test_cancel_unknown_run_404(self):
        r = self.server.request("POST", "/chat/cancel", {"run_id": str(uuid.uuid4())})
        self.assertJsonError(r, 404, "not_found")

    def test_cancel_bad_run_id_400(self):
        for body in ({"run_id": "not a run id!"}, {"run_id": ""}, {"run_id": 42}, {"run_id": None}, {},
                     b'{"run_id":'):
            with self.subTest(body=body):
                r = self.server.request("POST", "/chat/cancel", body)
                self.assertJsonError(r, 400, "bad_request")

    def test_post_chat_client_leaving_is_a_disconnect(self):
        # POST /chat announces its run_id only in the answer; a client that leaves before the answer
        # cancels the run like a stream's client does.
        srv = self.server
        before = srv.metrics().value("chatstream_runs_total", status="disconnected")
        c = Conn(srv.addr)
        c.send(harness.build_request("POST", "/chat", {"message": "hello"}), expect=1)
        time.sleep(0.3)
        self.assertFalse(c.parser.done, "a 1000-token run at 20/s cannot have answered yet")
        c.close()
        wait_until(lambda: srv.metrics().value("chatstream_runs_total", status="disconnected") == before + 1,
                   1.0, what="a /chat whose client left is counted as disconnected")


class Backpressure(E2ETestCase):
    def test_slow_reader_gets_merged_tokens_without_loss(self):
        n = 20000
        srv = self.start_server(workers=1, scripted_tokens=n, scripted_rate=0, output_high_water=2048,
                                output_hard_cap=1 << 20, slow_consumer_grace="30s", run_timeout="60s")
        c = Conn(srv.addr, rcvbuf=4096)
        self.addCleanup(c.close)
        s = harness.open_stream(srv.addr, "hello", conn=c)
        deadline = now() + 30
        while not s.ended and now() < deadline:
            time.sleep(0.005)            # a client reading ~4 KB per 5 ms
            c.pump(0.05)
        sm = validate_stream(s.read_all(30), terminal="done")
        self.assertEqual(sm.text, expected_tokens(n), "merged in order and without loss")
        self.assertEqual(sm.terminal.json.get("tokens"), n)
        self.assertLess(len(sm.tokens), n, "a reader behind the high-water mark gets merged token events")
        c.close()

    def test_reader_that_stops_is_dropped_as_slow_consumer(self):
        srv = self.start_server(workers=1, scripted_tokens=2_000_000, scripted_rate=0, output_high_water=4096,
                                output_hard_cap=16384, slow_consumer_grace="500ms", run_timeout="60s")
        c = Conn(srv.addr, rcvbuf=4096)
        self.addCleanup(c.close)
        c.send(harness.build_request("POST", "/chat/stream", {"message": "hello"}), expect=1)
        self.assertEqual(c.read_head(5).status, 200)
        # Stop reading. The server must give up on us: once the kernel's socket buffers are full
        # (the server caps its send buffer with --send-buffer, 256 KiB by default) and the output
        # queue passes the hard cap, the grace time runs — the run does not go on forever.
        wait_until(lambda: srv.metrics().value("chatstream_slow_consumer_closes_total") >= 1, 4.0,
                   what="chatstream_slow_consumer_closes_total incremented")
        # Reading now yields what was buffered, then the end of the connection (no `done`).
        closed = c.wait_closed(20)
        self.assertTrue(closed, "the slow consumer's connection is closed")
        p = harness.SSEParser()
        r = c.parser.done[0] if c.parser.done else c.parser.current
        p.feed(bytes(r.body), now())
        types = [i.event for i in p.items if isinstance(i, harness.Event)]
        self.assertNotIn("done", types)
        terminal = [i for i in p.items if isinstance(i, harness.Event) and i.event in harness.TERMINAL]
        if terminal:  # best effort, per the contract
            self.assertEqual(terminal[-1].event, "error")
            self.assertEqual(terminal[-1].json.get("code"), "slow_consumer")
        m = wait_until(lambda: (lambda m: m.value("chatstream_active_streams") == 0 and m)(srv.metrics()), 2,
                       what="active_streams back to 0")
        self.assertEqual(m.value("chatstream_slow_consumer_closes_total"), 1)
        self.assertGreaterEqual(m.value("chatstream_run_errors_total", code="slow_consumer")
                                + m.value("chatstream_runs_total", status="disconnected"), 1)


class Timeouts(E2ETestCase):
    def test_run_timeout(self):
        srv = self.start_server(workers=1, run_timeout="1s", scripted_tokens=100, scripted_rate=5)
        s = srv.stream("hello")
        sm = validate_stream(s.read_all(5), terminal="error")
        e = sm.terminal.json
        self.assertEqual(e.get("code"), "timeout", e)
        self.assertEqual(e.get("tokens"), len(sm.tokens), e)
        self.assertTrue(expected_tokens(100).startswith(sm.text))
        self.assertBetween(sm.terminal.t - s.t_sent, 0.9, 1.6, "error at --run-timeout 1s")
        self.assertIsInstance(e.get("message"), str)
        s.close()
        m = srv.metrics()
        self.assertEqual(m.value("chatstream_runs_total", status="timeout"), 1)
        self.assertEqual(m.value("chatstream_run_errors_total", code="timeout"), 1)

    def test_run_timeout_post_chat_504(self):
        srv = self.start_server(workers=1, run_timeout="500ms", scripted_tokens=100, scripted_rate=5)
        t0 = now()
        r = srv.request("POST", "/chat", {"message": "hello"})
        self.assertJsonError(r, 504, "timeout")
        self.assertBetween(now() - t0, 0.4, 1.3, "answer at --run-timeout")

    def test_token_timeout_before_first_token(self):
        srv = self.start_server(workers=1, token_timeout="300ms", scripted_first_token_delay="2s",
                                scripted_tokens=5)
        s = srv.stream("hello")
        sm = validate_stream(s.read_all(5), terminal="error")
        self.assertEqual(sm.terminal.json.get("code"), "timeout", sm.terminal.data)
        self.assertEqual(sm.tokens, [])
        self.assertEqual(sm.terminal.json.get("tokens"), 0)
        self.assertBetween(sm.terminal.t - s.t_sent, 0.25, 0.8, "error at --token-timeout 300ms")
        s.close()

    def test_token_timeout_between_tokens(self):
        srv = self.start_server(workers=1, token_timeout="300ms", scripted_rate=1, scripted_tokens=5)
        s = srv.stream("hello")
        sm = validate_stream(s.read_all(5), terminal="error")
        self.assertEqual(sm.terminal.json.get("code"), "timeout", sm.terminal.data)
        self.assertEqual(sm.text, expected_tokens(1), "the first token comes at once, the second never in time")
        self.assertBetween(sm.terminal.t - sm.tokens[0].t, 0.25, 0.8, "error 300 ms after the last token")
        s.close()

    def test_token_timeout_not_hit_by_steady_tokens(self):
        srv = self.start_server(workers=1, token_timeout="300ms", scripted_rate=10, scripted_tokens=8)
        s = srv.stream("hello")
        sm = validate_stream(s.read_all(5), terminal="done")
        self.assertEqual(sm.text, expected_tokens(8))
        s.close()


class Workers(E2ETestCase):
    def test_killed_worker_is_replaced(self):
        srv = self.start_server(workers=2)
        pids = srv.worker_pids()
        self.assertEqual(len(pids), 2, f"two worker processes: {pids}")
        victim = pids[0]
        os.kill(victim, signal.SIGKILL)
        new = wait_until(lambda: (lambda p: len(p) == 2 and victim not in p and p)(srv.worker_pids()), 5,
                         what="a replacement worker")
        self.assertIn(pids[1], new, "the other worker is untouched")
        for _ in range(10):
            r = srv.request("GET", "/healthz")
            self.assertEqual(r.status, 200, r)
            self.assertIn(r.json().get("pid"), new)
        s = srv.stream("after restart")
        validate_stream(s.read_all(), terminal="done")
        s.close()
        m = srv.metrics()
        self.assertGreaterEqual(m.value("chatstream_worker_restarts_total"), 1)
        self.assertEqual(m.value("chatstream_workers"), 2)
        self.assertTrue(srv.alive())

    def test_worker_count_and_indexes(self):
        srv = self.start_server(workers=2)
        seen = {}
        for _ in range(40):
            j = srv.healthz()
            seen[j["pid"]] = j["worker"]
            if len(seen) == 2:
                break
        self.assertTrue(set(seen) <= set(srv.worker_pids()), seen)
        self.assertEqual(len(set(seen.values())), len(seen), f"distinct worker indexes: {seen}")
        self.assertTrue(set(seen.values()) <= {0, 1}, seen)


class Drain(E2ETestCase):
    def test_sigterm_lets_running_stream_finish(self):
        srv = self.start_server(workers=1, scripted_rate=20, scripted_tokens=40, drain_timeout="5s")
        idle = Conn(srv.addr)
        self.assertEqual(idle.request("GET", "/healthz").status, 200)
        s = srv.stream("hello")
        for _ in range(5):
            s.next_event(5)
        t_term = now()
        srv.signal(signal.SIGTERM)
        time.sleep(0.2)
        # new connections are refused (or reset / answered 503): never served normally, never hang
        outcome = try_new_request(srv.addr)
        self.assertIn(outcome[0], ("refused", "reset", "closed", "503"), f"new request during drain: {outcome}")
        # an idle keep-alive connection is closed or told the server is draining
        try:
            r = idle.request("GET", "/healthz", timeout=2)
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json().get("status"), "draining", r)
        except (ConnectionError, harness.PeerClosed):
            pass
        finally:
            idle.close()
        sm = validate_stream(s.read_all(5), terminal="done")
        self.assertEqual(sm.text, expected_tokens(40), "the running stream completes during the drain")
        t_done = sm.terminal.t
        self.assertLess(t_done - t_term, 3.0)
        s.close()
        rc = srv.wait(5)
        self.assertIsNotNone(rc, "the master exits after the drain")
        self.assertEqual(rc, 0, f"master exit status\n{srv.log_tail()}")
        self.assertLess(now() - t_done, 2.0, "the master exits soon after the last stream ends")
        self.assertEqual(harness.children_of(srv.pid), [])

    def test_drain_timeout_ends_stream_with_shutdown(self):
        srv = self.start_server(workers=1, scripted_rate=10, scripted_tokens=1000, drain_timeout="500ms")
        s = srv.stream("hello")
        while s.next_event(5).event != "token":
            pass
        t_term = now()
        srv.signal(signal.SIGTERM)
        sm = validate_stream(s.read_all(5), terminal="error")
        e = sm.terminal.json
        self.assertEqual(e.get("code"), "shutdown", e)
        self.assertEqual(e.get("tokens"), len(sm.tokens), e)
        self.assertBetween(sm.terminal.t - t_term, 0.4, 1.5, "error shutdown at --drain-timeout")
        s.close()
        rc = srv.wait(5)
        self.assertEqual(rc, 0, f"master exit status\n{srv.log_tail()}")

    def test_idle_server_exits_promptly(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(signal=sig.name):
                srv = self.start_server(workers=2)
                workers = srv.worker_pids()
                t0 = now()
                srv.signal(sig)
                rc = srv.wait(5)
                self.assertEqual(rc, 0, f"exit status after {sig.name}\n{srv.log_tail()}")
                self.assertLess(now() - t0, 2.0)
                for w in workers:
                    self.assertFalse(harness.pid_alive(w), f"worker {w} still alive after the master exited")

    def test_healthz_draining_on_open_connection(self):
        # A stream keeps the worker draining; a keep-alive connection opened before sees 503 draining.
        srv = self.start_server(workers=1, scripted_rate=10, scripted_tokens=30, drain_timeout="5s")
        c = Conn(srv.addr)
        self.assertEqual(c.request("GET", "/healthz").status, 200)
        s = srv.stream("hello")
        s.next_event(5)
        srv.signal(signal.SIGTERM)
        time.sleep(0.2)
        try:
            r = c.request("GET", "/healthz", timeout=2)
        except (ConnectionError, harness.PeerClosed):
            r = None
        if r is not None:
            self.assertEqual(r.status, 503, r)
            j = r.json()
            self.assertEqual(j.get("status"), "draining", j)
            self.assertIs(j.get("draining"), True, j)
        c.close()
        s.close()
        self.assertEqual(srv.wait(5), 0)


def try_new_request(addr):
    """('refused'|'reset'|'closed'|'503'|'served'|'hang', detail) for a new request."""
    try:
        c = Conn(addr, timeout=1)
    except ConnectionRefusedError:
        return ("refused", "")
    except OSError as e:
        return ("refused", repr(e))
    try:
        c.send(harness.build_request("GET", "/healthz"), expect=1)
        r = c.read_response(1.5)
        return ("503" if r.status == 503 else "served", repr(r))
    except ConnectionResetError as e:
        return ("reset", repr(e))
    except harness.PeerClosed as e:
        return ("reset" if c.reset_by_peer else "closed", repr(e))
    except TimeoutError as e:
        return ("hang", repr(e))
    finally:
        c.close()


class CommandLine(E2ETestCase):
    def run_cli(self, args, env=None, timeout=5):
        """Runs the binary; a command that is still running after timeout (it accepted what it should
        have rejected and started serving) is killed with its workers and fails the test."""
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen([harness.BINARY] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=e, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            out, err = p.communicate(timeout=timeout * harness.SLOW)
        except subprocess.TimeoutExpired:
            harness.kill_group(p.pid)
            out, err = p.communicate()
            self.fail(f"{args} still running after {timeout}s (accepted?); stderr: {err[-2000:]}")
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def test_help(self):
        p = self.run_cli(["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout + p.stderr
        for flag in ("serve", "--listen", "--workers", "--heartbeat", "--run-timeout", "--drain-timeout",
                     "--max-connections", "--scripted-tokens"):
            self.assertIn(flag, out, f"--help mentions {flag}")

    def test_bad_values_exit_nonzero_with_message(self):
        port = str(harness.free_port())
        cases = [
            ["--workers", "abc"], ["--workers", "-1"], ["--heartbeat", "soon"], ["--run-timeout", "5x"],
            ["--max-body", "big"], ["--listen", "nowhere"], ["--no-such-flag", "1"], ["--scripted-rate", "-5"],
            ["--provider", "nonexistent"],
        ]
        for extra in cases:
            with self.subTest(args=extra):
                base = ["serve"]
                if extra[0] != "--listen":
                    base += ["--listen", f"127.0.0.1:{port}"]
                if extra[0] != "--provider":
                    base += ["--provider", "scripted"]
                p = self.run_cli(base + extra)
                self.assertNotEqual(p.returncode, 0, f"{extra} must be rejected; stderr: {p.stderr}")
                self.assertTrue(p.stderr.strip(), f"{extra}: a message on stderr")
                name = extra[0].lstrip("-")
                self.assertTrue(name in p.stderr or extra[1] in p.stderr,
                                f"the message names the flag or value: {p.stderr!r}")

    def test_bad_env_value_rejected(self):
        p = self.run_cli(["serve", "--listen", f"127.0.0.1:{harness.free_port()}", "--provider", "scripted"],
                         env={"CHATSTREAM_RUN_TIMEOUT": "bogus"})
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stderr.strip())

    def test_duration_formats(self):
        for value, ms in (("1.5", 1500), ("500ms", 500), ("2s", 2000)):
            with self.subTest(heartbeat=value):
                srv = self.start_server(workers=1, heartbeat=value, scripted_tokens=1)
                s = srv.stream("hi")
                validate_stream(s.read_all(), heartbeat_ms=ms, terminal="done")
                s.close()
                srv.stop()

    def test_flags_from_environment(self):
        srv = self.start_server(workers=1, env={"CHATSTREAM_HEARTBEAT": "300ms", "CHATSTREAM_SCRIPTED_TOKENS": "4",
                                                "CHATSTREAM_RETRY_MS": "2500"})
        s = srv.stream("hi")
        sm = validate_stream(s.read_all(), retry_ms=2500, heartbeat_ms=300, terminal="done")
        self.assertEqual(sm.text, expected_tokens(4))
        s.close()

    def test_flag_overrides_environment(self):
        srv = self.start_server(workers=1, scripted_tokens=2, env={"CHATSTREAM_SCRIPTED_TOKENS": "7"})
        s = srv.stream("hi")
        sm = validate_stream(s.read_all(), terminal="done")
        self.assertEqual(sm.text, expected_tokens(2), "a command-line flag wins over the environment")
        s.close()

    def test_unix_socket_listen(self):
        srv = self.start_server(workers=2, listen="unix", scripted_tokens=3)
        self.assertTrue(os.path.exists(srv.addr))
        s = srv.stream("over a unix socket")
        sm = validate_stream(s.read_all(), terminal="done")
        self.assertEqual(sm.text, expected_tokens(3))
        s.close()

    def test_logs_are_json_lines(self):
        srv = self.start_server(workers=1, scripted_tokens=3)
        s = srv.stream("hello")
        validate_stream(s.read_all(), terminal="done")
        s.close()
        self.assertEqual(srv.stop(), 0)
        lines = [ln for ln in srv.log_text().splitlines() if ln.strip()]
        self.assertTrue(lines, "chatstream logs something (start-up, shutdown)")
        bad = []
        for ln in lines:
            try:
                if not isinstance(json.loads(ln), dict):
                    bad.append(ln)
            except ValueError:
                bad.append(ln)
        self.assertEqual(bad, [], "every stderr line is a JSON object")


if __name__ == "__main__":
    harness.main()
