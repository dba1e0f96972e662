#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ingest/document.hpp"
#include "json/utf8.hpp"

namespace chatstream::ingest {
namespace {

// All chunk contents of a document joined by "\n\n", for checks that do not care where chunks end.
std::string all_text(const Document& doc) {
  std::string out;
  for (const Chunk& c : doc.chunks) {
    if (!out.empty()) out += "\n\n";
    out += c.content;
  }
  return out;
}

TEST(Html, DecodesEntities) {
  Document doc = parse_html(
      "<p>&lt;tag&gt; &amp; &quot;q&quot; &apos;a&apos; &#233; &#xE9; &#XE9; &eacute; &euro; &mdash; "
      "&hellip; "
      "x&nbsp;y &#x1F600; &#150; AT&T &unknown; &amp &#0; &#xD800; &#x110000;</p>",
      "f");
  EXPECT_EQ(
      all_text(doc),
      "<tag> & \"q\" 'a' \xC3\xA9 \xC3\xA9 \xC3\xA9 \xC3\xA9 \xE2\x82\xAC \xE2\x80\x94 \xE2\x80\xA6 x y "
      "\xF0\x9F\x98\x80 \xE2\x80\x93 AT&T &unknown; &amp \xEF\xBF\xBD \xEF\xBF\xBD \xEF\xBF\xBD");
  // Entities in the title and in headings too.
  Document titled = parse_html("<title>Q&amp;A &ndash; FAQ</title><h1>Tips &amp; tricks</h1><p>x</p>", "f");
  EXPECT_EQ(titled.title, "Q&A \xE2\x80\x93 FAQ");
  ASSERT_EQ(titled.chunks.size(), 1u);
  EXPECT_EQ(titled.chunks[0].heading, "Q&A \xE2\x80\x93 FAQ \xE2\x80\xBA Tips & tricks");
}

TEST(Html, DropsScriptsStylesCommentsAndTheHead) {
  Document doc = parse_html(
      "<!DOCTYPE html><?xml version=\"1.0\"?><html><head><meta charset=\"utf-8\"><title>Page</title>"
      "<style>p { color: red; }</style><script>var x = '</p>';</script></head>"
      "<body><!-- a comment <p>hidden</p> --><p>Visible <SCRIPT "
      "type=\"text/javascript\">alert('<b>x</b>')</SCRIPT>"
      "text.</p><noscript>Enable JavaScript</noscript><template><p>tpl</p></template>"
      "<svg><title>icon</title><text>svg text</text></svg><style>.a{}</style></body></html>",
      "f");
  EXPECT_EQ(doc.title, "Page");
  EXPECT_EQ(all_text(doc), "Visible text.");
}

TEST(Html, HeadingsOneToThreeStartChunks) {
  Document doc = parse_html(
      "<title>Guide</title><p>Intro text.</p><h1>First</h1><p>One.</p><h2>Second <code>part</code></h2>"
      "<p>Two.</p><h4>Minor heading</h4><p>Still two.</p><h3>Third</h3><h2>Empty "
      "section</h2><h3></h3><p>Three.</p>",
      "f");
  ASSERT_EQ(doc.chunks.size(), 4u);
  EXPECT_EQ(doc.chunks[0].heading, "");
  EXPECT_EQ(doc.chunks[0].content, "Intro text.");
  // A heading path: the page's title when its headings do not start with it, then the headings above,
  // " › " between them.
  EXPECT_EQ(doc.chunks[1].heading, "Guide \xE2\x80\xBA First");
  EXPECT_EQ(doc.chunks[1].content, "One.");
  EXPECT_EQ(doc.chunks[2].heading, "Guide \xE2\x80\xBA First \xE2\x80\xBA Second part");
  EXPECT_EQ(doc.chunks[2].content, "Two.\n\nMinor heading\n\nStill two.");
  // Sections without text give no chunk; an empty heading does not start a section.
  EXPECT_EQ(doc.chunks[3].heading, "Guide \xE2\x80\xBA First \xE2\x80\xBA Empty section");
  EXPECT_EQ(doc.chunks[3].content, "Three.");
}

TEST(Html, TitleFallsBackToTheFirstH1ThenToTheGivenTitle) {
  EXPECT_EQ(parse_html("<h2>Two</h2><h1>One <em>big</em></h1><p>x</p>", "f").title, "One big");
  EXPECT_EQ(parse_html("<p>x</p>", "file-name").title, "file-name");
  EXPECT_EQ(parse_html("<title>  Spaced\n  out  </title>", "f").title, "Spaced out");
}

TEST(Html, PreIsAFencedCodeBlockKeepingItsLinesAndIndentation) {
  Document doc = parse_html(
      "<p>For example:</p><pre class=\"programlisting\">\nCREATE TABLE t (\n    id   int,\n    name "
      "text\n);\n"
      "</pre><p>After   the\n   code.</p>",
      "f");
  EXPECT_EQ(all_text(doc),
            "For example:\n\n```\nCREATE TABLE t (\n    id   int,\n    name text\n);\n```\n\nAfter the code.");
  // A fence inside the code gets a longer fence around it.
  EXPECT_EQ(all_text(parse_html("<pre>a ``` b</pre>", "f")), "````\na ``` b\n````");
}

TEST(Html, BlockElementsBecomeParagraphsAndLines) {
  Document doc = parse_html(
      "<div>Block one</div><div>Block <b>two</b></div><ul><li>first</li><li>second</li></ul>"
      "<p>line one<br>line two<br/>line three</p>"
      "<table><tr><th>Name</th><th>Meaning</th></tr><tr><td><p>work_mem</p></td><td><p>Memory for sorts.</p>"
      "<p>Per operation.</p></td></tr></table>",
      "f");
  EXPECT_EQ(all_text(doc),
            "Block one\n\nBlock two\n\nfirst\nsecond\n\nline one\nline two\nline three\n\nName | Meaning\n\n"
            "work_mem | Memory for sorts.\nPer operation.");
}

TEST(Html, KeepsATermWithItsDefinition) {
  Document doc = parse_html(
      "<dl><dt><span class=\"term\"><code>-v</code></span></dt><dd><p>Verbose mode.</p><p>More "
      "detail.</p></dd>"
      "<dt>-q</dt><dd><p>Quiet.</p></dd></dl>",
      "f");
  EXPECT_EQ(all_text(doc), "-v\nVerbose mode.\n\nMore detail.\n\n-q\nQuiet.");
}

TEST(Html, DropsThePostgresManualNavigation) {
  // The shape of every page of the manual (DocBook XSL): nested tables and divs in the navigation.
  std::string page =
      "<html><head><title>11.2. Index Types</title></head><body id=\"docContent\">"
      "<div class=\"navheader\"><table width=\"100%\" summary=\"Navigation header\"><tr><th colspan=\"5\">"
      "11.2. Index Types</th></tr><tr><td><a accesskey=\"p\" href=\"a.html\">Prev</a> </td><td><a "
      "href=\"b.html\">"
      "Up</a></td><th>Chapter 11. Indexes</th><td><a href=\"index.html\">Home</a></td><td><a "
      "href=\"c.html\">Next</a>"
      "</td></tr></table><div class=\"inner\">nested</div><hr /></div>"
      "<div class=\"sect1\" id=\"INDEXES-TYPES\"><div class=\"titlepage\"><div><div><h2 class=\"title\" "
      "style=\"clear: both\">11.2. Index Types</h2></div></div></div><div class=\"toc\"><dl "
      "class=\"toc\"><dt><span "
      "class=\"sect2\"><a href=\"#B\">11.2.1. B-Tree</a></span></dt></dl></div>"
      "<p><span class=\"productname\">PostgreSQL</span> provides several index types.</p>"
      "<div class=\"sect2\"><div class=\"titlepage\"><div><div><h3 class=\"title\">11.2.1. "
      "B-Tree</h3></div></div>"
      "</div><a id=\"id-1\" class=\"indexterm\"></a><p>B-trees can handle equality and range queries.</p>"
      "<div class=\"note\"><h3 class=\"title\">Note</h3><p>Only B-tree indexes can be "
      "unique.</p></div></div></div>"
      "<div class=\"navfooter\"><hr /><table summary=\"Navigation footer\"><tr><td><a "
      "href=\"a.html\">Prev</a></td>"
      "<td><a href=\"b.html\">Up</a></td><td><a href=\"c.html\">Next</a></td></tr><tr><td>11.1. "
      "Introduction</td>"
      "<td><a href=\"index.html\">Home</a></td><td>11.3. Multicolumn "
      "Indexes</td></tr></table></div></body></html>";
  Document doc = parse_html(page, "indexes-types");
  EXPECT_EQ(doc.title, "11.2. Index Types");
  ASSERT_EQ(doc.chunks.size(), 2u);
  // The heading path starts with the chapter, from the navigation header; the anchor is the section's id.
  EXPECT_EQ(doc.chunks[0].heading, "Chapter 11. Indexes \xE2\x80\xBA 11.2. Index Types");
  EXPECT_EQ(doc.chunks[0].anchor, "INDEXES-TYPES");
  EXPECT_EQ(doc.chunks[0].content, "PostgreSQL provides several index types.");
  // The admonition's heading is not a section: it prefixes its paragraph.
  EXPECT_EQ(doc.chunks[1].heading,
            "Chapter 11. Indexes \xE2\x80\xBA 11.2. Index Types \xE2\x80\xBA 11.2.1. B-Tree");
  EXPECT_EQ(doc.chunks[1].anchor, "INDEXES-TYPES");
  EXPECT_EQ(doc.chunks[1].content,
            "B-trees can handle equality and range queries.\n\nNote: Only B-tree indexes can be unique.");
  std::string text = all_text(doc);
  for (const char* nav : {"Prev", "Next", "Home", "nested", "Multicolumn", "Chapter 11"}) {
    EXPECT_EQ(text.find(nav), std::string::npos) << nav;
  }
  // The <nav> element of other sites too.
  EXPECT_EQ(all_text(parse_html("<nav><a>Home</a><div>Menu</div></nav><p>Body.</p>", "f")), "Body.");
}

TEST(Html, SurvivesMalformedMarkup) {
  Document doc = parse_html(
      "<p>a < b and c > d</p><p title=\"x > y\" class='q'>quoted attr</p><div><p>unclosed<div>inner"
      "<p>text</i></b></div></div></div></div><p>trailing <",
      "f");
  EXPECT_EQ(all_text(doc), "a < b and c > d\n\nquoted attr\n\nunclosed\n\ninner\n\ntext\n\ntrailing <");
  // Truncated inside a tag, a comment, a script: no crash, the text before is kept.
  EXPECT_EQ(all_text(parse_html("<p>kept</p><a href=\"x", "f")), "kept");
  EXPECT_EQ(all_text(parse_html("<p>kept</p><!-- never closed <p>x</p>", "f")), "kept");
  EXPECT_EQ(all_text(parse_html("<p>kept</p><script>never closed", "f")), "kept");
}

TEST(Html, SplitsLongSectionsOnParagraphBoundaries) {
  std::string html = "<h2>Long</h2>";
  std::vector<std::string> paragraphs;
  for (int i = 0; i < 12; ++i) {
    std::string p = "Paragraph " + std::to_string(i) + " says caf\xC3\xA9";
    while (p.size() < 280) p += " and more words";
    p += ".";
    paragraphs.push_back(p);
    html += "<p>" + p + "</p>";
  }
  Document doc = parse_html(html, "f");
  ASSERT_GE(doc.chunks.size(), 3u);
  std::vector<std::string> seen;
  for (const Chunk& c : doc.chunks) {
    EXPECT_EQ(c.heading, "Long");
    EXPECT_LE(c.content.size(), kMaxChunkBytes);
    EXPECT_TRUE(json::is_valid_utf8(c.content));
    // Chunks end between paragraphs: every paragraph is found whole in one chunk.
    size_t begin = 0;
    while (begin <= c.content.size()) {
      size_t end = c.content.find("\n\n", begin);
      if (end == std::string::npos) end = c.content.size();
      seen.push_back(c.content.substr(begin, end - begin));
      begin = end + 2;
    }
  }
  EXPECT_EQ(seen, paragraphs);
}

TEST(Html, ReplacesInvalidUtf8AndControlCharacters) {
  const char raw[] = "<p>bad \xFF byte, nul \0 and bell \x07 gone</p>";
  Document doc = parse_html(std::string(raw, sizeof(raw) - 1), "f");
  ASSERT_EQ(doc.chunks.size(), 1u);
  EXPECT_EQ(doc.chunks[0].content, "bad \xEF\xBF\xBD byte, nul and bell gone");
}

}  // namespace
}  // namespace chatstream::ingest
