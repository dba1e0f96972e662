#pragma once
// Documents for the knowledge base: a file's text, cleaned of markup and cut into chunks that are each
// one retrievable, citable unit. Pure (no I/O): `chatstream ingest` reads the files and stores the
// chunks.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace chatstream::ingest {

// Chunks are cut to at most this many bytes of content (UTF-8; for English text, characters): about
// 200 words — long enough to hold an answer with its context, short enough that a citation points at
// the place that says it.
inline constexpr size_t kMaxChunkBytes = 1200;

struct Chunk {
  // The heading path of the section the chunk belongs to, " › " between levels: the chapter when the
  // page names it (the PostgreSQL manual's navigation header), then the page's headings above the chunk
  // ("Chapter 11. Indexes › 11.8. Partial Indexes"); "" before the first heading.
  std::string heading;
  // Paragraphs separated by a blank line ("\n\n"); lines inside a paragraph (list items, <br>) by
  // "\n"; a table row is one line, its cells separated by " | "; runs of spaces and tabs collapsed.
  // Preformatted text (<pre>, program listings and synopses, Markdown code) is a code block of its own,
  // fenced as in Markdown ("```\n" … "\n```", sections.hpp fence_code()), never split below
  // 3 × kMaxChunkBytes and kept in the chunk of the sentence that announces it.
  // Valid UTF-8 without control characters other than "\n" and "\t"; never empty.
  std::string content;
  // The fragment that links to the chunk's section in the page (the id of the element around its
  // heading, HTML only: "INDEXES-PARTIAL"); "" when there is none.
  std::string anchor;
};

struct Document {
  std::string title;
  std::vector<Chunk> chunks;  // in document order; empty when the file holds no text
};

enum class Format { kHtml, kMarkdown, kText };

// By extension, case-insensitively: .html/.htm, .md/.markdown, .txt; nothing for anything else.
std::optional<Format> format_for_path(std::string_view path);

// HTML (and XHTML): <script>, <style>, <noscript>, <template>, <svg>, <nav>, comments and <head>
// (except <title>) are dropped, as are the PostgreSQL manual's navigation and tables of contents
// (div.navheader, div.navfooter, div.toc, and the book index, div.index). Entities are decoded (the
// common named ones, &#NNN; and &#xHH;). Block elements end paragraphs, <br>, <li>, <dt>, <dd> end
// lines, a table row is one line (cells separated by " | "), <pre> is a fenced code block. <h1>–<h3>
// start a new section headed by their path (see Chunk; the chapter comes from div.navheader);
// <h4>–<h6> stay in the text as a paragraph, and the heading of an admonition
// (div.note/tip/warning/caution/important: "Note") prefixes its first paragraph as "Note: ".
// The title is <title>, else the first <h1>, else `fallback_title`.
Document parse_html(std::string_view html, std::string_view fallback_title);

// Markdown: ATX ("## Heading") and Setext (underlined with === or ---) headings, levels 1–3 start
// sections (headed by their path, see Chunk); fenced (``` or ~~~) and indented code become code blocks;
// list items and block quotes keep one line each (markers of quotes dropped); inline links and images
// become their text, emphasis and code markers are removed. A YAML front matter block is skipped (its
// title: is used). The title is the front matter's title, else the first level-1 heading, else
// `fallback_title`.
Document parse_markdown(std::string_view markdown, std::string_view fallback_title);

// Plain text: paragraphs are separated by blank lines, hard-wrapped lines inside one are joined. The
// title is the first line (up to 200 bytes, when it is a paragraph of its own it is not repeated in
// the content), or `fallback_title` when the text is empty.
Document parse_text(std::string_view text, std::string_view fallback_title);

// Parses by format_for_path(path), with the file name without its extension as the fallback title.
// An unsupported extension is an error.
//
// Every parser cleans its input first: bytes that are not UTF-8 become U+FFFD, NUL and other control
// characters are dropped (PostgreSQL text holds neither), no-break spaces become spaces.
Result<Document> parse_file(std::string_view path, std::string_view contents);

}  // namespace chatstream::ingest
