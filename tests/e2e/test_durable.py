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
        rows = pg.rows("SELECT r.id::text AS id, r.status, r.error_code, r.worker_pid, r.checkpoint, "
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
        wait_until(lambda: pg.scalar("SELECT count(*) FROM runs WHERE status = 'running' AND checkpoint <> ''") == 100,
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
        wait_until(lambda: pg.scalar("SELECT count(*) FROM runs WHERE checkpoint <> ''") == 5, 5 * harness.SLOW,
                   what="the runs have a checkpoint")
        harness.kill_group(first.pid, signal.SIGKILL)  # master and worker at once: nobody closes them
        first.wait(5)
        self.assertEqual(pg.scalar("SELECT count(*) FROM runs WHERE status = 'running'"), 5)
        self.start_server(**flags)
        wait_until(lambda: pg.scalar("SELECT count(*) FROM runs WHERE status = 'running'") == 0, 5 * harness.SLOW,
                   what="the new instance closes the runs of the previous one")
        for row in self.runs(pg, ids).values():
            self.assertClosedAsLost(row)

    def test_another_instance_closes_runs_whose_lease_ran_out(self):
        pg = self.start_postgres()
        pg.migrate()
        flags = dict(workers=1, database_url=pg, provider="scripted", scripted_text=TEXT, scripted_rate=10,
                     checkpoint_interval="100ms")
        gone = self.start_server(instance_id="host-a", **flags)
        ids = [run_id for _, run_id in self.start_streams(gone, 3)]
        wait_until(lambda: pg.scalar("SELECT count(*) FROM runs WHERE checkpoint <> ''") == 3, 5 * harness.SLOW,
                   what="the runs have a checkpoint")
        harness.kill_group(gone.pid, signal.SIGKILL)
        gone.wait(5)
        other = self.start_server(instance_id="host-b", **flags)
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


if __name__ == "__main__":
    harness.main()
