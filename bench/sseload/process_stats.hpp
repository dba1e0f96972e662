// What sseload reads about processes: the server's CPU time and RSS from /proc, its own CPU time
// and peak RSS, and its file-descriptor limit.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace chatstream::bench {

// user + system CPU seconds of one process (/proc/PID/stat), nullopt if it cannot be read.
std::optional<double> process_cpu_seconds(int pid);
// Sum over `pids`; nullopt if any cannot be read (a process that died would skew the sum).
std::optional<double> processes_cpu_seconds(const std::vector<int>& pids);

// VmRSS of one process in KiB (/proc/PID/status), nullopt if it cannot be read.
std::optional<uint64_t> process_rss_kib(int pid);
std::optional<uint64_t> processes_rss_kib(const std::vector<int>& pids);

double own_cpu_seconds();
uint64_t own_max_rss_kib();

// Raises the RLIMIT_NOFILE soft limit to the hard limit; returns the soft limit now in force.
uint64_t raise_fd_limit();

}  // namespace chatstream::bench
