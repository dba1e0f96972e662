#include "ingest/document.hpp"

#include <gtest/gtest.h>

#include <string>

#include "json/utf8.hpp"

namespace chatstream::ingest {
namespace {

TEST(IngestText, ParagraphsAreSeparatedByBlankLines) {
  Document doc =
      parse_text("Release Notes\n\nThe first paragraph\nis hard-wrapped.\r\n\r\nThe  second one.\n\n\n", "f");
  EXPECT_EQ(doc.title, "Release Notes");
  ASSERT_EQ(doc.chunks.size(), 1u);
  EXPECT_EQ(doc.chunks[0].heading, "");
  EXPECT_EQ(doc.chunks[0].content, "The first paragraph is hard-wrapped.\n\nThe second one.");
}

TEST(IngestText, TitleIsTheFirstLineOrTheFallback) {
  // The first line is part of the first paragraph: it stays in the content.
  Document doc = parse_text("\n\n  Heading line\nthat continues.\n", "f");
  EXPECT_EQ(doc.title, "Heading line");
  ASSERT_EQ(doc.chunks.size(), 1u);
  EXPECT_EQ(doc.chunks[0].content, "Heading line that continues.");
  // A text that is only a title keeps it as content.
  EXPECT_EQ(parse_text("Only line", "f").chunks.size(), 1u);
  Document empty = parse_text(" \n\t\n", "fallback");
  EXPECT_EQ(empty.title, "fallback");
  EXPECT_TRUE(empty.chunks.empty());
  // A very long first line is shortened on a word boundary.
  std::string words;
  for (int i = 0; i < 100; ++i) words += "word ";
  Document long_title = parse_text(words, "f");
  EXPECT_LE(long_title.title.size(), 203u);
  EXPECT_TRUE(long_title.title.ends_with("word\xE2\x80\xA6"));
}

TEST(IngestFile, ChoosesTheParserByExtension) {
  EXPECT_EQ(format_for_path("/docs/a.html"), Format::kHtml);
  EXPECT_EQ(format_for_path("A.HTM"), Format::kHtml);
  EXPECT_EQ(format_for_path("notes.md"), Format::kMarkdown);
  EXPECT_EQ(format_for_path("x.Markdown"), Format::kMarkdown);
  EXPECT_EQ(format_for_path("readme.txt"), Format::kText);
  EXPECT_FALSE(format_for_path("paper.pdf"));
  EXPECT_FALSE(format_for_path("Makefile"));
  EXPECT_FALSE(format_for_path(".md"));
  EXPECT_FALSE(format_for_path("dir.md/file"));

  auto html = parse_file("/docs/page.html", "<h2>H</h2><p>Hello.</p>");
  ASSERT_TRUE(html.ok());
  EXPECT_EQ(html->title, "page");
  ASSERT_EQ(html->chunks.size(), 1u);
  EXPECT_EQ(html->chunks[0].heading, "H");
  auto md = parse_file("guide.v2.md", "## H\n\nHello.");
  ASSERT_TRUE(md.ok());
  EXPECT_EQ(md->title, "guide.v2");
  EXPECT_EQ(md->chunks[0].heading, "H");
  auto txt = parse_file("notes.txt", "Hello.");
  ASSERT_TRUE(txt.ok());
  EXPECT_EQ(txt->title, "Hello.");
}

TEST(IngestFile, RejectsOtherFileTypes) {
  auto result = parse_file("/docs/paper.pdf", "%PDF-1.7");
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("unsupported file type"), std::string::npos);
  EXPECT_NE(result.error().message.find("/docs/paper.pdf"), std::string::npos);
}

TEST(IngestFile, OutputIsValidUtf8WithoutControlCharacters) {
  const char raw[] = "Title\n\nLatin-1 caf\xE9, nul \0, escape \x1B[0m, C1 \xC2\x85 and tab\tkept.";
  for (const char* path : {"a.txt", "a.md", "a.html"}) {
    auto doc = parse_file(path, std::string_view(raw, sizeof(raw) - 1));
    ASSERT_TRUE(doc.ok());
    ASSERT_EQ(doc->chunks.size(), 1u) << path;
    const std::string& content = doc->chunks[0].content;
    EXPECT_TRUE(json::is_valid_utf8(content)) << path;
    for (char c : content)
      EXPECT_TRUE(static_cast<unsigned char>(c) >= 0x20 || c == '\n' || c == '\t') << path;
    EXPECT_NE(content.find("caf\xEF\xBF\xBD"), std::string::npos) << path;
  }
}

}  // namespace
}  // namespace chatstream::ingest
