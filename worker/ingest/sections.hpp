#pragma once
// Internal to ingest/: what every parser produces (sections of paragraphs) and how that becomes
// chunks, plus the text clean-up they share.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/document.hpp"

namespace chatstream::ingest::detail {

struct Section {
  std::string heading;
  // Non-empty, trimmed; lines inside one separated by "\n".
  std::vector<std::string> paragraphs;
  std::string anchor;  // Chunk::anchor
};

// Each section's paragraphs packed into chunks of at most `max_bytes`, in balanced sizes (a 1,300-byte
// section becomes two chunks of about 650, not 1,200 + 100). A chunk ends between paragraphs; a
// paragraph longer than `max_bytes` is cut between lines, a line between sentences (". ") or else
// between words, a word longer than `max_bytes` between UTF-8 characters. A code block (is_fenced()) is
// never cut up to kMaxCodeChunkFactor × `max_bytes`, and stays in the chunk of the paragraph that
// announces it (one ending in ":" or "for example."); a longer one is cut between statements (after a
// line ending in ";" or before a blank line), each piece fenced again. Sections without paragraphs give
// no chunk.
std::vector<Chunk> chunk_sections(const std::vector<Section>& sections, size_t max_bytes = kMaxChunkBytes);

// A code block (a program listing, a synopsis, a Markdown code fence) as a paragraph: its lines between
// fences, "```\n" + code + "\n```", the fence longer than any run of backticks inside (as CommonMark).
// `code` is trimmed of blank lines at both ends and of trailing spaces; empty code gives "".
std::string fence_code(std::string_view code);

// Whether `paragraph` is a code block made by fence_code().
bool is_fenced(std::string_view paragraph);

// Code blocks up to this many times the chunk size stay whole (a chunk then holds only them, and the
// sentence announcing them when it fits); longer ones are cut between statements.
inline constexpr size_t kMaxCodeChunkFactor = 3;

// Valid UTF-8 (ill-formed bytes → U+FFFD), without NUL and other C0/C1 control characters except
// "\n" and "\t"; "\r\n" and "\r" become "\n"; no-break and fixed-width spaces become " ".
std::string clean_text(std::string_view text);

void append_utf8(std::string& out, char32_t cp);

// Runs of whitespace → one space, trimmed.
std::string collapse_whitespace(std::string_view text);

// Each line without trailing spaces, without blank lines at both ends, and at most one blank line in a
// row.
std::string trim_lines(std::string_view text);

}  // namespace chatstream::ingest::detail
