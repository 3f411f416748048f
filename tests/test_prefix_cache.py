"""Prefix caching in HFPolicy: multi-round greedy episodes are identical with and without it, and the
cache really serves most prompt tokens."""

from __future__ import annotations

import torch

from agentprm.models.presets import build_model
from agentprm.models.tokenizer import train_tokenizer
from agentprm.policies.hf import HFPolicy
from agentprm.policies.prefix_cache import GrowingLayer, PrefixStore, build_batch, common_prefix
from agentprm.policy import SamplingParams, cut_at_stop, with_stop
from agentprm.prompts import OK_REPLY, ROLE_WORDS, instruction, render_messages
from agentprm.rollout import collect
from agentprm.types import State, read_trajectories


def test_build_batch_layout():
    k = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)  # (heads, length, dim)
    ids, att, kv = build_batch([[1, 2, 3, 4], [7, 8]], [(3, [(k, k + 1)]), (0, None)], pad_id=0, device="cpu")
    # [pad.. | cached prefix | pad.. | suffix]
    assert ids.tolist() == [[1, 2, 3, 0, 4], [0, 0, 0, 7, 8]]
    assert att.tolist() == [[1, 1, 1, 0, 1], [0, 0, 0, 1, 1]]
    ((key, value),) = kv
    assert key.shape == (2, 2, 3, 3) and torch.equal(key[0], k[:, :3]) and not key[1].any()
    assert torch.equal(value[0], k[:, :3] + 1)
    assert common_prefix([1, 2], [1, 2, 3]) == 2


def test_store_lookup_prefers_longest_prefix_and_leaves_one_token():
    store = PrefixStore(min_hit=2)
    layers = [(torch.zeros(1, 6, 1), torch.zeros(1, 6, 1))]
    store.add([1, 2, 3, 9, 9, 9], layers)
    store.add([1, 2, 3, 4, 5, 6], layers)
    assert store.lookup([1, 2, 3, 4, 5, 7])[0] == 5
    assert store.lookup([1, 2, 3, 4, 5, 6])[0] == 5  # never the whole prompt: one token must run
    assert store.lookup([5, 5, 5])[0] == 0


def test_store_finds_the_episode_among_many_sharing_a_system_prompt_and_forgets_evicted_ones():
    system = list(range(100, 140))
    store = PrefixStore(max_entries=3, min_hit=4)
    layers = [(torch.zeros(1, 60, 1), torch.zeros(1, 60, 1))]
    for episode in range(5):
        store.add(system + [episode] * 10, layers)
    assert store.lookup(system + [4] * 10 + [7, 7])[0] == 50
    assert store.lookup(system + [3] * 6 + [9])[0] == 46  # the episode's entry, not just the system prompt
    assert store.lookup(system + [0] * 10)[0] == 40  # evicted: only the shared system prompt is left
    siblings = PrefixStore(min_hit=4)  # entries sharing the prompt's deepest block: the longest wins
    for tail in ([1, 2, 3], [1, 2, 3, 4, 5, 6], [1, 2]):
        siblings.add(system + tail, layers)
    assert siblings.lookup(system + [1, 2, 3, 4, 5, 6, 7])[0] == 46
    assert set().union(*store.index.values()) == set(store.entries)  # and no evicted entry


def test_cached_greedy_episodes_equal_uncached(tokenizer):
    model = build_model("test", tokenizer, seed=2)
    runs = {}
    for cached, static in ((False, False), (True, False), (True, True)):
        policy = HFPolicy(
            model, tokenizer, batch_size=4, max_prompt_tokens=2048, prefix_cache=cached, static_cache=static
        )
        done = []
        collect(
            "babyai",
            [(t, 0) for t in range(400, 406)],
            policy,
            SamplingParams(temperature=0.0, max_new_tokens=12),
            on_done=done.append,
            max_rounds=4,
            max_active=4,
        )
        runs[cached, static] = sorted([s.response for s in t.steps] for t in done)
        if cached:
            assert policy.store.hit_tokens > 0.25 * policy.store.prompt_tokens
    assert runs[True, False] == runs[False, False] == runs[True, True]


def test_mixed_batch_of_continuing_and_new_episodes_matches_uncached(expert_data):
    # As in the embedded default, the instruction is one token: a new episode shares only a few
    # tokens with the stored prompts.
    trajs = read_trajectories(expert_data)
    texts = [instruction("babyai"), OK_REPLY, *ROLE_WORDS, "you see a wall"]
    for t in trajs:
        texts += [t.initial_observation] + [x for s in t.steps for x in (s.response, s.observation)]
    tok = train_tokenizer(texts, vocab_size=1024, whole=[instruction("babyai"), OK_REPLY])
    model = build_model("test", tok, seed=4)
    cached = HFPolicy(model, tok, batch_size=8, prefix_cache=True, static_cache=True)
    plain = HFPolicy(model, tok, batch_size=8)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=10)
    first = [render_messages("babyai", State(t.initial_observation)) for t in trajs[:3]]
    a, b = cached.generate(first, greedy), plain.generate(first, greedy)
    assert [g[0].text for g in a] == [g[0].text for g in b]
    # round 2: three episodes continue (long store hits), a new one starts (it shares only the
    # instruction with the stored prompts: a long uncached suffix)
    second = [
        render_messages("babyai", State(t.initial_observation, (g[0].text,), ("you see a wall",)))
        for t, g in zip(trajs[:3], a, strict=True)
    ]
    second.append(render_messages("babyai", State(trajs[5].initial_observation)))
    calls = []
    original = cached.decoder.prefill
    cached.decoder.prefill = lambda rows, hits: calls.append((rows, original(rows, hits))) or calls[-1][1]
    assert [g[0].text for g in cached.generate(second, greedy)] == [
        g[0].text for g in plain.generate(second, greedy)
    ]
    # every uncached part (the continuing episodes' new turn, the new episode's whole prompt) was
    # encoded before generate: each row joined the batch as a hit of all but its last token
    rows, hits = calls[-1]
    assert [n for n, _ in hits] == [len(r) - 1 for r in rows]
    text = tok.apply_chat_template(second[3], tokenize=False, add_generation_prompt=True)
    assert len(tok(text, add_special_tokens=False)["input_ids"]) in [len(r) for r in rows]


def test_identical_prompts_are_prefilled_once(tokenizer):
    model = build_model("test", tokenizer, seed=3)
    cached = HFPolicy(model, tokenizer, batch_size=8, prefix_cache=True)
    plain = HFPolicy(model, tokenizer, batch_size=8)
    state = render_messages("babyai", State("Your goal: go to the red ball\nYou see a wall 2 steps forward"))
    other = render_messages("babyai", State("Your goal: open the door\nYou see a wall 1 steps forward"))
    greedy = SamplingParams(temperature=0.0, max_new_tokens=8)
    rows_encoded, inside = [], []
    original = cached.decoder.prefill

    def prefill(rows, hits):
        inside.append(1)
        try:
            return original(rows, hits)
        finally:
            inside.clear()

    cached.decoder.prefill = prefill
    model.model.register_forward_pre_hook(
        lambda _, args, kwargs: rows_encoded.append(kwargs["input_ids"].shape[0]) if inside else None,
        with_kwargs=True,
    )
    assert [g[0].text for g in cached.generate([state, other, state], greedy)] == [
        g[0].text for g in plain.generate([state, other, state], greedy)
    ]
    assert sum(rows_encoded) == 2, rows_encoded  # the prefill encoded two rows, not three


def test_rows_whose_turn_ended_leave_the_batch_and_outputs_stay_equal(tokenizer, monkeypatch):
    # A hook makes the model end its turn (eos) at every position divisible by 6; prompts differ in
    # length, so rows end at different steps, in both paths alike: the cached policy's own decode
    # loop drops them from the batch (and the leading positions that became padding for all the
    # remaining rows), generate keeps them; the responses must not differ.
    leads = []
    select = GrowingLayer.select
    monkeypatch.setattr(
        GrowingLayer, "select", lambda self, rows, lead=0: leads.append(lead) or select(self, rows, lead)
    )
    model = build_model("test", tokenizer, seed=5)
    eos = tokenizer.eos_token_id
    batch_rows = []

    def end_some_turns(module, args, kwargs, output):
        positions = kwargs["position_ids"][:, -output.logits.shape[1] :]
        output.logits[..., eos] += 40.0 * (positions % 6 == 0)
        batch_rows.append(positions.shape[0])

    model.register_forward_hook(end_some_turns, with_kwargs=True)
    runs = {}
    for cached in (False, True):
        policy = HFPolicy(model, tokenizer, batch_size=8, prefix_cache=cached, static_cache=cached)
        done, batch_rows[:] = [], []
        collect(
            "babyai",
            [(t, 0) for t in range(400, 408)],
            policy,
            SamplingParams(temperature=0.0, max_new_tokens=16),
            on_done=done.append,
            max_rounds=3,
            max_active=8,
        )
        runs[cached] = sorted([s.response for s in t.steps] for t in done)
        if cached:
            assert min(batch_rows) < max(batch_rows) == 8  # finished rows were dropped mid-round
    lengths = {len(r) for t in runs[True] for r in t}
    assert len(lengths) > 2  # the rows really ended at different steps
    assert max(leads) > 0  # leading padding columns were cut from the cache
    assert runs[True] == runs[False]


def test_sampling_in_the_decode_loop_is_seeded_and_varied(tokenizer):
    model = build_model("test", tokenizer, seed=6)
    policy = HFPolicy(model, tokenizer, batch_size=8, prefix_cache=True)
    state = render_messages("babyai", State("Your goal: go to the red ball\nYou see a wall 2 steps forward"))
    params = SamplingParams(n=4, temperature=1.0, top_p=0.9, max_new_tokens=8, seed=11)
    first = [g.text for g in policy.generate([state], params)[0]]
    again = [g.text for g in policy.generate([state], params)[0]]
    assert first == again and len(set(first)) > 1
    assert all(g.completion_tokens <= 8 for g in policy.generate([state], params)[0])


def test_token_counts_end_at_the_action_line_in_both_paths(tokenizer):
    # A hook makes the model write a ReAct turn cyclically by absolute position, so rows (prompts of
    # different lengths) complete their action line at different steps; transformers' generate pads
    # a finished row until the batch is done, and those pads must not be counted.
    model = build_model("test", tokenizer, seed=7)
    turn = tokenizer("Thought:\nok\n\nAction:\nturn left\n", add_special_tokens=False)["input_ids"]
    target = torch.tensor(turn)

    def write_the_turn(module, args, kwargs, output):
        positions = kwargs["position_ids"][:, -output.logits.shape[1] :]
        output.logits.scatter_add_(
            -1,
            target[positions % len(turn)][..., None],
            torch.full_like(positions, 60.0, dtype=output.logits.dtype)[..., None],
        )

    model.register_forward_hook(write_the_turn, with_kwargs=True)
    states = [
        render_messages("babyai", State("Your goal: go to the red ball\n" + "You see a wall. " * k))
        for k in range(1, 6)
    ]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=2 * len(turn) + 2)
    outs = {}
    paths = []
    for cached in (False, True):
        policy = HFPolicy(model, tokenizer, prefix_cache=cached)
        # which path ran: transformers' generate, then the cached decoder's own loop
        for owner, name in ((policy, "_generate"), (policy.decoder, "decode")):
            if owner is not None:
                method = getattr(owner, name)
                setattr(owner, name, lambda *a, m=method, n=name: paths.append(n) or m(*a))
        outs[cached] = [g[0] for g in policy.generate(states, greedy)]
    assert paths == ["_generate", "decode"]
    for plain, cached in zip(outs[False], outs[True], strict=True):
        assert plain == cached and plain.finish_reason == "stop"
        assert plain.text.endswith("Action:\nturn left")
        ids = tokenizer(plain.text, add_special_tokens=False)["input_ids"]
        assert plain.completion_tokens <= len(ids) + 2  # the newline after the action, no pads
    assert len({g.completion_tokens for g in outs[False]}) > 1  # the rows ended at different steps


def test_seeded_samples_do_not_depend_on_the_batch(tokenizer):
    """With per-request seeds, a sampled response depends on its request only: the same with the
    state alone, among other states, in another batch size, in another order. This is what lets an
    interrupted collection resume with the draws an uninterrupted one makes."""
    model = build_model("test", tokenizer, seed=7)
    states = [
        render_messages("babyai", State(f"Your goal: go to the red ball\nYou see a wall {k} steps forward"))
        for k in range(1, 6)
    ]
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=12, seed=0)
    seeds = [101, 202, 303, 404, 505]

    def sample(idx, batch_size):
        policy = HFPolicy(model, tokenizer, batch_size=batch_size, prefix_cache=True)
        outs = policy.generate([states[i] for i in idx], params, seeds=[seeds[i] for i in idx])
        return {i: [g.text for g in o] for i, o in zip(idx, outs, strict=True)}

    together = sample(range(5), 8)
    assert sample([3], 8)[3] == together[3]
    assert sample([4, 1, 3], 2) == {i: together[i] for i in (4, 1, 3)}
    assert len({t for o in together.values() for t in o}) > 2  # it does sample
    # another seed draws otherwise
    policy = HFPolicy(model, tokenizer, batch_size=8, prefix_cache=True)
    other = policy.generate(states, params, seeds=[s + 1 for s in seeds])
    assert [[g.text for g in o] for o in other] != [together[i] for i in range(5)]


def test_stop_strings_end_each_row_where_its_text_first_holds_one(tokenizer):
    """With stop strings (a math env's "\\n"), each response is the free response cut before its first
    stop string, on both decode paths, greedy and sampled (seeded), and ends with reason "stop"."""
    model = build_model("test", tokenizer, seed=5)
    states = [
        render_messages("babyai", State(f"Your goal: go to the {c} ball")) for c in ("red", "blue", "grey")
    ]
    seeds = [11, 12, 13]
    for cached in (False, True):
        policy = HFPolicy(model, tokenizer, batch_size=4, prefix_cache=cached, stop_after_action=False)
        for params in (
            SamplingParams(temperature=0.0, max_new_tokens=24),
            SamplingParams(n=2, temperature=1.0, max_new_tokens=24, seed=0),
        ):
            free = [g for gens in policy.generate(states, params, seeds=seeds) for g in gens]
            assert len(free[0].text) >= 6, free[0]  # (a random model: long enough to cut)
            stop = (free[0].text[3:5],)
            stopped = [
                g for gens in policy.generate(states, with_stop(params, stop), seeds=seeds) for g in gens
            ]
            cuts = 0
            for g, h in zip(free, stopped, strict=True):
                text, cut = cut_at_stop(g.text, stop)
                assert h.text == text, (cached, params, g, h)
                if cut:
                    cuts += 1
                    assert h.finish_reason == "stop" and h.completion_tokens <= g.completion_tokens
            assert cuts >= 1
