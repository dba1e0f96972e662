#include "ingest/sections.hpp"

#include <algorithm>
#include <memory>

#include "json/utf8.hpp"

namespace chatstream::ingest::detail {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// A piece of a section, with what joins it to the piece before when both land in one chunk.
// Code pieces cut from a long code block own their text (fenced again); other units view the section.
struct Unit {
  std::string_view text;
  std::string_view joiner;
  bool code = false;
  std::shared_ptr<std::string> owned;
};

bool ends_with_nocase(std::string_view s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i) {
    char c = s[s.size() - suffix.size() + i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != suffix[i]) return false;
  }
  return true;
}

// A paragraph whose last words announce the example that follows it.
bool announces(std::string_view text) {
  text = trim(text);
  return text.ends_with(':') || ends_with_nocase(text, "for example.") || ends_with_nocase(text, "as follows.") ||
         ends_with_nocase(text, "such as this.") || ends_with_nocase(text, "like this.") ||
         ends_with_nocase(text, "for instance.");
}

// The lines of the code inside a fenced block (without its fences).
std::string_view fenced_body(std::string_view paragraph) {
  size_t first = paragraph.find('\n');
  size_t last = paragraph.rfind('\n');
  if (first == std::string_view::npos || last <= first) return {};
  return paragraph.substr(first + 1, last - first - 1);
}

size_t cut_point(std::string_view text, size_t max);

// A code block longer than the code limit, cut between statements into pieces of at most `max` bytes
// (a single longer statement is cut between lines, a longer line where prose would be cut), each
// fenced again.
void split_code(std::string_view paragraph, size_t max, std::vector<Unit>& out) {
  std::string_view body = fenced_body(paragraph);
  std::string piece;
  std::string_view joiner = "\n\n";
  size_t statement_end = 0;  // in `piece`: where the last complete statement ends
  auto emit = [&](size_t length) {
    auto owned = std::make_shared<std::string>(fence_code(std::string_view(piece).substr(0, length)));
    if (!owned->empty()) out.push_back({*owned, joiner, true, owned});
    joiner = "\n\n";
    piece.erase(0, length);
    while (!piece.empty() && piece.front() == '\n') piece.erase(0, 1);
    statement_end = 0;
  };
  size_t begin = 0;
  while (begin <= body.size()) {
    size_t end = body.find('\n', begin);
    if (end == std::string_view::npos) end = body.size();
    std::string_view line = body.substr(begin, end - begin);
    if (!piece.empty() && piece.size() + 1 + line.size() > max) emit(statement_end > 0 ? statement_end : piece.size());
    // One line longer than a chunk (a generated listing, a data dump): cut where prose would be cut.
    while (line.size() > max) {
      if (!piece.empty()) emit(piece.size());
      size_t cut = cut_point(line, max);
      piece.assign(line.substr(0, cut));
      emit(piece.size());
      line.remove_prefix(cut);
    }
    if (line.empty() && !piece.empty()) statement_end = piece.size();
    if (!piece.empty()) piece += '\n';
    piece += line;
    if (!line.empty() && trim(line).ends_with(';')) statement_end = piece.size();
    begin = end + 1;
  }
  if (!trim(piece).empty()) emit(piece.size());
}

// Where to cut `text` (longer than `max`) so that text[0, cut) is at most `max` bytes: after a
// sentence end in the second half, else at the last space, else at a character boundary.
size_t cut_point(std::string_view text, size_t max) {
  for (size_t i = max; i > max / 2; --i) {
    if (text[i] == ' ' && (text[i - 1] == '.' || text[i - 1] == '!' || text[i - 1] == '?')) return i;
  }
  for (size_t i = max; i > 0; --i) {
    if (text[i] == ' ') return i;
  }
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return cut > 0 ? cut : max;
}

void split_line(std::string_view line, std::string_view joiner, size_t max, std::vector<Unit>& out) {
  while (line.size() > max) {
    size_t cut = cut_point(line, max);
    bool at_space = line[cut] == ' ';
    out.push_back({trim(line.substr(0, cut)), joiner});
    line = line.substr(cut);
    // A cut inside a word (no space to cut at) must not add a space when the pieces are read together.
    joiner = at_space ? " " : "";
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  }
  if (!line.empty()) out.push_back({line, joiner});
}

void split_paragraph(std::string_view paragraph, size_t max, std::vector<Unit>& out) {
  if (is_fenced(paragraph)) {
    if (paragraph.size() <= max * kMaxCodeChunkFactor) {
      out.push_back({paragraph, "\n\n", true, nullptr});
    } else {
      split_code(paragraph, max, out);
    }
    return;
  }
  if (paragraph.size() <= max) {
    out.push_back({paragraph, "\n\n"});
    return;
  }
  std::string_view joiner = "\n\n";
  size_t begin = 0;
  while (begin <= paragraph.size()) {
    size_t end = paragraph.find('\n', begin);
    if (end == std::string_view::npos) end = paragraph.size();
    std::string_view line = paragraph.substr(begin, end - begin);
    // Blank lines inside preformatted text stay: they are part of its layout.
    split_line(line.empty() ? std::string_view() : line, joiner, max, out);
    if (line.empty()) out.push_back({"", joiner});
    joiner = "\n";
    begin = end + 1;
  }
}

}  // namespace

std::vector<Chunk> chunk_sections(const std::vector<Section>& sections, size_t max_bytes) {
  std::vector<Chunk> chunks;
  max_bytes = std::max<size_t>(max_bytes, 16);
  for (const Section& section : sections) {
    std::vector<Unit> units;
    for (const std::string& paragraph : section.paragraphs) split_paragraph(paragraph, max_bytes, units);
    if (units.empty()) continue;
    size_t total = 0;
    for (const Unit& u : units) total += u.text.size() + u.joiner.size();
    size_t pieces = (total + max_bytes - 1) / max_bytes;
    size_t target = total / std::max<size_t>(1, pieces);
    std::string content;
    bool last_announces = false;
    auto flush = [&] {
      std::string_view kept = trim(content);
      if (!kept.empty()) chunks.push_back({section.heading, std::string(kept), section.anchor});
      content.clear();
    };
    for (const Unit& u : units) {
      // End the chunk when the unit would overflow it, or when the chunk is nearer the target size
      // without the unit than with it.
      // A code block stays with the paragraph announcing it ("…, use a command such as this:") while
      // both fit in the code limit: one without the other answers nothing.
      size_t with = content.size() + u.joiner.size() + u.text.size();
      bool keep_together = u.code && last_announces && with <= max_bytes * kMaxCodeChunkFactor;
      if (!content.empty() && !keep_together &&
          (with > max_bytes ||
           (with > target && with - target > target - std::min(target, content.size())))) {
        flush();
      }
      if (!content.empty()) content += u.joiner;
      content += u.text;
      last_announces = !u.code && announces(u.text);
    }
    flush();
  }
  return chunks;
}

std::string fence_code(std::string_view code) {
  std::string body = trim_lines(code);
  if (body.empty()) return {};
  size_t longest = 0, run = 0;
  for (char c : body) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  std::string fence(std::max<size_t>(3, longest + 1), '`');
  return fence + "\n" + body + "\n" + fence;
}

bool is_fenced(std::string_view paragraph) {
  if (!paragraph.starts_with("```")) return false;
  size_t fence = paragraph.find_first_not_of('`');
  if (fence == std::string_view::npos || paragraph[fence] != '\n') return false;
  std::string_view closing = paragraph.substr(0, fence);
  return paragraph.size() > 2 * fence + 1 && paragraph.ends_with(closing) &&
         paragraph[paragraph.size() - fence - 1] == '\n';
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string clean_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '\r') {
        out += '\n';
        i += (i + 1 < text.size() && text[i + 1] == '\n') ? 2 : 1;
        continue;
      }
      if (c >= 0x20 || c == '\n' || c == '\t') out += static_cast<char>(c);
      if (c == 0x0C || c == 0x0B) out += ' ';  // form feed, vertical tab: whitespace
      ++i;
      continue;
    }
    size_t length = json::utf8_sequence_length(text.substr(i));
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    std::string_view sequence = text.substr(i, length);
    i += length;
    // C1 controls (U+0080–U+009F) are \xC2\x80–\xC2\x9F: dropped.
    if (length == 2 && c == 0xC2 && static_cast<unsigned char>(sequence[1]) < 0xA0) continue;
    // No-break and other fixed-width spaces (U+00A0, U+2000–U+200A, U+202F, U+205F, U+3000) become
    // spaces: the manual writes "11.2.&nbsp;Index Types", and titles, search and answers want a space.
    if (sequence == "\xC2\xA0" || sequence == "\xE2\x80\xAF" || sequence == "\xE2\x81\x9F" ||
        sequence == "\xE3\x80\x80" ||
        (length == 3 && c == 0xE2 && static_cast<unsigned char>(sequence[1]) == 0x80 &&
         static_cast<unsigned char>(sequence[2]) <= 0x8A)) {
      out += ' ';
      continue;
    }
    out.append(sequence);
  }
  return out;
}

std::string collapse_whitespace(std::string_view text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (is_space(c)) {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string trim_lines(std::string_view text) {
  std::string out;
  size_t blank_run = 0;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(begin, end - begin);
    while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
    if (line.empty()) {
      ++blank_run;
    } else {
      if (!out.empty()) out += blank_run > 0 ? "\n\n" : "\n";
      out += line;
      blank_run = 0;
    }
    begin = end + 1;
  }
  return out;
}

}  // namespace chatstream::ingest::detail
