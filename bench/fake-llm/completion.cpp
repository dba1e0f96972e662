#include "completion.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "json_text.hpp"
#include "server.hpp"

namespace chatstream::fakellm {
namespace {

// Events made per stream per loop turn when many are due at once (rate 0, or after a pause).
constexpr int kMaxEventsPerTurn = 64;
// Broken JSON of the malformed fault: a data line cut inside a string.
// A streamed token made later than this after its deadline counts in Stats::tokens_late.
constexpr uint64_t kLateUs = 20'000;
constexpr std::string_view kMalformedData = R"(data: {"choices":[{"delta":{"content":"fake-llm malformed)";

}  // namespace

void Completion::start(Server& server, Connection& connection, AnswerPlan plan) {
  if (!plan.stream) {
    Completion whole(server, connection, std::move(plan));
    whole.send_whole();
    return;
  }
  auto completion = std::make_unique<Completion>(server, connection, std::move(plan));
  Completion& stream = *completion;
  connection.set_producer(std::move(completion));
  stream.begin();
}

Completion::Completion(Server& server, Connection& connection, AnswerPlan plan)
    : server_(server), connection_(connection), plan_(std::move(plan)), timer_(&Completion::on_timer, this) {
  const Options& options = server_.options();
  style_ = SseStyle{options.crlf, options.comments, options.multi_data};
  split_ = options.split_sse_lines;
  fault_pending_ = plan_.fault != Fault::kNone;

  chunk_prefix_ = R"({"id":)";
  append_string(chunk_prefix_, plan_.id);
  chunk_prefix_ += plan_.stream ? R"(,"object":"chat.completion.chunk","created":)"
                                : R"(,"object":"chat.completion","created":)";
  append_uint(chunk_prefix_, plan_.created);
  chunk_prefix_ += R"(,"model":)";
  append_string(chunk_prefix_, plan_.model);
  chunk_prefix_ += R"(,"choices":[)";
}

Completion::~Completion() {
  leave(false);
}

size_t Completion::item_count() const {
  if (!plan_.tool_name.empty()) return plan_.tool_fragments.size();
  size_t body = plan_.text_words != nullptr ? plan_.text_words->size() : plan_.numbered_tokens;
  return plan_.prefix_words.size() + body;
}

std::string_view Completion::item_text(size_t index, std::string& scratch) const {
  if (!plan_.tool_name.empty()) return plan_.tool_fragments[index];
  if (index < plan_.prefix_words.size()) return plan_.prefix_words[index];
  index -= plan_.prefix_words.size();
  if (plan_.text_words != nullptr) return (*plan_.text_words)[index];
  scratch = "t";
  append_uint(scratch, index);
  scratch += ' ';
  return scratch;
}

void Completion::chunk_json(std::string_view choice, std::string& out) const {
  out = chunk_prefix_;
  out += choice;
  out += ']';
  if (plan_.include_usage) out += R"(,"usage":null)";  // as OpenAI does on every chunk but the last
  out += '}';
}

void Completion::usage_json(std::string& out) const {
  out += R"({"prompt_tokens":)";
  append_uint(out, plan_.prompt_tokens);
  out += R"(,"completion_tokens":)";
  append_uint(out, items_sent_);
  out += R"(,"total_tokens":)";
  append_uint(out, plan_.prompt_tokens + items_sent_);
  out += '}';
}

void Completion::item_json(size_t index, std::string& out) const {
  std::string& choice = server_.scratch_choice();
  std::string token;
  std::string_view text = item_text(index, token);
  if (!plan_.tool_name.empty()) {
    choice = R"({"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":)";
    append_string(choice, text);
    choice += R"(}}]},"finish_reason":null})";
  } else {
    choice = R"({"index":0,"delta":{"content":)";
    append_string(choice, text);
    choice += R"(},"finish_reason":null})";
  }
  chunk_json(choice, out);
}

// ---------------------------------------------------------------------------------------------------
// Streaming

void Completion::begin() {
  open_ = true;
  server_.stats().stream_opened();
  std::string headers = "X-Request-Id: req_" + plan_.id.substr(plan_.id.find('-') + 1) + "\r\n";
  connection_.begin_stream(headers);

  std::string& choice = server_.scratch_choice();
  if (!plan_.tool_name.empty()) {
    // OpenAI announces the role and the call (id, name, empty arguments) in the first chunk.
    choice = R"({"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":)";
    append_string(choice, plan_.call_id);
    choice += R"(,"type":"function","function":{"name":)";
    append_string(choice, plan_.tool_name);
    choice += R"(,"arguments":""}}]},"finish_reason":null})";
  } else {
    choice = R"({"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null})";
  }
  std::string& json = server_.scratch_json();
  chunk_json(choice, json);
  emit(json);

  uint64_t now = TimerHeap::now_us();
  items_start_us_ = now + uint64_t{plan_.first_token_delay_ms} * 1000;
  next_piece_us_ = now + uint64_t{server_.options().split_delay_ms} * 1000;
  pump();
}

void Completion::on_timer(void* self) {
  static_cast<Completion*>(self)->pump();
}

void Completion::on_output_drained() {
  if (!waiting_for_drain_) return;
  waiting_for_drain_ = false;
  pump();
}

void Completion::on_connection_closed() {
  connection_gone_ = true;
  server_.timers().cancel(timer_);
  leave(false);
}

void Completion::pump() {
  if (connection_gone_ || stalled_ || phase_ == Phase::kEnded) return;
  TimerHeap& timers = server_.timers();
  uint64_t now = TimerHeap::now_us();
  uint64_t split_delay_us = uint64_t{server_.options().split_delay_ms} * 1000;
  std::string& json = server_.scratch_json();
  int budget = kMaxEventsPerTurn;

  for (;;) {
    if (connection_.queued() > Connection::kHighWater) {
      waiting_for_drain_ = true;  // the client is not reading: make nothing until it does
      held_back_ = true;
      return;
    }
    if (split_ && split_sent_ < split_bytes_.size()) {
      if (now < next_piece_us_) {
        timers.schedule(timer_, next_piece_us_);
        return;
      }
      write_piece();
      next_piece_us_ = now + split_delay_us;
      continue;
    }
    if (phase_ == Phase::kEnding) {
      phase_ = Phase::kEnded;
      leave(true);
      connection_.end_stream();
      return;
    }
    if (budget-- == 0) {
      timers.schedule(timer_, now);  // more is due: go on next turn, after the other sockets
      return;
    }

    size_t count = item_count();
    if (fault_pending_ && next_item_ == std::min<uint64_t>(plan_.fault_after, count)) {
      fault_pending_ = false;
      switch (plan_.fault) {
        case Fault::kStall:
          stalled_ = true;  // the stream stays open and silent until the client gives up
          return;
        case Fault::kDisconnect:
          phase_ = Phase::kEnded;
          leave(false);
          connection_.close_after_output();
          return;
        case Fault::kMalformed: {
          std::string broken(kMalformedData);
          broken += style_.crlf ? "\r\n\r\n" : "\n\n";
          emit_raw(broken);
          continue;
        }
        case Fault::kHuge: {
          std::string& choice = server_.scratch_choice();
          choice = R"({"index":0,"delta":{"content":")";
          choice.append(kHugeBytes, 'x');
          choice += R"("},"finish_reason":null})";
          chunk_json(choice, json);
          emit(json);
          ++items_sent_;
          ++server_.stats().tokens_sent;
          continue;
        }
        default:
          break;
      }
    }

    if (next_item_ < count) {
      if (plan_.rate > 0 || plan_.first_token_delay_ms > 0) {
        double offset_us =
            plan_.rate > 0 ? std::floor(static_cast<double>(next_item_) * 1e6 / plan_.rate) : 0;
        uint64_t deadline = items_start_us_ + static_cast<uint64_t>(offset_us);
        if (deadline > now) {
          timers.schedule(timer_, deadline);
          return;
        }
        // At rate 0 every token is due at the start: lateness then means nothing.
        if (plan_.rate > 0 && now - deadline > kLateUs && !held_back_ && !split_)
          ++server_.stats().tokens_late;
      }
      item_json(next_item_, json);
      emit(json);
      held_back_ = false;
      ++next_item_;
      ++items_sent_;
      ++server_.stats().tokens_sent;
      continue;
    }

    // Every item is out: finish reason, usage, [DONE].
    std::string& choice = server_.scratch_choice();
    choice = plan_.tool_name.empty() ? R"({"index":0,"delta":{},"finish_reason":"stop"})"
                                     : R"({"index":0,"delta":{},"finish_reason":"tool_calls"})";
    chunk_json(choice, json);
    emit(json);
    if (plan_.include_usage) {
      json = chunk_prefix_;
      json += R"(],"usage":)";
      usage_json(json);
      json += '}';
      emit(json);
    }
    emit("[DONE]");
    phase_ = Phase::kEnding;
  }
}

void Completion::emit(std::string_view json) {
  std::string& event = server_.scratch_event();
  event.clear();
  append_event(event, json, style_, events_++);
  emit_raw(event);
}

void Completion::emit_raw(std::string_view event_bytes) {
  if (!split_) {
    connection_.write_body(event_bytes);
    return;
  }
  if (split_sent_ == split_bytes_.size()) {
    split_bytes_.clear();
    cuts_.clear();
    next_cut_ = 0;
    split_sent_ = 0;
  }
  auto base = static_cast<uint32_t>(split_bytes_.size());
  if (base > 0) cuts_.push_back(base);  // an event never shares a piece with the one before
  std::vector<uint32_t>& offsets = server_.scratch_offsets();
  split_offsets(event_bytes, offsets);
  for (uint32_t offset : offsets) cuts_.push_back(base + offset);
  split_bytes_ += event_bytes;
}

bool Completion::write_piece() {
  if (split_sent_ >= split_bytes_.size()) return false;
  size_t end = next_cut_ < cuts_.size() ? cuts_[next_cut_++] : split_bytes_.size();
  connection_.write_body(std::string_view(split_bytes_).substr(split_sent_, end - split_sent_));
  split_sent_ = end;
  return true;
}

void Completion::leave(bool completed) {
  if (!open_) return;
  open_ = false;
  Stats& stats = server_.stats();
  --stats.open_streams;
  if (completed) ++stats.streams_completed;
}

// ---------------------------------------------------------------------------------------------------
// stream:false

void Completion::send_whole() {
  switch (plan_.fault) {
    case Fault::kStall:
      return;  // no answer at all: the request stays open until the client gives up
    case Fault::kDisconnect:
      connection_.close_after_output();
      return;
    default:
      break;
  }
  std::string body = chunk_prefix_;
  body += R"({"index":0,"message":{"role":"assistant","content":)";
  size_t count = item_count();
  std::string token;
  if (!plan_.tool_name.empty()) {
    body += R"(null,"tool_calls":[{"id":)";
    append_string(body, plan_.call_id);
    body += R"(,"type":"function","function":{"name":)";
    append_string(body, plan_.tool_name);
    body += R"(,"arguments":")";
    for (size_t i = 0; i < count; ++i) append_json_string_body(body, item_text(i, token));
    body += R"("}}]},"finish_reason":"tool_calls"})";
    items_sent_ = count;
  } else {
    body += '"';
    size_t huge_at = plan_.fault == Fault::kHuge ? std::min<size_t>(plan_.fault_after, count) : SIZE_MAX;
    for (size_t i = 0; i <= count; ++i) {
      if (i == huge_at) {
        body.append(kHugeBytes, 'x');
        ++items_sent_;
      }
      if (i == count) break;
      append_json_string_body(body, item_text(i, token));
      ++items_sent_;
    }
    body += R"("},"finish_reason":"stop"})";
  }
  body += R"(],"usage":)";
  usage_json(body);
  body += "}\n";
  if (plan_.fault == Fault::kMalformed) {
    body.resize(std::min(body.size(), chunk_prefix_.size() + 40));  // cut inside the message
  }
  ++server_.stats().answers_completed;
  server_.stats().tokens_sent += items_sent_;
  std::string headers = "X-Request-Id: req_" + plan_.id.substr(plan_.id.find('-') + 1) + "\r\n";
  connection_.respond(200, "application/json", body, headers);
}

}  // namespace chatstream::fakellm
