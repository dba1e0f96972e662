#include "rag/text.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace chatstream::rag {
namespace {

std::vector<std::string> words_of(std::string_view text) {
  std::vector<std::string> out;
  for (const Word& w : split_words(text)) out.emplace_back(text.substr(w.begin, w.end - w.begin));
  return out;
}

std::vector<std::string> sentences_of(std::string_view text) {
  std::vector<std::string> out;
  for (std::string_view s : split_sentences(text)) out.emplace_back(s);
  return out;
}

using Strings = std::vector<std::string>;

TEST(RagText, SplitsWordsOnPunctuationAndKeepsUtf8Letters) {
  EXPECT_EQ(words_of("pg_dump --format=custom, v15.2!"),
            (Strings{"pg", "dump", "format", "custom", "v15", "2"}));
  EXPECT_EQ(words_of("Caf\xC3\xA9 na\xC3\xAFve \xD0\xB8\xD0\xBD\xD0\xB4\xD0\xB5\xD0\xBA\xD1\x81"),
            (Strings{"Caf\xC3\xA9", "na\xC3\xAFve", "\xD0\xB8\xD0\xBD\xD0\xB4\xD0\xB5\xD0\xBA\xD1\x81"}));
  // Em dash, curly quotes, no-break space, ellipsis and emoji separate words.
  EXPECT_EQ(words_of("rows\xE2\x80\x94the \xE2\x80\x9Cinverted\xE2\x80\x9D "
                     "index\xC2\xA0page\xE2\x80\xA6ok\xF0\x9F\x98\x80yes"),
            (Strings{"rows", "the", "inverted", "index", "page", "ok", "yes"}));
  EXPECT_TRUE(split_words("").empty());
  EXPECT_TRUE(split_words(" -- ... ").empty());
}

TEST(RagText, LowercasesAsciiOnly) {
  EXPECT_EQ(lowercase_ascii("VACUUM Full \xC3\x89T\xC3\x89"), "vacuum full \xC3\x89t\xC3\x89");
}

TEST(RagText, DropsStopwordsAndOneCharacterWords) {
  EXPECT_TRUE(is_stopword("the"));
  EXPECT_TRUE(is_stopword("which"));
  EXPECT_TRUE(is_stopword("doesn"));
  EXPECT_FALSE(is_stopword("index"));
  EXPECT_FALSE(is_stopword("show"));  // a command name, kept in passages
  EXPECT_EQ(terms("The indexes are being created on a B-tree of x"), (Strings{"index", "creat", "tree"}));
  EXPECT_EQ(terms("it is what it is"), Strings{});
}

TEST(RagText, QuestionTermsDropFillersAndRepeats) {
  EXPECT_EQ(question_terms("Could you please explain indexes, and the index types?"),
            (Strings{"index", "type"}));
  EXPECT_EQ(question_terms("Tell me something"), Strings{});
  // Fillers stay in passages.
  EXPECT_EQ(terms("explain the plan"), (Strings{"explain", "plan"}));
}

TEST(RagText, TermsCarryTheirWordPositions) {
  std::vector<Term> t = extract_terms("Create the index, then vacuum it.");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].stem, "creat");
  EXPECT_EQ(t[0].position, 0u);
  EXPECT_EQ(t[1].stem, "index");
  EXPECT_EQ(t[1].position, 2u);
  EXPECT_EQ(t[2].stem, "vacuum");
  EXPECT_EQ(t[2].position, 4u);
}

TEST(RagStem, ConflatesTheUsualEnglishForms) {
  struct Case {
    const char* word;
    const char* stem;
  };
  const Case cases[] = {
      {"indexes", "index"}, {"indexed", "index"},    {"indexing", "index"},
      {"index", "index"},   {"queries", "queri"},    {"query", "queri"},
      {"tables", "tabl"},   {"table", "tabl"},       {"running", "run"},
      {"runs", "run"},      {"hopping", "hop"},      {"filing", "file"},
      {"files", "file"},    {"caresses", "caress"},  {"ponies", "poni"},
      {"ties", "tie"},      {"gaps", "gap"},         {"gas", "gas"},
      {"status", "status"}, {"class", "class"},      {"controlling", "control"},
      {"happy", "happi"},   {"cry", "cri"},          {"say", "say"},
      {"feed", "feed"},     {"created", "creat"},    {"creating", "creat"},
      {"creates", "creat"}, {"using", "use"},        {"uses", "use"},
      {"used", "use"},      {"vacuuming", "vacuum"}, {"vacuumed", "vacuum"},
      // Porter2's step 2-4 suffixes, as to_tsvector('english', …) stems them.
      {"partitioning", "partit"}, {"generalization", "general"},
      {"sing", "sing"},     {"string", "string"},
  };
  for (const Case& c : cases) EXPECT_EQ(stem(c.word), c.stem) << c.word;
}

TEST(RagStem, LeavesShortAndNumericWordsAloneAndStemsUtf8) {
  EXPECT_EQ(stem("is"), "is");
  EXPECT_EQ(stem("utf8"), "utf8");
  EXPECT_EQ(stem("v15s"), "v15s");
  EXPECT_EQ(stem("caf\xC3\xA9s"), "caf\xC3\xA9");
}

TEST(RagText, SplitsFencedCodeBlocksFromProse) {
  std::string text = "Use this:\n\n```\nSELECT 1;\n\n  SELECT 2;\n```\n\nThen ````\nx\n\n````sql\ny\n`````\nz\n\n```\nopen";
  std::vector<Block> blocks = split_blocks(text);
  ASSERT_EQ(blocks.size(), 5u);
  EXPECT_EQ(blocks[0].text, "Use this:");
  EXPECT_FALSE(blocks[0].code);
  EXPECT_EQ(blocks[1].text, "```\nSELECT 1;\n\n  SELECT 2;\n```");
  EXPECT_TRUE(blocks[1].code);
  EXPECT_EQ(code_of(blocks[1].text), "SELECT 1;\n\n  SELECT 2;");
  EXPECT_EQ(blocks[2].text, "Then ````\nx");  // a fence must open its line
  EXPECT_EQ(blocks[3].text, "````sql\ny\n`````");
  EXPECT_TRUE(blocks[3].code);
  EXPECT_EQ(code_of(blocks[3].text), "y");
  // An unclosed fence is prose.
  EXPECT_EQ(blocks[4].text, "z\n\n```\nopen");
  EXPECT_FALSE(blocks[4].code);
}

TEST(RagSentences, SplitsOnTerminalPunctuationFollowedBySpace) {
  EXPECT_EQ(sentences_of("VACUUM reclaims storage. It can run in parallel! Does it lock? Rarely."),
            (Strings{"VACUUM reclaims storage.", "It can run in parallel!", "Does it lock?", "Rarely."}));
  EXPECT_EQ(sentences_of("Really?! Yes."), (Strings{"Really?!", "Yes."}));
}

TEST(RagSentences, KeepsAbbreviationsDecimalsAndDottedNamesInside) {
  EXPECT_EQ(sentences_of("Some types, e.g. arrays, i.e. composite values, work. Next one."),
            (Strings{"Some types, e.g. arrays, i.e. composite values, work.", "Next one."}));
  EXPECT_EQ(
      sentences_of("Version 3.5 is faster than 2.0 by far. See pg_catalog.pg_class and www.example.com now."),
      (Strings{"Version 3.5 is faster than 2.0 by far.",
               "See pg_catalog.pg_class and www.example.com now."}));
  EXPECT_EQ(sentences_of("Upgrade to version 3.5. Then restart."),
            (Strings{"Upgrade to version 3.5.", "Then restart."}));
  EXPECT_EQ(sentences_of("Ask Dr. Smith vs. Mr. Jones about fig. 3 and No. 5 today."),
            (Strings{"Ask Dr. Smith vs. Mr. Jones about fig. 3 and No. 5 today."}));
}

TEST(RagSentences, EtcAndEllipsisEndASentenceOnlyBeforeACapital) {
  EXPECT_EQ(sentences_of("Tables, views, etc. are relations. Indexes, sequences, etc. The end."),
            (Strings{"Tables, views, etc. are relations.", "Indexes, sequences, etc.", "The end."}));
  EXPECT_EQ(sentences_of("Wait... and see. Done... Next."),
            (Strings{"Wait... and see.", "Done...", "Next."}));
  // An ellipsis inside parentheses is an omission.
  EXPECT_EQ(sentences_of("The table is dropped (with DROP TYPE ... CASCADE) too. Next."),
            (Strings{"The table is dropped (with DROP TYPE ... CASCADE) too.", "Next."}));
}

TEST(RagSentences, ClosingQuotesAndBracketsStayWithTheirSentence) {
  EXPECT_EQ(sentences_of("He said \"stop.\" Then left. (See Section 9.11.) The end."),
            (Strings{"He said \"stop.\"", "Then left.", "(See Section 9.11.)", "The end."}));
  EXPECT_EQ(sentences_of("It is \xE2\x80\x9Cinverted.\xE2\x80\x9D Next."),
            (Strings{"It is \xE2\x80\x9Cinverted.\xE2\x80\x9D", "Next."}));
}

TEST(RagSentences, NewlinesAndBulletsAreBoundaries) {
  EXPECT_EQ(sentences_of("Options:\n- first choice\n* second choice\n  3. third choice\n\xE2\x80\xA2 fourth"),
            (Strings{"Options:", "first choice", "second choice", "third choice", "fourth"}));
  EXPECT_EQ(sentences_of("a line without a period\nanother one"),
            (Strings{"a line without a period", "another one"}));
  EXPECT_EQ(sentences_of("one \xE2\x80\xA2 two"), (Strings{"one", "two"}));
}

TEST(RagSentences, DropsPiecesWithoutLettersOrDigits) {
  EXPECT_EQ(sentences_of(""), Strings{});
  EXPECT_EQ(sentences_of("---\n...\n   \n\xE2\x80\x94"), Strings{});
  EXPECT_EQ(sentences_of("  Padded sentence.  "), (Strings{"Padded sentence."}));
}

TEST(RagSentences, ReturnsViewsIntoTheText) {
  std::string text = "First one. Second one.";
  std::vector<std::string_view> s = split_sentences(text);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[1].data(), text.data() + 11);
}

TEST(RagText, DecodesUtf8) {
  size_t length;
  EXPECT_EQ(decode_utf8("\xE2\x82\xAC", length), U'\u20AC');
  EXPECT_EQ(length, 3u);
  EXPECT_EQ(decode_utf8("\xFF"
                        "a",
                        length),
            U'\uFFFD');
  EXPECT_EQ(length, 1u);
  EXPECT_EQ(decode_utf8("", length), 0u);
  EXPECT_EQ(length, 0u);
}

}  // namespace
}  // namespace chatstream::rag
