"""AgentGym's environment-server HTTP protocol over this project's envs: make_app(env_name).

AgentGym (WooooDyy/AgentGym) runs each env family as its own FastAPI server; its clients
(agentenv/envs/{babyai,textcraft,webshop}.py) create an env, reset it to a task index, step it with
the command they read out of the model's response, and close it. make_app serves one of our envs
with the routes and JSON shapes of its family's server, so that AgentGym's clients, and
agentprm.envs.agentgym_remote.AgentGymEnv, drive it unchanged:

  BabyAI (babyai, babyai-agentgym)
    POST /create                        -> {"id": int}
    POST /reset {id, data_idx}          -> {observation, reward, score, deleted, done}
    POST /step {id, action}             -> {observation, reward, score, done}
    GET  /observation?id=               -> {observation, reward, score, done, deleted}
    POST /close {id}                    -> true | false
  TextCraft (textcraft)
    POST /create {commands?, goal?}     -> {id, observation, done, reward}   (reset to task id % 544)
    POST /reset {id, data_idx = 0}      -> {id, observation, done, reward}
    POST /step {id, action}             -> {observation, reward, done}
    GET  /observation?id=               -> str; /commands, /goal -> str; /detail -> {observation, ...}
    POST /close {id}                    -> true | false
  WebShop (webshop)
    POST /create                        -> int   (reset to a random goal, as upstream)
    POST /reset {env_idx, session_id?}  -> [observation, null]
    POST /step {env_idx, action}        -> {state, reward, done, info: null}
    GET  /observation, /instruction_text -> str; /available_actions -> {has_search_bar, clickables}
    POST /close {env_idx}               -> true | false   (upstream has none and keeps every env)
  every family: GET / (a hello string), GET /list_envs -> the live ids

"reward" is the env's step reward; BabyAI's "score" is the sum of the episode's step rewards
(AgentGym's cumulative score, which its BabyAI client reports as the reward); "done" is terminated or
truncated. "action" is the command the client already read out of the response (AgentGym's clients
parse, its servers do not); an action holding "Action:" is read as a whole ReAct response by the
env's own parser instead.

Errors come back as AgentGym's servers return them: BabyAI and TextCraft answer HTTP 200 with
{"error": "..."}; WebShop, whose upstream answers a bare 500, answers {"error": "..."} with 400 (a
bad task index or request), 404 (no such env: closed, expired or never created), 501 or 500. In every
family a full server answers 503 {"error"} with Retry-After (AgentGym's WebShop client retries
503), and a body that lacks a field answers 422 (FastAPI's validation, as upstream).

Lifecycle: at most max_envs live envs; one that no request used for idle_seconds is closed (a
background sweep, and a sweep before refusing a create), and a request for it says it expired; close
frees it at once. Requests to one env run one at a time; different envs step in parallel threads.

Deliberate differences from AgentGym's servers: no env is ever shared (upstream's WebShop hands
out an existing env once 8000 exist); envs expire; TextCraft's /create {commands} (a custom recipe
list) is refused, while {goal} alone picks that goal's task; BabyAI's data_idx must lie in range
(TextCraft's wraps around the 544 goals, as upstream); WebShop's /state (url, html) answers 501,
since the env renders text, not HTML; /instruction_text is "Instruction: <goal>", the search page's
form; no round cap on the server (as upstream: the client counts rounds).

Example:
    app = make_app("babyai-agentgym", max_envs=256, idle_seconds=600)
    uvicorn.run(app, host="127.0.0.1", port=8000)   # `agentprm serve-env` does this
    # POST /create -> {"id": 0}; POST /reset {"id": 0, "data_idx": 7} -> {"observation": "Your goal: ...", ...}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import agentprm.envs as E
from agentprm.envs.react import format_react

log = logging.getLogger(__name__)

HELLO = {
    "babyai": "This is environment BabyAI.",
    "textcraft": "This is environment TextCraft.",
    "webshop": "ok",
}
_GONE_REMEMBERED = 10_000  # how many closed/expired ids keep their reason (bounded: no leak)


class EnvServerError(Exception):
    """A request the server refuses: `status` is the HTTP status WebShop answers (BabyAI and
    TextCraft answer 200 with {"error"}, except 503 for a full server)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# -- the live envs -------------------------------------------------------------------------------
@dataclass
class Slot:
    """One live env and what the protocol reports about it (the last observation, reward, ...)."""

    env: Any  # None once closed or expired
    last_used: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: bool = False  # reset at least once
    first_obs: str = ""
    obs: str = ""
    reward: float = 0.0
    score: float = 0.0  # the sum of the episode's step rewards
    done: bool = False  # the episode ended (stays True until the next reset)
    info: dict = field(default_factory=dict)


class EnvPool:
    """Live envs keyed by id (0, 1, 2, ... in creation order), at most `max_envs` of them; one unused
    for `idle_seconds` is closed by expire(). Thread-safe: use(id) holds that env's lock, so requests
    to one env run one at a time.

    >>> pool = EnvPool(lambda: E.make("textcraft").unwrapped, max_envs=1, idle_seconds=60)
    >>> env_id = pool.create()
    >>> with pool.use(env_id) as slot:
    ...     slot.env.reset(options={"task": 0})[0][-26:]
    'Goal: craft acacia planks.'
    >>> pool.create()
    Traceback (most recent call last):
    ...
    agentprm.serving.env_server.EnvServerError: env server full: 1 live envs (max_envs=1). Close envs you no longer need (POST /close), wait for idle ones to expire (idle_seconds=60), or restart the server with a larger --max-envs
    >>> pool.close(env_id), pool.close(env_id), len(pool)
    (True, False, 0)
    """

    def __init__(
        self,
        make_env: Callable[[], Any],
        max_envs: int,
        idle_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_envs < 1:
            raise ValueError(f"max_envs must be >= 1, got {max_envs}")
        if not idle_seconds > 0:
            raise ValueError(f"idle_seconds must be > 0, got {idle_seconds}")
        self.max_envs, self.idle_seconds = max_envs, idle_seconds
        self._make_env, self._clock = make_env, clock
        self._slots: dict[int, Slot] = {}
        self._gone: OrderedDict[int, str] = OrderedDict()  # id -> why it is no longer live
        self._next_id = 0
        self._pending = 0  # creates in progress (their envs are being built outside the lock)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._slots)

    def ids(self) -> list[int]:
        with self._lock:
            return sorted(self._slots)

    def create(self) -> int:
        """Build a new env -> its id; EnvServerError(503) when max_envs are live and none is idle."""
        with self._lock:
            if len(self._slots) + self._pending >= self.max_envs:
                self._expire_locked()
            if len(self._slots) + self._pending >= self.max_envs:
                raise EnvServerError(
                    503,
                    f"env server full: {len(self._slots) + self._pending} live envs (max_envs={self.max_envs}). "
                    f"Close envs you no longer need (POST /close), wait for idle ones to expire "
                    f"(idle_seconds={self.idle_seconds:g}), or restart the server with a larger --max-envs",
                )
            env_id, self._next_id = self._next_id, self._next_id + 1
            self._pending += 1
        try:
            env = self._make_env()  # outside the lock: building an env may take milliseconds
        except Exception as exc:
            log.exception("building env %d failed", env_id)
            raise EnvServerError(500, f"could not build an env: {type(exc).__name__}: {exc}") from exc
        finally:
            with self._lock:
                self._pending -= 1
        with self._lock:
            self._slots[env_id] = Slot(env, self._clock())
        return env_id

    @contextlib.contextmanager
    def use(self, env_id: int) -> Iterator[Slot]:
        """Hold env `env_id` for one request; EnvServerError(404) saying why when it is not live."""
        with self._lock:
            slot = self._slots.get(env_id)
            if slot is not None:
                slot.last_used = self._clock()  # so that a sweep now does not take it
        if slot is None:
            raise EnvServerError(404, self._missing(env_id))
        with slot.lock:
            if slot.env is None:  # closed or expired between the lookup and the lock
                raise EnvServerError(404, self._missing(env_id))
            try:
                yield slot
            finally:
                slot.last_used = self._clock()

    def close(self, env_id: int) -> bool:
        """Close env `env_id` (waiting for a request in progress on it); False if it was not live."""
        with self._lock:
            slot = self._slots.pop(env_id, None)
            if slot is not None:
                self._remember(env_id, "was closed")
        if slot is None:
            return False
        with slot.lock:
            env, slot.env = slot.env, None
        env.close()
        return True

    def expire(self) -> int:
        """Close every env unused for idle_seconds (skipping one a request holds) -> how many."""
        with self._lock:
            return self._expire_locked()

    def close_all(self) -> None:
        for env_id in self.ids():
            self.close(env_id)

    def _expire_locked(self) -> int:
        now, closed = self._clock(), []
        for env_id, slot in list(self._slots.items()):
            if now - slot.last_used < self.idle_seconds or not slot.lock.acquire(blocking=False):
                continue
            try:
                closed.append(slot.env)
                slot.env = None
            finally:
                slot.lock.release()
            del self._slots[env_id]
            self._remember(env_id, f"expired after {self.idle_seconds:g} s unused")
        for env in closed:
            env.close()
        return len(closed)

    def _remember(self, env_id: int, why: str) -> None:
        self._gone[env_id] = why
        while len(self._gone) > _GONE_REMEMBERED:
            self._gone.popitem(last=False)

    def _missing(self, env_id: int) -> str:
        with self._lock:
            why = self._gone.get(env_id)
            made = 0 <= env_id < self._next_id
        if why is None and not made:
            return f"no env {env_id} on this server: ids come from POST /create"
        return f"env {env_id} {why or 'is no longer live'}: create a new one with POST /create"


# -- request bodies (AgentGym's field names) -----------------------------------------------------
class IdBody(BaseModel):
    id: int


class IdStep(BaseModel):
    id: int
    action: str


class BabyAIReset(BaseModel):
    id: int
    data_idx: int


class TextCraftCreate(BaseModel):
    commands: str | None = None
    goal: str | None = None


class TextCraftReset(BaseModel):
    id: int
    data_idx: int = 0


class WebShopStep(BaseModel):
    env_idx: int
    action: str


class WebShopReset(BaseModel):
    env_idx: int
    session_id: int | None = None


class WebShopClose(BaseModel):
    env_idx: int


# -- env calls shared by the families -----------------------------------------------------------
def _env_call(fn: Callable, *args, **kwargs):
    """Run an env method; its ValueError (a bad task index or goal) -> 400, anything else -> 500."""
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        raise EnvServerError(400, str(exc)) from exc
    except Exception as exc:
        log.exception("env call %s failed", getattr(fn, "__name__", fn))
        raise EnvServerError(500, f"the env failed: {type(exc).__name__}: {exc}") from exc


def _reset(slot: Slot, options: dict | None) -> str:
    obs, info = _env_call(slot.env.reset, options=options)
    slot.started, slot.first_obs, slot.obs, slot.info = True, obs, obs, info
    slot.reward, slot.score, slot.done = 0.0, 0.0, False
    return obs


def _step(slot: Slot, env_id: int, action: str) -> tuple[str, float, bool]:
    if not slot.started:
        raise EnvServerError(400, f"env {env_id} has no episode yet: POST /reset before /step")
    # The client sent the bare command; the env's step() takes a whole response and reads the
    # command back out of format_react's "Action:" line (a no-op for a command AgentGym's client
    # cleaned). A client that sent the whole response is parsed by the env's own rules.
    response = action if "Action:" in action else format_react("", action)
    obs, reward, terminated, truncated, info = _env_call(slot.env.step, response)
    slot.obs, slot.reward, slot.info = obs, float(reward), info
    slot.score += float(reward)
    slot.done = slot.done or bool(terminated or truncated)
    return obs, float(reward), bool(terminated or truncated)


# -- the app -------------------------------------------------------------------------------------
def make_app(env_name: str, *, max_envs: int = 1024, idle_seconds: float = 3600.0) -> FastAPI:
    """A FastAPI app serving env `env_name` (babyai, babyai-agentgym, textcraft, webshop or a
    registered id) with AgentGym's protocol for its family (module docstring).

    max_envs bounds the live envs (a create beyond it answers 503); an env unused for idle_seconds
    is closed. app.state.pool is the EnvPool (len(pool) = live envs). The envs have no round cap.
    """
    name = E.short_name(env_name)
    family = E.family(name)
    if family not in HELLO:  # the math envs: AgentGym has no server for them
        raise ValueError(
            f"serve-env speaks AgentGym's protocols, which exist for {sorted(HELLO)} only, not {name!r}"
        )
    # The round cap is the client's (AgentGym's servers have none): drop the registered TimeLimit.
    pool = EnvPool(lambda: E.make(name).unwrapped, max_envs, idle_seconds)
    sweep_every = min(max(idle_seconds / 4, 0.01), 30.0)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        async def sweep():
            while True:
                await asyncio.sleep(sweep_every)
                # In a worker thread: closing envs must not stall the event loop.
                await asyncio.to_thread(pool.expire)

        task = asyncio.create_task(sweep())
        try:
            yield
        finally:
            task.cancel()
            pool.close_all()

    app = FastAPI(title=f"agentprm {name} env server (AgentGym protocol)", lifespan=lifespan)
    app.state.pool, app.state.env_name = pool, name

    @app.exception_handler(EnvServerError)
    async def refused(request, exc: EnvServerError):
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        status = exc.status if family == "webshop" or exc.status == 503 else 200
        return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)

    @app.get("/")
    def hello():
        return HELLO[family]

    @app.get("/list_envs")
    def list_envs():
        return pool.ids()

    {"babyai": _babyai_routes, "textcraft": _textcraft_routes, "webshop": _webshop_routes}[family](app, pool)
    return app


def _babyai_routes(app: FastAPI, pool: EnvPool) -> None:
    def with_goal(slot: Slot) -> str:
        # AgentGym's /observation always starts with the goal, even after the first step.
        goal = slot.info.get("goal", "")
        return slot.obs if slot.obs.startswith("Your goal: ") else f"Your goal: {goal}\n{slot.obs}"

    @app.post("/create")
    def create():
        return {"id": pool.create()}

    @app.post("/reset")
    def reset(body: BabyAIReset):
        with pool.use(body.id) as slot:
            obs = _reset(slot, {"task": body.data_idx})
        return {"observation": obs, "reward": 0.0, "score": 0.0, "deleted": False, "done": False}

    @app.post("/step")
    def step(body: IdStep):
        with pool.use(body.id) as slot:
            if slot.done:  # AgentGym's server refuses a step after done with this message
                raise EnvServerError(400, f"The task with environment {body.id} has finished.")
            obs, reward, done = _step(slot, body.id, body.action)
            return {"observation": obs, "reward": reward, "score": slot.score, "done": done}

    @app.get("/observation")
    def observation(id: int):
        with pool.use(id) as slot:
            if not slot.started:
                obs = "Environment not initialized"
                return {"observation": obs, "reward": 0, "score": 0, "done": False, "deleted": False}
            return {
                "observation": with_goal(slot),
                "reward": slot.reward,
                "score": slot.score,
                "done": slot.done,
                "deleted": False,
            }

    @app.post("/close")
    def close(body: IdBody):
        return pool.close(body.id)


def _textcraft_routes(app: FastAPI, pool: EnvPool) -> None:
    @app.post("/create")
    def create(body: TextCraftCreate | None = None):
        body = body or TextCraftCreate()
        if body.commands is not None:
            raise EnvServerError(
                400,
                "custom crafting commands are not supported by this server: send only "
                '{"goal": "<item>"} (one of the 544 goals) or an empty body',
            )
        env_id = pool.create()
        try:
            with pool.use(env_id) as slot:
                num_tasks = slot.env.num_tasks
                # AgentGym resets a new env to task id (mod the goal count); a goal names its own task.
                options = {"goal": body.goal} if body.goal else {"task": env_id % num_tasks}
                obs = _reset(slot, options)
        except EnvServerError:
            pool.close(env_id)
            raise
        return {"id": env_id, "observation": obs, "done": False, "reward": 0}

    @app.post("/reset")
    def reset(body: TextCraftReset):
        with pool.use(body.id) as slot:
            obs = _reset(slot, {"task": body.data_idx % slot.env.num_tasks})  # wraps, as upstream
        return {"id": body.id, "observation": obs, "done": False, "reward": 0}

    @app.post("/step")
    def step(body: IdStep):
        with pool.use(body.id) as slot:
            obs, reward, done = _step(slot, body.id, body.action)
        return {"observation": obs, "reward": reward, "done": done}

    @app.get("/observation")
    def observation(id: int):
        with pool.use(id) as slot:
            return slot.obs

    @app.get("/commands")
    def commands(id: int):
        with pool.use(id) as slot:
            # The reset observation is "Crafting commands:\n<lines>\n\nGoal: craft <item>."
            return slot.first_obs.removeprefix("Crafting commands:\n").rpartition("\n\nGoal: ")[0]

    @app.get("/goal")
    def goal(id: int):
        with pool.use(id) as slot:
            return slot.info.get("goal", "")

    @app.get("/detail")
    def detail(id: int):
        with pool.use(id) as slot:
            return {"observation": slot.obs, "done": slot.done, "reward": slot.reward, "deleted": False}

    @app.post("/close")
    def close(body: IdBody):
        return pool.close(body.id)


def _webshop_routes(app: FastAPI, pool: EnvPool) -> None:
    @app.post("/create")
    def create():
        env_id = pool.create()
        try:
            with pool.use(env_id) as slot:
                _reset(slot, None)  # upstream resets a new env to a random goal
        except EnvServerError:
            pool.close(env_id)
            raise
        return env_id

    @app.post("/reset")
    def reset(body: WebShopReset):
        with pool.use(body.env_idx) as slot:
            options = None if body.session_id is None else {"task": body.session_id}
            return [_reset(slot, options), None]

    @app.post("/step")
    def step(body: WebShopStep):
        with pool.use(body.env_idx) as slot:
            obs, reward, done = _step(slot, body.env_idx, body.action)
        return {"state": obs, "reward": reward, "done": done, "info": None}

    @app.get("/observation")
    def observation(env_idx: int):
        with pool.use(env_idx) as slot:
            return slot.obs

    @app.get("/available_actions")
    def available_actions(env_idx: int):
        with pool.use(env_idx) as slot:
            return slot.info.get("available_actions", {"has_search_bar": False, "clickables": []})

    @app.get("/instruction_text")
    def instruction_text(env_idx: int):
        with pool.use(env_idx) as slot:
            return "Instruction: " + slot.info.get("goal", "")

    @app.get("/state")
    def state(env_idx: int):
        raise EnvServerError(501, "this WebShop renders text pages only: /state (url, html) is not served")

    @app.post("/close")
    def close(body: WebShopClose):
        return pool.close(body.env_idx)
