#pragma once
// Objects that end inside one of their own callbacks (a run finishing from its generation's
// on_complete, say) cannot delete themselves on the spot: callers up the stack still use them. They
// are buried here and deleted at the start of the next loop turn, when no callback is running.

#include <vector>

namespace chatstream {

class Reclaimable {
 public:
  virtual ~Reclaimable() = default;
};

class Graveyard {
 public:
  Graveyard() = default;
  Graveyard(const Graveyard&) = delete;
  Graveyard& operator=(const Graveyard&) = delete;
  ~Graveyard() { reclaim(); }

  void bury(Reclaimable* object) { buried_.push_back(object); }
  void reclaim() {
    while (!buried_.empty()) {
      std::vector<Reclaimable*> batch;
      batch.swap(buried_);
      for (Reclaimable* object : batch) delete object;
    }
  }
  bool empty() const { return buried_.empty(); }

 private:
  std::vector<Reclaimable*> buried_;
};

}  // namespace chatstream
