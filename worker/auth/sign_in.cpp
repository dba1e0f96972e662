#include "auth/sign_in.hpp"

#include <string>

#include "http/query_params.hpp"

namespace chatstream::auth {

namespace {

bool starts_with_segment(std::string_view path, std::string_view prefix) {
  return path.substr(0, prefix.size()) == prefix &&
         (path.size() == prefix.size() || path[prefix.size()] == '/');
}

}  // namespace

bool SignIn::is_protected(std::string_view path) {
  return starts_with_segment(path, "/chat") || starts_with_segment(path, "/sessions") ||
         path.substr(0, 5) == "/api/" || path.substr(0, 4) == "/v1/";
}

std::string_view bearer_token(std::string_view value) {
  constexpr std::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() || (value[kScheme.size()] != ' ' && value[kScheme.size()] != '\t')) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char c = value[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[i]) return {};
  }
  value.remove_prefix(kScheme.size());
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  return value;
}

Status SignIn::identify(http::Request& request, int64_t now_s) const {
  if (!required_) {
    request.user_id = kAnonymousUser;
    return {};
  }
  if (!verifier_) return Error{Errc::kUnauthorized, "Sign-in is not available: the server's keys failed to load."};
  if (request.authorization.empty()) {
    return Error{Errc::kUnauthorized, "Sign-in is required: send Authorization: Bearer <token>."};
  }
  std::string_view token = bearer_token(request.authorization);
  if (token.empty()) return Error{Errc::kUnauthorized, "The Authorization header is not 'Bearer <token>'."};
  Result<std::string> subject = verifier_->verify(token, now_s);
  if (!subject) return subject.error();
  request.user_id = std::move(*subject);
  return {};
}

Status SignIn::strip_user_prefix(http::Request& request) {
  std::string_view path = request.path;
  constexpr std::string_view kPrefix = "/api/";
  if (path.substr(0, kPrefix.size()) != kPrefix) return {};
  size_t end = path.find('/', kPrefix.size());
  std::string_view segment = path.substr(kPrefix.size(), end == std::string_view::npos ? end : end - kPrefix.size());
  std::string named;
  if (segment.empty() || end == std::string_view::npos || !http::percent_decode(segment, &named)) {
    return Error{Errc::kNotFound, "No such endpoint under /api/: use /api/{user_id}/chat/stream and the like."};
  }
  if (named != request.user_id) {
    return Error{Errc::kForbidden, "This path belongs to another user than the one signed in."};
  }
  request.path.erase(0, end);
  return {};
}

}  // namespace chatstream::auth
