#include "rag/query.hpp"

#include <algorithm>
#include <unordered_set>

#include "rag/text.hpp"

namespace chatstream::rag {

namespace {

// Words that refer to something said before, or continue it.
const std::unordered_set<std::string_view>& back_references() {
  static const std::unordered_set<std::string_view> set = {
      "it",    "its",    "this",   "that",    "these", "those", "they",     "them",    "their",
      "one",   "ones",   "former", "latter",  "same",  "above", "previous", "first",   "second",
      "third", "fourth", "last",   "another", "else",  "there", "then",     "instead", "also",
  };
  return set;
}

// Words that, first in the question, continue the conversation ("and …", "but …", "so …").
const std::unordered_set<std::string_view>& continuations() {
  static const std::unordered_set<std::string_view> set = {"and", "but", "so", "also", "or", "then"};
  return set;
}

bool contains_stem(const std::vector<WeightedTerm>& terms, const std::string& stem) {
  return std::any_of(terms.begin(), terms.end(), [&](const WeightedTerm& t) { return t.stem == stem; });
}

}  // namespace

bool is_follow_up(std::string_view question) {
  std::vector<std::string> words;
  for (const Word& w : split_words(question)) {
    words.push_back(lowercase_ascii(question.substr(w.begin, w.end - w.begin)));
  }
  if (words.empty()) return false;
  size_t significant = question_terms(question).size();
  // Nothing to search for: a follow-up when it asks something ("why?", "and then?", "tell me more"),
  // not when it is only politeness ("thanks!", "hello").
  if (significant == 0) {
    static const std::unordered_set<std::string_view> kAsking = {"why",      "how", "what", "when", "where",
                                                                 "which",    "who", "more", "else", "again",
                                                                 "continue", "go",  "then"};
    return question.find('?') != std::string_view::npos ||
           std::any_of(words.begin(), words.end(), [](const std::string& w) { return kAsking.contains(w); });
  }
  if (significant > 3) return false;
  if (continuations().contains(words[0])) return true;
  if (words.size() >= 2 && (words[0] == "what" || words[0] == "how") && words[1] == "about") return true;
  return std::any_of(words.begin(), words.end(),
                     [](const std::string& w) { return back_references().contains(w); });
}

Query analyze_query(std::string_view question, const std::vector<std::string>& context_messages) {
  Query query;
  for (std::string& stem : question_terms(question)) query.question.push_back({std::move(stem), 1.0});
  query.follow_up = is_follow_up(question);
  query.context_factor = query.follow_up ? kFollowUpContextFactor : kContextFactor;
  double weight = 1.0;
  for (auto message = context_messages.rbegin();
       message != context_messages.rend() && query.context.size() < kMaxContextTerms; ++message) {
    for (std::string& stem : question_terms(*message)) {
      if (query.context.size() >= kMaxContextTerms) break;
      if (contains_stem(query.question, stem) || contains_stem(query.context, stem)) continue;
      query.context.push_back({std::move(stem), weight});
    }
    weight *= kContextDecay;
  }
  return query;
}

}  // namespace chatstream::rag
