// db/pool: the statement pool on a real libuv loop against a real PostgreSQL 15 (no mocks). Real I/O
// is waited for with loop turns bounded in real time (a bug fails the test, it never hangs); every
// deadline and backoff is on the fake clock, moved by the test: nothing sleeps.
//
// The database: under ctest, one cluster for all Pool tests (fixture unit_pg in tests/CMakeLists.txt,
// its URL in the file named by CHATSTREAM_TEST_DATABASE_URL_FILE). Run by hand
// (build/chatstream_unit_tests --gtest_filter='PoolTest.*'), the suite starts its own through
// scripts/unit-pg.sh and removes it afterwards. Without PostgreSQL the tests fail, saying so.
//
// Each test is isolated by its own application_name (how it finds its backends in
// pg_stat_activity), LISTEN channels and advisory-lock key.
#include "db/pool.hpp"

#include <glob.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "core/errc.hpp"
#include "core/graveyard.hpp"
#include "core/timer_wheel.hpp"
#include "support/fake_clock.hpp"

#ifndef CHATSTREAM_SOURCE_DIR
#error "tests/CMakeLists.txt defines CHATSTREAM_SOURCE_DIR (scripts/unit-pg.sh is found through it)"
#endif

namespace chatstream::db {
namespace {

using chatstream::testing::fake_clock_ms;
using Rows = std::vector<std::vector<std::string>>;

// The cluster of this test run.
struct Database {
  std::string url;
  std::string error;    // why there is no URL
  std::string own_dir;  // a cluster this process started (no ctest fixture), removed at the end
};

Database& database() {
  static Database instance;
  return instance;
}

// Runs a shell command; its exit status and what it printed (stdout and stderr).
std::pair<int, std::string> run_command(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

constexpr const char* kOwnClusterPrefix = "/tmp/chatstream-pool-test-";

// A run that crashed never reached TearDownTestSuite: its cluster (the directory is named after the
// process that started it) is stopped by the next run.
void stop_orphaned_clusters() {
  std::string pattern = std::string(kOwnClusterPrefix) + "*";
  glob_t found{};
  if (glob(pattern.c_str(), GLOB_ONLYDIR, nullptr, &found) != 0) return;
  for (size_t i = 0; i < found.gl_pathc; ++i) {
    std::string dir = found.gl_pathv[i];
    long owner = std::strtol(dir.c_str() + std::strlen(kOwnClusterPrefix), nullptr, 10);
    if (owner > 0 && kill(static_cast<pid_t>(owner), 0) != 0 && errno == ESRCH) {
      run_command(std::string(CHATSTREAM_SOURCE_DIR) + "/scripts/unit-pg.sh stop " + dir);
    }
  }
  globfree(&found);
}

// A loopback port bound but never listened on: connecting to it is refused, and nothing else can take
// it while the test runs.
struct RefusedPort {
  RefusedPort() {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      port = ntohs(address.sin_port);
    }
  }
  ~RefusedPort() {
    if (fd >= 0) ::close(fd);
  }
  RefusedPort(const RefusedPort&) = delete;
  RefusedPort& operator=(const RefusedPort&) = delete;
  int fd = -1;
  int port = 0;
};

// The descriptor of this process's TCP socket bound to `port`, or -1.
int socket_with_local_port(int port) {
  for (int fd = 0; fd < 1024; ++fd) {
    sockaddr_in address{};
    socklen_t length = sizeof address;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0 && address.sin_family == AF_INET &&
        ntohs(address.sin_port) == port) {
      return fd;
    }
  }
  return -1;
}

// What is waiting to be read on `fd`, left there.
std::string unread(int fd) {
  char buffer[65536];
  ssize_t n = recv(fd, buffer, sizeof buffer, MSG_PEEK | MSG_DONTWAIT);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
}

// What a statement's callback saw, and how often it ran.
struct Outcome {
  int calls = 0;
  int inside_execute = 0;  // calls that ran inside Pool::execute
  int outside_loop = 0;    // calls that ran neither from a loop turn nor from a tick of the wheel
  int order = 0;           // completion number (1 = the first callback of the test)
  std::string error;       // "" or the metric label of its Errc (core/errc.cpp)
  std::string sqlstate;
  Rows rows;
};

class PoolTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    Database& db = database();
    db = {};
    if (const char* file = std::getenv("CHATSTREAM_TEST_DATABASE_URL_FILE")) {
      db.url = read_first_line(file);
      if (db.url.empty()) {
        db.error = std::string("no database URL in ") + file +
                   " (CHATSTREAM_TEST_DATABASE_URL_FILE): did the ctest fixture unit_pg_start fail?";
      }
      return;
    }
    stop_orphaned_clusters();
    std::string dir = std::string(kOwnClusterPrefix) + std::to_string(getpid());
    db.own_dir = dir;
    std::string command = std::string(CHATSTREAM_SOURCE_DIR) + "/scripts/unit-pg.sh start " + dir;
    auto [status, output] = run_command(command);
    if (status != 0) {
      db.error = "the Pool tests need PostgreSQL 15; `" + command + "` failed (exit " +
                 std::to_string(status) + "):\n" + output;
      return;
    }
    db.url = read_first_line(db.own_dir + "/url");
    if (db.url.empty()) db.error = "scripts/unit-pg.sh wrote no URL to " + db.own_dir + "/url";
  }

  static void TearDownTestSuite() {
    Database& db = database();
    if (!db.own_dir.empty()) {
      auto [status, output] =
          run_command(std::string(CHATSTREAM_SOURCE_DIR) + "/scripts/unit-pg.sh stop " + db.own_dir);
      EXPECT_EQ(status, 0) << output;
    }
    db = {};
  }

 protected:
  PoolTest() : wheel_(nullptr, [] { return fake_clock_ms(); }) {
    static int sequence = 0;
    ++sequence;
    app_ = "pool_test_" + std::to_string(getpid()) + "_" + std::to_string(sequence);
    lock_key_ = std::to_string((static_cast<long long>(getpid()) << 20) + sequence);
    EXPECT_EQ(uv_loop_init(&loop_), 0);
    uv_prepare_init(&loop_, &prepare_);
    prepare_.data = this;
    uv_prepare_start(&prepare_, &PoolTest::on_prepare);
    uv_timer_init(&loop_, &limit_);
    limit_.data = this;
    uv_timer_init(&loop_, &wake_);
  }

  void SetUp() override { ASSERT_FALSE(database().url.empty()) << database().error; }

  ~PoolTest() override {
    shut_down();
    if (!database().url.empty()) {
      terminate_backends();  // a backend in pg_sleep outlives its closed connection until the sleep ends
    }
    if (admin_) PQfinish(admin_);
  }

  // The end of every test: the pool closes, the loop runs until nothing is left on it, and nothing
  // outlived it (uv_loop_close would say EBUSY). Returns uv_loop_close's result; runs once.
  int shut_down() {
    if (loop_closed_) return 0;
    loop_closed_ = true;
    if (pool_) pool_->close();
    pool_.reset();
    graveyard_.reclaim();  // the closed connections (their poll handles close on the loop)
    uv_close(reinterpret_cast<uv_handle_t*>(&prepare_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&limit_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&wake_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);  // close callbacks, and cancel requests still on the thread pool
    EXPECT_TRUE(graveyard_.empty());
    EXPECT_EQ(wheel_.size(), 0u) << "a timer outlived the pool";
    int rc = uv_loop_close(&loop_);
    EXPECT_EQ(rc, 0) << "a handle or request outlived the pool";
    return rc;
  }

  std::string conninfo(const std::string& url, const std::string& application_name) const {
    return url + (url.find('?') == std::string::npos ? "?" : "&") + "application_name=" + application_name;
  }

  Pool& make_pool(size_t size, uint64_t wait_timeout_ms = 60000, size_t max_waiting = 1024,
                  const std::string& url = {}) {
    PoolSettings settings;
    settings.conninfo = conninfo(url.empty() ? database().url : url, app_);
    settings.size = size;
    settings.wait_timeout_ms = wait_timeout_ms;
    settings.max_waiting = max_waiting;
    settings.prepare_statements = prepare_statements_;
    pool_ = std::make_unique<Pool>(&loop_, wheel_, graveyard_, settings);
    pool_size_ = size;
    return *pool_;
  }

  // start(), then run the loop until every connection of the pool is up.
  ::testing::AssertionResult start_connected(Pool& pool) {
    pool.start();
    if (run_until([&] { return pool.connected() == pool_size_; })) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << pool.connected() << " of " << pool_size_
                                         << " connections up, state " << pool.state();
  }

  // A record for one statement, owned by the fixture: a test that stops at a failed ASSERT leaves
  // statements whose callbacks run when the pool closes, after the test body's locals are gone.
  Outcome& outcome() { return outcomes_.emplace_back(); }

  // Pool::execute, recording into `outcome`; `then` runs inside the callback.
  Pool::Ticket execute(std::string sql, Params params, Outcome& outcome, std::function<void()> then = {}) {
    bool was = in_execute_;
    in_execute_ = true;
    Pool::Ticket ticket = pool_->execute(std::move(sql), std::move(params), record(outcome, std::move(then)));
    in_execute_ = was;
    return ticket;
  }

  Pool::Ticket execute(const Statement& statement, Params params, Outcome& outcome) {
    bool was = in_execute_;
    in_execute_ = true;
    Pool::Ticket ticket = pool_->execute(statement, std::move(params), record(outcome, {}));
    in_execute_ = was;
    return ticket;
  }

  // Executes a named statement into `outcome` and runs the loop until it is answered.
  ::testing::AssertionResult answered(const Statement& statement, Params params, Outcome& outcome) {
    execute(statement, std::move(params), outcome);
    if (run_until([&] { return outcome.calls > 0; })) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << statement.name << " was not answered";
  }

  // Runs `sql` through the pool (on its one connection, for the tests that look at that connection's
  // server session) and returns the first column of the first row.
  std::string ask_pool(const std::string& sql, Params params = {}) {
    Outcome& asked = outcome();
    execute(sql, std::move(params), asked);
    if (!run_until([&] { return asked.calls > 0; })) return "(no answer)";
    if (!asked.error.empty()) return "(error " + asked.error + " " + asked.sqlstate + ")";
    return asked.rows.empty() || asked.rows[0].empty() ? "" : asked.rows[0][0];
  }

  QueryCallback record(Outcome& outcome, std::function<void()> then) {
    return [this, &outcome, then = std::move(then)](QueryOutcome& result) {
      ++outcome.calls;
      if (in_execute_) ++outcome.inside_execute;
      if (!in_loop_) ++outcome.outside_loop;
      outcome.order = ++completions_;
      outcome.error = result.error ? std::string(errc_row(result.error->code).metric) : "";
      outcome.sqlstate = result.error ? result.error->sqlstate : "";
      outcome.rows.clear();
      int columns = result.result ? PQnfields(result.result.get()) : 0;
      for (int row = 0; row < result.rows(); ++row) {
        outcome.rows.emplace_back();
        for (int column = 0; column < columns; ++column) {
          outcome.rows.back().emplace_back(result.text(row, column));
        }
      }
      if (then) then();
    };
  }

  // Loop turns until `done` holds; false when it does not within `limit_ms` of real time. A condition
  // that nothing on the loop signals (the server's view, read on the admin connection) needs
  // `poll_ms`: the loop then wakes that often to look again.
  bool run_until(const std::function<bool()>& done, uint64_t poll_ms = 0, uint64_t limit_ms = 20000) {
    timed_out_ = false;
    until_ = &done;
    uv_timer_start(&limit_, &PoolTest::on_limit, limit_ms, 0);
    if (poll_ms > 0) uv_timer_start(&wake_, [](uv_timer_t*) {}, poll_ms, poll_ms);
    while (!done() && !timed_out_) {
      in_loop_ = true;
      uv_run(&loop_, UV_RUN_ONCE);
      in_loop_ = false;
    }
    uv_timer_stop(&limit_);
    uv_timer_stop(&wake_);
    until_ = nullptr;
    return done();
  }

  // Waits for the server's view (read on the admin connection) WITHOUT running the loop: what the pool
  // would do meanwhile waits on its sockets. False when `done` does not hold within `limit_ms`.
  bool wait_on_server(const std::function<bool()>& done, uint64_t limit_ms = 20000) {
    uint64_t deadline = uv_hrtime() / 1000000 + limit_ms;
    while (!done()) {
      if (uv_hrtime() / 1000000 > deadline) return false;
    }
    return true;
  }

  // A few turns that never block: for what must NOT happen.
  void turns(int count) {
    for (int i = 0; i < count; ++i) {
      in_loop_ = true;
      uv_run(&loop_, UV_RUN_NOWAIT);
      in_loop_ = false;
    }
  }

  // Time passes on the fake clock: the wheel runs every timer due by then, as its tick on the loop
  // would.
  void advance_to(uint64_t now_ms) {
    ASSERT_GE(now_ms, fake_clock_ms());
    fake_clock_ms() = now_ms;
    in_loop_ = true;
    wheel_.advance_to(now_ms);
    in_loop_ = false;
  }
  void advance(uint64_t ms) { advance_to(fake_clock_ms() + ms); }

  // The test's own hand on the server (blocking libpq, outside the loop under test): the first
  // column of the first row, "" when there is none; a failure fails the test.
  std::string admin_query(const std::string& sql, const std::vector<std::string>& params = {}) {
    if (!admin_) {
      admin_ = PQconnectdb(conninfo(database().url, "pool_test_admin").c_str());
      if (PQstatus(admin_) != CONNECTION_OK) {
        ADD_FAILURE() << "admin connection: " << PQerrorMessage(admin_);
        return "";
      }
    }
    std::vector<const char*> values;
    for (const auto& param : params) values.push_back(param.c_str());
    PGresult* result = PQexecParams(admin_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                    values.data(), nullptr, nullptr, 0);
    std::string value;
    ExecStatusType status = PQresultStatus(result);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      ADD_FAILURE() << sql << ": " << PQresultErrorMessage(result);
    } else if (PQntuples(result) > 0 && PQnfields(result) > 0) {
      value = PQgetvalue(result, 0, 0);
    }
    PQclear(result);
    return value;
  }

  // How many of this test's backends the server has in `state` (and, if given, with that last query).
  int backends(const std::string& state, const std::string& query = {}) {
    std::string count = admin_query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = $2 "
        "AND ($3 = '' OR query = $3)",
        {app_, state, query});
    return count.empty() ? -1 : std::stoi(count);
  }
  // This test's backends as the server sees them: failure context.
  std::string activity() {
    return admin_query(
        "SELECT coalesce(string_agg(format('pid %s %s: %s', pid, state, query), '; ' ORDER BY backend_start), "
        "'none') FROM pg_stat_activity WHERE application_name = $1",
        {app_});
  }
  // Terminates this test's backends (the pool's own); how many.
  std::string terminate_backends() {
    return admin_query(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", {app_});
  }
  // The pool's listener has LISTENed on `channel` (its LISTEN is done: committed).
  bool listening(const std::string& channel) { return backends("idle", "LISTEN \"" + channel + "\"") == 1; }

  // A statement that blocks on the server until release_lock(): the admin holds the lock meanwhile.
  void hold_lock() { admin_query("SELECT pg_advisory_lock($1::bigint)", {lock_key_}); }
  void release_lock() { EXPECT_EQ(admin_query("SELECT pg_advisory_unlock($1::bigint)", {lock_key_}), "t"); }
  std::string blocked_statement() const {
    return "SELECT 'unblocked' FROM pg_advisory_xact_lock(" + lock_key_ + ")";
  }

  uv_loop_t loop_;
  TimerWheel wheel_;
  Graveyard graveyard_;
  std::deque<Outcome> outcomes_;  // before pool_: outlives it
  std::unique_ptr<Pool> pool_;
  size_t pool_size_ = 0;
  bool prepare_statements_ = true;  // PoolSettings::prepare_statements of make_pool
  std::string app_;  // this test's application_name: its backends in pg_stat_activity
  std::string lock_key_;

 private:
  static void on_limit(uv_timer_t* timer) { static_cast<PoolTest*>(timer->data)->timed_out_ = true; }

  // Every turn starts like the worker's (worker/server.cpp): the graveyard is emptied. The turn takes a
  // millisecond of the fake clock and the wheel runs what is due: a timer set "for the next tick"
  // (the pool's deferred callbacks) fires on the next turn, while deadlines and backoffs only pass
  // when the test advances the clock.
  static void on_prepare(uv_prepare_t* handle) {
    auto* self = static_cast<PoolTest*>(handle->data);
    self->graveyard_.reclaim();
    fake_clock_ms() += 1;
    self->wheel_.advance_to(fake_clock_ms());
    // Done: do not block in this turn's poll (uv_stop makes its timeout 0).
    if (self->until_ && (*self->until_)()) uv_stop(handle->loop);
  }

  uv_prepare_t prepare_;
  uv_timer_t limit_;  // bounds run_until in real time
  uv_timer_t wake_;   // run_until's polling of a condition off the loop
  const std::function<bool()>* until_ = nullptr;
  bool timed_out_ = false;
  bool in_loop_ = false;
  bool in_execute_ = false;
  int completions_ = 0;
  bool loop_closed_ = false;
  PGconn* admin_ = nullptr;
};

TEST_F(PoolTest, AStatementReturnsItsRowsFromTheLoopNeverInsideExecute) {
  Pool& pool = make_pool(2);
  EXPECT_EQ(pool.state(), "connecting");
  ASSERT_TRUE(start_connected(pool));
  EXPECT_EQ(pool.state(), "connected");

  Outcome& result = outcome();
  execute("SELECT n, 'row ' || n, $2::text IS NULL FROM generate_series(1, $1::int) AS n",
          {"3", std::nullopt}, result);
  EXPECT_EQ(result.calls, 0) << "the callback ran inside execute()";
  EXPECT_EQ(pool.waiting(), 1u);
  ASSERT_TRUE(run_until([&] { return result.calls > 0; }));
  turns(5);
  EXPECT_EQ(result.calls, 1);
  EXPECT_EQ(result.inside_execute, 0);
  EXPECT_EQ(result.outside_loop, 0);
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.rows, (Rows{{"1", "row 1", "t"}, {"2", "row 2", "t"}, {"3", "row 3", "t"}}));
}

TEST_F(PoolTest, ARefusedStatementFailsWithItsSqlstateAndTheConnectionStaysUsable) {
  Pool& pool = make_pool(1);
  pool.start();
  Outcome& refused = outcome();
  Outcome& next = outcome();
  execute("SELECT 1 / $1::int", {"0"}, refused);
  execute("SELECT 'next'", {}, next);
  ASSERT_TRUE(run_until([&] { return refused.calls > 0 && next.calls > 0; }));
  EXPECT_EQ(refused.error, "internal");
  EXPECT_EQ(refused.sqlstate, "22012");  // division_by_zero
  EXPECT_EQ(next.error, "");
  EXPECT_EQ(next.rows, (Rows{{"next"}}));
  EXPECT_EQ(pool.connected(), 1u);
}

TEST_F(PoolTest, WithOneConnectionStatementsCompleteInTheOrderTheyWereQueued) {
  Pool& pool = make_pool(1);
  ASSERT_TRUE(start_connected(pool));
  std::vector<Outcome*> outcomes;
  for (int i = 0; i < 6; ++i) {
    outcomes.push_back(&outcome());
    execute("SELECT $1::int", {std::to_string(i)}, *outcomes.back());
  }
  EXPECT_EQ(pool.waiting(), outcomes.size());
  ASSERT_TRUE(run_until([&] { return outcomes.back()->calls > 0; }));
  for (size_t i = 0; i < outcomes.size(); ++i) {
    EXPECT_EQ(outcomes[i]->calls, 1) << i;
    EXPECT_EQ(outcomes[i]->order, static_cast<int>(i) + 1) << i;
    EXPECT_EQ(outcomes[i]->rows, (Rows{{std::to_string(i)}})) << i;
  }
}

TEST_F(PoolTest, PastMaxWaitingAStatementIsOverloadedFromTheLoop) {
  Pool& pool = make_pool(1, 60000, /*max_waiting=*/2);
  ASSERT_TRUE(start_connected(pool));
  hold_lock();
  Outcome& running = outcome();
  Outcome& first = outcome();
  Outcome& second = outcome();
  Outcome& refused = outcome();
  Outcome& later = outcome();
  execute(blocked_statement(), {}, running);
  ASSERT_TRUE(run_until([&] { return pool.waiting() == 0; }));  // sent: the connection is busy
  execute("SELECT 'first'", {}, first);
  execute("SELECT 'second'", {}, second);
  execute("SELECT 'refused'", {}, refused);
  EXPECT_EQ(refused.calls, 0) << "refused inside execute()";
  EXPECT_EQ(pool.waiting(), 2u);

  ASSERT_TRUE(run_until([&] { return refused.calls > 0; }));
  EXPECT_EQ(refused.error, "overloaded");
  EXPECT_EQ(refused.outside_loop, 0);
  EXPECT_EQ(refused.inside_execute, 0);
  EXPECT_EQ(first.calls + second.calls + running.calls, 0);

  release_lock();
  ASSERT_TRUE(run_until([&] { return second.calls > 0; }));
  EXPECT_EQ(running.rows, (Rows{{"unblocked"}}));
  EXPECT_EQ(first.rows, (Rows{{"first"}}));
  EXPECT_EQ(second.rows, (Rows{{"second"}}));
  // Room again.
  execute("SELECT 'later'", {}, later);
  ASSERT_TRUE(run_until([&] { return later.calls > 0; }));
  EXPECT_EQ(later.error, "");
  EXPECT_EQ(refused.calls, 1);
}

TEST_F(PoolTest, AStatementWaitingPastItsDeadlineIsOverloadedAndACancelFreesTheConnection) {
  constexpr uint64_t kWaitMs = 5000;
  Pool& pool = make_pool(1, kWaitMs);
  ASSERT_TRUE(start_connected(pool));
  Outcome& sleeping = outcome();
  Outcome& waiting = outcome();
  Outcome& third = outcome();
  Pool::Ticket sleeper = execute("SELECT pg_sleep(30)", {}, sleeping);
  ASSERT_TRUE(run_until([&] { return backends("active", "SELECT pg_sleep(30)") == 1; }, 5));

  uint64_t queued_at = fake_clock_ms();
  execute("SELECT 'second'", {}, waiting);
  turns(3);
  advance_to(queued_at + kWaitMs - 1);
  EXPECT_EQ(waiting.calls, 0) << "failed before its deadline";
  EXPECT_EQ(pool.waiting(), 1u);
  advance(1);
  EXPECT_EQ(waiting.calls, 1);
  EXPECT_EQ(waiting.error, "overloaded") << "the database is up: the pool is just busy";
  EXPECT_EQ(waiting.outside_loop, 0);
  EXPECT_EQ(pool.waiting(), 0u);

  // Cancelling the running statement cancels it on the server: the one connection is free again.
  pool.cancel(sleeper);
  execute("SELECT 'third'", {}, third);
  ASSERT_TRUE(run_until([&] { return third.calls > 0; })) << "pg_sleep(30) still holds the connection";
  EXPECT_EQ(third.error, "");
  EXPECT_EQ(third.rows, (Rows{{"third"}}));
  EXPECT_EQ(backends("active", "SELECT pg_sleep(30)"), 0);
  turns(5);
  EXPECT_EQ(sleeping.calls, 0) << "a cancelled statement's callback ran";
  EXPECT_EQ(waiting.calls, 1);
  EXPECT_EQ(pool.state(), "connected");
}

TEST_F(PoolTest, WithTheDatabaseUnreachableAStatementFailsAtItsDeadline) {
  RefusedPort refused;
  ASSERT_NE(refused.port, 0);
  constexpr uint64_t kWaitMs = 3000;
  std::string url =
      "postgresql://postgres@127.0.0.1:" + std::to_string(refused.port) + "/chatstream?sslmode=disable";
  Pool& pool = make_pool(2, kWaitMs, 1024, url);
  pool.start();
  turns(10);
  EXPECT_EQ(pool.state(), "connecting");
  EXPECT_EQ(pool.connected(), 0u);

  Outcome& result = outcome();
  uint64_t queued_at = fake_clock_ms();
  execute("SELECT 1", {}, result);
  turns(10);
  advance_to(queued_at + kWaitMs - 1);  // the connections retry meanwhile (backoff), in vain
  EXPECT_EQ(result.calls, 0) << "failed before its deadline";
  EXPECT_EQ(pool.state(), "connecting");
  advance(1);
  EXPECT_EQ(result.calls, 1);
  EXPECT_EQ(result.error, "database_unavailable") << "nothing is connected: not merely overloaded";
  EXPECT_EQ(result.outside_loop, 0);
  EXPECT_EQ(pool.state(), "connecting");
}

// libpq tries the hosts of a conninfo in turn; a refused first host must not stop the pool there
// (PgConnection used to take the refused socket's POLLERR for a failure of the whole attempt).
TEST_F(PoolTest, AConninfoWhoseFirstHostRefusesConnectsThroughTheNext) {
  RefusedPort refused;
  ASSERT_NE(refused.port, 0);
  std::string url = database().url;
  size_t host = url.find("127.0.0.1:");
  ASSERT_NE(host, std::string::npos) << url;
  url.insert(host, "127.0.0.1:" + std::to_string(refused.port) + ",");
  Pool& pool = make_pool(1, 60000, 1024, url);
  ASSERT_TRUE(start_connected(pool)) << url;
  Outcome& result = outcome();
  execute("SELECT 'through the second host'", {}, result);
  ASSERT_TRUE(run_until([&] { return result.calls > 0; }));
  EXPECT_EQ(result.rows, (Rows{{"through the second host"}}));
}

TEST_F(PoolTest, CloseFailsEveryStatementExactlyOnceEvenThoseQueuedFromItsCallbacks) {
  Pool& pool = make_pool(1, 60000, /*max_waiting=*/2);
  ASSERT_TRUE(start_connected(pool));
  Outcome& running = outcome();
  Outcome& first = outcome();
  Outcome& second = outcome();
  Outcome& refused = outcome();
  Outcome& from_callback = outcome();
  Outcome& after_close = outcome();
  execute("SELECT pg_sleep(30)", {}, running);
  ASSERT_TRUE(run_until([&] { return pool.waiting() == 0; }));
  Outcome* nested = &from_callback;
  execute("SELECT 'first'", {}, first, [this, nested] { execute("SELECT 'from a callback'", {}, *nested); });
  execute("SELECT 'second'", {}, second);
  execute("SELECT 'refused'", {}, refused);  // over max_waiting: failed, not delivered yet
  ASSERT_EQ(pool.waiting(), 2u);
  ASSERT_EQ(refused.calls, 0);

  pool.close();
  for (Outcome* each : {&running, &first, &second, &refused, &from_callback}) {
    EXPECT_EQ(each->calls, 1);
    EXPECT_EQ(each->error, "database_unavailable");
  }
  EXPECT_EQ(from_callback.inside_execute, 0);
  EXPECT_EQ(pool.waiting(), 0u);
  EXPECT_EQ(pool.connected(), 0u);

  // A statement after close fails too, from the loop.
  execute("SELECT 'after close'", {}, after_close);
  EXPECT_EQ(after_close.calls, 0);
  ASSERT_TRUE(run_until([&] { return after_close.calls > 0; }));
  EXPECT_EQ(after_close.error, "database_unavailable");
  EXPECT_EQ(after_close.outside_loop, 0);

  turns(5);
  for (Outcome* each : {&running, &first, &second, &refused, &from_callback, &after_close}) {
    EXPECT_EQ(each->calls, 1);
  }
  EXPECT_EQ(shut_down(), 0);
}

TEST_F(PoolTest, AStatementAfterCloseHearsBackWhenThePoolIsDestroyedBeforeTheNextTick) {
  // The server closes the timer wheel right after the pool: the tick that would deliver the failure
  // never comes, so the destructor delivers it (a run waiting for its save is freed, not leaked).
  Pool& pool = make_pool(1);
  ASSERT_TRUE(start_connected(pool));
  pool.close();
  Outcome& after_close = outcome();
  Outcome& from_callback = outcome();
  Outcome* nested = &from_callback;
  // The nested statement is executed on the pool while it is being destroyed (pool_ is null by then).
  execute("SELECT 'after close'", {}, after_close,
          [this, nested, &pool] { pool.execute("SELECT 'nested'", {}, record(*nested, {})); });
  EXPECT_EQ(after_close.calls, 0);
  pool_.reset();
  EXPECT_EQ(after_close.calls, 1);
  EXPECT_EQ(after_close.error, "database_unavailable");
  EXPECT_EQ(from_callback.calls, 1);
  EXPECT_EQ(from_callback.error, "database_unavailable");
  EXPECT_EQ(shut_down(), 0);
}

TEST_F(PoolTest, CancelIfWaitingDropsAWaitingStatementButNotARunningOne) {
  Pool& pool = make_pool(1);
  ASSERT_TRUE(start_connected(pool));
  hold_lock();
  Outcome& running = outcome();
  Outcome& dropped = outcome();
  Outcome& after = outcome();
  Pool::Ticket sent = execute(blocked_statement(), {}, running);
  ASSERT_TRUE(run_until([&] { return pool.waiting() == 0; }));
  Pool::Ticket waiting = execute("SELECT 'dropped'", {}, dropped);
  EXPECT_EQ(pool.waiting(), 1u);

  EXPECT_TRUE(pool.cancel_if_waiting(waiting));
  EXPECT_EQ(pool.waiting(), 0u);
  EXPECT_FALSE(pool.cancel_if_waiting(waiting)) << "dropped twice";
  EXPECT_FALSE(pool.cancel_if_waiting(sent)) << "a statement on the server was dropped";

  execute("SELECT 'after'", {}, after);
  release_lock();
  ASSERT_TRUE(run_until([&] { return running.calls > 0 && after.calls > 0; }));
  EXPECT_EQ(running.rows, (Rows{{"unblocked"}}));
  EXPECT_EQ(after.rows, (Rows{{"after"}}));
  turns(5);
  EXPECT_EQ(dropped.calls, 0) << "a dropped statement's callback ran";
}

TEST_F(PoolTest, ListenDeliversNotificationsToTheirChannelsHandler) {
  Pool& pool = make_pool(1);
  std::string early = app_ + "_early", late = app_ + "_late";
  std::vector<std::pair<std::string, std::string>> heard_early, heard_late;
  pool.listen(early, [&](std::string_view channel, std::string_view payload) {
    heard_early.emplace_back(channel, payload);
  });
  pool.start();
  ASSERT_TRUE(run_until([&] { return pool.connected() == 1 && listening(early); }, 5));
  Outcome& notified = outcome();
  execute("NOTIFY \"" + early + "\", 'the payload'", {}, notified);
  ASSERT_TRUE(run_until([&] { return !heard_early.empty(); }));
  EXPECT_EQ(notified.error, "");

  // A channel added once the listener is up: its LISTEN goes out at once. The loop does not run until
  // the server has committed it and a NOTIFY on it followed, so the listener reads the LISTEN's answer
  // and the notification together.
  pool.listen(late, [&](std::string_view channel, std::string_view payload) {
    heard_late.emplace_back(channel, payload);
  });
  ASSERT_TRUE(wait_on_server([&] { return listening(late); })) << activity();
  admin_query("SELECT pg_notify($1, 'second payload')", {late});
  // The listener's backend sends the notification on its own time: wait until it is in the socket,
  // behind the LISTEN's answer (a look at the pool's socket, found by the backend's client port).
  int listener = socket_with_local_port(std::atoi(admin_query(
      "SELECT client_port FROM pg_stat_activity WHERE application_name = $1 AND query = $2",
      {app_, "LISTEN \"" + late + "\""}).c_str()));
  ASSERT_GE(listener, 0);
  ASSERT_TRUE(wait_on_server([&] { return unread(listener).find("second payload") != std::string::npos; }));
  ASSERT_TRUE(run_until([&] { return !heard_late.empty(); }))
      << "a notification that came with the LISTEN's answer was not delivered";
  turns(5);
  EXPECT_EQ(heard_early, (std::vector<std::pair<std::string, std::string>>{{early, "the payload"}}));
  EXPECT_EQ(heard_late, (std::vector<std::pair<std::string, std::string>>{{late, "second payload"}}));
}

// "connected" means a NOTIFY sent now is heard: not before the listener's LISTEN is done, at start
// and after an outage (a cross-worker cancel sent in between would answer 200 and stop nothing).
TEST_F(PoolTest, ConnectedOnlyOnceTheListenerListensAtStartAndAfterAnOutage) {
  Pool& pool = make_pool(1);
  std::string channel = app_ + "_cancel";
  pool.listen(channel, [](std::string_view, std::string_view) {});
  pool.start();
  bool listening_when_connected = false;
  auto connected = [&] {
    if (pool.state() != "connected") return false;
    listening_when_connected = listening(channel);
    return true;
  };
  ASSERT_TRUE(run_until(connected, 5));
  EXPECT_TRUE(listening_when_connected) << activity();

  EXPECT_EQ(terminate_backends(), "2");
  ASSERT_TRUE(run_until([&] { return pool.connected() == 0; }));
  EXPECT_EQ(pool.state(), "unavailable");
  advance(100);  // PgConnection's first backoff
  listening_when_connected = false;
  ASSERT_TRUE(run_until(connected, 5));
  EXPECT_TRUE(listening_when_connected) << activity();
}

// What was NOTIFYed while the listener was away is lost: on_listening says when to look for it — once
// the listener LISTENs on every channel, at start and after each reconnect, never before.
TEST_F(PoolTest, OnListeningRunsEachTimeTheListenerListensOnEveryChannelAgain) {
  Pool& pool = make_pool(1);
  std::string first = app_ + "_cancel", second = app_ + "_run_end";
  pool.listen(first, [](std::string_view, std::string_view) {});
  pool.listen(second, [](std::string_view, std::string_view) {});
  int calls = 0;
  bool both_listening = true;
  pool.on_listening([&] {
    ++calls;
    // The server shows a backend's last statement: the second LISTEN done (they go one after the other).
    both_listening = both_listening && listening(second);
  });
  pool.start();
  ASSERT_TRUE(run_until([&] { return calls == 1; }, 5));
  EXPECT_TRUE(both_listening) << activity();

  EXPECT_EQ(admin_query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 "
                        "AND query LIKE 'LISTEN%'",
                        {app_}),
            "1");
  ASSERT_TRUE(run_until([&] { return pool.state() == "unavailable"; }));
  turns(5);
  EXPECT_EQ(calls, 1);
  advance(100);  // the listener's first backoff
  ASSERT_TRUE(run_until([&] { return calls == 2; }, 5));
  EXPECT_TRUE(both_listening) << activity();
  turns(5);
  EXPECT_EQ(calls, 2);
}

// Each connection waits out its own reconnect backoff; once one is back, the server is: the listener
// reconnects at once instead of at its own time (meanwhile a NOTIFY from another worker is lost).
TEST_F(PoolTest, AConnectionThatReconnectsMakesTheListenerReconnectAtOnce) {
  Pool& pool = make_pool(1);
  std::string channel = app_ + "_follow";
  pool.listen(channel, [](std::string_view, std::string_view) {});
  pool.start();
  ASSERT_TRUE(run_until([&] { return pool.state() == "connected"; }, 5));
  auto terminate = [&](const char* which) {
    return admin_query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 "
                       "AND (query LIKE 'LISTEN%') = $2",
                       {app_, which});
  };
  // The statement connection goes first: it retries 100 ms later on the fake clock; the listener,
  // lost 60 ms after it, would retry at 160 ms.
  // (Every loop turn is a millisecond of the fake clock: the waits below turn the loop only on the
  // pool's own socket events, a few dozen turns at most.)
  EXPECT_EQ(terminate("false"), "1");
  ASSERT_TRUE(run_until([&] { return pool.connected() == 0; }, 0, 5000));
  uint64_t statement_retry_at = fake_clock_ms() + 100;
  advance(60);
  uint64_t listener_retry_not_before = fake_clock_ms() + 100;
  EXPECT_EQ(terminate("true"), "1");
  // The listener hears of its loss from the server (its socket): a moment of real time.
  run_until([] { return false; }, 0, 300);
  EXPECT_EQ(pool.state(), "unavailable");
  advance_to(statement_retry_at);
  ASSERT_TRUE(run_until([&] { return pool.state() == "connected"; }, 0, 5000)) << activity();
  EXPECT_TRUE(listening(channel));
  EXPECT_LT(fake_clock_ms(), listener_retry_not_before) << "the listener waited out its own backoff";
}

TEST_F(PoolTest, LostConnectionsFailTheirStatementAndThePoolReconnects) {
  Pool& pool = make_pool(2);
  std::string channel = app_ + "_events";
  std::vector<std::string> heard;
  pool.listen(channel, [&](std::string_view, std::string_view payload) { heard.emplace_back(payload); });
  pool.start();
  ASSERT_TRUE(run_until([&] { return pool.connected() == 2 && listening(channel); }, 5));
  EXPECT_EQ(backends("idle"), 3) << "two statement connections and the listener";

  Outcome& running = outcome();
  Outcome& during = outcome();
  Outcome& after = outcome();
  Outcome& notified = outcome();
  execute("SELECT pg_sleep(30)", {}, running);
  ASSERT_TRUE(run_until([&] { return backends("active", "SELECT pg_sleep(30)") == 1; }, 5));
  EXPECT_EQ(terminate_backends(), "3");

  ASSERT_TRUE(run_until([&] { return running.calls > 0 && pool.connected() == 0; }));
  EXPECT_EQ(running.error, "database_unavailable");
  EXPECT_EQ(pool.state(), "unavailable");

  // A statement waits for the reconnection (its deadline is far).
  execute("SELECT 'during'", {}, during);
  turns(5);
  EXPECT_EQ(during.calls, 0);
  // PgConnection's first backoff is 100 ms.
  advance(100);
  ASSERT_TRUE(run_until([&] { return pool.connected() == 2 && during.calls > 0; }));
  ASSERT_TRUE(run_until([&] { return pool.state() == "connected"; }, 5));
  EXPECT_EQ(during.error, "");
  EXPECT_EQ(during.rows, (Rows{{"during"}}));
  execute("SELECT 'after'", {}, after);
  ASSERT_TRUE(run_until([&] { return after.calls > 0; }));
  EXPECT_EQ(after.rows, (Rows{{"after"}}));

  // The listener reconnected too, and LISTENs again.
  ASSERT_TRUE(run_until([&] { return listening(channel); }, 5));
  execute("SELECT pg_notify($1, 'back')", {channel}, notified);
  ASSERT_TRUE(run_until([&] { return !heard.empty(); })) << activity();
  EXPECT_EQ(heard, std::vector<std::string>{"back"});
  EXPECT_EQ(running.calls, 1);
}

// --- named statements (db/statement.hpp) ---------------------------------------------------------

constexpr Statement kAddOne{"pool_test_add_one", "SELECT $1::int + 1"};
constexpr Statement kMisspelt{"pool_test_misspelt", "SELEC $1::int"};
constexpr Statement kDivide{"pool_test_divide", "SELECT 1 / $1::int"};

// What the pool's one connection has prepared on the server: "name executions" (generic + custom
// plans: how many times the server executed it by name), "" when nothing.
constexpr const char* kPreparedSql =
    "SELECT coalesce(string_agg(name || ' ' || (generic_plans + custom_plans), ',' ORDER BY name), '') "
    "FROM pg_prepared_statements";

TEST_F(PoolTest, ANamedStatementIsPreparedOnceOnAConnectionThenExecutedByName) {
  Pool& pool = make_pool(1);
  ASSERT_TRUE(start_connected(pool));
  EXPECT_EQ(ask_pool(kPreparedSql), "");
  std::vector<Outcome*> outcomes;
  for (int i = 0; i < 3; ++i) {
    outcomes.push_back(&outcome());
    execute(kAddOne, {std::to_string(i)}, *outcomes.back());
  }
  ASSERT_TRUE(run_until([&] { return outcomes.back()->calls > 0; }));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(outcomes[i]->calls, 1) << i;
    EXPECT_EQ(outcomes[i]->inside_execute, 0) << i;
    EXPECT_EQ(outcomes[i]->error, "") << i;
    EXPECT_EQ(outcomes[i]->rows, (Rows{{std::to_string(i + 1)}})) << i;
  }
  // One prepared statement, executed three times by its name.
  EXPECT_EQ(ask_pool(kPreparedSql), "pool_test_add_one 3");
}

TEST_F(PoolTest, ANamedStatementTheServerNoLongerKnowsIsPreparedAgain) {
  Pool& pool = make_pool(1);
  ASSERT_TRUE(start_connected(pool));
  Outcome& first = outcome();
  ASSERT_TRUE(answered(kAddOne, {"1"}, first));
  ASSERT_EQ(first.rows, (Rows{{"2"}}));

  // What a pooler that dropped it looks like: the server session forgets the name (26000 next time).
  EXPECT_EQ(ask_pool("DEALLOCATE pool_test_add_one"), "");
  Outcome& again = outcome();
  ASSERT_TRUE(answered(kAddOne, {"2"}, again));
  EXPECT_EQ(again.error, "");
  EXPECT_EQ(again.rows, (Rows{{"3"}}));
  EXPECT_EQ(ask_pool(kPreparedSql), "pool_test_add_one 1");

  // A new server session (the connection was lost) knows none: prepared there again too.
  EXPECT_EQ(terminate_backends(), "1");
  ASSERT_TRUE(run_until([&] { return pool.connected() == 0; }));
  advance(100);  // the first reconnect backoff
  ASSERT_TRUE(run_until([&] { return pool.connected() == 1; }));
  Outcome& reconnected = outcome();
  ASSERT_TRUE(answered(kAddOne, {"3"}, reconnected));
  EXPECT_EQ(reconnected.error, "");
  EXPECT_EQ(reconnected.rows, (Rows{{"4"}}));
  EXPECT_EQ(ask_pool(kPreparedSql), "pool_test_add_one 1");
}

TEST_F(PoolTest, ANamedStatementsErrorsAreItsOutcomeAndTheConnectionStaysUsable) {
  Pool& pool = make_pool(1);
  ASSERT_TRUE(start_connected(pool));
  Outcome& misspelt = outcome();
  Outcome& divided = outcome();
  Outcome& next = outcome();
  execute(kMisspelt, {"1"}, misspelt);  // refused at its prepare
  execute(kDivide, {"0"}, divided);  // refused executing
  ASSERT_TRUE(answered(kAddOne, {"41"}, next));
  EXPECT_EQ(misspelt.calls, 1);
  EXPECT_EQ(misspelt.error, "internal");
  EXPECT_EQ(misspelt.sqlstate, "42601");  // syntax_error
  EXPECT_EQ(divided.calls, 1);
  EXPECT_EQ(divided.error, "internal");
  EXPECT_EQ(divided.sqlstate, "22012");  // division_by_zero
  EXPECT_EQ(next.error, "");
  EXPECT_EQ(next.rows, (Rows{{"42"}}));
  // The misspelt one was never prepared; it is refused again (not taken as prepared) the next time.
  Outcome& again = outcome();
  ASSERT_TRUE(answered(kMisspelt, {"1"}, again));
  EXPECT_EQ(again.sqlstate, "42601");
  // Both others are prepared (the division failed executing: not counted as an execution).
  EXPECT_EQ(ask_pool(kPreparedSql), "pool_test_add_one 1,pool_test_divide 0");
}

TEST_F(PoolTest, WithPreparedStatementsOffANamedStatementIsSentUnnamed) {
  prepare_statements_ = false;  // --db-prepared-statements off
  Pool& pool = make_pool(1);
  ASSERT_TRUE(start_connected(pool));
  Outcome& result = outcome();
  ASSERT_TRUE(answered(kAddOne, {"6"}, result));
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.rows, (Rows{{"7"}}));
  EXPECT_EQ(ask_pool(kPreparedSql), "");
}

}  // namespace
}  // namespace chatstream::db
