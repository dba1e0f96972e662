#include "sse/event_log.hpp"

#include <algorithm>
#include <cassert>
#include <charconv>

#include "sse/framing.hpp"

namespace chatstream::sse {

EventLog::EventLog(std::string_view run_id, uint64_t base_seq) : run_id_(run_id), base_seq_(base_seq) {}

EventLog::~EventLog() {
  while (ListNode* node = readers_.pop_front()) {
    --readers_count_;
    static_cast<OwnedNode<LogListener>*>(node)->owner->on_log_gone();
  }
}

void EventLog::begin_record(Kind kind) {
  assert(!ended_);
  starts_.push_back(static_cast<uint32_t>(data_.size()));
  data_.push_back(kind);
}

template <typename Fn>
void EventLog::each_reader(Fn fn) {
  // A reader may leave the log from its callback: take the list first.
  IntrusiveList batch;
  batch.splice_back(readers_);
  while (ListNode* node = batch.pop_front()) {
    LogListener* reader = static_cast<OwnedNode<LogListener>*>(node)->owner;
    readers_.push_back(*node);
    fn(*reader);
  }
}

void EventLog::append(std::string_view type, std::string_view fields_json) {
  begin_record(kEvent);
  data_.push_back(static_cast<char>(type.size()));
  data_.append(type);
  data_.append(fields_json);
  each_reader([](LogListener& reader) { reader.on_log_appended(); });
}

void EventLog::append_token(std::string_view text) {
  begin_record(kToken);
  data_.append(text);
  each_reader([](LogListener& reader) { reader.on_log_appended(); });
}

void EventLog::append_framed(std::string_view bytes) {
  begin_record(kFramed);
  data_.append(bytes);
  each_reader([](LogListener& reader) { reader.on_log_appended(); });
}

void EventLog::append_stored(const StoredEvent& event) {
  switch (event.kind) {
    case kEvent: {
      size_t space = event.payload.find(' ');
      std::string_view type = event.payload.substr(0, space);
      append(type, space == std::string_view::npos ? std::string_view() : event.payload.substr(space + 1));
      return;
    }
    case kToken:
      append_token(event.payload);
      return;
    default:
      append_framed(event.payload);
      return;
  }
}

void EventLog::end() {
  if (ended_) return;
  ended_ = true;
  each_reader([](LogListener& reader) { reader.on_log_ended(); });
}

template <typename Fn>
void EventLog::each_record(uint64_t from, uint64_t to, Fn fn) const {
  from = std::max(from, base_seq_);
  to = std::min(to, next_seq());
  for (uint64_t seq = from; seq < to; ++seq) {
    size_t i = seq - base_seq_;
    size_t begin = starts_[i];
    size_t end = i + 1 < starts_.size() ? starts_[i + 1] : data_.size();
    fn(seq, static_cast<Kind>(data_[begin]), std::string_view(data_.data() + begin + 1, end - begin - 1));
  }
}

void EventLog::frame(uint64_t from, uint64_t to, std::string& out) const {
  each_record(from, to, [&](uint64_t seq, Kind kind, std::string_view record) {
    switch (kind) {
      case kEvent: {
        size_t type_size = static_cast<unsigned char>(record[0]);
        append_event(out, run_id_, seq, record.substr(1, type_size), record.substr(1 + type_size));
        break;
      }
      case kToken:
        append_token_event(out, run_id_, seq, record);
        break;
      case kFramed:
        out.append(record);
        break;
    }
  });
}

void EventLog::store(uint64_t from, uint64_t to, std::string& out) const {
  each_record(from, to, [&](uint64_t, Kind kind, std::string_view record) {
    if (kind == kEvent) {
      // In memory: a byte with the type's size, the type, the fields.
      size_t type_size = static_cast<unsigned char>(record[0]);
      store_event(out, record.substr(1, type_size), record.substr(1 + type_size));
    } else {
      out.push_back(kind);
      out += std::to_string(record.size());
      out.push_back(':');
      out.append(record);
    }
  });
}

void store_event(std::string& out, std::string_view type, std::string_view fields_json) {
  out.push_back('e');
  out += std::to_string(type.size() + 1 + fields_json.size());
  out.push_back(':');
  out.append(type);
  out.push_back(' ');
  out.append(fields_json);
}

bool take_stored_event(std::string_view& text, StoredEvent& event) {
  if (text.size() < 3) return false;
  char kind = text[0];
  if (kind != 'e' && kind != 't' && kind != 'f') return false;
  size_t size = 0;
  auto [ptr, ec] = std::from_chars(text.data() + 1, text.data() + text.size(), size);
  if (ec != std::errc() || ptr == text.data() + text.size() || *ptr != ':') return false;
  size_t at = static_cast<size_t>(ptr - text.data()) + 1;
  if (size > text.size() - at) return false;
  event.kind = kind;
  event.payload = text.substr(at, size);
  text.remove_prefix(at + size);
  return true;
}

std::string_view StoredEvent::type() const {
  if (kind == 't') return "token";
  if (kind == 'e') return payload.substr(0, payload.find(' '));
  return framed_event_type(payload);
}

bool StoredEvent::terminal() const { return is_terminal_type(type()); }

void EventLog::add_reader(LogListener& reader) {
  readers_.push_back(reader.log_node);
  ++readers_count_;
  if (watcher_) watcher_->on_log_readers_changed(readers_count_);
}

void EventLog::remove_reader(LogListener& reader) {
  if (!reader.log_node.linked()) return;
  reader.log_node.unlink();
  --readers_count_;
  if (watcher_) watcher_->on_log_readers_changed(readers_count_);
}

int64_t framed_event_seq(std::string_view event) {
  if (event.substr(0, 4) != "id: ") return -1;
  size_t line_end = event.find('\n');
  if (line_end == std::string_view::npos) return -1;
  std::string_view id = event.substr(4, line_end - 4);
  size_t colon = id.rfind(':');
  if (colon == std::string_view::npos) return -1;
  uint64_t seq = 0;
  auto [ptr, ec] = std::from_chars(id.data() + colon + 1, id.data() + id.size(), seq);
  if (ec != std::errc() || ptr != id.data() + id.size()) return -1;
  return static_cast<int64_t>(seq);
}

std::string_view framed_event_type(std::string_view event) {
  size_t at = event.find("\nevent: ");
  if (at == std::string_view::npos) return {};
  at += 8;
  size_t end = event.find('\n', at);
  if (end == std::string_view::npos) return {};
  return event.substr(at, end - at);
}

bool is_terminal_type(std::string_view type) { return type == "done" || type == "error" || type == "cancelled"; }

}  // namespace chatstream::sse
