"""A small, real OpenAI-compatible chat-completions server for tests (stdlib only, deterministic).

    python tests/openai_stub_server.py --port 8123 [--fail-first K] [--ignore-n] [--seeded]
        [--malformed KIND [--malformed-first K]] [--delay SECONDS] [--host 127.0.0.1]

Prints "listening on http://HOST:PORT" (flushed) once it accepts connections; --port 0 picks a free
port, which the printed line reveals. Endpoints:
- GET  /v1/models            -> {"object": "list", "data": [{"id": "stub-model", ...}]}
- POST /v1/chat/completions  -> n choices, all with the text `reply_text(last user message)`:
      "Thought:\\nI read: <first 20 chars>\\n\\nAction:\\nturn left"
  cut to max_tokens whitespace tokens (finish_reason "length" when cut, else "stop"); usage counts
  whitespace tokens: prompt_tokens over all messages' contents, completion_tokens over all choices.
  Unknown model -> 404 with an OpenAI-style error body; a malformed body -> 400.
- GET  /stub/requests        -> {"requests": every chat-completions body answered so far (for
  asserting what a client sent), "attempts": how many chat-completions POSTs arrived, counting the
  ones answered with 503 or a malformed body}; not part of the OpenAI API.
Flags: --fail-first K answers the first K chat-completions requests with 503; --ignore-n always
returns a single choice, like servers that ignore n; --seeded makes every choice's Action a
function of (messages, seed, choice index), like a sampling server that honours seeds (vLLM): the
same request gives the same answer, a different seed (or choice) a different one.
--malformed KIND answers chat-completions requests with status 200 and a body that is not a valid
chat completion (KIND: one of MALFORMED below), every request, or only the first K with
--malformed-first K; --delay SECONDS waits that long before answering each chat-completions request.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "stub-model"


def reply_text(user_message: str) -> str:
    """The stub's answer to a user message. Example: reply_text("Go north") ends with "turn left"."""
    return f"Thought:\nI read: {user_message[:20]}\n\nAction:\nturn left"


SEEDED_ACTIONS = ["turn left", "turn right", "move forward", "inventory", "check valid actions", "look"]


def seeded_reply(messages: list, seed, choice: int) -> str:
    """--seeded: the answer as a deterministic function of (messages, seed, choice index)."""
    key = json.dumps([messages, seed, choice], sort_keys=True).encode()
    k = int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "little")
    return f"Thought:\nDraw {k % 9973}.\n\nAction:\n{SEEDED_ACTIONS[k % len(SEEDED_ACTIONS)]}"


# --malformed KIND -> the raw body of a 200 answer that no chat-completions client should accept.
MALFORMED: dict[str, bytes] = {
    "non-utf8": b'{"choices": [{"message": {"content": "\xff\xfe caf\xe9"}}]}',
    "html": b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    "list": b'[{"index": 0, "message": {"role": "assistant", "content": "turn left"}}]',
    "null": b"null",
    "bad-usage": json.dumps(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Action:\nturn left"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": "many", "total_tokens": 3},
        }
    ).encode(),
    "list-content": json.dumps(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": [{"type": "text", "text": "turn left"}]},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    ).encode(),
    "no-choices": json.dumps(
        {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "model": MODEL,
            "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3},
        }
    ).encode(),
}


def truncate(text: str, max_tokens: int) -> tuple[str, int, str]:
    """Cut `text` after max_tokens whitespace tokens, keeping its own spacing.

    Returns (text, token count, finish_reason). Example: truncate("a b  c", 2) == ("a b", 2, "length").
    """
    tokens = list(re.finditer(r"\S+", text))
    if len(tokens) <= max_tokens:
        return text, len(tokens), "stop"
    end = tokens[max_tokens - 1].end() if max_tokens > 0 else 0
    return text[:end], max_tokens, "length"


class StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        addr,
        fail_first: int,
        ignore_n: bool,
        seeded: bool = False,
        malformed: str | None = None,
        malformed_first: int = 0,
        delay: float = 0.0,
    ):
        super().__init__(addr, Handler)
        self.seeded = seeded
        self.malformed = malformed
        self.malformed_first = malformed_first
        self.delay = delay
        self.fail_first = fail_first
        self.ignore_n = ignore_n
        self.lock = threading.Lock()
        self.chat_requests = 0
        self.received: list[dict] = []


class Handler(BaseHTTPRequestHandler):
    server: StubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep test output clean
        pass

    def _send(self, status: int, body: dict | bytes) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, type_: str, param: str | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": type_, "param": param, "code": status}})

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            self._send(
                200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "stub"}]}
            )
        elif self.path == "/stub/requests":
            with self.server.lock:
                self._send(
                    200, {"requests": list(self.server.received), "attempts": self.server.chat_requests}
                )
        else:
            self._error(404, f"no route {self.path}", "NotFoundError")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(404, f"no route {self.path}", "NotFoundError")
        with self.server.lock:
            self.server.chat_requests += 1
            count = self.server.chat_requests
        if self.server.delay:
            time.sleep(self.server.delay)
        if count <= self.server.fail_first:
            return self._error(503, "stub is warming up (--fail-first)", "ServiceUnavailableError")
        malformed_first = self.server.malformed_first
        if self.server.malformed and (malformed_first <= 0 or count <= malformed_first):
            return self._send(200, MALFORMED[self.server.malformed])
        try:
            body = json.loads(raw)
            messages = body["messages"]
            n = int(body.get("n", 1))
            max_tokens = int(body.get("max_tokens", 16))
            assert isinstance(messages, list) and n >= 1 and max_tokens >= 0
        except (ValueError, KeyError, TypeError, AssertionError):
            return self._error(
                400, "body needs messages (a list), n >= 1, max_tokens >= 0", "BadRequestError"
            )
        with self.server.lock:
            self.server.received.append(body)
        if body.get("model") != MODEL:
            return self._error(
                404, f"The model `{body.get('model')}` does not exist.", "NotFoundError", "model"
            )
        last_user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        n_out = 1 if self.server.ignore_n else n
        answers = [
            truncate(
                seeded_reply(messages, body.get("seed"), i) if self.server.seeded else reply_text(last_user),
                max_tokens,
            )
            for i in range(n_out)
        ]
        count = sum(c for _, c, _ in answers)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        self._send(
            200,
            {
                "id": f"chatcmpl-stub-{self.server.chat_requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": MODEL,
                "choices": [
                    {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                    for i, (text, _, finish) in enumerate(answers)
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": count,
                    "total_tokens": prompt_tokens + count,
                },
            },
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    ap.add_argument("--fail-first", type=int, default=0, help="answer the first K chat requests with 503")
    ap.add_argument("--ignore-n", action="store_true", help="always return one choice")
    ap.add_argument("--seeded", action="store_true", help="answers depend on (messages, seed, choice)")
    ap.add_argument("--malformed", choices=sorted(MALFORMED), help="answer 200 with this malformed body")
    ap.add_argument(
        "--malformed-first", type=int, default=0, help="only the first K chat requests (0: every one)"
    )
    ap.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each chat answer")
    args = ap.parse_args(argv)
    server = StubServer(
        (args.host, args.port),
        args.fail_first,
        args.ignore_n,
        args.seeded,
        malformed=args.malformed,
        malformed_first=args.malformed_first,
        delay=args.delay,
    )
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
