#!/usr/bin/python3
"""End-to-end: the `openai` provider over TLS and HTTP/2, as hosted models speak it.

nginx with TLS and `http2` (scripts/tls-upstream.sh: a CA and a certificate made with openssl for this
test) stands in front of bench/fake-llm; chatstream trusts that CA through --llm-ca-file (or
LLM_CA_FILE) and nothing else. nginx's access log names each request's connection and client port,
so the test sees how streams map to HTTP/2 connections.

- relay over TLS + HTTP/2, with the CA from the flag or from the environment;
- many streams share few connections (HTTP/2 multiplexing), and a connection outlives its streams;
- an untrusted certificate ends the run at once with a clear error (no retries, a hint in the log);
  a missing or non-PEM --llm-ca-file stops the server at start with a message;
- cancel and disconnect reset only their own HTTP/2 stream: the other streams of the connection go
  on, and the connection is reused afterwards;
- GOAWAY (nginx's keepalive_requests, and a graceful reload) ends no stream: streams in flight
  finish, new ones go to a new connection;
- a connection reset (`ss -K` on one of two connections under 100 streams) ends exactly the runs on
  that connection with error{upstream}; the others finish; runs still waiting for their first token
  are retried and finish."""

import os
import signal
import subprocess
import tempfile
import threading
import time

import harness
from harness import E2ETestCase, expected_tokens, free_port, now, validate_stream, wait_until

SLOW = harness.SLOW
MODEL = "fake-model-tls"


def info(msg):
    import sys
    sys.stderr.write(f"  [info] {msg}\n")


class TlsFront:
    """nginx terminating TLS + HTTP/2 in front of an upstream on loopback (scripts/tls-upstream.sh)."""

    def __init__(self, upstream_port, **options):
        self.tmp = tempfile.mkdtemp(prefix="chatstream-tls-")
        self.port = free_port()
        self.base_url = f"https://127.0.0.1:{self.port}/v1"
        self.ca_file = os.path.join(self.tmp, "ca.pem")
        self.access_log = os.path.join(self.tmp, "access.log")
        self.error_log = os.path.join(self.tmp, "error.log")
        self.args = ["--out", self.tmp, "--port", str(self.port), "--upstream", f"127.0.0.1:{upstream_port}"]
        for name, value in options.items():
            self.args += ["--" + name.replace("_", "-"), str(value)]
        self.proc = None

    def start(self):
        script = os.path.join(harness.SOURCE_DIR, "scripts", "tls-upstream.sh")
        p = subprocess.run(["bash", script] + self.args + ["--check"], capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError(f"tls-upstream.sh failed ({p.returncode}): {p.stderr}{p.stdout}")
        conf = p.stdout.strip()
        self._out = open(os.path.join(self.tmp, "nginx.out"), "wb")
        self.proc = subprocess.Popen([harness.NGINX, "-p", self.tmp + "/", "-c", conf, "-e", self.error_log],
                                     stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        harness._live_groups.add(self.proc.pid)
        wait_until(lambda: self._listening(), 10 * SLOW, what=f"nginx (TLS) listening on {self.port}")
        return self

    def _listening(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"nginx exited with {self.proc.returncode}: {self.log_tail()}")
        try:
            harness.connect(("127.0.0.1", self.port), 0.5).close()
            return True
        except OSError:
            return False

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def requests(self):
        """The access log: one dict per finished request."""
        rows = []
        if os.path.exists(self.access_log):
            with open(self.access_log) as f:
                for line in f:
                    conn, port, number, proto, status, seconds, sent = line.split()
                    rows.append({"connection": int(conn), "port": int(port), "number": int(number),
                                 "protocol": proto, "status": int(status), "seconds": float(seconds)})
        return rows

    def client_ports(self):
        """Local ports of the established connections to this front (the worker's HTTP/2 connections)."""
        out = subprocess.run(["ss", "-tnH", "state", "established", f"( dport = :{self.port} )"],
                             capture_output=True, text=True, check=True).stdout
        return sorted(int(line.split()[2].rsplit(":", 1)[1]) for line in out.splitlines() if line.strip())

    def reset_connection(self, client_port):
        """Aborts one connection from the client's side: the kernel sends a RST to nginx and the
        worker's socket reports ECONNABORTED (what a dropped link or a crashed peer looks like)."""
        subprocess.run(["ss", "-K", "-tn", "state", "established",
                        f"( dport = :{self.port} and sport = :{client_port} )"],
                       capture_output=True, text=True, check=True)

    def log_tail(self, n=30):
        out = []
        for path in (self.error_log, os.path.join(self.tmp, "nginx.out")):
            if os.path.exists(path):
                with open(path, "rb") as f:
                    out += f.read().decode("utf-8", "replace").splitlines()[-n:]
        return "\n".join(f"  | {line}" for line in out) or "  | (empty)"

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: lets the access log lines be written
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        harness.kill_group(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.wait()
        harness._live_groups.discard(self.proc.pid)
        self._out.close()


class UpstreamTls(E2ETestCase):
    def front(self, fake, **options):
        front = TlsFront(fake.port, **options)

        def stop():
            front.stop()
            if harness._test_failed(self):
                import sys
                sys.stderr.write(f"\n--- nginx (TLS front) log ({front.tmp}):\n{front.log_tail()}\n")
        self.addCleanup(stop)
        return front.start()

    def server(self, front, ca="flag", **flags):
        env = {"LLM_API_KEY": "sk-tls-test"}
        if ca == "flag":
            flags["llm_ca_file"] = front.ca_file
        elif ca == "env":
            env["LLM_CA_FILE"] = front.ca_file
        flags.setdefault("llm_model", MODEL)
        return self.start_server(workers=1, provider="openai", llm_base_url=front.base_url, env=env, **flags)

    def many(self, srv, n, message="tls question", timeout=60):
        results = harness.run_many_streams(srv.addr, n, {"message": message}, timeout=timeout * SLOW)
        errors = [r.error for r in results if r.error or not r.response or r.response.status != 200]
        self.assertEqual(errors[:5], [], "every stream opened and ended cleanly")
        return [validate_stream(r.items) for r in results]

    def many_in_background(self, srv, n, message, timeout):
        """run_many_streams(n) in a thread, so the test acts while the streams run; join() waits for
        it (with a bound) and .results is then what each stream received."""
        class Background(threading.Thread):
            results = None

            def run(self):
                self.results = harness.run_many_streams(srv.addr, n, {"message": message}, timeout=timeout * SLOW)
        background = Background()
        background.start()
        return background

    def start_answer(self, srv, message="hello"):
        s = srv.stream(message)
        self.addCleanup(s.close)
        meta = s.next_event(5 * SLOW)
        self.assertEqual(meta.event, "meta")
        while s.next_event(5 * SLOW).event != "token":
            pass
        return s, meta.json["run_id"]

    # -- relay and trust --------------------------------------------------------------------------

    def test_relay_over_tls_and_http2(self):
        fake = self.start_fake_llm(tokens=30, rate=0, model=MODEL)
        front = self.front(fake)
        for ca in ("flag", "env"):
            with self.subTest(ca_from=ca):
                srv = self.server(front, ca=ca)
                s = srv.stream("hello over TLS")
                sm = validate_stream(s.read_all(15 * SLOW), terminal="done")
                s.close()
                self.assertEqual(sm.text, expected_tokens(30))
                srv.stop()
        rows = front.requests()
        self.assertEqual(len(rows), 2, rows)
        self.assertEqual({r["protocol"] for r in rows}, {"HTTP/2.0"}, "ALPN chose HTTP/2")
        self.assertEqual({r["status"] for r in rows}, {200})

    def test_many_streams_share_few_connections(self):
        fake = self.start_fake_llm(tokens=40, rate=20, model=MODEL)
        front = self.front(fake)  # nginx's default: 128 concurrent streams per connection
        srv = self.server(front)
        streams = self.many(srv, 300)
        self.assertEqual([sm.terminal.event for sm in streams], ["done"] * 300)
        self.assertTrue(all(sm.text == expected_tokens(40) for sm in streams))
        rows = front.requests()
        connections = {r["connection"] for r in rows}
        info(f"300 concurrent streams over {len(connections)} HTTP/2 connection(s); "
             f"streams per connection: {sorted(sum(1 for r in rows if r['connection'] == c) for c in connections)}")
        self.assertEqual(len(rows), 300)
        self.assertEqual({r["protocol"] for r in rows}, {"HTTP/2.0"})
        self.assertLessEqual(len(connections), 4, "300 streams fit in 3 connections (libcurl takes 100 streams per connection)")
        # The connections outlive their streams: the next answer takes one of them.
        s = srv.stream("one more")
        validate_stream(s.read_all(15 * SLOW), terminal="done")
        s.close()
        self.assertEqual(len(front.client_ports()), len(connections), "no new connection for a later stream")

    def test_untrusted_certificate_is_a_clear_error_without_retries(self):
        fake = self.start_fake_llm(tokens=5, rate=0, model=MODEL)
        front = self.front(fake)
        srv = self.server(front, ca=None)  # the system store does not know the test's CA
        t0 = now()
        s = srv.stream("hello")
        sm = validate_stream(s.read_all(10 * SLOW), terminal="error")
        s.close()
        took = now() - t0
        fields = sm.terminal.json
        self.assertEqual(fields["code"], "upstream", fields)
        self.assertIn("not trusted", fields["message"])
        self.assertNotIn("127.0.0.1", fields["message"], "no address in a message users see")
        self.assertLess(took, 2.0 * SLOW, "a certificate that is not trusted is not retried with backoff")
        self.assertEqual(fake.stats()["requests"], 0, "nothing reached the upstream")
        self.assertIn("llm-ca-file", srv.log_text(), "the log says how to trust the upstream")

    def test_bad_ca_file_stops_the_server_at_start(self):
        not_pem = os.path.join(tempfile.mkdtemp(prefix="chatstream-ca-"), "ca.txt")
        with open(not_pem, "w") as f:
            f.write("this is not a certificate\n")
        port = str(free_port())
        base = [harness.BINARY, "serve", "--listen", f"127.0.0.1:{port}", "--provider", "openai",
                "--llm-base-url", "https://127.0.0.1:1/v1", "--llm-model", MODEL]
        cases = [(["--llm-ca-file", "/nonexistent/ca.pem"], {}, "llm-ca-file"),
                 (["--llm-ca-file", not_pem], {}, "not a PEM file"),
                 ([], {"LLM_CA_FILE": "/nonexistent/ca.pem"}, "LLM_CA_FILE")]
        for extra, env, expect in cases:
            with self.subTest(args=extra, env=env):
                p = subprocess.Popen(base + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **env), stdin=subprocess.DEVNULL, start_new_session=True)
                try:
                    _, err = p.communicate(timeout=5 * SLOW)
                except subprocess.TimeoutExpired:
                    harness.kill_group(p.pid)
                    self.fail(f"{extra} {env}: the server started with a CA file it cannot use")
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(expect, err)

    # -- one stream, one HTTP/2 stream ------------------------------------------------------------

    def test_cancel_and_disconnect_reset_only_their_own_stream(self):
        fake = self.start_fake_llm(tokens=60, rate=20, model=MODEL)
        front = self.front(fake)
        srv = self.server(front, disconnect_grace="200ms")
        answers = [self.start_answer(srv, f"question {i}") for i in range(10)]
        ports = front.client_ports()
        self.assertEqual(len(ports), 1, "ten streams, one HTTP/2 connection")
        cancelled_stream, cancelled_run = answers[0]
        r = srv.request("POST", "/chat/cancel", {"run_id": cancelled_run})
        self.assertEqual(r.status, 200, r)
        validate_stream(cancelled_stream.read_all(5 * SLOW), terminal="cancelled")
        answers[1][0].close()  # a client gone for good (the grace is 200 ms)
        wait_until(lambda: fake.stats()["client_closed_early"] >= 2, 3 * SLOW,
                   what="fake-llm saw both upstream requests end early")
        for s, _ in answers[2:]:
            sm = validate_stream(s.read_all(15 * SLOW), terminal="done")
            self.assertEqual(sm.text, expected_tokens(60))
        self.assertEqual(front.client_ports(), ports, "the connection survived the two resets")
        s = srv.stream("after the resets")
        validate_stream(s.read_all(15 * SLOW), terminal="done")
        s.close()
        self.assertEqual(front.client_ports(), ports, "and carries the next answer")
        wait_until(lambda: len(front.requests()) == 11, 5 * SLOW, what="nginx logged every request")
        rows = front.requests()
        self.assertEqual(len({r["connection"] for r in rows}), 1, rows)
        # nginx logs the status it sent (200) for a stream the client reset; the two are the ones
        # that ended early (every answer lasts 3 s).
        self.assertEqual(sum(1 for r in rows if r["seconds"] < 2.0), 2, f"two streams ended early: {rows}")

    # -- faults of the connection -----------------------------------------------------------------

    def test_goaway_after_keepalive_requests_ends_no_stream(self):
        fake = self.start_fake_llm(tokens=40, rate=20, model=MODEL)
        front = self.front(fake, keepalive_requests=10)  # nginx says GOAWAY after 10 streams
        srv = self.server(front)
        streams = self.many(srv, 40)
        kinds = [sm.terminal.event for sm in streams]
        self.assertEqual(kinds, ["done"] * 40, [sm.terminal.data for sm in streams if sm.terminal.event != "done"][:3])
        self.assertTrue(all(sm.text == expected_tokens(40) for sm in streams))
        rows = front.requests()
        statuses = sorted({r["status"] for r in rows})
        connections = {r["connection"] for r in rows}
        info(f"40 streams, GOAWAY every 10: {len(connections)} connections, {len(rows)} requests, "
             f"upstream requests {fake.stats()['requests']}")
        self.assertGreaterEqual(len(connections), 4)
        self.assertEqual(statuses, [200])

    def test_graceful_reload_finishes_streams_in_flight(self):
        fake = self.start_fake_llm(tokens=40, rate=20, model=MODEL)
        front = self.front(fake)
        srv = self.server(front)
        before = [self.start_answer(srv, f"before {i}") for i in range(10)]
        old_ports = front.client_ports()
        front.reload()  # the old worker sends GOAWAY and finishes its streams; a new worker accepts
        time.sleep(0.3 * SLOW)  # let the new worker take the listening socket (nothing to poll for)
        after = [self.start_answer(srv, f"after {i}") for i in range(5)]
        for s, _ in before + after:
            sm = validate_stream(s.read_all(15 * SLOW), terminal="done")
            self.assertEqual(sm.text, expected_tokens(40))
        new_ports = set(front.client_ports())
        self.assertTrue(new_ports - set(old_ports), "the answers after the reload took a new connection")

    def test_connection_reset_ends_only_its_runs(self):
        # 100 tokens at 20/s: 5 s answers (all 100 streams open and flowing before the first ends, also
        # under ASan), reset once 3 tokens a stream have gone out.
        fake = self.start_fake_llm(tokens=100, rate=20, model=MODEL)
        front = self.front(fake, max_streams=50)  # 100 streams → two connections of 50
        srv = self.server(front)
        background = self.many_in_background(srv, 100, "reset question", timeout=60)
        try:
            wait_until(lambda: fake.stats()["open_streams"] == 100 and fake.stats()["tokens_sent"] >= 300,
                       20 * SLOW, what="100 upstream streams with tokens flowing")
            ports = front.client_ports()
            self.assertGreaterEqual(len(ports), 2, "100 streams of at most 50 per connection")
            victim = ports[0]
            time.sleep(0.2)  # every stream past its first token
            front.reset_connection(victim)
        finally:
            background.join(90 * SLOW)
        results = background.results
        self.assertEqual([r.error for r in results if r.error][:3], [])
        streams = [validate_stream(r.items) for r in results]
        failed = [sm for sm in streams if sm.terminal.event == "error"]
        done = [sm for sm in streams if sm.terminal.event == "done"]
        self.assertEqual(len(failed) + len(done), 100, [sm.terminal.event for sm in streams])
        for sm in failed:
            self.assertEqual(sm.terminal.json["code"], "upstream", sm.terminal.json)
            self.assertTrue(sm.terminal.json["retryable"])
            self.assertIn("lost mid-answer", sm.terminal.json["message"])
            self.assertTrue(sm.text and expected_tokens(100).startswith(sm.text), "the partial answer was kept")
        for sm in done:
            self.assertEqual(sm.text, expected_tokens(100))
        wait_until(lambda: len(front.requests()) >= 100, 5 * SLOW, what="nginx logged every request")
        on_victim = [r for r in front.requests() if r["port"] == victim]
        info(f"reset one of {len(ports)} connections: {len(failed)} runs ended with error{{upstream}}, "
             f"{len(done)} finished; nginx saw {len(on_victim)} requests on the reset connection")
        self.assertEqual(len(failed), len(on_victim), "exactly the runs on the reset connection failed")
        self.assertGreater(len(done), 0)
        s = srv.stream("after the reset")
        validate_stream(s.read_all(20 * SLOW), terminal="done")
        s.close()

    def test_reset_before_the_first_token_is_retried(self):
        fake = self.start_fake_llm(tokens=10, rate=0, first_token_delay=1500, model=MODEL)
        front = self.front(fake)
        srv = self.server(front)
        background = self.many_in_background(srv, 20, "early reset", timeout=30)
        try:
            wait_until(lambda: fake.stats()["open_streams"] == 20, 10 * SLOW, what="20 upstream requests waiting")
            for port in front.client_ports():
                front.reset_connection(port)
        finally:
            background.join(60 * SLOW)
        results = background.results
        self.assertEqual([r.error for r in results if r.error][:3], [])
        streams = [validate_stream(r.items) for r in results]
        self.assertEqual([sm.terminal.event for sm in streams], ["done"] * 20,
                         [sm.terminal.data for sm in streams if sm.terminal.event != "done"][:3])
        self.assertTrue(all(sm.text == expected_tokens(10) for sm in streams))
        self.assertEqual(fake.stats()["requests"], 40, "each run asked again once")


if __name__ == "__main__":
    harness.main()
