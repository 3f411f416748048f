"""WebShop (Yao et al., 2022) as a Gymnasium environment: the paper's first benchmark, offline.

Modules (no torch anywhere):
  data.py       WebShop's product and attribute files -> a Catalogue, with WebShop's loading rules
  catalogue.py  the embedded default catalogue: the real attribute file plus generated product pages
  kinds.py      its product kinds: a query's category and breadcrumb, the option menus of each kind
  goals.py      AgentGym's synthetic goals (seeded) and optional human goals
  search.py     BM25 at Lucene's settings over WebShop's document text
  reward.py     WebShop's reward formula (attributes, options, price, r_type)
  nouns.py      the noun extractor r_type needs: spaCy when asked for, else a tested heuristic
  pages.py      the text-mode observations (index, results, item and sub-pages) and clickables
  session.py    one shopping session: WebShop's page state machine
  env.py        WebShopEnv: the ReAct contract of every env in agentprm.envs

A product is the dict WebShop's engine builds from a raw record (keys Title, Description,
BulletPoints, Price, pricing, options, option_to_image, Attributes, instruction_text,
instruction_attributes, category, query, product_category, MainImage, Reviews, Rating, asin, ...).
"""
