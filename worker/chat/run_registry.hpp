#pragma once
// The runs in progress on this worker, by run id: POST /chat/cancel finds its run here, and the drain
// deadline ends every run still listed.

#include <unordered_map>
#include <vector>

#include "core/uuid.hpp"

namespace chatstream::chat {

class Run;

class RunRegistry {
 public:
  void add(const Uuid& id, Run* run) { runs_[id] = run; }
  void remove(const Uuid& id) { runs_.erase(id); }
  Run* find(const Uuid& id) const {
    auto it = runs_.find(id);
    return it == runs_.end() ? nullptr : it->second;
  }
  size_t size() const { return runs_.size(); }
  // A copy, so callers may end runs (which removes them) while iterating.
  std::vector<Run*> snapshot() const {
    std::vector<Run*> runs;
    runs.reserve(runs_.size());
    for (const auto& [id, run] : runs_) runs.push_back(run);
    return runs;
  }

 private:
  std::unordered_map<Uuid, Run*, UuidHash> runs_;
};

}  // namespace chatstream::chat
