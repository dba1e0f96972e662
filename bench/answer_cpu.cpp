// CPU per answer of the embedded answerer's own work: reranking the retrieved candidates and choosing
// the sentences (rag::rerank + rag::compose_answer), on the candidates the full-text search really returns
// for the questions of tests/quality/questions.json over the ingested PostgreSQL manual.
//
//   build/answer_cpu DATABASE_URL [QUESTIONS_JSON] [REPEAT]
//
// The candidates are fetched once per question with the query the worker runs (20 candidates, english),
// then each question is answered REPEAT times (default 200); the CPU time of the thread is measured around
// each answer. Prints mean, p50, p99 and max per answer, and the question with the slowest answer.

#include <libpq-fe.h>
#include <simdjson.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "rag/extractive.hpp"
#include "rag/reranker.hpp"
#include "rag/search_query.hpp"

namespace {



double thread_cpu_us() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: answer_cpu DATABASE_URL [QUESTIONS_JSON] [REPEAT]\n");
    return 2;
  }
  std::string questions_path = argc > 2 ? argv[2] : "tests/quality/questions.json";
  int repeat = argc > 3 ? std::max(1, std::atoi(argv[3])) : 200;

  simdjson::padded_string json;
  if (simdjson::padded_string::load(questions_path).get(json)) {
    std::fprintf(stderr, "answer_cpu: cannot read %s\n", questions_path.c_str());
    return 2;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json).get(root)) {
    std::fprintf(stderr, "answer_cpu: %s is not JSON\n", questions_path.c_str());
    return 2;
  }
  std::vector<std::string> questions;
  for (simdjson::dom::element item : root["questions"].get_array()) {
    std::string_view q;
    if (!item["q"].get(q)) questions.emplace_back(q);
  }

  PGconn* conn = PQconnectdb(argv[1]);
  if (PQstatus(conn) != CONNECTION_OK) {
    std::fprintf(stderr, "answer_cpu: %s", PQerrorMessage(conn));
    return 2;
  }
  std::vector<std::vector<chatstream::rag::Passage>> candidates;
  for (const std::string& question : questions) {
    std::string text = chatstream::rag::search_query(question, {});
    const char* params[] = {"english", text.c_str(), "20", "4"};  // --retrieval-candidates, --rerank-keep
    PGresult* result = PQexecParams(conn, chatstream::rag::kRetrieveSql, 4, nullptr, params, nullptr, nullptr, 0);
    if (PQresultStatus(result) != PGRES_TUPLES_OK) {
      std::fprintf(stderr, "answer_cpu: %s", PQerrorMessage(conn));
      return 2;
    }
    std::vector<chatstream::rag::Passage> passages;
    for (int row = 0; row < PQntuples(result); ++row) {
      passages.push_back({std::stoll(PQgetvalue(result, row, 0)), PQgetvalue(result, row, 1),
                          PQgetvalue(result, row, 2), PQgetvalue(result, row, 3), PQgetvalue(result, row, 4),
                          std::stod(PQgetvalue(result, row, 5))});
    }
    PQclear(result);
    candidates.push_back(std::move(passages));
  }
  PQfinish(conn);

  std::vector<double> samples;
  double slowest = 0;
  size_t slowest_question = 0;
  size_t characters = 0;
  for (int r = 0; r < repeat; ++r) {
    for (size_t q = 0; q < questions.size(); ++q) {
      double before = thread_cpu_us();
      auto ranked = chatstream::rag::rerank(questions[q], {}, candidates[q], 4, chatstream::rag::kMinRerankScore);
      std::vector<chatstream::rag::Passage> kept;
      for (const auto& entry : ranked) kept.push_back(candidates[q][entry.index]);
      auto answer = chatstream::rag::compose_answer(questions[q], {}, kept);
      double spent = thread_cpu_us() - before;
      characters += answer.text.size();
      samples.push_back(spent);
      if (spent > slowest) {
        slowest = spent;
        slowest_question = q;
      }
    }
  }
  std::sort(samples.begin(), samples.end());
  double sum = 0;
  for (double s : samples) sum += s;
  auto at = [&](double f) { return samples[std::min(samples.size() - 1, static_cast<size_t>(f * static_cast<double>(samples.size())))]; };
  std::printf("answer_cpu: %zu questions x %d, 20 candidates each: rerank + compose_answer CPU per answer (us): "
              "mean %.0f  p50 %.0f  p99 %.0f  max %.0f (\"%s\")  [%zu chars answered]\n",
              questions.size(), repeat, sum / static_cast<double>(samples.size()), at(0.5), at(0.99), slowest,
              questions[slowest_question].c_str(), characters);
  return 0;
}
