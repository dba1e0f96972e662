// How often a stemmer agrees with PostgreSQL's `english` text search configuration over the words of
// the PostgreSQL manual: retrieval matches words with to_tsvector('english', …) while the reranker and
// the extractive composer match them with rag::stem(), so every disagreement is a word one side sees and
// the other misses. Compares rag::stem() and Snowball's English stemmer (libstemmer, which PostgreSQL's
// english_stem dictionary is built from) against to_tsvector, word by word.
//
//   build/stem_agreement DATABASE_URL [MANUAL_DIR]   (MANUAL_DIR: /usr/share/doc/postgresql-doc-15/html)
//
// The vocabulary is every term extract_terms() would see in the manual's text (lowercased, not a
// stopword, at least two bytes). A word PostgreSQL drops (its stopword) is left out. Prints agreement by
// distinct word and by occurrence, and the most frequent disagreements.

#include <libpq-fe.h>
#include <libstemmer.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "ingest/document.hpp"
#include "rag/text.hpp"

namespace {

namespace fs = std::filesystem;
using chatstream::rag::lowercase_ascii;

std::string array_literal(const std::vector<std::string>& words, size_t begin, size_t end) {
  std::string out = "{";
  for (size_t i = begin; i < end; ++i) {
    if (i > begin) out += ',';
    out += '"';
    for (char c : words[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: stem_agreement DATABASE_URL [MANUAL_DIR]\n");
    return 2;
  }
  std::string manual = argc > 2 ? argv[2] : "/usr/share/doc/postgresql-doc-15/html";
  std::unordered_map<std::string, size_t> occurrences;
  size_t files = 0;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(manual, error)) {
    if (entry.path().extension() != ".html") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    auto document = chatstream::ingest::parse_file(entry.path().string(), bytes.str());
    if (!document) continue;
    ++files;
    for (const auto& chunk : document->chunks) {
      for (const std::string& text : {chunk.heading, chunk.content}) {
        for (const auto& word : chatstream::rag::split_words(text)) {
          if (word.end - word.begin < 2) continue;
          std::string lower = lowercase_ascii(text.substr(word.begin, word.end - word.begin));
          if (!chatstream::rag::is_stopword(lower)) ++occurrences[lower];
        }
      }
    }
  }
  if (files == 0) {
    std::fprintf(stderr, "stem_agreement: no .html file in %s\n", manual.c_str());
    return 2;
  }
  std::vector<std::string> words;
  for (const auto& [word, count] : occurrences) words.push_back(word);
  std::sort(words.begin(), words.end());

  PGconn* conn = PQconnectdb(argv[1]);
  if (PQstatus(conn) != CONNECTION_OK) {
    std::fprintf(stderr, "stem_agreement: %s", PQerrorMessage(conn));
    return 2;
  }
  std::unordered_map<std::string, std::string> postgres;  // word → its lexemes, space-separated
  constexpr size_t kBatch = 5000;
  for (size_t begin = 0; begin < words.size(); begin += kBatch) {
    std::string literal = array_literal(words, begin, std::min(words.size(), begin + kBatch));
    const char* params[] = {literal.c_str()};
    PGresult* result = PQexecParams(
        conn,
        "SELECT w, array_to_string(tsvector_to_array(to_tsvector('english', w)), ' ') FROM unnest($1::text[]) w",
        1, nullptr, params, nullptr, nullptr, 0);
    if (PQresultStatus(result) != PGRES_TUPLES_OK) {
      std::fprintf(stderr, "stem_agreement: %s", PQerrorMessage(conn));
      return 2;
    }
    for (int row = 0; row < PQntuples(result); ++row) postgres[PQgetvalue(result, row, 0)] = PQgetvalue(result, row, 1);
    PQclear(result);
  }
  PQfinish(conn);

  sb_stemmer* snowball = sb_stemmer_new("english", "UTF_8");
  struct Tally {
    size_t words = 0, agree_words = 0, occurrences = 0, agree_occurrences = 0;
    std::vector<std::pair<size_t, std::string>> misses;
  };
  Tally ours, theirs;
  size_t dropped = 0;
  for (const std::string& word : words) {
    const std::string& lexemes = postgres[word];
    if (lexemes.empty()) {
      ++dropped;
      continue;
    }
    const unsigned char* stemmed = sb_stemmer_stem(snowball, reinterpret_cast<const unsigned char*>(word.data()),
                                                   static_cast<int>(word.size()));
    std::string snowball_stem(reinterpret_cast<const char*>(stemmed), static_cast<size_t>(sb_stemmer_length(snowball)));
    size_t count = occurrences[word];
    for (auto [tally, stem] : {std::pair{&ours, chatstream::rag::stem(word)}, std::pair{&theirs, snowball_stem}}) {
      ++tally->words;
      tally->occurrences += count;
      if (stem == lexemes) {
        ++tally->agree_words;
        tally->agree_occurrences += count;
      } else {
        tally->misses.push_back({count, word + " → " + stem + " (postgres: " + lexemes + ")"});
      }
    }
  }
  sb_stemmer_delete(snowball);

  std::printf("manual: %zu pages, %zu distinct words (%zu more that PostgreSQL drops as stopwords)\n", files,
              words.size() - dropped, dropped);
  for (auto [name, tally] : {std::pair{"rag::stem()", &ours}, std::pair{"libstemmer english", &theirs}}) {
    std::printf("%-20s agrees with to_tsvector('english'): %.2f%% of distinct words (%zu/%zu), %.2f%% of occurrences\n",
                name, 100.0 * static_cast<double>(tally->agree_words) / static_cast<double>(tally->words),
                tally->agree_words, tally->words,
                100.0 * static_cast<double>(tally->agree_occurrences) / static_cast<double>(tally->occurrences));
    std::sort(tally->misses.rbegin(), tally->misses.rend());
    for (size_t i = 0; i < tally->misses.size() && i < 8; ++i)
      std::printf("    %6zu× %s\n", tally->misses[i].first, tally->misses[i].second.c_str());
  }
  return 0;
}
