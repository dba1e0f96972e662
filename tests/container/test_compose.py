"""The compose stack (compose.yaml) with the real images, end to end: `make test-container`.

Brings up postgres + chatstream + nginx from the images `make image` built, under a project name of
its own and with nginx published on a free loopback port, then checks through nginx:
  - the web page and /healthz, and every container's own HEALTHCHECK command;
  - a stream end to end (stages, citations from the bundled knowledge base, tokens, done);
  - the cancel endpoint stopping a running stream (`cancelled`);
  - a restart of the chatstream container keeps the conversation (PostgreSQL holds it);
  - `down` then `up` again keeps it too (the named volume);
  - SIGTERM to the chatstream container drains: the running stream ends with a terminal event
    (`error{code:"shutdown"}` at the drain deadline, 1 s here), the container exits by itself (status 0, not
    killed), and the partial answer is stored.
Everything is removed at the end (`down -v`), also when a check fails.

Environment: CONTAINER_ENGINE (podman or docker), COMPOSE (the compose command, default
`podman-compose` or `docker compose`), IMAGE / PG_IMAGE as in scripts/image.sh.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness  # noqa: E402  (tests/e2e/harness.py: HTTP, SSE and stream validation helpers)

ENGINE = os.environ.get("CONTAINER_ENGINE", "podman")
COMPOSE = shlex.split(os.environ.get("COMPOSE") or ("podman-compose" if ENGINE == "podman" else "docker compose"))
PROJECT = f"cstest{os.getpid()}"
PORT = harness.free_port()
ADDR = ("127.0.0.1", PORT)
# A few pages of the bundled manual are enough to see retrieval and citations; the whole manual
# (1,169 pages) would make every first start of the test minutes longer.
KB = "/usr/share/chatstream/knowledge-base/postgresql-manual/indexes-partial.html " \
     "/usr/share/chatstream/knowledge-base/postgresql-manual/sql-vacuum.html " \
     "/usr/share/chatstream/knowledge-base/postgresql-manual/mvcc-intro.html"
ENV = dict(os.environ,
           CHATSTREAM_HTTP_PORT=str(PORT),
           CHATSTREAM_INGEST_PATHS=KB,
           CHATSTREAM_DRAIN_TIMEOUT="1s",
           # Slow enough that a stream is still running when it is cancelled or drained.
           CHATSTREAM_EXTRACTIVE_RATE="8",
           CHATSTREAM_WORKERS="2")


def log(msg: str) -> None:
    print(f"[container] {msg}", file=sys.stderr, flush=True)


def run(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    p = subprocess.run(list(args), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def compose(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return run(*COMPOSE, "-p", PROJECT, "-f", "compose.yaml", *args, check=check, timeout=timeout)


def container(service: str) -> str:
    """The container of a service, whichever naming the compose tool uses."""
    out = run(ENGINE, "ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}",
              "--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Names}}").stdout.split()
    if not out:
        raise AssertionError(f"no container for service {service} in project {PROJECT}")
    return out[0]


def healthy(service: str) -> bool:
    """Runs the image's/compose's own HEALTHCHECK command (podman runs it on demand: no systemd timer
    drives it here), or reads docker's health status."""
    name = container(service)
    if ENGINE == "podman":
        return run(ENGINE, "healthcheck", "run", name, check=False, timeout=30).returncode == 0
    status = run(ENGINE, "inspect", "-f", "{{.State.Health.Status}}", name, check=False).stdout.strip()
    return status == "healthy"


def wait_healthy(*services: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    for service in services:
        while not healthy(service):
            if time.monotonic() > deadline:
                logs = run(ENGINE, "logs", "--tail", "40", container(service), check=False)
                raise AssertionError(f"{service} not healthy after {timeout}s:\n{logs.stdout}{logs.stderr}")
            time.sleep(1)


def wait_http(timeout: float = 60) -> None:
    def ok():
        try:
            return harness.request(ADDR, "GET", "/healthz", timeout=3).status == 200
        except OSError:
            return False
    harness.wait_until(ok, timeout, interval=0.5, what=f"GET /healthz through nginx on :{PORT}")


def chat(message: str, session_id: str | None = None) -> harness.StreamSummary:
    body = {"message": message}
    if session_id:
        body["session_id"] = session_id
    s = harness.open_stream(ADDR, body=body, timeout=30)
    assert s.response.status == 200, s.response
    items = s.read_all(timeout=120)
    s.close()
    return harness.validate_stream(items)


def messages(session_id: str) -> list[dict]:
    r = harness.request(ADDR, "GET", f"/sessions/{session_id}/messages", timeout=10)
    assert r.status == 200, r
    return r.json()["messages"]


class ComposeStack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        compose("down", "-v", check=False)
        t0 = time.monotonic()
        compose("up", "-d")
        wait_healthy("postgres", "chatstream", "nginx")
        wait_http()
        log(f"stack up and healthy in {time.monotonic() - t0:.1f}s (nginx on 127.0.0.1:{PORT})")

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("KEEP_STACK"):
            log(f"KEEP_STACK set: project {PROJECT} left running")
            return
        compose("down", "-v", "-t", "20", check=False, timeout=180)
        # podman-compose 1.0 leaves the project's network behind.
        if ENGINE == "podman":
            run(ENGINE, "network", "rm", f"{PROJECT}_default", check=False)

    def test_1_page_health_and_stream(self):
        page = harness.request(ADDR, "GET", "/", timeout=10)
        self.assertEqual(page.status, 200)
        self.assertIn('src="app.js"', page.text())
        for asset in ("/app.js", "/chatstream-client.js", "/style.css"):
            self.assertEqual(harness.request(ADDR, "GET", asset, timeout=10).status, 200, asset)
        health = harness.request(ADDR, "GET", "/healthz", timeout=10)
        self.assertEqual(health.status, 200, health)

        summary = chat("How do I create a partial index?")
        types = summary.types
        for stage in ("retrieval_start", "retrieval_complete", "reranking_complete", "citations", "generation_start"):
            self.assertIn(stage, types)
        self.assertEqual(summary.terminal.type, "done", harness.describe_items(summary.events))
        self.assertIn("partial", summary.text.lower())
        cited = [e for e in summary.events if e.type == "citations"][-1].json["citations"]
        self.assertTrue(any("indexes-partial" in c["source"] for c in cited), cited)
        stored = messages(summary.session_id)
        self.assertEqual([m["role"] for m in stored], ["user", "assistant"])
        self.assertEqual(stored[1]["status"], "complete")
        type(self).session_id = summary.session_id

    def test_2_cancel(self):
        s = harness.open_stream(ADDR, body={"message": "What does VACUUM do?"}, timeout=30)
        self.assertEqual(s.response.status, 200)
        meta = s.next_event(timeout=30)
        self.assertEqual(meta.type, "meta")
        run_id = meta.json["run_id"]
        while (e := s.next_event(timeout=30)) is not None and e.type != "token":
            pass
        r = harness.request(ADDR, "POST", "/chat/cancel", {"run_id": run_id}, timeout=10)
        self.assertEqual(r.status, 200, r)
        items = s.read_all(timeout=30)
        s.close()
        summary = harness.validate_stream(items)
        self.assertEqual(summary.terminal.type, "cancelled")
        # The partial answer is written as the run ends, next to the `cancelled` event: wait for it.
        stored = harness.wait_until(lambda: (m := messages(summary.session_id)) and m[-1]["role"] == "assistant" and m,
                                    10, interval=0.2, what="the cancelled answer stored")
        self.assertEqual(stored[-1]["status"], "cancelled")
        self.assertTrue(stored[-1]["content"])

    def test_3_restart_keeps_conversation(self):
        session_id = type(self).session_id
        run(ENGINE, "restart", container("chatstream"), timeout=120)
        wait_healthy("chatstream")
        wait_http()
        self.assertEqual(len(messages(session_id)), 2)
        # The conversation goes on with its context after the restart.
        summary = chat("And what does VACUUM do?", session_id)
        self.assertEqual(summary.terminal.type, "done")
        gen = [e for e in summary.events if e.type == "generation_start"][0]
        self.assertEqual(gen.json["context_messages"], 2)
        self.assertEqual(len(messages(session_id)), 4)

    def test_4_down_up_keeps_conversation(self):
        session_id = type(self).session_id
        # podman-compose 1.0 stops with a 1 s timeout unless told: give the drain and PostgreSQL's
        # shutdown checkpoint their time, as docs/operations.md says to.
        compose("down", "-t", "20")
        compose("up", "-d")
        wait_healthy("postgres", "chatstream", "nginx")
        wait_http()
        self.assertEqual(len(messages(session_id)), 4)

    def test_5_sigterm_drains(self):
        # The partial-index answer is ~100 tokens: ~13 s at 8 tokens/s, far longer than the 1 s drain.
        s = harness.open_stream(ADDR, body={"message": "How do I create a partial index?"}, timeout=30)
        self.assertEqual(s.response.status, 200)
        while (e := s.next_event(timeout=30)) is not None and e.type != "token":
            pass
        name = container("chatstream")
        t0 = time.monotonic()
        # SIGTERM (the image's STOPSIGNAL), then up to 20 s before the engine would SIGKILL.
        run(ENGINE, "stop", "-t", "20", name, timeout=60)
        stopped_after = time.monotonic() - t0
        items = s.read_all(timeout=30)
        s.close()
        summary = harness.validate_stream(items)
        self.assertEqual(summary.terminal.type, "error")
        self.assertEqual(summary.terminal.json["code"], "shutdown")
        exit_code = run(ENGINE, "inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        self.assertEqual(exit_code, "0", "the container was killed instead of draining")
        self.assertGreaterEqual(stopped_after, 0.9, "streams did not get the drain time")
        self.assertLess(stopped_after, 15, "the drain did not end at its deadline")
        log(f"SIGTERM: stream ended with error{{shutdown}}, container exited 0 after {stopped_after:.1f}s")
        run(ENGINE, "start", name)
        wait_healthy("chatstream")
        wait_http()
        stored = messages(summary.session_id)
        self.assertEqual(stored[-1]["role"], "assistant")
        self.assertTrue(stored[-1]["content"], "the partial answer was not stored")


if __name__ == "__main__":
    unittest.main(verbosity=2)
