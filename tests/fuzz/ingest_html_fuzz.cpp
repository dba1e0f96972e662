// Fuzz target: ingest::parse_html (worker/ingest/) on arbitrary bytes; every document it returns must
// keep the contract of document.hpp (clean UTF-8, chunks non-empty and at most kMaxChunkBytes).
#include <cstdint>
#include <string_view>

#include "document_invariants.hpp"
#include "ingest/document.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  chatstream::fuzz::check_document("parse_html", chatstream::ingest::parse_html(text, "fallback"));
  return 0;
}
