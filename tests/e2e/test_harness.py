#!/usr/bin/python3
"""Self-test of the e2e harness (no binary needed): the parsers and validate_stream must reject every
kind of broken stream, or the end-to-end tests could pass against a broken server."""

import unittest

import harness
from harness import ProtocolError, ResponseParser, SSEParser, encode_chunked, validate_stream

META = 'id: R:0\nevent: meta\ndata: {"type":"meta","run_id":"R","session_id":"S","heartbeat_ms":15000}\n\n'


def ev(seq, typ, payload="", run="R"):
    extra = ("," + payload) if payload else ""
    return f'id: {run}:{seq}\nevent: {typ}\ndata: {{"type":"{typ}"{extra}}}\n\n'


GOOD = ("retry: 3000\n\n" + META + ev(1, "generation_start", '"provider":"scripted"')
        + ev(2, "token", '"content":"t0 "') + ": ping\n\n" + ev(3, "token", '"content":"t1 "')
        + ev(4, "done", '"status":"complete","tokens":2,"ttft_ms":1,"duration_ms":2'))


def items_of(text: str):
    p = SSEParser()
    data = text.encode()
    for i in range(len(data)):           # byte by byte: framing must not depend on read boundaries
        p.feed(data[i:i + 1], float(i))
    return p.items


class ValidateStream(unittest.TestCase):
    def test_good_stream_passes(self):
        sm = validate_stream(items_of(GOOD), terminal="done")
        self.assertEqual(sm.text, "t0 t1 ")
        self.assertEqual(sm.types, ["meta", "generation_start", "token", "token", "done"])
        self.assertEqual(len(sm.comments), 1)

    def assertRejected(self, text, **kw):
        with self.assertRaises(AssertionError):
            validate_stream(items_of(text), **kw)

    def test_rejects_missing_retry(self):
        self.assertRejected(GOOD.replace("retry: 3000\n\n", ""))

    def test_rejects_wrong_retry(self):
        self.assertRejected(GOOD.replace("retry: 3000", "retry: 2000"))

    def test_rejects_meta_not_first(self):
        self.assertRejected("retry: 3000\n\n" + ev(0, "token", '"content":"x"') + META.replace("R:0", "R:1")
                            + ev(2, "done", '"status":"complete"'))

    def test_rejects_gap_in_ids(self):
        self.assertRejected(GOOD.replace("id: R:3", "id: R:4").replace("id: R:4\nevent: done", "id: R:5\nevent: done"))

    def test_rejects_foreign_run_id(self):
        self.assertRejected(GOOD.replace("id: R:2", "id: X:2"))

    def test_rejects_type_mismatch(self):
        self.assertRejected(GOOD.replace('{"type":"generation_start"', '{"type":"token"'))

    def test_rejects_non_json_data(self):
        self.assertRejected(GOOD.replace('data: {"type":"token","content":"t1 "}', "data: t1"))

    def test_rejects_extra_lines(self):
        self.assertRejected(GOOD.replace("event: token\n", "event: token\ndata: extra\n", 1))

    def test_rejects_two_terminals(self):
        self.assertRejected(GOOD + ev(5, "error", '"code":"internal"'))

    def test_rejects_no_terminal(self):
        self.assertRejected(GOOD[:GOOD.index("id: R:4")])

    def test_rejects_wrong_terminal(self):
        self.assertRejected(GOOD, terminal="error")

    def test_rejects_other_comments(self):
        self.assertRejected(GOOD.replace(": ping", ": pong"))

    def test_rejects_wrong_heartbeat(self):
        self.assertRejected(GOOD, heartbeat_ms=200)

    def test_rejects_invalid_utf8(self):
        p = SSEParser()
        with self.assertRaises(ProtocolError):
            p.feed(b'data: {"x":"\xff"}\n', 0)


class HttpParser(unittest.TestCase):
    def test_chunked_pipelined_and_informational(self):
        body = b"hello world"
        data = (b"HTTP/1.1 100 Continue\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + encode_chunked(body, [3, 4])
                + b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}")
        p = ResponseParser()
        for i in range(len(data)):
            p.feed(data[i:i + 1], i)
        self.assertEqual([r.status for r in p.done], [200, 404])
        self.assertEqual(p.done[0].informational, [100])
        self.assertEqual(bytes(p.done[0].body), body)
        self.assertTrue(p.done[0].chunked)

    def test_bad_chunk_framing(self):
        p = ResponseParser()
        with self.assertRaises(ProtocolError):
            p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", 0)

    def test_bad_status_line(self):
        with self.assertRaises(ProtocolError):
            ResponseParser().feed(b"HTTP/2 200\r\n\r\n", 0)


class Metrics(unittest.TestCase):
    def test_parse(self):
        m = harness.parse_metrics('# TYPE x_total counter\nx_total{status="complete"} 3\n'
                                  'x_total{status="error"} 1\nh_bucket{le="+Inf"} 2\ng 4.5e1\n')
        self.assertEqual(m.value("x_total", status="complete"), 3)
        self.assertEqual(m.sum("x_total"), 4)
        self.assertEqual(m.value("g"), 45)
        self.assertEqual(m.value("absent"), 0)
        self.assertEqual(m.types["x_total"], "counter")
        with self.assertRaises(AssertionError):
            harness.parse_metrics("not a metric line at all {\n")


if __name__ == "__main__":
    harness.main()
