"""`agentprm ppo`: multi-turn PPO of a policy with the environment's outcome or a reward model as the
reward (the paper's Section 5.2 and Figure 5), top to bottom in one file.

Each iteration:
  1. rollouts: `--tasks-per-iter` training tasks drawn (seeded by the iteration) x `--samples`
     episodes at `--temperature`, through the batched collector (prefix-cached decoding);
  2. rewards per turn (agentprm.ppo.turn_rewards): the outcome alone (`--reward env`) or a reward
     model's scores read in one pass per trajectory (orm: the final step's score; pvm / agentprm:
     progress M_t - M_{t-1} with M_{-1} read at o_0), plus the outcome weighted by --outcome-coef;
  3. the trajectories rendered exactly as the policy saw them (prompts.training_segments), the
     rollout policy's and the frozen reference's token log-probabilities, and the critic's V(s_t)
     read at the last prompt token before each response;
  4. GAE over turns (agentprm.ppo.turn_gae), every token of a response sharing its turn's
     advantage, advantages whitened over the batch's response tokens;
  5. `--epochs` passes of minibatches: clipped surrogate on the response tokens only, plus
     --kl-coef x KL(pi || pi_ref) (k3 estimator, in the loss) minus --entropy-coef x entropy, gradient
     clipping; the critic (a separate value model initialised from the policy) by a clipped loss.
Every iteration is checkpointed (policy, critic, optimizers, random states) and resumes where it
stopped; before the first iteration and every --eval-every iterations the greedy policy plays
--eval-tasks. Outputs under
--run-dir: metrics.jsonl (one line per iteration, evaluations too), eval/greedy_it<N>.jsonl (each
evaluation's trajectories, for paired comparisons), checkpoint.pt, model/ (the final policy, an HF
folder).
"""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import torch
from rich.progress import Progress

import agentprm.envs as E
from agentprm import jsonl, ppo, rundir
from agentprm import validate as V
from agentprm.envs.splits import parse_tasks
from agentprm.models.loading import load_policy_model
from agentprm.policies.hf import HFPolicy
from agentprm.policy import SamplingParams, derive_seed
from agentprm.prm.batch import collate, encode, score_encoded
from agentprm.prm.value import load_value_model, reward_model_folder
from agentprm.rollout import collect
from agentprm.types import write_trajectories

# Arguments a resumed run may change: a longer budget, evaluation cadence, batching.
RESUME_NEUTRAL = frozenset({"iterations", "eval_every", "batch_size", "threads"})


@dataclasses.dataclass
class Args:
    policy: str = "runs/sft/model"
    """the policy to improve (an HF folder: an SFT model); also the frozen KL reference and the critic's start"""
    env: str = "babyai"
    """environment"""
    reward: str = "env"
    """env (the outcome), orm, pvm, agentprm or mc (a reward model's scores; give --prm)"""
    prm: Path | None = None
    """the reward model: a train-prm run dir (its model/) or an HF folder"""
    outcome_coef: float = 1.0
    """weight of the environment's outcome added at the last turn when a reward model rewards"""
    tasks: str = "train"
    """where the rollout tasks are drawn from"""
    eval_tasks: str = "test"
    """greedy evaluation tasks"""
    iterations: int = 20
    """PPO iterations (rollouts + updates)"""
    tasks_per_iter: int = 16
    """tasks drawn per iteration"""
    samples: int = 4
    """episodes per task per iteration"""
    temperature: float = 1.0
    """rollout sampling temperature"""
    epochs: int = 2
    """passes over each iteration's batch"""
    minibatch: int = 8
    """trajectory segments per optimizer step"""
    lr: float = 1e-5
    """policy learning rate (1e-5: the paper's rate for pretrained models; ppo-compare gives a study of the
    from-scratch tiny preset 3e-5: its docstring says why)"""
    critic_lr: float = 1e-4
    """critic learning rate"""
    clip: float = 0.2
    """PPO ratio clip"""
    value_clip: float = 0.2
    """critic value clip"""
    kl_coef: float = 0.05
    """weight of KL(pi || pi_ref) in the loss"""
    kl_clamp: float | None = None
    """cap on each token's k3 term in the loss (OpenRLHF caps it at 10; a capped token adds no KL
    gradient). None: uncapped, as in the Figure 5 runs of benchmarks/README.md, whose rare tokens gave
    k3 terms up to 1e5 (train/kl_max logs the uncapped largest term either way)"""
    entropy_coef: float = 0.0
    """entropy bonus"""
    gamma: float = 1.0
    """discount over turns"""
    lam: float = 0.95
    """GAE lambda over turns"""
    max_grad_norm: float = 1.0
    """gradient clipping"""
    eval_every: int = 5
    """greedy evaluation every this many iterations (and after the last)"""
    max_rounds: int | None = None
    """round cap; default: the env's"""
    max_new_tokens: int = 96
    """per response"""
    max_prompt_tokens: int = 512
    """the renderer's budget (use the one the policy was trained with)"""
    batch_size: int = 64
    """prompts per generate call"""
    run_dir: Path = Path("runs/ppo")
    """output folder"""
    threads: int | None = None
    """torch CPU threads"""
    seed: int = 0
    """seeds task draws, sampling and the critic's head"""
    overwrite: bool = False
    """start this run dir afresh (delete what it holds) instead of resuming it"""

    def __post_init__(self) -> None:  # range checks at the edge (agentprm/validate.py)
        V.one_of(self, "reward", ppo.REWARD_SOURCES)
        V.at_least(self, 1, "iterations", "tasks_per_iter", "samples", "epochs", "minibatch", "eval_every")
        V.positive(self, "lr", "critic_lr", "clip", "value_clip", "max_grad_norm", "kl_clamp")
        V.at_least(self, 0.0, "kl_coef", "entropy_coef", "outcome_coef", "temperature")
        V.within(self, "gamma", 0.0, 1.0)
        V.within(self, "lam", 0.0, 1.0)
        if self.reward != "env" and self.prm is None:
            raise ValueError(
                f"--reward {self.reward} needs --prm (a train-prm run dir or a reward-model folder)"
            )


def _load_reward_model(path: Path, policy_tok):
    """The reward model and its tokenizer; errors that say what to give instead."""
    folder = reward_model_folder(path)
    if not (folder / "config.json").exists():
        raise SystemExit(f"--prm {path}: no reward model there (no config.json); give a train-prm run dir")
    import json

    arch = json.loads((folder / "config.json").read_text()).get("architectures") or []
    if not any(a.endswith("ForTokenClassification") for a in arch):
        raise SystemExit(
            f"--prm {path}: {arch} is not a reward model (a *ForTokenClassification folder from train-prm)"
        )
    model, tok = load_value_model(folder)
    if tok.get_vocab() != policy_tok.get_vocab():
        raise SystemExit(
            f"--prm {path}: its tokenizer differs from the policy's; train the PRM from this policy"
        )
    model.eval().requires_grad_(False)
    return model, tok


def _turn_layout(segment) -> tuple[list[int], list[int]]:
    """(turn of every token: -1 outside the trained responses, the critic's read position per turn
    of the segment: the last prompt token before the response's first token)."""
    turn_of, reads = [-1] * len(segment.ids), []
    previous_end = -1
    for step, end in zip(segment.steps, segment.step_ends, strict=True):
        tokens = [k for k in range(previous_end + 1, end + 1) if segment.mask[k] != 0]
        for k in tokens:
            turn_of[k] = step
        reads.append((tokens[0] if tokens else end) - 1)
        previous_end = end
    return turn_of, reads


def _forward_logp(model, ids, att) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(input_ids=ids, attention_mask=att).logits
    return ppo.token_logprobs(logits, ids), logits


def eval_path(run: Path, iteration: int) -> Path:
    """Where the greedy evaluation after `iteration` iterations keeps its trajectories."""
    return Path(run) / "eval" / f"greedy_it{iteration}.jsonl"


def _evaluate(env, tasks, model, tok, args, out: Path | None = None) -> dict:
    """Greedy success rate and mean reward on `tasks` (the policy in eval mode); the trajectories,
    in task order, replace `out` when given (a resumed run redoes an evaluation whole)."""
    model.eval()
    policy = HFPolicy(
        model,
        tok,
        batch_size=args.batch_size,
        max_prompt_tokens=args.max_prompt_tokens,
        prefix_cache=True,
        name=f"ppo:{args.run_dir}",  # the run's policy (its folder's name would be the SFT policy's)
    )
    trajs = []
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=args.max_new_tokens, seed=args.seed)
    collect(env, [(t, 0) for t in tasks], policy, params, on_done=trajs.append, max_rounds=args.max_rounds)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        write_trajectories(partial, sorted(trajs, key=lambda t: t.task))
        partial.replace(out)
    n = max(1, len(trajs))
    return {
        "eval/success": sum(t.success for t in trajs) / n,
        "eval/reward": sum(t.reward for t in trajs) / n,
    }


def main(args: Args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    env = E.short_name(args.env)
    if E.family(env) in E.MATH_ENVS:
        # A math step ends at the stop string "\n", not at a sampled end-of-turn token, but the
        # per-step segments close every step with one: PPO would train a token never sampled.
        raise SystemExit(
            f"ppo plays babyai, textcraft and webshop, not {env}: the paper runs math with Best-of-N "
            "and beam search only (agentprm evaluate / reproduce --env math)"
        )
    run = rundir.prepare(args.run_dir, args, neutral=RESUME_NEUTRAL)
    train_tasks, eval_tasks = parse_tasks(env, args.tasks), parse_tasks(env, args.eval_tasks)

    # Models: the policy (trained), the frozen reference, the critic, the frozen reward model.
    model, tok = load_policy_model(args.policy)
    reference, _ = load_policy_model(args.policy)
    reference.eval().requires_grad_(False)
    critic, _ = load_value_model(args.policy, seed=args.seed)
    rm = _load_reward_model(args.prm, tok)[0] if args.reward != "env" else None
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    critic_opt = torch.optim.AdamW(critic.parameters(), lr=args.critic_lr)
    start = 0
    ckpt = run / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["policy"])
        critic.load_state_dict(state["critic"])
        opt.load_state_dict(state["opt"])
        critic_opt.load_state_dict(state["critic_opt"])
        rundir.set_rng_state(state.get("rng"))
        start = state["iteration"]
        rundir.rewind_metrics(run, "iteration", start)  # what ran after the checkpoint is redone
        print(f"ppo: resuming after iteration {start}")
    device = next(model.parameters()).device
    pad = tok.pad_token_id
    print(
        f"ppo {env}: reward {args.reward}, {args.iterations} iterations x {args.tasks_per_iter} tasks x {args.samples} samples"
    )

    summary: dict = {}
    # Iteration 0: the starting policy's greedy score, the point every curve of Figure 5 starts from
    # (logged once; a run killed before its first checkpoint does not log it twice).
    if start == 0 and not any(m.get("iteration") == 0 for m in jsonl.read(run / "metrics.jsonl")):
        scores = _evaluate(env, eval_tasks, model, tok, args, eval_path(run, 0))
        rundir.log_metrics(run, {"iteration": 0, **scores})
    with Progress(transient=True) as bar:
        job = bar.add_task("ppo", total=args.iterations, completed=start)
        for it in range(start, args.iterations):
            # 1. Rollouts with the current policy.
            model.eval()
            draw = random.Random(derive_seed(args.seed, it))
            tasks = draw.sample(train_tasks, min(args.tasks_per_iter, len(train_tasks)))
            policy = HFPolicy(
                model,
                tok,
                batch_size=args.batch_size,
                max_prompt_tokens=args.max_prompt_tokens,
                prefix_cache=True,
            )
            params = SamplingParams(
                n=1,
                temperature=args.temperature,
                max_new_tokens=args.max_new_tokens,
                seed=derive_seed(args.seed, it, 1),
            )
            trajs: list = []
            jobs = [(t, s) for t in tasks for s in range(args.samples)]
            collect(env, jobs, policy, params, on_done=trajs.append, max_rounds=args.max_rounds)
            trajs.sort(key=lambda t: t.key)
            enc = encode(env, trajs, tok, args.max_prompt_tokens)
            if not enc:
                rundir.log_metrics(run, {"iteration": it + 1, "skipped": "no trajectory with a step"})
                continue

            # 2. Rewards per turn.
            if rm is None:
                rewards = {e.index: ppo.turn_rewards("env", e.outcome, [0.0] * e.num_steps) for e in enc}
            else:
                prev: list = []
                values = score_encoded(rm, enc, len(trajs), pad, q_prev=prev)
                rewards = {
                    e.index: ppo.turn_rewards(
                        args.reward, e.outcome, values[e.index].tolist(), float(p), args.outcome_coef
                    )
                    for e, p in zip(enc, prev, strict=True)
                }
            bad = [i for i, r in rewards.items() if not all(math.isfinite(x) for x in r)]
            if bad:
                raise FloatingPointError(
                    f"non-finite rewards for {len(bad)} trajectories (e.g. {trajs[bad[0]].key}): check --prm"
                )

            # 3. Segments, old and reference log-probabilities, critic values V(s_t).
            segs = [(e.index, s, *_turn_layout(s)) for e in enc for s in e.segments]
            old_logp, ref_logp, turn_values = [], [], {}
            with torch.no_grad():
                critic.eval()
                for i, s, _, reads in segs:
                    ids = torch.tensor([s.ids], device=device)
                    att = torch.ones_like(ids)
                    old_logp.append(_forward_logp(model, ids, att)[0][0])
                    ref_logp.append(_forward_logp(reference, ids, att)[0][0])
                    v = critic(input_ids=ids, attention_mask=att).logits[0, :, 0].float()
                    for step, k in zip(s.steps, reads, strict=True):
                        turn_values.setdefault(i, {})[step] = float(v[k])

            # 4. GAE over turns; a token's advantage is its turn's, whitened over response tokens.
            adv, ret = {}, {}
            for e in enc:  # the round cap ends an episode like the env does: no bootstrap
                vs = [turn_values[e.index][t] for t in range(e.num_steps)]
                adv[e.index], ret[e.index] = ppo.turn_gae(rewards[e.index], vs, args.gamma, args.lam)
            token_adv = [
                torch.tensor([adv[i][t] if t >= 0 else 0.0 for t in turn_of]) for i, _, turn_of, _ in segs
            ]
            token_mask = [
                torch.tensor([1.0 if t >= 0 else 0.0 for t in turn_of]) for _, _, turn_of, _ in segs
            ]
            flat_adv, flat_mask = torch.cat(token_adv), torch.cat(token_mask)
            white = ppo.whiten(flat_adv, flat_mask).split([len(x) for x in token_adv])

            # 5. Updates.
            model.train()
            critic.train()
            stats: dict[str, list[float]] = {}
            kl_max = 0.0
            order = random.Random(derive_seed(args.seed, it, 2))
            for _ in range(args.epochs):
                idx = list(range(len(segs)))
                order.shuffle(idx)
                for b0 in range(0, len(idx), args.minibatch):
                    mb = idx[b0 : b0 + args.minibatch]
                    ids, att = collate([segs[j][1].ids for j in mb], pad, device)
                    width = ids.shape[1]

                    def stack(rows, mb=mb, width=width):
                        return torch.stack(
                            [torch.nn.functional.pad(rows[j], (0, width - len(rows[j]))) for j in mb]
                        ).to(device)

                    mask, a = stack(token_mask), stack(list(white))
                    logp, logits = _forward_logp(model, ids, att)
                    pg, clipfrac = ppo.policy_loss(logp, stack(old_logp), a, mask, args.clip)
                    kl_terms = ppo.kl_per_token(logp, stack(ref_logp))
                    # the largest per-token term, uncapped (logged only): what a KL spike is made of
                    kl_max = max(kl_max, float((kl_terms.detach() * mask).max()))
                    if args.kl_clamp is not None:
                        kl_terms = kl_terms.clamp(max=args.kl_clamp)
                    kl = ppo.masked_mean(kl_terms, mask)  # = kl_to_reference when uncapped
                    ent = ppo.entropy(logits, mask)
                    loss = pg + args.kl_coef * kl - args.entropy_coef * ent
                    if not torch.isfinite(loss):  # never let a NaN reach the weights
                        raise FloatingPointError(
                            f"iteration {it + 1}: non-finite PPO loss (policy {float(pg)}, kl {float(kl)}); "
                            "lower --lr or check the policy and reward model"
                        )
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                    opt.step()
                    # critic: V(s_t) at each turn's read position against the GAE returns
                    v = critic(input_ids=ids, attention_mask=att).logits[:, :, 0].float()
                    pos = [
                        (row, k, segs[j][0], t)
                        for row, j in enumerate(mb)
                        for t, k in zip(segs[j][1].steps, segs[j][3], strict=True)
                    ]
                    v_new = torch.stack([v[row, k] for row, k, _, _ in pos])
                    v_old = torch.tensor([turn_values[i][t] for _, _, i, t in pos], device=device)
                    target = torch.tensor([ret[i][t] for _, _, i, t in pos], device=device)
                    vl = ppo.value_loss(v_new, v_old, target, torch.ones_like(target), args.value_clip)
                    critic_opt.zero_grad()
                    vl.backward()
                    torch.nn.utils.clip_grad_norm_(critic.parameters(), args.max_grad_norm)
                    critic_opt.step()
                    for key, val in (
                        ("policy_loss", pg),
                        ("kl", kl),
                        ("entropy", ent),
                        ("clipfrac", clipfrac),
                        ("value_loss", vl),
                    ):
                        stats.setdefault(key, []).append(float(val.detach()))

            # 6. Log, evaluate, checkpoint.
            metrics = {
                "iteration": it + 1,
                "episodes": len(trajs),
                "rollout/success": sum(t.success for t in trajs) / len(trajs),
                "rollout/outcome": sum(t.reward for t in trajs) / len(trajs),
                "rollout/return": sum(sum(r) for r in rewards.values()) / len(rewards),
                "rollout/turns": sum(t.num_steps for t in trajs) / len(trajs),
                **{f"train/{k}": sum(v) / len(v) for k, v in stats.items()},
                "train/kl_max": kl_max,
            }
            if (it + 1) % args.eval_every == 0 or it + 1 == args.iterations:
                metrics.update(_evaluate(env, eval_tasks, model, tok, args, eval_path(run, it + 1)))
            rundir.log_metrics(run, metrics)
            rundir.save_checkpoint(
                {
                    "policy": model.state_dict(),
                    "critic": critic.state_dict(),
                    "opt": opt.state_dict(),
                    "critic_opt": critic_opt.state_dict(),
                    "rng": rundir.rng_state(),
                    "iteration": it + 1,
                },
                ckpt,
            )
            summary = metrics
            bar.advance(job)
    model.generation_config.do_sample = True  # as sft saves a policy: servers honour temperature > 0
    rundir.save_model(model, tok, run / "model")
    print(f"ppo done: {summary}")
    return summary
