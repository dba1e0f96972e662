#include "ingest/document.hpp"

#include "ingest/sections.hpp"
#include "rag/text.hpp"

namespace chatstream::ingest {

namespace {

constexpr size_t kMaxTitleBytes = 200;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

// At most `max` bytes of `text`, cut between words (or between characters for one long word).
std::string shorten(std::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  size_t cut = text.rfind(' ', max);
  if (cut == std::string_view::npos || cut == 0) {
    cut = max;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  }
  return std::string(trim(text.substr(0, cut))) + "\xE2\x80\xA6";
}

std::string_view file_name(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::optional<Format> format_for_path(std::string_view path) {
  std::string_view name = file_name(path);
  size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return std::nullopt;
  std::string extension = rag::lowercase_ascii(name.substr(dot + 1));
  if (extension == "html" || extension == "htm") return Format::kHtml;
  if (extension == "md" || extension == "markdown") return Format::kMarkdown;
  if (extension == "txt") return Format::kText;
  return std::nullopt;
}

Document parse_text(std::string_view text, std::string_view fallback_title) {
  std::string clean = detail::clean_text(text);
  std::vector<detail::Section> sections(1);
  std::string paragraph;
  auto flush = [&] {
    if (!paragraph.empty()) sections[0].paragraphs.push_back(std::move(paragraph));
    paragraph.clear();
  };
  size_t begin = 0;
  std::string_view all = clean;
  while (begin <= all.size()) {
    size_t end = all.find('\n', begin);
    if (end == std::string_view::npos) end = all.size();
    std::string line = detail::collapse_whitespace(all.substr(begin, end - begin));
    if (line.empty()) {
      flush();
    } else {
      if (!paragraph.empty()) paragraph += ' ';
      paragraph += line;
    }
    begin = end + 1;
  }
  flush();

  Document doc;
  std::vector<std::string>& paragraphs = sections[0].paragraphs;
  if (paragraphs.empty()) {
    doc.title = detail::collapse_whitespace(fallback_title);
    return doc;
  }
  size_t first_line_end = all.find('\n', all.find_first_not_of(" \t\n"));
  std::string first_line = detail::collapse_whitespace(
      all.substr(0, first_line_end == std::string_view::npos ? all.size() : first_line_end));
  doc.title = shorten(first_line, kMaxTitleBytes);
  // A title line standing alone is not content too (unless it is all there is).
  if (paragraphs.size() > 1 && paragraphs[0] == first_line) paragraphs.erase(paragraphs.begin());
  doc.chunks = detail::chunk_sections(sections);
  return doc;
}

Result<Document> parse_file(std::string_view path, std::string_view contents) {
  std::optional<Format> format = format_for_path(path);
  if (!format) {
    return Error{"unsupported file type (expected .html, .htm, .md, .markdown or .txt): " +
                 std::string(path)};
  }
  std::string_view name = file_name(path);
  std::string fallback(name.substr(0, name.rfind('.')));
  switch (*format) {
    case Format::kHtml:
      return parse_html(contents, fallback);
    case Format::kMarkdown:
      return parse_markdown(contents, fallback);
    case Format::kText:
      return parse_text(contents, fallback);
  }
  return Error{"unreachable"};
}

}  // namespace chatstream::ingest
