// The real corpus: the PostgreSQL manual as Debian's postgresql-doc-15 ships it. Skipped when the
// package is not installed.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "ingest/document.hpp"
#include "ingest/sections.hpp"
#include "json/utf8.hpp"

namespace chatstream::ingest {
namespace {

namespace fs = std::filesystem;

constexpr const char* kManual = "/usr/share/doc/postgresql-doc-15/html";

TEST(IngestPgManual, ParsesEveryPageIntoCleanChunks) {
  if (!fs::is_directory(kManual))
    GTEST_SKIP() << kManual << " is missing (apt-get install postgresql-doc-15)";
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& entry : fs::directory_iterator(kManual)) {
    if (!format_for_path(entry.path().string())) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream contents;
    contents << in.rdbuf();
    files.emplace_back(entry.path().filename().string(), contents.str());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GT(files.size(), 1000u);

  auto started = std::chrono::steady_clock::now();
  std::map<std::string, Document> docs;
  for (const auto& [name, contents] : files) {
    auto doc = parse_file(name, contents);
    ASSERT_TRUE(doc.ok()) << name;
    docs.emplace(name, std::move(*doc));
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();

  size_t chunks = 0, notes = 0, without_chunks = 0;
  for (const auto& [name, doc] : docs) {
    SCOPED_TRACE(name);
    EXPECT_FALSE(doc.title.empty());
    without_chunks += doc.chunks.empty() ? 1 : 0;
    for (const Chunk& c : doc.chunks) {
      ++chunks;
      ASSERT_FALSE(c.content.empty());
      // Over the chunk size only to keep a code block whole (with the sentence announcing it).
      if (c.content.find("\n```") == std::string::npos) {
        ASSERT_LE(c.content.size(), kMaxChunkBytes);
      } else {
        ASSERT_LE(c.content.size(), kMaxChunkBytes * detail::kMaxCodeChunkFactor + 16);
      }
      // Every code block opened is closed in the same chunk.
      size_t fences = 0;
      for (size_t at = 0; (at = c.content.find("```", at)) != std::string::npos; at = c.content.find('\n', at)) {
        if (at == 0 || c.content[at - 1] == '\n') ++fences;
        if (at == std::string::npos) break;
      }
      ASSERT_EQ(fences % 2, 0u) << c.content;
      ASSERT_TRUE(json::is_valid_utf8(c.content));
      // Navigation, tables of contents and the book index are gone.
      ASSERT_EQ(c.content.find("Prev Up"), std::string::npos) << c.content;
      ASSERT_FALSE(c.content.starts_with("Table of Contents")) << c.content;
      notes += c.content.starts_with("Note: ") || c.content.find("\n\nNote: ") != std::string::npos ? 1 : 0;
    }
  }
  EXPECT_GT(chunks, 5000u);
  EXPECT_GT(notes, 100u);
  EXPECT_LT(without_chunks, 30u) << "only the chapter pages that are nothing but a table of contents";

  const Document& select = docs.at("sql-select.html");
  EXPECT_EQ(select.title, "SELECT");
  ASSERT_FALSE(select.chunks.empty());
  EXPECT_EQ(select.chunks[0].heading, "SQL Commands \xE2\x80\xBA SELECT");
  EXPECT_TRUE(select.chunks[0].content.starts_with(
      "SELECT, TABLE, WITH \xE2\x80\x94 retrieve rows from a table or view"));
  // A reference page's sections are headed by the page: "SQL Commands › ALTER TABLE › Examples".
  const Document& alter = docs.at("sql-altertable.html");
  EXPECT_TRUE(std::any_of(alter.chunks.begin(), alter.chunks.end(), [](const Chunk& c) {
    return c.heading == "SQL Commands \xE2\x80\xBA ALTER TABLE \xE2\x80\xBA Examples";
  }));
  const Document& types = docs.at("indexes-types.html");
  EXPECT_EQ(types.title, "11.2. Index Types");
  EXPECT_TRUE(std::any_of(types.chunks.begin(), types.chunks.end(), [](const Chunk& c) {
    return c.heading == "Chapter 11. Indexes \xE2\x80\xBA 11.2. Index Types \xE2\x80\xBA 11.2.1. B-Tree" &&
           c.content.starts_with("B-trees can handle equality and range queries") && c.anchor == "INDEXES-TYPES-BTREE";
  }));
  // The example of a partial index: whole, as a code block, after the sentence announcing it.
  const Document& partial = docs.at("indexes-partial.html");
  EXPECT_TRUE(std::any_of(partial.chunks.begin(), partial.chunks.end(), [](const Chunk& c) {
    return c.content.find("such as this:\n\n```\nCREATE INDEX access_log_client_ip_ix ON access_log (client_ip)\n"
                          "WHERE NOT (client_ip > inet '192.168.100.0' AND\n") != std::string::npos;
  }));
  EXPECT_TRUE(docs.at("bookindex.html").chunks.empty()) << "the book index is navigation";

  std::cout << "[ PG manual ] " << files.size() << " files, " << chunks << " chunks, parsed in " << ms
            << " ms\n";
  RecordProperty("files", static_cast<int>(files.size()));
  RecordProperty("chunks", static_cast<int>(chunks));
  RecordProperty("parse_ms", static_cast<int>(ms));
}

}  // namespace
}  // namespace chatstream::ingest
