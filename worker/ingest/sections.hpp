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
};

// Each section's paragraphs packed into chunks of at most `max_bytes`, in balanced sizes (a 1,300-byte
// section becomes two chunks of about 650, not 1,200 + 100). A chunk ends between paragraphs; a
// paragraph longer than `max_bytes` is cut between lines, a line between sentences (". ") or else
// between words, a word longer than `max_bytes` between UTF-8 characters. Sections without
// paragraphs give no chunk.
std::vector<Chunk> chunk_sections(const std::vector<Section>& sections, size_t max_bytes = kMaxChunkBytes);

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
