#pragma once
// A candidate chunk of the knowledge base as retrieval returns it.

#include <cstdint>
#include <string>

namespace chatstream::rag {

struct Passage {
  int64_t chunk_id = 0;
  std::string title;    // the document's title
  std::string source;   // where the document came from (its path or URL)
  std::string heading;  // the section heading of the chunk, may be empty
  std::string content;
  double db_rank = 0;  // PostgreSQL's ts_rank, higher is better
};

}  // namespace chatstream::rag
