"""Differential check of WebShop's pages: WebShop's own HTML templates, rendered with Flask and read
back as its text env reads them (BeautifulSoup, visible strings stripped and joined by " [SEP] "),
against agentprm/envs/webshop/pages.py, on the embedded catalogue.

    pip install flask beautifulsoup4      # only for this check
    python benchmarks/webshop_agentgym_diff.py --templates <AgentGym>/agentenv-webshop/webshop/web_agent_site/templates

Compared: the index page; result pages 1-3 of a search for every goal of the test split; every
product's item page (with its first option values chosen, and with show_attrs) and its four
sub-pages; a done page per test goal. Clickables are compared with what WebShop's
get_available_actions collects from the same HTML (buttons and product links, lower-cased text,
then radio values). Prints the counts and the first differences.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--templates", type=Path, required=True, help="WebShop's web_agent_site/templates folder"
    )
    args = parser.parse_args()

    from bs4 import BeautifulSoup
    from bs4.element import Comment
    from flask import Flask, render_template_string

    import agentprm.envs as E
    from agentprm.envs.splits import split
    from agentprm.envs.webshop import pages
    from agentprm.envs.webshop.session import PRODUCT_WINDOW

    app = Flask(__name__)
    for rule in (
        "index/<session_id>",
        "search_results/<session_id>/<keywords>/<page>",
        "item_page/<session_id>/<asin>/<keywords>/<page>/<options>",
        "item_sub_page/<session_id>/<asin>/<keywords>/<page>/<sub_page>/<options>",
        "done/<session_id>/<asin>/<options>",
    ):  # WebShop's routes, so that url_for resolves
        app.add_url_rule("/" + rule, rule.split("/")[0], lambda **_: "")
    templates = {p.stem: p.read_text() for p in args.templates.glob("*.html")}

    def render(name: str, **kw) -> tuple[str, tuple[str, ...]]:
        with app.app_context(), app.test_request_context():
            html = render_template_string(templates[name], **kw)
        soup = BeautifulSoup(html, "html.parser")
        hidden = {"style", "script", "head", "title", "meta", "[document]"}
        texts = [
            t
            for t in soup.find_all(string=True)
            if t.parent.name not in hidden and not isinstance(t, Comment)
        ]
        text = " [SEP] ".join(t.strip() for t in texts if t != "\n")
        keys = {
            b.get_text().lower(): 1
            for b in soup.find_all(class_="btn") + soup.find_all(class_="product-link")
        }
        keys.update({o.get("value"): 1 for o in soup.select('input[type="radio"]')})
        return text, tuple(keys)

    checked, diffs = 0, []

    def compare(what: str, ours: pages.Page, theirs: tuple[str, tuple[str, ...]]) -> None:
        nonlocal checked
        checked += 1
        if (ours.text, ours.clickables) != theirs:
            diffs.append((what, ours.text, theirs[0], ours.clickables, theirs[1]))

    env = E.make("webshop").unwrapped
    shop, goals = env.data.shop, env.data.goals
    common = {"session_id": "s", "keywords": ["x"], "page": 1}
    compare(
        "index",
        pages.index_page("i need a red shirt"),
        render("search_page", instruction_text="i need a red shirt", session_id="s"),
    )
    for task in split("webshop", "test"):
        goal = goals[task]
        hits = [shop.by_asin[a] for a in shop.search(goal["instruction_text"].lower())]
        for page in (1, 2, 3):
            window = hits[(page - 1) * PRODUCT_WINDOW : page * PRODUCT_WINDOW]
            compare(
                f"results task {task} page {page}",
                pages.results_page(goal["instruction_text"], window, page, len(hits)),
                render(
                    "results_page",
                    products=window,
                    total=len(hits),
                    instruction_text=goal["instruction_text"],
                    **{**common, "page": page},
                ),
            )
        options = dict(goal["goal_options"]) if isinstance(goal["goal_options"], dict) else {}
        compare(
            f"done task {task}",
            pages.done_page(goal["asin"], options, 0.75),
            render(
                "done_page", reward=0.75, asin=goal["asin"], options=options, session_id="s", reward_info=None,
                goal_attrs=None, purchased_attrs=None, goal=None, mturk_code=None, query=None, category=None,
                product_category=None, instruction_text=goal["instruction_text"],
            ),
        )  # fmt: skip
    for product in shop.products:
        chosen = {name: values[0] for name, values in product["options"].items()}
        for show in (False, True):
            compare(
                f"item {product['asin']} show_attrs={show}",
                pages.item_page("i need", product, show),
                render("item_page", product_info=product, asin=product["asin"], options=chosen, instruction_text="i need", show_attrs=show, **common),
            )  # fmt: skip
        for sub in pages.SUB_PAGES:
            name = {"Description": "description_page", "Features": "features_page", "Reviews": "review_page"}
            compare(
                f"{sub} {product['asin']}",
                pages.sub_page("i need", product, sub),
                render(name.get(sub, "attributes_page"), product_info=product, asin=product["asin"], options={}, instruction_text="i need", **common),
            )  # fmt: skip
    print(f"pages compared: {checked}; identical: {checked - len(diffs)}; different: {len(diffs)}")
    for what, ours, theirs, our_keys, their_keys in diffs[:5]:
        print(
            f"\n{what}\n  ours:   {ours[:300]!r}\n  webshop: {theirs[:300]!r}\n  {our_keys} vs {their_keys}"
        )


if __name__ == "__main__":
    main()
