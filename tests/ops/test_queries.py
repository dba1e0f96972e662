"""Every SQL statement chatstream sends can be distributed by session (docs/scaling.md).

The plan for PostgreSQL past one machine is Citus with `sessions`, `runs` and `messages` distributed
and co-located by session id (sessions.id, runs.session_id, messages.session_id), `documents` and
`chunks` as reference tables (copied to every node), and `schema_migrations` local to the
coordinator. A statement is then routed to one node only when every part of it that touches a
distributed table names the session key with a parameter (or with the keyed session row of the
same statement). This test lists every statement in worker/ (string literals that start with an SQL
verb, raw `R"sql(...)sql"` literals included), prints the list with how each one is routed, and
fails on any statement that touches a distributed table without its key, unless it is one of the
declared fan-outs below, each with the reason it is acceptable.

Run alone: python3 tests/ops/test_queries.py
"""

from __future__ import annotations

import os
import re
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DISTRIBUTED = {"sessions", "runs", "messages", "run_events"}
REFERENCE = {"documents", "chunks", "lexeme_stats"}
LOCAL = {"schema_migrations", "worker_leases"}

# How a part of a statement names the session key of each distributed table.
KEYED = {
    "sessions": [r"\bINSERT INTO sessions \(id\b[^)]*\) VALUES \(\$\d+\b", r"\bs\.id = \$\d+", r"\bWHERE id = \$\d+"],
    "runs": [r"\bsession_id = \$\d+", r"\bINSERT INTO runs \([^)]*\bsession_id\b"],
    "messages": [r"\bsession_id = \$\d+", r"\bsession_id = s\.id\b", r"\bINSERT INTO messages \([^)]*\bsession_id\b"],
    "run_events": [r"\bsession_id = \$\d+", r"\bINSERT INTO run_events \([^)]*\bsession_id\b"],
}

# Statements that reach every shard on purpose. Key: a fragment that identifies the statement.
DECLARED_FAN_OUT = {
    "pg_notify('chatstream_cancel'":
        "POST /chat/cancel knows only the run id (the protocol's cancel body is {run_id}); the lookup "
        "runs on every shard, once per press of a stop button, and finds at most one row. Keying it "
        "needs the session id in the cancel request (docs/scaling.md, 'What is not keyed').",
    "SELECT id::text, cancel_reason FROM runs":
        "after its LISTEN connection reconnected (rare: an outage, a restarted server) a worker asks which "
        "of its running runs were cancelled while it could not hear the NOTIFY: once per reconnect, by "
        "primary key over every shard (sql/007_durable_cancel.sql).",
    "count(*) FROM runs\n        WHERE user_id = $1":
        "the per-user limit (--max-active-runs-per-user) counts a user's running runs over all of their "
        "sessions: once per new run, on the small partial index of running runs of each shard. Keyed "
        "by session it could not see the user's other conversations.",
    "FROM sessions s\nWHERE s.user_id = $1":
        "GET /sessions lists one user's conversations, newest first, one page at a time: a user's "
        "sessions live on many shards; an index on (user_id, updated_at) answers it on each.",
    "INSERT INTO worker_leases":
        "the checkpoint is one statement per worker per --checkpoint-interval for all of that worker's "
        "runs, whatever their sessions: batching across sessions is its point (a distributed database "
        "runs it as one multi-shard INSERT every 2 s per worker, not one statement per run); the "
        "worker's lease row is local to the coordinator.",
    "unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::boolean[]":
        "the starts of one group commit (chat/store_runs.cpp) are one statement for many sessions: "
        "batching across sessions is its point; each row is keyed by its session, so a distributed "
        "database runs it as one multi-shard statement per batch instead of one per run.",
    "unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[]":
        "the ends of one group commit, likewise one statement for many sessions, each row keyed by its "
        "session.",
    "r.resumable\nFROM runs r WHERE r.id = ANY($1::uuid[])":
        "GET /chat/stream/{run_id} (a resume on a worker that does not own the run) knows only the run "
        "id: a browser's EventSource reconnects to the URL it has. The resumes of one loop turn share one "
        "statement (not one per event), rows by primary key on each shard; the events that follow "
        "come by NOTIFY, not by query.",
    "error_code = 'worker_lost'":
        "closing the runs of a dead worker or an expired lease is a sweep over the running runs of every "
        "session, run at a worker's start and every few checkpoint intervals; it touches only the small "
        "partial index of running runs on each shard.",
}

# SQL in worker/ is written in upper case, which keeps log messages and flag names out.
VERBS = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|LISTEN|NOTIFY)\s")
RAW = re.compile(r'R"(\w*)\((.*?)\)\1"', re.S)
PLAIN = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
# A table after FROM/JOIN/INTO/UPDATE; not a function call (`name(`), nor `DO UPDATE SET`/`LATERAL`.
TABLE_REF = re.compile(r"\b(?:FROM|JOIN|UPDATE)\s+(?!SET\b|LATERAL\b)([a-z_][a-z0-9_]*)\b(?!\s*\()|\bINTO\s+([a-z_][a-z0-9_]*)",
                       re.I)
CTE_NAME = re.compile(r"(?:\bWITH|,)\s*(\w+)\s+AS\s+(?:(?:NOT\s+)?MATERIALIZED\s*)?\(", re.I)


def statements() -> list[tuple[str, str]]:
    """(where, sql) for every SQL literal in worker/; adjacent plain literals are joined as C++ does."""
    found = []
    for base, _, files in os.walk(os.path.join(ROOT, "worker")):
        for name in sorted(files):
            if not name.endswith((".cpp", ".hpp")):
                continue
            path = os.path.join(base, name)
            src = open(path, encoding="utf-8").read()
            rel = os.path.relpath(path, ROOT)
            for m in RAW.finditer(src):
                if VERBS.match(m.group(2)):
                    found.append((f"{rel}:{src.count(chr(10), 0, m.start()) + 1}", m.group(2)))
            stripped = RAW.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), src)
            # Join C++ adjacent string literals ("a" "b") before looking at them.
            for m in re.finditer(r'(?:"(?:[^"\\\n]|\\.)*"\s*)+', stripped):
                text = "".join(PLAIN.findall(m.group(0)))
                if VERBS.match(text) and not text.strip().upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
                    found.append((f"{rel}:{stripped.count(chr(10), 0, m.start()) + 1}", text))
    return found


def parts(sql: str) -> list[str]:
    """A statement's CTEs and its main query, each checked on its own."""
    return re.split(r"\)\s*,\s*\w+\s+AS\s*(?:(?:NOT\s+)?MATERIALIZED\s*)?\(|\bWITH\s+\w+\s+AS\s*(?:(?:NOT\s+)?MATERIALIZED\s*)?\(|\)\s*(?=(?:SELECT|INSERT|UPDATE|DELETE)\b)",
                    sql, flags=re.I)


def tables_of(sql: str) -> set[str]:
    ctes = {n.lower() for n in CTE_NAME.findall(sql)}
    return {(a or b).lower() for a, b in TABLE_REF.findall(sql)} - ctes


def classify(sql: str) -> tuple[str, list[str]]:
    """('routed' | 'reference' | 'local' | 'no table' | 'fan-out', problems)."""
    tables = tables_of(sql)
    unknown = tables - DISTRIBUTED - REFERENCE - LOCAL
    problems = [f"unknown table {t}: classify it in tests/ops/test_queries.py and docs/scaling.md" for t in unknown]
    if not tables & DISTRIBUTED:
        kind = "reference" if tables & REFERENCE else "local" if tables & LOCAL else "no table"
        return kind, problems
    for part in parts(sql):
        for table in tables_of(part) & DISTRIBUTED:
            if not any(re.search(p, part) for p in KEYED[table]):
                problems.append(f"{table} without its session key in: {' '.join(part.split())[:160]}")
    return ("routed" if not problems else "fan-out"), problems


class QueriesAreKeyed(unittest.TestCase):
    def test_every_statement_is_keyed_or_declared(self):
        found = statements()
        self.assertGreaterEqual(len(found), 8, "the SQL literals of worker/ were not found")
        failures, declared_seen = [], set()
        print(f"\n{'where':36} {'routing':10} statement", file=sys.stderr)
        for where, sql in found:
            kind, problems = classify(sql)
            declared = next((k for k in DECLARED_FAN_OUT if k in sql), None)
            if declared and problems:
                declared_seen.add(declared)
                kind, problems = "fan-out*", [p for p in problems if p.startswith("unknown")]
            print(f"{where:36} {kind:10} {' '.join(sql.split())[:90]}", file=sys.stderr)
            failures += [f"{where}: {p}" for p in problems]
        print("* declared fan-out: " + "; ".join(DECLARED_FAN_OUT.values()), file=sys.stderr)
        self.assertEqual(failures, [], "statements that a distributed PostgreSQL could not route by session")
        # A declared exception that no longer exists must go, so the list stays true.
        self.assertEqual(declared_seen, set(DECLARED_FAN_OUT), "a declared fan-out is no longer in the code")

    def test_the_checker_catches_an_unkeyed_statement(self):
        # The rules themselves: the statements the check must refuse, and ones it must accept.
        self.assertEqual(classify("UPDATE runs SET status = $2 WHERE id = $1")[0], "fan-out")
        self.assertEqual(classify("SELECT content FROM messages WHERE run_id = $1")[0], "fan-out")
        self.assertEqual(classify("WITH r AS (UPDATE runs SET x = 1 WHERE id = $2) "
                                  "SELECT 1 FROM messages WHERE session_id = $1")[0], "fan-out")
        self.assertEqual(classify("UPDATE runs SET status = $2 WHERE id = $1 AND session_id = $3")[0], "routed")
        self.assertEqual(classify("SELECT id FROM chunks WHERE tsv @@ $1")[0], "reference")
        self.assertTrue(classify("SELECT 1 FROM audit_log")[1], "an unknown table must be reported")


if __name__ == "__main__":
    unittest.main(verbosity=2)
