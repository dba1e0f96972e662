#include "auth/jwt_verifier.hpp"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <simdjson.h>

#include <cmath>
#include <cstring>

#include "auth/base64url.hpp"

namespace chatstream::auth {

namespace {

Error unauthorized(std::string reason) { return Error{Errc::kUnauthorized, std::move(reason)}; }

// Tokens come in headers, bounded by --max-header-bytes; this bounds the work on a forged one.
constexpr size_t kMaxTokenBytes = 8192;

// A JSON object from a base64url segment; null when it is not one.
bool decode_object(std::string_view segment, simdjson::dom::parser& parser, simdjson::dom::object* out) {
  auto bytes = base64url_decode(segment);
  if (!bytes) return false;
  simdjson::dom::element element;
  if (parser.parse(simdjson::padded_string(*bytes)).get(element)) return false;
  return !element.get_object().get(*out);
}

// The names we read must appear once: a duplicate could be read differently by another parser.
bool has_duplicate(const simdjson::dom::object& object, std::initializer_list<std::string_view> names) {
  for (std::string_view name : names) {
    int seen = 0;
    for (auto field : object) seen += field.key == name;
    if (seen > 1) return true;
  }
  return false;
}

// A NumericDate (RFC 7519 §2): seconds since the epoch, integer or not.
bool numeric_date(simdjson::dom::element element, double* out) {
  double value;
  if (element.get_double().get(value)) {
    int64_t integer;
    if (element.get_int64().get(integer)) {
      uint64_t unsigned_value;
      if (element.get_uint64().get(unsigned_value)) return false;
      value = static_cast<double>(unsigned_value);
    } else {
      value = static_cast<double>(integer);
    }
  }
  if (!std::isfinite(value)) return false;
  *out = value;
  return true;
}

bool valid_subject(std::string_view sub) {
  if (sub.empty() || sub.size() > JwtVerifier::kMaxSubjectBytes) return false;
  for (unsigned char c : sub) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool verify_with(EVP_PKEY* pkey, std::string_view input, const unsigned char* sig, size_t sig_len) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return false;
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, pkey) == 1 &&
            EVP_DigestVerify(ctx, sig, sig_len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();  // a failed verification leaves errors on the thread's queue
  return ok;
}

// JWS carries an ECDSA signature as r || s (32 bytes each for P-256); OpenSSL verifies DER.
std::string ecdsa_der(const std::string& raw) {
  if (raw.size() != 64) return {};
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr);
  std::string der;
  if (sig && r && s && ECDSA_SIG_set0(sig, r, s) == 1) {
    r = s = nullptr;  // owned by sig now
    unsigned char* buffer = nullptr;
    int length = i2d_ECDSA_SIG(sig, &buffer);
    if (length > 0) der.assign(reinterpret_cast<char*>(buffer), static_cast<size_t>(length));
    OPENSSL_free(buffer);
  }
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(sig);
  return der;
}

}  // namespace

JwtVerifier::~JwtVerifier() {
  for (EVP_PKEY* key : rsa_keys_) EVP_PKEY_free(key);
  for (EVP_PKEY* key : ec_keys_) EVP_PKEY_free(key);
}

Result<std::unique_ptr<JwtVerifier>> JwtVerifier::create(const JwtSettings& settings) {
  std::unique_ptr<JwtVerifier> verifier(new JwtVerifier(settings));
  verifier->settings_.public_keys_pem.clear();  // parsed below; the text is not kept
  if (!settings.hs256_secret.empty() && settings.hs256_secret.size() < kMinSecretBytes) {
    return Error{"the HS256 secret must be at least " + std::to_string(kMinSecretBytes) + " bytes"};
  }
  if (!settings.public_keys_pem.empty()) {
    BIO* bio = BIO_new_mem_buf(settings.public_keys_pem.data(), static_cast<int>(settings.public_keys_pem.size()));
    if (!bio) return Error{"out of memory reading the public key"};
    int index = 0;
    while (EVP_PKEY* pkey = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr)) {
      ++index;
      // Owned by the verifier from here, so every return below frees it.
      if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA) verifier->rsa_keys_.push_back(pkey);
      else if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) verifier->ec_keys_.push_back(pkey);
      else {
        EVP_PKEY_free(pkey);
        BIO_free(bio);
        return Error{"public key " + std::to_string(index) + ": not an RSA or EC P-256 key"};
      }
      if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA) {
        if (EVP_PKEY_get_bits(pkey) < 2048) {
          BIO_free(bio);
          return Error{"public key " + std::to_string(index) + ": an RSA key needs at least 2048 bits"};
        }
      } else if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) {
        char group[64] = {0};
        size_t length = 0;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &length) != 1 || std::strcmp(group, "prime256v1") != 0) {
          BIO_free(bio);
          return Error{"public key " + std::to_string(index) + ": an EC key must be on P-256 (ES256)"};
        }
      }
    }
    BIO_free(bio);
    ERR_clear_error();  // the end of the file reads as an error
    if (index == 0) return Error{"no PEM public key (-----BEGIN PUBLIC KEY-----) found"};
  }
  if (settings.hs256_secret.empty() && verifier->rsa_keys_.empty() && verifier->ec_keys_.empty()) {
    return Error{"no key: set a secret or a public key"};
  }
  if (settings.leeway_s < 0) return Error{"the leeway must not be negative"};
  return verifier;
}

bool JwtVerifier::signature_valid(std::string_view alg, std::string_view input, const std::string& signature) const {
  if (alg == "HS256") {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (!HMAC(EVP_sha256(), settings_.hs256_secret.data(), static_cast<int>(settings_.hs256_secret.size()),
              reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &length)) {
      return false;
    }
    return signature.size() == length && CRYPTO_memcmp(mac, signature.data(), length) == 0;
  }
  if (alg == "RS256") {
    for (EVP_PKEY* key : rsa_keys_) {
      if (verify_with(key, input, reinterpret_cast<const unsigned char*>(signature.data()), signature.size())) {
        return true;
      }
    }
    return false;
  }
  if (alg == "ES256") {
    std::string der = ecdsa_der(signature);
    if (der.empty()) return false;
    for (EVP_PKEY* key : ec_keys_) {
      if (verify_with(key, input, reinterpret_cast<const unsigned char*>(der.data()), der.size())) return true;
    }
    return false;
  }
  return false;
}

Result<std::string> JwtVerifier::verify(std::string_view token, int64_t now_s) const {
  if (token.empty()) return unauthorized("No access token was sent.");
  if (token.size() > kMaxTokenBytes) return unauthorized("The access token is malformed.");
  size_t first_dot = token.find('.');
  size_t second_dot = first_dot == std::string_view::npos ? first_dot : token.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos || token.find('.', second_dot + 1) != std::string_view::npos) {
    return unauthorized("The access token is malformed.");
  }
  std::string_view header_part = token.substr(0, first_dot);
  std::string_view payload_part = token.substr(first_dot + 1, second_dot - first_dot - 1);
  std::string_view signature_part = token.substr(second_dot + 1);

  // One parser per thread, reused: the header is read (alg copied out) before the claims replace it.
  static thread_local simdjson::dom::parser parser;
  simdjson::dom::object header;
  if (!decode_object(header_part, parser, &header) || has_duplicate(header, {"alg", "crit"})) {
    return unauthorized("The access token is malformed.");
  }
  std::string_view alg_view;
  if (header["alg"].get_string().get(alg_view)) return unauthorized("The access token is malformed.");
  std::string alg(alg_view);  // the parser is reused for the claims below
  bool configured = (alg == "HS256" && !settings_.hs256_secret.empty()) || (alg == "RS256" && !rsa_keys_.empty()) ||
                    (alg == "ES256" && !ec_keys_.empty());
  if (!configured) return unauthorized("The access token's signing algorithm is not accepted.");
  simdjson::dom::element crit;
  if (!header["crit"].get(crit)) return unauthorized("The access token uses an unsupported extension.");

  auto signature = base64url_decode(signature_part);
  if (!signature || signature->empty()) return unauthorized("The access token is malformed.");
  if (!signature_valid(alg, token.substr(0, second_dot), *signature)) {
    return unauthorized("The access token's signature is not valid.");
  }

  // Only a token signed by us is looked at further.
  simdjson::dom::object claims;
  if (!decode_object(payload_part, parser, &claims) || has_duplicate(claims, {"sub", "exp", "nbf", "iss", "aud"})) {
    return unauthorized("The access token is malformed.");
  }
  double now = static_cast<double>(now_s), leeway = static_cast<double>(settings_.leeway_s);
  simdjson::dom::element value;
  double exp = 0;
  if (claims["exp"].get(value) || !numeric_date(value, &exp)) {
    return unauthorized("The access token has no valid expiry (exp).");
  }
  if (now >= exp + leeway) return unauthorized("The access token has expired.");
  if (!claims["nbf"].get(value)) {
    double nbf = 0;
    if (!numeric_date(value, &nbf)) return unauthorized("The access token's nbf is not a date.");
    if (now + leeway < nbf) return unauthorized("The access token is not valid yet.");
  }
  if (!settings_.issuer.empty()) {
    std::string_view iss;
    if (claims["iss"].get_string().get(iss) || iss != settings_.issuer) {
      return unauthorized("The access token was issued by someone else.");
    }
  }
  if (!settings_.audience.empty()) {
    bool for_us = false;
    if (!claims["aud"].get(value)) {
      std::string_view aud;
      simdjson::dom::array list;
      if (!value.get_string().get(aud)) {
        for_us = aud == settings_.audience;
      } else if (!value.get_array().get(list)) {
        for (simdjson::dom::element item : list) {
          if (!item.get_string().get(aud) && aud == settings_.audience) for_us = true;
        }
      }
    }
    if (!for_us) return unauthorized("The access token is meant for another audience.");
  }
  std::string_view sub;
  if (claims["sub"].get_string().get(sub) || !valid_subject(sub)) {
    return unauthorized("The access token names no valid user (sub).");
  }
  return std::string(sub);
}

}  // namespace chatstream::auth
