#pragma once
// A static table of (method, path pattern) -> handler, built once at worker start. A pattern segment
// "{name}" matches one non-empty path segment and is handed to the handler as a parameter.
// A path that matches with another method gives 405 and the Allow list; no match gives 404.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace chatstream::http {

class Connection;
struct Request;

struct RouteParams {
  std::vector<std::pair<std::string, std::string>> values;
  std::string_view get(std::string_view name) const;
};

using Handler = std::function<void(Connection&, Request&, const RouteParams&)>;

struct RouteMatch {
  enum class Kind { kFound, kNotFound, kMethodNotAllowed } kind = Kind::kNotFound;
  const Handler* handler = nullptr;
  RouteParams params;
  std::string allow;  // for kMethodNotAllowed: "GET, POST"
};

class Router {
 public:
  void add(std::string method, std::string pattern, Handler handler);
  RouteMatch match(std::string_view method, std::string_view path) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;
  };
  static bool match_segments(const Route& route, std::string_view path, RouteParams* params);
  std::vector<Route> routes_;
};

}  // namespace chatstream::http
