#pragma once
// The contract of ingest::Document (worker/ingest/document.hpp), checked on whatever a parser made of
// fuzzed input; a broken promise aborts with what broke, so libFuzzer keeps the input.
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "ingest/document.hpp"
#include "ingest/sections.hpp"
#include "json/utf8.hpp"

namespace chatstream::fuzz {

[[noreturn]] inline void document_broken(const char* parser, const char* what) {
  fprintf(stderr, "%s: %s\n", parser, what);
  abort();
}

// Valid UTF-8 without NUL or other C0/C1 control characters; "\n" and "\t" only where allowed.
inline bool clean(std::string_view text, bool allow_line_breaks) {
  if (!json::is_valid_utf8(text)) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n' || c == '\t') {
      if (!allow_line_breaks) return false;
    } else if (c < 0x20) {
      return false;
    } else if (c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) < 0xA0) {
      return false;  // U+0080..U+009F
    }
  }
  return true;
}

inline void check_document(const char* parser, const ingest::Document& document) {
  if (!json::is_valid_utf8(document.title) || document.title.find('\0') != std::string_view::npos) {
    document_broken(parser, "title is not clean UTF-8");
  }
  for (const ingest::Chunk& chunk : document.chunks) {
    if (chunk.content.empty()) document_broken(parser, "empty chunk");
    // Prose chunks stay under kMaxChunkBytes; a code block and the sentence announcing it may take up to
    // kMaxCodeChunkFactor times that (document.hpp).
    if (chunk.content.size() > ingest::kMaxChunkBytes * ingest::detail::kMaxCodeChunkFactor) {
      document_broken(parser, "chunk over kMaxCodeChunkFactor x kMaxChunkBytes");
    }
    if (!clean(chunk.content, true)) document_broken(parser, "chunk content is not clean UTF-8");
    if (!json::is_valid_utf8(chunk.heading) || chunk.heading.find('\0') != std::string_view::npos) {
      document_broken(parser, "chunk heading is not clean UTF-8");
    }
  }
}

}  // namespace chatstream::fuzz
