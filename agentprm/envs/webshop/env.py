"""WebShopEnv: WebShop's text mode behind the contract every env in agentprm.envs keeps.

step() takes the model's whole ReAct response. The command is read as AgentGym's WebShop client
reads it (agentenv.controller.utils.parse_react): the text after the LAST "Action:", stripped; with
no "Action:" the whole response if it holds "search[" or "click["; otherwise there is no command
and the step answers an error observation (AgentGym sends "" on, which shows the same page).
Observations are WebShop's text-mode pages (pages.py), the episode ends at Buy Now with WebShop's
reward (reward.py), success = reward 1. info carries task, goal (the instruction), success, score
(the reward so far), page (index | results | item | sub | done), available_actions (AgentGym's
{has_search_bar, clickables}) and, after Buy Now, reward_info.

One deliberate difference from WebShop: a command that does nothing (not clickable, no such
action, empty search) answers "Invalid Action: <why>." and the unchanged page, where WebShop shows
the page alone; a policy can tell that its action was ignored (AgentGym's client writes "Invalid
Action." before the page in the same way when it cannot parse a response).

Data: the products, goals and search index are built once per process per data folder
(`load_shop`): WebShop's own files from $AGENTPRM_WEBSHOP_DATA when it is set, else the embedded
catalogue (not comparable to the paper's numbers; see catalogue.py).
"""

from __future__ import annotations

import functools
import random

from agentprm.envs.base import TextEnv
from agentprm.envs.react import NO_ACTION, Parsed
from agentprm.envs.webshop import data, goals, nouns, reward, search
from agentprm.envs.webshop.session import Session, Shop

SYSTEM_PROMPT = (
    "You are web shopping.\nI will give you instructions about what to do.\nYou have to follow the "
    "instructions.\nEvery round I will give you an observation and a list of available actions, you "
    "have to respond an action based on the state and instruction.\nYou can use search action if search "
    "is available.\nYou can click one of the buttons in clickables.\nAn action should be of the "
    "following structure:\nsearch[keywords]\nclick[value]\nIf the action is not valid, perform "
    "nothing.\nKeywords in search are up to you, but the value in click must be a value in the list of "
    "available actions.\nRemember that your keywords in search should be carefully designed.\nYour "
    "response should use the following format:\n\nThought:\nI think ... \n\nAction: \nclick[something]"
)  # AgentGym's WebShop instruction (agentenv/envs/webshop.py, ReAct format), verbatim


class ShopData:
    """What every WebShop session of one data folder shares: the Shop, the task list and a line
    naming the data source."""

    def __init__(self, shop: Shop, task_goals: list[dict], source: str):
        self.shop, self.goals, self.source = shop, task_goals, source

    def __deepcopy__(self, memo):  # read-only and large: env copies (search's copy mode) share it
        return self


def load_shop(data_dir: str | None = None, show_attrs: bool = False, nouns: str = "heuristic") -> ShopData:
    """The shop for `data_dir` (None: $AGENTPRM_WEBSHOP_DATA, else the embedded catalogue), built
    once per process and folder. `nouns` picks the reward's noun extractor (nouns.load_nouns:
    "heuristic", the default, gives the same rewards on every machine; "spacy:<model>" uses an
    installed spaCy model as WebShop does)."""
    path = data.resolve_data_dir(data_dir)
    return _load(str(path) if path else None, show_attrs, nouns)


@functools.lru_cache(maxsize=4)
def _load(path: str | None, show_attrs: bool, noun_spec: str) -> ShopData:
    catalogue = data.load_catalogue(path)
    index = search.SearchIndex.from_products(catalogue.products)
    shop = Shop(
        catalogue.products,
        catalogue.by_asin,
        catalogue.prices,
        catalogue.attribute_to_asins,
        index.search,
        functools.partial(reward.get_reward, nouns=nouns.load_nouns(noun_spec)),
        show_attrs,
    )
    return ShopData(shop, goals.task_goals(catalogue), data.describe_source(path))


def parse_webshop(response: str) -> Parsed:
    """AgentGym's WebShop reading of a response (module docstring) -> the command or NO_ACTION.

    >>> parse_webshop("Thought: x\\nAction: a\\nAction:\\nclick[Buy Now]").action
    'click[Buy Now]'
    >>> parse_webshop("I will search[red shirt]").action, parse_webshop("hmm").error == NO_ACTION
    ('I will search[red shirt]', True)
    """
    if not isinstance(response, str):
        return Parsed(None, NO_ACTION)
    if response.endswith("</s>"):
        response = response[: -len("</s>")]
    head, sep, tail = response.rpartition("Action:")
    if sep:
        action = tail
    else:
        action = response if ("search[" in response or "click[" in response) else ""
    action = action.strip()
    return Parsed(action, None) if action else Parsed(None, NO_ACTION)


class WebShopEnv(TextEnv):
    """WebShop as a Gymnasium env (module docstring). Task i plays goals[i] in AgentGym's order.

    reset(seed=s, options={"task": i}); the seed only seeds the "<r>" debug search.
    >>> env = WebShopEnv()
    >>> obs, info = env.reset(options={"task": 0})
    >>> obs.startswith("WebShop [SEP] Instruction: [SEP] "), info["available_actions"]
    (True, {'has_search_bar': True, 'clickables': ['search']})
    """

    strict_charset = False

    def __init__(
        self,
        render_mode: str | None = None,
        data_dir: str | None = None,
        show_attrs: bool = False,
        nouns: str = "heuristic",
    ):
        super().__init__(render_mode=render_mode)
        self.data = load_shop(data_dir, show_attrs, nouns)
        self.num_tasks = len(self.data.goals)
        self.session: Session | None = None
        self._seed: int | None = None

    @property
    def goal(self) -> dict:
        """The goal dict of the current task (asin, attributes, goal_options, price_upper, ...)."""
        return self.session.goal

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._seed = seed
        return super().reset(seed=seed, options=options)

    def _parse(self, response: str) -> Parsed:
        return parse_webshop(response)

    def _reset_task(self, task: int) -> tuple[str, dict]:
        rng = random.Random(f"{task}/{self._seed}")
        self.session = Session(self.data.shop, goals.goal_for_task(self.data.goals, task), rng=rng)
        return self.session.page.text, self._info()

    def _info(self) -> dict:
        s = self.session
        info = {
            "task": self.task,
            "goal": s.instruction,
            "success": s.kind == "done" and s.reward >= 1.0 - 1e-9,
            "score": float(s.reward),
            "page": s.kind,
            "available_actions": s.page.available_actions(),
        }
        if s.kind == "done":
            info["reward_info"] = s.reward_info
        return info

    def _execute(self, command: str) -> tuple[str, float, bool, bool, dict]:
        why, r, done = self.session.step(command)
        obs = self.session.page.text if why is None else f"Invalid Action: {why}.\n\n{self.session.page.text}"
        return obs, float(r), done, False, self._info()
