#pragma once
// Term extraction shared by the search query, the reranker, snippets and the extractive composer:
// every one of them must see the same terms in a question and in a passage, or scores stop meaning
// anything.
//
// A word is a maximal run of ASCII letters and digits and non-ASCII letters (UTF-8 is decoded;
// punctuation, symbols, dashes, curly quotes, no-break spaces and emoji separate words). A term is a
// word lowercased (ASCII only: UTF-8 letters are kept as they are), not an English stopword, at
// least two bytes long, then stemmed by `stem()`.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace chatstream::rag {

// A word of a text: its bytes are text.substr(begin, end - begin).
struct Word {
  size_t begin;
  size_t end;
};

std::vector<Word> split_words(std::string_view text);

// ASCII letters lowered, every other byte kept.
std::string lowercase_ascii(std::string_view text);

// The compact English stopword list (the Snowball list PostgreSQL's `english` configuration uses),
// for a lowercased word.
bool is_stopword(std::string_view lowercase_word);

// Words that carry no topic in a question ("please", "explain", "tell", "one", …): dropped from
// questions only, never from passages (where "show" or "describe" can be a command's name).
bool is_question_filler(std::string_view lowercase_word);

// Whether a word of a question (as written) carries no topic: a stopword, or a question filler unless
// written in capitals — "What does EXPLAIN show?" asks about the EXPLAIN command.
bool is_empty_in_question(std::string_view word);

// The English stemmer of PostgreSQL's `english` configuration (Snowball's Porter2, from libstemmer) for
// a lowercased word, so that the reranker and the composer conflate words as retrieval does: "indexes"/
// "indexed"/"indexing" → "index", "queries" → "queri", "tables" → "tabl". Words with digits (PostgreSQL's
// "numword", not stemmed by it either) and words under three bytes are returned unchanged.
std::string stem(std::string_view lowercase_word);

// A term with the index of its word among all words of the text (stopwords included), so distances
// between positions are distances in the text.
struct Term {
  std::string stem;
  size_t position;
};

// Every term of `text`, in order, repeats included.
std::vector<Term> extract_terms(std::string_view text);

// The stems of extract_terms(text).
std::vector<std::string> terms(std::string_view text);

// The distinct stems of a question, in order of first appearance, without question fillers.
std::vector<std::string> question_terms(std::string_view question);

// Sentences of `text`, trimmed, as views into it. Boundaries: a newline, a bullet ("•", or "-", "*",
// "+" starting a line, whose marker is left out), and ".", "!" or "?" (possibly repeated, possibly
// followed by closing quotes or brackets) followed by whitespace — except after "e.g.", "i.e.", "cf.",
// "vs.", titles like "Dr." and other abbreviations, after "etc." or "..." followed by a lowercase
// word, and after "No." followed by a number. A period not followed by whitespace never ends a
// sentence ("3.5", "pg_catalog.pg_class", "example.com"). Pieces without a letter or digit are
// dropped.
std::vector<std::string_view> split_sentences(std::string_view text);

// A paragraph-level piece of a passage: prose, or a code block fenced as ingest/ writes them
// ("```\n…\n```", the fence possibly longer, ingest/document.hpp).
struct Block {
  std::string_view text;  // a code block with its fences
  bool code = false;
};

// The blocks of `text` in order: fenced code blocks (a line of three or more backticks, up to a line of
// at least as many), and the prose between them (trimmed, empty pieces dropped). An unclosed fence is
// prose.
std::vector<Block> split_blocks(std::string_view text);

// The code of a fenced block without its fence lines; other text unchanged.
std::string_view code_of(std::string_view block);

// Decodes the well-formed UTF-8 character at text[0]; sets `length` to its size, or to 1 (and
// returns U+FFFD) for a byte that starts no valid character, or to 0 for empty text.
char32_t decode_utf8(std::string_view text, size_t& length);

}  // namespace chatstream::rag
