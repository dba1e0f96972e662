#pragma once
// What route handlers need from their worker: the run environment, the registry of this worker's runs,
// the store (null without a database), the provider, the deferred-free list, and the worker's state.
// Handlers live in this folder, one file per resource; the server only accepts and flushes.

#include <cstdint>

#include "chat/run.hpp"
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
};

// Every route of the worker (docs/protocol.md).
void add_routes(http::Router& router, HandlerContext& context);

// One registration function per resource (their own files).
void add_chat_routes(http::Router& router, HandlerContext& context);
void add_cancel_routes(http::Router& router, HandlerContext& context);
void add_session_routes(http::Router& router, HandlerContext& context);
void add_model_routes(http::Router& router, HandlerContext& context);
void add_health_routes(http::Router& router, HandlerContext& context);

}  // namespace chatstream::handler
