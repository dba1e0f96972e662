#pragma once
// Verification of the bearer tokens of sign-in: JSON Web Tokens in the compact JWS form (RFC 7519,
// RFC 7515), signed with HS256 (a shared secret) or RS256 / ES256 (a public key). The token's `sub`
// claim is the user.
//
// The accepted algorithms are decided by the configured keys, never by the token: HS256 only with a
// secret, RS256 only with an RSA public key, ES256 only with an EC P-256 public key. `alg: none`,
// any other algorithm, and a token whose header names an algorithm no configured key serves are
// refused, so an RS256 public key can never be used as an HMAC secret (algorithm confusion).
//
// Claims: `exp` is required and `nbf` honoured, both with a leeway for clock skew; `iss` and `aud`
// are checked when configured (`aud` may be a string or an array); `sub` must be a non-empty string
// without control characters (at most 255 bytes: it is stored and appears in /api/{user_id}/ paths).
// A header with `crit` is refused (no extension is understood).
//
// Key rollover: the public key file may hold several PEM public keys; a token verifies if any key of
// its algorithm accepts it. Only one HS256 secret is held.
//
// Built on OpenSSL's EVP interface (libjwt 1.10 in Debian 12 trusts the token's `alg`, and has no
// claim validation or leeway). Error messages never contain the token or the key.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace chatstream::auth {

struct JwtSettings {
  std::string hs256_secret;     // empty: HS256 not accepted
  std::string public_keys_pem;  // PEM public keys (RSA ≥ 2048 bits, EC P-256); empty: none
  std::string issuer;           // empty: not checked
  std::string audience;         // empty: not checked
  int64_t leeway_s = 30;
};

class JwtVerifier {
 public:
  // Loads and checks the keys; an Error names what is wrong (never the key itself).
  static Result<std::unique_ptr<JwtVerifier>> create(const JwtSettings& settings);
  ~JwtVerifier();
  JwtVerifier(const JwtVerifier&) = delete;
  JwtVerifier& operator=(const JwtVerifier&) = delete;

  // The token's subject, or Error{Errc::kUnauthorized, why} (the reason is safe to show).
  // `now_s` is the current Unix time in seconds.
  Result<std::string> verify(std::string_view token, int64_t now_s) const;

  static constexpr size_t kMaxSubjectBytes = 255;
  static constexpr size_t kMinSecretBytes = 32;  // RFC 7518 §3.2: a key at least as long as the hash

 private:
  explicit JwtVerifier(const JwtSettings& settings) : settings_(settings) {}
  bool signature_valid(std::string_view alg, std::string_view signing_input, const std::string& signature) const;

  JwtSettings settings_;
  std::vector<evp_pkey_st*> rsa_keys_;  // owned, freed by the destructor
  std::vector<evp_pkey_st*> ec_keys_;
};

}  // namespace chatstream::auth
