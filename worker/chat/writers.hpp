#pragma once
// The four output formats of a run, one per file (chat/run_writer.hpp has the interface and the
// contract); make_run_writer() picks one by RunMode.

#include <memory>

#include "chat/run_writer.hpp"

namespace chatstream::chat {

// chatstream's SSE protocol (docs/protocol.md): meta, stages, token, done / error / cancelled.
std::unique_ptr<RunWriter> make_event_stream_writer(http::Connection& connection, TimerWheel& wheel,
                                                    const sse::StreamSettings& settings,
                                                    sse::StreamObserver& observer);
// OpenAI's chat.completion.chunk stream, ending with [DONE].
std::unique_ptr<RunWriter> make_openai_stream_writer(http::Connection& connection, TimerWheel& wheel,
                                                     const sse::StreamSettings& settings,
                                                     sse::StreamObserver& observer, WriterSettings options);
// POST /chat: one JSON object with the whole answer.
std::unique_ptr<RunWriter> make_json_answer_writer(http::Connection& connection, sse::StreamObserver& observer);
// POST /v1/chat/completions without stream: one chat.completion object.
std::unique_ptr<RunWriter> make_openai_json_writer(http::Connection& connection, sse::StreamObserver& observer);

}  // namespace chatstream::chat
