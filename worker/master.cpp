#include "master.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/clock.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "server.hpp"

namespace chatstream {

namespace {

constexpr int kListenBacklog = 8192;  // the kernel caps it at net.core.somaxconn
// Grace beyond --drain-timeout before the master kills workers: the worker's own final close pass.
constexpr uint64_t kKillGraceMs = 10000;
// Dead workers remembered for the runs they left (a crash-looping worker is backed off long before).
constexpr size_t kMaxLostWorkers = 4096;

Result<int> bind_listener(const ListenAddress& address) {
  if (address.is_unix) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return Error{std::string("socket: ") + strerror(errno)};
    struct stat st;
    if (lstat(address.host.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(address.host.c_str());
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, address.host.c_str(), address.host.size() + 1);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) {
      int e = errno;
      close(fd);
      return Error{"cannot bind " + address.describe() + ": " + strerror(e)};
    }
    // nginx workers usually run as another user (www-data); the socket is as reachable as a
    // loopback port, so restrict access with the directory's permissions if needed.
    chmod(address.host.c_str(), 0666);
    if (listen(fd, kListenBacklog) != 0) {
      int e = errno;
      close(fd);
      return Error{std::string("listen: ") + strerror(e)};
    }
    return fd;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* result = nullptr;
  std::string port = std::to_string(address.port);
  int rc = getaddrinfo(address.host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0) return Error{"cannot use address '" + address.host + "': " + gai_strerror(rc) + " (numeric IP expected)"};
  int fd = socket(result->ai_family, SOCK_STREAM, 0);
  if (fd < 0) {
    freeaddrinfo(result);
    return Error{std::string("socket: ") + strerror(errno)};
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, result->ai_addr, result->ai_addrlen) != 0) {
    int e = errno;
    freeaddrinfo(result);
    close(fd);
    return Error{"cannot bind " + address.describe() + ": " + strerror(e)};
  }
  freeaddrinfo(result);
  if (listen(fd, kListenBacklog) != 0) {
    int e = errno;
    close(fd);
    return Error{std::string("listen: ") + strerror(e)};
  }
  return fd;
}

struct WorkerProcess {
  pid_t pid = 0;
  uint64_t started_ms = 0;
  uint64_t restart_at_ms = 0;  // 0 = running or not scheduled
  uint64_t backoff_ms = 0;
};

class Master {
 public:
  Master(const Config& config, int listen_fd, obs::SharedMetrics* metrics)
      : config_(config), listen_fd_(listen_fd), metrics_(metrics), workers_(static_cast<size_t>(config.workers)) {
    origin_.master_pid = getpid();
  }

  int run() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGCHLD);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    sigprocmask(SIG_BLOCK, &signals, &original_mask_);
    for (size_t i = 0; i < workers_.size(); ++i) spawn(i);
    log::info("master ready", log::field("listen", config_.listen.describe()) + "," +
                                  log::field("workers", static_cast<long long>(workers_.size())));
    while (true) {
      timespec wait{0, 200 * 1000 * 1000};
      siginfo_t info;
      int signum = sigtimedwait(&signals, &info, &wait);
      if (signum == SIGCHLD) reap();
      if (signum == SIGTERM || signum == SIGINT) on_stop_signal(signum);
      if (signum == SIGHUP) log::info("SIGHUP ignored (restart the service to reload configuration)");
      uint64_t now = monotonic_ms();
      if (!draining_) {
        for (size_t i = 0; i < workers_.size(); ++i) {
          if (workers_[i].pid == 0 && workers_[i].restart_at_ms != 0 && now >= workers_[i].restart_at_ms) spawn(i);
        }
      } else {
        if (alive() == 0) break;
        if (now >= kill_at_ms_) kill_all(SIGKILL);
      }
    }
    log::info("master exited");
    return 0;
  }

 private:
  void spawn(size_t index) {
    WorkerProcess& worker = workers_[index];
    pid_t master_pid = getpid();
    pid_t pid = fork();
    if (pid < 0) {
      log::error("fork failed", log::field("error", strerror(errno)));
      worker.restart_at_ms = monotonic_ms() + 1000;
      return;
    }
    if (pid == 0) {
      // The worker: dies with the master, takes signals through its own loop.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != master_pid) _exit(0);
      sigprocmask(SIG_SETMASK, &original_mask_, nullptr);
      signal(SIGPIPE, SIG_IGN);
      obs::bind_worker_slot(metrics_, static_cast<uint32_t>(index));
      _exit(run_worker(config_, listen_fd_, static_cast<int>(index), origin_));
    }
    worker.pid = pid;
    worker.started_ms = monotonic_ms();
    worker.restart_at_ms = 0;
    metrics_->workers_running.fetch_add(1);
    log::info("worker started", log::field("worker", static_cast<long long>(index)) + "," +
                                    log::field("worker_pid", static_cast<long long>(pid)));
  }

  void reap() {
    while (true) {
      int status = 0;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      for (size_t i = 0; i < workers_.size(); ++i) {
        WorkerProcess& worker = workers_[i];
        if (worker.pid != pid) continue;
        worker.pid = 0;
        metrics_->workers_running.fetch_sub(1);
        metrics_->reset_gauges(static_cast<uint32_t>(i));
        std::string how = WIFSIGNALED(status) ? std::string("signal ") + std::to_string(WTERMSIG(status))
                                              : "exit " + std::to_string(WEXITSTATUS(status));
        if (draining_) {
          log::info("worker finished", log::field("worker", static_cast<long long>(i)) + "," + log::field("how", how));
          break;
        }
        // Its running runs are closed as worker_lost by the next worker that starts.
        if (origin_.lost_worker_pids.size() < kMaxLostWorkers) origin_.lost_worker_pids.push_back(pid);
        // A worker that dies soon after starting is crash-looping: back off up to 5 s.
        uint64_t now = monotonic_ms();
        worker.backoff_ms = now - worker.started_ms < 1000 ? std::min<uint64_t>(5000, worker.backoff_ms * 2 + 100) : 0;
        worker.restart_at_ms = now + worker.backoff_ms;
        if (worker.restart_at_ms == 0) worker.restart_at_ms = 1;
        metrics_->worker_restarts.fetch_add(1);
        log::warn("worker died; restarting", log::field("worker", static_cast<long long>(i)) + "," +
                                                 log::field("how", how) + "," +
                                                 log::field("backoff_ms", static_cast<long long>(worker.backoff_ms)));
        if (worker.backoff_ms == 0) spawn(i);
        break;
      }
    }
  }

  void on_stop_signal(int signum) {
    if (draining_) {
      log::warn("second stop signal: killing workers now");
      kill_all(SIGKILL);
      return;
    }
    draining_ = true;
    kill_at_ms_ = monotonic_ms() + config_.drain_timeout_ms + kKillGraceMs;
    log::info("master draining", log::field("signal", signum == SIGTERM ? "SIGTERM" : "SIGINT") + "," +
                                     log::field("drain_timeout_ms", static_cast<long long>(config_.drain_timeout_ms)));
    close(listen_fd_);  // the workers hold their own copies until they stop accepting
    kill_all(SIGTERM);
  }

  void kill_all(int signum) {
    for (const WorkerProcess& worker : workers_) {
      if (worker.pid > 0) kill(worker.pid, signum);
    }
  }

  size_t alive() {
    reap();
    size_t count = 0;
    for (const WorkerProcess& worker : workers_) count += worker.pid > 0 ? 1 : 0;
    return count;
  }

  const Config& config_;
  int listen_fd_;
  obs::SharedMetrics* metrics_;
  std::vector<WorkerProcess> workers_;
  WorkerOrigin origin_;
  sigset_t original_mask_;
  bool draining_ = false;
  uint64_t kill_at_ms_ = 0;
};

}  // namespace

int run_master(const Config& config) {
  log::set_level(config.log_level);
  signal(SIGPIPE, SIG_IGN);
  Result<int> fd = bind_listener(config.listen);
  if (!fd) {
    log::error("cannot start", log::field("error", fd.error().message));
    return 1;
  }
  obs::SharedMetrics* metrics = obs::SharedMetrics::create(static_cast<uint32_t>(config.workers));
  if (!metrics) {
    log::error("cannot map shared metrics", log::field("error", strerror(errno)));
    return 1;
  }
  if (!config.database_configured) {
    log::info("no database configured: answers are streamed but not stored, and there is no retrieval "
              "(set --database-url or DATABASE_URL)");
  }
  if (!config.sign_in()) {
    log::info("sign-in is off: every request is the one anonymous user "
              "(set --jwt-secret or --jwt-public-key to require bearer tokens)");
  }
  int status = Master(config, *fd, metrics).run();
  if (config.listen.is_unix) unlink(config.listen.host.c_str());
  return status;
}

}  // namespace chatstream
