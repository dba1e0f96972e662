#include "rag/search_query.hpp"

#include <algorithm>

#include "rag/query.hpp"
#include "rag/text.hpp"

namespace chatstream::rag {

namespace {

constexpr size_t kMaxMessagesBack = 3;

void add_words(std::string_view text, std::vector<std::string>& words, std::vector<std::string>& stems) {
  for (const Word& w : split_words(text)) {
    if (words.size() >= kMaxSearchWords) return;
    size_t length = w.end - w.begin;
    if (length < 2 || length > kMaxSearchWordBytes) continue;
    if (is_empty_in_question(text.substr(w.begin, length))) continue;
    std::string lower = lowercase_ascii(text.substr(w.begin, length));
    std::string s = stem(lower);
    if (std::find(stems.begin(), stems.end(), s) != stems.end()) continue;
    stems.push_back(std::move(s));
    words.push_back(std::move(lower));
  }
}

}  // namespace

std::string search_query(std::string_view question, const std::vector<std::string>& earlier_user_messages) {
  std::vector<std::string> words;
  std::vector<std::string> stems;
  add_words(question, words, stems);
  bool follow_up = is_follow_up(question);
  for (size_t back = 0; follow_up && back < kMaxMessagesBack && back < earlier_user_messages.size(); ++back) {
    const std::string& message = earlier_user_messages[earlier_user_messages.size() - 1 - back];
    add_words(message, words, stems);
    follow_up = is_follow_up(message);
  }
  std::string out;
  for (const std::string& word : words) {
    if (!out.empty()) out += " or ";
    out += word;
  }
  return out;
}

}  // namespace chatstream::rag
