"""The embedded catalogue's product kinds (catalogue.py): what a query is (WebShop's five categories
and the "A › B › C" breadcrumb, from the query's words), how a title shows it, and the option menus
(colour, size, scent, ...) a product of each kind may offer, with their value pools.

    >>> category_of("women's pumps"), [d[0] for d in option_menu("fashion", "women's pumps")[0]]
    ('fashion', ['Color', 'Size'])
"""

from __future__ import annotations

import random
import re

# --- query -> category and "A › B › C" product category -------------------------------------------------
_FOOTWEAR = (
    "shoe", "sneaker", "boot", "sandal", "slipper", "loafer", "pump", "oxford", "flat", "clog",
    "mule", "footwear",
)  # fmt: skip
_ELECTRONICS = (
    "cable", "speaker", "camera", "flash", "mount", "surveillance", "projector", "iphone", "mac",
    "receiver", "amplifier", "soundbar", "lens", "charger", "headset", "tripod", "virtual reality",
    "printer", "vcr", "headphone", "turntable", "player", "streaming", "power protection",
    "television", "signal booster", "wearable", "binocular", "screen protector", "underwater",
    "car accessories", "online game", "video glasses", "multiroom", "surround sound",
)  # fmt: skip
_GROCERY = (
    "meat", "food", "snack", "candy", "beverage", "chees", "cracker", "milk", "fruit", "peas",
    "nutrition bars", "meal kit", "frozen", "pantry", "seafood", "applesauce", "raisin",
)  # fmt: skip
_BEAUTY = (
    "hair", "makeup", "skin", "nail", "shave", "tooth", "dental", "deodorant", "fragrance", "bath",
    "scrub", "body care", "lip", "cotton balls", "refillable", "bags & cases", "piercing", "tongue",
    "orthodontic", "toothpick", "shampoo", "styling",
)  # fmt: skip
# category -> (top level, [(keywords, middle level)], default middle level)
_PATHS = {
    "beauty": ("Beauty & Personal Care", [
        (("shave",), "Shave & Hair Removal"), (("hair", "shampoo", "styling"), "Hair Care"),
        (("makeup", "lip", "palette", "brush", "eyes"), "Makeup"), (("deodorant",), "Personal Care"),
        (("tooth", "dental", "tongue", "orthodontic", "toothpick"), "Oral Care"),
        (("fragrance",), "Fragrance"),
        (("nail", "foot"), "Foot, Hand & Nail Care"),
        (("skin", "scrub", "body", "bath", "cotton"), "Skin Care"),
    ], "Tools & Accessories"),
    "electronics": ("Electronics", [
        (("camera", "flash", "lens", "tripod", "underwater", "binocular"), "Camera & Photo"),
        (("speaker", "soundbar", "receiver", "amplifier", "turntable", "headphone", "headset", "cd",
          "surround", "multiroom"), "Home Audio"),
        (("tv", "projector", "blu-ray", "vcr", "streaming", "television", "video"), "Television & Video"),
    ], "Accessories & Supplies"),
    "grocery": ("Grocery & Gourmet Food", [
        (("snack", "cracker", "peas", "bars", "candy", "fruit", "raisin", "applesauce"), "Snacks & Sweets"),
        (("meat", "seafood", "deli", "frozen", "meal kit", "chees", "milk"), "Fresh & Chilled"),
        (("beverage",), "Beverages"),
    ], "Pantry Staples"),
    "garden": ("Home & Kitchen", [
        (("lamp", "sconce", "chandelier", "pendant"), "Lighting"),
        (("mattress", "bed", "blanket", "pillow"), "Bedding"),
        (("candle", "wall art", "mirror", "plant", "window"), "Home Décor"),
        (("office", "desk", "file cabinet", "drafting"), "Home Office Furniture"),
    ], "Furniture"),
}  # fmt: skip


def display(phrase: str) -> str:
    """A lower-case phrase as a title shows it; lower-cases back to itself.

    >>> display("men's t-shirts & tanks")
    "Men's T-shirts & Tanks"
    """
    return " ".join(
        w if w in ("&", "and", "with", "for") else w[:1].upper() + w[1:] for w in phrase.split(" ")
    )


def has_word(query: str, words) -> bool:
    """Whether a word of the query starts with one of `words` ("chairs" does not hold "hair")."""
    return any(re.search(rf"(?<![a-z]){re.escape(w)}", query) for w in words)


def category_of(query: str) -> str:
    """WebShop's five categories, from the query's words.

    >>> [category_of(q) for q in ("men's shorts", "men's fragrance", "hdmi cables", "beds", "cheeses")]
    ['fashion', 'beauty', 'electronics', 'garden', 'grocery']
    >>> category_of("home office chairs"), category_of("mirrors"), category_of("decorative mirrors")
    ('garden', 'beauty', 'garden')
    """
    if query.startswith(("men's ", "women's ")) and "fragrance" not in query:
        return "fashion"
    if query == "mirrors":  # WebShop's beauty query (makeup mirrors); "decorative mirrors" is home
        return "beauty"
    for category, words in (("electronics", _ELECTRONICS), ("grocery", _GROCERY), ("beauty", _BEAUTY)):
        if has_word(query, words):
            return category
    return "garden"


def product_category_of(query: str, category: str) -> str:
    """The "A › B › C" breadcrumb of a query (related queries share A and B).

    >>> product_category_of("women's pumps", "fashion")
    "Clothing, Shoes & Jewelry › Women › Shoes › Women's Pumps"
    """
    if category == "fashion":
        who = "Women" if query.startswith("women's") else "Men"
        kind = "Shoes" if has_word(query, _FOOTWEAR) else "Clothing"
        return f"Clothing, Shoes & Jewelry › {who} › {kind} › {display(query)}"
    top, rules, default = _PATHS[category]
    middle = next((mid for words, mid in rules if has_word(query, words)), default)
    return f"{top} › {middle} › {display(query)}"


# --- options ----------------------------------------------------------------------------------
COLORS = (
    "Black", "White", "Navy", "Grey", "Heather Grey", "Red", "Blue", "Light Blue", "Dark Blue",
    "Green", "Army Green", "Olive", "Khaki", "Beige", "Brown", "Coffee", "Pink", "Light Pink",
    "Purple", "Yellow", "Orange", "Burgundy", "Wine Red", "Charcoal", "Teal", "Ivory", "Black/White",
    "Navy/White", "Grey/Black", "Multicolor",
)  # fmt: skip
APPAREL_SIZES = ("X-Small", "Small", "Medium", "Large", "X-Large", "XX-Large", "3X-Large", "4X-Large")
SHOE_SIZES = (
    "5",
    "5.5",
    "6",
    "6.5",
    "7",
    "7.5",
    "8",
    "8.5",
    "9",
    "9.5",
    "10",
    "10.5",
    "11",
    "11.5",
    "12",
    "13",
)
WAIST_SIZES = (
    "28W x 30L", "29W x 30L", "30W x 30L", "30W x 32L", "32W x 30L", "32W x 32L", "33W x 32L",
    "34W x 30L", "34W x 32L", "36W x 32L", "38W x 32L", "40W x 32L",
)  # fmt: skip
BED_SIZES = ("Twin", "Twin XL", "Full", "Queen", "King", "California King")
FINISHES = (
    "Espresso", "Walnut", "Rustic Brown", "White", "Black", "Grey", "Natural", "Oak", "Cherry",
    "Antique White", "Distressed Grey", "Navy Blue",
)  # fmt: skip
FURNITURE_SIZES = ("24 Inch", "30 Inch", "36 Inch", "42 Inch", "48 Inch", "55 Inch", "60 Inch")
BEAUTY_SIZES = (
    "0.5 Fl Oz (Pack of 1)", "1 Fl Oz (Pack of 1)", "1.7 Fl Oz (Pack of 1)", "3.4 Fl Oz (Pack of 1)",
    "6.8 Fl Oz (Pack of 1)", "8 Fl Oz (Pack of 2)", "16 Fl Oz (Pack of 1)", "2 Count", "3 Count",
    "4 Count", "6 Count", "12 Count",
)  # fmt: skip
SCENTS = (
    "Unscented", "Lavender", "Coconut", "Citrus", "Vanilla", "Rose", "Peppermint", "Eucalyptus",
    "Sandalwood", "Green Tea", "Cherry Blossom", "Ocean Breeze",
)  # fmt: skip
BEAUTY_COLORS = (
    "Black",
    "Brown",
    "Nude",
    "Pink",
    "Coral",
    "Red",
    "Silver",
    "Gold",
    "Clear",
    "Purple",
    "Natural",
)
FLAVORS = (
    "Original", "Sea Salt", "Barbecue", "Honey", "Spicy", "Cheddar", "Garlic & Herb", "Chocolate",
    "Vanilla", "Strawberry", "Mixed Berry", "Peanut Butter",
)  # fmt: skip
GROCERY_SIZES = (
    "2 Ounce (Pack of 12)", "4 Ounce (Pack of 6)", "8 Ounce (Pack of 3)", "12 Ounce (Pack of 1)",
    "1 Pound (Pack of 2)", "16 Ounce (Pack of 4)", "24 Count", "48 Count",
)  # fmt: skip
DEVICE_COLORS = ("Black", "White", "Silver", "Space Grey", "Blue", "Red")
STYLES = ("Standard", "Pro", "Bundle", "With Case", "2-Pack", "Wireless", "Wired")
LENGTHS = ("3 Feet", "6 Feet", "10 Feet", "15 Feet", "25 Feet", "50 Feet")
# Sizes run in order (a window); colours and the like are any subset.
_ORDERED = {
    APPAREL_SIZES,
    SHOE_SIZES,
    WAIST_SIZES,
    BED_SIZES,
    FURNITURE_SIZES,
    BEAUTY_SIZES,
    GROCERY_SIZES,
    LENGTHS,
}

# An option dimension: (raw option name, value pool, fewest values, most values).
Dim = tuple[str, tuple[str, ...], int, int]


def option_menu(category: str, query: str) -> list[list[Dim]]:
    """The option layouts a product of this query may get (one is drawn per product)."""
    if category == "fashion":
        if has_word(query, _FOOTWEAR):
            return [[("Color", COLORS, 3, 7), ("Size", SHOE_SIZES, 5, 10)]]
        sizes = WAIST_SIZES if ("pants" in query or "jeans" in query) else APPAREL_SIZES
        return [
            [("Color", COLORS, 4, 11), ("Size", sizes, 4, 7)],
            [("Color", COLORS, 3, 8), ("Size", sizes, 5, 7)],
        ]
    if category == "beauty":
        return [
            [("Size", BEAUTY_SIZES, 1, 6)],
            [("Scent", SCENTS, 2, 7)],
            [("Color", BEAUTY_COLORS, 2, 8)],
            [("Scent", SCENTS, 2, 5), ("Size", BEAUTY_SIZES, 1, 4)],
            [],
        ]
    if category == "grocery":
        return [
            [("Flavor Name", FLAVORS, 2, 7)],
            [("Flavor Name", FLAVORS, 2, 5), ("Size", GROCERY_SIZES, 1, 4)],
            [],
        ]
    if category == "electronics":
        if "cable" in query:
            return [[("Size", LENGTHS, 2, 5)], [("Color", DEVICE_COLORS, 1, 2), ("Size", LENGTHS, 2, 4)]]
        return [
            [("Color", DEVICE_COLORS, 1, 5)],
            [("Style", STYLES, 2, 5)],
            [("Color", DEVICE_COLORS, 2, 3), ("Style", STYLES, 1, 3)],
            [],
        ]
    if has_word(query, ("mattress", "bed")):
        return [[("Size", BED_SIZES, 2, 5)], [("Color", FINISHES, 1, 4), ("Size", BED_SIZES, 2, 5)]]
    return [[("Color", FINISHES, 2, 7)], [("Color", FINISHES, 2, 6), ("Size", FURNITURE_SIZES, 1, 3)], []]


def pick_values(pool: tuple[str, ...], k: int, rng: random.Random) -> list[str]:
    """k values of a pool: a window for sizes, any subset (in pool order) for the rest."""
    if pool in _ORDERED:
        start = rng.randrange(len(pool) - k + 1)
        return list(pool[start : start + k])
    return [pool[i] for i in sorted(rng.sample(range(len(pool)), k))]
