#include "rag/snippet.hpp"

#include <algorithm>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "rag/text.hpp"

namespace chatstream::rag {

namespace {

constexpr std::string_view kEllipsis = "\xE2\x80\xA6";  // …, one character

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// A whitespace-separated piece of the content, made valid UTF-8.
struct Token {
  size_t begin;  // in the content
  std::string text;
  size_t chars = 0;
  bool sentence_start = false;
  std::vector<size_t> matches;  // indices into the distinct terms
};

std::vector<Token> tokenize(std::string_view content) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < content.size()) {
    while (i < content.size() && is_space(content[i])) ++i;
    if (i >= content.size()) break;
    Token token{i, {}};
    while (i < content.size() && !is_space(content[i])) {
      size_t length;
      char32_t cp = decode_utf8(content.substr(i), length);
      if (cp == 0xFFFD && length == 1) {
        token.text += "\xEF\xBF\xBD";
      } else {
        token.text.append(content.substr(i, length));
      }
      ++token.chars;
      i += length;
    }
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// The first `chars` characters of valid UTF-8 `text`.
std::string_view utf8_prefix(std::string_view text, size_t chars) {
  size_t i = 0;
  for (size_t n = 0; n < chars && i < text.size(); ++n) {
    size_t length;
    decode_utf8(text.substr(i), length);
    i += length;
  }
  return text.substr(0, i);
}

}  // namespace

std::string make_snippet(const Passage& passage, const std::vector<std::string>& terms, size_t max_chars) {
  std::string_view content = passage.content;
  std::vector<Token> tokens = tokenize(content);
  const size_t count = tokens.size();
  if (count == 0 || max_chars == 0) return {};

  std::unordered_set<size_t> sentence_starts;
  for (std::string_view sentence : split_sentences(content)) {
    sentence_starts.insert(static_cast<size_t>(sentence.data() - content.data()));
  }
  std::unordered_map<std::string, size_t> term_index;
  for (const std::string& term : terms) term_index.emplace(term, term_index.size());
  for (Token& token : tokens) {
    token.sentence_start = sentence_starts.contains(token.begin);
    for (const std::string& stem : rag::terms(token.text)) {
      auto it = term_index.find(stem);
      if (it != term_index.end()) token.matches.push_back(it->second);
    }
  }
  tokens.front().sentence_start = true;

  std::vector<size_t> prefix_chars(count + 1, 0);
  for (size_t t = 0; t < count; ++t) prefix_chars[t + 1] = prefix_chars[t] + tokens[t].chars;
  // Characters of tokens [s, e) joined by spaces, with an ellipsis at each end that is cut.
  auto width = [&](size_t s, size_t e) {
    return prefix_chars[e] - prefix_chars[s] + (e - s - 1) + (s > 0 ? 1 : 0) + (e < count ? 1 : 0);
  };
  std::vector<size_t> next_match(count + 1, count), prev_match(count, count);
  for (size_t t = count; t-- > 0;) next_match[t] = tokens[t].matches.empty() ? next_match[t + 1] : t;
  for (size_t t = 0; t < count; ++t) {
    prev_match[t] = !tokens[t].matches.empty() ? t : t > 0 ? prev_match[t - 1] : count;
  }

  // Every window that is as long as the budget allows, by two pointers; the best holds the most
  // distinct terms, then the most matches, then the tightest cluster of them, then comes first.
  size_t best_distinct = 0, best_matches = 0, best_span = SIZE_MAX;
  size_t core_begin = 0, core_end = 0;
  std::vector<size_t> in_window(term_index.size(), 0);
  size_t distinct = 0, matches = 0;
  size_t e = 0;
  for (size_t s = 0; s < count; ++s) {
    if (e < s) e = s;
    while (e < count && width(s, e + 1) <= max_chars) {
      for (size_t m : tokens[e].matches) distinct += in_window[m]++ == 0 ? 1 : 0;
      matches += tokens[e].matches.size();
      ++e;
    }
    if (matches > 0) {
      size_t first = next_match[s], last = prev_match[e - 1];
      size_t span = last - first;
      if (distinct > best_distinct || (distinct == best_distinct && matches > best_matches) ||
          (distinct == best_distinct && matches == best_matches && span < best_span)) {
        best_distinct = distinct;
        best_matches = matches;
        best_span = span;
        core_begin = first;
        core_end = last + 1;
      }
    }
    if (e > s) {
      for (size_t m : tokens[s].matches) distinct -= --in_window[m] == 0 ? 1 : 0;
      matches -= tokens[s].matches.size();
    }
  }

  size_t s = core_begin, end = core_end;
  if (best_matches == 0) {
    s = 0;
    end = 0;
  } else {
    size_t sentence = s;
    while (sentence > 0 && !tokens[sentence].sentence_start) --sentence;
    if (width(sentence, end) <= max_chars) s = sentence;
  }
  if (end == s) {
    if (width(s, s + 1) > max_chars) {
      // One word longer than the whole budget: cut it between characters.
      size_t ellipses = (s > 0 ? 1 : 0) + 1;
      if (max_chars <= ellipses) return std::string(kEllipsis);
      std::string out = s > 0 ? std::string(kEllipsis) : std::string();
      out += utf8_prefix(tokens[s].text, max_chars - ellipses);
      out += kEllipsis;
      return out;
    }
    end = s + 1;
  }
  // Widen to the right first (reading on), then to the left by whole sentences, and word by word only
  // when the window would otherwise stay under half the budget.
  while (end < count && width(s, end + 1) <= max_chars) ++end;
  while (s > 0) {
    size_t previous = s - 1;
    while (previous > 0 && !tokens[previous].sentence_start) --previous;
    if (width(previous, end) > max_chars) break;
    s = previous;
  }
  if (2 * width(s, end) < max_chars) {
    while (s > 0 && width(s - 1, end) <= max_chars) --s;
  }

  std::string out;
  if (s > 0) out += kEllipsis;
  for (size_t t = s; t < end; ++t) {
    if (t > s) out += ' ';
    out += tokens[t].text;
  }
  if (end < count) out += kEllipsis;
  return out;
}

}  // namespace chatstream::rag
