#!/usr/bin/python3
"""End-to-end: users (issue 11). Sign-in with bearer JWTs (HS256 made here with hmac; RS256/ES256 with
keys made by the `openssl` command line), every 401 case on every protected endpoint, two users kept
apart on every route (also across two server instances of two workers each on one PostgreSQL:
cross-worker cancel and delete go through NOTIFY), /api/{user_id}/ and its 403, the conversation list
(newest first, paged), rename, delete (cancelling the running run), the per-user limit of running
answers (429 across instances), sign-in off (one anonymous user), and no secret or token in the logs."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import harness
from harness import E2ETestCase, validate_stream, wait_until

SECRET = "e2e-secret-" + uuid.uuid4().hex + "-long-enough"
ISSUER = "https://login.e2e.test"
AUDIENCE = "chatstream-e2e"
FAST = dict(provider="scripted", scripted_tokens=5, scripted_rate=0)
# A slow answer: 400 tokens at 20/s = 20 s, so a test can act while it runs (it is cancelled or
# deleted well before).
SLOW = dict(provider="scripted", scripted_tokens=400, scripted_rate=20)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_hs256(claims: dict, secret: str = SECRET, header: dict | None = None) -> str:
    head = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def claims_for(sub, **extra) -> dict:
    c = {"sub": sub, "exp": int(time.time()) + 600, "iss": ISSUER, "aud": AUDIENCE}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def token(sub: str, **extra) -> str:
    return jwt_hs256(claims_for(sub, **extra))


def auth(tok: str) -> dict:
    return {"Authorization": f"Bearer {tok}"}


ALICE, BOB = "alice@example.test", "bob|42"
# Every way a request can fail sign-in (issue 11, "What must work" 1).
BAD_AUTH = {
    "missing": {},
    "not bearer": {"Authorization": "Basic YWxpY2U6cGFzcw=="},
    "malformed": auth("not-a-jwt"),
    "bad signature": auth(jwt_hs256(claims_for(ALICE), secret="another-secret-that-is-long-enough-too")),
    "expired": auth(token(ALICE, exp=int(time.time()) - 3600)),
    "not yet valid": auth(token(ALICE, nbf=int(time.time()) + 3600)),
    "alg none": auth(b64(b'{"alg":"none","typ":"JWT"}') + "." + b64(json.dumps(claims_for(ALICE)).encode()) + "."),
    "alg not configured": auth(jwt_hs256(claims_for(ALICE), header={"alg": "HS384"})),
    "no sub": auth(token(None)),
    "wrong issuer": auth(token(ALICE, iss="https://evil.test")),
    "wrong audience": auth(token(ALICE, aud="someone-else")),
}


def protected_requests(sid: str, rid: str):
    """(method, path, body) of every protected endpoint."""
    chat = {"message": "hello"}
    return [
        ("POST", "/chat/stream", chat), ("POST", "/chat", chat), ("POST", "/chat/cancel", {"run_id": rid}),
        ("GET", "/sessions", None), ("GET", f"/sessions/{sid}/messages", None),
        ("PATCH", f"/sessions/{sid}", {"title": "x"}), ("DELETE", f"/sessions/{sid}", None),
        ("POST", "/v1/chat/completions", {"model": "chatstream", "messages": [{"role": "user", "content": "hi"}]}),
        ("GET", "/v1/models", None),
        ("POST", f"/api/{ALICE}/chat/stream", chat), ("POST", f"/api/{ALICE}/chat", chat),
        ("GET", f"/api/{ALICE}/sessions", None),
    ]


class Users(E2ETestCase):
    """Two chatstream instances (two workers each) with sign-in on, on one PostgreSQL: `a` answers at
    once, `b` slowly (for runs that are still running)."""

    @classmethod
    def setUpClass(cls):
        cls.pg = cls.start_class_postgres()
        cls.pg.migrate()
        common = dict(workers=2, database_url=cls.pg, jwt_issuer=ISSUER, jwt_audience=AUDIENCE, drain_timeout=1,
                      env={"CHATSTREAM_JWT_SECRET": SECRET}, max_active_runs_per_user=3)
        cls.a = cls.start_class_server(**common, **FAST)
        cls.b = cls.start_class_server(**common, **SLOW)

    @classmethod
    def tearDownClass(cls):
        # The secret and the tokens never reach the logs (the servers are still running: logs so far).
        for srv in (cls.a, cls.b):
            text = srv.log_text()
            assert SECRET not in text, "the secret is in the log"
            assert ".eyJ" not in text and "Bearer" not in text, "a token is in the log"

    # --- helpers ---------------------------------------------------------------------------------

    def ask(self, srv, user, message, session_id=None, path="/chat/stream"):
        body = {"message": message}
        if session_id:
            body["session_id"] = session_id
        s = srv.stream(body=body, headers=auth(token(user)), path=path)
        self.assertEqual(s.response.status, 200, s.response)
        try:
            return validate_stream(s.read_all(30), terminal="done")
        finally:
            s.close()

    def start_slow(self, user, session_id=None):
        """A running answer on `b` (its first token read, so its run row is stored)."""
        body = {"message": "a long question"}
        if session_id:
            body["session_id"] = session_id
        s = self.b.stream(body=body, headers=auth(token(user)))
        self.addCleanup(s.close)
        self.assertEqual(s.response.status, 200, s.response)
        meta = s.next_event(10).json
        while True:
            e = s.next_event(10)
            self.assertIsNotNone(e, "the stream ended before its first token")
            if e.type == "token":
                return s, meta
            self.assertNotIn(e.type, ("error", "done", "cancelled"), e.json)

    def terminal_of(self, s, timeout=10):
        while True:
            e = s.next_event(timeout)
            self.assertIsNotNone(e, "the stream ended without a terminal event")
            if e.type in ("done", "error", "cancelled"):
                return e

    def get(self, srv, user, path):
        return srv.request("GET", path, headers=auth(token(user)))

    # --- 1. tokens -------------------------------------------------------------------------------

    def test_every_bad_token_on_every_protected_endpoint_is_401(self):
        sid, rid = str(uuid.uuid4()), str(uuid.uuid4())
        for srv in (self.a, self.b):
            for method, path, body in protected_requests(sid, rid):
                for case, headers in BAD_AUTH.items():
                    with self.subTest(method=method, path=path, case=case):
                        r = srv.request(method, path, body, headers=headers)
                        self.assertJsonError(r, 401, "unauthorized")
                        self.assertEqual(r.header("WWW-Authenticate"), 'Bearer error="invalid_token"')
        # Open: health and metrics.
        self.assertEqual(self.a.request("GET", "/healthz").status, 200)
        self.assertEqual(self.a.request("GET", "/metrics").status, 200)
        self.assertGreater(self.a.metrics().sum("chatstream_http_responses_total", code="401"), 0)

    def test_a_valid_token_is_accepted_within_the_leeway(self):
        # Expired 10 s ago, or valid in 10 s: inside the default 30 s leeway.
        for extra in ({"exp": int(time.time()) - 10}, {"nbf": int(time.time()) + 10}):
            r = self.a.request("POST", "/chat", {"message": "hi"}, headers=auth(token(ALICE, **extra)))
            self.assertEqual(r.status, 200, (extra, r))

    # --- 2. ownership ----------------------------------------------------------------------------

    def test_two_users_are_kept_apart_on_every_route(self):
        sm = self.ask(self.a, ALICE, "What is Alice's secret?")
        sid = sm.session_id
        unknown = str(uuid.uuid4())
        mine = self.get(self.a, ALICE, f"/sessions/{sid}/messages")
        self.assertEqual(mine.status, 200, mine)
        self.assertEqual([m["role"] for m in mine.json()["messages"]], ["user", "assistant"])
        bob = auth(token(BOB))
        for srv in (self.a, self.b):
            for other in (sid, unknown):
                with self.subTest(server=srv.port, session="alice's" if other == sid else "unknown"):
                    answers = [
                        srv.request("GET", f"/sessions/{other}/messages", headers=bob),
                        srv.request("POST", "/chat/stream", {"message": "let me in", "session_id": other}, headers=bob),
                        srv.request("POST", "/chat", {"message": "let me in", "session_id": other}, headers=bob),
                        srv.request("POST", "/v1/chat/completions",
                                    {"messages": [{"role": "user", "content": "let me in"}]},
                                    headers={**bob, "X-Chatstream-Session-Id": other}),
                        srv.request("PATCH", f"/sessions/{other}", {"title": "mine now"}, headers=bob),
                        srv.request("DELETE", f"/sessions/{other}", headers=bob),
                        srv.request("GET", f"/api/{BOB}/sessions/{other}/messages".replace("|", "%7C"), headers=bob),
                    ]
                    for r in answers:
                        e = self.assertJsonError(r, 404, "not_found")
                        self.assertNotIn(ALICE, e["message"])
        # Another user's session answers exactly like an unknown one.
        r1 = self.b.request("GET", f"/sessions/{sid}/messages", headers=bob)
        r2 = self.b.request("GET", f"/sessions/{unknown}/messages", headers=bob)
        self.assertEqual(r1.json(), r2.json())
        # Nothing was written into Alice's conversation, and Bob's list does not show it.
        self.assertEqual(self.pg.scalar(f"SELECT count(*) FROM messages WHERE session_id = '{sid}'"), 2)
        self.assertEqual(self.pg.scalar(f"SELECT title FROM sessions WHERE id = '{sid}'"), "What is Alice's secret?")
        listed = self.get(self.b, BOB, "/sessions").json()["sessions"]
        self.assertNotIn(sid, [c["id"] for c in listed])
        # Alice continues her own conversation on the other instance.
        self.assertEqual(self.ask(self.a, ALICE, "And again?", session_id=sid).session_id, sid)
        self.assertEqual(self.pg.scalar(f"SELECT count(*) FROM messages WHERE session_id = '{sid}'"), 4)
        self.assertEqual(self.pg.scalar(f"SELECT user_id FROM sessions WHERE id = '{sid}'"), ALICE)
        self.assertEqual(self.pg.scalar(f"SELECT count(DISTINCT user_id) FROM runs WHERE session_id = '{sid}'"), 1)

    def test_cancel_only_ones_own_run_across_instances(self):
        s, meta = self.start_slow(ALICE)
        rid = meta["run_id"]
        for srv in (self.b, self.a):  # the run's own instance, then the other one (NOTIFY)
            r = srv.request("POST", "/chat/cancel", {"run_id": rid}, headers=auth(token(BOB)))
            self.assertJsonError(r, 404, "not_found", f"Bob cancels Alice's run on {srv.port}")
        r = self.a.request("POST", "/chat/cancel", {"run_id": rid}, headers=auth(token(ALICE)))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.terminal_of(s).type, "cancelled")
        wait_until(lambda: self.pg.scalar(f"SELECT status FROM runs WHERE id = '{rid}'") == "cancelled", 10,
                   what="the run stored as cancelled")
        self.assertEqual(self.pg.scalar(f"SELECT user_id FROM runs WHERE id = '{rid}'"), ALICE)

    def test_openai_endpoint_is_scoped_to_the_token(self):
        body = {"model": "chatstream", "messages": [{"role": "user", "content": "first"}]}
        r = self.a.request("POST", "/v1/chat/completions", body, headers=auth(token(ALICE)))
        self.assertEqual(r.status, 200, r)
        sid = r.header("X-Chatstream-Session-Id")
        self.assertEqual(self.pg.scalar(f"SELECT user_id FROM sessions WHERE id = '{sid}'"), ALICE)
        body["session_id"] = sid
        self.assertEqual(self.a.request("POST", "/v1/chat/completions", body, headers=auth(token(ALICE))).status, 200)
        self.assertJsonError(self.a.request("POST", "/v1/chat/completions", body, headers=auth(token(BOB))),
                             404, "not_found")
        self.assertEqual(self.a.request("GET", "/v1/models", headers=auth(token(BOB))).status, 200)

    # --- 3. /api/{user_id}/ ----------------------------------------------------------------------

    def test_api_user_prefix(self):
        user = "carol"
        sm = self.ask(self.a, user, "Hello from the prefixed route", path=f"/api/{user}/chat/stream")
        r = self.a.request("POST", f"/api/{user}/chat", {"message": "and whole", "session_id": sm.session_id},
                           headers=auth(token(user)))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["session_id"], sm.session_id)
        msgs = self.get(self.a, user, f"/api/{user}/sessions/{sm.session_id}/messages")
        self.assertEqual(len(msgs.json()["messages"]), 4, msgs)
        listed = self.get(self.a, user, f"/api/{user}/sessions").json()["sessions"]
        self.assertEqual([c["id"] for c in listed], [sm.session_id])
        # Someone else's user id in the path: 403, whatever the route.
        for method, path, body in [("POST", f"/api/{ALICE}/chat/stream", {"message": "hi"}),
                                   ("POST", f"/api/{ALICE}/chat", {"message": "hi"}),
                                   ("GET", f"/api/{ALICE}/sessions", None),
                                   ("GET", f"/api/{ALICE}/sessions/{sm.session_id}/messages", None)]:
            with self.subTest(path=path):
                self.assertJsonError(self.a.request(method, path, body, headers=auth(token(user))), 403, "forbidden")
        self.assertJsonError(self.a.request("GET", f"/api/{user}/nothing", headers=auth(token(user))), 404, "not_found")

    # --- 4. the conversation list ----------------------------------------------------------------

    def test_list_rename_delete(self):
        user = "dave-" + uuid.uuid4().hex[:6]
        sids = [self.ask(self.a, user, f"  Question   number\n{i}  ").session_id for i in range(3)]
        self.ask(self.a, user, "a follow-up", session_id=sids[0])  # the first becomes the newest
        page = self.get(self.a, user, "/sessions").json()
        convs = page["sessions"]
        self.assertEqual([c["id"] for c in convs], [sids[0], sids[2], sids[1]], "newest activity first")
        self.assertIsNone(page["next_before"])
        self.assertEqual(convs[1]["title"], "Question number 2", "the first question, trimmed")
        self.assertEqual([c["message_count"] for c in convs], [4, 2, 2])
        self.assertEqual({c["running"] for c in convs}, {False})
        self.assertEqual(set(convs[0]), {"id", "title", "updated_at", "message_count", "running"})
        # Pages of two.
        first = self.get(self.a, user, "/sessions?limit=2").json()
        self.assertEqual([c["id"] for c in first["sessions"]], [sids[0], sids[2]])
        self.assertTrue(first["next_before"])
        from urllib.parse import quote
        second = self.get(self.a, user, "/sessions?limit=2&before=" + quote(first["next_before"], safe="")).json()
        self.assertEqual([c["id"] for c in second["sessions"]], [sids[1]])
        self.assertIsNone(second["next_before"])
        by_time = self.get(self.a, user, "/sessions?before=" + quote(convs[0]["updated_at"], safe="")).json()
        self.assertEqual([c["id"] for c in by_time["sessions"]], [sids[2], sids[1]])
        for bad in ("limit=0", "limit=101", "limit=x", "before=yesterday", "before=%zz"):
            with self.subTest(query=bad):
                self.assertJsonError(self.get(self.a, user, "/sessions?" + bad), 400, "bad_request")
        # Rename.
        r = self.a.request("PATCH", f"/sessions/{sids[1]}", {"title": "  Renamed ✓ "}, headers=auth(token(user)))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"id": sids[1], "title": "Renamed ✓"})
        convs = self.get(self.b, user, "/sessions").json()["sessions"]
        self.assertEqual({c["id"]: c["title"] for c in convs}[sids[1]], "Renamed ✓")
        self.assertEqual(convs[0]["id"], sids[0], "a rename does not reorder")
        for body in ({}, {"title": ""}, {"title": "   "}, {"title": 5}, {"title": "x" * 201}, {"title": "a\nb"}):
            with self.subTest(body=body):
                self.assertJsonError(self.a.request("PATCH", f"/sessions/{sids[1]}", body, headers=auth(token(user))),
                                     400, "bad_request")
        # Delete.
        r = self.a.request("DELETE", f"/sessions/{sids[2]}", headers=auth(token(user)))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"id": sids[2], "deleted": True})
        self.assertJsonError(self.get(self.a, user, f"/sessions/{sids[2]}/messages"), 404, "not_found")
        self.assertJsonError(self.a.request("DELETE", f"/sessions/{sids[2]}", headers=auth(token(user))), 404, "not_found")
        self.assertEqual([c["id"] for c in self.get(self.a, user, "/sessions").json()["sessions"]], [sids[0], sids[1]])
        self.assertEqual(self.pg.scalar(f"SELECT count(*) FROM messages WHERE session_id = '{sids[2]}'"), 0)
        self.assertEqual(self.pg.scalar(f"SELECT count(*) FROM runs WHERE session_id = '{sids[2]}'"), 0)

    def test_delete_cancels_the_running_run_on_another_instance(self):
        user = "erin"
        s, meta = self.start_slow(user)
        sid = meta["session_id"]
        listed = self.get(self.a, user, "/sessions").json()["sessions"]
        self.assertEqual([(c["id"], c["running"]) for c in listed], [(sid, True)])
        r = self.a.request("DELETE", f"/sessions/{sid}", headers=auth(token(user)))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.terminal_of(s).type, "cancelled")
        time.sleep(0.2)  # the run's last write (which must find its conversation gone and write nothing)
        self.assertEqual(self.pg.scalar(f"SELECT count(*) FROM messages WHERE session_id = '{sid}'"), 0)
        self.assertEqual(self.pg.scalar(f"SELECT count(*) FROM sessions WHERE id = '{sid}'"), 0)
        self.assertEqual(self.get(self.a, user, "/sessions").json()["sessions"], [])
        self.assertEqual(self.b.metrics().sum("chatstream_persist_lost_total"), 0, "not counted as a lost write")

    # --- 5. per-user limit -----------------------------------------------------------------------

    def test_per_user_limit_across_instances(self):
        user = "frank"
        streams = [self.start_slow(user) for _ in range(3)]
        for srv in (self.b, self.a):
            r = srv.request("POST", "/chat/stream", {"message": "one more"}, headers=auth(token(user)))
            e = self.assertJsonError(r, 429, "too_many_runs", f"the fourth run, on {srv.port}")
            self.assertIsNotNone(r.header("Retry-After"))
            self.assertIn("3", e["message"])
        self.assertJsonError(self.a.request("POST", "/chat", {"message": "x"}, headers=auth(token(user))),
                             429, "too_many_runs")
        # Another user is not affected.
        self.assertEqual(self.a.request("POST", "/chat", {"message": "x"}, headers=auth(token("grace"))).status, 200)
        # One stopped: room for one more.
        s, meta = streams[0]
        self.assertEqual(self.a.request("POST", "/chat/cancel", {"run_id": meta["run_id"]},
                                        headers=auth(token(user))).status, 200)
        self.assertEqual(self.terminal_of(s).type, "cancelled")
        wait_until(lambda: self.pg.scalar(f"SELECT status FROM runs WHERE id = '{meta['run_id']}'") != "running", 10)
        r = self.a.request("POST", "/chat", {"message": "now it fits"}, headers=auth(token(user)))
        self.assertEqual(r.status, 200, r)
        for s, meta in streams[1:]:
            self.a.request("POST", "/chat/cancel", {"run_id": meta["run_id"]}, headers=auth(token(user)))
            self.assertEqual(self.terminal_of(s).type, "cancelled")


class SignInOff(E2ETestCase):
    """Without a key: one anonymous user, as before users existed; the server says so once."""

    @classmethod
    def setUpClass(cls):
        cls.pg = cls.start_class_postgres()
        cls.pg.migrate()
        cls.srv = cls.start_class_server(workers=2, database_url=cls.pg, drain_timeout=1, **FAST)

    def test_anonymous_user(self):
        r = self.srv.request("POST", "/chat", {"message": "no token needed"})
        self.assertEqual(r.status, 200, r)
        sid = r.json()["session_id"]
        # A token, if one is sent, is ignored.
        r = self.srv.request("POST", "/chat", {"message": "again", "session_id": sid}, headers=auth("whatever"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.pg.scalar(f"SELECT user_id FROM sessions WHERE id = '{sid}'"), "anonymous")
        page = self.srv.request("GET", "/sessions").json()
        self.assertIs(page["stored"], True)
        self.assertIn(sid, [c["id"] for c in page["sessions"]])
        self.assertEqual(self.srv.request("GET", "/api/anonymous/sessions").status, 200)
        self.assertJsonError(self.srv.request("GET", "/api/bob/sessions"), 403, "forbidden")
        # An unknown session id is not created on the fly any more: 404, like another user's.
        self.assertJsonError(self.srv.request("POST", "/chat", {"message": "x", "session_id": str(uuid.uuid4())}),
                             404, "not_found")
        self.assertEqual(self.srv.log_text().count("sign-in is off"), 1, self.srv.log_tail())


class PublicKeys(E2ETestCase):
    """RS256 and ES256 keys in one PEM file (the rollover form), made with the openssl command line."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="chatstream-keys-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.rsa = os.path.join(cls.dir, "rsa.pem")
        cls.ec = os.path.join(cls.dir, "ec.pem")
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
        run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", cls.rsa)
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", cls.ec)
        pems = b"".join(run("openssl", "pkey", "-in", k, "-pubout").stdout for k in (cls.rsa, cls.ec))
        cls.public = os.path.join(cls.dir, "public.pem")
        with open(cls.public, "wb") as f:
            f.write(pems)
        cls.pem = pems.split(b"-----END PUBLIC KEY-----")[0] + b"-----END PUBLIC KEY-----\n"
        cls.srv = cls.start_class_server(workers=1, drain_timeout=1, jwt_public_key=cls.public, **FAST)

    def signed(self, alg: str, claims: dict) -> str:
        head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        body = b64(json.dumps(claims).encode())
        data = f"{head}.{body}".encode()
        key = self.rsa if alg == "RS256" else self.ec
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=data, check=True,
                             capture_output=True).stdout
        if alg == "ES256":
            sig = der_to_raw(sig)
        return f"{head}.{body}.{b64(sig)}"

    def test_rs256_and_es256_accepted(self):
        for alg in ("RS256", "ES256"):
            with self.subTest(alg=alg):
                tok = self.signed(alg, {"sub": "heidi", "exp": int(time.time()) + 60})
                r = self.srv.request("POST", "/chat", {"message": "hi"}, headers=auth(tok))
                self.assertEqual(r.status, 200, r)
                # No database here: nothing is kept, and the list says so.
                r = self.srv.request("GET", "/sessions", headers=auth(tok))
                self.assertEqual(r.json(), {"sessions": [], "next_before": None, "stored": False})

    def test_the_public_key_is_never_an_hmac_secret(self):
        c = {"sub": "mallory", "exp": int(time.time()) + 60}
        with open(self.public) as f:
            whole_file = f.read()
        for secret in (self.pem.decode(), whole_file):
            tok = jwt_hs256(c, secret=secret)
            r = self.srv.request("POST", "/chat", {"message": "hi"}, headers=auth(tok))
            self.assertJsonError(r, 401, "unauthorized")
        r = self.srv.request("POST", "/chat", {"message": "hi"}, headers=auth(self.signed("RS256", {"sub": "x"})))
        self.assertJsonError(r, 401, "unauthorized", "no exp")

    def test_bad_key_file_stops_the_start(self):
        bad = os.path.join(self.dir, "bad.pem")
        with open(bad, "w") as f:
            f.write("not a key\n")
        p = subprocess.run([harness.BINARY, "serve", "--jwt-public-key", bad, "--listen", "127.0.0.1:1"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--jwt-public-key", p.stderr)


def der_to_raw(der: bytes) -> bytes:
    """An ECDSA signature in DER (SEQUENCE of two INTEGERs) as JWS's r || s, 32 bytes each."""
    assert der[0] == 0x30
    pos = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[pos] == 0x02
        n = der[pos + 1]
        out += der[pos + 2:pos + 2 + n].lstrip(b"\x00").rjust(32, b"\x00")
        pos += 2 + n
    return out


if __name__ == "__main__":
    harness.main()
