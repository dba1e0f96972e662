#include "chat/run_publisher.hpp"

#include <charconv>

#include "obs/log.hpp"
#include "obs/metrics.hpp"

namespace chatstream::chat {

struct RunPublisher::Subscription final : sse::LogListener {
  Subscription(RunPublisher& publisher, const Uuid& run_id, sse::EventLog& log, uint64_t next_seq)
      : publisher(publisher), run_id(run_id), log(&log), next_seq(next_seq) {}
  ~Subscription() {
    if (log) log->remove_reader(*this);
  }

  void on_log_appended() override {
    if (!publisher.timer_.scheduled()) publisher.wheel_.schedule(publisher.timer_, publisher.wheel_.now_ms());
  }
  void on_log_ended() override {
    // The run is about to go: take what is left now.
    publisher.collect(*this);
    publisher.send();
    publisher.drop(run_id);
  }
  void on_log_gone() override {
    log = nullptr;
    publisher.drop(run_id);
  }

  RunPublisher& publisher;
  Uuid run_id;
  sse::EventLog* log;
  uint64_t next_seq;
  int followers = 1;
};

RunPublisher::RunPublisher(Store& store, RunRegistry& registry, TimerWheel& wheel)
    : store_(store), registry_(registry), wheel_(wheel), timer_(&RunPublisher::on_timer, this) {}

RunPublisher::~RunPublisher() {
  wheel_.cancel(timer_);
  if (in_flight_) store_.cancel(in_flight_);
}

void RunPublisher::on_follow(std::string_view payload) {
  size_t space = payload.find(' ');
  if (space == std::string_view::npos) return;
  auto run_id = Uuid::parse(payload.substr(0, space));
  if (!run_id) return;
  std::string_view what = payload.substr(space + 1);
  auto found = subscriptions_.find(*run_id);
  if (what == "stop") {
    if (found != subscriptions_.end() && --found->second->followers <= 0) drop(*run_id);
    return;
  }
  uint64_t next_seq = 0;
  auto [end, ec] = std::from_chars(what.data(), what.data() + what.size(), next_seq);
  if (ec != std::errc() || end != what.data() + what.size()) return;
  if (found != subscriptions_.end()) {
    // Another follower, or the same one asking again after a gap: publish from the lower cursor
    // (followers skip what they have).
    ++found->second->followers;
    found->second->next_seq = std::min(found->second->next_seq, next_seq);
  } else {
    Run* run = registry_.find_resumable(*run_id);
    if (!run || !run->event_log()) return;  // another worker's run, or gone: the follower reads PostgreSQL
    sse::EventLog& log = *run->event_log();
    auto subscription = std::make_unique<Subscription>(*this, *run_id, log, next_seq);
    Subscription& added = *subscription;
    subscriptions_.emplace(*run_id, std::move(subscription));
    if (log.ended()) {
      added.on_log_ended();
      return;
    }
    log.add_reader(added);
  }
  if (!timer_.scheduled()) wheel_.schedule(timer_, wheel_.now_ms());
}

void RunPublisher::on_timer(void* opaque) {
  auto* self = static_cast<RunPublisher*>(opaque);
  for (auto& [id, subscription] : self->subscriptions_) self->collect(*subscription);
  self->send();
}

void RunPublisher::collect(Subscription& subscription) {
  if (!subscription.log) return;
  uint64_t end = subscription.log->next_seq();
  if (subscription.next_seq >= end) return;
  std::string events;
  subscription.log->frame(subscription.next_seq, end, events);
  split_into_payloads(subscription.log->run_id(), subscription.next_seq, events, pending_);
  obs::add(obs::Counter::kEventsPublished, end - subscription.next_seq);
  subscription.next_seq = end;
}

void RunPublisher::split_into_payloads(std::string_view run_id, uint64_t seq, std::string_view events,
                                       std::vector<std::string>& out) {
  auto header = [&](uint64_t at, char kind) {
    std::string payload;
    payload.reserve(kMaxPayloadBody + 64);
    payload.append(run_id);
    payload.push_back(' ');
    payload += std::to_string(at);
    payload.push_back(' ');
    payload.push_back(kind);
    payload.push_back('\n');
    return payload;
  };
  std::string chunk;
  uint64_t chunk_seq = seq;
  auto flush_chunk = [&] {
    if (chunk.empty()) return;
    out.push_back(header(chunk_seq, '=') + chunk);
    chunk.clear();
  };
  sse::for_each_framed_event(events, [&](uint64_t event_seq, std::string_view event) {
    if (event.size() > kMaxPayloadBody) {
      flush_chunk();
      while (!event.empty()) {
        size_t cut = std::min(event.size(), kMaxPayloadBody);
        // Never inside a UTF-8 sequence: a payload is text.
        while (cut < event.size() && cut > 0 && (static_cast<unsigned char>(event[cut]) & 0xC0) == 0x80) --cut;
        bool last = cut == event.size();
        out.push_back(header(event_seq, last ? '.' : '+') + std::string(event.substr(0, cut)));
        event.remove_prefix(cut);
      }
      chunk_seq = event_seq + 1;
      return;
    }
    if (chunk.size() + event.size() > kMaxPayloadBody) flush_chunk();
    if (chunk.empty()) chunk_seq = event_seq;
    chunk.append(event);
  });
  flush_chunk();
}

void RunPublisher::drop(const Uuid& run_id) {
  auto found = subscriptions_.find(run_id);
  if (found == subscriptions_.end()) return;
  std::unique_ptr<Subscription> subscription = std::move(found->second);
  subscriptions_.erase(found);
  // Its destructor leaves the log (which may let the run's grace start).
}

void RunPublisher::send() {
  if (in_flight_ || pending_.empty()) return;
  std::vector<std::string> batch;
  batch.swap(pending_);
  in_flight_ = store_.notify(Store::kEventsChannel, batch, [this](Status sent) {
    in_flight_ = 0;
    if (!sent) log::warn("events for followers on other workers not sent", log::field("error", sent.error().message));
    send();
  });
}

}  // namespace chatstream::chat
