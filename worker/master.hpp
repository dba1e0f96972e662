#pragma once
// The master process (php-fpm style): binds the listening socket once, forks --workers worker
// processes that inherit it, restarts a worker that dies (with a backoff when one keeps crashing at
// start), and on SIGTERM/SIGINT drains: every worker gets SIGTERM, running streams get
// --drain-timeout to finish, and workers still alive a few seconds after that are killed.
// A second SIGTERM/SIGINT during the drain kills the workers at once.

#include "config.hpp"

namespace chatstream {

// Runs until the drain has finished; returns the process exit status.
int run_master(const Config& config);

}  // namespace chatstream
