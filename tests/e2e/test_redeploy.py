#!/usr/bin/python3
"""End-to-end, deploys (issue 10): an instance that is replaced by another (SIGTERM drain, then a new
instance on the same PostgreSQL) loses no answer. Clients whose streams are cut during the drain
resume them on the new instance: while the old one still drains, the new one replays what the old
one stored and follows it through PostgreSQL to the end; after it exited, the new one replays the
stored outcome. Either way the text read before the cut plus the resumed text is the stored answer,
byte for byte, and event ids go on without a gap or a repeat."""

import signal

import harness
from harness import Conn, E2ETestCase, Stream, build_request, now, wait_until

WORDS = [f"d{i:03d}" for i in range(40)]
TEXT = " ".join(WORDS)


def sql_text(value):
    return "'" + str(value).replace("'", "''") + "'"


def seq_of(event):
    return int(event.id.rsplit(":", 1)[1])


class Redeploy(E2ETestCase):
    def open_and_cut(self, srv, n, tokens):
        """n streams read until `tokens` tokens each; returns [(run_id, last_event, text_so_far)] with
        every connection still open (cut them with .close())."""
        opened = [srv.stream(f"deploy question {i}") for i in range(n)]
        got = []
        for s in opened:
            self.assertEqual(s.response.status, 200, s.response)
            meta = s.next_event(10)
            self.assertEqual(meta.event, "meta", meta)
            text, last, seen = "", meta, 0
            while seen < tokens:
                ev = s.next_event(10)
                self.assertIsNotNone(ev, "stream ended early")
                self.assertNotIn(ev.event, harness.TERMINAL, ev.data)
                if ev.event == "token":
                    text += ev.json["content"]
                    seen += 1
                last = ev
            got.append((s, meta.json["run_id"], last, text))
        return got

    def resume(self, addr, run_id, last_event):
        c = Conn(addr, 10)
        self.addCleanup(c.close)
        c.send(build_request("GET", f"/chat/stream/{run_id}", None, {"Last-Event-ID": last_event.id}), expect=1)
        r = c.read_head(10)
        self.assertEqual(r.status, 200, r)
        return Stream(c, r, now())

    def check_resumed(self, pg, run_id, last_event, before_text, stream, terminal):
        events = [i for i in stream.read_all(30) if isinstance(i, harness.Event)]
        self.assertTrue(events, "the resume replays something")
        seqs = [seq_of(e) for e in events]
        self.assertEqual(seqs, list(range(seq_of(last_event) + 1, seq_of(last_event) + 1 + len(events))),
                         "ids continue after the cursor without a gap or a repeat")
        self.assertEqual(events[-1].event, terminal, events[-1].data)
        self.assertEqual(sum(e.event in harness.TERMINAL for e in events), 1)
        text = before_text + "".join(e.json["content"] for e in events if e.event == "token")
        stored = pg.rows(f"SELECT content FROM messages WHERE run_id = {sql_text(run_id)} AND role = 'assistant'")
        self.assertEqual(len(stored), 1, stored)
        self.assertEqual(text, stored[0]["content"], "read before the cut + resumed == stored, byte for byte")
        return events[-1]

    def test_streams_cut_during_a_drain_resume_on_the_new_instance(self):
        pg = self.start_postgres()
        pg.migrate()
        flags = dict(database_url=pg, provider="scripted", scripted_text=TEXT, scripted_rate=20,
                     checkpoint_interval="200ms", run_timeout="60s")
        old = self.start_server(workers=1, instance_id="release-1", drain_timeout="20s", **flags)
        cut = self.open_and_cut(old, 20, 3)
        old.signal(signal.SIGTERM)  # the deploy: the old instance drains
        for s, *_ in cut:
            s.close()  # the proxy in front cut the clients' streams
        new = self.start_server(workers=2, instance_id="release-2", **flags)
        resumed = [(run_id, last, text, self.resume(new.addr, run_id, last)) for _, run_id, last, text in cut]
        for run_id, last, text, stream in resumed:
            done = self.check_resumed(pg, run_id, last, text, stream, "done")
            self.assertEqual(done.json["tokens"], len(WORDS), done.data)
        self.assertEqual(old.wait(30), 0, f"the old instance drained and exited\n{old.log_tail()}")
        self.assertGreaterEqual(new.metrics().value("chatstream_resumes_remote_total"), len(cut))
        self.assertEqual(pg.scalar("SELECT count(*) FROM runs WHERE status = 'running'"), 0)

    def test_after_the_old_instance_exited_the_stored_outcome_is_replayed(self):
        pg = self.start_postgres()
        pg.migrate()
        flags = dict(database_url=pg, provider="scripted", scripted_text=TEXT, scripted_rate=5,
                     checkpoint_interval="200ms", run_timeout="60s")
        old = self.start_server(workers=1, instance_id="release-1", drain_timeout="300ms", **flags)
        cut = self.open_and_cut(old, 5, 2)
        for s, *_ in cut:
            s.close()
        old.signal(signal.SIGTERM)  # the drain deadline ends the runs: error shutdown, stored
        self.assertEqual(old.wait(30), 0, old.log_tail())
        new = self.start_server(workers=1, instance_id="release-2", **flags)
        for _, run_id, last, text in cut:
            end = self.check_resumed(pg, run_id, last, text, self.resume(new.addr, run_id, last), "error")
            self.assertEqual((end.json["code"], end.json["retryable"]), ("shutdown", True), end.data)


if __name__ == "__main__":
    harness.main()
