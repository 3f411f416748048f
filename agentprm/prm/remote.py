"""A PRM on another machine: the Scorer protocol (agentprm.search.Scorer) over HTTP.

RemotePRMScorer talks to `agentprm serve` (agentprm.serving.prm_server): the server renders each
state with the env's prompt and the PRM's own token budget and applies the readout rule, so the
scores equal an in-process PRMScorer's on the same weights and budget (to float precision; tested
in tests/test_serve.py). Requests go out `concurrency` at a time, and the server batches what
arrives together onto shared forward passes.

Failures: 429 (server busy), 5xx and connection errors are retried `retries` times with
exponential backoff (a Retry-After header is honoured); any other 4xx, or the last failure, raises
RemotePRMError quoting the server's message.

Example:
    scorer = RemotePRMScorer("http://127.0.0.1:8000", name="agentprm")
    scorer.score("babyai", [State("Your goal: go to the red ball ...")], [["Action: go to red ball 1"]])
    # -> [[0.83]]
    scorer.score_trajectories("babyai", trajs)  # -> [[M_0, ..., M_T], ...]
"""

from __future__ import annotations

import http.client
import json
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from agentprm.types import State, Trajectory

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class RemotePRMError(RuntimeError):
    """The PRM server refused a request, or could not be reached after all retries."""


class RemotePRMScorer:
    """M_phi(s_t, a_t) from a PRM server at `url` (http(s)://host:port).

    name: the reward model's name in ledgers and reports; tokens: PRM tokens the server processed
    for this scorer; timeout: seconds per HTTP attempt; retries: extra attempts after a retryable
    failure; concurrency: requests in flight at once.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str = "prm",
        timeout: float = 120.0,
        retries: int = 4,
        concurrency: int = 8,
        backoff: float = 0.5,
    ):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a PRM server URL starts with http:// or https://, got {url!r}")
        if timeout <= 0 or retries < 0 or concurrency < 1 or backoff < 0:
            raise ValueError(
                f"need timeout > 0, retries >= 0, concurrency >= 1, backoff >= 0; "
                f"got {timeout=}, {retries=}, {concurrency=}, {backoff=}"
            )
        self.url = url.rstrip("/")
        self.name, self.timeout, self.retries = name, timeout, retries
        self.concurrency, self.backoff = concurrency, backoff
        self.tokens = 0

    def score(self, env: str, states: list[State], candidates: list[list[str]]) -> list[list[float]]:
        """score(...)[i][j] = M(states[i], candidates[i][j]); one request per state."""
        payloads = [
            {
                "env": env,
                "state": {
                    "initial_observation": s.initial_observation,
                    "responses": list(s.responses),
                    "observations": list(s.observations),
                },
                "candidates": list(cands),
            }
            for s, cands in zip(states, candidates, strict=True)
            if cands
        ]
        answers = iter(self._post_all(payloads))
        return [next(answers)["scores"] if cands else [] for cands in candidates]

    def score_trajectories(self, env: str, trajs: list[Trajectory]) -> list[list[float]]:
        """M_0..M_T of whole trajectories (Best-of-N); a trajectory without steps gets []."""
        payloads = [{"env": env, "trajectory": t.to_dict()} for t in trajs if t.num_steps]
        answers = iter(self._post_all(payloads))
        return [next(answers)["scores"] if t.num_steps else [] for t in trajs]

    def score_messages(self, env: str, messages: list[dict[str, str]]) -> tuple[list[float], float]:
        """([M_0..M_T], M_{-1}) of an AgentGym-style conversation ({"role", "content"} messages)."""
        (answer,) = self._post_all([{"env": env, "messages": messages}])
        return answer["scores"], answer["initial"]

    def health(self) -> dict:
        """The server's GET /health answer (its model, budget, limits and load)."""
        return self._request("GET", "/health", None)

    def _post_all(self, payloads: list[dict]) -> list[dict]:
        if len(payloads) <= 1 or self.concurrency == 1:
            answers = [self._request("POST", "/score_steps", p) for p in payloads]
        else:
            with ThreadPoolExecutor(min(self.concurrency, len(payloads))) as pool:
                answers = list(pool.map(lambda p: self._request("POST", "/score_steps", p), payloads))
        self.tokens += sum(int(a.get("tokens", 0)) for a in answers)
        return answers

    def _request(self, method: str, path: str, payload: dict | None) -> dict:
        url = self.url + path
        data = None if payload is None else json.dumps(payload, allow_nan=False).encode()
        last = ""
        for attempt in range(self.retries + 1):
            retry_after = None
            request = urllib.request.Request(url, data=data, method=method)
            request.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as e:
                message = _message(e.read())
                if e.code not in RETRY_STATUS:
                    raise RemotePRMError(f"{method} {url} answered HTTP {e.code}: {message}") from None
                last = f"HTTP {e.code}: {message}"
                try:
                    retry_after = float(e.headers.get("Retry-After", "")) if e.headers else None
                except ValueError:  # absent, or the HTTP-date form
                    retry_after = None
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            except json.JSONDecodeError as e:
                last = f"an answer that is not JSON ({e.msg})"
            if attempt < self.retries:
                delay = self.backoff * 2**attempt * random.uniform(0.5, 1.0)
                time.sleep(max(delay, retry_after or 0.0))
        attempts = f"{self.retries + 1} attempt{'s' if self.retries else ''}"
        raise RemotePRMError(
            f"{method} {url} failed after {attempts}; last error: {last}. Is the PRM "
            f"server running? Start one with `agentprm serve --prm <train-prm run dir> --port <port>`."
        )


def _message(body: bytes) -> str:
    """The error message of a server's JSON error body ({"error": {"message": ...}}), else the text."""
    try:
        error = json.loads(body)["error"]
        return str(error["message"] if isinstance(error, dict) else error)
    except (ValueError, KeyError, TypeError):
        return body[:300].decode("utf-8", "replace")
