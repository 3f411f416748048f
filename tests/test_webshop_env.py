"""WebShop's pages, session rules and env contract (agentprm/envs/webshop/{pages,session,env}.py).

The golden page strings were rendered from WebShop's own templates (web_agent_site/templates, in
AgentGym's agentenv-webshop) with Flask and BeautifulSoup and joined exactly as the text env does
(benchmarks/webshop_agentgym_diff.py repeats that check over many pages of the embedded catalogue).
"""

from __future__ import annotations

import pytest

import agentprm.envs as E
from agentprm.envs.react import NO_ACTION
from agentprm.envs.splits import parse_tasks, split
from agentprm.envs.webshop import pages
from agentprm.envs.webshop.env import SYSTEM_PROMPT, parse_webshop
from agentprm.experts import make_expert

PRODUCT = {
    "asin": "B0001",
    "Title": "Red Shirt",
    "Price": "$10.0",
    "options": {"color": ["red", "blue"], "size": ["s"]},
    "Rating": "N.A.",
    "Description": "desc text",
    "BulletPoints": ["b1", "b2"],
    "Reviews": [],
    "Attributes": ["a1"],
    "category": "c",
    "query": "q",
    "product_category": "A › B",
}


def test_pages_match_webshops_templates():
    assert (
        pages.index_page("i need a red shirt").text
        == "WebShop [SEP] Instruction: [SEP] i need a red shirt [SEP] Search"
    )
    assert pages.results_page("i need", [PRODUCT], 1, 1).text == (
        "Instruction: [SEP] i need [SEP] Back to Search [SEP] Page 1 (Total results: 1) [SEP] Next > "
        "[SEP] B0001 [SEP] Red Shirt [SEP] $10.0"
    )
    assert pages.results_page("i need", [PRODUCT], 2, 1).text == (
        "Instruction: [SEP] i need [SEP] Back to Search [SEP] Page 2 (Total results: 1) [SEP] < Prev "
        "[SEP] Next > [SEP] B0001 [SEP] Red Shirt [SEP] $10.0"
    )
    item = pages.item_page("i need", PRODUCT)
    assert item.text == (
        "Instruction: [SEP] i need [SEP] Back to Search [SEP] < Prev [SEP] color [SEP] red [SEP] blue "
        "[SEP] size [SEP] s [SEP] Red Shirt [SEP] Price: $10.0 [SEP] Rating: N.A. [SEP] Description "
        "[SEP] Features [SEP] Reviews [SEP] Buy Now"
    )
    assert item.clickables == (
        "back to search", "< prev", "description", "features", "reviews", "buy now", "red", "blue", "s"
    )  # fmt: skip
    head = "Instruction: [SEP] i need [SEP] Back to Search [SEP] < Prev"
    assert pages.sub_page("i need", PRODUCT, "Description").text == head + " [SEP] desc text"
    assert pages.sub_page("i need", PRODUCT, "Features").text == head + " [SEP] b1 [SEP] b2"
    assert pages.sub_page("i need", PRODUCT, "Reviews").text == head
    assert (
        pages.sub_page("i need", PRODUCT, "Attributes").text == head + " [SEP] a1 [SEP] c [SEP] q [SEP] A › B"
    )
    assert pages.done_page("B0001", {"color": "red"}, 0.5).text == (
        "Thank you for shopping with us! [SEP] Your code: [SEP] None [SEP] (Paste it in your MTurk "
        'interface.) [SEP] Purchased [SEP] asin [SEP] B0001 [SEP] options [SEP] {"color": "red"} [SEP] '
        "attrs [SEP] None [SEP] category [SEP] None [SEP] query [SEP] None [SEP] product category [SEP] "
        "None [SEP] Target [SEP] asin [SEP] options [SEP] attrs [SEP] price upper [SEP] instuction text "
        "[SEP] category [SEP] product category [SEP] query [SEP] Goal [SEP] None [SEP] Reward [SEP] Your "
        "score (min 0.0, max 1.0) [SEP] 0.5 [SEP] Reward Details [SEP] None"
    )


def test_blank_fields_render_as_beautifulsoup_reads_them():
    # A whitespace-only title is an empty segment; an empty description makes no node at all; HTML in a
    # value is text (the template escapes it, the parser unescapes it).
    odd = {**PRODUCT, "Title": "   ", "Description": "", "BulletPoints": ["", " x  y "]}
    assert pages.item_page("i <b>need</b> & more", odd, show_attrs=True).text == (
        "Instruction: [SEP] i <b>need</b> & more [SEP] Back to Search [SEP] < Prev [SEP] color [SEP] red "
        "[SEP] blue [SEP] size [SEP] s [SEP]  [SEP] Price: $10.0 [SEP] Rating: N.A. [SEP] Description "
        "[SEP] Features [SEP] Reviews [SEP] Attributes [SEP] Buy Now"
    )
    assert pages.sub_page("i", odd, "Features").text.endswith("< Prev [SEP]  [SEP] x  y")
    assert pages.sub_page("i", odd, "Description").text.endswith("< Prev")


def test_system_prompt_is_agentgyms_webshop_instruction():
    assert SYSTEM_PROMPT.startswith("You are web shopping.\nI will give you instructions")
    assert SYSTEM_PROMPT.endswith(
        "Your response should use the following format:\n\nThought:\nI think ... \n\nAction: \nclick[something]"
    )


def test_parse_follows_agentgyms_webshop_client():
    assert parse_webshop("Thought:\nok\n\nAction:\nsearch[red shirt]").action == "search[red shirt]"
    assert parse_webshop("Action: click[a]\nAction: click[b]").action == "click[b]"  # the last one
    assert parse_webshop("I click[b]").action == "I click[b]"  # no Action: but a command in the text
    assert parse_webshop("Thought: hmm").error == NO_ACTION
    assert parse_webshop("Action:   ").error == NO_ACTION


@pytest.fixture(scope="module")
def env():
    return E.make("webshop", max_episode_steps=100)


def _act(env, command):
    return env.step(f"Thought: t.\nAction: {command}")


def test_navigation_follows_webshops_rules(env):
    obs, info = env.reset(options={"task": 0})
    assert info["page"] == "index" and info["available_actions"] == {
        "has_search_bar": True,
        "clickables": ["search"],
    }
    obs, r, term, _, info = _act(env, "search[Men's Sweaters]")
    assert info["page"] == "results" and "Page 1 (Total results: 50)" in obs and r == 0 and not term
    first = obs
    obs, *_, info = _act(env, "click[Next >]")
    assert "Page 2 (Total results: 50) [SEP] < Prev [SEP] Next >" in obs
    obs, *_, info = _act(env, "click[< Prev]")
    assert obs == first
    asin = info["available_actions"]["clickables"][2]
    obs, *_, info = _act(env, f"click[{asin.upper()}]")  # the argument is lower-cased, as upstream
    assert info["page"] == "item" and env.unwrapped.session.asin == asin.upper()
    option = next(c for c in info["available_actions"]["clickables"][6:])
    _act(env, f"click[{option}]")
    assert option in env.unwrapped.session.options.values()
    obs, *_, info = _act(env, "click[Features]")
    assert info["page"] == "sub" and info["available_actions"]["clickables"] == ["back to search", "< prev"]
    obs, *_, info = _act(env, "click[< Prev]")
    assert info["page"] == "item" and option in env.unwrapped.session.options.values()  # kept
    obs, *_, info = _act(env, "click[< Prev]")
    assert obs == first and env.unwrapped.session.options == {}  # the result page forgets the options
    obs, *_, info = _act(env, "click[Back to Search]")
    assert info["page"] == "index"


def test_ignored_commands_change_nothing_and_say_so(env):
    obs, _ = env.reset(options={"task": 0})
    for command, why in [
        ("click[buy now]", "'buy now' is not clickable on this page"),
        ("search[]", "not an action"),  # no argument: upstream's pattern needs one
        ("click[search]", "'search' is not clickable"),
        ("jump[x]", "not an action"),
        ("search", "search[...] needs keywords"),
        ("search[[a] [b]]", "not an action"),  # upstream's greedy pattern reads the name "search[[a] "
    ]:
        out, r, term, trunc, info = _act(env, command)
        assert out.startswith("Invalid Action: ") and why in out.splitlines()[0], (command, out)
        assert out.endswith("\n\n" + obs) and r == 0 and not term and info["page"] == "index"
        assert E.rejected("webshop", out)


@pytest.mark.parametrize(
    "keywords",
    ["", " ", "the of and", "x" * 10_000, "日本語 🙂 ›", "a]b", "<r>", "<a> nothing", "<q>", "<c>"],
)
def test_any_search_text_gives_a_results_page(env, keywords):
    env.reset(seed=1, options={"task": 3})
    obs, r, term, trunc, info = _act(env, f"search[{keywords}]")
    assert isinstance(obs, str) and r == 0 and not term
    if keywords:  # " " too: upstream searches for any non-empty argument
        assert info["page"] == "results" and "Total results:" in obs
    else:
        assert obs.startswith("Invalid Action")


def test_buying_pays_webshops_reward_once(env):
    env.reset(options={"task": 0})
    goal = env.unwrapped.goal
    _act(env, "search[officially licensed men's sweaters]")
    _act(env, f"click[{goal['asin']}]")
    obs, r, term, _, info = _act(env, "click[Buy Now]")  # no options chosen: 2 of 3 + price + attributes
    assert term and 0 < r < 1 and not info["success"] and info["page"] == "done"
    assert info["reward_info"]["r_option"] == 0.0 and info["reward_info"]["r_att"] == 1.0
    assert abs(r - (2 + 0 + 1) / 5) < 1e-9 and obs.startswith("Thank you for shopping with us!")


def test_expert_succeeds_on_test_goals():
    env, expert = E.make("webshop"), make_expert("webshop")
    wins = 0
    for task in split("webshop", "test")[:40]:
        env.reset(options={"task": task})
        expert.reset(env)
        done = False
        while not done:
            _, r, term, trunc, info = env.step(expert.act(env))
            done = term or trunc
        wins += info["success"]
    assert wins >= 38  # 98% over the whole split (benchmarks/README.md)


def test_splits_and_task_names():
    test, train = split("webshop", "test"), split("webshop", "train")
    assert len(test) == 200 and len(train) == 6710 and not set(test) & set(train)
    assert parse_tasks("webshop", "0:3") == [0, 1, 2] and parse_tasks("webshop", "test") == test
    with pytest.raises(ValueError, match="0 <= i < 6910"):
        parse_tasks("webshop", "0:7000")
    assert "not comparable to the paper" in E.mode_note("webshop")


def test_the_users_webshop_files_are_played_with_webshops_rules(tmp_path, monkeypatch):
    import shutil
    from pathlib import Path

    data = Path(__file__).parent / "data"
    shutil.copy(data / "webshop_items_real.json", tmp_path / "items_shuffle_1000.json")
    shutil.copy(Path(E.__file__).parent / "webshop" / "data" / "items_ins_v2_1000.json", tmp_path)
    monkeypatch.setenv("AGENTPRM_WEBSHOP_DATA", str(tmp_path))
    assert E.mode_note("webshop").endswith(f"WebShop files from {tmp_path}")
    env = E.make("webshop")
    assert env.unwrapped.num_tasks == 99  # 18 real products' synthetic goals
    obs, info = env.reset(options={"task": 0})
    assert obs.startswith("WebShop [SEP] Instruction: [SEP] ") and info["page"] == "index"
    assert parse_tasks("webshop", "0:5") == [0, 1, 2, 3, 4]
    with pytest.raises(
        ValueError, match="AgentEval's WebShop test ids go up to 6904 but these files make 99"
    ):
        split("webshop", "test")
