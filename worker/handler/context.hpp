#pragma once
// What route handlers need from their worker: the run environment, the registry of this worker's runs,
// the store (null without a database), the provider, the deferred-free list, and the worker's state.
// Handlers live in this folder, one file per resource; the server only accepts and flushes.

#include <cstdint>

#include "auth/sign_in.hpp"
#include "chat/conversations.hpp"
#include "chat/run.hpp"
#include "chat/run_followers.hpp"
#include "chat/run_registry.hpp"
#include "chat/store.hpp"
#include "core/graveyard.hpp"
#include "db/pool.hpp"
#include "handler/dispatch.hpp"
#include "http/router.hpp"
#include "llm/provider.hpp"

namespace chatstream::handler {

// The worker as /healthz describes it.
class WorkerState {
 public:
  virtual bool draining() const = 0;
  virtual int64_t connection_count() const = 0;
  virtual int worker_index() const = 0;

 protected:
  ~WorkerState() = default;
};

struct HandlerContext {
  chat::RunEnvironment& runs;
  chat::RunRegistry& registry;
  chat::Store* store;  // null: no database
  db::Pool* pool;      // null: no database
  llm::Provider& provider;
  Graveyard& graveyard;
  const WorkerState& worker;
  const auth::SignIn& sign_in;
  chat::Conversations* conversations;  // null: no database
  size_t max_active_runs_per_user = 0;  // with sign-in on; 0 = no limit
  uint64_t run_timeout_ms = 0;          // --run-timeout: older `running` rows are a dead worker's
  chat::RunFollowers* followers = nullptr;  // resumes of other workers' runs; null without a database
};

// Every route of the worker (docs/protocol.md).
void add_routes(http::Router& router, HandlerContext& context);
// Answers `request` from `router` (handler/dispatch.hpp) after sign-in: 401 without a valid token on a protected path (auth/sign_in.hpp),
// 403 for another user's /api/{user_id}/, then the handler, or 404 / 405 with Allow.
void dispatch(const http::Router& router, const HandlerContext& context, http::Connection& connection,
              http::Request& request);
// Starts a run of `request` once it may run: the session it continues is the user's (else 404) and
// the user is under --max-active-runs-per-user (else 429 too_many_runs). Without a database it
// starts at once (nothing to check against).
void admit_run(HandlerContext& context, http::Connection& connection, chat::ChatRequest request, chat::RunMode mode);

// For http::DeferredResponse::waits_for: cancels statement `ticket` of a chat::Store or
// chat::Conversations (whatever has cancel(ticket)) when the client leaves first.
template <typename Statements>
void cancel_statement(void* statements, uint64_t ticket) {
  static_cast<Statements*>(statements)->cancel(ticket);
}

// One registration function per resource (their own files).
void add_chat_routes(http::Router& router, HandlerContext& context);
void add_cancel_routes(http::Router& router, HandlerContext& context);
void add_session_routes(http::Router& router, HandlerContext& context);
void add_conversation_routes(http::Router& router, HandlerContext& context);
void add_model_routes(http::Router& router, HandlerContext& context);
void add_health_routes(http::Router& router, HandlerContext& context);
void add_resume_routes(http::Router& router, HandlerContext& context);

}  // namespace chatstream::handler
