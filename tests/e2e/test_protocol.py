#!/usr/bin/python3
"""End-to-end: the event stream of POST /chat/stream, POST /chat, /healthz and /metrics, against the real
binary (docs/protocol.md is the contract)."""

import statistics
import uuid

import harness
from harness import E2ETestCase, Event, expected_tokens, validate_stream


class StreamFormat(E2ETestCase):
    """One server with default flags (50 tokens, as fast as possible)."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_class_server(workers=2, scripted_rate=0)

    def test_response_headers(self):
        s = self.server.stream("hello", headers={"Accept-Encoding": "gzip, deflate, br"})
        r = s.response
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.version, "HTTP/1.1")
        self.assertEqual((r.header("Content-Type") or "").lower().replace(" ", ""),
                         "text/event-stream;charset=utf-8", r)
        self.assertEqual(r.header("Cache-Control"), "no-cache, no-transform", r)
        self.assertEqual(r.header("X-Accel-Buffering"), "no", r)
        self.assertEqual((r.header("Transfer-Encoding") or "").lower(), "chunked", r)
        self.assertIsNone(r.header("Content-Length"), r)
        self.assertIsNone(r.header("Content-Encoding"), "the stream must never be compressed")
        s.read_all()
        s.close()

    def test_event_sequence_and_ids(self):
        s = self.server.stream("hello")
        items = s.read_all()
        sm = validate_stream(items, retry_ms=3000, heartbeat_ms=15000, terminal="done")
        self.assertEqual(sm.types[0], "meta")
        self.assertEqual(sm.types[1], "generation_start", sm.types)
        self.assertEqual(set(sm.types[2:-1]), {"token"}, sm.types)
        self.assertEqual(sm.types[-1], "done")
        self.assertEqual(sm.events[1].json.get("provider"), "scripted", sm.events[1].data)
        self.assertTrue(harness.is_uuid(sm.session_id), f"session_id should be a UUID: {sm.session_id!r}")
        # ids were checked by validate_stream; check the raw form once more explicitly
        for seq, ev in enumerate(sm.events):
            self.assertEqual(ev.lines[0], f"id: {sm.run_id}:{seq}")
            self.assertEqual(ev.lines[1], f"event: {ev.event}")
        s.close()

    def test_token_text_and_done(self):
        s = self.server.stream("hello")
        sm = validate_stream(s.read_all(), terminal="done")
        self.assertEqual(sm.text, expected_tokens(50))
        d = sm.terminal.json
        self.assertEqual(d.get("status"), "complete", d)
        self.assertEqual(d.get("tokens"), 50, d)
        for k in ("ttft_ms", "duration_ms"):
            self.assertIsInstance(d.get(k), (int, float), d)
            self.assertNotIsInstance(d.get(k), bool)
            self.assertGreaterEqual(d[k], 0, d)
        self.assertLessEqual(d["ttft_ms"], d["duration_ms"], d)
        s.close()

    def test_raw_wire_format_start(self):
        # The first bytes are exactly `retry: 3000\n\n` then the meta event's three lines.
        s = self.server.stream("hello")
        s.read_all()
        body = bytes(s.response.body)
        self.assertTrue(body.startswith(b"retry: 3000\n\nid: "), body[:120])
        first_event = body.split(b"\n\n")[1]
        lines = first_event.split(b"\n")
        self.assertEqual(len(lines), 3, first_event)
        self.assertTrue(lines[1] == b"event: meta", first_event)
        self.assertFalse(s.sse.crlf_seen, "events are framed with \\n")
        self.assertTrue(body.endswith(b"\n\n"), body[-80:])
        s.close()

    def test_run_and_session_ids(self):
        sid = str(uuid.uuid4())
        s1 = self.server.stream(body={"message": "one", "session_id": sid})
        a = validate_stream(s1.read_all(), terminal="done")
        self.assertEqual(a.session_id, sid, "a given session_id is echoed in meta")
        s2 = self.server.stream("two")
        b = validate_stream(s2.read_all(), terminal="done")
        self.assertNotEqual(a.run_id, b.run_id, "every run has its own id")
        self.assertNotEqual(b.session_id, sid, "without session_id a new session is created")
        s1.close()
        s2.close()

    def test_charset_parameter_accepted(self):
        s = self.server.stream("hello", content_type="application/json; charset=utf-8")
        self.assertEqual(s.response.status, 200, s.response)
        validate_stream(s.read_all(), terminal="done")
        s.close()

    def test_post_chat_whole_answer(self):
        r = self.server.request("POST", "/chat", {"message": "hello"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.header("Content-Type") or "").split(";")[0].strip().lower(), "application/json", r)
        j = r.json()
        self.assertEqual(j.get("status"), "complete", j)
        self.assertEqual(j.get("answer"), expected_tokens(50), j)
        self.assertEqual(j.get("tokens"), 50, j)
        self.assertIsInstance(j.get("run_id"), str, j)
        self.assertTrue(harness.is_uuid(j.get("session_id")), j)
        for k in ("ttft_ms", "duration_ms"):
            self.assertIsInstance(j.get(k), (int, float), j)
        self.assertLessEqual(j["ttft_ms"], j["duration_ms"], j)
        self.assertEqual(j.get("citations"), [], j)
        self.assertEqual(j.get("tool_calls"), [], j)

    def test_healthz(self):
        r = self.server.request("GET", "/healthz")
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.header("Content-Type") or "").split(";")[0].strip().lower(), "application/json", r)
        j = r.json()
        self.assertEqual(j.get("status"), "ok", j)
        self.assertIn(j.get("pid"), self.server.worker_pids(), f"pid is the answering worker's: {j}")
        self.assertIn(j.get("worker"), (0, 1), j)
        self.assertIs(j.get("draining"), False, j)
        self.assertEqual(j.get("active_streams"), 0, j)
        self.assertIsInstance(j.get("connections"), int, j)
        self.assertGreaterEqual(j["connections"], 1, "the connection asking counts")
        self.assertEqual(j.get("database"), "not_configured", j)

    def test_metrics_format_and_counters(self):
        before = self.server.metrics()
        s = self.server.stream("hello")
        validate_stream(s.read_all(), terminal="done")
        s.close()
        r = self.server.request("GET", "/metrics")
        self.assertEqual(r.status, 200)
        ctype = (r.header("Content-Type") or "").lower().replace(" ", "")
        self.assertTrue(ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype)
        m = harness.parse_metrics(r.text())
        expected_types = {
            "chatstream_connections": "gauge",
            "chatstream_connections_accepted_total": "counter",
            "chatstream_connections_rejected_total": "counter",
            "chatstream_active_streams": "gauge",
            "chatstream_runs_total": "counter",
            "chatstream_run_errors_total": "counter",
            "chatstream_time_to_first_token_seconds": "histogram",
            "chatstream_tokens_sent_total": "counter",
            "chatstream_events_sent_total": "counter",
            "chatstream_bytes_sent_total": "counter",
            "chatstream_heartbeats_sent_total": "counter",
            "chatstream_slow_consumer_closes_total": "counter",
            "chatstream_worker_restarts_total": "counter",
            "chatstream_workers": "gauge",
        }
        for name, typ in expected_types.items():
            self.assertEqual(m.types.get(name), typ, f"# TYPE of {name}")
        for name in expected_types:
            if expected_types[name] == "histogram":
                self.assertTrue(m.has(name + "_bucket") and m.has(name + "_count") and m.has(name + "_sum"), name)
                self.assertEqual(m.get(name + "_bucket", le="+Inf"), m.get(name + "_count"), name)
            elif name not in ("chatstream_runs_total", "chatstream_run_errors_total"):
                self.assertTrue(m.has(name), f"{name} has a sample")
        self.assertEqual(m.value("chatstream_workers"), 2)
        self.assertGreaterEqual(m.value("chatstream_runs_total", status="complete")
                                - before.value("chatstream_runs_total", status="complete"), 1)
        self.assertGreaterEqual(m.value("chatstream_tokens_sent_total")
                                - before.value("chatstream_tokens_sent_total"), 50)
        self.assertGreaterEqual(m.value("chatstream_events_sent_total")
                                - before.value("chatstream_events_sent_total"), 4)
        self.assertGreater(m.value("chatstream_bytes_sent_total") - before.value("chatstream_bytes_sent_total"),
                           len(expected_tokens(50)))
        self.assertGreaterEqual(m.value("chatstream_time_to_first_token_seconds_count")
                                - before.value("chatstream_time_to_first_token_seconds_count"), 1)
        self.assertGreaterEqual(m.value("chatstream_connections_accepted_total"), 2)
        self.assertEqual(m.value("chatstream_active_streams"), 0)
        self.assertGreaterEqual(m.value("chatstream_connections"), 1)


class ScriptedText(E2ETestCase):
    TEXT = ('Grüße aus Köln — 日本語のテキスト 🎉🚀 "quoted" and \'single\' back\\slash \\n not-a-newline\n'
            'second line\ttab and the end: {"json": [1, 2]} <tag> & done')

    def test_utf8_quotes_backslashes_newlines_round_trip(self):
        srv = self.start_server(scripted_text=self.TEXT)
        s = srv.stream("hello")
        sm = validate_stream(s.read_all(), terminal="done")
        self.assertEqual(sm.text, self.TEXT)
        self.assertGreater(len(sm.tokens), 5, "streamed word by word")
        s.close()
        r = srv.request("POST", "/chat", {"message": "hello"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("answer"), self.TEXT)

    def test_message_with_unicode_escapes_accepted(self):
        srv = self.start_server(scripted_tokens=3)
        body = '{"message": "caf\\u00e9 \\ud83c\\udf89 \\"hi\\" \\\\ \\n"}'.encode()
        s = harness.open_stream(srv.addr, body=body)
        self.assertEqual(s.response.status, 200, s.response)
        sm = validate_stream(s.read_all(), terminal="done")
        self.assertEqual(sm.text, expected_tokens(3))
        s.close()


class Timing(E2ETestCase):
    def test_meta_arrives_before_first_token(self):
        srv = self.start_server(scripted_first_token_delay="1s", scripted_tokens=3)
        s = srv.stream("hello")
        first = s.next_event(5)
        self.assertIsInstance(first, Event)
        self.assertEqual(first.event, "meta")
        self.assertLess(s.response.t_headers - s.t_sent, 0.2, "response head must come at once")
        self.assertLess(first.t - s.t_sent, 0.2, "meta must arrive before any work (< 200 ms)")
        items = s.read_all()
        sm = validate_stream(items, terminal="done")
        t_first_token = sm.tokens[0].t - s.t_sent
        self.assertGreaterEqual(t_first_token, 0.9, "first token honours --scripted-first-token-delay 1s")
        self.assertLess(t_first_token, 2.0)
        self.assertGreaterEqual(sm.terminal.json["ttft_ms"], 900, sm.terminal.data)
        s.close()

    def test_heartbeats_during_slow_run_and_before_first_token(self):
        srv = self.start_server(heartbeat="200ms", scripted_rate=1, scripted_tokens=2,
                                scripted_first_token_delay="1s")
        s = srv.stream("hello")
        sm = validate_stream(s.read_all(10), heartbeat_ms=200, terminal="done")
        self.assertEqual(sm.text, expected_tokens(2))
        pings = sm.comments
        first_token_t = sm.tokens[0].t
        before = [c for c in pings if c.t < first_token_t]
        self.assertGreaterEqual(len(before), 3, f"pings before the first token (1 s at 200 ms): {len(before)}")
        # run lasts ~2 s (1 s delay + 1 s between the 2 tokens at 1 token/s): ~10 pings
        self.assertGreaterEqual(len(pings), 6, f"{len(pings)} pings in a ~2 s run at 200 ms")
        self.assertLessEqual(len(pings), 14, f"{len(pings)} pings in a ~2 s run at 200 ms")
        gaps = [b.t - a.t for a, b in zip(pings, pings[1:])]
        self.assertBetween(statistics.median(gaps), 0.15, 0.3, "median gap between pings")
        self.assertTrue(all(c.t > sm.meta.t for c in pings), "no ping before meta")
        m = srv.metrics()
        self.assertGreaterEqual(m.value("chatstream_heartbeats_sent_total"), len(pings))
        s.close()

    def test_no_heartbeat_on_fast_run(self):
        srv = self.start_server(heartbeat="1s", scripted_tokens=20, scripted_rate=100)
        s = srv.stream("hello")
        sm = validate_stream(s.read_all(), heartbeat_ms=1000, terminal="done")
        self.assertEqual(sm.comments, [], "a 0.2 s run has no 1 s heartbeat")
        s.close()

    def test_rate_spreads_tokens(self):
        srv = self.start_server(scripted_rate=10, scripted_tokens=10)
        s = srv.stream("hello")
        sm = validate_stream(s.read_all(), terminal="done")
        self.assertEqual(sm.text, expected_tokens(10))
        self.assertLess(sm.tokens[0].t - s.t_sent, 0.25, "first token at once")
        spread = sm.tokens[-1].t - sm.tokens[0].t
        self.assertBetween(spread, 0.75, 1.5, "10 tokens at 10/s span ~0.9 s")
        d = sm.terminal.json
        self.assertBetween(d["duration_ms"], 750, 1600, "done.duration_ms")
        self.assertLess(d["ttft_ms"], 250, d)
        s.close()

    def test_fail_after_ends_with_upstream_error(self):
        srv = self.start_server(scripted_fail_after=3, scripted_tokens=10)
        s = srv.stream("hello")
        sm = validate_stream(s.read_all(), terminal="error")
        self.assertEqual(sm.text, expected_tokens(3))
        e = sm.terminal.json
        self.assertEqual(e.get("code"), "upstream", e)
        self.assertEqual(e.get("tokens"), 3, e)
        self.assertIsInstance(e.get("message"), str, e)
        self.assertTrue(e["message"].strip())
        s.close()
        m = srv.metrics()
        self.assertGreaterEqual(m.value("chatstream_runs_total", status="error"), 1)
        self.assertGreaterEqual(m.value("chatstream_run_errors_total", code="upstream"), 1)
        # POST /chat: a failed run answers 502 upstream in the error shape
        r = srv.request("POST", "/chat", {"message": "hello"})
        self.assertJsonError(r, 502, "upstream")

    def test_flush_ms_coalesces_token_text(self):
        # 40 tokens at 100/s take ~0.4 s; with --flush-ms 200 the text leaves in ~3 token events.
        srv = self.start_server(flush_ms=200, scripted_tokens=40, scripted_rate=100)
        s = srv.stream("hello")
        sm = validate_stream(s.read_all(), terminal="done")
        self.assertEqual(sm.text, expected_tokens(40), "merged in order and without loss")
        self.assertLessEqual(len(sm.tokens), 5, f"{len(sm.tokens)} token events with --flush-ms 200")
        self.assertGreaterEqual(len(sm.tokens), 2, "token text still flows during the run")
        self.assertEqual(sm.terminal.json.get("tokens"), 40, "done.tokens counts provider tokens, not events")
        gaps = [b.t - a.t for a, b in zip(sm.tokens, sm.tokens[1:])]
        self.assertTrue(all(g >= 0.15 for g in gaps), f"token events at most every 200 ms: {gaps}")
        s.close()

    def test_retry_ms_flag(self):
        srv = self.start_server(retry_ms=1234, scripted_tokens=1)
        s = srv.stream("hello")
        validate_stream(s.read_all(), retry_ms=1234, terminal="done")
        s.close()


if __name__ == "__main__":
    harness.main()
