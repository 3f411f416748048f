"""AgentGymEnv: a Gymnasium env that plays its episodes on an AgentGym environment server, by URL.

AgentGym's env servers (its own agentenv-babyai / -textcraft / -webshop, or `agentprm serve-env`,
agentprm.serving.env_server) speak one HTTP protocol per env family. AgentGymEnv does what
AgentGym's clients (agentenv/envs/{babyai,textcraft,webshop}.py) do, behind the TextEnv contract:

    env = AgentGymEnv("http://127.0.0.1:8000", "babyai")
    obs, info = env.reset(options={"task": 7})   # POST /create (once), POST /reset {id, data_idx: 7}
    obs, reward, terminated, truncated, info = env.step("Thought: go.\\nAction: turn left")
    env.close()                                  # POST /close {id}

step(response) reads the command out of the whole response as AgentGym's client of the family
does, then POSTs it to /step: BabyAI and TextCraft take the one "Action:" line, keep only
[A-Za-z0-9, ] and send "" when there is none (babyai_agentgym.parse_response under AGENTGYM; both
clients read alike); WebShop takes the text after the last "Action:" (webshop.env.parse_webshop) and
sends "" when there is none. Two "Action:" lines in a BabyAI/TextCraft response are an error
observation with reward 0 and nothing is sent. So against `agentprm serve-env` it replays the local
babyai-agentgym, textcraft and webshop envs step for step (tests/test_serve_env.py); local textcraft
differs only on a response without "Action:" (it answers a "No 'Action' found" observation, the
server "Could not execute ").

What comes back:
  reward      the server's step reward (BabyAI's per-step "reward": AgentGym's client reports the
              cumulative "score" instead, which is info["agentgym_score"] here)
  terminated  the server's "done"; truncated is always False, since the protocol has one flag. The
              round cap is the caller's: wrap the env (gym.wrappers.TimeLimit) or gym.make an id
              registered with max_episode_steps.
  info        task, action, parse_error, success, score, available_actions (BabyAI: read from the
              observation; WebShop: GET /available_actions), server, env_id; BabyAI adds agentgym_score.
After the episode ended, a step answers EPISODE_OVER locally (TextEnv), as the local envs do.

Reliability: each request waits at most `timeout` seconds for each of connecting and reading. A
request that never reached the server (connection refused or failed, connect timeout) and an HTTP
503 are retried `retries` times with doubling pauses from `backoff` seconds; nothing else is retried,
because a step the server may have run must not run twice. Every failure raises
AgentGymServerError naming the server, the route and what to change; a 200 answer holding
{"error": ...} (how AgentGym's BabyAI and TextCraft servers refuse) is one too. Before its first
create it reads GET / (AgentGym's servers answer "This is environment BabyAI.", "... TextCraft."
or WebShop's "ok") and refuses a server of another family, whose routes may half fit.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from typing import Any

from agentprm.envs.babyai_agentgym import AGENTGYM, parse_response
from agentprm.envs.base import EPISODE_OVER, TextEnv
from agentprm.envs.react import Parsed
from agentprm.envs.webshop.env import parse_webshop

FAMILIES = ("babyai", "textcraft", "webshop")
_ACTIONS_TAIL = "\nAvailable actions: "  # BabyAI observations end with this and a JSON list
_UNBOUNDED = 2**63 - 1  # num_tasks when the caller does not know it


class AgentGymServerError(RuntimeError):
    """An AgentGym env server refused a request, answered nonsense, or could not be reached.
    `status` is the HTTP status of the answer (200 for an {"error"} answer), None without one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def resolve_family(name: str) -> str:
    """An env family, AgentGym name or one of this project's env names -> "babyai" | "textcraft" | "webshop".

    >>> resolve_family("BabyAI"), resolve_family("babyai-agentgym"), resolve_family("agentprm/WebShop-v0")
    ('babyai', 'babyai', 'webshop')
    """
    key = str(name).lower()
    if key in FAMILIES:
        return key
    from agentprm.envs import family  # the registry: short names and gym ids of this project

    try:
        return family(key)
    except ValueError:
        raise ValueError(
            f"unknown AgentGym env family {name!r:.80}: choose one of {list(FAMILIES)} "
            "(or an agentprm env name such as babyai-agentgym)"
        ) from None


def parse_agentgym(response: str, family: str) -> Parsed:
    """The command AgentGym's client of `family` sends for a model response (module docstring).

    >>> parse_agentgym("Thought: x\\nAction: go to red ball 1!", "babyai").action
    'go to red ball 1'
    >>> parse_agentgym("no action here", "textcraft").action, parse_agentgym("hmm", "webshop").action
    ('', '')
    >>> parse_agentgym("Action: a\\nAction: b", "textcraft").error[:40]
    "Error: Only one 'Action' is allowed per "
    """
    if family == "webshop":
        parsed = parse_webshop(response)
        return Parsed("", None) if parsed.error else parsed  # AgentGym's client sends "" then
    return parse_response(response, AGENTGYM)


class AgentGymEnv(TextEnv):
    """A TextEnv whose episodes run on the AgentGym env server at `url` (module docstring).

    Args:
        url: the server, e.g. "http://127.0.0.1:8000"; default $AGENTPRM_AGENTGYM_URL, else that one.
        env_family: "babyai", "textcraft" or "webshop" (AgentGym's names and this project's env
            names such as "babyai-agentgym" work too): which protocol the server speaks.
        num_tasks: how many tasks the server has; only needed to reset without options["task"]
            (the task is then drawn from the seeded RNG, as TextEnv does).
        timeout: seconds to wait for connecting, and for each read of an answer.
        retries: extra tries after a connection failure or a 503.
        backoff: the first pause before a retry, in seconds (doubling, at most 5 s).

    The server's env is created at the first reset and reused by later ones; close() frees it. An
    env the server closed for idleness is gone (steps and resets raise, saying so): close() and
    reset() again to get a new one.
    """

    def __init__(
        self,
        url: str | None = None,
        env_family: str = "babyai",
        *,
        num_tasks: int | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.2,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        self.family = resolve_family(env_family)
        from agentprm.envs import agentgym_url  # the registry imports this module lazily

        url = url or agentgym_url()
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(
                f"url {url!r:.80} must start with http:// or https:// (e.g. http://127.0.0.1:8000)"
            )
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError(
                f"need timeout > 0, retries >= 0, backoff >= 0; got {timeout}, {retries}, {backoff}"
            )
        # Unknown: any index is sent and the server checks the range.
        self.num_tasks = num_tasks or _UNBOUNDED
        self._num_tasks_known = bool(num_tasks)
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.env_id: int | None = None  # the server's id for our env, from /create
        self._id_key = "env_idx" if self.family == "webshop" else "id"
        self._score = 0.0  # BabyAI: the server's cumulative score; WebShop: the reward at Buy Now
        self._success = False
        self._actions: Any = [] if self.family != "webshop" else {"has_search_bar": False, "clickables": []}
        self._actions_text = ""  # BabyAI: the observation's "\nAvailable actions: [...]" tail

    # -- TextEnv hooks -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if not (options and "task" in options) and not self._num_tasks_known:
            raise ValueError(
                "AgentGymEnv.reset needs options={'task': i} (the server's task index), or "
                "num_tasks=N at construction to draw one from the seeded RNG"
            )
        return super().reset(seed=seed, options=options)

    def _parse(self, response: str) -> Parsed:
        return parse_agentgym(response, self.family)

    def _reset_task(self, task: int) -> tuple[str, dict]:
        if self.env_id is None:
            self.env_id = self._create()
        self._score, self._success = 0.0, False
        if self.family == "webshop":
            answer = self._call("POST", "/reset", {"env_idx": self.env_id, "session_id": task})
            obs = answer[0] if isinstance(answer, list) and answer and isinstance(answer[0], str) else None
            if obs is None:  # WebShop's reset may answer another observation mode: ask for the page
                obs = self._call("GET", "/observation", params={"env_idx": self.env_id})
        else:
            answer = self._call("POST", "/reset", {"id": self.env_id, "data_idx": task})
            obs = self._field(answer, "observation", "/reset")
        self._observed(obs)
        return obs, self._info()

    def _execute(self, command: str) -> tuple[str, float, bool, bool, dict]:
        answer = self._call("POST", "/step", {self._id_key: self.env_id, "action": command})
        obs_key = "state" if self.family == "webshop" else "observation"
        obs = self._field(answer, obs_key, "/step")
        reward = float(self._field(answer, "reward", "/step"))
        done = bool(self._field(answer, "done", "/step"))
        if self.family == "babyai":
            self._score = float(answer.get("score", self._score + reward))
            self._success = done and reward > 0
        elif self.family == "textcraft":
            self._success = self._success or reward > 0
        else:
            self._success = done and reward >= 1.0 - 1e-9
            self._score = reward if done else self._score
        self._observed(obs)
        return obs, reward, done, False, self._info()

    def _info(self) -> dict:
        if self.family == "babyai":
            score = min(max(self._score, 0.0), 1.0)
        elif self.family == "textcraft":
            score = 1.0 if self._success else 0.0
        else:
            score = self._score
        info = {
            "task": self.task,
            "success": self._success,
            "score": score,
            "available_actions": self._actions,
            "server": self.url,
            "env_id": self.env_id,
        }
        if self.family == "babyai":
            info["agentgym_score"] = self._score
        return info

    def _ended_observation(self) -> str:
        return EPISODE_OVER + self._actions_text  # BabyAI's observations all end with the action list

    def close(self):
        """POST /close for our env. A server that cannot be reached holds nothing to free (a
        warning, not an error); upstream WebShop, which has no /close, keeps the env (a warning)."""
        if self.env_id is None:
            return
        env_id, self.env_id = self.env_id, None
        try:
            self._call("POST", "/close", {self._id_key: env_id})
        except AgentGymServerError as exc:
            if exc.status not in (None, 404):
                raise
            warnings.warn(f"env {env_id} was not closed: {exc}", stacklevel=2)

    # -- the protocol ------------------------------------------------------------------------
    def _create(self) -> int:
        self._check_family()
        body = {} if self.family == "textcraft" else None
        answer = self._call("POST", "/create", body)
        env_id = answer if self.family == "webshop" else self._field(answer, "id", "/create")
        if isinstance(env_id, bool) or not isinstance(env_id, int):
            raise AgentGymServerError(
                f"{self._where('POST', '/create')} answered {answer!r:.200}, not an env id: is this an "
                f"AgentGym {self.family} server?"
            )
        return env_id

    def _check_family(self) -> None:
        """GET / names the server's env ("This is environment BabyAI." / "... TextCraft.", WebShop's
        "ok"): refuse a server of another family, whose routes may half fit and mislead."""
        try:
            hello = self._call("GET", "/")
        except AgentGymServerError as exc:
            if exc.status is None:  # no answer at all: the server is down
                raise
            return  # no hello route (a proxy, another server): nothing to check
        if not isinstance(hello, str):
            return
        served = {"ok": "webshop"}.get(hello) or hello.removeprefix("This is environment ").rstrip(
            "."
        ).lower()
        if served in FAMILIES and served != self.family:
            raise AgentGymServerError(
                f"{self._where('GET', '/')}: the server serves {served}, not {self.family}: "
                f"use AgentGymEnv(url, {served!r}) or the url of a {self.family} server"
            )

    def _observed(self, obs: str) -> None:
        """Remember what the info reports about the page: the available actions."""
        if self.family == "babyai":
            head, sep, tail = obs.rpartition(_ACTIONS_TAIL)
            try:
                actions = json.loads(tail) if sep else []
            except json.JSONDecodeError:
                actions = []
            self._actions, self._actions_text = actions, (sep + tail if sep else "")
        elif self.family == "webshop":
            self._actions = self._call("GET", "/available_actions", params={"env_idx": self.env_id})

    def _field(self, answer: Any, key: str, route: str) -> Any:
        if not isinstance(answer, dict) or key not in answer:
            raise AgentGymServerError(
                f"{self._where('POST', route)} answered {answer!r:.200} without {key!r}: is this an "
                f"AgentGym {self.family} server?"
            )
        return answer[key]

    def _where(self, method: str, route: str) -> str:
        return f"AgentGym {self.family} server {self.url}: {method} {route}"

    def _call(self, method: str, route: str, body: dict | None = None, params: dict | None = None) -> Any:
        """One request -> the decoded JSON answer; AgentGymServerError on any failure (module docstring)."""
        url = self.url + route + ("?" + urllib.parse.urlencode(params) if params else "")
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        where = self._where(method, route)
        for attempt in range(self.retries + 1):
            pause = min(self.backoff * 2**attempt, 5.0)
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    raw = answer.read()
                break
            except urllib.error.HTTPError as exc:
                raw = exc.read()
                if exc.code == 503 and attempt < self.retries:  # full or busy: it ran nothing
                    time.sleep(pause)
                    continue
                raise AgentGymServerError(
                    f"{where} answered HTTP {exc.code}: {_error_text(raw)}{_hint(exc.code)}", exc.code
                ) from None
            except urllib.error.URLError as exc:  # raised before the request was sent: safe to retry
                if attempt < self.retries:
                    time.sleep(pause)
                    continue
                raise AgentGymServerError(
                    f"{where}: could not connect after {self.retries + 1} tries ({exc.reason}); start the "
                    f"server (e.g. `agentprm serve-env --env {self.family} --port PORT`) or fix the url "
                    "(url=..., or $AGENTPRM_AGENTGYM_URL for the agentgym-* envs of the recipes)"
                ) from None
            except TimeoutError:
                raise AgentGymServerError(
                    f"{where}: no answer within {self.timeout:g} s (timeout); the server is stuck or "
                    "overloaded: raise timeout= or check the server"
                ) from None
            except (http.client.HTTPException, OSError) as exc:  # the connection broke mid-answer
                raise AgentGymServerError(
                    f"{where}: the connection broke before a full answer ({type(exc).__name__}: {exc}); "
                    "the server may have crashed"
                ) from None
        try:
            decoded = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise AgentGymServerError(f"{where} answered a body that is not JSON: {raw[:200]!r}") from None
        if isinstance(decoded, dict) and "error" in decoded:  # AgentGym's BabyAI/TextCraft refusal
            raise AgentGymServerError(f"{where}: the server says: {decoded['error']}", 200)
        return decoded


def _error_text(raw: bytes) -> str:
    """An error answer's body -> its message ({"error"} or FastAPI's {"detail"}) or its start."""
    try:
        decoded = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return repr(raw[:200])
    if isinstance(decoded, dict):
        for key in ("error", "detail"):
            if key in decoded:
                return str(decoded[key])[:500]
    return repr(raw[:200])


def _hint(status: int) -> str:
    return {
        404: " (no such env or route: is the url right, and the env still live?)",
        422: " (the server rejected the request body: is this the right env family?)",
        503: " (still refused after the retries: the server is full; close envs or raise its --max-envs)",
    }.get(status, "")
