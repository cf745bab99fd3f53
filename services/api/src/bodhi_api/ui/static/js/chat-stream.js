// One chat completion from the gateway, streamed or not. The stream is read from the fetch body and parsed here:
// server-sent events are frames separated by a blank line, each frame's `data:` lines are its payload, and
// `data: [DONE]` ends the answer. An error after the first byte comes in-band as `data: {"error": {...}}`.
import { ApiError } from "./api.js";

const ENDPOINT = "/v1/chat/completions";
const UNREACHABLE = "The gateway could not be reached. Check your connection and retry.";
const CUT_SHORT = "The connection to the gateway ended before the answer was complete.";

// The payload of each event in `body` (a ReadableStream of bytes), as a string; comments (`: keepalive`) and
// events without data are skipped.
export async function* sseData(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const frames = buffer.split(/\r\n\r\n|\n\n|\r\r/);
      buffer = frames.pop();
      for (const frame of frames) {
        const data = dataOf(frame);
        if (data !== null) yield data;
      }
    }
    const last = dataOf(buffer);
    if (last !== null) yield last;
  } finally {
    reader.releaseLock();
  }
}

function dataOf(frame) {
  const lines = frame.split(/\r\n|\n|\r/).filter((line) => line.startsWith("data:"));
  if (!lines.length) return null;
  return lines.map((line) => line.slice(line.startsWith("data: ") ? 6 : 5)).join("\n");
}

async function errorOf(response) {
  let fields = {};
  try {
    const data = await response.json();
    if (data && typeof data === "object" && data.error) fields = data.error;
  } catch {
    // not JSON (a proxy's page): the status alone says what happened
  }
  return new ApiError(response.status, fields);
}

// Send `body` (an OpenAI chat request) and return `{content, usage, finishReason}`. While a stream arrives,
// `onText(contentSoFar)` is called after each piece. Throws an ApiError for an HTTP error or an in-band one (its
// `partial` is what had arrived), and the AbortError of `signal` when the request is stopped.
export async function complete(body, { signal, onText = () => {} } = {}) {
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: body.stream ? "text/event-stream" : "application/json" },
      body: JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { message: UNREACHABLE });
  }
  if (!response.ok) throw await errorOf(response);
  if (!body.stream) {
    const data = await response.json();
    const choice = data.choices?.[0] ?? {};
    return { content: choice.message?.content ?? "", usage: data.usage ?? null, finishReason: choice.finish_reason };
  }
  return readStream(response.body, { signal, onText });
}

async function readStream(stream, { signal, onText }) {
  const answer = { content: "", usage: null, finishReason: null };
  let finished = false;
  try {
    for await (const data of sseData(stream)) {
      if (data === "[DONE]") {
        finished = true;
        break;
      }
      let event;
      try {
        event = JSON.parse(data);
      } catch {
        continue; // not JSON: nothing a chat can show
      }
      if (event.error) throw Object.assign(new ApiError(200, event.error), { partial: answer.content });
      if (event.usage) answer.usage = event.usage;
      const choice = event.choices?.[0];
      if (choice?.finish_reason) answer.finishReason = choice.finish_reason;
      const piece = choice?.delta?.content;
      if (piece) {
        answer.content += piece;
        onText(answer.content);
      }
    }
  } catch (error) {
    if (error instanceof ApiError) throw error;
    if (signal?.aborted) throw signal.reason ?? error;
    throw Object.assign(new ApiError(0, { message: CUT_SHORT }), { partial: answer.content });
  }
  if (!finished) throw Object.assign(new ApiError(0, { message: CUT_SHORT }), { partial: answer.content });
  return answer;
}
