#include "db/client_error.hpp"

#include "obs/log.hpp"

namespace chatstream::db {

Error client_error(const QueryError& error, std::string_view what_failed) {
  switch (error.code) {
    case Errc::kOverloaded:
      return Error{Errc::kOverloaded, "The server is busy. Please retry in a moment."};
    case Errc::kDatabaseUnavailable:
      return Error{Errc::kDatabaseUnavailable, "The database is unavailable. Please retry in a moment."};
    default:
      log::error("database statement failed",
                 log::field("error", error.message) + "," + log::field("sqlstate", error.sqlstate));
      return Error{Errc::kInternal, "Something went wrong while " + std::string(what_failed) + "."};
  }
}

}  // namespace chatstream::db
