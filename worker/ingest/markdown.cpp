// parse_markdown: the block structure of CommonMark that matters for chunking (headings, fences,
// paragraphs, lists, quotes), line by line, and a light inline clean-up. Not a renderer: HTML blocks
// are kept as text, reference-style links keep their brackets.

#include <algorithm>
#include <cctype>
#include <vector>

#include "ingest/document.hpp"
#include "ingest/sections.hpp"

namespace chatstream::ingest {

namespace {

using detail::Section;

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (is_space(s.front()) || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (is_space(s.back()) || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

size_t indent_of(std::string_view line) {
  size_t n = 0;
  for (char c : line) {
    if (c == ' ')
      ++n;
    else if (c == '\t')
      n += 4 - n % 4;
    else
      break;
  }
  return n;
}

bool is_blank(std::string_view line) {
  return trim(line).empty();
}

// "## Heading ##" → level 2, "Heading"; 0 when not an ATX heading.
int atx_heading(std::string_view line, std::string& text) {
  if (indent_of(line) > 3) return 0;
  line = trim(line);
  int level = 0;
  while (level < static_cast<int>(line.size()) && line[level] == '#') ++level;
  if (level == 0 || level > 6) return 0;
  if (static_cast<size_t>(level) < line.size() && !is_space(line[level])) return 0;
  std::string_view rest = trim(line.substr(level));
  // A closing run of '#' preceded by a space is not part of the text.
  size_t end = rest.size();
  while (end > 0 && rest[end - 1] == '#') --end;
  if (end == 0 || is_space(rest[end - 1])) rest = trim(rest.substr(0, end));
  text = std::string(rest);
  return level;
}

// A line of only '=' (level 1) or only '-' (level 2) under a paragraph line.
int setext_underline(std::string_view line) {
  if (indent_of(line) > 3) return 0;
  line = trim(line);
  if (line.empty()) return 0;
  if (std::all_of(line.begin(), line.end(), [](char c) { return c == '='; })) return 1;
  if (std::all_of(line.begin(), line.end(), [](char c) { return c == '-'; })) return 2;
  return 0;
}

bool is_thematic_break(std::string_view line) {
  if (indent_of(line) > 3) return false;
  line = trim(line);
  if (line.size() < 3) return false;
  char mark = line[0];
  if (mark != '-' && mark != '*' && mark != '_') return false;
  size_t count = 0;
  for (char c : line) {
    if (c == mark)
      ++count;
    else if (!is_space(c))
      return false;
  }
  return count >= 3;
}

// The fence ("```" or "~~~", possibly longer) opening a code block, or empty.
std::string_view fence_of(std::string_view line) {
  if (indent_of(line) > 3) return {};
  line = trim(line);
  if (line.size() < 3 || (line[0] != '`' && line[0] != '~')) return {};
  size_t n = 0;
  while (n < line.size() && line[n] == line[0]) ++n;
  return n >= 3 ? line.substr(0, n) : std::string_view();
}

// Length of a list marker ("- ", "* ", "+ ", "1. ", "1) ") at the start of the trimmed line, or 0.
size_t list_marker(std::string_view line) {
  if (line.size() >= 2 && (line[0] == '-' || line[0] == '*' || line[0] == '+') && is_space(line[1])) return 2;
  size_t digits = 0;
  while (digits < line.size() && digits < 9 && line[digits] >= '0' && line[digits] <= '9') ++digits;
  if (digits > 0 && digits + 1 < line.size() && (line[digits] == '.' || line[digits] == ')') &&
      is_space(line[digits + 1])) {
    return digits + 2;
  }
  return 0;
}

// Inline clean-up: ![alt](url) → alt, [text](url) → text, <https://…> → the URL, `code` → code,
// **strong**/__strong__/*em*/_em_ → their text, backslash escapes → the character. Inside code spans
// nothing else is touched.
std::string clean_inline(std::string_view s) {
  std::string out;
  size_t i = 0;
  auto flanked = [&](size_t at, size_t width) {
    // An emphasis run opens or closes only next to a non-space character: "a * b" stays.
    bool before_word = at + width < s.size() && !is_space(s[at + width]);
    bool after_word = at > 0 && !is_space(s[at - 1]);
    return before_word || after_word;
  };
  while (i < s.size()) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size() && std::ispunct(static_cast<unsigned char>(s[i + 1]))) {
      out += s[i + 1];
      i += 2;
      continue;
    }
    if (c == '`') {
      size_t n = 0;
      while (i + n < s.size() && s[i + n] == '`') ++n;
      size_t close = s.find(std::string(n, '`'), i + n);
      if (close != std::string_view::npos) {
        out += trim(s.substr(i + n, close - i - n));
        i = close + n;
        continue;
      }
      out.append(n, '`');
      i += n;
      continue;
    }
    if ((c == '!' && i + 1 < s.size() && s[i + 1] == '[') || c == '[') {
      size_t open = c == '!' ? i + 1 : i;
      size_t close = s.find(']', open + 1);
      if (close != std::string_view::npos && close + 1 < s.size() && s[close + 1] == '(') {
        size_t paren = s.find(')', close + 2);
        if (paren != std::string_view::npos) {
          out += clean_inline(s.substr(open + 1, close - open - 1));
          i = paren + 1;
          continue;
        }
      }
    }
    if (c == '<') {
      size_t close = s.find('>', i + 1);
      std::string_view inner =
          close == std::string_view::npos ? std::string_view() : s.substr(i + 1, close - i - 1);
      if (inner.starts_with("http://") || inner.starts_with("https://") || inner.starts_with("mailto:")) {
        out += inner;
        i = close + 1;
        continue;
      }
    }
    if (c == '*' || c == '_') {
      size_t n = 0;
      while (i + n < s.size() && s[i + n] == c) ++n;
      // "_" inside a word is part of it (snake_case); "*" between spaces is a literal star.
      bool intraword_underscore = c == '_' && i > 0 && std::isalnum(static_cast<unsigned char>(s[i - 1])) &&
                                  i + n < s.size() && std::isalnum(static_cast<unsigned char>(s[i + n]));
      if (n <= 3 && !intraword_underscore && flanked(i, n)) {
        i += n;
        continue;
      }
      out.append(n, c);
      i += n;
      continue;
    }
    out += c;
    ++i;
  }
  return out;
}

class MarkdownReader {
 public:
  explicit MarkdownReader(std::string_view text) : text_(text) { sections_.push_back({}); }

  Document run(std::string_view fallback_title) {
    std::vector<std::string_view> lines;
    size_t begin = 0;
    while (begin <= text_.size()) {
      size_t end = text_.find('\n', begin);
      if (end == std::string_view::npos) end = text_.size();
      lines.push_back(text_.substr(begin, end - begin));
      begin = end + 1;
    }
    size_t i = front_matter(lines);
    std::string_view fence;
    for (; i < lines.size(); ++i) {
      std::string_view line = lines[i];
      if (!fence.empty()) {
        std::string_view closing = fence_of(line);
        if (!closing.empty() && closing[0] == fence[0] && closing.size() >= fence.size() &&
            trim(line).size() == closing.size()) {
          fence = {};
          flush();
          continue;
        }
        add_code_line(line);
        continue;
      }
      if (std::string_view f = fence_of(line); !f.empty()) {
        flush();
        fence = f;
        code_ = true;
        continue;
      }
      if (is_blank(line)) {
        flush();
        continue;
      }
      std::string heading;
      if (int level = atx_heading(line, heading)) {
        flush();
        add_heading(level, heading);
        continue;
      }
      // Setext: a paragraph line followed by === or --- (not a list item, not after a blank line).
      if (i + 1 < lines.size() && lines_.empty() && !code_ && indent_of(line) < 4 &&
          list_marker(trim(line)) == 0 && !trim(line).starts_with(">")) {
        if (int level = setext_underline(lines[i + 1])) {
          flush();
          add_heading(level, std::string(trim(line)));
          ++i;
          continue;
        }
      }
      if (is_thematic_break(line)) {
        flush();
        continue;
      }
      if (indent_of(line) >= 4 && (lines_.empty() || code_)) {  // indented code
        code_ = true;
        add_code_line(line.substr(std::min(line.size(), indented_code_cut(line))));
        continue;
      }
      if (code_) flush();
      add_text_line(trim(line));
    }
    flush();
    Document doc;
    doc.title = !title_.empty() ? title_ : detail::collapse_whitespace(fallback_title);
    doc.chunks = detail::chunk_sections(sections_);
    return doc;
  }

 private:
  // Skips a YAML front matter block ("---" … "---" at the very start); takes its title.
  size_t front_matter(const std::vector<std::string_view>& lines) {
    if (lines.empty() || trim(lines[0]) != "---") return 0;
    for (size_t i = 1; i < lines.size() && i < 200; ++i) {
      std::string_view line = trim(lines[i]);
      if (line == "---" || line == "...") return i + 1;
      if (line.starts_with("title:")) {
        std::string_view value = trim(line.substr(6));
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
            value.back() == value.front()) {
          value = value.substr(1, value.size() - 2);
        }
        title_ = std::string(value);
      }
    }
    title_.clear();  // no closing line: not front matter
    return 0;
  }

  static size_t indented_code_cut(std::string_view line) {
    size_t width = 0, i = 0;
    while (i < line.size() && width < 4) {
      width += line[i] == '\t' ? 4 - width % 4 : 1;
      ++i;
    }
    return i;
  }

  void add_heading(int level, const std::string& raw) {
    std::string heading = detail::collapse_whitespace(clean_inline(raw));
    if (heading.empty()) return;
    if (level == 1 && title_.empty()) title_ = heading;
    if (level <= 3) {
      // The section's heading is its path: "Guide › Installing › On Debian".
      while (!path_.empty() && path_.back().first >= level) path_.pop_back();
      path_.emplace_back(level, heading);
      std::string full;
      for (const auto& [_, part] : path_) {
        if (!full.empty()) full += " \xE2\x80\xBA ";  // " › "
        full += part;
      }
      sections_.push_back({std::move(full), {}});
    } else {
      sections_.back().paragraphs.push_back(heading);
    }
  }

  void add_code_line(std::string_view line) {
    code_ = true;
    while (!line.empty() && (is_space(line.back()) || line.back() == '\r')) line.remove_suffix(1);
    lines_.emplace_back(line);
  }

  // Lines of a paragraph are joined with spaces; list items and quote lines stay lines of their own.
  void add_text_line(std::string_view line) {
    bool quote = false;
    while (line.starts_with(">")) {
      line = trim(line.substr(1));
      quote = true;
    }
    if (line.empty()) {
      if (quote) flush();
      return;
    }
    size_t marker = list_marker(line);
    std::string cleaned = clean_inline(line);
    if (marker > 0 || quote || lines_.empty()) {
      lines_.push_back(detail::collapse_whitespace(cleaned));
    } else {
      lines_.back() += ' ';
      lines_.back() += detail::collapse_whitespace(cleaned);
    }
  }

  void flush() {
    if (!lines_.empty()) {
      std::string paragraph;
      for (const std::string& line : lines_) {
        if (!paragraph.empty()) paragraph += '\n';
        paragraph += line;
      }
      paragraph = code_ ? detail::fence_code(paragraph) : std::string(trim(paragraph));
      if (!paragraph.empty()) sections_.back().paragraphs.push_back(std::move(paragraph));
    }
    lines_.clear();
    code_ = false;
  }

  std::string_view text_;
  std::vector<Section> sections_;
  std::string title_;
  std::vector<std::string> lines_;  // of the paragraph or code block being read
  bool code_ = false;
  std::vector<std::pair<int, std::string>> path_;  // (level, text) of the headings above
};

}  // namespace

Document parse_markdown(std::string_view markdown, std::string_view fallback_title) {
  std::string clean = detail::clean_text(markdown);
  return MarkdownReader(clean).run(fallback_title);
}

}  // namespace chatstream::ingest
