"""The operations files against the real server (docs/operations.md):

  - `chatstream --version` names the build;
  - /metrics of a server that stored conversations in a real PostgreSQL passes Debian's
    `promtool check metrics` (format and naming lint), and its latency histograms have samples;
  - the Grafana dashboard (deploy/grafana/chatstream-dashboard.json) is JSON with panels for TTFT,
    token gaps, active streams, runs by outcome and database waits, and every metric its queries
    use is one the server exports; the same for the alert rules (deploy/prometheus/alerts.yml),
    which with the scrape config pass `promtool check rules` / `promtool check config`;
  - the systemd unit (deploy/chatstream.service) passes `systemd-analyze verify` and keeps its
    drain and sandboxing settings.

Run alone: python3 tests/ops/test_deploy.py --binary build/chatstream --source-dir .
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
import harness  # noqa: E402

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
METRIC = re.compile(r"\bchatstream_[a-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def source(*parts: str) -> str:
    return os.path.join(harness.SOURCE_DIR, *parts)


def read(*parts: str) -> str:
    with open(source(*parts), encoding="utf-8") as f:
        return f.read()


def families(names: set[str]) -> set[str]:
    """Sample names plus the histogram family names they belong to."""
    out = set(names)
    for n in names:
        for suffix in HISTOGRAM_SUFFIXES:
            if n.endswith(suffix):
                out.add(n[: -len(suffix)])
    return out


class Deploy(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = cls.start_class_postgres()
        cls.pg.migrate()

    def scrape_after_traffic(self) -> str:
        srv = self.start_server(workers=2, database_url=self.pg, provider="scripted", scripted_tokens=20,
                                scripted_rate=200)
        session = None
        for i in range(3):
            s = srv.stream(f"question {i}", body={"message": f"question {i}", **({"session_id": session} if session else {})})
            summary = harness.validate_stream(s.read_all(timeout=30))
            s.close()
            self.assertEqual(summary.terminal.type, "done")
            session = summary.session_id
        r = srv.request("GET", "/metrics")
        self.assertEqual(r.status, 200)
        return r.text()

    def test_version(self):
        out = subprocess.run([harness.BINARY, "--version"], capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"^chatstream \S+ \(.+\)\n$")

    def test_metrics_pass_promtool_and_the_dashboard_and_alerts_use_them(self):
        text = self.scrape_after_traffic()
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 0, f"promtool check metrics:\n{check.stdout}{check.stderr}")
        self.assertEqual((check.stdout + check.stderr).strip(), "", "promtool reported lint problems")

        metrics = harness.parse_metrics(text)
        self.assertGreaterEqual(metrics.value("chatstream_token_gap_seconds_count"), 3 * 19)
        self.assertGreaterEqual(metrics.value("chatstream_db_wait_seconds_count"), 3 * 2,
                                "every run starts and finishes with a pooled statement")
        self.assertEqual(metrics.value("chatstream_runs_total", status="complete"), 3)
        exported = families(metrics.names())

        dashboard = json.loads(read("deploy", "grafana", "chatstream-dashboard.json"))
        panels = {p["title"]: [t["expr"] for t in p["targets"]] for p in dashboard["panels"]}
        required = {
            "Time to first token": "chatstream_time_to_first_token_seconds_bucket",
            "Gap between tokens": "chatstream_token_gap_seconds_bucket",
            "Active streams": "chatstream_active_streams",
            "Runs by outcome": "chatstream_runs_total",
            "Database waits": "chatstream_db_wait_seconds_bucket",
        }
        for title, metric in required.items():
            self.assertIn(title, panels)
            self.assertTrue(any(metric in e for e in panels[title]), f"panel {title!r} does not chart {metric}")
        used = {m for exprs in panels.values() for e in exprs for m in METRIC.findall(e)}
        self.assertEqual(used - exported, set(), "the dashboard charts metrics the server does not export")

        rules = read("deploy", "prometheus", "alerts.yml")
        self.assertEqual(set(METRIC.findall(rules)) - exported, set(), "alerts on metrics that do not exist")
        for args in (["check", "rules", source("deploy", "prometheus", "alerts.yml")],
                     ["check", "config", source("deploy", "prometheus", "prometheus.yml")]):
            p = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, f"promtool {' '.join(args)}:\n{p.stdout}{p.stderr}")

    def test_systemd_unit(self):
        unit = read("deploy", "chatstream.service")
        for setting in ("KillSignal=SIGTERM", "KillMode=mixed", "ProtectSystem=strict", "NoNewPrivileges=yes",
                        "LimitNOFILE=", "ExecStart=/usr/local/bin/chatstream serve", "TimeoutStopSec="):
            self.assertIn(setting, unit)
        # The stop timeout must leave the drain time to finish.
        drain = int(re.search(r"CHATSTREAM_DRAIN_TIMEOUT=(\d+)s", unit).group(1))
        stop = int(re.search(r"TimeoutStopSec=(\d+)s", unit).group(1))
        self.assertGreater(stop, drain)
        analyze = shutil.which("systemd-analyze")
        if not analyze:
            self.skipTest("systemd-analyze is not installed")
        # verify resolves the binaries it names: point them at this build's binary.
        tmp = tempfile.mkdtemp(prefix="chatstream-unit-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "chatstream.service")
        with open(path, "w") as f:
            f.write(unit.replace("/usr/local/bin/chatstream", harness.BINARY))
        p = subprocess.run([analyze, "verify", path], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, SYSTEMD_LOG_LEVEL="warning"))
        # Only complaints about this unit count (verify also reads the host's units it depends on).
        own = [ln for ln in (p.stdout + p.stderr).splitlines() if "chatstream.service" in ln]
        self.assertEqual(own, [], "systemd-analyze verify:\n" + p.stdout + p.stderr)


if __name__ == "__main__":
    harness.main()
