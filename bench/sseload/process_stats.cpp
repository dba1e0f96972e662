#include "process_stats.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace chatstream::bench {
namespace {

std::optional<std::string> read_small_file(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "re");
  if (file == nullptr) return std::nullopt;
  std::string text;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
  std::fclose(file);
  return text;
}

}  // namespace

std::optional<double> process_cpu_seconds(int pid) {
  auto stat = read_small_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return std::nullopt;
  // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
  size_t close = stat->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  // After ')': state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8) flags(9) minflt(10)
  // cminflt(11) majflt(12) cmajflt(13) utime(14) stime(15).
  if (std::sscanf(stat->c_str() + close + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                  &stime) != 2) {
    return std::nullopt;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::optional<double> processes_cpu_seconds(const std::vector<int>& pids) {
  double sum = 0;
  for (int pid : pids) {
    auto seconds = process_cpu_seconds(pid);
    if (!seconds) return std::nullopt;
    sum += *seconds;
  }
  return sum;
}

std::optional<uint64_t> process_rss_kib(int pid) {
  auto status = read_small_file("/proc/" + std::to_string(pid) + "/status");
  if (!status) return std::nullopt;
  size_t at = status->find("\nVmRSS:");
  if (at == std::string::npos) return std::nullopt;
  unsigned long long kib = 0;
  if (std::sscanf(status->c_str() + at + 7, " %llu", &kib) != 1) return std::nullopt;
  return kib;
}

std::optional<uint64_t> processes_rss_kib(const std::vector<int>& pids) {
  uint64_t sum = 0;
  for (int pid : pids) {
    auto kib = process_rss_kib(pid);
    if (!kib) return std::nullopt;
    sum += *kib;
  }
  return sum;
}

double own_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

uint64_t own_max_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss);  // Linux reports KiB
}

uint64_t raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return static_cast<uint64_t>(limit.rlim_cur);
}

}  // namespace chatstream::bench
