#include <gtest/gtest.h>

#include <string>

#include "ingest/document.hpp"

namespace chatstream::ingest {
namespace {

TEST(Markdown, AtxAndSetextHeadingsStartSections) {
  Document doc = parse_markdown(
      "Intro line.\n\n# Title #\n\nFirst.\n\n## Second ##\nSecond text.\n\nSetext one\n==========\n\nUnder "
      "one.\n\n"
      "Setext two\n----------\nUnder two.\n\n#### Deep heading\n\nDeep text.\n\n#not a heading\n",
      "f");
  EXPECT_EQ(doc.title, "Title");
  ASSERT_EQ(doc.chunks.size(), 5u);
  EXPECT_EQ(doc.chunks[0].heading, "");
  EXPECT_EQ(doc.chunks[0].content, "Intro line.");
  EXPECT_EQ(doc.chunks[1].heading, "Title");
  EXPECT_EQ(doc.chunks[1].content, "First.");
  // Headings are paths: the levels above, then their own.
  EXPECT_EQ(doc.chunks[2].heading, "Title \xE2\x80\xBA Second");
  EXPECT_EQ(doc.chunks[2].content, "Second text.");
  EXPECT_EQ(doc.chunks[3].heading, "Setext one");
  EXPECT_EQ(doc.chunks[3].content, "Under one.");
  EXPECT_EQ(doc.chunks[4].heading, "Setext one \xE2\x80\xBA Setext two");
  EXPECT_EQ(doc.chunks[4].content, "Under two.\n\nDeep heading\n\nDeep text.\n\n#not a heading");
}

TEST(Markdown, CodeIsKeptAsFencedCodeBlocks) {
  Document doc = parse_markdown(
      "## Setup\n\nRun this:\n\n```sh\n# not a heading\nmake   run\n\n  indented line\n```\n\n~~~\n**kept** "
      "as is\n~~~\n"
      "After.\n",
      "f");
  ASSERT_EQ(doc.chunks.size(), 1u);
  EXPECT_EQ(doc.chunks[0].content,
            "Run this:\n\n```\n# not a heading\nmake   run\n\n  indented line\n```\n\n```\n**kept** as is\n```\n\nAfter.");
}

TEST(Markdown, AnUnclosedFenceRunsToTheEnd) {
  Document doc = parse_markdown("Text.\n\n```\ncode line\n# still code\n", "f");
  ASSERT_EQ(doc.chunks.size(), 1u);
  EXPECT_EQ(doc.chunks[0].content, "Text.\n\n```\ncode line\n# still code\n```");
}

TEST(Markdown, IndentedCodeKeepsItsLines) {
  Document doc = parse_markdown("Paragraph.\n\n    SELECT 1;\n      FROM t;\n\nEnd.\n", "f");
  ASSERT_EQ(doc.chunks.size(), 1u);
  EXPECT_EQ(doc.chunks[0].content, "Paragraph.\n\n```\nSELECT 1;\n  FROM t;\n```\n\nEnd.");
}

TEST(Markdown, ParagraphsListsAndQuotes) {
  Document doc = parse_markdown(
      "A paragraph\nwrapped over\nthree lines.\n\n- item one\n- item two\n  continued\n1. numbered\n\n> "
      "quoted\n> text\n\n"
      "***\n\nLast.\n",
      "f");
  ASSERT_EQ(doc.chunks.size(), 1u);
  EXPECT_EQ(doc.chunks[0].content,
            "A paragraph wrapped over three lines.\n\n- item one\n- item two continued\n1. "
            "numbered\n\nquoted\ntext\n\n"
            "Last.");
}

TEST(Markdown, InlineMarkupBecomesText) {
  Document doc = parse_markdown(
      "Use **bold**, __strong__, *em*, _em_ and `code_span` with [a link](https://x.org \"t\") and "
      "![an image](i.png) or <https://example.com>. Keep snake_case_names, 2 * 3 = 6 and \\*stars\\*.\n",
      "f");
  ASSERT_EQ(doc.chunks.size(), 1u);
  EXPECT_EQ(doc.chunks[0].content,
            "Use bold, strong, em, em and code_span with a link and an image or https://example.com. Keep "
            "snake_case_names, 2 * 3 = 6 and *stars*.");
}

TEST(Markdown, FrontMatterIsSkippedAndGivesTheTitle) {
  Document doc = parse_markdown("---\ntitle: \"Front Title\"\ntags: [a, b]\n---\n# Heading\n\nBody.\n", "f");
  EXPECT_EQ(doc.title, "Front Title");
  ASSERT_EQ(doc.chunks.size(), 1u);
  EXPECT_EQ(doc.chunks[0].heading, "Heading");
  EXPECT_EQ(doc.chunks[0].content, "Body.");
  // A thematic break at the top that is never closed is not front matter.
  Document plain = parse_markdown("---\nJust text.\n", "fallback");
  EXPECT_EQ(plain.title, "fallback");
  ASSERT_EQ(plain.chunks.size(), 1u);
  EXPECT_EQ(plain.chunks[0].content, "Just text.");
}

TEST(Markdown, EmptyInputHasNoChunks) {
  Document doc = parse_markdown("\n\n   \n", "empty");
  EXPECT_EQ(doc.title, "empty");
  EXPECT_TRUE(doc.chunks.empty());
}

}  // namespace
}  // namespace chatstream::ingest
