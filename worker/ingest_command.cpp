#include "ingest_command.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "ingest/document.hpp"

namespace chatstream {

namespace {
namespace fs = std::filesystem;

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Res = std::unique_ptr<PGresult, ResultDeleter>;

bool ingestible(const fs::path& path) {
  std::string ext = path.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".html" || ext == ".htm" || ext == ".md" || ext == ".markdown" || ext == ".txt";
}

// Bumped whenever parsing or chunking changes, so `ingest` reloads files whose bytes did not change.
// chunking-2: code blocks fenced and kept whole, heading paths, table rows, section anchors.
constexpr const char* kChunkingVersion = "chunking-3";

// FNV-1a, 64 bits, over the chunking version and the bytes: enough to notice that a file (or the way
// it is chunked) changed since it was loaded.
// The link is hashed too: ingesting again with another --base-url updates the links.
std::string content_hash(const std::string& bytes, const std::string& url) {
  uint64_t hash = 1469598103934665603ULL;
  for (const char* p = kChunkingVersion; *p; ++p) {
    hash ^= static_cast<unsigned char>(*p);
    hash *= 1099511628211ULL;
  }
  for (unsigned char c : url + '\n') {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

std::string error_of(PGconn* conn) {
  std::string text = PQerrorMessage(conn);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

Res exec(PGconn* conn, const char* sql, std::initializer_list<const char*> params) {
  std::vector<const char*> values(params);
  return Res(PQexecParams(conn, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0));
}

bool ok(const Res& result) {
  ExecStatusType status = PQresultStatus(result.get());
  return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

enum class Outcome { kLoaded, kUnchanged, kEmpty, kFailed };

Outcome load_file(PGconn* conn, const fs::path& path, const std::string& url, size_t* chunk_count) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "chatstream ingest: cannot read %s\n", path.c_str());
    return Outcome::kFailed;
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  std::string contents = buffer.str();
  std::string source = path.string();
  std::string hash = content_hash(contents, url);

  Res existing = exec(conn, "SELECT content_hash FROM documents WHERE source = $1", {source.c_str()});
  if (!ok(existing)) {
    std::fprintf(stderr, "chatstream ingest: %s\n", error_of(conn).c_str());
    return Outcome::kFailed;
  }
  if (PQntuples(existing.get()) == 1 && hash == PQgetvalue(existing.get(), 0, 0)) return Outcome::kUnchanged;

  auto document = ingest::parse_file(source, contents);
  if (!document) {
    std::fprintf(stderr, "chatstream ingest: %s: %s\n", source.c_str(), document.error().message.c_str());
    return Outcome::kFailed;
  }
  if (document->chunks.empty()) return Outcome::kEmpty;

  // One transaction per file: a document is replaced whole or not at all.
  if (!ok(exec(conn, "BEGIN", {}))) return Outcome::kFailed;
  Res deleted = exec(conn, "DELETE FROM documents WHERE source = $1", {source.c_str()});
  Res inserted = exec(conn,
                      "INSERT INTO documents (source, title, content_hash, url) VALUES ($1, $2, $3, NULLIF($4, '')) "
                      "RETURNING id",
                      {source.c_str(), document->title.c_str(), hash.c_str(), url.c_str()});
  if (!ok(deleted) || !ok(inserted)) {
    std::fprintf(stderr, "chatstream ingest: %s: %s\n", source.c_str(), error_of(conn).c_str());
    Res rollback = exec(conn, "ROLLBACK", {});
    return Outcome::kFailed;
  }
  std::string document_id = PQgetvalue(inserted.get(), 0, 0);
  for (size_t i = 0; i < document->chunks.size(); ++i) {
    const ingest::Chunk& chunk = document->chunks[i];
    std::string ordinal = std::to_string(i);
    std::string anchor = url.empty() ? std::string() : usable_anchor(chunk.anchor);
    Res row = exec(conn, "INSERT INTO chunks (document_id, ordinal, heading, content, anchor) VALUES ($1, $2, $3, $4, $5)",
                   {document_id.c_str(), ordinal.c_str(), chunk.heading.c_str(), chunk.content.c_str(), anchor.c_str()});
    if (!ok(row)) {
      std::fprintf(stderr, "chatstream ingest: %s: %s\n", source.c_str(), error_of(conn).c_str());
      Res rollback = exec(conn, "ROLLBACK", {});
      return Outcome::kFailed;
    }
  }
  if (!ok(exec(conn, "COMMIT", {}))) return Outcome::kFailed;
  *chunk_count += document->chunks.size();
  return Outcome::kLoaded;
}
}  // namespace

std::string source_link(const std::string& base_url, const fs::path& root, const fs::path& path) {
  if (base_url.empty()) return {};
  std::string relative = path.lexically_relative(root).generic_string();
  if (relative.empty() || relative == ".") relative = path.filename().string();
  std::string url = base_url;
  if (!url.ends_with('/')) url += '/';
  static const char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : relative) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      url += static_cast<char>(c);
    } else {
      url += '%';
      url += kHex[c >> 4];
      url += kHex[c & 15];
    }
  }
  return url;
}

std::string usable_anchor(const std::string& anchor) {
  if (anchor.starts_with("id")) {
    bool generated = anchor.size() > 2 && std::all_of(anchor.begin() + 2, anchor.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-';
    });
    if (generated) return {};
  }
  return anchor;
}

int run_ingest(const Config& config, const std::vector<std::string>& paths) {
  auto started = std::chrono::steady_clock::now();
  std::unique_ptr<PGconn, ConnDeleter> conn(PQconnectdb(config.database_url.c_str()));
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    std::fprintf(stderr, "chatstream ingest: cannot connect to the database: %s\n", error_of(conn.get()).c_str());
    return 1;
  }
  // Each file with the directory it was found under (its link is its path relative to it).
  std::vector<std::pair<fs::path, fs::path>> files;
  for (const std::string& argument : paths) {
    std::error_code error;
    fs::path path = fs::absolute(argument, error);
    if (fs::is_directory(path, error)) {
      for (const auto& entry : fs::recursive_directory_iterator(path, error)) {
        if (entry.is_regular_file() && ingestible(entry.path())) files.emplace_back(entry.path(), path);
      }
    } else if (fs::is_regular_file(path, error)) {
      if (!ingestible(path)) {
        std::fprintf(stderr, "chatstream ingest: %s: not a .html, .htm, .md, .markdown or .txt file\n", path.c_str());
        return 1;
      }
      files.emplace_back(path, path.parent_path());
    } else {
      std::fprintf(stderr, "chatstream ingest: %s: no such file or directory\n", argument.c_str());
      return 1;
    }
  }
  std::sort(files.begin(), files.end());
  size_t loaded = 0, unchanged = 0, empty = 0, failed = 0, chunks = 0;
  for (const auto& [file, root] : files) {
    switch (load_file(conn.get(), file, source_link(config.ingest_base_url, root, file), &chunks)) {
      case Outcome::kLoaded: ++loaded; break;
      case Outcome::kUnchanged: ++unchanged; break;
      case Outcome::kEmpty: ++empty; break;
      case Outcome::kFailed: ++failed; break;
    }
  }
  // Retrieval weighs words by how many chunks hold them (rag/search_query.hpp): counted again when
  // the chunks changed, or never counted yet.
  Res counted = exec(conn.get(), "SELECT count(*) FROM lexeme_stats", {});
  bool never_counted = ok(counted) && std::string(PQgetvalue(counted.get(), 0, 0)) == "0";
  if (loaded > 0 || never_counted) {
    // Several statements: the simple protocol (PQexec), which runs them as one transaction.
    Res refreshed(PQexec(conn.get(),
                         "TRUNCATE lexeme_stats; "
                         "INSERT INTO lexeme_stats SELECT word, ndoc FROM ts_stat('SELECT tsv FROM chunks'); "
                         "INSERT INTO lexeme_stats SELECT '', count(*) FROM chunks"));
    if (!ok(refreshed)) {
      std::fprintf(stderr, "chatstream ingest: counting the words: %s\n", error_of(conn.get()).c_str());
      ++failed;
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("chatstream ingest: %zu file(s) loaded (%zu chunks), %zu unchanged, %zu without text, %zu failed, %.1f s\n",
              loaded, chunks, unchanged, empty, failed, seconds);
  return failed == 0 ? 0 : 1;
}

}  // namespace chatstream
