#include "http/router.hpp"

namespace chatstream::http {

namespace {
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  if (path.empty() || path.front() != '/') return segments;
  path.remove_prefix(1);
  while (true) {
    size_t slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return segments;
}
}  // namespace

std::string_view RouteParams::get(std::string_view name) const {
  for (const auto& [key, value] : values) {
    if (key == name) return value;
  }
  return {};
}

void Router::add(std::string method, std::string pattern, Handler handler) {
  Route route{std::move(method), {}, std::move(handler)};
  for (std::string_view segment : split_path(pattern)) route.segments.emplace_back(segment);
  routes_.push_back(std::move(route));
}

bool Router::match_segments(const Route& route, std::string_view path, RouteParams* params) {
  std::vector<std::string_view> segments = split_path(path);
  if (segments.size() != route.segments.size()) return false;
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string& pattern = route.segments[i];
    if (pattern.size() > 2 && pattern.front() == '{' && pattern.back() == '}') {
      if (segments[i].empty()) return false;
      if (params) params->values.emplace_back(pattern.substr(1, pattern.size() - 2), segments[i]);
    } else if (pattern != segments[i]) {
      return false;
    }
  }
  return true;
}

RouteMatch Router::match(std::string_view method, std::string_view path) const {
  RouteMatch result;
  for (const Route& route : routes_) {
    if (!match_segments(route, path, nullptr)) continue;
    if (route.method == method) {
      result.kind = RouteMatch::Kind::kFound;
      result.handler = &route.handler;
      result.params = {};
      match_segments(route, path, &result.params);
      return result;
    }
    result.kind = RouteMatch::Kind::kMethodNotAllowed;
    bool listed = false;
    for (const Route& earlier : routes_) {
      if (&earlier == &route) break;
      if (earlier.method == route.method && match_segments(earlier, path, nullptr)) listed = true;
    }
    if (!listed) {
      if (!result.allow.empty()) result.allow += ", ";
      result.allow += route.method;
    }
  }
  return result;
}

}  // namespace chatstream::http
