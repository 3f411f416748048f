"""One reward model behind HTTP: concurrent requests share forward passes on one worker thread.

make_app(model_dir) -> a FastAPI app (run it with uvicorn; `agentprm serve` does) with:

  POST /pooling       vLLM's pooling API, the part a token-classification PRM uses, so a client
                      written against it works unchanged with `vllm serve <prm dir> --runner pooling`:
                        {"model": str?, "input": str | [str] | [int] | [[int]], "task": "token_classify",
                         "use_activation": bool?, "add_special_tokens": bool = true}
                      -> {"id", "object": "list", "created", "model",
                          "data": [{"index": i, "object": "pooling", "data": [[v] per token]}],
                          "usage": {"prompt_tokens", "total_tokens", "completion_tokens": 0}}
                      As in vLLM, a one-label head's outputs go through a sigmoid unless
                      "use_activation": false; the PRM's values M are the raw outputs (send false).
  POST /score_steps   the PRM's readout applied here (prm.batch.encode + score_encoded, the rule
                      training uses), on the env's own rendering with the PRM's token budget:
                        {"env", "messages": [{"role", "content"}, ...]}      an AgentGym-style
                            conversation: user instruction, assistant "OK. ...", user o_0, then
                            assistant a_t / user o_{t+1} turns (the instruction pair may be left out;
                            the env's own instruction is rendered, the one the PRM was trained on)
                        {"env", "trajectory": <agentprm trajectory record>}
                      -> {"scores": [M_0, ..., M_{T-1}], "initial": M_{-1} (value at the end of o_0),
                          "tokens": PRM tokens processed}
                        {"env", "state": {"initial_observation", "responses", "observations"},
                         "candidates": [a, ...]}   (beam search: prm.scorers.PRMScorer.score)
                      -> {"scores": [M(s, a) per candidate], "tokens": ...}
  GET  /health        {"status": "ok", ...} (503 once the worker has stopped)
  GET  /v1/models     the served model, as vLLM lists it

Errors are {"error": {"message", "type", "param", "code"}} (vLLM's shape) with a 4xx status for
anything the request got wrong: 400 bad JSON, fields or values (unknown env, token id outside the
vocabulary, nothing to score), 404 unknown model or path, 413 a body over max_body_bytes or more
than max_request_tokens tokens, 429 more than max_inflight requests at once (retry later).

Batching: a request is validated, rendered and tokenized on a thread of the server's pool, then
queued for the ONE thread that owns the model. That thread takes the first waiting job, gathers
whatever else arrives within window_ms (up to max_batch sequences) and runs them together: all
/score_steps trajectories in one score_encoded call, all /pooling rows in one row_values call. If a
merged batch fails, its jobs are rerun one by one so that only the culprit gets the error.

Example:
    app = make_app("runs/prm-td/model", budget=512)
    uvicorn.run(app, host="127.0.0.1", port=8000)
    # POST /score_steps {"env": "babyai", "trajectory": {...}}
    #   -> {"scores": [0.41, 0.57], "initial": 0.33, "tokens": 342}
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentprm.prm.batch import encode, row_values, score_encoded
from agentprm.prm.scorers import PRMScorer
from agentprm.prm.value import load_value_model
from agentprm.prompts import SYSTEM_PROMPTS
from agentprm.serving.batching import BatchWorker, Job
from agentprm.types import State, Step, Trajectory

log = logging.getLogger(__name__)


class Reject(Exception):
    """A request the server refuses: becomes a JSON error with `status` (always 4xx)."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


# -- request bodies (unknown fields are refused: a misspelt key would otherwise be ignored) ----------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Strict):
    role: Literal["user", "assistant"]
    content: StrictStr


class StateBody(_Strict):
    initial_observation: StrictStr
    responses: list[StrictStr] = []
    observations: list[StrictStr] = []


class StepsRequest(_Strict):
    env: StrictStr
    messages: list[Message] | None = None
    trajectory: dict[str, Any] | None = None
    state: StateBody | None = None
    candidates: list[StrictStr] | None = None


class PoolingRequest(_Strict):
    model: StrictStr | None = None
    input: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]
    task: StrictStr | None = None
    use_activation: bool | None = None
    add_special_tokens: bool = True
    encoding_format: Literal["float"] = "float"
    user: StrictStr | None = None

    @field_validator("task")
    @classmethod
    def _token_classify(cls, task: str | None) -> str | None:
        if task not in (None, "token_classify"):
            raise ValueError(f"task {task!r} is not served: a PRM server answers task 'token_classify' only")
        return task


def parse(model: type[BaseModel], body: bytes) -> Any:
    """Validate a JSON body against `model`; Reject(400) listing the first few problems."""
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        problems = []
        for err in e.errors(include_url=False)[:4]:
            where = ".".join(str(x) for x in err["loc"]) or "body"
            problems.append(f"{where}: {err['msg']}")
        more = f" (and {e.error_count() - 4} more)" if e.error_count() > 4 else ""
        raise Reject(400, f"invalid {model.__name__}: " + "; ".join(problems) + more) from None


def trajectory_from_messages(env: str, messages: list[Message]) -> Trajectory:
    """An AgentGym-style conversation -> a Trajectory to score (outcome unknown, task 0).

    The instruction pair (user instruction, assistant "OK. ...") is dropped when present, as
    agentgym.from_agentgym does; then user o_0, assistant a_0, user o_1, ... must alternate. A final
    assistant turn without a reply gets observation "" (the PRM's readout of it never sees one).

    >>> t = trajectory_from_messages("babyai", [Message(role="user", content="You see a ball."),
    ...                                         Message(role="assistant", content="Action: pick up ball 1")])
    >>> t.initial_observation, t.steps[0].response, t.steps[0].observation
    ('You see a ball.', 'Action: pick up ball 1', '')
    """
    roles = [m.role for m in messages]
    if roles[:2] == ["user", "assistant"] and messages[1].content.startswith("OK."):
        messages = messages[2:]
    if not messages:
        raise Reject(
            400, "messages holds no initial observation: give [user o_0, assistant a_0, ...]", "messages"
        )
    for i, m in enumerate(messages):
        if m.role != ("user" if i % 2 == 0 else "assistant"):
            raise Reject(
                400,
                f"after the instruction pair, messages must alternate user (observation) / assistant "
                f"(response), starting with the user's o_0; message {i} is from {m.role!r}",
                "messages",
            )
    steps = [
        Step(messages[i].content, None, messages[i + 1].content if i + 1 < len(messages) else "")
        for i in range(1, len(messages), 2)
    ]
    return Trajectory(
        env=env,
        task=0,
        initial_observation=messages[0].content,
        steps=steps,
        reward=math.nan,
        success=False,
        terminated=False,
        truncated=False,
        policy="remote",
    )


# -- the service ----------------------------------------------------------------------------------


class PRMService:
    """The model, its tokenizers, limits and worker behind make_app's endpoints."""

    def __init__(
        self,
        model_dir: str | os.PathLike,
        *,
        budget: int | None,
        max_batch: int,
        window_ms: float,
        max_request_tokens: int,
        max_inflight: int,
        max_body_bytes: int | None,
        name: str | None,
        device: str | None,
    ):
        for flag, value in (("max_batch", max_batch), ("max_request_tokens", max_request_tokens)):
            if value < 1:
                raise ValueError(f"{flag} must be >= 1, got {value}")
        if max_inflight < 1 or window_ms < 0:
            raise ValueError(f"need max_inflight >= 1 and window_ms >= 0, got {max_inflight=}, {window_ms=}")
        self.model_dir = Path(model_dir)
        self.model, tok = load_value_model(self.model_dir, device=device)
        self.model.eval()
        self.name = name or str(model_dir)  # vLLM's default model id is the path it was given
        self.budget, self.max_batch = budget, max_batch
        self.max_request_tokens, self.max_inflight = max_request_tokens, max_inflight
        # A JSON token id takes ~6 bytes and text ~4 per token; the default leaves room for escapes.
        self.max_body_bytes = max_body_bytes or 32 * max_request_tokens + 65536
        self.vocab_size = self.model.get_input_embeddings().weight.shape[0]
        self.context = int(getattr(self.model.config, "max_position_embeddings", 0) or 0) or None
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.model.config.pad_token_id
        # The worker's scorer keeps the loaded tokenizer; request threads share a copy under a lock
        # (a fast tokenizer's Rust object must not be used by two threads at once).
        self.scorer = PRMScorer(self.model, tok, budget=budget, name=self.name, batch_size=max_batch)
        self.tokenizer = copy.deepcopy(tok)
        self.tok_lock = threading.Lock()
        self.inflight = 0  # touched by the event loop only
        self.worker = BatchWorker(
            {"rows": self._rows, "trajs": self._trajs, "cands": self._cands}, max_batch, window_ms / 1000
        )
        self.worker.start()

    @contextlib.contextmanager
    def slot(self):
        """One of max_inflight request slots, or Reject(429)."""
        if self.inflight >= self.max_inflight:
            raise Reject(
                429,
                f"server busy: {self.inflight} requests in flight (max_inflight={self.max_inflight}); "
                "retry shortly or start the server with a larger --max-inflight",
            )
        self.inflight += 1
        try:
            yield
        finally:
            self.inflight -= 1

    def _too_many(self, tokens: int) -> None:
        if tokens > self.max_request_tokens:
            raise Reject(
                413,
                f"request of {tokens} tokens exceeds max_request_tokens={self.max_request_tokens}: "
                "split it into smaller requests or raise --max-request-tokens",
            )

    # request threads: validate, render, tokenize -> a Job

    def pooling_job(self, req: PoolingRequest) -> Job:
        if req.model is not None and req.model != self.name:
            raise Reject(
                404, f"The model `{req.model}` does not exist (this server serves `{self.name}`).", "model"
            )
        x = req.input
        inputs = [x] if isinstance(x, str) or (x and isinstance(x[0], int)) else list(x)
        if not inputs:
            raise Reject(
                400, "input is empty: give a string, a list of token ids, or a list of those", "input"
            )
        rows = []
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                with self.tok_lock:
                    item = self.tokenizer(item, add_special_tokens=req.add_special_tokens)["input_ids"]
            if not item:
                raise Reject(400, f"input[{i}] is empty (no tokens to score)", "input")
            bad = next((t for t in item if not 0 <= t < self.vocab_size), None)
            if bad is not None:
                raise Reject(
                    400,
                    f"input[{i}] holds token id {bad}, outside the vocabulary [0, {self.vocab_size})",
                    "input",
                )
            if self.context is not None and len(item) > self.context:
                raise Reject(
                    400,
                    f"This model's maximum context length is {self.context} tokens. However, input[{i}] "
                    f"has {len(item)} tokens. Please reduce the length of the input.",
                    "input",
                )
            rows.append(list(item))
        self._too_many(sum(len(r) for r in rows))
        return Job("rows", rows, size=len(rows))

    def steps_job(self, req: StepsRequest) -> Job:
        if req.env not in SYSTEM_PROMPTS:
            raise Reject(400, f"unknown env {req.env!r}: choose one of {sorted(SYSTEM_PROMPTS)}", "env")
        given = [k for k in ("messages", "trajectory", "state") if getattr(req, k) is not None]
        if len(given) != 1:
            raise Reject(
                400,
                f"give exactly one of messages, trajectory or state (with candidates); got {given or 'none'}",
            )
        if (req.state is None) != (req.candidates is None):
            raise Reject(400, "candidates go with state (and state needs candidates)", "candidates")
        if req.state is not None:
            return self._cands_job(req.env, req.state, req.candidates)
        if req.messages is not None:
            if not req.messages:
                raise Reject(
                    400, "messages is empty: give [user o_0, assistant a_0, user o_1, ...]", "messages"
                )
            traj = trajectory_from_messages(req.env, req.messages)
        else:
            try:
                traj = Trajectory.from_dict(req.trajectory)
            except (ValueError, TypeError) as e:
                raise Reject(400, f"trajectory: {e}", "trajectory") from None
        if traj.num_steps == 0:
            raise Reject(
                400, "the trajectory has no steps (no assistant response after o_0): nothing to score"
            )
        try:
            with self.tok_lock:
                (enc,) = encode(req.env, [traj], self.tokenizer, self.budget)
        except Exception as e:  # text the renderer or tokenizer cannot take is the request's fault
            raise Reject(
                400, f"cannot render this trajectory for the PRM ({type(e).__name__}: {e})"
            ) from None
        self._too_many(sum(len(s.ids) for s in enc.segments))
        return Job("trajs", enc, size=len(enc.segments))

    def _cands_job(self, env: str, body: StateBody, candidates: list[str]) -> Job:
        if len(body.responses) != len(body.observations):
            raise Reject(
                400,
                f"state has {len(body.responses)} responses but {len(body.observations)} observations: "
                "they pair up (observations[i] answers responses[i])",
                "state",
            )
        if not candidates:
            raise Reject(400, "candidates is empty: nothing to score", "candidates")
        state = State(body.initial_observation, tuple(body.responses), tuple(body.observations))

        # Work bound: every candidate's tokens plus the state's (its text, capped by the budget the
        # renderer truncates to); counted before the worker renders anything.
        def count(text: str) -> int:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

        with self.tok_lock:
            state_tokens = count(
                "\n".join([state.initial_observation, *state.responses, *state.observations])
            )
            cand_tokens = sum(count(c) + 1 for c in candidates)
        self._too_many(min(state_tokens, self.budget or state_tokens) + cand_tokens)
        return Job("cands", (env, state, list(candidates)), size=len(candidates))

    # the worker thread: run merged jobs on the model

    @torch.no_grad()
    def _rows(self, payloads: list[list[list[int]]]) -> list[list[list[float]]]:
        rows = [r for p in payloads for r in p]
        values = []
        for start in range(0, len(rows), self.max_batch):
            values += row_values(self.model, rows[start : start + self.max_batch], self.pad_id)
        out, k = [], 0
        for p in payloads:
            out.append([v.float().cpu().tolist() for v in values[k : k + len(p)]])
            k += len(p)
        return out

    def _trajs(self, payloads: list) -> list[dict]:
        enc = [dataclasses.replace(e, index=k) for k, e in enumerate(payloads)]
        q_prev: list[torch.Tensor] = []
        values = score_encoded(self.model, enc, len(enc), self.pad_id, self.max_batch, q_prev=q_prev)
        return [
            {"scores": v.tolist(), "initial": float(q), "tokens": sum(len(s.ids) for s in e.segments)}
            for v, q, e in zip(values, q_prev, enc, strict=True)
        ]

    def _cands(self, payloads: list) -> list[dict]:
        out = []
        for env, state, candidates in payloads:
            before = self.scorer.tokens
            scores = self.scorer.score(env, [state], [candidates])[0]
            out.append({"scores": scores, "tokens": self.scorer.tokens - before})
        return out


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, or Reject(413) as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    too_big = Reject(
        413, f"request body over {limit} bytes: split it into smaller requests or raise --max-request-tokens"
    )
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, param: str | None = None, headers: dict | None = None) -> JSONResponse:
    kind = {400: "BadRequestError", 404: "NotFoundError", 413: "RequestTooLarge", 429: "TooManyRequests"}
    body = {
        "error": {"message": message, "type": kind.get(status, "ServerError"), "param": param, "code": status}
    }
    return JSONResponse(body, status_code=status, headers=headers)


def make_app(
    model_dir: str | os.PathLike,
    *,
    budget: int | None = 512,
    max_batch: int = 32,
    window_ms: float = 2.0,
    max_request_tokens: int = 65536,
    max_inflight: int = 64,
    max_body_bytes: int | None = None,
    name: str | None = None,
    device: str | None = None,
) -> FastAPI:
    """A FastAPI app serving the reward model in `model_dir` (an HF folder: agentprm.prm.value).

    budget: the renderer's token budget for /score_steps, the PRM's training max_prompt_tokens
    (train-prm's default 512; None: no truncation). max_batch: sequences per merged forward batch;
    window_ms: how long the worker waits for more jobs after the first; max_request_tokens: tokens
    one request may make the model process (else 413); max_inflight: concurrent requests (else 429);
    max_body_bytes: request body limit (default 32 bytes per allowed token + 64 KiB); name: the model
    id in /v1/models and /pooling (default: model_dir, as vLLM). The model loads here, so a bad
    folder raises before the server starts.
    """
    service = PRMService(
        model_dir,
        budget=budget,
        max_batch=max_batch,
        window_ms=window_ms,
        max_request_tokens=max_request_tokens,
        max_inflight=max_inflight,
        max_body_bytes=max_body_bytes,
        name=name,
        device=device,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        service.worker.start()
        yield
        service.worker.stop()

    app = FastAPI(title="agentprm PRM server", lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(Reject)
    async def _reject(request: Request, exc: Reject) -> JSONResponse:
        return _error(exc.status, exc.message, exc.param, {"Retry-After": "1"} if exc.status == 429 else None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        hint = f"{request.method} {request.url.path}: {exc.detail}"
        if exc.status_code == 404:
            hint += "; endpoints: POST /pooling, POST /score_steps, GET /health, GET /v1/models"
        return _error(exc.status_code, hint)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s: %r", request.method, request.url.path, exc)
        return _error(500, f"internal error ({type(exc).__name__}: {exc}); please report it with the request")

    async def _serve(request: Request, model: type[BaseModel], make_job: Callable[[Any], Job]) -> Any:
        with service.slot():
            body = await _read_body(request, service.max_body_bytes)
            req = parse(model, body)
            job = await run_in_threadpool(make_job, req)
            return req, await asyncio.wrap_future(service.worker.submit(job))

    @app.post("/pooling")
    async def pooling(request: Request) -> JSONResponse:
        req, values = await _serve(request, PoolingRequest, service.pooling_job)
        activation = req.use_activation is not False  # vLLM's default: a sigmoid on a one-label head
        data = [
            {
                "index": i,
                "object": "pooling",
                # sigmoid as 0.5 (1 + tanh(v / 2)): no overflow for large |v|
                "data": [[0.5 * (1.0 + math.tanh(v / 2)) if activation else v] for v in row],
            }
            for i, row in enumerate(values)
        ]
        tokens = sum(len(row) for row in values)
        # JSONResponse directly: FastAPI's encoder would walk every float of a long list
        return JSONResponse(
            {
                "id": f"pool-{uuid.uuid4().hex}",
                "object": "list",
                "created": int(time.time()),
                "model": service.name,
                "data": data,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0},
            }
        )

    @app.post("/score_steps")
    async def score_steps(request: Request) -> JSONResponse:
        return JSONResponse((await _serve(request, StepsRequest, service.steps_job))[1])

    @app.get("/health")
    async def health() -> JSONResponse:
        body = {
            "status": "ok" if service.worker.alive else "worker stopped",
            "model": service.name,
            "root": str(service.model_dir),
            "budget": service.budget,
            "inflight": service.inflight,
            "queued": service.worker.queue.qsize(),
            "batches": service.worker.batches,
            "max_inflight": service.max_inflight,
            "max_request_tokens": service.max_request_tokens,
        }
        return JSONResponse(body, status_code=200 if service.worker.alive else 503)

    @app.get("/v1/models")
    async def models() -> dict:
        card = {
            "id": service.name,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "agentprm",
            "root": str(service.model_dir),
            "max_model_len": service.context,
        }
        return {"object": "list", "data": [card]}

    return app
