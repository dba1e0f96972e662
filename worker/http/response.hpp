#pragma once
// Building response heads and the one JSON error shape every error answer uses:
//   {"error":{"status":415,"code":"unsupported_media_type","message":"…"}}

#include <cstdint>
#include <string>
#include <string_view>

#include "core/errc.hpp"

namespace chatstream::http {

std::string_view status_reason(int status);

// Appends "HTTP/1.1 <status> <reason>\r\n" plus Date, Server, Content-Type and, when
// content_length >= 0, Content-Length; `extra_headers` are complete "Name: value\r\n" lines.
// The head ends with the blank line.
void append_head(std::string& out, int status, std::string_view content_type, int64_t content_length,
                 bool keep_alive, std::string_view extra_headers);

// {"error":{"status","code","message"}} for `errc` (core/errc.hpp); `extra_fields` (a run of
// "key":value pairs, e.g. the running run's id of a 409) are added to the error object.
std::string error_body(Errc errc, std::string_view message, std::string_view extra_fields = {});

}  // namespace chatstream::http
