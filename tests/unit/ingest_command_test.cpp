#include "ingest_command.hpp"

#include <gtest/gtest.h>

namespace chatstream {
namespace {

TEST(IngestCommand, LinksAFileUnderItsDirectoryToTheBaseUrl) {
  EXPECT_EQ(source_link("https://www.postgresql.org/docs/15/", "/usr/share/doc/postgresql-doc-15/html",
                        "/usr/share/doc/postgresql-doc-15/html/indexes-partial.html"),
            "https://www.postgresql.org/docs/15/indexes-partial.html");
  // A slash is added when the base lacks one; subdirectories stay; unusual bytes are encoded.
  EXPECT_EQ(source_link("https://docs.example.com/kb", "/kb", "/kb/guide/Getting started (v2).md"),
            "https://docs.example.com/kb/guide/Getting%20started%20%28v2%29.md");
  EXPECT_EQ(source_link("https://x.org/", "/kb", "/kb/caf\xC3\xA9.md"), "https://x.org/caf%C3%A9.md");
  // Without a base URL there is no link (citations show the path).
  EXPECT_EQ(source_link("", "/kb", "/kb/a.md"), "");
}

TEST(IngestCommand, KeepsOnlyAnchorsThatNameTheirSection) {
  EXPECT_EQ(usable_anchor("INDEXES-PARTIAL"), "INDEXES-PARTIAL");
  EXPECT_EQ(usable_anchor("SQL-CREATEINDEX-EXAMPLES"), "SQL-CREATEINDEX-EXAMPLES");
  EXPECT_EQ(usable_anchor("idle-timeout"), "idle-timeout");
  EXPECT_EQ(usable_anchor("id-1.9.3.69.6"), "");
  EXPECT_EQ(usable_anchor("id1234"), "");
  EXPECT_EQ(usable_anchor(""), "");
}

}  // namespace
}  // namespace chatstream
