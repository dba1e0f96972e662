#include "chat/chat_request.hpp"

#include <gtest/gtest.h>

#include <string>

namespace chatstream::chat {
namespace {

constexpr const char* kJson = "application/json";
constexpr const char* kSessionId = "2b7e1516-28ae-4d2a-a6f7-15880917cf4f";

// A request as the connection hands it over: body with simdjson's padding in its capacity.
http::Request make_request(std::string body, std::string content_type = kJson) {
  http::Request request;
  request.method = "POST";
  request.path = "/chat/stream";
  request.content_type = std::move(content_type);
  request.body.reserve(body.size() + 64);
  request.body.assign(body);
  return request;
}

// A refused request as a client sees it: the status its Errc maps to, and the message.
struct Refusal {
  int status;
  std::string message;
};

std::optional<Refusal> refusal(const Status& status) {
  if (status) return std::nullopt;
  return Refusal{http_status(status.error().code), status.error().message};
}

struct ChatOutcome {
  std::optional<Refusal> error;
  ChatRequest parsed;
};

ChatOutcome chat(std::string body, std::string content_type = kJson) {
  http::Request request = make_request(std::move(body), std::move(content_type));
  ChatOutcome outcome;
  outcome.error = refusal(parse_chat_request(request, &outcome.parsed));
  return outcome;
}

// The status of a chat request that must be refused (0 and a test failure when it was accepted).
int refused_status(std::string body, std::string content_type = kJson) {
  ChatOutcome outcome = chat(body, std::move(content_type));
  EXPECT_TRUE(outcome.error.has_value()) << "accepted: " << body;
  return outcome.error ? outcome.error->status : 0;
}

TEST(ParseChatRequest, AcceptsAMessage) {
  ChatOutcome outcome = chat(R"({"message": "What is SSE?"})");
  ASSERT_FALSE(outcome.error) << outcome.error->message;
  EXPECT_EQ(outcome.parsed.message, "What is SSE?");
  EXPECT_FALSE(outcome.parsed.session_id.has_value());
}

TEST(ParseChatRequest, UnescapesTheMessage) {
  ChatOutcome outcome = chat(R"({"message":"line\n\"quoted\" caf\u00e9 \ud83d\ude00"})");
  ASSERT_FALSE(outcome.error) << outcome.error->message;
  EXPECT_EQ(outcome.parsed.message, "line\n\"quoted\" caf\xC3\xA9 \xF0\x9F\x98\x80");
}

TEST(ParseChatRequest, AcceptsRawMultiByteText) {
  ChatOutcome outcome = chat("{\"message\":\"\xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80\"}");
  ASSERT_FALSE(outcome.error) << outcome.error->message;
  EXPECT_EQ(outcome.parsed.message, "\xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80");
}

TEST(ParseChatRequest, AcceptsAValidSessionId) {
  ChatOutcome outcome = chat(std::string(R"({"message":"hi","session_id":")") + kSessionId + "\"}");
  ASSERT_FALSE(outcome.error) << outcome.error->message;
  ASSERT_TRUE(outcome.parsed.session_id.has_value());
  EXPECT_EQ(outcome.parsed.session_id->to_string(), kSessionId);
}

TEST(ParseChatRequest, AcceptsSessionIdBeforeMessage) {
  ChatOutcome outcome = chat(std::string(R"({"session_id":")") + kSessionId + R"(","message":"hi"})");
  ASSERT_FALSE(outcome.error) << outcome.error->message;
  EXPECT_EQ(outcome.parsed.message, "hi");
  EXPECT_TRUE(outcome.parsed.session_id.has_value());
}

TEST(ParseChatRequest, NullSessionIdMeansNone) {
  ChatOutcome outcome = chat(R"({"message":"hi","session_id":null})");
  ASSERT_FALSE(outcome.error) << outcome.error->message;
  EXPECT_FALSE(outcome.parsed.session_id.has_value());
}

TEST(ParseChatRequest, RejectsAnInvalidSessionId) {
  for (const char* body : {R"({"message":"hi","session_id":"not-a-uuid"})",
                           R"({"message":"hi","session_id":"2b7e1516-28ae-4d2a-a6f7-15880917cf4"})",
                           R"({"message":"hi","session_id":""})", R"({"message":"hi","session_id":42})",
                           R"({"message":"hi","session_id":{}})"}) {
    ChatOutcome outcome = chat(body);
    ASSERT_TRUE(outcome.error) << body;
    EXPECT_EQ(outcome.error->status, 400) << body;
    EXPECT_NE(outcome.error->message.find("session_id"), std::string::npos) << outcome.error->message;
  }
}

TEST(ParseChatRequest, RejectsAMissingMessage) {
  ChatOutcome outcome = chat(R"({"session_id":null})");
  ASSERT_TRUE(outcome.error);
  EXPECT_EQ(outcome.error->status, 400);
  EXPECT_EQ(outcome.error->message, "'message' is required");
  EXPECT_EQ(refused_status("{}"), 400);
}

TEST(ParseChatRequest, RejectsAnEmptyOrBlankMessage) {
  for (const char* body : {R"({"message":""})", R"({"message":"   "})", R"({"message":" \t\r\n "})"}) {
    ChatOutcome outcome = chat(body);
    ASSERT_TRUE(outcome.error) << body;
    EXPECT_EQ(outcome.error->status, 400);
    EXPECT_EQ(outcome.error->message, "'message' must not be empty");
  }
}

TEST(ParseChatRequest, RejectsANonStringMessage) {
  for (const char* body : {R"({"message":42})", R"({"message":null})", R"({"message":true})",
                           R"({"message":["hi"]})", R"({"message":{"text":"hi"}})"}) {
    ChatOutcome outcome = chat(body);
    ASSERT_TRUE(outcome.error) << body;
    EXPECT_EQ(outcome.error->status, 400);
    EXPECT_EQ(outcome.error->message, "'message' must be a string") << body;
  }
}

TEST(ParseChatRequest, RejectsABodyThatIsNotAnObject) {
  EXPECT_EQ(refused_status(R"(["message","hi"])"), 400);
  EXPECT_EQ(refused_status(R"("hi")"), 400);
  EXPECT_EQ(refused_status("42"), 400);
  EXPECT_EQ(refused_status("null"), 400);
  EXPECT_EQ(refused_status(""), 400);
  EXPECT_EQ(refused_status("   "), 400);
}

TEST(ParseChatRequest, RejectsMalformedJson) {
  for (const char* body :
       {R"({"message":"hi")", R"({"message":"hi",})", R"({"message" "hi"})", R"({message:"hi"})",
        R"({"message":'hi'})", R"({"message":"unterminated})", R"({"message":"bad \x escape"})", "{"}) {
    EXPECT_EQ(refused_status(body), 400) << body;
  }
}

// Fields we do not read are skipped, but a body with a syntax error in them is still not JSON.
TEST(ParseChatRequest, RejectsMalformedJsonInsideAnIgnoredField) {
  for (const char* body : {R"({"message":"hi","extra":[1,,2]})", R"({"message":"hi","extra":tru})",
                           R"({"message":"hi","extra":{"a" 1}})", R"({"message":"hi","extra":01})"}) {
    EXPECT_EQ(refused_status(body), 400) << body;
  }
}

TEST(ParseChatRequest, RejectsTrailingContent) {
  EXPECT_EQ(refused_status(R"({"message":"hi"} x)"), 400);
  EXPECT_EQ(refused_status(R"({"message":"hi"}{})"), 400);
  EXPECT_EQ(refused_status(R"({"message":"hi"},)"), 400);
}

TEST(ParseChatRequest, AcceptsTrailingWhitespace) {
  ChatOutcome outcome = chat("  {\"message\":\"hi\"} \r\n");
  EXPECT_FALSE(outcome.error) << outcome.error->message;
}

TEST(ParseChatRequest, RejectsInvalidUtf8Bytes) {
  for (const char* body :
       {"{\"message\":\"caf\xC3\"}", "{\"message\":\"\xFF\"}", "{\"message\":\"\xED\xA0\x80\"}",
        "{\"message\":\"\xC0\xAF\"}", "{\"message\":\"ok\",\"other\":\"\x80\"}"}) {
    ChatOutcome outcome = chat(body);
    ASSERT_TRUE(outcome.error);
    EXPECT_EQ(outcome.error->status, 400);
    EXPECT_NE(outcome.error->message.find("UTF-8"), std::string::npos) << outcome.error->message;
  }
}

TEST(ParseChatRequest, RejectsAnEscapedLoneSurrogate) {
  EXPECT_EQ(refused_status(R"({"message":"\ud800"})"), 400);
  EXPECT_EQ(refused_status(R"({"message":"x\udc00y"})"), 400);
  EXPECT_EQ(refused_status(R"({"message":"\ud83d"})"), 400);
}

TEST(ParseChatRequest, RequiresTheJsonContentType) {
  ChatOutcome missing = chat(R"({"message":"hi"})", "");
  ASSERT_TRUE(missing.error);
  EXPECT_EQ(missing.error->status, 415);
  for (const char* type : {"text/plain", "application/x-www-form-urlencoded", "application/jsonx"}) {
    EXPECT_EQ(refused_status(R"({"message":"hi"})", type), 415) << type;
  }
  // The content type is checked first, whatever the body.
  EXPECT_EQ(refused_status("not json", "text/plain"), 415);
}

TEST(ParseChatRequest, AcceptsACharsetParameter) {
  ChatOutcome outcome = chat(R"({"message":"hi"})", "application/json; charset=utf-8");
  EXPECT_FALSE(outcome.error) << outcome.error->message;
}

TEST(ParseChatRequest, IgnoresUnknownFields) {
  ChatOutcome outcome = chat(R"({"model":"x","message":"hi","options":{"a":[1,2,{"b":null}]},"n":1.5})");
  ASSERT_FALSE(outcome.error) << outcome.error->message;
  EXPECT_EQ(outcome.parsed.message, "hi");
}

TEST(ParseChatRequest, ReservesPaddingWhenTheBodyHasNone) {
  http::Request request;
  request.content_type = kJson;
  request.body = R"({"message":"hi"})";
  request.body.shrink_to_fit();
  ChatRequest parsed;
  EXPECT_TRUE(parse_chat_request(request, &parsed).ok());
  EXPECT_EQ(parsed.message, "hi");
}

struct CancelOutcome {
  std::optional<Refusal> error;
  CancelRequest parsed;
};

CancelOutcome cancel(std::string body, std::string content_type = kJson) {
  http::Request request = make_request(std::move(body), std::move(content_type));
  CancelOutcome outcome;
  outcome.error = refusal(parse_cancel_request(request, &outcome.parsed));
  return outcome;
}

TEST(ParseCancelRequest, AcceptsAUuidRunId) {
  CancelOutcome outcome = cancel(R"({"run_id":"6F1C2A3B-9D4E-4F10-8A2B-0123456789AB","reason":"user"})");
  ASSERT_FALSE(outcome.error) << outcome.error->message;
  EXPECT_EQ(outcome.parsed.run_id.to_string(), "6f1c2a3b-9d4e-4f10-8a2b-0123456789ab");
}

TEST(ParseCancelRequest, RequiresARunId) {
  CancelOutcome outcome = cancel(R"({"message":"hi"})");
  ASSERT_TRUE(outcome.error);
  EXPECT_EQ(outcome.error->status, 400);
  EXPECT_EQ(outcome.error->message, "'run_id' is required");
}

TEST(ParseCancelRequest, RequiresTheRunIdToBeAUuid) {
  for (const char* body : {R"({"run_id":"abc"})", R"({"run_id":""})", R"({"run_id":null})", R"({"run_id":7})",
                           R"({"run_id":"6f1c2a3b-9d4e-4f10-8a2b-0123456789ag"})"}) {
    CancelOutcome outcome = cancel(body);
    ASSERT_TRUE(outcome.error) << body;
    EXPECT_EQ(outcome.error->status, 400) << body;
    EXPECT_NE(outcome.error->message.find("run_id"), std::string::npos) << outcome.error->message;
  }
}

TEST(ParseCancelRequest, RequiresJsonAndAnObject) {
  auto status = [](std::string body, std::string content_type = kJson) {
    CancelOutcome outcome = cancel(body, std::move(content_type));
    EXPECT_TRUE(outcome.error) << "accepted: " << body;
    return outcome.error ? outcome.error->status : 0;
  };
  EXPECT_EQ(status(R"({"run_id":"6f1c2a3b-9d4e-4f10-8a2b-0123456789ab"})", "text/plain"), 415);
  EXPECT_EQ(status(R"(["6f1c2a3b-9d4e-4f10-8a2b-0123456789ab"])"), 400);
  EXPECT_EQ(status("{"), 400);
}

}  // namespace
}  // namespace chatstream::chat

namespace chatstream::chat {
namespace {

TEST(ParseChatRequest, MultitaskDefaultsToReject) {
  ChatOutcome outcome = chat(R"({"message":"hi"})");
  ASSERT_FALSE(outcome.error);
  EXPECT_EQ(outcome.parsed.multitask, Multitask::kReject);
}

TEST(ParseChatRequest, MultitaskNamesTheThreePolicies) {
  EXPECT_EQ(chat(R"({"message":"hi","multitask":"reject"})").parsed.multitask, Multitask::kReject);
  EXPECT_EQ(chat(R"({"message":"hi","multitask":"interrupt"})").parsed.multitask, Multitask::kInterrupt);
  EXPECT_EQ(chat(R"({"message":"hi","multitask":"enqueue"})").parsed.multitask, Multitask::kEnqueue);
}

TEST(ParseChatRequest, RefusesAnUnknownMultitask) {
  for (const char* body : {R"({"message":"hi","multitask":"later"})", R"({"message":"hi","multitask":1})",
                           R"({"message":"hi","multitask":"Enqueue"})"}) {
    ChatOutcome outcome = chat(body);
    ASSERT_TRUE(outcome.error) << body;
    EXPECT_EQ(outcome.error->status, 400);
    EXPECT_NE(outcome.error->message.find("multitask"), std::string::npos) << outcome.error->message;
  }
}

}  // namespace
}  // namespace chatstream::chat

namespace chatstream::chat {
namespace {

constexpr std::string_view kResumeRun = "0b6f2a9e-8d1c-4f7a-9e2b-5c3d1a7f9e01";

Result<ResumeRequest> resume(std::string query, std::string last_event_id = {}) {
  http::Request request;
  request.query = std::move(query);
  request.last_event_id = std::move(last_event_id);
  ResumeRequest out;
  if (Status parsed = parse_resume_request(request, kResumeRun, &out); !parsed) return parsed.error();
  return out;
}

TEST(ResumeRequest, StartsAfterTheCursorFromTheHeaderOrTheQuery) {
  EXPECT_EQ(resume("")->next_seq, 0u);
  EXPECT_EQ(resume("", std::string(kResumeRun) + ":7")->next_seq, 8u);
  EXPECT_EQ(resume("last_event_id=7")->next_seq, 8u);
  EXPECT_EQ(resume("a=b&last_event_id=" + std::string(kResumeRun) + "%3A12")->next_seq, 13u);
  EXPECT_EQ(resume("last_event_id=" + std::string(kResumeRun) + ":0")->next_seq, 1u);
  // The query wins over the header (a client that cannot set headers says so explicitly).
  EXPECT_EQ(resume("last_event_id=2", std::string(kResumeRun) + ":9")->next_seq, 3u);
}

TEST(ResumeRequest, RefusesCursorsThatAreNotThisRunsEvents) {
  for (const char* bad : {"last_event_id=", "last_event_id=x", "last_event_id=-1", "last_event_id=1.5",
                          "last_event_id=99999999999999999999"}) {
    auto parsed = resume(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().code, Errc::kBadRequest) << bad;
  }
  auto other = resume("", "11111111-2222-4333-8444-555555555555:3");
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, Errc::kBadRequest);
  http::Request request;
  ResumeRequest out;
  EXPECT_EQ(parse_resume_request(request, "not-a-uuid", &out).error().code, Errc::kNotFound);
}

}  // namespace
}  // namespace chatstream::chat
