#pragma once
// The text given to PostgreSQL's websearch_to_tsquery(config, text) to find candidate chunks.

#include <string>
#include <string_view>
#include <vector>

namespace chatstream::rag {

// At most this many words go into one search query.
inline constexpr size_t kMaxSearchWords = 24;
// Longer words are dropped (PostgreSQL ignores words over 2 KiB anyway; none of this size is a word).
inline constexpr size_t kMaxSearchWordBytes = 64;

// The significant words of `question` (lowercased, no stopwords or question fillers, one per stem —
// the surface form, not our stem, because PostgreSQL stems with the session's own configuration)
// joined with " or ": retrieval wants recall, reranking restores precision. When the question is a
// follow-up (is_follow_up()), the words of the previous user message are added after its own — and
// of the one before that too, if the previous message was itself a follow-up (up to three back).
// `earlier_user_messages` are oldest first.
//
// The result holds only letters, digits, spaces and the operator "or", so websearch_to_tsquery can
// never misread it (no quotes, no "-" negation, no stray "or"/"and" words). It is empty when there is
// nothing to search for; the caller then skips retrieval.
std::string search_query(std::string_view question, const std::vector<std::string>& earlier_user_messages);

// The retrieval query: $1 the text search configuration (regconfig), $2 search_query()'s text, $3 how
// many candidates, $4 how many passages an answer keeps (--rerank-keep); columns chunk id, document
// title, source (the document's link with the chunk's
// anchor when it was ingested with --base-url, else its path), heading, content, rank (higher is
// better).
//
// Why two stages: with "or" between the words (for recall), ts_rank_cd ranks by how densely a chunk
// holds ANY of them, so "How do I rename a table?" is answered by the chunks saying "table" most often
// (the manual says it in thousands of chunks), and the section on renaming a table never reaches the
// reranker. ts_rank has no corpus statistics; lexeme_stats has them (sql/003_lexeme_stats.sql). So the
// 10 × $3 densest chunks are taken first, then ranked by the IDF of the question's lexemes each holds
// (half as much again in its heading), plus ts_rank_cd, and the best $3 kept. The second stage reads
// 10 × $3 rows.
//
// The first stage looks among the chunks holding EVERY word first (the same words joined by "and":
// usually a few dozen chunks, where "or" matches thousands), and among those holding any word only
// when fewer chunks hold them all than an answer keeps ($4: a follow-up's added words, a word the
// manual never uses). Ranking every chunk that holds any word was most of PostgreSQL's CPU per
// question; with the every-word stage it is about half, and the quality score rose (bench/README.md,
// "The embedded answerer").
inline constexpr const char* kRetrieveSql = R"sql(
WITH terms AS MATERIALIZED (
  SELECT to_tsquery('simple', quote_literal(t.lexeme)) AS term,
         to_tsquery('simple', quote_literal(t.lexeme) || ':A') AS heading_term,
         ln(1 + (coalesce(total.chunks, 0) + 1)::float8 / (coalesce(s.chunks, 0) + 1)) AS idf
  FROM unnest(tsvector_to_array(to_tsvector($1::regconfig, $2))) AS t(lexeme)
  LEFT JOIN lexeme_stats s ON s.lexeme = t.lexeme
  LEFT JOIN lexeme_stats total ON total.lexeme = ''
), every_word AS MATERIALIZED (
  SELECT c.id, c.tsv, ts_rank_cd(c.tsv, q) AS rank
  FROM websearch_to_tsquery($1::regconfig, replace($2, ' or ', ' ')) AS every, websearch_to_tsquery($1::regconfig, $2) AS q,
       chunks c
  WHERE c.tsv @@ every
  ORDER BY rank DESC, c.id
  LIMIT 10 * $3::integer
), candidates AS MATERIALIZED (
  SELECT * FROM every_word
  UNION ALL
  (SELECT c.id, c.tsv, ts_rank_cd(c.tsv, q) AS rank
   FROM websearch_to_tsquery($1::regconfig, $2) AS q, chunks c
   WHERE c.tsv @@ q AND (SELECT count(*) FROM every_word) < $4::integer
     AND c.id NOT IN (SELECT id FROM every_word)
   ORDER BY rank DESC, c.id
   LIMIT 10 * $3::integer)
)
SELECT c.id, d.title, coalesce(d.url || CASE WHEN c.anchor <> '' THEN '#' || c.anchor ELSE '' END, d.source),
       c.heading, c.content,
       x.rank + (SELECT coalesce(sum(t.idf * CASE WHEN x.tsv @@ t.heading_term THEN 1.5 ELSE 1 END), 0)
                 FROM terms t WHERE x.tsv @@ t.term) AS rank
FROM candidates x JOIN chunks c ON c.id = x.id JOIN documents d ON d.id = c.document_id
ORDER BY rank DESC, c.id
LIMIT $3::integer)sql";

}  // namespace chatstream::rag
