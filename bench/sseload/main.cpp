// sseload: opens many concurrent Server-Sent Events streams against chatstream from one libuv loop
// and prints one JSON object of figures on stdout (progress on stderr). See bench/README.md.
#include <cinttypes>
#include <cstdio>

#include "load_runner.hpp"
#include "options.hpp"
#include "process_stats.hpp"
#include "report.hpp"

int main(int argc, char** argv) {
  using namespace chatstream::bench;
  Options options;
  bool exit_now = false;
  if (!parse_options(argc, argv, options, exit_now)) return 2;
  if (exit_now) return 0;

  uint64_t fd_limit = raise_fd_limit();
  // Each stream is one descriptor; the loop itself needs a handful (epoll, signals, stdio).
  constexpr uint64_t kReservedFds = 32;
  if (fd_limit < options.streams + kReservedFds) {
    std::fprintf(stderr, "sseload: warning: %u streams need more descriptors than the limit of %" PRIu64 "\n",
                 options.streams, fd_limit);
  }

  LoadRunner runner(options);
  RunResult result;
  if (!runner.run(result)) return 1;
  std::printf("%s\n", format_report(options, result).c_str());
  return 0;
}
