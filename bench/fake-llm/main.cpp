// fake-llm: a fake OpenAI-compatible upstream for chatstream's tests and benchmarks. One libuv loop
// on one thread serves POST /v1/chat/completions (streamed or whole, with injected faults, tool
// calls and wire-format variations), GET /v1/models, GET /stats and POST /reset. See bench/README.md.
#include <sys/resource.h>
#include <uv.h>

#include <csignal>
#include <cstdio>

#include "options.hpp"
#include "server.hpp"

namespace {

// One descriptor per connection: raise the soft limit to the hard one.
void raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace chatstream::fakellm;
  Options options;
  bool exit_now = false;
  if (!parse_options(argc, argv, options, exit_now)) return 2;
  if (exit_now) return 0;

  std::signal(SIGPIPE, SIG_IGN);  // a write to a closed socket must fail with EPIPE, not kill us
  raise_fd_limit();

  uv_loop_t loop;
  uv_loop_init(&loop);
  int status = 0;
  {
    Server server(&loop, options);
    if (server.start() != 0) {
      status = 1;
      uv_stop(&loop);
    } else {
      uv_run(&loop, UV_RUN_DEFAULT);
    }
    // Handles closed by stop() (or a failed start) finish closing here.
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop);
  return status;
}
