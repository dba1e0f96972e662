#!/usr/bin/env python3
"""The answer-quality score of the embedded (extractive) answerer over the PostgreSQL manual.

Loads the manual (Debian's postgresql-doc-15) into a private PostgreSQL cluster with the real
`chatstream ingest`, starts the real `chatstream serve` (extractive provider, no pacing), asks each
question of questions.json through `POST /chat`, and checks that the answer holds every fact the
question lists. Prints, per question, PASS/FAIL, the missing facts and whether a right page is among
the cited passages (recall@4), then the score.

    python3 tests/quality/quality.py --binary build/chatstream --source-dir .      # `make quality`
    ... --check          fail (exit 1) when the score is under the one recorded in score.json
    ... --record         write the score reached into score.json (only ever raise it)
    ... --database-url U reuse a database where the manual is already ingested (quick iterations)
    ... -k partial       only the questions containing this text
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
import harness  # noqa: E402

QUESTIONS = os.path.join(HERE, "questions.json")
SCORE = os.path.join(HERE, "score.json")
MANUAL = "/usr/share/doc/postgresql-doc-15/html"


def normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text).lower()


def missing_facts(answer: str, facts: list[list[str]]) -> list[list[str]]:
    text = normalized(answer)
    return [alternatives for alternatives in facts
            if not any(normalized(a) in text for a in alternatives)]


def cited_pages(citations: list[dict]) -> list[str]:
    pages = []
    for c in citations:
        # A path (/usr/share/doc/…/indexes-partial.html) or a URL (…/indexes-partial.html#ANCHOR).
        name = c.get("source", "").split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        pages.append(name)
    return pages


def ask(server: harness.Server, question: str) -> dict:
    response = harness.request(server.addr, "POST", "/chat", {"message": question}, timeout=30)
    if response.status != 200:
        raise AssertionError(f"POST /chat {question!r}: {response.status} {response.text()}")
    return response.json()


def evaluate(server: harness.Server, questions: list[dict], verbose: bool) -> tuple[int, int, list[str]]:
    passed = recalled = 0
    lines = []
    for item in questions:
        result = ask(server, item["q"])
        answer = result.get("answer", "")
        missing = missing_facts(answer, item["facts"])
        pages = cited_pages(result.get("citations", []))
        hit = any(p in item["pages"] for p in pages)
        passed += not missing
        recalled += hit
        status = "PASS" if not missing else "FAIL"
        line = f"{status} {'R' if hit else '-'} {item['q']}"
        if missing:
            line += "\n       missing: " + "; ".join(" | ".join(f) for f in missing)
        if not hit:
            line += "\n       cited: " + (", ".join(pages) or "(nothing)") + \
                    "; expected one of " + ", ".join(item["pages"])
        if verbose or missing:
            line += "\n       answer: " + answer.replace("\n", "\n               ")
        lines.append(line)
    return passed, recalled, lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary")
    ap.add_argument("--source-dir")
    ap.add_argument("--manual", default=MANUAL)
    ap.add_argument("--database-url")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--verbose", "-v", action="store_true")
    ap.add_argument("-k", dest="only")
    args = ap.parse_args()
    if args.source_dir:
        harness.SOURCE_DIR = os.path.abspath(args.source_dir)
        harness.BINARY = os.path.join(harness.SOURCE_DIR, "build", "chatstream")
    if args.binary:
        harness.BINARY = os.path.abspath(args.binary)

    with open(QUESTIONS) as f:
        questions = json.load(f)["questions"]
    if args.only:
        questions = [q for q in questions if args.only.lower() in q["q"].lower()]
    if not os.path.isdir(args.manual):
        print(f"quality: {args.manual} not found (scripts/deps.sh installs postgresql-doc-15)", file=sys.stderr)
        return 2

    pg = None
    server = None
    try:
        url = args.database_url
        if not url:
            pg = harness.start_postgres()
            pg.migrate()
            started = time.monotonic()
            # As `make run` loads it: citations link to the official pages.
            p = pg.ingest(args.manual, "--base-url", "https://www.postgresql.org/docs/15/")
            print(f"quality: {p.stdout.strip()} ({time.monotonic() - started:.1f} s)", file=sys.stderr)
            url = pg.url
        server = harness.Server(workers=1, database_url=url, extractive_rate=0).start()
        passed, recalled, lines = evaluate(server, questions, args.verbose)
    finally:
        if server is not None:
            server.stop()
        if pg is not None:
            pg.close()

    print("\n".join(lines))
    total = len(questions)
    print(f"\nscore: {passed}/{total} answers hold every expected fact; "
          f"recall@4: {recalled}/{total} questions cite a right page")
    if args.only:
        return 0
    with open(SCORE) as f:
        recorded = json.load(f)
    if args.record and (passed > recorded["score"] or recalled > recorded["recall_at_4"]):
        recorded["score"] = max(passed, recorded["score"])
        recorded["recall_at_4"] = max(recalled, recorded["recall_at_4"])
        with open(SCORE, "w") as f:
            json.dump(recorded, f, indent=2)
            f.write("\n")
        print(f"quality: recorded in {SCORE}")
    if args.check and (passed < recorded["score"] or recalled < recorded["recall_at_4"]):
        print(f"quality: FAILED: under the recorded score {recorded['score']}/{total}, "
              f"recall@4 {recorded['recall_at_4']}/{total} (tests/quality/score.json)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
