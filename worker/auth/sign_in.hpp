#pragma once
// Who is asking. Every request to a protected path (/chat*, /sessions*, /api/*, /v1/*) passes
// through identify() before its handler runs: with sign-in on it must carry
// `Authorization: Bearer <JWT>` (auth/jwt_verifier.hpp) and the token's `sub` becomes
// request.user_id; with sign-in off every request is the one user kAnonymousUser, as before users
// existed. /healthz and /metrics stay open.
//
// The API of the seeds' design, /api/{user_id}/…, names the user in the path as well:
// strip_user_prefix() checks it against the request's user (403 forbidden otherwise) and rewrites
// the path to the unprefixed route, which then answers as usual.

#include <cstdint>
#include <memory>
#include <string_view>

#include "auth/jwt_verifier.hpp"
#include "core/result.hpp"
#include "http/request.hpp"

namespace chatstream::auth {

// The owner of everything created while sign-in is off.
inline constexpr std::string_view kAnonymousUser = "anonymous";
// The header every 401 answer carries (RFC 6750 §3).
inline constexpr std::string_view kChallengeHeader = "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n";

class SignIn {
 public:
  // `required` false: sign-in off. Required without a verifier (its keys failed to load) refuses
  // every protected request: sign-in fails closed.
  SignIn(bool required, std::unique_ptr<JwtVerifier> verifier)
      : required_(required), verifier_(std::move(verifier)) {}

  bool enabled() const { return required_; }
  // True for the paths that need a user.
  static bool is_protected(std::string_view path);
  // Sets request.user_id; Error{kUnauthorized} when sign-in is on and the token is missing or bad.
  // `now_s`: the current Unix time.
  Status identify(http::Request& request, int64_t now_s) const;
  // /api/{user_id}/rest → /rest when {user_id} (percent-decoded) is request.user_id; kForbidden when
  // it names someone else. Other paths are left alone.
  static Status strip_user_prefix(http::Request& request);

 private:
  bool required_;
  std::unique_ptr<JwtVerifier> verifier_;
};

// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive), or empty.
std::string_view bearer_token(std::string_view authorization);

}  // namespace chatstream::auth
