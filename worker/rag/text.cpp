#include "rag/text.hpp"

#include <algorithm>
#include <array>
#include <functional>
#include <unordered_map>
#include <unordered_set>

#include <libstemmer.h>

#include "json/utf8.hpp"

namespace chatstream::rag {

namespace {

bool is_ascii_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_ascii_lower(char c) {
  return c >= 'a' && c <= 'z';
}
bool is_ascii_upper(char c) {
  return c >= 'A' && c <= 'Z';
}
bool is_ascii_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Non-ASCII code points that separate words. Not a Unicode database: the blocks where text in a
// manual actually has punctuation and symbols (Latin-1 punctuation, general punctuation, currency,
// arrows and maths, box drawing, CJK and full-width punctuation, emoji). Everything else above
// U+007F counts as a letter, so words in other scripts stay whole.
bool is_separator(char32_t cp) {
  if (cp < 0x80) return !is_ascii_alnum(static_cast<char>(cp));
  if (cp <= 0xBF) return cp != 0xAA && cp != 0xB5 && cp != 0xBA;  // C1 controls, NBSP, ¡…¿ but ª µ º
  if (cp == 0xD7 || cp == 0xF7) return true;                      // × ÷
  if (cp >= 0x2000 && cp <= 0x2BFF) return true;  // punctuation, currency, arrows, maths, shapes
  if (cp >= 0x2E00 && cp <= 0x2E7F) return true;
  if (cp >= 0x3000 && cp <= 0x303F) return true;
  if (cp >= 0xFE30 && cp <= 0xFE4F) return true;
  if (cp >= 0xFF00 && cp <= 0xFF0F) return true;
  if (cp >= 0xFF1A && cp <= 0xFF20) return true;
  if (cp >= 0xFF3B && cp <= 0xFF40) return true;
  if (cp >= 0xFF5B && cp <= 0xFF65) return true;
  if (cp == 0xFEFF || cp == 0xFFFD) return true;
  if (cp >= 0x1F000 && cp <= 0x1FAFF) return true;
  return false;
}

const std::unordered_set<std::string_view>& stopwords() {
  // Snowball's English list (PostgreSQL's english.stop), plus the remains of contractions that
  // splitting on the apostrophe leaves behind ("doesn't" → "doesn", "t").
  // clang-format off
  static const std::unordered_set<std::string_view> set = {
      "i",       "me",       "my",         "myself",  "we",      "our",     "ours",    "ourselves",
      "you",     "your",     "yours",      "yourself", "yourselves", "he",  "him",     "his",
      "himself", "she",      "her",        "hers",    "herself", "it",      "its",     "itself",
      "they",    "them",     "their",      "theirs",  "themselves", "what", "which",   "who",
      "whom",    "this",     "that",       "these",   "those",   "am",      "is",      "are",
      "was",     "were",     "be",         "been",    "being",   "have",    "has",     "had",
      "having",  "do",       "does",       "did",     "doing",   "a",       "an",      "the",
      "and",     "but",      "if",         "or",      "because", "as",      "until",   "while",
      "of",      "at",       "by",         "for",     "with",    "about",   "against", "between",
      "into",    "through",  "during",     "before",  "after",   "above",   "below",   "to",
      "from",    "up",       "down",       "in",      "out",     "on",      "off",     "over",
      "under",   "again",    "further",    "then",    "once",    "here",    "there",   "when",
      "where",   "why",      "how",        "all",     "any",     "both",    "each",    "few",
      "more",    "most",     "other",      "some",    "such",    "no",      "nor",     "not",
      "only",    "own",      "same",       "so",      "than",    "too",     "very",    "s",
      "t",       "can",      "will",       "just",    "don",     "should",  "now",
      // contractions
      "doesn",   "isn",      "aren",       "wasn",    "weren",   "hasn",    "haven",   "hadn",
      "didn",    "won",      "wouldn",     "shouldn", "couldn",  "mustn",   "needn",   "ll",
      "re",      "ve",
  };
  // clang-format on
  return set;
}

const std::unordered_set<std::string_view>& question_fillers() {
  // clang-format off
  static const std::unordered_set<std::string_view> set = {
      "please",  "tell",   "explain", "describe", "know",    "want",   "need",  "would",  "could",
      "might",   "may",    "must",    "shall",    "also",    "something", "anything", "everything",
      "thing",   "things", "one",     "ones",     "way",     "ways",   "hi",    "hello",  "hey",
      "thanks",  "thank",  "us",      "let",      "lets",    "ok",     "okay",  "really", "actually",
      "exactly", "else",   "kind",    "whats",    "hows",    "make",   "makes", "possible", "mean",
      "difference", "differences", "compare", "comparison", "versus", "vs",
  };
  // clang-format on
  return set;
}

// Snowball's English stemmer (Porter2), the algorithm of PostgreSQL's english_stem dictionary, so a
// word is conflated here exactly as to_tsvector('english', …) conflates it for retrieval (the agreement
// is measured by build/stem_agreement: tests/quality/stem_agreement.cpp). A stemmer object is not
// thread-safe and costs an allocation to make: one per thread, made on first use.
constexpr size_t kStemCacheWords = 65536;

class SnowballStemmer {
 public:
  SnowballStemmer() : stemmer_(sb_stemmer_new("english", "UTF_8")) {}
  ~SnowballStemmer() {
    if (stemmer_ != nullptr) sb_stemmer_delete(stemmer_);
  }
  SnowballStemmer(const SnowballStemmer&) = delete;
  SnowballStemmer& operator=(const SnowballStemmer&) = delete;

  std::string stem(std::string_view word) {
    // sb_stemmer_new fails only when out of memory (the algorithm is compiled in): then words stay
    // whole, which costs recall, not correctness.
    if (stemmer_ == nullptr) return std::string(word);
    const sb_symbol* out =
        sb_stemmer_stem(stemmer_, reinterpret_cast<const sb_symbol*>(word.data()), static_cast<int>(word.size()));
    if (out == nullptr) return std::string(word);
    return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(sb_stemmer_length(stemmer_)));
  }

 private:
  sb_stemmer* stemmer_;
};

bool starts_with_bullet(std::string_view line, size_t& marker_length) {
  static constexpr std::array<std::string_view, 6> kMarkers = {
      "- ", "* ", "+ ", "\xE2\x80\xA2 ", "\xC2\xB7 ", "\xE2\x80\x93 "};
  for (std::string_view marker : kMarkers) {
    if (line.starts_with(marker)) {
      marker_length = marker.size();
      return true;
    }
  }
  // "1. " or "12) " numbering.
  size_t digits = 0;
  while (digits < line.size() && digits < 3 && is_ascii_digit(line[digits])) ++digits;
  if (digits > 0 && digits + 1 < line.size() && (line[digits] == '.' || line[digits] == ')') &&
      line[digits + 1] == ' ') {
    marker_length = digits + 2;
    return true;
  }
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool has_alnum(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t length;
    char32_t cp = decode_utf8(s.substr(i), length);
    if (!is_separator(cp)) return true;
    i += length;
  }
  return false;
}

// Length of the closing quote or bracket at s[0], or 0.
size_t closer_length(std::string_view s) {
  if (s.empty()) return 0;
  if (s[0] == '"' || s[0] == '\'' || s[0] == ')' || s[0] == ']') return 1;
  for (std::string_view closer : {"\xE2\x80\x99", "\xE2\x80\x9D", "\xC2\xBB", "\xE2\x80\xBA"}) {
    if (s.starts_with(closer)) return closer.size();
  }
  return 0;
}

// Whether the terminal punctuation ending at line[end_of_mark] (exclusive), whose first mark is at
// `mark`, really ends a sentence, given the text that follows it (after whitespace).
// `open_parens`: parentheses opened and not closed since the sentence began.
bool ends_sentence(std::string_view line, size_t mark, size_t end_of_mark, std::string_view next,
                   int open_parens) {
  if (line[mark] != '.') return true;  // "!" and "?"
  char next_char = next.empty() ? '\0' : next[0];
  // "..." inside parentheses ("(with DROP TYPE ... CASCADE)") or before a lowercase word is an omission.
  if (end_of_mark - mark > 1) return open_parens == 0 && !is_ascii_lower(next_char);
  size_t word_begin = mark;
  while (word_begin > 0 && (is_ascii_alnum(line[word_begin - 1]) || line[word_begin - 1] == '.')) {
    --word_begin;
  }
  std::string word = lowercase_ascii(line.substr(word_begin, mark - word_begin));
  static const std::unordered_set<std::string_view> kNeverEnd = {
      "e.g", "i.e", "cf", "vs",   "viz",  "approx", "dr", "mr", "mrs", "ms",  "prof", "fig",
      "st",  "jr",  "sr", "resp", "incl", "esp",    "al", "ca", "eq",  "vol", "pp"};
  if (kNeverEnd.contains(word)) return false;
  if (word == "etc") return !is_ascii_lower(next_char);
  if (word == "no") return !is_ascii_digit(next_char);
  return true;
}

void split_line(std::string_view line, std::vector<std::string_view>& out) {
  auto push = [&out](std::string_view piece) {
    piece = trim(piece);
    if (!piece.empty() && has_alnum(piece)) out.push_back(piece);
  };
  size_t start = 0;
  size_t i = 0;
  int open_parens = 0;
  while (i < line.size()) {
    char c = line[i];
    if (c == '(') ++open_parens;
    if (c == ')' && open_parens > 0) --open_parens;
    if (line.substr(i).starts_with("\xE2\x80\xA2")) {  // an inline bullet
      push(line.substr(start, i - start));
      i += 3;
      start = i;
      continue;
    }
    if (c != '.' && c != '!' && c != '?') {
      ++i;
      continue;
    }
    size_t end = i + 1;
    while (end < line.size() && (line[end] == '.' || line[end] == '!' || line[end] == '?')) ++end;
    size_t after = end;
    while (size_t n = closer_length(line.substr(after))) after += n;
    if (after < line.size() && !is_space(line[after])) {
      i = end;
      continue;
    }
    size_t next = after;
    while (next < line.size() && is_space(line[next])) ++next;
    if (ends_sentence(line, i, end, line.substr(next), open_parens)) {
      push(line.substr(start, after - start));
      start = after;
      open_parens = 0;
      i = after;
    } else {
      i = end;  // closing brackets after the mark are still counted
    }
  }
  push(line.substr(start));
}

}  // namespace

char32_t decode_utf8(std::string_view text, size_t& length) {
  if (text.empty()) {
    length = 0;
    return 0;
  }
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  if (byte(0) < 0x80) {
    length = 1;
    return byte(0);
  }
  length = json::utf8_sequence_length(text);
  if (length == 0) {
    length = 1;
    return 0xFFFD;
  }
  char32_t cp = byte(0) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07);
  for (size_t i = 1; i < length; ++i) cp = (cp << 6) | (byte(i) & 0x3F);
  return cp;
}

std::vector<Word> split_words(std::string_view text) {
  std::vector<Word> words;
  size_t i = 0;
  size_t begin = std::string_view::npos;
  while (i < text.size()) {
    size_t length = 1;
    bool separator;
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      separator = !is_ascii_alnum(text[i]);
    } else {
      separator = is_separator(decode_utf8(text.substr(i), length));
    }
    if (separator) {
      if (begin != std::string_view::npos) words.push_back({begin, i});
      begin = std::string_view::npos;
    } else if (begin == std::string_view::npos) {
      begin = i;
    }
    i += length;
  }
  if (begin != std::string_view::npos) words.push_back({begin, text.size()});
  return words;
}

std::string lowercase_ascii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (is_ascii_upper(c)) c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool is_stopword(std::string_view lowercase_word) {
  return stopwords().contains(lowercase_word);
}

bool is_question_filler(std::string_view lowercase_word) {
  return question_fillers().contains(lowercase_word);
}

bool is_empty_in_question(std::string_view word) {
  std::string lower = lowercase_ascii(word);
  if (is_stopword(lower)) return true;
  bool capitals = word.size() >= 2 && std::all_of(word.begin(), word.end(), is_ascii_upper);
  return is_question_filler(lower) && !capitals;
}

std::string stem(std::string_view lowercase_word) {
  // PostgreSQL's parser reads a word with digits as a "numword", which the english configuration does
  // not stem.
  if (lowercase_word.size() < 3 || std::any_of(lowercase_word.begin(), lowercase_word.end(), is_ascii_digit)) {
    return std::string(lowercase_word);
  }
  // Passages repeat their words: remembering the stems of the words seen halves the reranker's CPU.
  // Bounded: forgotten all at once when full (a knowledge base's vocabulary is some tens of thousands).
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view word) const { return std::hash<std::string_view>{}(word); }
  };
  thread_local std::unordered_map<std::string, std::string, Hash, std::equal_to<>> known;
  if (auto it = known.find(lowercase_word); it != known.end()) return it->second;
  thread_local SnowballStemmer stemmer;
  std::string stemmed = stemmer.stem(lowercase_word);
  if (known.size() >= kStemCacheWords) known.clear();
  known.emplace(std::string(lowercase_word), stemmed);
  return stemmed;
}

std::vector<Term> extract_terms(std::string_view text) {
  std::vector<Term> out;
  std::vector<Word> words = split_words(text);
  for (size_t position = 0; position < words.size(); ++position) {
    const Word& word = words[position];
    if (word.end - word.begin < 2) continue;
    std::string lower = lowercase_ascii(text.substr(word.begin, word.end - word.begin));
    if (is_stopword(lower)) continue;
    out.push_back({stem(lower), position});
  }
  return out;
}

std::vector<std::string> terms(std::string_view text) {
  std::vector<std::string> out;
  for (Term& term : extract_terms(text)) out.push_back(std::move(term.stem));
  return out;
}

std::vector<std::string> question_terms(std::string_view question) {
  std::vector<std::string> out;
  for (const Word& word : split_words(question)) {
    if (word.end - word.begin < 2) continue;
    std::string_view written = question.substr(word.begin, word.end - word.begin);
    if (is_empty_in_question(written)) continue;
    std::string lower = lowercase_ascii(written);
    std::string s = stem(lower);
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(std::move(s));
  }
  return out;
}

namespace {

// The run of backticks opening a fence on the line at text[begin], or 0.
size_t fence_length(std::string_view line) {
  size_t n = 0;
  while (n < line.size() && line[n] == '`') ++n;
  if (n < 3) return 0;
  // An opening fence may carry an info string ("```sql"), which holds no backtick.
  return line.substr(n).find('`') == std::string_view::npos ? n : 0;
}

}  // namespace

std::vector<Block> split_blocks(std::string_view text) {
  std::vector<Block> out;
  auto prose = [&](size_t begin, size_t end) {
    std::string_view piece = trim(text.substr(begin, end - begin));
    if (!piece.empty()) out.push_back({piece, false});
  };
  size_t prose_begin = 0;
  size_t line_begin = 0;
  while (line_begin < text.size()) {
    size_t line_end = text.find('\n', line_begin);
    if (line_end == std::string_view::npos) line_end = text.size();
    size_t fence = fence_length(text.substr(line_begin, line_end - line_begin));
    if (fence == 0) {
      line_begin = line_end + 1;
      continue;
    }
    // Find the closing fence: a line of only backticks, at least as many.
    size_t close_begin = line_end + 1;
    size_t block_end = std::string_view::npos;
    while (close_begin < text.size()) {
      size_t close_end = text.find('\n', close_begin);
      if (close_end == std::string_view::npos) close_end = text.size();
      std::string_view line = trim(text.substr(close_begin, close_end - close_begin));
      if (line.size() >= fence && line.find_first_not_of('`') == std::string_view::npos) {
        block_end = close_end;
        break;
      }
      close_begin = close_end + 1;
    }
    if (block_end == std::string_view::npos) break;  // unclosed: the rest is prose
    prose(prose_begin, line_begin);
    out.push_back({text.substr(line_begin, block_end - line_begin), true});
    prose_begin = line_begin = std::min(text.size(), block_end + 1);
  }
  prose(prose_begin, text.size());
  return out;
}

std::string_view code_of(std::string_view block) {
  size_t first = block.find('\n');
  if (first == std::string_view::npos || fence_length(block.substr(0, first)) == 0) return block;
  size_t last = block.rfind('\n');
  if (first == std::string_view::npos || last <= first) return {};
  return block.substr(first + 1, last - first - 1);
}

std::vector<std::string_view> split_sentences(std::string_view text) {
  std::vector<std::string_view> out;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = trim(text.substr(begin, end - begin));
    size_t marker;
    if (starts_with_bullet(line, marker)) line = trim(line.substr(marker));
    split_line(line, out);
    begin = end + 1;
  }
  return out;
}

}  // namespace chatstream::rag
