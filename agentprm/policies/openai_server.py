"""Policy backend for any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp, OpenAI).

`OpenAIServerPolicy(base_url, model).generate(states, params)` POSTs each state to
{base_url}/chat/completions (states run concurrently on a thread pool) and returns params.n
Generations per state, in input order. Example:

    policy = OpenAIServerPolicy("http://localhost:8000/v1", "Qwen/Qwen2.5-3B-Instruct")
    outs = policy.generate([[{"role": "user", "content": "Go to the red ball."}]], SamplingParams(n=4))
    assert len(outs) == 1 and len(outs[0]) == 4

Starting a server (docs only; nothing here starts one, see `serve_instructions()`):

    vLLM       vllm serve Qwen/Qwen2.5-3B-Instruct --dtype bfloat16 --port 8000
               -> base_url="http://localhost:8000/v1", model="Qwen/Qwen2.5-3B-Instruct"
    SGLang     python -m sglang.launch_server --model-path Qwen/Qwen2.5-3B-Instruct \\
                   --dtype bfloat16 --port 30000
               -> base_url="http://localhost:30000/v1", model="Qwen/Qwen2.5-3B-Instruct"
    llama.cpp  llama-server -m qwen2.5-3b-instruct-q4_k_m.gguf --port 8080 --parallel 16
               -> base_url="http://localhost:8080/v1", model: any name (llama.cpp serves one model)

Transport is the official `openai` SDK (`openai.OpenAI(...).chat.completions.with_raw_response
.create`), with the SDK's own retries off (max_retries=0): the backoff loop here retries instead,
because it also retries malformed 200 answers, and Ctrl-C cuts its waits short (the SDK sleeps in
time.sleep on a worker thread, which nothing can wake). The raw body is parsed and checked here
rather than by the SDK's lenient pydantic models, so a 200 answer that is not a chat completion (an
HTML page, `null`, a string where a count belongs) fails with an error quoting it, never with an
AttributeError.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import threading
import warnings
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from typing import Any

from agentprm.policy import Generation, Messages, SamplingParams

log = logging.getLogger(__name__)

# 408 (request timeout) and 409 (conflict, e.g. an overloaded router) are transient like 429 and 5xx.
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})

# How often the thread in generate() wakes while it waits for its workers: a Ctrl-C is acted on
# within this many seconds even if the OS delivered SIGINT to a worker thread.
_POLL_S = 0.1


def serve_instructions(model: str = "Qwen/Qwen2.5-3B-Instruct") -> str:
    """Return shell commands that start an OpenAI-compatible server for `model` (docs only).

    Example:
        print(serve_instructions("Qwen/Qwen2.5-7B-Instruct"))
    """
    gguf = model.split("/")[-1].lower() + "-q4_k_m.gguf"
    return (
        f"# vLLM (GPU): base_url=http://localhost:8000/v1, model={model}\n"
        f"vllm serve {model} --dtype bfloat16 --port 8000\n"
        f"# SGLang (GPU): base_url=http://localhost:30000/v1, model={model}\n"
        f"python -m sglang.launch_server --model-path {model} --dtype bfloat16 --port 30000\n"
        f"# llama.cpp (CPU or GPU, GGUF weights): base_url=http://localhost:8080/v1, any model name;\n"
        f"# --parallel sets how many requests it serves at once (match `concurrency`)\n"
        f"llama-server -m {gguf} --port 8080 --parallel 16\n"
    )


class OpenAIServerError(RuntimeError):
    """The server refused a request, or could not be reached (or gave no usable answer) after all retries."""


class _Malformed(Exception):
    """A 200 answer whose body is not a chat completion; retried like a 5xx."""

    def __init__(self, reason: str, raw: bytes) -> None:
        super().__init__(f"malformed 200 answer ({reason}); the body begins {raw[:200]!r}")


class _Cancelled(Exception):
    """generate() is no longer waiting (Ctrl-C, or another state failed): the worker stops."""


class OpenAIServerPolicy:
    """Sample from a model behind an OpenAI-compatible /chat/completions endpoint.

    Request per state: {model, messages, n, temperature, top_p, max_tokens=params.max_new_tokens,
    seed (the state's own from `seeds`, else params.seed, if set), stop (the constructor's and
    params.stop, if any)}. temperature=0.0 is sent as 0 (greedy on vLLM/SGLang/llama.cpp).
    A state whose last message is the assistant's (a math env's solution so far, agentprm.prompts)
    adds {continue_final_message: true, add_generation_prompt: false} (vLLM's and SGLang's
    extension), so the model continues that message as the local renderer's to_text does.

    Contract of the returned Generations:
    - exactly params.n per state, in the order of `states`. Servers that return fewer choices than
      asked (some ignore n) get follow-up requests for the remainder; a follow-up carries
      seed + (choices collected so far), so a seeded run stays reproducible without repeating samples.
    - prompt_tokens is usage.prompt_tokens of the state's first response, the same value on every
      Generation of that state: count it once per state, not once per Generation.
    - completion_tokens: usage only gives the total over a response's choices, so it is divided
      evenly among them (the remainder goes to the first choices, so per-response sums are exact).
      A server that sends no usage yields 0 for both counts, with a warning.
    - finish_reason is the choice's own ("stop", "length", ...; a missing one reads "stop").

    Errors: connection errors, timeouts, HTTP 408/409/429/5xx and malformed 200 answers (not JSON or
    not UTF-8, no choices, a message content or a usage count of the wrong type) are retried up to
    max_retries times with exponential backoff and jitter (backoff * 2**attempt seconds, capped at
    max_backoff, times a random factor in [0.5, 1]; a Retry-After / retry-after-ms header is honoured
    up to max_backoff), then raise OpenAIServerError (for a malformed answer it quotes the body's
    first bytes). Any other 4xx raises OpenAIServerError at once with the server's message and what
    to change (401/403 -> the api key; a model the server does not serve -> the models it lists at
    GET {base_url}/models; 404 -> base_url needs the API prefix such as /v1). The first state that
    fails stops the others: they make no further attempts.

    `timeout` is the SDK's (httpx's) timeout: it bounds each phase of a request (connecting, waiting
    for a pooled connection, sending, and each read), not the whole request. Worst case for one
    request against a server that stalls every attempt: (max_retries + 1) * timeout +
    max_retries * max_backoff, i.e. 6 * 120 + 5 * 30 = 870 s with the defaults (a server that
    answers errors at once costs only the backoffs, at most 1 + 2 + 4 + 8 + 16 = 31 s without
    Retry-After). A state whose server ignores n needs up to n requests. (A server that keeps
    sending a byte now and then, each within `timeout`, is not cut off: httpx has no total timeout.)

    Ctrl-C: generate() raises KeyboardInterrupt within ~0.1 s, also while workers wait in a
    backoff or are mid-request. Workers are daemon threads (not a ThreadPoolExecutor, whose threads
    the interpreter joins at exit): a worker in a backoff stops at once, one mid-request is
    abandoned (its answer is dropped), and neither keeps the process alive.

    Example:
        policy = OpenAIServerPolicy("http://localhost:8000/v1", "Qwen/Qwen2.5-3B-Instruct", concurrency=32)
        outs = policy.generate(states, SamplingParams(n=8, temperature=1.0, max_new_tokens=256))
        assert [len(o) for o in outs] == [8] * len(states)
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 16,
        timeout: float = 120.0,
        max_retries: int = 5,
        stop: list[str] | None = None,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        import openai

        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if concurrency < 1 or max_retries < 0 or timeout <= 0 or backoff < 0 or max_backoff < 0:
            raise ValueError(
                f"need concurrency >= 1, max_retries >= 0, timeout > 0, backoff >= 0, max_backoff >= 0; "
                f"got {concurrency=}, {max_retries=}, {timeout=}, {backoff=}, {max_backoff=}"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{model}"
        self.max_prompt_tokens = None  # the server enforces its own context length
        self.count_tokens = None
        # Local servers (vLLM, SGLang, llama.cpp) accept any key unless started with --api-key.
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "EMPTY")
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.stop = list(stop) if stop else None
        self.backoff = backoff
        self.max_backoff = max_backoff
        # One client (one connection pool, thread-safe) for all workers; retries are ours (_post_chat).
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=self.api_key, timeout=timeout, max_retries=0
        )

    def __repr__(self) -> str:
        # The api key stays out of reprs, logs and tracebacks.
        return f"OpenAIServerPolicy(base_url={self.base_url!r}, model={self.model!r})"

    def generate(
        self, states: list[Messages], params: SamplingParams, seeds: list[int] | None = None
    ) -> list[list[Generation]]:
        """One list of params.n Generations per state, in the order of `states` (see class docstring).

        seeds[i] (when given) is the seed sent with state i's request; otherwise params.seed is.
        """
        if params.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {params.n}")
        if seeds is not None and len(seeds) != len(states):
            raise ValueError(f"{len(seeds)} seeds for {len(states)} states: give one seed per state")
        if not states:
            return []
        jobs = list(zip(states, seeds if seeds is not None else [params.seed] * len(states), strict=True))
        futures: list[Future] = [Future() for _ in jobs]
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(jobs)):
            todo.put(i)
        cancel = threading.Event()

        def work() -> None:
            while not cancel.is_set():
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                if not futures[i].set_running_or_notify_cancel():
                    continue
                try:
                    futures[i].set_result(self._sample_state(jobs[i][0], params, jobs[i][1], cancel))
                except BaseException as exc:  # handed to the waiting thread, which re-raises it
                    futures[i].set_exception(exc)

        try:
            for k in range(min(self.concurrency, len(jobs))):
                threading.Thread(target=work, name=f"agentprm-openai-{k}", daemon=True).start()
            pending = set(futures)
            while pending:
                # A short timeout, not a blocking wait: see _POLL_S. FIRST_EXCEPTION: fail fast.
                done, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_EXCEPTION)
                for f in done:
                    f.result()  # re-raises a state's error
            return [f.result() for f in futures]
        finally:
            # Normal return, a state's error or Ctrl-C: workers stop at their next backoff or attempt,
            # queued states are never started, and nothing here waits for a request in flight.
            cancel.set()
            for f in futures:
                f.cancel()

    def _sample_state(
        self, messages: Messages, params: SamplingParams, seed: int | None, cancel: threading.Event
    ) -> list[Generation]:
        gens: list[Generation] = []
        prompt_tokens: int | None = None
        while len(gens) < params.n:
            want = params.n - len(gens)
            request: dict[str, Any] = {
                "model": self.model,
                "messages": messages,
                "n": want,
                "temperature": 0 if params.temperature == 0 else params.temperature,
                "top_p": params.top_p,
                "max_tokens": params.max_new_tokens,
            }
            if seed is not None:
                request["seed"] = seed + len(gens)
            stop = list(dict.fromkeys([*(self.stop or []), *params.stop]))
            if stop:
                request["stop"] = stop
            if messages and messages[-1]["role"] == "assistant":
                request["extra_body"] = {"continue_final_message": True, "add_generation_prompt": False}
            choices, usage = self._post_chat(request, cancel)
            choices = choices[:want]
            if usage is None:
                warnings.warn(
                    f"{self.base_url} sent no 'usage'; token counts are recorded as 0", stacklevel=2
                )
                usage = {}
            if prompt_tokens is None:
                prompt_tokens = usage.get("prompt_tokens", 0)
            per_choice, extra = divmod(usage.get("completion_tokens", 0), len(choices))
            for i, (text, finish_reason) in enumerate(choices):
                gens.append(
                    Generation(
                        text=text,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=per_choice + (1 if i < extra else 0),
                        finish_reason=finish_reason,
                    )
                )
        return gens

    def _post_chat(
        self, request: dict[str, Any], cancel: threading.Event
    ) -> tuple[list[tuple[str, str]], dict[str, int] | None]:
        """POST one chat-completions request with retries; returns _parse_completion's (choices, usage)."""
        import openai

        url = f"{self.base_url}/chat/completions"
        last, malformed = "", False
        for attempt in range(self.max_retries + 1):
            if cancel.is_set():
                raise _Cancelled
            retry_after = None
            try:
                raw = self._client.chat.completions.with_raw_response.create(**request)
                return _parse_completion(raw.http_response.content)
            except openai.APIStatusError as exc:
                message = _error_message(exc)
                if exc.status_code not in RETRY_STATUS:
                    raise OpenAIServerError(self._explain(exc.status_code, message)) from None
                last, malformed = f"HTTP {exc.status_code}: {message}", False
                retry_after = _retry_after(exc.response.headers)
            except openai.APIConnectionError as exc:  # also APITimeoutError; connection refused, reset, DNS
                cause = exc.__cause__
                last, malformed = f"{type(exc).__name__}: {exc}", False
                if cause is not None:
                    last += f" ({type(cause).__name__}: {cause})"
            except _Malformed as exc:
                last, malformed = str(exc), True
            if attempt == self.max_retries:
                break
            delay = min(self.max_backoff, self.backoff * 2 ** min(attempt, 60)) * random.uniform(0.5, 1.0)
            if retry_after is not None:
                delay = min(self.max_backoff, max(delay, retry_after))
            log.warning(
                "POST %s failed (%s); retry %d/%d in %.1fs", url, last, attempt + 1, self.max_retries, delay
            )
            if cancel.wait(delay):
                raise _Cancelled
        if malformed:
            raise OpenAIServerError(
                f"POST {url} failed after {self.max_retries + 1} attempts; last error: {last}. "
                f"The server answered 200 but not with an OpenAI chat completion: check that base_url "
                f"points at an OpenAI-compatible server (not a proxy's or another service's page)."
            )
        raise OpenAIServerError(
            f"POST {url} failed after {self.max_retries + 1} attempts; last error: {last}. "
            f"Is the server running at {self.base_url} and is it healthy? Start one with e.g.\n"
            + serve_instructions(self.model)
        )

    def _list_models(self) -> list[str] | None:
        """Model ids from GET {base_url}/models, or None if the server does not answer that."""
        import openai

        try:
            raw = self._client.models.with_raw_response.list(timeout=min(self.timeout, 10.0))
            return [str(m["id"]) for m in json.loads(raw.http_response.content)["data"]]
        except (openai.OpenAIError, ValueError, KeyError, TypeError):
            return None

    def _explain(self, status: int, message: str) -> str:
        """Error text for a non-retryable 4xx: the server's message plus what to change."""
        head = f"{self.base_url}/chat/completions answered HTTP {status}: {message}\n"
        if status in (401, 403):
            return head + (
                "Check the API key (api_key=..., or the OPENAI_API_KEY environment variable); "
                "local servers need one only when started with --api-key."
            )
        models = self._list_models() if status in (400, 404, 422) else None
        if models is not None and self.model not in models:
            return head + (
                f"The server does not serve model {self.model!r}; available models: {models}. "
                f"Pass model= one of these."
            )
        if status == 404:
            return head + (
                f"Check base_url: it must include the API prefix, e.g. http://localhost:8000/v1 "
                f"(got {self.base_url})."
            )
        return head + (
            "Check the request: the messages, n, temperature, top_p, stop, and max_tokens "
            "(= SamplingParams.max_new_tokens, which plus the prompt must fit the server's context length)."
        )


def _parse_completion(raw: bytes) -> tuple[list[tuple[str, str]], dict[str, int] | None]:
    """Check a 200 body: ([(text, finish_reason) per choice, in index order], usage or None).

    Raises _Malformed for anything that is not a chat completion. A missing or empty usage is None; a
    count missing from it is 0; a missing content (e.g. only tool calls) is "".

    >>> _parse_completion(b'{"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": 3}}')
    ([('hi', 'stop')], {'prompt_tokens': 3, 'completion_tokens': 0})
    >>> _parse_completion(b'null')
    Traceback (most recent call last):
    ...
    agentprm.policies.openai_server._Malformed: malformed 200 answer (null, not a JSON object); the body begins b'null'
    """

    def bad(reason: str) -> _Malformed:
        return _Malformed(reason, raw)

    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise bad("not UTF-8") from None
    except ValueError:
        raise bad("not JSON") from None
    if not isinstance(body, dict):
        raise bad(f"{_json_type(body)}, not a JSON object")
    choices = body.get("choices")
    if "choices" not in body:
        raise bad("no 'choices'")
    if not isinstance(choices, list) or not choices:
        raise bad(f"'choices' is {_json_type(choices)}, not a non-empty list")
    out: list[tuple[int, str, str]] = []
    for position, choice in enumerate(choices):
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            raise bad(f"choice {position} has no 'message' object")
        index = choice.get("index", position)
        content = choice["message"].get("content")
        finish_reason = choice.get("finish_reason")
        if not _is_count(index):
            raise bad(f"choice {position} has index {index!r}")
        if content is not None and not isinstance(content, str):
            raise bad(f"choice {position}'s message content is {_json_type(content)}, not a string")
        if finish_reason is not None and not isinstance(finish_reason, str):
            raise bad(f"choice {position}'s finish_reason is {_json_type(finish_reason)}, not a string")
        out.append((int(index), content or "", finish_reason or "stop"))
    out.sort(key=lambda c: c[0])
    usage = body.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise bad(f"'usage' is {_json_type(usage)}, not an object")
    counts = None
    if usage:
        counts = {}
        for key in ("prompt_tokens", "completion_tokens"):
            value = usage.get(key)
            if value is not None and not _is_count(value):
                raise bad(f"usage.{key} is {value!r}, not a token count")
            counts[key] = int(value or 0)
    return [(text, finish) for _, text, finish in out], counts


def _is_count(value: object) -> bool:
    """A non-negative whole number (JSON 3 or 3.0), not a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 0 and float(value).is_integer()


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _error_message(exc: Any) -> str:
    """The server's own error text from an openai.APIStatusError: OpenAI {"error": {"message"}},
    FastAPI {"detail"}, or the raw text."""
    try:
        raw = exc.response.text
    except Exception:  # an unreadable body: the SDK's own summary
        return str(exc.message)
    try:
        body = json.loads(raw)
    except ValueError:
        return raw[:500] or str(exc.message)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("error", "message", "detail"):
            if body.get(key):
                return str(body[key])
    return raw[:500]


def _retry_after(headers: Any) -> float | None:
    """Seconds from a retry-after-ms or Retry-After header given as a number (the HTTP-date form is ignored).

    >>> _retry_after({"retry-after": "2"}), _retry_after({"retry-after-ms": "250"}), _retry_after({})
    (2.0, 0.25, None)
    """
    for key, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            value = float(headers.get(key)) * scale
        except (TypeError, ValueError):
            continue
        if value >= 0 and value == value:  # not NaN
            return value
    return None
