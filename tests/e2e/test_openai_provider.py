#!/usr/bin/python3
"""End-to-end: the `openai` provider (worker/llm/openai_provider.hpp) against bench/fake-llm, a fake
OpenAI-compatible upstream, and a few hand-written upstreams for what fake-llm cannot show (the exact
request headers, an upstream that echoes the key in a 401, JSON escapes).

- relay: numbered tokens and multi-byte UTF-8 text arrive in order and unchanged, whatever the
  upstream's SSE formatting (lines and characters split across reads, CRLF, comments, several
  data: lines per event); a 1 MiB chunk; usage in `done`;
- the upstream request: Bearer key, model, stream:true, the user message, the history of a stored
  session, --llm-headers;
- the key never appears in the log, in error events, /metrics or /healthz;
- the tool-call round trip with PostgreSQL: tool_call → retrieval events → tool_result → the answer;
- every fault mode: retries (500, 429 with Retry-After, a dropped connection, connection refused),
  then error{upstream}; a stalled upstream → error{timeout}; a dropped or malformed stream mid-answer;
- cancel, disconnect and the token timeout close the upstream connection (fake-llm counts it);
- a client that stops reading pauses the upstream (fake-llm sees its output back up) with bounded
  memory, gets everything once it reads again, or is dropped as a slow consumer if it stays away.

fake-llm is found next to the chatstream binary, else in <source>/build (the sanitizer build has no
bench targets and borrows build/'s), or given with --fake-llm / $CHATSTREAM_FAKE_LLM."""

import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid

import harness
from harness import Conn, E2ETestCase, expected_tokens, now, rss_kib, validate_stream, wait_until

# A key that cannot appear anywhere by chance.
KEY = "sk-e2e-" + uuid.uuid4().hex
MODEL = "fake-model-e2e"
SLOW = harness.SLOW

# Multi-byte UTF-8 of every length (2-byte accents, 3-byte CJK and symbols, 4-byte emoji, a ZWJ
# sequence, a flag, combining marks), JSON's special characters, and whitespace that must survive.
UTF8_TEXT = ("Crème brûlée à la façon de Zoë — naïve café. 日本語のテキスト、中文字符和한국어 문장. "
             "Emoji: 😀 🎉 👩‍👩‍👧‍👦 🇳🇴 and e\u0301 (combining). Quotes \"double\" 'single' back\\slash "
             "tab\there\nnew line, U+2028\u2028separator, ½ ≠ ∞, ﬁ ligature, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 end. ")

SAFE_MESSAGE = re.compile(r"https?://|127\.0\.0\.1|localhost|/v1\b|chat/completions|Bearer|\bsk-", re.IGNORECASE)


def info(msg):
    sys.stderr.write(f"  [info] {msg}\n")


def summary_of(stats):
    return {k: v for k, v in stats.items() if k != "last_request_body"}


def event_json(sm, event_type):
    return [e.json for e in sm.events if e.event == event_type]


class OpenAICase(E2ETestCase):
    def openai_server(self, upstream, key=KEY, key_via="env", **flags):
        """chatstream with the openai provider against `upstream` (a FakeLLM, an Upstream, or a URL)."""
        base_url = upstream if isinstance(upstream, str) else upstream.base_url
        env = {}
        if key is not None and key_via == "env":
            env["LLM_API_KEY"] = key
        elif key is not None:
            flags["llm_api_key"] = key
        flags.setdefault("llm_model", MODEL)
        return self.start_server(workers=1, provider="openai", llm_base_url=base_url, env=env, **flags)

    def turn(self, srv, message="hello", terminal=None, timeout=30.0, body=None):
        """One stream read to its end: (summary, seconds from request to end)."""
        s = srv.stream(message, body=body)
        self.addCleanup(s.close)
        self.assertEqual(s.response.status, 200, s.response)
        sm = validate_stream(s.read_all(timeout * SLOW), terminal=terminal)
        s.close()
        return sm, sm.terminal.t - s.t_sent

    def assertShape(self, sm, body_types=("token",)):
        """meta, generation_start{provider: openai}, then only body_types, then the terminal event."""
        self.assertEqual(sm.types[:2], ["meta", "generation_start"], sm.types)
        gen = sm.events[1].json
        self.assertEqual(gen.get("provider"), "openai", gen)
        for t in sm.types[2:-1]:
            self.assertIn(t, body_types, f"unexpected event in {sm.types}")

    def assertSafeError(self, sm, code, what=""):
        e = sm.terminal.json
        self.assertEqual(sm.terminal.event, "error", f"{what}: {sm.types} {sm.terminal.data}")
        self.assertEqual(e.get("code"), code, f"{what}: {e}")
        msg = e.get("message")
        self.assertTrue(isinstance(msg, str) and msg.strip(), f"{what}: error.message must be text: {e}")
        self.assertNotIn(KEY, msg)
        self.assertIsNone(SAFE_MESSAGE.search(msg), f"{what}: the message shows upstream details: {msg!r}")
        self.assertTrue(isinstance(e.get("tokens"), int) and e["tokens"] >= 0, f"{what}: {e}")
        return e

    def wait_upstream_closed(self, fake, before, within=1.0, what="the upstream connection is closed"):
        """fake-llm counted one more client_closed_early within `within` seconds (a contract bound)."""
        t0 = now()
        st = fake.wait_stat("client_closed_early", before + 1, within * SLOW)
        took = now() - t0
        self.assertEqual(st["open_streams"], 0, f"{what}: fake-llm still has a stream open {summary_of(st)}")
        return took


# ---------------------------------------------------------------------------------------------------
# Hand-written upstreams

class Upstream:
    """A minimal HTTP upstream on a thread: records every request (head and body) and answers each
    with the next canned response (the last one repeats), then closes the connection."""

    def __init__(self, responses):
        self.responses = [r.encode() if isinstance(r, str) else r for r in responses]
        self.requests = []  # (head text, body bytes)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                    length = int(m.group(1)) if m else 0
                    while len(body) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        body += chunk
                    self.requests.append((head.decode("latin-1"), body))
                    answer = self.responses[min(len(self.requests) - 1, len(self.responses) - 1)]
                    conn.sendall(answer)
                except OSError:
                    pass

    def headers(self, i=-1):
        """The request's headers as (lower-cased name, value) pairs, and its request line."""
        head = self.requests[i][0].split("\r\n")
        return head[0], [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in head[1:])]

    def close(self):
        self.stopping = True
        self.sock.close()


def sse_response(*data_lines):
    body = "".join(f"data: {d}\n\n" for d in data_lines)
    return ("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" + body).encode()


def content_chunk(text_json):
    """A chat.completion.chunk whose delta content is the given JSON string literal (escapes kept)."""
    return ('{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":'
            + text_json + '},"finish_reason":null}]}')


STOP_CHUNK = '{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'


# ---------------------------------------------------------------------------------------------------

class Relay(OpenAICase):
    def test_numbered_tokens_in_order_and_usage(self):
        n = 300
        fake = self.start_fake_llm(tokens=n, rate=1000)
        srv = self.openai_server(fake)
        sm, _ = self.turn(srv, terminal="done")
        self.assertShape(sm)
        self.assertEqual(sm.events[1].json.get("context_messages"), 0, sm.events[1].data)
        self.assertEqual(sm.text, expected_tokens(n), "every token, in order, unchanged")
        self.assertGreater(len(sm.tokens), 10, "a paced upstream gives many token events")
        d = sm.terminal.json
        self.assertEqual(d.get("status"), "complete", d)
        self.assertEqual(d.get("tokens"), n, d)
        u = d.get("usage")
        self.assertIsInstance(u, dict, f"done.usage from the upstream: {d}")
        self.assertEqual(u.get("completion_tokens"), n, u)
        self.assertEqual(u.get("total_tokens"), u.get("prompt_tokens", 0) + n, u)
        self.assertGreater(u.get("prompt_tokens", 0), 0, u)
        st = fake.stats()
        self.assertEqual((st["requests"], st["streams_completed"], st["client_closed_early"]), (1, 1, 0),
                         summary_of(st))

    def test_utf8_text_split_across_reads(self):
        # fake-llm --split-sse-lines writes every SSE line in pieces (1 ms apart) cut right after the
        # first byte, after "data:", after the first and the last UTF-8 lead byte of the line (inside a
        # character), and between CR and LF.
        words = len(re.findall(r"[^ \t\n\r\f\v]+", UTF8_TEXT))  # fake-llm's words: ASCII whitespace only
        variants = [
            {},
            {"split_sse_lines": True},
            {"crlf": True},
            {"comments": True},
            {"multi_data": True},
            {"split_sse_lines": True, "crlf": True, "comments": True, "multi_data": True},
        ]
        for flags in variants:
            with self.subTest(**flags):
                fake = self.start_fake_llm(text=UTF8_TEXT, rate=100, **flags)
                srv = self.openai_server(fake)
                sm, _ = self.turn(srv, terminal="done")
                self.assertShape(sm)
                self.assertEqual(sm.text, UTF8_TEXT, f"the concatenated tokens with {flags}")
                self.assertEqual(sm.terminal.json.get("tokens"), words, sm.terminal.data)
                for e in sm.tokens:
                    self.assertNotIn("\ufffd", e.json["content"], "no replacement character")
                srv.stop()
                fake.stop()

    def test_simultaneous_requests_do_not_wait_for_each_other(self):
        # Requests that reach a fresh worker together each get their own upstream transfer at once:
        # none may wait for another's answer to finish (e.g. for its connection to be reused).
        fake = self.start_fake_llm(tokens=60, rate=20)  # 3 s answers
        request = harness.build_request("POST", "/chat/stream", {"message": "hello"})
        waits = []
        for trial in range(3):
            srv = self.openai_server(fake)
            conns = [Conn(srv.addr) for _ in range(4)]
            for c in conns:
                self.addCleanup(c.close)
            t0 = now()
            for c in conns:
                c.send(request, expect=1)
            firsts = []
            for c in conns:
                s = harness.Stream(c, c.read_head(5), t0)
                while (e := s.next_event(10 * SLOW)).event != "token":
                    pass
                firsts.append(round(e.t - t0, 3))
            waits.append(firsts)
            for c in conns:
                c.close()
            srv.stop()
        info(f"first token of 4 simultaneous requests, 3 fresh workers (s): {waits}")
        self.assertLess(max(max(w) for w in waits), 1.0 * SLOW,
                        f"a run waited for another run's 3 s answer before its own first token: {waits}")

    def test_json_escapes_in_upstream_chunks(self):
        # What an upstream may send instead of raw UTF-8: \\u escapes, a surrogate pair, escaped
        # quotes, backslashes and control characters.
        pieces = [r'"caf\u00e9 "', r'"\ud83d\ude00 "', r'"\"q\" \\ "', r'"tab\tnl\n "', r'"\u65e5\u672c "']
        upstream = Upstream([sse_response(*[content_chunk(p) for p in pieces], STOP_CHUNK, "[DONE]")])
        self.addCleanup(upstream.close)
        srv = self.openai_server(upstream)
        sm, _ = self.turn(srv, terminal="done")
        self.assertEqual(sm.text, "".join(json.loads(p) for p in pieces))
        self.assertEqual(sm.terminal.json.get("tokens"), len(pieces))
        self.assertNotIn("usage", sm.terminal.json, "no usage from the upstream, none in done")

    def test_huge_chunk(self):
        # A single 1 MiB content delta after 3 tokens: relayed in full, or a clear error; never a hang.
        fake = self.start_fake_llm(tokens=10, rate=50, fault="huge", fail_after=3)
        srv = self.openai_server(fake, run_timeout="20s")
        sm, took = self.turn(srv, timeout=20)
        self.assertLess(took, 5 * SLOW, "the stream ends promptly")
        huge = "x" * (1 << 20)
        if sm.terminal.event == "done":
            info(f"a 1 MiB chunk is relayed in full ({len(sm.tokens)} token events, {took:.2f} s)")
            self.assertEqual(sm.text, "t0 t1 t2 " + huge + "t3 t4 t5 t6 t7 t8 t9 ")
            self.assertEqual(sm.terminal.json.get("tokens"), 11)
        else:
            info(f"a 1 MiB chunk ends the run with {sm.terminal.data}")
            self.assertSafeError(sm, "upstream", "huge chunk")
            self.assertEqual(sm.text, "t0 t1 t2 ", "the tokens before it are delivered")
            self.wait_upstream_closed(fake, 0)
        self.assertTrue(srv.alive())


# ---------------------------------------------------------------------------------------------------

class UpstreamRequest(OpenAICase):
    def test_request_has_key_model_stream_and_message(self):
        fake = self.start_fake_llm(tokens=3, rate=0)
        srv = self.openai_server(fake)
        message = 'Quelle est la "hauteur" du phare ? 灯台 🗼 \\ fin'
        sm, _ = self.turn(srv, message, terminal="done")
        st = fake.stats()
        self.assertEqual(st["last_authorization"], f"Bearer {KEY}")
        self.assertLessEqual(st["last_request_body_bytes"], 4096, "small enough for fake-llm to show whole")
        body = json.loads(st["last_request_body"])
        self.assertEqual(body.get("model"), MODEL, body)
        self.assertIs(body.get("stream"), True, body)
        msgs = body.get("messages")
        self.assertIsInstance(msgs, list, body)
        self.assertEqual(msgs[-1], {"role": "user", "content": message}, "the user message, verbatim, last")
        self.assertEqual([m.get("role") for m in msgs], ["system", "user"], "no history without a session store")
        self.assertNotIn("tools", body, "no tools are offered without a knowledge base")

    def test_key_from_the_flag_and_no_key(self):
        fake = self.start_fake_llm(tokens=3, rate=0)
        srv = self.openai_server(fake, key_via="flag")
        self.turn(srv, terminal="done")
        self.assertEqual(fake.stats()["last_authorization"], f"Bearer {KEY}")
        srv.stop()
        srv = self.openai_server(fake, key=None)
        self.turn(srv, terminal="done")
        self.assertIsNone(fake.stats()["last_authorization"], "no key: no Authorization header")

    def test_extra_headers_arrive(self):
        # Seen by fake-llm: its per-request overrides are headers, so X-Fake-Tokens: 7 proves arrival.
        fake = self.start_fake_llm(tokens=50, rate=0)
        srv = self.openai_server(fake, llm_headers="X-Fake-Tokens: 7;X-Fake-Key: e2e")
        sm, _ = self.turn(srv, terminal="done")
        self.assertEqual(sm.text, expected_tokens(7), "X-Fake-Tokens from --llm-headers reached the upstream")
        srv.stop()
        # And byte-exact, on an upstream that records the whole request (flag, then the environment).
        answer = sse_response(content_chunk('"ok"'), STOP_CHUNK, "[DONE]")
        for via in ("flag", "env"):
            with self.subTest(via=via):
                upstream = Upstream([answer])
                self.addCleanup(upstream.close)
                headers = "X-Org-Id: acme-42;X-Trace: abc def"
                if via == "flag":
                    srv = self.openai_server(upstream, llm_headers=headers)
                else:
                    srv = self.start_server(workers=1, provider="openai", env={
                        "LLM_BASE_URL": upstream.base_url, "LLM_MODEL": MODEL, "LLM_API_KEY": KEY,
                        "LLM_EXTRA_HEADERS": headers})
                sm, _ = self.turn(srv, terminal="done")
                self.assertEqual(sm.text, "ok")
                self.assertEqual(len(upstream.requests), 1)
                line, hdrs = upstream.headers()
                self.assertEqual(line, "POST /v1/chat/completions HTTP/1.1", line)
                for name, value in (("authorization", f"Bearer {KEY}"), ("x-org-id", "acme-42"),
                                    ("x-trace", "abc def"), ("content-type", "application/json")):
                    self.assertIn((name, value), hdrs, f"header {name} in {hdrs}")
                self.assertEqual(json.loads(upstream.requests[0][1]).get("model"), MODEL)
                srv.stop()


# ---------------------------------------------------------------------------------------------------

class Secrets(OpenAICase):
    def test_key_never_leaks(self):
        # An upstream that echoes the key in its 401 (as OpenAI's "Incorrect API key provided: sk-…"
        # does), then every fault mode; the key is searched in everything chatstream shows.
        echo = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}. Authorization: Bearer {KEY}",
                                     "type": "invalid_request_error", "code": "invalid_api_key"}})
        upstream = Upstream([f"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(echo)}\r\nConnection: close\r\n\r\n{echo}"])
        self.addCleanup(upstream.close)
        seen = []
        for via in ("env", "flag"):
            srv = self.openai_server(upstream, key_via=via, log_level="debug", llm_max_retries=1)
            sm, _ = self.turn(srv, terminal="error")
            self.assertSafeError(sm, "upstream", "401 from the upstream")
            seen += [e.data for e in sm.events]
            r = srv.request("POST", "/chat", {"message": "hello"})
            self.assertJsonError(r, 502, "upstream")
            seen.append(r.text())
            r = srv.request("POST", "/v1/chat/completions",
                            {"model": "chatstream", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
            seen.append(r.text())
            seen += [srv.request("GET", "/metrics").text(), srv.request("GET", "/healthz").text()]
            srv.stop()
            seen.append(srv.log_text())
        self.assertEqual(len(upstream.requests), 6, "a 401 is not retried (3 requests per server)")
        self.assertIn(f"Bearer {KEY}", upstream.requests[0][0], "the key was really sent")

        for fault in ("500", "429", "stall", "disconnect", "malformed"):
            fake = self.start_fake_llm(tokens=5, rate=0, fault=fault, retry_after=0)
            srv = self.openai_server(fake, log_level="debug", llm_max_retries=1, token_timeout="1s")
            sm, _ = self.turn(srv)
            seen += [e.data for e in sm.events]
            seen += [srv.request("GET", "/metrics").text(), srv.request("GET", "/healthz").text()]
            srv.stop()
            seen.append(srv.log_text())
            self.assertEqual(fake.stats()["last_authorization"], f"Bearer {KEY}")
        srv = self.openai_server(f"http://127.0.0.1:{harness.free_port()}/v1", log_level="debug", llm_max_retries=1)
        sm, _ = self.turn(srv, terminal="error")
        self.assertSafeError(sm, "upstream", "connection refused")
        seen += [e.data for e in sm.events]
        srv.stop()
        seen.append(srv.log_text())
        for i, text in enumerate(seen):
            self.assertNotIn(KEY, text, f"the API key appears in output #{i}: {text[:2000]}")
            self.assertNotIn(KEY[7:], text, f"part of the API key appears in output #{i}")


# ---------------------------------------------------------------------------------------------------

class Faults(OpenAICase):
    def test_500_twice_then_success(self):
        fake = self.start_fake_llm(tokens=5, rate=0, fault="500", fail_times=2)
        srv = self.openai_server(fake)
        sm, took = self.turn(srv, terminal="done", timeout=20)
        self.assertShape(sm)
        self.assertEqual(sm.text, expected_tokens(5))
        st = fake.stats()
        self.assertEqual((st["requests"], st["faults"]["500"], st["streams_completed"]), (3, 2, 1), summary_of(st))
        self.assertGreater(took, 0.2, "the retries are spaced by a backoff")
        info(f"500 ×2 then success: first token after {sm.terminal.json['ttft_ms']:.0f} ms")

    def test_429_honours_retry_after(self):
        # Retry-After: 2 is longer than the first backoff: the retry must wait for it.
        fake = self.start_fake_llm(tokens=5, rate=0, fault="429", fail_times=1, retry_after=2)
        srv = self.openai_server(fake)
        sm, took = self.turn(srv, terminal="done", timeout=20)
        self.assertEqual(sm.text, expected_tokens(5))
        st = fake.stats()
        self.assertEqual((st["requests"], st["faults"]["429"]), (2, 1), summary_of(st))
        ttft = sm.terminal.json["ttft_ms"] / 1000
        self.assertBetween(ttft, 2.0, 2.0 + 1.5 * SLOW, "first token after Retry-After: 2")
        # Twice, Retry-After: 1 → at least 2 s.
        srv.stop()
        fake = self.start_fake_llm(tokens=5, rate=0, fault="429", fail_times=2, retry_after=1)
        srv = self.openai_server(fake)
        sm, took = self.turn(srv, terminal="done", timeout=20)
        self.assertEqual(sm.text, expected_tokens(5))
        self.assertEqual(fake.stats()["requests"], 3)
        self.assertGreaterEqual(sm.terminal.json["ttft_ms"] / 1000, 2.0, "two waits of Retry-After: 1")

    def test_always_failing_upstream_ends_in_error_after_the_retries(self):
        for fault, retries in (("500", 3), ("429", 3), ("500", 1), ("500", 0)):
            with self.subTest(fault=fault, retries=retries):
                fake = self.start_fake_llm(tokens=5, rate=0, fault=fault, fail_times=0, retry_after=1)
                srv = self.openai_server(fake, llm_max_retries=retries)
                sm, took = self.turn(srv, terminal="error", timeout=30)
                self.assertShape(sm)
                self.assertSafeError(sm, "upstream", f"{fault} always")
                self.assertEqual(sm.tokens, [])
                self.assertEqual(sm.terminal.json.get("tokens"), 0)
                st = fake.stats()
                self.assertEqual(st["requests"], 1 + retries, f"one request and {retries} retries: {summary_of(st)}")
                if fault == "429":
                    self.assertGreaterEqual(took, retries * 1.0, "each retry waited Retry-After: 1")
                self.assertLess(took, 15 * SLOW)
                m = srv.metrics()
                self.assertEqual(m.value("chatstream_run_errors_total", code="upstream"), 1)
                self.assertEqual(m.value("chatstream_runs_total", status="error"), 1)
                srv.stop()

    def test_connection_refused_ends_in_error_after_the_retries(self):
        port = harness.free_port()  # nothing listens there
        srv = self.openai_server(f"http://127.0.0.1:{port}/v1")
        sm, took = self.turn(srv, terminal="error", timeout=30)
        self.assertShape(sm)
        e = self.assertSafeError(sm, "upstream", "connection refused")
        self.assertNotIn(str(port), e["message"])
        self.assertEqual(sm.tokens, [])
        retries = [line for line in srv.log_text().splitlines() if '"upstream retry"' in line]
        self.assertEqual(len(retries), 3, f"--llm-max-retries 3 (default): {retries}")
        self.assertLess(took, 15 * SLOW)
        info(f"connection refused: error after {took:.2f} s")

    def test_stall_is_a_token_timeout_and_closes_the_upstream(self):
        for stall_after in (3, 0):
            with self.subTest(stall_after=stall_after):
                fake = self.start_fake_llm(tokens=10, rate=50, fault="stall", stall_after=stall_after)
                srv = self.openai_server(fake, token_timeout="1s")
                s = srv.stream("hello")
                self.addCleanup(s.close)
                sm = validate_stream(s.read_all(10 * SLOW), terminal="error")
                t_error = now()
                self.assertShape(sm)
                self.assertSafeError(sm, "timeout", "stall")
                self.assertEqual(sm.text, expected_tokens(stall_after), "the tokens before the stall")
                last = sm.tokens[-1].t if sm.tokens else s.t_sent
                self.assertBetween(sm.terminal.t - last, 0.9, 1.0 + 0.8 * SLOW, "error{timeout} --token-timeout after")
                took = self.wait_upstream_closed(fake, 0, within=1.0)
                info(f"stall after {stall_after}: upstream closed {now() - t_error:.3f} s after the error "
                     f"(polled {took:.3f} s)")
                self.assertEqual(fake.stats()["requests"], 1, "a stall is not retried")
                m = srv.metrics()
                self.assertEqual(m.value("chatstream_runs_total", status="timeout"), 1)
                srv.stop()

    def test_disconnect_mid_stream(self):
        fake = self.start_fake_llm(tokens=10, rate=50, fault="disconnect", fail_after=3)
        srv = self.openai_server(fake)
        sm, took = self.turn(srv, terminal="error", timeout=10)
        self.assertShape(sm)
        e = self.assertSafeError(sm, "upstream", "disconnect mid-stream")
        self.assertEqual(sm.text, expected_tokens(3), "the tokens so far are delivered")
        self.assertEqual(e.get("tokens"), 3, e)
        self.assertEqual(fake.stats()["requests"], 1, "not retried after the first token")
        self.assertLess(took, 3 * SLOW)

    def test_disconnect_before_the_first_token_is_retried(self):
        fake = self.start_fake_llm(tokens=5, rate=0, fault="disconnect", fail_after=0, fail_times=1)
        srv = self.openai_server(fake)
        sm, _ = self.turn(srv, terminal="done", timeout=20)
        self.assertEqual(sm.text, expected_tokens(5))
        st = fake.stats()
        self.assertEqual((st["requests"], st["faults"]["disconnect"]), (2, 1), summary_of(st))

    def test_malformed_chunk(self):
        for fail_after in (3, 0):
            with self.subTest(fail_after=fail_after):
                fake = self.start_fake_llm(tokens=10, rate=50, fault="malformed", fail_after=fail_after)
                srv = self.openai_server(fake)
                sm, took = self.turn(srv, terminal="error", timeout=20)
                self.assertShape(sm)
                e = self.assertSafeError(sm, "upstream", "malformed chunk")
                self.assertEqual(sm.text, expected_tokens(fail_after), "the tokens before it are delivered")
                self.assertEqual(e.get("tokens"), fail_after, e)
                self.wait_upstream_closed(fake, 0, within=1.0, what="chatstream drops a stream it cannot read")
                info(f"malformed after {fail_after}: {fake.stats()['requests']} request(s), error after {took:.2f} s")
                srv.stop()


# ---------------------------------------------------------------------------------------------------

class CancelAndDisconnect(OpenAICase):
    def start_answer(self, srv):
        s = srv.stream("hello")
        self.addCleanup(s.close)
        meta = s.next_event(5)
        self.assertEqual(meta.event, "meta")
        while s.next_event(5 * SLOW).event != "token":
            pass
        return s, meta.json["run_id"]

    def test_cancel_closes_the_upstream_connection(self):
        fake = self.start_fake_llm(tokens=1000, rate=20)
        srv = self.openai_server(fake)
        s, run_id = self.start_answer(srv)
        self.assertEqual(fake.stats()["open_streams"], 1)
        r = srv.request("POST", "/chat/cancel", {"run_id": run_id})
        self.assertEqual(r.status, 200, r)
        t0 = now()
        sm = validate_stream(s.read_all(5), terminal="cancelled")
        self.assertTrue(expected_tokens(1000).startswith(sm.text))
        took = self.wait_upstream_closed(fake, 0, within=1.0)
        info(f"cancel: upstream closed within {now() - t0:.3f} s")
        m = srv.metrics()
        self.assertEqual(m.value("chatstream_runs_total", status="cancelled"), 1)
        self.assertEqual(m.value("chatstream_active_runs"), 0)
        self.assertLess(took, 1.0)

    def test_client_disconnect_closes_the_upstream_connection(self):
        # Once the disconnect grace is over (no resume came), the upstream transfer is closed at once.
        fake = self.start_fake_llm(tokens=1000, rate=20)
        srv = self.openai_server(fake, disconnect_grace="300ms")
        s, _ = self.start_answer(srv)
        t0 = now()
        s.close()
        time.sleep(0.2)
        self.assertEqual(fake.stats()["open_streams"], 1, "within the grace the answer goes on for a resume")
        self.wait_upstream_closed(fake, 0, within=1.0)
        info(f"disconnect: upstream closed within {now() - t0:.3f} s")
        wait_until(lambda: srv.metrics().value("chatstream_runs_total", status="disconnected") == 1, 1.0 * SLOW,
                   what='chatstream_runs_total{status="disconnected"} 1')

    def test_cancel_during_retry_backoff_sends_no_more_requests(self):
        fake = self.start_fake_llm(tokens=5, rate=0, fault="429", fail_times=0, retry_after=2)
        srv = self.openai_server(fake)
        s = srv.stream("hello")
        self.addCleanup(s.close)
        run_id = s.next_event(5).json["run_id"]
        fake.wait_stat("requests", 1, 5 * SLOW)
        r = srv.request("POST", "/chat/cancel", {"run_id": run_id})
        self.assertEqual(r.status, 200, r)
        validate_stream(s.read_all(5), terminal="cancelled")
        time.sleep(2.5)
        self.assertEqual(fake.stats()["requests"], 1, "no retry is sent for a cancelled run")

    def test_disconnect_while_the_upstream_stalls(self):
        fake = self.start_fake_llm(tokens=10, rate=50, fault="stall", stall_after=2)
        srv = self.openai_server(fake, disconnect_grace="0")
        s, _ = self.start_answer(srv)
        time.sleep(0.3)  # the fake has stalled after its 2 tokens
        self.assertEqual(fake.stats()["open_streams"], 1)
        s.close()
        self.wait_upstream_closed(fake, 0, within=1.0)


# ---------------------------------------------------------------------------------------------------

class SlowClient(OpenAICase):
    N = 200_000  # ~30 MB of upstream chunks: far more than every socket buffer on the way
    RSS_LIMIT_KIB = 64 * 1024
    RSS_GROWTH_KIB = 16 * 1024

    def slow_setup(self, grace):
        fake = self.start_fake_llm(tokens=self.N, rate=0)
        srv = self.openai_server(fake, output_hard_cap=32768, output_high_water=8192, send_buffer=4096,
                                 slow_consumer_grace=grace, run_timeout="120s")
        worker = srv.worker_pids()[0]
        rss_before = rss_kib(worker)
        c = Conn(srv.addr, rcvbuf=4096)
        self.addCleanup(c.close)
        s = harness.open_stream(srv.addr, "a very long answer please", conn=c)
        self.assertEqual(s.response.status, 200)
        return fake, srv, worker, rss_before, c, s

    def test_paused_upstream_then_client_reads_everything(self):
        fake, srv, worker, rss_before, c, s = self.slow_setup("60s")
        t0 = now()
        peak = rss_before
        st = fake.wait_stat("paused_detected", 1, 10 * SLOW)
        info(f"fake-llm saw its output back up {now() - t0:.2f} s after the request")
        # Hold still for 2 s more: the upstream stays paused, the worker does not buffer the answer.
        end = now() + 2.0
        while now() < end:
            peak = max(peak, rss_kib(worker))
            time.sleep(0.1)
        st = fake.stats()
        self.assertEqual((st["streams_completed"], st["open_streams"]), (0, 1),
                         f"the upstream is held back, not drained into chatstream: {summary_of(st)}")
        self.assertGreaterEqual(st["paused_detected"], 1)
        m = srv.metrics()
        self.assertEqual(m.value("chatstream_active_streams"), 1)
        self.assertEqual(m.value("chatstream_slow_consumer_closes_total"), 0)
        info(f"worker RSS {rss_before} KiB before, peak {peak} KiB while paused")
        self.assertLess(peak, self.RSS_LIMIT_KIB, "worker RSS while the client does not read")
        self.assertLess(peak - rss_before, self.RSS_GROWTH_KIB, "worker RSS growth while the client does not read")

        t1 = now()
        sm = validate_stream(s.read_all(120 * SLOW), terminal="done")
        info(f"then read {len(sm.tokens)} token events in {now() - t1:.2f} s")
        self.assertEqual(sm.text, expected_tokens(self.N), "every token, in order, after the pause")
        self.assertEqual(sm.terminal.json.get("tokens"), self.N)
        self.assertEqual(sm.terminal.json.get("usage", {}).get("completion_tokens"), self.N)
        st = fake.stats()
        self.assertEqual((st["streams_completed"], st["client_closed_early"]), (1, 0), summary_of(st))
        self.assertLess(rss_kib(worker), self.RSS_LIMIT_KIB)

    def assertDroppedAsSlowConsumer(self, fake, srv, c, t0, grace, within):
        """The run ends as slow_consumer: the upstream connection is closed, the client's too."""
        try:
            st = fake.wait_stat("client_closed_early", 1, within * SLOW)
        except AssertionError as e:
            m = srv.metrics()
            self.fail(f"a client that stopped reading was not dropped {within} s after the request "
                      f"(--slow-consumer-grace {grace} s): {e}; chatstream: active_streams "
                      f"{m.value('chatstream_active_streams')}, slow_consumer_closes "
                      f"{m.value('chatstream_slow_consumer_closes_total')}, tokens_sent "
                      f"{m.value('chatstream_tokens_sent_total')}, bytes_sent {m.value('chatstream_bytes_sent_total')}")
        took = now() - t0
        self.assertGreaterEqual(took, grace, "not before the grace time")
        self.assertEqual(st["open_streams"], 0, summary_of(st))
        m = wait_until(lambda: (lambda m: m.value("chatstream_active_streams") == 0 and m)(srv.metrics()),
                       2 * SLOW, what="active_streams 0")
        self.assertEqual(m.value("chatstream_slow_consumer_closes_total"), 1)
        self.assertEqual(m.value("chatstream_run_errors_total", code="slow_consumer"), 1)
        self.assertTrue(c.wait_closed(10 * SLOW), "chatstream closes the slow consumer's connection")
        r = c.parser.done[0] if c.parser.done else c.parser.current
        p = harness.SSEParser()
        p.feed(bytes(r.body), now())
        events = [i for i in p.items if isinstance(i, harness.Event)]
        text = "".join(e.json.get("content", "") for e in events if e.event == "token")
        self.assertNotIn("done", [e.event for e in events])
        terminal = [e for e in events if e.event in harness.TERMINAL]
        if terminal:  # best effort, per the contract
            self.assertEqual((terminal[-1].event, terminal[-1].json.get("code")), ("error", "slow_consumer"))
        return took, text

    def test_client_that_stays_away_is_dropped_as_slow_consumer(self):
        fake, srv, worker, rss_before, c, s = self.slow_setup("1s")
        t0 = s.t_sent
        fake.wait_stat("paused_detected", 1, 10 * SLOW)
        took, text = self.assertDroppedAsSlowConsumer(fake, srv, c, t0, 1.0, 5.0)
        self.assertTrue(expected_tokens(self.N).startswith(text), "what arrived is in order")
        info(f"slow consumer dropped {took:.2f} s after the request, {len(text)} bytes of text received")
        self.assertLess(rss_kib(worker), self.RSS_LIMIT_KIB)

    def test_client_that_stops_after_a_burst_is_dropped_as_slow_consumer(self):
        # A burst (a 1 MiB delta) pushes the output over --output-hard-cap at once: the upstream is
        # paused. The first write then hands part of it to the kernel, so the output falls back under
        # the hard cap, but stays above --output-high-water: the upstream stays paused, the client
        # never reads again. It must still be dropped after the grace time, not kept until
        # --run-timeout with its upstream connection open.
        fake = self.start_fake_llm(tokens=1000, rate=5, fault="huge", fail_after=0)  # still answering
        srv = self.openai_server(fake, output_hard_cap=(1 << 20) - 16384, output_high_water=8192,
                                 send_buffer=65536, slow_consumer_grace="1s", run_timeout="60s")
        c = Conn(srv.addr, rcvbuf=4096)
        self.addCleanup(c.close)
        s = harness.open_stream(srv.addr, "hello", conn=c)
        took, text = self.assertDroppedAsSlowConsumer(fake, srv, c, s.t_sent, 1.0, 5.0)
        self.assertTrue(text == "" or ("x" * (1 << 20)).startswith(text), "what arrived is the burst's text")


# ---------------------------------------------------------------------------------------------------

KB = {
    "lighthouse.md": "# The Skarvholmen Lighthouse\n\nThe Skarvholmen lighthouse was built in 1887 by the engineer "
                     "Halvard Brekke. Its cast-iron tower is 31 metres tall and was painted red in 1923.\n",
    "tea.md": "# Wuyi Oolong\n\nWuyi oolong leaves are roasted over charcoal for twelve hours, which gives the tea "
              "its smoky, mineral taste.\n",
}
TOOL_PREFIX = "Based on the tool result: "


class WithDatabase(OpenAICase):
    @classmethod
    def setUpClass(cls):
        cls.pg = cls.start_class_postgres()
        cls.pg.migrate()
        cls.kb = tempfile.mkdtemp(prefix="chatstream-kb-")
        cls.addClassCleanup(shutil.rmtree, cls.kb, True)
        for name, text in KB.items():
            with open(os.path.join(cls.kb, name), "w", encoding="utf-8") as f:
                f.write(text)
        cls.pg.ingest(cls.kb)

    def assistant_content(self, run_id):
        rows = self.pg.rows("SELECT content, status FROM messages WHERE role = 'assistant' "
                            f"AND run_id = '{run_id}'")
        return rows[0] if rows else None

    def test_tool_call_round_trip(self):
        fake = self.start_fake_llm(tool_call="search_knowledge_base", tokens=5, rate=0)
        srv = self.openai_server(fake, database_url=self.pg)
        question = "When was the Skarvholmen lighthouse built?"
        sm, _ = self.turn(srv, question, terminal="done")
        t = sm.types
        self.assertIn("tool_call", t, t)
        i = t.index("tool_call")
        self.assertEqual(t[i - 1], "generation_start", f"the tool call comes from the model: {t}")
        self.assertEqual(t[:5], ["meta", "retrieval_start", "retrieval_complete", "reranking_start",
                                 "reranking_complete"], t)
        after = t[i + 1:]
        self.assertEqual(after[:4], ["retrieval_start", "retrieval_complete", "reranking_start", "reranking_complete"],
                         f"the tool's search shows its stages: {t}")
        rest = after[4:]
        if rest and rest[0] == "citations":
            rest = rest[1:]
        self.assertEqual(rest[0], "tool_result", t)
        self.assertTrue(all(x == "token" for x in rest[1:-1]) and rest[-1] == "done", t)
        self.assertEqual(t.count("tool_call"), 1)

        call = event_json(sm, "tool_call")[0]
        result = event_json(sm, "tool_result")[0]
        self.assertEqual(call.get("name"), "search_knowledge_base", call)
        self.assertTrue(isinstance(call.get("id"), str) and call["id"], call)
        self.assertEqual(json.loads(call.get("arguments", "")), {"query": question}, call)
        second_search = [e.json for e in sm.events if e.event == "retrieval_start"][1]
        self.assertEqual(second_search.get("query"), question, second_search)
        self.assertEqual((result.get("id"), result.get("name"), result.get("truncated")),
                         (call["id"], "search_knowledge_base", False), result)
        self.assertIn("1887", result.get("content", ""), "the tool result holds the passage")
        self.assertIn("Skarvholmen", result["content"])

        self.assertTrue(sm.text.startswith(TOOL_PREFIX), sm.text)
        self.assertTrue(sm.text.startswith(TOOL_PREFIX + result["content"][:20]),
                        f"the model quoted the tool result it was sent: {sm.text!r}")
        self.assertTrue(sm.text.endswith(expected_tokens(5)), sm.text)
        st = fake.stats()
        self.assertEqual((st["requests"], st["tool_call_requests"], st["tool_result_requests"]), (2, 1, 1),
                         summary_of(st))
        # The second request carried the assistant's tool call and the tool's result.
        if st["last_request_body_bytes"] <= 4096:
            msgs = json.loads(st["last_request_body"])["messages"]
            self.assertEqual(msgs[-1], {"role": "tool", "tool_call_id": call["id"], "content": result["content"]})
            self.assertEqual(msgs[-2].get("role"), "assistant")
            self.assertEqual(msgs[-2]["tool_calls"][0]["id"], call["id"])
            self.assertEqual(msgs[-2]["tool_calls"][0]["function"],
                             {"name": "search_knowledge_base", "arguments": call["arguments"]})
        row = self.assistant_content(sm.run_id)
        self.assertEqual(row, {"content": sm.text, "status": "complete"}, "the answer is stored as streamed")

    def test_tool_turn_limit(self):
        # The model would call the tool 3 times; --llm-max-tool-turns N lets N calls through and then
        # stops offering tools.
        for limit in (1, 2):
            with self.subTest(limit=limit):
                fake = self.start_fake_llm(tool_call="search_knowledge_base", tool_turns=3, tokens=3, rate=0)
                srv = self.openai_server(fake, database_url=self.pg, llm_max_tool_turns=limit)
                sm, _ = self.turn(srv, "How long are Wuyi oolong leaves roasted?", terminal="done")
                self.assertEqual(sm.types.count("tool_call"), limit, sm.types)
                self.assertEqual(sm.types.count("tool_result"), limit, sm.types)
                self.assertTrue(sm.text.startswith(TOOL_PREFIX) and sm.text.endswith(expected_tokens(3)), sm.text)
                st = fake.stats()
                self.assertEqual((st["tool_call_requests"], st["requests"]), (limit, limit + 1), summary_of(st))
                srv.stop()

    def test_second_turn_sends_the_history(self):
        fake = self.start_fake_llm(tokens=4, rate=0)
        srv = self.openai_server(fake, database_url=self.pg)
        first, _ = self.turn(srv, "When was the Skarvholmen lighthouse built?", terminal="done")
        self.assertEqual(first.text, expected_tokens(4))
        second, _ = self.turn(srv, body={"message": "Who built it?", "session_id": first.session_id}, terminal="done")
        self.assertEqual(event_json(second, "generation_start")[0].get("context_messages"), 2)
        st = fake.stats()
        self.assertLessEqual(st["last_request_body_bytes"], 4096)
        body = json.loads(st["last_request_body"])
        msgs = body["messages"]
        self.assertEqual([m["role"] for m in msgs], ["system", "user", "assistant", "user"], msgs)
        self.assertEqual(msgs[1:], [{"role": "user", "content": "When was the Skarvholmen lighthouse built?"},
                                    {"role": "assistant", "content": expected_tokens(4)},
                                    {"role": "user", "content": "Who built it?"}])
        self.assertIn("Halvard Brekke", msgs[0]["content"], "the kept passages are in the system message")
        self.assertEqual(body.get("tools", [{}])[0].get("function", {}).get("name"), "search_knowledge_base",
                         "with a knowledge base the search tool is offered")
        self.assertEqual(st["last_authorization"], f"Bearer {KEY}")


if __name__ == "__main__":
    harness.main()
