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

Transport is the standard library's urllib: the brief preferred httpx, but `httpx` is not importable
in this environment and the package adds no dependency for one HTTP POST.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor

from agentprm.policy import Generation, Messages, SamplingParams

log = logging.getLogger(__name__)

# 408 (request timeout) and 409 (conflict, e.g. an overloaded router) are transient like 429 and 5xx.
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


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
    """The server refused a request, or could not be reached after all retries."""


class OpenAIServerPolicy:
    """Sample from a model behind an OpenAI-compatible /chat/completions endpoint.

    Request per state: {model, messages, n, temperature, top_p, max_tokens=params.max_new_tokens,
    seed (the state's own from `seeds`, else params.seed, if set), stop (if set)}. temperature=0.0 is sent as 0 (greedy on vLLM/SGLang/llama.cpp).

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

    Errors: connection errors, timeouts, HTTP 408/409/429/5xx are retried up to max_retries times
    with exponential backoff and jitter (backoff * 2**attempt seconds, capped at max_backoff, times a
    random factor in [0.5, 1]; a 429's Retry-After is honoured up to max_backoff). Any other 4xx
    raises OpenAIServerError at once with the server's message and what to change (a model the
    server does not serve -> the models it lists at GET {base_url}/models).

    `timeout` bounds each socket operation (connect, each read), not the whole request.

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
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError(
                f"need concurrency >= 1, max_retries >= 0, timeout > 0; "
                f"got {concurrency=}, {max_retries=}, {timeout=}"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{model}"
        # Local servers (vLLM, SGLang, llama.cpp) accept any key unless started with --api-key.
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "EMPTY")
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.stop = list(stop) if stop else None
        self.backoff = backoff
        self.max_backoff = max_backoff

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
        per_state = seeds if seeds is not None else [params.seed] * len(states)
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(states))) as pool:
            futures = [
                pool.submit(self._sample_state, messages, params, seed)
                for messages, seed in zip(states, per_state, strict=True)
            ]
            try:
                return [f.result() for f in futures]
            except BaseException:
                # Fail fast: do not keep retrying the other states against a server that is down.
                for f in futures:
                    f.cancel()
                raise

    def _sample_state(self, messages: Messages, params: SamplingParams, seed: int | None) -> list[Generation]:
        gens: list[Generation] = []
        prompt_tokens: int | None = None
        while len(gens) < params.n:
            body = {
                "model": self.model,
                "messages": messages,
                "n": params.n - len(gens),
                "temperature": params.temperature,
                "top_p": params.top_p,
                "max_tokens": params.max_new_tokens,
            }
            if seed is not None:
                body["seed"] = seed + len(gens)
            if self.stop:
                body["stop"] = self.stop
            resp = self._post("/chat/completions", body)
            choices = sorted(resp.get("choices") or [], key=lambda c: c.get("index", 0))
            if not choices:
                raise OpenAIServerError(f"{self.base_url}/chat/completions returned no choices: {resp}")
            choices = choices[: params.n - len(gens)]
            usage = resp.get("usage") or {}
            if not usage:
                warnings.warn(
                    f"{self.base_url} sent no 'usage'; token counts are recorded as 0", stacklevel=2
                )
            if prompt_tokens is None:
                prompt_tokens = int(usage.get("prompt_tokens", 0))
            per_choice, extra = divmod(int(usage.get("completion_tokens", 0)), len(choices))
            for i, choice in enumerate(choices):
                gens.append(
                    Generation(
                        text=(choice.get("message") or {}).get("content") or "",
                        prompt_tokens=prompt_tokens,
                        completion_tokens=per_choice + (1 if i < extra else 0),
                        finish_reason=choice.get("finish_reason") or "stop",
                    )
                )
        return gens

    def _request(self, method: str, path: str, body: dict | None, timeout: float) -> dict:
        """One HTTP exchange; returns the decoded JSON body, raises HTTPError / OSError on failure."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.api_key}",
                "Content-Type": "application/json",
                "User-Agent": "agentprm",
            },
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise OpenAIServerError(
                f"{method} {self.base_url + path} answered with non-JSON: {raw[:300]!r}"
            ) from exc

    def _post(self, path: str, body: dict) -> dict:
        url = self.base_url + path
        last = ""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                return self._request("POST", path, body, self.timeout)
            except urllib.error.HTTPError as exc:
                message = _error_message(exc)
                if exc.code not in RETRY_STATUS:
                    raise OpenAIServerError(self._explain(exc.code, message)) from None
                last = f"HTTP {exc.code}: {message}"
                retry_after = _retry_after(exc)
            except (OSError, http.client.HTTPException) as exc:
                # URLError (connection refused, DNS), TimeoutError, ConnectionResetError, and
                # RemoteDisconnected / IncompleteRead from a server that died mid-answer.
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt == self.max_retries:
                break
            delay = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
            if retry_after is not None:
                delay = min(self.max_backoff, max(delay, retry_after))
            log.warning(
                "POST %s failed (%s); retry %d/%d in %.1fs", url, last, attempt + 1, self.max_retries, delay
            )
            time.sleep(delay)
        raise OpenAIServerError(
            f"POST {url} failed after {self.max_retries + 1} attempts; last error: {last}. "
            f"Is the server running at {self.base_url} and is it healthy? Start one with e.g.\n"
            + serve_instructions(self.model)
        )

    def _list_models(self) -> list[str] | None:
        """Model ids from GET {base_url}/models, or None if the server does not answer that."""
        try:
            resp = self._request("GET", "/models", None, min(self.timeout, 10.0))
            return [str(m["id"]) for m in resp.get("data", [])]
        except (OSError, http.client.HTTPException, OpenAIServerError, KeyError, TypeError, AttributeError):
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


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The server's own error text: OpenAI {"error": {"message"}}, FastAPI {"detail"}, or raw text."""
    try:
        raw = exc.read().decode("utf-8", "replace")
    except OSError:
        return exc.reason or ""
    try:
        body = json.loads(raw)
    except json.JSONDecodeError:
        return raw[:500] or str(exc.reason)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("error", "message", "detail"):
            if body.get(key):
                return str(body[key])
    return raw[:500]


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    """Seconds from a Retry-After header given as a number (the HTTP-date form is ignored)."""
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
