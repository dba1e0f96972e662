#pragma once
// The owner of this worker's runs. A run is `running` from its start until finish(): then POST
// /chat/cancel finds it here by id and the drain deadline ends it. Once finished it may still wait for
// its answer to be saved (`ending`, not findable); when it has said its last word the registry hands
// it to the deferred-free list. Runs still held when the worker exits are freed with the registry.

#include <cassert>
#include <memory>
#include <unordered_map>
#include <vector>

#include "chat/run.hpp"
#include "core/uuid.hpp"

namespace chatstream::chat {

class RunRegistry {
 public:
  RunRegistry() = default;
  RunRegistry(const RunRegistry&) = delete;
  RunRegistry& operator=(const RunRegistry&) = delete;

  Run& add(std::unique_ptr<Run> run) {
    Run& added = *run;
    auto [it, inserted] = running_.emplace(run->id(), std::move(run));
    assert(inserted);
    (void)it;
    return added;
  }
  // running → ending.
  void finished(const Uuid& id) {
    auto it = running_.find(id);
    assert(it != running_.end());
    ending_.emplace(it->second.get(), std::move(it->second));
    running_.erase(it);
  }
  // Gives up ownership of an ending run (to the deferred-free list).
  std::unique_ptr<Run> release(Run* run) {
    auto it = ending_.find(run);
    assert(it != ending_.end());
    std::unique_ptr<Run> owned = std::move(it->second);
    ending_.erase(it);
    return owned;
  }
  Run* find(const Uuid& id) const {
    auto it = running_.find(id);
    return it == running_.end() ? nullptr : it->second.get();
  }
  // A run still running, or ending (its end being saved): what a resume may follow on this worker.
  Run* find_resumable(const Uuid& id) const {
    if (Run* run = find(id)) return run;
    for (const auto& [run, owned] : ending_) {
      if (run->id() == id) return run;
    }
    return nullptr;
  }
  size_t size() const { return running_.size(); }
  // A copy, so callers may end runs (which moves them out) while iterating.
  std::vector<Run*> snapshot() const {
    std::vector<Run*> runs;
    runs.reserve(running_.size());
    for (const auto& [id, run] : running_) runs.push_back(run.get());
    return runs;
  }

 private:
  std::unordered_map<Uuid, std::unique_ptr<Run>, UuidHash> running_;
  std::unordered_map<Run*, std::unique_ptr<Run>> ending_;
};

}  // namespace chatstream::chat
