#!/usr/bin/python3
"""End-to-end, durable runs (issue 10, crash safety): a worker SIGKILLed with 100 answers in flight
leaves no run `running` — the worker that replaces it closes them with error/worker_lost and the text
of their last checkpoint; checkpoints are one statement per worker per interval; a restarted instance
closes what its previous incarnation left running; a run whose lease ran out is closed by any other
instance; cancelling a run that is no longer running is 404.

Each test starts a private PostgreSQL cluster (scripts/pg.sh) and checks the real rows."""

import os
import signal
import sys

import harness
from harness import E2ETestCase, now, wait_until

WORDS = [f"w{i:03d}" for i in range(120)]
TEXT = " ".join(WORDS)  # 12 s at 10 tokens/s: long enough to be cut


def sql_text(value):
    return "'" + str(value).replace("'", "''") + "'"


# What a run's checkpoints stored (sql/006_resumable_runs.sql): the answer's pieces, in order.
CHECKPOINT_TEXT = ("(SELECT coalesce(string_agg(e.answer, '' ORDER BY e.piece), '') FROM run_events e "
                   "WHERE e.session_id = r.session_id AND e.run_id = r.id AND NOT e.final) AS checkpoint")
HAS_CHECKPOINT = ("EXISTS (SELECT 1 FROM run_events e WHERE e.session_id = r.session_id AND e.run_id = r.id "
                  "AND NOT e.final AND e.answer <> '')")

class DurableCase(E2ETestCase):
    def start_streams(self, srv, n):
        """n streams, each read until its first three tokens arrived; returns [(stream, run_id)]."""
        opened = []
        for i in range(n):
            s = srv.stream(f"question {i}")
            self.assertEqual(s.response.status, 200, s.response)
            opened.append(s)
        self.addCleanup(lambda: [s.close() for s in opened])
        result = []
        for s in opened:
            meta = s.next_event(10)
            self.assertEqual(meta.event, "meta", meta)
            tokens = 0
            while tokens < 3:
                ev = s.next_event(10)
                self.assertIsNotNone(ev, "stream ended early")
                self.assertNotIn(ev.event, harness.TERMINAL, ev.data)
                tokens += ev.event == "token"
            result.append((s, meta.json["run_id"]))
        return result

    def runs(self, pg, ids):
        listed = ",".join(sql_text(i) for i in ids)
        rows = pg.rows("SELECT r.id::text AS id, r.status, r.error_code, r.worker_pid, "
                       f"{CHECKPOINT_TEXT}, "
                       "m.content, m.status AS message_status "
                       "FROM runs r LEFT JOIN messages m ON m.run_id = r.id AND m.role = 'assistant' "
                       f"WHERE r.id IN ({listed})")
        return {r["id"]: r for r in rows}

    def assertClosedAsLost(self, row):
        self.assertEqual((row["status"], row["error_code"]), ("error", "worker_lost"), row)
        self.assertEqual(row["message_status"], "error", row)
        # The stored answer is the last checkpoint: a non-empty prefix of the answer, at word bounds.
        self.assertTrue(row["content"], f"the checkpoint text is kept: {row}")
        self.assertEqual(row["content"], row["checkpoint"], row)
        self.assertTrue(TEXT.startswith(row["content"]), row)


class WorkerCrash(DurableCase):
    def test_sigkill_with_100_answers_in_flight(self):
        pg = self.start_postgres()
        pg.migrate()
        srv = self.start_server(workers=2, database_url=pg, provider="scripted", scripted_text=TEXT,
                                scripted_rate=10, checkpoint_interval="200ms", run_timeout="60s")
        streams = self.start_streams(srv, 100)
        ids = [run_id for _, run_id in streams]
        owners = {r["id"]: r["worker_pid"] for r in self.runs(pg, ids).values()}
        victim = owners[ids[0]]
        victims = [i for i in ids if owners[i] == victim]
        survivors = [i for i in ids if owners[i] != victim]
        # A checkpoint has carried some text of every run (one interval, with margin).
        wait_until(lambda: pg.scalar(f"SELECT count(*) FROM runs r WHERE status = 'running' AND {HAS_CHECKPOINT}") == 100,
                   5 * harness.SLOW, what="every running run has a checkpoint")
        statements = srv.metrics().value("chatstream_checkpoint_statements_total")
        t0 = now()
        srv_workers = srv.worker_pids()
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: all(r["status"] != "running" for i, r in self.runs(pg, victims).items()),
                   5 * harness.SLOW, what="the dead worker's runs are closed")
        closed_after = now() - t0
        sys.stderr.write(f"{len(victims)} runs of the killed worker closed {closed_after:.2f} s after SIGKILL\n")
        rows = self.runs(pg, victims)
        for run_id in victims:
            self.assertClosedAsLost(rows[run_id])
        # Their clients saw the connection drop (a clean close the client retries), not a hang.
        by_id = dict((run_id, s) for s, run_id in streams)
        for run_id in victims:
            with self.assertRaises(harness.PeerClosed, msg="the stream of a dead worker is cut, not left hanging"):
                by_id[run_id].read_all(5)
        # Cancelling such a run: it is not running any more.
        r = srv.request("POST", "/chat/cancel", {"run_id": victims[0]})
        self.assertJsonError(r, 404, "not_found")
        # The other worker's runs went on and complete normally.
        self.assertTrue(survivors, f"both workers had runs: {set(owners.values())} of {srv_workers}")
        for run_id in survivors[:5]:
            items = by_id[run_id].read_all(30)
            self.assertEqual(getattr(items[-1], "event", None), "done", run_id)
        # Checkpoints are batched: one statement per worker per interval, not one per run.
        elapsed_intervals = 1 + (now() - t0) / 0.2
        later = srv.metrics().value("chatstream_checkpoint_statements_total") - statements
        self.assertLessEqual(later, 2 * elapsed_intervals + 4, "one checkpoint statement per worker per interval")
        self.assertGreaterEqual(srv.metrics().value("chatstream_worker_lost_runs_total"), len(victims))


class InstanceRestart(DurableCase):
    def test_restart_closes_what_the_previous_instance_left_running(self):
        pg = self.start_postgres()
        pg.migrate()
        flags = dict(workers=1, database_url=pg, provider="scripted", scripted_text=TEXT, scripted_rate=10,
                     checkpoint_interval="200ms", instance_id="durable-test")
        first = self.start_server(**flags)
        ids = [run_id for _, run_id in self.start_streams(first, 5)]
        wait_until(lambda: pg.scalar(f"SELECT count(*) FROM runs r WHERE {HAS_CHECKPOINT}") == 5, 5 * harness.SLOW,
                   what="the runs have a checkpoint")
        harness.kill_group(first.pid, signal.SIGKILL)  # master and worker at once: nobody closes them
        first.wait(5)
        self.assertEqual(pg.scalar("SELECT count(*) FROM runs WHERE status = 'running'"), 5)
        self.start_server(**flags)
        wait_until(lambda: pg.scalar("SELECT count(*) FROM runs WHERE status = 'running'") == 0, 5 * harness.SLOW,
                   what="the new instance closes the runs of the previous one")
        for row in self.runs(pg, ids).values():
            self.assertClosedAsLost(row)

    def test_a_live_instance_keeps_runs_longer_than_their_start_lease(self):
        # One lease per worker, renewed by each checkpoint statement: a run that lasts three times
        # its start lease (1 s) while another instance sweeps every 0.5 s is never closed.
        pg = self.start_postgres()
        pg.migrate()
        flags = dict(workers=1, database_url=pg, provider="scripted", scripted_text=TEXT, scripted_rate=40,
                     checkpoint_interval="100ms")
        live = self.start_server(instance_id="host-a", **flags)
        self.start_server(instance_id="host-b", **flags)
        s = live.stream("a long answer")
        items = s.read_all(30)
        self.assertEqual(getattr(items[-1], "event", None), "done", items[-1])
        self.assertEqual(pg.scalar("SELECT count(*) FROM runs WHERE error_code = 'worker_lost'"), 0)
        self.assertGreater(pg.scalar("SELECT count(*) FROM worker_leases WHERE instance_id = 'host-a'"), 0)
        s.close()

    def test_another_instance_closes_runs_whose_lease_ran_out(self):
        pg = self.start_postgres()
        pg.migrate()
        flags = dict(workers=1, database_url=pg, provider="scripted", scripted_text=TEXT, scripted_rate=10,
                     checkpoint_interval="100ms")
        gone = self.start_server(instance_id="host-a", **flags)
        ids = [run_id for _, run_id in self.start_streams(gone, 3)]
        wait_until(lambda: pg.scalar(f"SELECT count(*) FROM runs r WHERE {HAS_CHECKPOINT}") == 3, 5 * harness.SLOW,
                   what="the runs have a checkpoint")
        harness.kill_group(gone.pid, signal.SIGKILL)
        gone.wait(5)
        # host-b's own answer at 20 tokens/s (6 s) is still running when its sweep comes (~1.5 s).
        other = self.start_server(instance_id="host-b", **{**flags, "scripted_rate": 20})
        # A live instance's runs are never touched: host-b's own run completes.
        mine = other.stream("mine")
        # host-a's lease (10 intervals = 1 s) runs out; host-b's sweep (every 5 intervals) closes them.
        wait_until(lambda: pg.scalar("SELECT count(*) FROM runs WHERE status = 'running' "
                                     "AND instance_id = 'host-a'") == 0, 10 * harness.SLOW,
                   what="host-b closes host-a's runs once their lease ran out")
        for row in self.runs(pg, ids).values():
            self.assertClosedAsLost(row)
        items = mine.read_all(30)
        self.assertEqual(getattr(items[-1], "event", None), "done")
        mine.close()


class OneRunPerConversation(DurableCase):
    """At most one running run per session, across workers: reject (409), interrupt, enqueue."""

    @classmethod
    def setUpClass(cls):
        cls.pg = cls.start_class_postgres()
        cls.pg.migrate()
        # --drain-timeout 1s: the tests leave runs answering (4 s answers, and a dropped reader's run
        # waits out its grace), and the class's end should not wait the default 30 s for them.
        cls.srv = cls.start_class_server(workers=2, database_url=cls.pg, provider="scripted", scripted_text=TEXT,
                                         scripted_rate=10, checkpoint_interval="200ms", run_timeout="60s",
                                         drain_timeout="1s")

    def busy_session(self):
        """A session with a running run; returns (stream, session_id, run_id, owner pid)."""
        s, run_id = self.start_streams(self.srv, 1)[0]
        row = self.pg.rows(f"SELECT session_id::text AS session, worker_pid FROM runs WHERE id = {sql_text(run_id)}")[0]
        return s, row["session"], run_id, row["worker_pid"]

    def other_worker_conn(self, owner):
        """A keep-alive connection accepted by the worker that does not own the run."""
        c, _ = self.srv.conn_to(avoid=owner)
        self.addCleanup(c.close)
        return c

    def test_reject_is_409_with_the_running_run_from_any_worker(self):
        s, session, run_id, owner = self.busy_session()
        c = self.other_worker_conn(owner)
        for path in ("/chat/stream", "/chat"):
            r = c.request("POST", path, {"message": "again", "session_id": session})
            self.assertEqual(r.status, 409, r)
            e = r.json()["error"]
            self.assertEqual((e["status"], e["code"], e["run_id"]), (409, "run_in_progress", run_id), e)
            self.assertTrue(e["message"].strip())
        # Nothing of the refused message was stored, and the running run goes on.
        self.assertEqual(self.pg.scalar(f"SELECT count(*) FROM messages WHERE session_id = {sql_text(session)} "
                                        "AND content = 'again'"), 0)
        self.assertEqual(self.pg.scalar(f"SELECT count(*) FROM runs WHERE session_id = {sql_text(session)}"), 1)
        r = c.request("POST", "/chat/stream", {"message": "again", "session_id": session, "multitask": "later"})
        self.assertJsonError(r, 400, "bad_request")
        s.close()

    def test_interrupt_cancels_the_running_run_on_the_other_worker(self):
        s, session, run_id, owner = self.busy_session()
        c = self.other_worker_conn(owner)
        t0 = now()
        c.send(harness.build_request("POST", "/chat/stream", {"message": "instead", "session_id": session,
                                                               "multitask": "interrupt"}), expect=1)
        old = s.read_all(10)
        end = old[-1]
        self.assertEqual(end.event, "cancelled", harness.describe_items(old))
        self.assertEqual(end.json["reason"], "interrupted", end.data)
        head = c.read_head(10)
        self.assertEqual(head.status, 200, head)
        self.assertLess(now() - t0, 3 * harness.SLOW, "the new run starts once the old one ended")
        row = self.pg.rows(f"SELECT status FROM runs WHERE id = {sql_text(run_id)}")[0]
        self.assertEqual(row["status"], "cancelled")
        partial = self.pg.scalar(f"SELECT content FROM messages WHERE run_id = {sql_text(run_id)} AND role = 'assistant'")
        self.assertTrue(partial and TEXT.startswith(partial), partial)
        wait_until(lambda: self.pg.scalar(f"SELECT count(*) FROM runs WHERE session_id = {sql_text(session)} "
                                          "AND status = 'running'") == 1, 5, what="the new run is running")
        s.close()

    def test_enqueue_waits_for_the_running_run_then_answers(self):
        s, session, run_id, owner = self.busy_session()
        queued = self.srv.stream(body={"message": "next", "session_id": session, "multitask": "enqueue"})
        self.addCleanup(queued.close)
        meta = queued.next_event(5)
        self.assertEqual(meta.event, "meta")
        ev = queued.next_event(5)
        self.assertEqual((ev.event, ev.json.get("run_id")), ("queued", run_id), ev.data)
        # The first run ends (cancelled here to keep the test short); the queued one starts then.
        r = self.srv.request("POST", "/chat/cancel", {"run_id": run_id})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(s.read_all(5)[-1].event, "cancelled")
        t0 = now()
        first = None
        while first is None:
            ev = queued.next_event(10)
            self.assertIsNotNone(ev)
            self.assertNotIn(ev.event, harness.TERMINAL, ev.data)
            if ev.event == "token":
                first = now()
        self.assertLess(first - t0, 2.0 * harness.SLOW, "it starts as soon as the conversation is free")
        self.assertEqual(self.pg.scalar(f"SELECT status FROM runs WHERE id = {sql_text(meta.json['run_id'])}"),
                         "running")
        s.close()


if __name__ == "__main__":
    harness.main()
