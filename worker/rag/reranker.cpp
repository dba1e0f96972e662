#include "rag/reranker.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "rag/query.hpp"
#include "rag/text.hpp"

// Why BM25 here, when PostgreSQL already ranked the candidates: ts_rank knows nothing of how common a
// word is (it has no corpus statistics), so a question's "postgresql" weighs as much as its
// "autovacuum". BM25's IDF, computed over the candidate set, restores term specificity without another
// query: the candidates all match the question somewhere, and the IDF tells which of the question's
// terms separate them. (A cross-encoder would rank better still, but needs model weights, which the
// embedded provider must not.)
//
// BM25F for the fields (Robertson, Zaragoza & Taylor, 2004): a title or heading is short and written to
// say what the section is about, so a term there is strong evidence and counts double. Field
// frequencies are added before the saturation, so a term in both the heading and the text is not
// counted as two independent matches. The heading's terms that the title holds (a heading path ends
// with the page's own title) are counted once, in the title.
//
// Proximity (Tao & Zhai, SIGIR 2007, found the minimum distance between two query terms the most
// useful proximity signal; Büttcher, Clarke & Lushman's BM25TP, 2006, adds a per-pair bonus): for each
// pair of question terms present in the text, the smallest window covering both gives 1/distance,
// weighted by the rarer term's IDF. The bonus is bounded (kProximityWeight) and exists only for pairs
// that are both present, so it reorders passages that match equally well but never lifts a passage
// missing a term above one that has it.
//
// A small bonus for the share of the title's words the question holds prefers the page about what is
// asked over the page about a near variant of it ("ALTER TABLE" over "ALTER FOREIGN TABLE").
//
// Retrieval's rank (corpus IDF, headings) is added, relative to the best candidate's, with a small
// weight: it breaks near-ties the candidate-set IDF cannot see.
//
// Question and context are scored as two parts, each normalised by its best possible value, then
// added as question + factor × context (rag/query.hpp): a passage matching the whole conversation but
// not the question cannot beat one that answers the question.

namespace chatstream::rag {

namespace {

constexpr double kK1 = 1.2;  // term-frequency saturation: the usual value, a 3rd occurrence adds little
constexpr double kB = 0.75;  // length normalisation: the usual value; chunks vary from 100 B to 1.2 kB
constexpr double kTitleWeight = 2.0;
constexpr double kHeadingWeight = 2.0;
constexpr double kProximityWeight = 0.3;
constexpr size_t kMaxProximityTerms = 8;  // the rarest question terms; pairs grow quadratically
// Retrieval's own rank, relative to the best candidate's: it knows the IDF of the whole corpus (the
// candidates' IDF here only separates them) and the headings (rag/search_query.hpp).
constexpr double kRetrievalWeight = 0.15;
// The share of the title's words the question holds: a page about X ("ALTER TABLE") over a page about a
// near variant of X ("ALTER FOREIGN TABLE") when the question does not name the variant.
constexpr double kTitlePrecisionWeight = 0.1;

struct Field {
  std::vector<int> tf;  // per query term
  size_t length = 0;    // terms in the field
};

struct Analysis {
  Field title, heading, content;
  std::vector<std::vector<size_t>> positions;  // per query term, in the content
};

Field analyze_field(std::string_view text, const std::unordered_map<std::string, size_t>& index, size_t n,
                    std::vector<std::vector<size_t>>* positions, const std::vector<std::string>* except = nullptr) {
  Field field;
  field.tf.assign(n, 0);
  for (const Term& term : extract_terms(text)) {
    if (except && std::find(except->begin(), except->end(), term.stem) != except->end()) continue;
    ++field.length;
    auto it = index.find(term.stem);
    if (it == index.end()) continue;
    ++field.tf[it->second];
    if (positions) (*positions)[it->second].push_back(term.position);
  }
  return field;
}

size_t min_distance(const std::vector<size_t>& a, const std::vector<size_t>& b) {
  size_t best = SIZE_MAX;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    size_t d = a[i] > b[j] ? a[i] - b[j] : b[j] - a[i];
    best = std::min(best, d);
    if (a[i] < b[j])
      ++i;
    else
      ++j;
  }
  return best;
}

}  // namespace

std::vector<Ranked> rerank(std::string_view question, const std::vector<std::string>& context_messages,
                           const std::vector<Passage>& candidates, size_t keep, double min_score) {
  if (keep == 0 || candidates.empty()) return {};
  Query query = analyze_query(question, context_messages);
  std::vector<WeightedTerm> all = query.question;
  all.insert(all.end(), query.context.begin(), query.context.end());
  const size_t n_question = query.question.size();
  const size_t n = all.size();
  std::unordered_map<std::string, size_t> index;
  for (size_t t = 0; t < n; ++t) index.emplace(all[t].stem, t);

  std::vector<Analysis> analyses(candidates.size());
  double avg_title = 0, avg_heading = 0, avg_content = 0;
  std::vector<size_t> df(n, 0);
  for (size_t i = 0; i < candidates.size(); ++i) {
    const Passage& p = candidates[i];
    Analysis& a = analyses[i];
    a.positions.assign(n, {});
    a.title = analyze_field(p.title, index, n, nullptr);
    // The heading is a path that usually ends with the page's title ("Chapter 11. Indexes › 11.8. Partial
    // Indexes"): what the title says already counts once.
    std::vector<std::string> title_terms = terms(p.title);
    a.heading = analyze_field(p.heading, index, n, nullptr, &title_terms);
    a.content = analyze_field(p.content, index, n, &a.positions);
    avg_title += static_cast<double>(a.title.length);
    avg_heading += static_cast<double>(a.heading.length);
    avg_content += static_cast<double>(a.content.length);
    for (size_t t = 0; t < n; ++t) {
      if (a.title.tf[t] + a.heading.tf[t] + a.content.tf[t] > 0) ++df[t];
    }
  }
  const double count = static_cast<double>(candidates.size());
  avg_title = std::max(1.0, avg_title / count);
  avg_heading = std::max(1.0, avg_heading / count);
  avg_content = std::max(1.0, avg_content / count);

  std::vector<double> idf(n);
  for (size_t t = 0; t < n; ++t) {
    double d = static_cast<double>(df[t]);
    idf[t] = std::log(1.0 + (count - d + 0.5) / (d + 0.5));  // never negative, unlike Robertson's
  }
  double question_norm = 0, context_norm = 0;
  for (size_t t = 0; t < n; ++t) (t < n_question ? question_norm : context_norm) += all[t].weight * idf[t];

  // The proximity pairs: the rarest question terms.
  std::vector<size_t> near_terms(n_question);
  for (size_t t = 0; t < n_question; ++t) near_terms[t] = t;
  std::stable_sort(near_terms.begin(), near_terms.end(), [&](size_t x, size_t y) { return idf[x] > idf[y]; });
  if (near_terms.size() > kMaxProximityTerms) near_terms.resize(kMaxProximityTerms);
  double pairs_norm = 0;
  for (size_t x = 0; x < near_terms.size(); ++x) {
    for (size_t y = x + 1; y < near_terms.size(); ++y)
      pairs_norm += std::min(idf[near_terms[x]], idf[near_terms[y]]);
  }

  auto normalized = [](const Field& f, size_t t, double avg) {
    if (f.tf[t] == 0) return 0.0;
    return f.tf[t] / (1.0 - kB + kB * static_cast<double>(f.length) / avg);
  };

  double best_db_rank = 0;
  for (const Passage& p : candidates) best_db_rank = std::max(best_db_rank, p.db_rank);
  auto title_precision = [&](const Passage& p) {
    size_t words = 0, asked = 0;
    for (const std::string& stem : terms(p.title)) {
      if (std::any_of(stem.begin(), stem.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;  // "11.8."
      ++words;
      asked += index.contains(stem) && index.at(stem) < n_question ? 1 : 0;
    }
    return words == 0 ? 0.0 : static_cast<double>(asked) / static_cast<double>(words);
  };

  std::vector<Ranked> ranked;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const Analysis& a = analyses[i];
    double question_part = 0, context_part = 0;
    for (size_t t = 0; t < n; ++t) {
      double tf = kTitleWeight * normalized(a.title, t, avg_title) +
                  kHeadingWeight * normalized(a.heading, t, avg_heading) +
                  normalized(a.content, t, avg_content);
      if (tf == 0) continue;
      double s = all[t].weight * idf[t] * tf * (kK1 + 1.0) / (kK1 + tf);
      (t < n_question ? question_part : context_part) += s;
    }
    double score = 0;
    if (question_norm > 0) score += question_part / question_norm;
    if (context_norm > 0) score += query.context_factor * context_part / context_norm;
    if (pairs_norm > 0) {
      double closeness = 0;
      for (size_t x = 0; x < near_terms.size(); ++x) {
        for (size_t y = x + 1; y < near_terms.size(); ++y) {
          const auto& pa = a.positions[near_terms[x]];
          const auto& pb = a.positions[near_terms[y]];
          if (pa.empty() || pb.empty()) continue;
          size_t d = std::max<size_t>(1, min_distance(pa, pb));
          closeness += std::min(idf[near_terms[x]], idf[near_terms[y]]) / static_cast<double>(d);
        }
      }
      score += kProximityWeight * closeness / pairs_norm;
    }
    // Only for a passage that matches at all: retrieval's rank cannot lift one that does not.
    if (best_db_rank > 0 && score > 0) score += kRetrievalWeight * std::max(0.0, candidates[i].db_rank) / best_db_rank;
    if (score > 0) score += kTitlePrecisionWeight * title_precision(candidates[i]);
    if (score >= min_score) ranked.push_back({i, score});
  }
  std::sort(ranked.begin(), ranked.end(), [&](const Ranked& x, const Ranked& y) {
    if (x.score != y.score) return x.score > y.score;
    if (candidates[x.index].db_rank != candidates[y.index].db_rank) {
      return candidates[x.index].db_rank > candidates[y.index].db_rank;
    }
    return x.index < y.index;
  });
  if (ranked.size() > keep) ranked.resize(keep);
  return ranked;
}

}  // namespace chatstream::rag
