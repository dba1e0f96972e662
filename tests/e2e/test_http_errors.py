#!/usr/bin/python3
"""End-to-end: HTTP handling of the real binary — every bad input with its exact status and JSON error,
connection limits and timeouts, keep-alive, pipelining and chunked request bodies."""

import time

import harness
from harness import Conn, E2ETestCase, build_request, expected_tokens, now, parse_responses, raw_exchange, validate_stream


def allow_set(r):
    return {m.strip().upper() for m in (r.header("Allow") or "").split(",") if m.strip()}


class BadRequests(E2ETestCase):
    """One server: --max-body 1024, --max-header-bytes 2048."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_class_server(workers=1, max_body=1024, max_header_bytes=2048, scripted_tokens=3)
        cls.addr = cls.server.addr

    def post(self, path, body, **kw):
        return harness.request(self.addr, "POST", path, body, **kw)

    # --- 400 ----------------------------------------------------------------------------------
    def test_malformed_json(self):
        for body in (b'{"message":', b'{"message": "hi",}', b"not json", b'{"message": "hi"} trailing',
                     b"", b"\x00"):
            with self.subTest(body=body):
                self.assertJsonError(self.post("/chat/stream", body), 400, "bad_request")

    def test_json_not_an_object(self):
        for body in (b'"hello"', b"[1, 2]", b"42", b"null"):
            with self.subTest(body=body):
                self.assertJsonError(self.post("/chat/stream", body), 400, "bad_request")

    def test_missing_message(self):
        self.assertJsonError(self.post("/chat/stream", {}), 400, "bad_request")
        self.assertJsonError(self.post("/chat/stream", {"text": "hello"}), 400, "bad_request")
        self.assertJsonError(self.post("/chat", {}), 400, "bad_request")

    def test_empty_message(self):
        for msg in ("", "   ", "\n\t "):
            with self.subTest(message=msg):
                self.assertJsonError(self.post("/chat/stream", {"message": msg}), 400, "bad_request")

    def test_non_string_message(self):
        for msg in (42, None, True, ["hi"], {"text": "hi"}):
            with self.subTest(message=msg):
                self.assertJsonError(self.post("/chat/stream", {"message": msg}), 400, "bad_request")

    def test_invalid_utf8_in_string(self):
        for body in (b'{"message": "caf\xe9"}', b'{"message": "\xff\xfe"}', b'{"message": "a\xc3"}',
                     b'{"message": "\xed\xa0\x80"}'):  # latin-1, garbage, truncated, UTF-16 surrogate
            with self.subTest(body=body):
                self.assertJsonError(self.post("/chat/stream", body), 400, "bad_request")

    def test_bad_session_id(self):
        for sid in ("not-a-uuid", "", 123, "6f1c2b7e-0000-0000-0000-00000000000g"):
            with self.subTest(session_id=sid):
                self.assertJsonError(self.post("/chat/stream", {"message": "hi", "session_id": sid}),
                                     400, "bad_request")

    def test_content_length_and_transfer_encoding(self):
        body = b'{"message": "hello"}'
        req = (b"POST /chat/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body)
               + harness.encode_chunked(body))
        data, _closed = raw_exchange(self.addr, req, timeout=2)
        rs = parse_responses(data)
        self.assertGreaterEqual(len(rs), 1, f"no response to CL+TE: {data!r}")
        self.assertJsonError(rs[0], 400, "bad_request")
        self.assertEqual(len(rs), 1, "the request must not also be served")

    def test_malformed_http_then_close(self):
        cases = [
            b"GARBAGE\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n",              # header without colon
            b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",             # unknown version
            b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            b"POST /chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        ]
        for req in cases:
            with self.subTest(request=req):
                t0 = now()
                data, closed = raw_exchange(self.addr, req, timeout=3)
                rs = parse_responses(data)
                self.assertEqual(len(rs), 1, f"exactly one answer to {req!r}: {data!r}")
                self.assertJsonError(rs[0], 400, "bad_request")
                self.assertTrue(closed, "the server closes the connection after malformed HTTP")
                self.assertLess(now() - t0, 2.5)

    def test_error_keeps_connection_alive(self):
        # A well-formed request answered with an error leaves the connection usable.
        with Conn(self.addr) as c:
            self.assertJsonError(c.request("POST", "/chat/stream", b'{"message":'), 400, "bad_request")
            self.assertJsonError(c.request("GET", "/nope"), 404, "not_found")
            self.assertJsonError(c.request("POST", "/chat", b"{}", content_type="text/plain"),
                                 415, "unsupported_media_type")
            r = c.request("GET", "/healthz")
            self.assertEqual(r.status, 200, r)

    # --- 404 / 405 ----------------------------------------------------------------------------
    def test_unknown_path(self):
        for method, path in (("GET", "/nope"), ("POST", "/nope"), ("GET", "/chat/stream/extra"),
                             ("GET", "/healthz/x"), ("GET", "/"), ("POST", "/chat/streamx")):
            with self.subTest(path=path, method=method):
                body = {"message": "hi"} if method == "POST" else None
                self.assertJsonError(harness.request(self.addr, method, path, body), 404, "not_found")

    def test_wrong_method_with_allow(self):
        cases = [("GET", "/chat/stream", {"POST"}), ("PUT", "/chat/stream", {"POST"}),
                 ("GET", "/chat", {"POST"}), ("DELETE", "/chat", {"POST"}), ("GET", "/chat/cancel", {"POST"})]
        for method, path, allow in cases:
            with self.subTest(method=method, path=path):
                r = harness.request(self.addr, method, path)
                self.assertJsonError(r, 405, "method_not_allowed")
                self.assertEqual(allow_set(r), allow, f"Allow header: {r.header('Allow')!r}")
        for path in ("/healthz", "/metrics"):
            with self.subTest(method="POST", path=path):
                r = harness.request(self.addr, "POST", path, {"message": "hi"})
                self.assertJsonError(r, 405, "method_not_allowed")
                self.assertIn("GET", allow_set(r), r.header("Allow"))
                self.assertNotIn("POST", allow_set(r))

    # --- 413 / 415 / 431 ----------------------------------------------------------------------
    def test_body_over_max_body_content_length(self):
        body = {"message": "x" * 2000}
        with Conn(self.addr) as c:
            c.send(build_request("POST", "/chat/stream", body), expect=1)
            r = c.read_response(5)
        self.assertJsonError(r, 413, "payload_too_large")

    def test_body_over_max_body_chunked(self):
        body = {"message": "x" * 2000}
        with Conn(self.addr) as c:
            c.send(build_request("POST", "/chat/stream", body, chunked=[500, 500, 500, 500]), expect=1)
            r = c.read_response(5)
        self.assertJsonError(r, 413, "payload_too_large")

    def test_body_exactly_max_body_accepted(self):
        prefix, suffix = b'{"message": "', b'"}'
        body = prefix + b"y" * (1024 - len(prefix) - len(suffix)) + suffix
        self.assertEqual(len(body), 1024)
        r = self.post("/chat", body)
        self.assertEqual(r.status, 200, r)
        r = self.post("/chat", body, chunked=[100, 300])
        self.assertEqual(r.status, 200, r)

    def test_content_type(self):
        cases = [(None, 415), ("text/plain", 415), ("application/x-www-form-urlencoded", 415),
                 ("application/jsonx", 415), ("application/json; charset=utf-8", 200),
                 ("Application/JSON", 200)]
        for ctype, status in cases:
            with self.subTest(content_type=ctype):
                r = self.post("/chat", {"message": "hello"}, content_type=ctype)
                if status == 200:
                    self.assertEqual(r.status, 200, r)
                else:
                    self.assertJsonError(r, 415, "unsupported_media_type")
        r = harness.request(self.addr, "POST", "/chat/stream", {"message": "hello"}, content_type=None)
        self.assertJsonError(r, 415, "unsupported_media_type")

    def test_headers_too_large(self):
        r = harness.request(self.addr, "GET", "/healthz", headers={"X-Big": "a" * 3000})
        self.assertJsonError(r, 431, "headers_too_large")
        many = {f"X-H{i}": "v" * 40 for i in range(80)}
        r = harness.request(self.addr, "POST", "/chat", {"message": "hello"}, headers=many)
        self.assertJsonError(r, 431, "headers_too_large")
        ok = harness.request(self.addr, "GET", "/healthz", headers={"X-Small": "a" * 1000})
        self.assertEqual(ok.status, 200, "headers under --max-header-bytes are fine")

    def test_request_line_too_large(self):
        r = harness.request(self.addr, "GET", "/healthz?" + "q" * 3000)
        self.assertJsonError(r, 431, "headers_too_large")


class KeepAliveAndPipelining(E2ETestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_class_server(workers=1, scripted_tokens=5, scripted_rate=0)
        cls.addr = cls.server.addr

    def test_two_streams_and_healthz_on_one_connection(self):
        with Conn(self.addr) as c:
            s1 = harness.open_stream(self.addr, "one", conn=c)
            a = validate_stream(s1.read_all(), terminal="done")
            s2 = harness.open_stream(self.addr, "two", conn=c)
            b = validate_stream(s2.read_all(), terminal="done")
            r = c.request("GET", "/healthz")
            self.assertFalse(c.closed_by_peer)
        self.assertEqual(a.text, expected_tokens(5))
        self.assertEqual(b.text, expected_tokens(5))
        self.assertNotEqual(a.run_id, b.run_id)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("status"), "ok")

    def test_pipelined_requests_answered_in_order(self):
        reqs = (build_request("POST", "/chat", {"message": "first"})
                + build_request("POST", "/chat", {"message": "second"})
                + build_request("GET", "/healthz"))
        with Conn(self.addr) as c:
            c.send(reqs, expect=3)
            r1, r2, r3 = (c.read_response(10) for _ in range(3))
        for r in (r1, r2):
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json().get("answer"), expected_tokens(5), r)
        self.assertNotEqual(r1.json()["run_id"], r2.json()["run_id"])
        self.assertEqual(r3.status, 200, r3)
        self.assertEqual(r3.json().get("status"), "ok", r3)

    def test_pipelined_stream_then_healthz(self):
        reqs = build_request("POST", "/chat/stream", {"message": "s"}) + build_request("GET", "/healthz")
        with Conn(self.addr) as c:
            c.send(reqs, expect=2)
            r1 = c.read_response(10)
            r2 = c.read_response(10)
        self.assertEqual(r1.status, 200, r1)
        p = harness.SSEParser()
        p.feed(bytes(r1.body), 0)
        sm = validate_stream(p.items, terminal="done")
        self.assertEqual(sm.text, expected_tokens(5))
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r2.json().get("status"), "ok")

    def test_chunked_request_body(self):
        s = harness.open_stream(self.addr, body={"message": "chunked hello"}, chunked=[3, 5, 7])
        self.assertEqual(s.response.status, 200, s.response)
        sm = validate_stream(s.read_all(), terminal="done")
        self.assertEqual(sm.text, expected_tokens(5))
        s.close()

    def test_chunked_body_arriving_slowly(self):
        body = harness.json_body({"message": "slow chunks"})
        head = (b"POST /chat/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        with Conn(self.addr) as c:
            c.send(head, expect=1)
            for i in range(0, len(body), 6):
                part = body[i:i + 6]
                c.send(b"%x\r\n%s\r\n" % (len(part), part))
                time.sleep(0.03)
            c.send(b"0\r\n\r\n")
            r = c.read_head(5)
            s = harness.Stream(c, r, now())
            self.assertEqual(r.status, 200, r)
            sm = validate_stream(s.read_all(), terminal="done")
        self.assertEqual(sm.text, expected_tokens(5))

    def test_body_arriving_after_headers(self):
        body = harness.json_body({"message": "late body"})
        req = build_request("POST", "/chat", body)
        head, rest = req.split(b"\r\n\r\n", 1)
        with Conn(self.addr) as c:
            c.send(head + b"\r\n\r\n", expect=1)
            time.sleep(0.2)
            c.send(rest[:5])
            time.sleep(0.1)
            c.send(rest[5:])
            r = c.read_response(5)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("answer"), expected_tokens(5))

    def test_expect_100_continue(self):
        body = harness.json_body({"message": "x" * 100})
        req = build_request("POST", "/chat", body, headers={"Expect": "100-continue"})
        head, rest = req.split(b"\r\n\r\n", 1)
        with Conn(self.addr) as c:
            c.send(head + b"\r\n\r\n", expect=1)
            c.pump(1.0)  # curl waits up to 1 s for "100 Continue", then sends anyway
            c.send(rest)
            r = c.read_response(5)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("answer"), expected_tokens(5))

    def test_connection_close_honoured(self):
        with Conn(self.addr) as c:
            r = c.request("GET", "/healthz", headers={"Connection": "close"})
            self.assertEqual(r.status, 200)
            self.assertTrue(c.wait_closed(2), "Connection: close → the server closes after the answer")

    def test_default_keepalive_keeps_idle_connection(self):
        with Conn(self.addr) as c:
            self.assertEqual(c.request("GET", "/healthz").status, 200)
            self.assertFalse(c.wait_closed(1.5), "an idle keep-alive connection stays open (default 75 s)")
            self.assertEqual(c.request("GET", "/healthz").status, 200)


class Limits(E2ETestCase):
    def test_max_connections_503_with_retry_after(self):
        srv = self.start_server(workers=1, max_connections=2)
        held = [Conn(srv.addr), Conn(srv.addr)]
        try:
            for c in held:
                self.assertEqual(c.request("GET", "/healthz").status, 200)
            data, closed = raw_exchange(srv.addr, build_request("GET", "/healthz"), timeout=3)
            rs = parse_responses(data)
            self.assertEqual(len(rs), 1, f"one answer over the cap: {data!r}")
            self.assertJsonError(rs[0], 503, "overloaded")
            ra = rs[0].header("Retry-After")
            self.assertIsNotNone(ra, "503 carries Retry-After")
            self.assertTrue(ra.strip().isdigit() and int(ra) >= 1, f"Retry-After {ra!r}")
            self.assertTrue(closed, "the rejected connection is closed")
            # the held connections still work
            self.assertEqual(held[0].request("GET", "/healthz").status, 200)
        finally:
            for c in held:
                c.close()
        # after they close, new connections are accepted again
        harness.wait_until(lambda: srv.request("GET", "/healthz").status == 200, 3, what="accepting again")
        m = srv.metrics()
        self.assertGreaterEqual(m.value("chatstream_connections_rejected_total"), 1)

    def test_header_timeout_partial_headers_408(self):
        srv = self.start_server(workers=1, header_timeout="500ms")
        with Conn(srv.addr) as c:
            t0 = now()
            c.send(b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n", expect=1)
            self.assertTrue(c.wait_closed(3), "connection with unfinished headers must be closed")
            elapsed = now() - t0
            self.assertBetween(elapsed, 0.4, 1.5, "closed after --header-timeout")
            self.assertEqual(len(c.parser.done), 1, f"a 408 answer before closing: {bytes(c.parser.buf)!r}")
            self.assertJsonError(c.parser.done[0], 408, "timeout")

    def test_header_timeout_slowloris(self):
        # One header byte every 100 ms: progress does not extend the deadline.
        srv = self.start_server(workers=1, header_timeout="500ms")
        req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        with Conn(srv.addr) as c:
            t0 = now()
            closed = False
            for b in req:
                try:
                    c.send(bytes([b]))
                except OSError:
                    closed = True
                    break
                if c.wait_closed(0.1):
                    closed = True
                    break
                if now() - t0 > 3:
                    break
            closed = closed or c.wait_closed(1)
            self.assertTrue(closed, "a slowloris connection must be closed")
            self.assertBetween(now() - t0, 0.4, 1.6, "closed about --header-timeout after the first byte")
            if c.parser.done:
                self.assertJsonError(c.parser.done[0], 408, "timeout")

    def test_body_timeout_408(self):
        srv = self.start_server(workers=1, header_timeout="500ms")
        with Conn(srv.addr) as c:
            t0 = now()
            c.send(b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                   b'{"message"', expect=1)
            self.assertTrue(c.wait_closed(3), "a body that never completes must be closed")
            self.assertBetween(now() - t0, 0.4, 1.5, "closed after --header-timeout")
            self.assertEqual(len(c.parser.done), 1, "a 408 answer before closing")
            self.assertJsonError(c.parser.done[0], 408, "timeout")

    def test_keepalive_idle_timeout(self):
        srv = self.start_server(workers=1, keepalive_timeout="500ms", header_timeout="5s")
        with Conn(srv.addr) as c:
            self.assertEqual(c.request("GET", "/healthz").status, 200)
            time.sleep(0.2)
            self.assertEqual(c.request("GET", "/healthz").status, 200, "still usable before the idle timeout")
            t0 = now()
            self.assertTrue(c.wait_closed(3), "an idle keep-alive connection is closed")
            self.assertBetween(now() - t0, 0.35, 1.5, "closed after --keepalive-timeout")
            self.assertEqual(c.parser.done, [], "no answer on an idle connection, just a close")

    def test_keepalive_timeout_does_not_cut_a_stream(self):
        srv = self.start_server(workers=1, keepalive_timeout="300ms", scripted_tokens=10, scripted_rate=10)
        s = srv.stream("hello")
        sm = validate_stream(s.read_all(5), terminal="done")
        self.assertEqual(sm.text, expected_tokens(10))
        s.close()


if __name__ == "__main__":
    harness.main()
