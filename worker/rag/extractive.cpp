#include "rag/extractive.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <unordered_map>
#include <unordered_set>

#include "rag/query.hpp"
#include "rag/snippet.hpp"
#include "rag/text.hpp"

// How sentences are chosen. Each sentence of the best passages is a small document: BM25 over all
// candidate sentences (IDF over them, so a term every sentence has decides nothing), question and
// context as two normalised parts (rag/query.hpp), and the passage's title and heading lending half a
// match to the terms they hold (a sentence under the heading "B-Tree" is about B-trees even when it
// says "they"). A mild prior prefers better-ranked passages. Length normalisation is gentler than for
// passages (b = 0.5): a long sentence that answers is still one sentence.
//
// What counts as an answer is decided by coverage, not by the BM25 score (which depends on length):
// a sentence is eligible when the question terms it or its heading matches carry at least kMinCoverage
// of the question's IDF weight, those it matches itself at least kMinOwnCoverage, and at least two
// distinct question terms when the question has two or more. "What is the capital of France?" is not
// answered by a sentence that mentions France. A follow-up with terms of its own must also match a term
// of the conversation ("and how do I drop it?" needs "drop" and what "it" was); one without ("why?")
// is covered against the newest earlier message.
//
// The form of a sentence counts too, as in classic extractive summarisation: a sentence whose subject
// is a question term, or that defines one, is preferred (strongly for "what is X?" questions); one that
// starts by pointing back ("Therefore", "It") is less self-contained and is penalised; the tail of a
// cut sentence ("where the threshold is …") and a bare line of code are never chosen for themselves —
// a code line only follows the sentence that announces it ("To create a hash index:").

namespace chatstream::rag {

namespace {

// Sentence scoring.
constexpr double kK1 = 1.2;
constexpr double kB = 0.5;
constexpr double kHeadingSupport = 0.5;     // a term in the title or heading: half a match
constexpr double kRankPrior = 0.15;         // score × 1 / (1 + kRankPrior × passage rank)
constexpr double kPointsBackPenalty = 0.6;  // "Therefore …", "It …": less self-contained
// A question term among the first two words (it is the topic), or defined ("X is …", "…
// (Multiversion Concurrency Control, MVCC)"); more so when the question asks what something is.
struct Boosts {
  double subject;
  double definition;
};
constexpr Boosts kBoosts = {1.15, 1.4};
constexpr Boosts kDefinitionQuestionBoosts = {1.5, 2.0};
// The first sentences of a section usually say what it is about (the "lead" of summarisation).
constexpr double kLeadBoost[] = {1.2, 1.1};
// For "what is X?", a section titled Introduction, Overview, Description… is where X is defined.
constexpr double kIntroductionBoost = 1.2;
// A table row ("vacuuming heap | VACUUM is currently vacuuming the heap.") answers less often than prose.
constexpr double kTableRowPenalty = 0.6;
// "What is the default …?": the sentence that says "default" states it.
constexpr double kDefaultBoost = 1.5;

// What is an answer.
constexpr double kMinCoverage = 0.45;     // of the question's IDF weight, with heading support
constexpr double kMinOwnCoverage = 0.35;  // of it by the sentence itself
constexpr size_t kMinSentenceWords = 3;
constexpr size_t kMaxSentenceChars = 450;  // longer "sentences" are tables or code dumps

// What goes in.
constexpr double kRelativeCutoff = 0.45;   // no padding with sentences far weaker than the best
constexpr double kDuplicateJaccard = 0.6;  // term-set overlap above which two sentences say the same
constexpr size_t kMaxAnswerChars = 1400;
constexpr size_t kMaxContinuationChars = 300;

struct Sentence {
  size_t passage;   // rank in `ranked`
  size_t position;  // in the passage
  std::string text;
  std::vector<int> tf;  // per query term
  size_t length = 0;
  std::unordered_set<std::string> stems;
  double score = 0;
  bool fragment = false;  // not to be chosen for itself (may follow a sentence ending in ':')
  bool eligible = false;
  bool code = false;  // a fenced code block, verbatim (text keeps its fences and line breaks)
  // Terms of the term a definition list or a table row defines ("work_mem (integer)"), lending their
  // support to the sentences that define it, as a heading does.
  std::vector<bool> support;
};

// The term a paragraph starts by defining: its first line when the paragraph has more lines and that
// line is short and no sentence ("shared_buffers (integer)", "-v", "--verbose"). Empty otherwise.
std::string_view defined_term(std::string_view block) {
  size_t newline = block.find('\n');
  if (newline == std::string_view::npos || newline > 80) return {};
  std::string_view line = block.substr(0, newline);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
  if (line.empty() || line.back() == '.' || line.back() == ':' || line.back() == '?' || line.back() == '!') return {};
  return line;
}

// Code blocks.
constexpr size_t kMaxCodeChars = 1200;   // a longer listing is not quoted in an answer
constexpr double kVerbBoost = 1.3;        // the code starts with the question's verb ("CREATE …")
constexpr double kSynopsisPenalty = 0.4;  // "CREATE [ UNIQUE ] INDEX …": the grammar, not an example
constexpr double kLongCodePenalty = 0.7;  // over kLongCodeChars
constexpr size_t kLongCodeChars = 500;
// The code itself, its announcement and heading must cover this much of the question's IDF weight:
// less than a sentence must (a statement names the command, rarely the question's other words).
constexpr double kMinCodeCoverage = 0.3;
// A how-to answer: the code that does it, with one or two sentences.
constexpr size_t kHowToSentences = 2;
// The comment right after a quoted example, when it points back at it, comes with it up to this length.
constexpr size_t kMaxCommentChars = 200;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_ascii_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Whitespace collapsed, ill-formed bytes replaced, the source's own "[7]" footnote markers removed
// (they would read as our citations), backticks removed when unbalanced.
std::string clean_sentence(std::string_view raw) {
  std::string out;
  bool space = false;
  for (size_t i = 0; i < raw.size();) {
    if (is_space(raw[i])) {
      space = true;
      ++i;
      continue;
    }
    if (raw[i] == '[') {
      size_t j = i + 1;
      while (j < raw.size() && raw[j] >= '0' && raw[j] <= '9') ++j;
      if (j > i + 1 && j < raw.size() && raw[j] == ']') {
        i = j + 1;
        // "plans [3]." → "plans."
        if (i < raw.size() && std::string_view(".,;:!?)").find(raw[i]) != std::string_view::npos)
          space = false;
        continue;
      }
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    size_t length;
    char32_t cp = decode_utf8(raw.substr(i), length);
    if (cp == 0xFFFD && length == 1) {
      out += "\xEF\xBF\xBD";
    } else {
      out.append(raw.substr(i, length));
    }
    i += length;
  }
  if (std::count(out.begin(), out.end(), '`') % 2 != 0) std::erase(out, '`');
  return out;
}

std::string word_at(std::string_view text, const std::vector<Word>& words, size_t i) {
  return lowercase_ascii(text.substr(words[i].begin, words[i].end - words[i].begin));
}

bool starts_by_pointing_back(std::string_view sentence) {
  static const std::unordered_set<std::string_view> kWords = {
      "it",    "its",         "this",         "that",      "these",       "those",     "they",    "their",
      "such",  "however",     "also",         "therefore", "thus",        "otherwise", "instead", "here",
      "then",  "likewise",    "similarly",    "moreover",  "furthermore", "but",       "and",     "so",
      "hence", "accordingly", "consequently", "per",       "there",       "he",        "she"};
  std::vector<Word> words = split_words(sentence);
  return !words.empty() && kWords.contains(word_at(sentence, words, 0));
}

// "where the threshold is …", "and then …": the tail of a sentence whose head was cut off (by a formula
// or a code line in between). A lowercase identifier ("pg_dump writes …") is not a stopword.
// A lowercase start without a final period ("streaming database files") is a table cell or a label.
bool is_fragment(std::string_view sentence) {
  std::vector<Word> words = split_words(sentence);
  if (words.empty()) return true;
  char first = sentence[words[0].begin];
  if (!(first >= 'a' && first <= 'z') || words[0].begin != 0) return false;
  char last = sentence.back();
  return is_stopword(word_at(sentence, words, 0)) || (last != '.' && last != '!' && last != '?');
}

// "ERROR:  relation does not exist", "DETAIL: Key (city)=(Berkeley) …": a program's output.
bool is_output_line(std::string_view sentence) {
  size_t colon = sentence.find(':');
  if (colon == std::string_view::npos || colon < 3 || colon > 12) return false;
  return std::all_of(sentence.begin(), sentence.begin() + static_cast<std::ptrdiff_t>(colon),
                     [](char c) { return c >= 'A' && c <= 'Z'; });
}

// A line of code or a signature ("CREATE INDEX pointloc", "f(x) → integer") rather than prose: no
// sentence punctuation at its end, and code characters in it.
bool is_code_line(std::string_view sentence) {
  if (sentence.empty()) return true;
  std::string_view end = sentence;
  while (end.size() > 1 && (end.back() == ')' || end.back() == '"' || end.back() == '\''))
    end.remove_suffix(1);
  char last = end.back();
  if (last == '.' || last == '!' || last == '?' || last == ':') return false;
  if (sentence.find_first_of("();=_{}<>|$#@\\") != std::string_view::npos) return true;
  if (sentence.find("\xE2\x86\x92") != std::string_view::npos) return true;  // →
  // Mostly upper-case words: SQL keywords.
  std::vector<Word> words = split_words(sentence);
  size_t upper = 0;
  for (const Word& w : words) {
    char c = sentence[w.begin];
    upper += (c >= 'A' && c <= 'Z' && w.end - w.begin > 1 && sentence[w.begin + 1] >= 'A' &&
              sentence[w.begin + 1] <= 'Z')
                 ? 1
                 : 0;
  }
  return upper * 2 >= words.size();
}

// A sentence that ends in a letter or digit gets a period, unless it looks like code.
std::string finish_sentence(std::string text) {
  if (!text.empty() && is_ascii_alnum(text.back()) && !is_code_line(text)) text += '.';
  return text;
}

// The form of the sentence relative to the question terms (stems in `question`): a question term as
// its subject, defined by a copula after it, or spelled out next to it in parentheses.
double shape_of(std::string_view sentence, const std::unordered_set<std::string>& question,
                const Boosts& boosts) {
  static const std::unordered_set<std::string_view> kDefining = {
      "is", "are", "means", "refers", "stands", "denotes", "provides", "allows", "lets", "stores"};
  std::vector<Word> words = split_words(sentence);
  double shape = 1.0;
  for (size_t i = 0; i < words.size() && i < 2; ++i) {
    if (!question.contains(stem(word_at(sentence, words, i)))) continue;
    shape = boosts.subject;
    for (size_t j = i + 1; j < words.size() && j <= i + 3; ++j) {
      if (!kDefining.contains(word_at(sentence, words, j))) continue;
      // "X is currently running", "X is not …": a state, not a definition.
      std::string after = j + 1 < words.size() ? word_at(sentence, words, j + 1) : "";
      static const std::unordered_set<std::string_view> kNotDefining = {"currently", "now",  "being", "not",
                                                                        "also",      "only", "still", "then"};
      if (kNotDefining.contains(after) || after.ends_with("ing")) break;
      return boosts.definition;
    }
  }
  // "(Multiversion Concurrency Control, MVCC)" or "MVCC (multiversion concurrency control)".
  for (size_t i = 0; i < words.size(); ++i) {
    if (!question.contains(stem(word_at(sentence, words, i)))) continue;
    size_t before = words[i].begin, after = words[i].end;
    // The term closes a parenthesis that holds more than the term itself.
    size_t open = before > 0 ? sentence.rfind('(', before - 1) : std::string_view::npos;
    bool closes = after < sentence.size() && sentence[after] == ')' && open != std::string_view::npos &&
                  sentence.find(')', open) == after && open + 2 < before;
    // The term is followed by its spelled-out form.
    bool opens = sentence.substr(after).starts_with(" (") && sentence.find(')', after) > after + 4;
    if (closes || opens) return std::max(shape, boosts.definition);
  }
  if (starts_by_pointing_back(sentence)) shape *= kPointsBackPenalty;
  return shape;
}

// "What is X?", "What does X do?", "Define X", "Tell me about X": a short question asking what
// something is.
bool asks_what_something_is(std::string_view question, size_t terms) {
  if (terms == 0 || terms > 3) return false;
  std::vector<Word> words = split_words(question);
  if (words.empty()) return false;
  std::string first = word_at(question, words, 0);
  std::string second = words.size() > 1 ? word_at(question, words, 1) : "";
  if (first == "define" || first == "describe" || first == "explain" || first == "whats") return true;
  if ((first == "what" || first == "who") && (second == "is" || second == "are" || second == "was" ||
                                              second == "does" || second == "do" || second == "s")) {
    return true;
  }
  return first == "tell" && question.find("about") != std::string_view::npos;
}

// "See Section 11.8 for more discussion.", "Refer to Chapter 5.": a pointer to where the answer is,
// not the answer.
bool is_pointer(std::string_view sentence) {
  std::vector<Word> words = split_words(sentence);
  if (words.empty()) return false;
  std::string first = word_at(sentence, words, 0);
  bool starts_pointing = first == "see" || first == "refer" || first == "consult" ||
                         (first == "for" && sentence.find(", see ") != std::string_view::npos) ||
                         (first == "more" && sentence.find(" in ") != std::string_view::npos);
  if (!starts_pointing || words.size() > 18) return false;
  static const std::unordered_set<std::string_view> kTargets = {"section", "chapter", "appendix", "part",
                                                                "table",   "example", "figure",   "below",
                                                                "above",   "reference"};
  for (size_t i = 1; i < words.size(); ++i) {
    if (kTargets.contains(word_at(sentence, words, i))) return true;
  }
  return false;
}

bool ends_with_nocase(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && lowercase_ascii(s.substr(s.size() - suffix.size())) == suffix;
}

// A sentence that announces an example after it: "…, use a command such as this:", "…, for example."
bool announces_example(std::string_view sentence) {
  return sentence.ends_with(':') || ends_with_nocase(sentence, "for example.") ||
         ends_with_nocase(sentence, "as follows.") || ends_with_nocase(sentence, "such as this.") ||
         ends_with_nocase(sentence, "like this.") || ends_with_nocase(sentence, "for instance.");
}

// A sentence that goes on in the code after it: "The general command form to restore a dump is" + the
// command. (Only asked of a sentence a code block follows.)
bool runs_into_code(std::string_view sentence) {
  if (sentence.empty()) return false;
  char last = sentence.back();
  return last != '.' && last != '!' && last != '?' && last != ')' && last != '"';
}

// "How do I …?", "How can I …", "How to …": the answer is a statement or a command.
bool asks_how_to(std::string_view question) {
  std::vector<Word> words = split_words(question);
  if (words.size() < 3 || word_at(question, words, 0) != "how") return false;
  std::string second = word_at(question, words, 1);
  return second == "do" || second == "can" || second == "to" || second == "should" || second == "would" ||
         second == "could" || second == "does";
}

// A synopsis ("CREATE [ UNIQUE ] INDEX [ CONCURRENTLY ] …"): optional parts in brackets, choices in
// braces.
bool is_synopsis(std::string_view code) {
  return code.find(" [ ") != std::string_view::npos || code.find("{ ") != std::string_view::npos ||
         code.find(" | ") != std::string_view::npos;
}

double jaccard(const std::unordered_set<std::string>& a, const std::unordered_set<std::string>& b) {
  if (a.empty() && b.empty()) return 1.0;
  size_t common = 0;
  for (const std::string& s : a) common += b.contains(s) ? 1 : 0;
  return static_cast<double>(common) / static_cast<double>(a.size() + b.size() - common);
}

}  // namespace

ExtractiveAnswer compose_answer(std::string_view question, const std::vector<std::string>& context_messages,
                                const std::vector<Passage>& ranked, size_t max_sentences) {
  ExtractiveAnswer answer;
  answer.text = kNothingFound;
  Query query = analyze_query(question, context_messages);
  std::vector<WeightedTerm> all = query.question;
  all.insert(all.end(), query.context.begin(), query.context.end());
  const size_t n_question = query.question.size();
  const size_t n = all.size();
  if (n == 0 || max_sentences == 0) return answer;
  std::unordered_map<std::string, size_t> index;
  for (size_t t = 0; t < n; ++t) index.emplace(all[t].stem, t);

  const size_t n_passages = std::min(ranked.size(), kExtractivePassages);
  std::vector<std::vector<bool>> in_heading(n_passages, std::vector<bool>(n, false));
  std::vector<Sentence> sentences;
  for (size_t p = 0; p < n_passages; ++p) {
    for (const std::string& field : {ranked[p].title, ranked[p].heading}) {
      for (const std::string& stem : terms(field)) {
        auto it = index.find(stem);
        if (it != index.end()) in_heading[p][it->second] = true;
      }
    }
    size_t position = 0;
    auto add_terms = [&](Sentence& s, std::string_view text) {
      for (const Term& term : extract_terms(text)) {
        ++s.length;
        s.stems.insert(term.stem);
        auto it = index.find(term.stem);
        // Presence, not count: a sentence is short, saying a word twice does not make it more relevant.
        if (it != index.end()) s.tf[it->second] = 1;
      }
    };
    for (const Block& block : split_blocks(ranked[p].content)) {
      if (block.code) {
        // A code block is one unit, quoted whole after the sentence announcing it (or for a how-to
        // question), never chosen as a sentence.
        Sentence s{p, position++, std::string(block.text), std::vector<int>(n, 0)};
        s.code = true;
        s.fragment = true;
        add_terms(s, code_of(block.text));
        sentences.push_back(std::move(s));
        continue;
      }
      // A defined term supports the sentences of its definition; the first of them says what it is and
      // holds the term as its own ("work_mem (integer)" / "Sets the base maximum amount of memory …").
      std::string_view term = defined_term(block.text);
      std::vector<bool> term_stems(n, false);
      for (const std::string& stem : terms(term)) {
        auto it = index.find(stem);
        if (it != index.end()) term_stems[it->second] = true;
      }
      bool first_of_definition = !term.empty();
      for (std::string_view raw : split_sentences(block.text)) {
        std::string text = clean_sentence(raw);
        if (text.empty()) continue;  // it was only a footnote marker
        bool in_term = !term.empty() && static_cast<size_t>(raw.data() - block.text.data()) < term.size();
        // Short lines and code stay (they can follow a sentence that announces them) but are not chosen
        // for themselves; nor is a pointer to another section.
        Sentence s{p, position++, std::move(text), std::vector<int>(n, 0)};
        s.fragment = s.text.size() > kMaxSentenceChars || split_words(s.text).size() < kMinSentenceWords ||
                     is_fragment(s.text) || is_code_line(s.text) || is_output_line(s.text) || is_pointer(s.text);
        add_terms(s, s.text);
        if (!term.empty() && !in_term) {
          s.support = term_stems;
          if (first_of_definition) {
            for (size_t t = 0; t < n; ++t) s.tf[t] |= term_stems[t] ? 1 : 0;
            first_of_definition = false;
          }
        }
        sentences.push_back(std::move(s));
      }
    }
  }
  if (sentences.empty()) return answer;

  // The statistics are the prose's: a code block is not a sentence.
  double count = 0;
  double avg_length = 0;
  std::vector<double> df(n, 0);
  for (const Sentence& s : sentences) {
    if (s.code) continue;
    count += 1;
    avg_length += static_cast<double>(s.length);
    for (size_t t = 0; t < n; ++t) df[t] += s.tf[t] > 0 ? 1 : 0;
  }
  count = std::max(1.0, count);
  avg_length = std::max(1.0, avg_length / count);
  std::vector<double> idf(n);
  double question_norm = 0, context_norm = 0;
  for (size_t t = 0; t < n; ++t) {
    idf[t] = std::log(1.0 + (count - df[t] + 0.5) / (df[t] + 0.5));
    (t < n_question ? question_norm : context_norm) += all[t].weight * idf[t];
  }
  // The terms a sentence must cover: the question's own; for a follow-up with none ("why?"), those of
  // the newest earlier message (weight 1).
  std::vector<bool> covering(n, false);
  double coverage_norm = 0;
  size_t coverage_terms = 0;
  for (size_t t = 0; t < n; ++t) {
    covering[t] = n_question > 0 ? t < n_question : (query.follow_up && all[t].weight >= 1.0);
    if (!covering[t]) continue;
    coverage_norm += all[t].weight * idf[t];
    ++coverage_terms;
  }
  const size_t needed_distinct = std::min<size_t>(2, coverage_terms);
  // A follow-up with terms of its own must also touch the conversation: "and how do I drop it?" after
  // a question on indexes is answered by DROP INDEX, not DROP TABLE.
  const bool needs_context = query.follow_up && n_question > 0 && n > n_question;

  const bool definition_question = asks_what_something_is(question, n_question);
  const Boosts& boosts = definition_question ? kDefinitionQuestionBoosts : kBoosts;
  std::vector<bool> introduction(n_passages, false);
  for (size_t p = 0; p < n_passages && definition_question; ++p) {
    for (const std::string& term : terms(ranked[p].heading + " " + ranked[p].title)) {
      static const std::unordered_set<std::string> kIntroductions = {
          stem("introduction"), stem("overview"), stem("description"), stem("basics"), stem("concepts")};
      if (kIntroductions.contains(term)) introduction[p] = true;
    }
  }
  std::unordered_set<std::string> question_stems;
  for (const WeightedTerm& t : query.question) question_stems.insert(t.stem);
  static const std::string default_stem = stem("default");
  const bool asks_default = question_stems.contains(default_stem);
  for (Sentence& s : sentences) {
    double question_part = 0, context_part = 0, covered = 0, own_covered = 0;
    size_t distinct = 0;
    bool touches_context = false;
    for (size_t t = 0; t < n; ++t) {
      bool own = s.tf[t] > 0;
      bool support = in_heading[s.passage][t] || (!s.support.empty() && s.support[t]);
      double tf = s.tf[t] / (1.0 - kB + kB * static_cast<double>(s.length) / avg_length) +
                  (support ? kHeadingSupport : 0.0);
      if (tf > 0) {
        double part = all[t].weight * idf[t] * tf * (kK1 + 1.0) / (kK1 + tf);
        (t < n_question ? question_part : context_part) += part;
      }
      if (t >= n_question && (own || support)) touches_context = true;
      if (!covering[t] || (!own && !support)) continue;
      ++distinct;
      covered += all[t].weight * idf[t] * (own ? 1.0 : kHeadingSupport);
      // The term a definition list defines is half the sentence's own: "The default is typically 128
      // megabytes" under "shared_buffers (integer)" answers what shared_buffers' default is.
      bool defined_here = !s.support.empty() && s.support[t];
      if (own || defined_here) own_covered += all[t].weight * idf[t] * (own ? 1.0 : kHeadingSupport);
    }
    double score = 0;
    if (question_norm > 0) score += question_part / question_norm;
    if (context_norm > 0) score += query.context_factor * context_part / context_norm;
    double shape = shape_of(s.text, question_stems, boosts);
    if (s.position < std::size(kLeadBoost)) shape *= kLeadBoost[s.position];
    if (introduction[s.passage]) shape *= kIntroductionBoost;
    if (s.text.find(" | ") != std::string::npos) shape *= kTableRowPenalty;
    if (asks_default && s.stems.contains(default_stem)) shape *= kDefaultBoost;
    s.score = score * shape / (1.0 + kRankPrior * static_cast<double>(s.passage));
    s.eligible = !s.fragment && own_covered > 0 && coverage_norm > 0 &&
                 covered / coverage_norm >= kMinCoverage && own_covered / coverage_norm >= kMinOwnCoverage &&
                 distinct >= needed_distinct && (!needs_context || touches_context);
  }

  // For a how-to question, the code block that does what is asked: the question's terms in the code
  // itself, in the sentence announcing it, or in its heading (each counting less), the question's verb
  // as the statement's first word ("create" → "CREATE INDEX …"), an example rather than a synopsis, short
  // rather than long, from a better-ranked passage.
  const bool how_to = asks_how_to(question);
  size_t best_code = SIZE_MAX;
  double best_code_score = 0;
  // Commands write as one word what a question says in two: "roll back" → ROLLBACK, "set up" → SETUP.
  std::vector<std::pair<std::string, std::pair<size_t, size_t>>> compounds;
  if (how_to) {
    std::vector<Word> words = split_words(question);
    for (size_t w = 0; w + 1 < words.size(); ++w) {
      std::string first = word_at(question, words, w), second = word_at(question, words, w + 1);
      auto a = index.find(stem(first)), b = index.find(stem(second));
      if (a != index.end() && b != index.end()) compounds.push_back({stem(first + second), {a->second, b->second}});
    }
  }
  for (size_t i = 0; how_to && coverage_norm > 0 && i < sentences.size(); ++i) {
    if (!sentences[i].code || sentences[i].text.size() > kMaxCodeChars) continue;
    Sentence code = sentences[i];
    for (const auto& [compound, pair] : compounds) {
      if (!code.stems.contains(compound)) continue;
      code.tf[pair.first] = 1;
      code.tf[pair.second] = 1;
    }
    const Sentence* lead = i > 0 && sentences[i - 1].passage == code.passage && !sentences[i - 1].code
                               ? &sentences[i - 1]
                               : nullptr;
    double covered = 0, own = 0;
    size_t distinct = 0;
    for (size_t t = 0; t < n; ++t) {
      if (!covering[t]) continue;
      double weight = all[t].weight * idf[t];
      double part = code.tf[t] > 0                  ? 1.0
                    : lead && lead->tf[t] > 0        ? 0.75
                    : in_heading[code.passage][t]    ? kHeadingSupport
                                                     : 0.0;
      if (code.tf[t] > 0) own += weight;
      if (part > 0) ++distinct;
      covered += weight * part;
    }
    if (own == 0 || covered / coverage_norm < kMinCodeCoverage || distinct < needed_distinct) continue;
    std::string_view body = code_of(code.text);
    std::vector<Word> words = split_words(body);
    double score = covered / coverage_norm;
    if (!words.empty() && question_stems.contains(stem(word_at(body, words, 0)))) score *= kVerbBoost;
    if (is_synopsis(body)) score *= kSynopsisPenalty;
    if (code.text.size() > kLongCodeChars) score *= kLongCodePenalty;
    score /= 1.0 + kRankPrior * static_cast<double>(code.passage);
    if (score > best_code_score) {
      best_code_score = score;
      best_code = i;
    }
  }

  // With the statement, one or two sentences explain it; without one, the prose must carry the answer.
  if (best_code != SIZE_MAX) max_sentences = std::min(max_sentences, kHowToSentences);
  std::vector<size_t> order;
  for (size_t i = 0; i < sentences.size(); ++i) {
    if (sentences[i].eligible) order.push_back(i);
  }
  if (order.empty() && best_code == SIZE_MAX) return answer;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return sentences[a].score > sentences[b].score; });

  std::vector<size_t> chosen;
  std::unordered_set<size_t> chosen_set;
  size_t chars = 0;
  const double best = order.empty() ? 0.0 : sentences[order[0]].score;
  for (size_t i : order) {
    if (chosen.size() >= max_sentences) break;
    const Sentence& s = sentences[i];
    if (s.score < kRelativeCutoff * best) break;
    bool duplicate = std::any_of(chosen.begin(), chosen.end(), [&](size_t c) {
      return jaccard(sentences[c].stems, s.stems) >= kDuplicateJaccard;
    });
    if (duplicate || (!chosen.empty() && chars + s.text.size() > kMaxAnswerChars)) continue;
    chosen.push_back(i);
    chosen_set.insert(i);
    chars += s.text.size();
  }
  // A sentence that announces what follows ("…, to create a hash index:") brings its continuation: the
  // next sentence, or the next lines of code up to the end of the statement. Without it, it goes.
  // An announcement followed by a code block brings the block ("…, for example." + the example); one
  // whose block is too long to quote goes.
  std::vector<size_t> announced;
  for (size_t i : chosen) {
    const Sentence& s = sentences[i];
    bool into_code = i + 1 < sentences.size() && sentences[i + 1].passage == s.passage && sentences[i + 1].code &&
                     runs_into_code(s.text);
    if (!announces_example(s.text) && !into_code) {
      announced.push_back(i);
      continue;
    }
    if (i + 1 < sentences.size() && sentences[i + 1].passage == s.passage && sentences[i + 1].code) {
      if (sentences[i + 1].text.size() <= kMaxCodeChars && !chosen_set.contains(i + 1)) {
        announced.push_back(i);
        announced.push_back(i + 1);
        chosen_set.insert(i + 1);
        // What the manual says of its example right after it ("This is a bad idea!", "That will cause
        // all existing rows … to be filled with null values") belongs to it.
        size_t after = i + 2;
        if (after < sentences.size() && sentences[after].passage == s.passage && !sentences[after].code &&
            !chosen_set.contains(after) && sentences[after].text.size() <= kMaxCommentChars &&
            starts_by_pointing_back(sentences[after].text)) {
          announced.push_back(after);
          chosen_set.insert(after);
        }
      }
      continue;
    }
    std::vector<size_t> continuation;
    size_t taken = 0;
    for (size_t next = i + 1; next < sentences.size() && sentences[next].passage == s.passage; ++next) {
      const Sentence& line = sentences[next];
      if (line.code) break;
      bool code = is_code_line(line.text);
      if (chosen_set.contains(next) || taken + line.text.size() > kMaxContinuationChars ||
          (!continuation.empty() && !code)) {
        break;
      }
      continuation.push_back(next);
      taken += line.text.size();
      if (!code || line.text.back() == ';') break;
    }
    if (continuation.empty()) continue;
    announced.push_back(i);
    for (size_t c : continuation) {
      announced.push_back(c);
      chosen_set.insert(c);
    }
  }
  chosen = std::move(announced);
  // The how-to code, with the sentence announcing it, unless a code block as good is already there; its
  // passage opens the answer.
  if (best_code != SIZE_MAX && !chosen_set.contains(best_code)) {
    const Sentence& code = sentences[best_code];
    size_t lead = best_code - 1;
    bool has_lead = best_code > 0 && sentences[lead].passage == code.passage && !sentences[lead].code &&
                    (announces_example(sentences[lead].text) || runs_into_code(sentences[lead].text)) &&
                    !is_pointer(sentences[lead].text);
    if (has_lead && !chosen_set.contains(lead)) {
      chosen.push_back(lead);
      chosen_set.insert(lead);
    }
    chosen.push_back(best_code);
    chosen_set.insert(best_code);
    double top = std::max(best, 1e-9) * 1.05;
    sentences[best_code].score = top;
    if (has_lead) sentences[lead].score = std::max(sentences[lead].score, top);
  }
  // Readable order: passage by passage, the passage holding the best sentence first (so the answer
  // opens with its best sentence), then by rank; document order inside a passage.
  std::vector<double> passage_best(n_passages, 0.0);
  for (size_t i : chosen)
    passage_best[sentences[i].passage] = std::max(passage_best[sentences[i].passage], sentences[i].score);
  std::sort(chosen.begin(), chosen.end(), [&](size_t a, size_t b) {
    size_t pa = sentences[a].passage, pb = sentences[b].passage;
    if (pa != pb) return passage_best[pa] != passage_best[pb] ? passage_best[pa] > passage_best[pb] : pa < pb;
    return sentences[a].position < sentences[b].position;
  });

  std::string text;
  size_t current_passage = SIZE_MAX;
  int citation = 0;
  bool after_code = false;
  for (size_t k = 0; k < chosen.size(); ++k) {
    const Sentence& s = sentences[chosen[k]];
    bool new_passage = s.passage != current_passage;
    if (new_passage) {
      current_passage = s.passage;
      const Passage& p = ranked[s.passage];
      citation = static_cast<int>(answer.citations.size()) + 1;
      // The snippet shows the first sentence cited: the window with the most of its terms.
      std::vector<std::string> cited(s.stems.begin(), s.stems.end());
      answer.citations.push_back(
          {citation, p.title, p.source, make_snippet(p, cited, kDefaultSnippetChars), p.chunk_id, p.heading});
      if (!text.empty()) text += "\n\n";
    } else if (s.code || after_code) {
      text += "\n\n";
    } else {
      text += ' ';
    }
    after_code = s.code;
    if (s.code) {
      // A block quoted without its announcement is introduced by its source, which carries the marker.
      bool announced_here = !new_passage && k > 0 && sentences[chosen[k - 1]].position + 1 == s.position;
      if (!announced_here) {
        const Passage& p = ranked[s.passage];
        std::string label = !p.title.empty() ? p.title : !p.heading.empty() ? p.heading : p.source;
        text += "From \xE2\x80\x9C" + clean_sentence(label) + "\xE2\x80\x9D: [" + std::to_string(citation) + "]\n\n";
      }
      text += s.text;
      continue;
    }
    if (k + 1 < chosen.size() && sentences[chosen[k + 1]].code && sentences[chosen[k + 1]].passage == s.passage &&
        sentences[chosen[k + 1]].position == s.position + 1) {
      text += s.text + " [" + std::to_string(citation) + "]";
      continue;
    }
    // An announcement and the lines of one code statement share the marker put after the last.
    bool next_follows = k + 1 < chosen.size() && sentences[chosen[k + 1]].passage == s.passage &&
                        sentences[chosen[k + 1]].position == s.position + 1;
    bool continued = next_follows && (s.text.back() == ':' || (is_code_line(s.text) && s.text.back() != ';' &&
                                                               is_code_line(sentences[chosen[k + 1]].text)));
    if (continued) {
      text += s.text;
      continue;
    }
    text += finish_sentence(s.text);
    text += " [" + std::to_string(citation) + "]";
  }
  if (!sentences[chosen[0]].code && starts_by_pointing_back(sentences[chosen[0]].text)) {
    const Passage& p = ranked[sentences[chosen[0]].passage];
    std::string label = !p.title.empty() ? p.title : !p.heading.empty() ? p.heading : p.source;
    if (!label.empty()) text = "From \xE2\x80\x9C" + clean_sentence(label) + "\xE2\x80\x9D: " + text;
  }
  answer.text = std::move(text);
  answer.found = true;
  return answer;
}

}  // namespace chatstream::rag
