"""Prompt parser: natural language in the world's vocabulary -> the partial spec it asks for.

`parse_prompt("two blue squares moving left on a night sky")` gives a `PromptSpec` with two
blue square objects moving left, count 2 and a night background. Unknown words are ignored.

How it works, in two passes over the lowercased words:
1. Phrase rules (regular expressions, most specific first) find events, camera moves,
   backgrounds and multi-word motions ("moves to the left", "gets bigger", "goes around in
   circles") and blank out what they matched, so that "pans left" is never read as an object
   moving left and "turns green" (a collision's color change) never makes a green object.
2. A left-to-right scan binds what is left: articles, numbers, colors and sizes gather into a
   pending noun phrase that a shape noun ("circle", "ball", "squares") turns into object(s);
   a motion binds to the noun phrase it precedes ("a spinning star") or else to the objects
   last named ("a star spinning", "they both spin"). "the circle" refers back to an object
   already named rather than adding one.

The captioner's synonym tables (kino.world.caption) are merged into the lexicon, so every word
the captioner writes is understood.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from kino.world.spec import (
    Background,
    Camera,
    Color,
    EventKind,
    Motion,
    ObjectQuery,
    PromptSpec,
    Shape,
    Size,
)

# ----------------------------------------------------------------------------- lexicon
# Users' words; the captioner's own tables are added in `_lexicon()`.

SHAPE_WORDS: dict[Shape, tuple[str, ...]] = {
    Shape.CIRCLE: ("circle", "ball", "disc", "disk", "dot", "sphere", "orb", "round shape", "ring"),
    Shape.SQUARE: ("square", "box", "block", "cube", "rectangle", "tile"),
    Shape.TRIANGLE: ("triangle", "pyramid", "wedge"),
    Shape.STAR: ("star",),
    Shape.DIAMOND: ("diamond", "rhombus", "lozenge"),
}
COLOR_WORDS: dict[Color, tuple[str, ...]] = {
    Color.RED: ("red", "crimson", "scarlet"),
    Color.ORANGE: ("orange", "tangerine"),
    Color.YELLOW: ("yellow", "golden", "gold", "lemon"),
    Color.GREEN: ("green", "lime", "emerald"),
    Color.CYAN: ("cyan", "teal", "turquoise", "aqua"),
    Color.BLUE: ("blue", "azure", "cobalt"),
    Color.PURPLE: ("purple", "violet", "lilac", "lavender", "magenta"),
    Color.PINK: ("pink", "rose", "fuchsia"),
    Color.WHITE: ("white", "snowy"),
}
SIZE_WORDS: dict[Size, tuple[str, ...]] = {
    Size.SMALL: ("small", "tiny", "little", "mini", "smaller"),
    Size.MEDIUM: ("medium", "medium sized", "mid sized", "midsize", "average sized", "moderate"),
    Size.LARGE: ("large", "big", "huge", "giant", "enormous", "larger"),
}
GENERIC_NOUNS = ("object", "shape", "thing", "item", "figure", "form", "sprite", "body", "bodies")
NUMBER_WORDS = {
    "one": 1, "single": 1, "lone": 1, "two": 2, "pair": 2, "couple": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}  # fmt: skip
PRONOUNS_ALL = ("they", "both", "all", "each", "them", "together")
PRONOUNS_ONE = ("it",)

_DIRS = {
    "left": Motion.LEFT, "leftward": Motion.LEFT, "leftwards": Motion.LEFT,
    "right": Motion.RIGHT, "rightward": Motion.RIGHT, "rightwards": Motion.RIGHT,
    "up": Motion.UP, "upward": Motion.UP, "upwards": Motion.UP,
    "down": Motion.DOWN, "downward": Motion.DOWN, "downwards": Motion.DOWN,
}  # fmt: skip
_ADV = r"(?:slowly|quickly|steadily|smoothly|gently|fast|rapidly|swiftly|gradually|lazily|constantly|continuously)"
_MOVE_VERBS = (
    r"(?:mov|driv|drift|slid|glid|travel|head|go|float|roll|run|fl(?:y|ie)|scroll|shift|swim|zip|rac|walk|"
    r"speed|cruis|sail|dash|hurr|push|pass|sweep|creep|crawl|wander|march|coast|cross|track|turn)\w*"
)

# Phrase rules: (regex, kind, value). A value of None takes the first group through `_DIRS`.
# Order matters: events, then camera, then background, then motions.
_E, _C, _B, _M = "event", "camera", "background", "motion"
_RULES: list[tuple[str, str, object]] = [
    # --- events
    (
        r"\b(?:the )?(?:sky|light|daylight|sunlight|scene|world|day)(?: slowly| gradually)? (?:darken|dim|fad|turn|go)\w*"
        r"(?: (?:from day )?(?:in)?to (?:the )?(?:night|nighttime|darkness|dark|dusk))?\b",
        _E,
        EventKind.DAY_TO_NIGHT,
    ),
    (
        r"\bfrom (?:day|daytime|daylight) (?:in)?to (?:night|nighttime|dusk|darkness)\b",
        _E,
        EventKind.DAY_TO_NIGHT,
    ),
    (
        r"\bday(?:light|time)? (?:\w+ )?(?:turns?|fades?|changes?|gives way|becomes?|shifts?|goes|transitions?)"
        r"(?: slowly| gradually)? (?:in)?to (?:night|nighttime|darkness|dark|dusk)\b",
        _E,
        EventKind.DAY_TO_NIGHT,
    ),
    (
        r"\b(?:fad|turn|go|chang|shift|transition|becom|darken|dim|sink|slid|drift|melt)\w*"
        r"(?: \w+)?(?: slowly| gradually)? (?:in)?to (?:the )?(?:night|nighttime|darkness|dark|dusk)\b",
        _E,
        EventKind.DAY_TO_NIGHT,
    ),
    (r"\b(?:night ?falls?|nightfall|(?:as |while )?dusk falls|darkness falls)\b", _E, EventKind.DAY_TO_NIGHT),
    (
        r"\b(?:darkens|darkening|darkened|dims|dimming|dimmed|grows? dark(?:er)?|gets? dark(?:er)?|getting dark(?:er)?|"
        r"goes dark|growing dark(?:er)?|turns? dark(?:er)?|turning dark(?:er)?|fades? to black)\b",
        _E,
        EventKind.DAY_TO_NIGHT,
    ),
    (
        r"\b(?:light|daylight|sunlight|sky|sun|day)(?: slowly| gradually)? (?:fades|fading|dims|dimming|sets|setting|"
        r"goes down|going down|fades away|fades out|dies down)\b",
        _E,
        EventKind.DAY_TO_NIGHT,
    ),
    (r"\b(?:the )?sun sets\b|\bsunset comes\b", _E, EventKind.DAY_TO_NIGHT),
    (
        r"\b(?:leav|exit|go(?:es|ing)? off|go(?:es|ing)? out of|mov(?:es|ing) off|mov(?:es|ing) out of|"
        r"disappear|vanish|slid(?:es|ing) off|drift(?:s|ing)? off|run(?:s|ning)? off|fl(?:ies|ying) off)\w*"
        r"(?: \w+){0,6}? (?:and |then |before it |before |only to |to )*"
        r"(?:comes? back|coming back|came back|returns?|returning|re ?enters?|re ?entering|reappears?|reappearing|"
        r"re ?emerges?|re ?emerging|pops? back|back in(?:to)? (?:the )?(?:frame|view|picture|shot|screen))\b",
        _E,
        EventKind.LEAVE_RETURN,
    ),
    (
        r"\b(?:leaves?|leaving|exits?|exiting) (?:the )?(?:frame|screen|view|picture|shot|canvas)\b|"
        r"\b(?:off ?screen|out of (?:the )?(?:frame|view|shot|picture)) and back\b|"
        r"\b(?:comes?|coming) back (?:in ?to|into) (?:the )?(?:frame|view|picture|shot|screen)\b|"
        r"\b(?:returns?|returning) (?:in ?to|to) (?:the )?(?:frame|view|picture|shot|screen)\b",
        _E,
        EventKind.LEAVE_RETURN,
    ),
    (
        r"\b(?:pass|go|goes|going|mov|slid|glid|disappear|hid|hide|duck|travel|drift|cross|vanish|sneak|slip|"
        r"float|roll|run|ducks|is|are)\w*(?: \w+)?(?: right| directly| just)? behind\b|"
        r"\b(?:hidden|occluded|covered|blocked|obscured|eclipsed) (?:briefly |for a moment |momentarily )?by\b|"
        r"\b(?:occlud\w*|eclips\w*|obscur\w*)\b|"
        r"\b(?:pass|mov|slid|glid|cross|go)\w* (?:\w+ )?in front of\b",
        _E,
        EventKind.OCCLUDE,
    ),
    (
        r"\b(?:collid\w*|collision|crash\w*|bump\w*|smash\w*|slams?|slamming|knocks?|knocking|"
        r"run(?:s|ning)? into|ran into|hits?|hitting|strikes?|striking|touch(?:es|ing|ed)?|meets?|meeting|"
        r"comes? into contact|makes? contact|contacts?|impacts?)\b(?: (?:into|with|against|on))?",
        _E,
        EventKind.COLLIDE,
    ),
    (
        r"\b(?:and |then )?(?:turns?|turning|turned|becomes?|becoming|became|changes?|changing|changed|"
        r"switch(?:es|ing)?|flash(?:es|ing)?|goes|shifts?|shifting)(?: (?:its )?colou?rs?)?(?: (?:in)?to| from \w+ to)?"
        r"(?: a)? (COLOR)\b",
        _E,
        EventKind.COLLIDE,
    ),
    (r"\bchang(?:es|ing|ed|e) (?:its )?colou?rs?\b|\bcolou?r change\b", _E, EventKind.COLLIDE),
    # --- camera
    (
        r"\b(?:camera|view|shot|frame)\b(?: \w+){0,2}? (?:pans?|panning|panned|mov\w*|slid\w*|track\w*|truck\w*|"
        r"sweeps?|sweeping|swings?|swinging|glid\w*|drift\w*|turns?|turning|scroll\w*|shift\w*)"
        r"(?: " + _ADV + r")?(?: (?:to|toward|towards|over to)(?: the)?| the)? (left|right)(?:wards?)?\b",
        _C,
        "pan",
    ),
    (
        r"\b(?:pans?|panning|panned|pan)(?: " + _ADV + r")?(?: (?:to|toward|towards|over to)(?: the)?)? "
        r"(left|right)(?:wards?)?\b",
        _C,
        "pan",
    ),
    (r"\b(left|right)(?:wards?)? (?:camera )?(?:pan|panning|tracking shot|track)\b", _C, "pan"),
    (
        r"\b(?:zoom\w*|push(?:es|ing)?|dolly(?:ing)?|dollies|mov\w*|closes?|getting|gets?|moves?)"
        r"(?: " + _ADV + r")? (in|into|closer|out|away|back)\b(?! of)",
        _C,
        "zoom",
    ),
    (r"\bzoom\w*\b", _C, "zoom_in_default"),
    (r"\b(?:pulls?|pulling|pulled|backs?|backing) (?:back|out|away)\b", _C, Camera.ZOOM_OUT),
    (
        r"\b(?:camera|view|shot)\b(?: \w+){0,2}? (?:stays?|remains?|is|holds?|keeps?|stands?) "
        r"(?:perfectly |completely |totally )?(?:still|static|fixed|steady|stationary|locked|put|unmoving|motionless)\b|"
        r"\b(?:static|still|fixed|stationary|steady|locked(?: off)?|locked down|unmoving|motionless|tripod) "
        r"(?:camera|view|shot|frame)\b|"
        r"\bcamera (?:does not|doesn ?t|never) moves?\b|\bno camera (?:motion|movement|moves?)\b",
        _C,
        Camera.STATIC,
    ),
    # --- backgrounds
    (
        r"\b(?:(?:dark |black )?night(?:time)?(?: sky)?(?: (?:full of|with|dotted with|filled with|of) "
        r"(?:twinkling |tiny |small |little |bright |many |some )?stars)|starry(?: night)?(?: sky)?|star ?lit(?: sky)?|"
        r"star filled(?: sky)?|(?:dark |black )?night sky|night(?:time)? (?:background|backdrop|scene|setting)|"
        r"at night|by night|in the night|the night|a night|nighttime)\b",
        _B,
        Background.NIGHT,
    ),
    (
        r"\b(?:(?:warm |orange |golden |pink |red )?sunset(?: sky| background| backdrop| colors| colours| gradient)?|"
        r"dusk|twilight|sundown|golden hour|evening sky)\b",
        _B,
        Background.SUNSET,
    ),
    (
        r"\b(?:(?:green |grassy )?(?:grass|meadow|lawn|field|pasture|hills?|countryside|landscape|prairie)"
        r"(?: (?:and|under|below|beneath) (?:a |the )?(?:blue |clear )?sky)?|grassy \w+|green (?:ground|field|hills?)|"
        r"(?:sky )?(?:over|above) (?:a |the )?(?:green |grassy )?(?:ground|grass|field|meadow|hills?)|horizon)\b",
        _B,
        Background.GRASS,
    ),
    (
        r"\b(?:(?:light |pale |bright |clear |blue |daytime |day |open |sunny |cloudless )*sky(?: background| backdrop)?|"
        r"sky blue(?: background| backdrop)?)\b",
        _B,
        Background.SKY,
    ),
    (
        r"\b(?:navy(?: blue)?|dark blue|deep blue|midnight blue)(?: colou?red)?(?: background| backdrop| canvas)\b|"
        r"\b(?:on|against|over) (?:a |an |the )?(?:plain |solid |flat )?(?:navy(?: blue)?|dark blue|deep blue)\b",
        _B,
        Background.NAVY,
    ),
    (
        r"\b(black|white|gray|grey|dark|light gray|light grey|pale)(?: colou?red)?"
        r" (?:background|backdrop|canvas|screen|void|backdrop|field|scene|wall)\b",
        _B,
        "solid",
    ),
    (
        r"\b(?:background|backdrop|canvas)(?: \w+)? (?:is |of )?(?:a |an )?(?:plain |solid |flat )?"
        r"(black|white|gray|grey|navy)\b",
        _B,
        "solid",
    ),
    (
        r"\b(?:on|against|over|in front of|atop) (?:a |an |the )?(?:plain |solid |flat |pure |empty )?"
        r"(black|white|gray|grey)\b(?! (?:SHAPES))",
        _B,
        "solid",
    ),
    (r"\b(?:in (?:the )?(?:dark|darkness|void)|pitch black|blackness)\b", _B, Background.BLACK),
    # --- motions (multi-word first)
    (
        r"\b(?:fall|falling|falls|fell|drop|drops|dropping|dropped|tumbl\w*|plummet\w*|plung\w*)\b"
        r"(?:(?: \w+){0,5}? (?:bounc\w*|lands?|landing|hits the (?:ground|floor|bottom)))?",
        _M,
        Motion.FALLING,
    ),
    (
        r"\bbounc\w* (?:on|off|along|against|up from|across) (?:the )?(?:ground|floor|bottom)\b",
        _M,
        Motion.FALLING,
    ),
    (
        r"\b(?:gets?|getting|grows?|growing|becomes?|becoming|turns?|turning|gotten|got)(?: " + _ADV + r")? "
        r"(?:bigger|larger|huge|bigger and bigger|larger and larger)\b|"
        r"\b(?:grows?|growing|grew|expands?|expanding|expanded|swells?|swelling|inflat\w*|enlarg\w*|"
        r"scal\w* up|increas\w* in size|balloon\w*)\b",
        _M,
        Motion.GROWING,
    ),
    (
        r"\b(?:gets?|getting|grows?|growing|becomes?|becoming|turns?|turning|gotten|got)(?: " + _ADV + r")? "
        r"(?:smaller|tinier|smaller and smaller)\b|"
        r"\b(?:shrinks?|shrinking|shrank|shrunk|contracts?|contracting|deflat\w*|scal\w* down|dwindl\w*|"
        r"decreas\w* in size)\b",
        _M,
        Motion.SHRINKING,
    ),
    (
        r"\b(?:(?:goes|going|moves?|moving|travels?|travell?ing|runs?|running|spins?|spinning|loops?|looping|swings?|"
        r"flies|flying|drifts?|drifting|turns?|turning|races?|racing)(?: " + _ADV + r")? )?(?:a ?round|about)"
        r" in (?:a |wide |small |big |large |tight )*circles?\b|"
        r"\b(?:moves?|moving|goes|going|travels?|travell?ing|runs?|running|drifts?|drifting|flies|flying|"
        r"swings?|swinging) in (?:a |wide |small |big |large |tight )*(?:circles?|loops?|rings?|orbit)\b|"
        r"\bin (?:a )?circular (?:path|motion|orbit|loop|track)\b|\bround and round\b|"
        r"\bcircles? (?:a ?round|about)\b|"
        r"\b(?:circling|circled|orbits?|orbiting|orbited|revolv\w*|loops? around|looping around)\b"
        r"(?: (?:around|round|about))?",
        _M,
        Motion.CIRCLING,
    ),
    (
        r"\b(?:bounc\w*|ricochet\w*|rebound\w*|pinball\w*)\b(?: (?:around|about|off (?:the )?(?:walls|edges|sides)))?",
        _M,
        Motion.BOUNCING,
    ),
    (
        r"\b(?:spins?|spinning|spun|rotat\w*|twirl\w*|whirl\w*|pirouett\w*|revolv\w*|"
        r"turn(?:s|ing)? (?:a ?round|in place|on the spot)|cartwheel\w*)\b(?: (?:around|round|in place|on the spot))?",
        _M,
        Motion.SPINNING,
    ),
    (
        r"\bfrom (?:the )?(left|right|top|bottom) (?:side )?(?:of the \w+ )?to (?:the )?(right|left|bottom|top)\b",
        _M,
        "fromto",
    ),
    (
        r"\b"
        + _MOVE_VERBS
        + r"(?: "
        + _ADV
        + r")?(?: \w+){0,2}? (?:to |toward |towards |over to |across to )?(?:the )?"
        r"(left|right|up|down|upwards?|downwards?|leftwards?|rightwards?)\b",
        _M,
        None,
    ),
    (r"\b(?:ris|rais|ascend|climb|lift|soar)\w*(?: up)?\b|\bfloat\w* up\w*\b", _M, Motion.UP),
    (r"\b(?:sink|sank|sunk|descend|lower)\w*(?: down)?\b", _M, Motion.DOWN),
    (r"\b(leftwards?|rightwards?|upwards?|downwards?)\b", _M, None),
    (
        r"\b(?:stays?|staying|sits?|sitting|rests?|resting|remains?|remaining|stands?|standing|holds?|holding|"
        r"keeps?|is|are|hovers?|hovering|waits?|waiting)(?: \w+)?? (?:perfectly |completely |totally |quite )?"
        r"(?:still|stationary|motionless|in place|put|static|unmoving|fixed|idle|at rest|in the same place|"
        r"in one place|where it is)\b|"
        r"\b(?:not moving|does not move|doesn ?t move|does nt move|never moves|without moving|at rest|motionless|"
        r"stationary|unmoving|immobile|still|static|idle|sitting|resting|frozen)\b",
        _M,
        Motion.STILL,
    ),
]


@dataclass
class _Obj:
    shape: Shape | None = None
    color: Color | None = None
    size: Size | None = None
    motion: Motion | None = None


@dataclass
class _Pending:
    """A noun phrase being read: what its article, number and adjectives say."""

    article: str | None = None
    number: int | None = None
    color: Color | None = None
    size: Size | None = None
    motion: Motion | None = None
    words: int = 0

    def empty(self) -> bool:
        return self.words == 0


@dataclass
class _Scan:
    objs: list[_Obj] = field(default_factory=list)
    last: list[int] = field(default_factory=list)  # the objects a following verb talks about
    count: int | None = None
    explicit: bool = False  # a number word was used, so the prompt states the count
    orphan: Motion | None = None  # a motion read before any object


def _alternation(words) -> str:
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


@lru_cache(maxsize=1)
def _lexicon() -> tuple[dict[str, tuple[str, object]], list[tuple[re.Pattern, str, object]]]:
    """Word -> (kind, value) for single words (and fixed multi-word names), plus the compiled rules."""
    shapes = {k: list(v) for k, v in SHAPE_WORDS.items()}
    colors = {k: list(v) for k, v in COLOR_WORDS.items()}
    sizes = {k: list(v) for k, v in SIZE_WORDS.items()}
    for table, extra in zip((shapes, colors, sizes), _caption_tables(), strict=True):
        for k, words in extra.items():
            table.setdefault(k, []).extend(_norm(w) for w in words)
    words: dict[str, tuple[str, object]] = {}
    for shape, ws in shapes.items():
        for w in ws:
            words[w] = ("shape", shape)
            words[_plural(w)] = ("shape", shape)
    for color, ws in colors.items():
        for w in ws:
            words[w] = ("color", color)
    for size, ws in sizes.items():
        for w in ws:
            words[w] = ("size", size)
    shape_alt = _alternation(list(words))  # nouns and adjectives that make "on a white X" an object
    color_alt = _alternation([w for w, (k, _) in words.items() if k == "color"])
    rules = []
    for pattern, kind, value in _RULES:
        pattern = pattern.replace("(COLOR)", f"({color_alt})").replace("(?:SHAPES)", f"(?:{shape_alt})")
        rules.append((re.compile(pattern), kind, value))
    for g in GENERIC_NOUNS:
        words.setdefault(g, ("generic", None))
        words.setdefault(_plural(g), ("generic", None))
    for w, n in NUMBER_WORDS.items():
        words.setdefault(w, ("number", n))
    return words, rules


def _caption_tables() -> tuple[dict, dict, dict]:
    """The captioner's synonym tables (shape, color, size words), so every word it writes is known."""
    try:
        from kino.world.caption import COLOR_WORDS as CW
        from kino.world.caption import SHAPE_WORDS as SW
        from kino.world.caption import SIZE_WORDS as ZW
    except ImportError:  # the captioner is optional for parsing
        return {}, {}, {}
    return SW, CW, ZW


def _plural(w: str) -> str:
    if w.endswith(("s", "x", "ch", "sh")):
        return w + "es"
    if w.endswith("y") and w[-2:-1] not in "aeiou":
        return w[:-1] + "ies"
    return w + "s"


def _norm(text: str) -> str:
    text = text.lower().replace("-", " ").replace("'", " ")
    return " ".join(re.findall(r"[a-z]+|\d+|[.,;:!?]", text))


# ----------------------------------------------------------------------------- parsing


def parse_prompt(text: str) -> PromptSpec:
    """The partial scene spec that `text` asks for; words outside the world's vocabulary are ignored."""
    words, rules = _lexicon()
    s = f" {_norm(text)} "
    items: list[tuple[int, str, object]] = []  # (char position, kind, value)
    for rx, kind, value in rules:
        for m in rx.finditer(s):
            v = _rule_value(kind, value, m, words)
            if v is not None:
                items.append((m.start(), kind, v))
            s = s[: m.start()] + " " * (m.end() - m.start()) + s[m.end() :]
    # single words and fixed multi-word names (e.g. "medium sized") left after the phrase rules
    multi = sorted((w for w in words if " " in w), key=len, reverse=True)
    for w in multi:
        for m in re.finditer(rf"\b{re.escape(w)}\b", s):
            items.append((m.start(), *words[w]))
            s = s[: m.start()] + " " * len(w) + s[m.end() :]
    for m in re.finditer(r"[a-z]+|\d+|[.,;:!?]", s):
        w = m.group()
        if w in words:
            items.append((m.start(), *words[w]))
        elif w.isdigit():
            items.append((m.start(), "number", int(w)))
        elif w in ("a", "an", "the", "another", "other", "this", "that", "these", "those"):
            items.append((m.start(), "article", w))
        elif w in PRONOUNS_ALL or w in PRONOUNS_ONE:
            items.append((m.start(), "pronoun", w))
        elif w in ("circles", "circle") or w in ".,;:!?":
            items.append((m.start(), "punct" if w in ".,;:!?" else "shape", Shape.CIRCLE))
        elif w in ("and", "while", "as", "then", "with", "when"):
            items.append((m.start(), "join", w))
    items.sort(key=lambda it: it[0])
    return _bind(items)


def _rule_value(kind: str, value, m: re.Match, words):
    if kind == _C and value == "pan":
        return Camera.PAN_LEFT if m.group(1).startswith("left") else Camera.PAN_RIGHT
    if kind == _C and value == "zoom":
        return Camera.ZOOM_IN if m.group(1) in ("in", "into", "closer") else Camera.ZOOM_OUT
    if kind == _C and value == "zoom_in_default":
        return Camera.ZOOM_IN
    if kind == _B and value == "solid":
        name = m.group(1)
        return {"black": Background.BLACK, "dark": Background.BLACK, "white": Background.WHITE,
                "pale": Background.WHITE}.get(name, Background.GRAY)  # fmt: skip
    if kind == _M and value == "fromto":
        return {"right": Motion.RIGHT, "left": Motion.LEFT, "bottom": Motion.DOWN, "top": Motion.UP}[
            m.group(2)
        ]
    if kind == _M and value is None:
        return _DIRS.get(m.group(1))
    return value


def _bind(items: list[tuple[int, str, object]]) -> PromptSpec:
    st = _Scan()
    pend = _Pending()
    background = camera = None
    events: list[EventKind] = []
    for i, (_, kind, value) in enumerate(items):
        if kind == _B:
            background = background or value
        elif kind == _C:
            camera = camera or value
        elif kind == _E:
            if value not in events:
                events.append(value)
        elif kind == "article":
            if not pend.empty() and (pend.color or pend.size):
                _flush(st, pend, None)  # "a red one" / "a red." with no noun: keep what was said
            pend = _Pending(article=value, words=1)
        elif kind == "number":
            pend.number, pend.words = int(value), pend.words + 1
            if (
                value == 1
                and i + 1 < len(items)
                and items[i + 1][1] not in ("color", "size", "shape", "generic", "motion", "number")
            ):
                pend.number, pend.words = None, pend.words - 1  # "a red one" names, it does not count
                _flush(st, pend, None, generic=True)
                pend = _Pending()
        elif kind == "color":
            pend.color, pend.words = value, pend.words + 1
        elif kind == "size":
            pend.size, pend.words = value, pend.words + 1
        elif kind == "motion":
            if _before_noun(items, i) or (not pend.empty() and not st.objs):
                pend.motion, pend.words = value, pend.words + 1
            elif st.last:
                for j in st.last:
                    st.objs[j].motion = value
            else:
                st.orphan = st.orphan or value
        elif (
            kind == "shape"
            and value == Shape.CIRCLE
            and pend.empty()
            and i
            and items[i - 1][1] in ("shape", "generic", "pronoun", "join")
            and st.last
        ):
            for j in st.last:  # "a square circles" / "it circles": the verb
                st.objs[j].motion = Motion.CIRCLING
        elif kind in ("shape", "generic"):
            _flush(st, pend, value if kind == "shape" else None, generic=kind == "generic")
            pend = _Pending()
        elif kind == "pronoun":
            if value in PRONOUNS_ALL:
                st.last = list(range(len(st.objs)))
            elif st.objs:
                st.last = st.last[-1:] or [len(st.objs) - 1]
        elif kind == "punct" and (pend.color or pend.size):
            _flush(st, pend, None)
            pend = _Pending()
    if pend.color or pend.size:
        _flush(st, pend, None)
    objs = [o for o in st.objs if any((o.shape, o.color, o.size, o.motion))]
    if st.orphan is not None and objs and objs[0].motion is None:
        objs[0].motion = st.orphan
    elif st.orphan is not None and not objs:
        objs = [_Obj(motion=st.orphan)]
    count = st.count if st.count is not None else (len(st.objs) if st.explicit else None)
    return PromptSpec(
        objects=tuple(ObjectQuery(o.shape, o.color, o.size, o.motion) for o in objs),
        count=count,
        background=background,
        camera=camera,
        events=tuple(events),
    )


def _before_noun(items, i: int) -> bool:
    """True when the motion at `i` is an adjective of a noun that follows ("a spinning red star")."""
    for _, kind, _ in items[i + 1 :]:
        if kind in ("color", "size"):
            continue
        return kind in ("shape", "generic")
    return False


def _flush(st: _Scan, pend: _Pending, shape: Shape | None, generic: bool = False) -> None:
    """Turn the pending noun phrase into objects, or into a reference to objects already named."""
    definite = pend.article in ("the", "this", "that", "these", "those")
    if pend.number is None and (definite or pend.article is None):
        ref = [j for j, o in enumerate(st.objs) if _matches(o, shape, pend)]
        if ref and (definite or shape is not None or generic):
            for j in ref:
                o = st.objs[j]
                o.size = o.size or pend.size
                o.motion = pend.motion or o.motion
            st.last = ref if len(ref) > 1 and (shape is None) else ref[-1:]
            return
        if generic and pend.article is None and pend.color is None and pend.size is None:
            return  # a bare "shapes" / "objects" with nothing said about them
    n = max(1, min(pend.number or 1, 10))
    if pend.number is not None:
        st.explicit = True
    if (
        generic
        and pend.number is not None
        and pend.color is None
        and pend.size is None
        and pend.motion is None
    ):
        # "three shapes": states the count; specific objects named elsewhere say the rest
        st.count = (st.count or 0) + n
        start = len(st.objs)
        st.objs.extend(_Obj() for _ in range(n))
        st.last = list(range(start, len(st.objs)))
        return
    start = len(st.objs)
    for _ in range(n):
        st.objs.append(_Obj(shape, pend.color, pend.size, pend.motion))
    st.last = list(range(start, len(st.objs)))


def _matches(o: _Obj, shape: Shape | None, pend: _Pending) -> bool:
    if pend.size is not None and o.size is not None and o.size != pend.size:
        return False
    return (
        (shape is None or o.shape == shape)
        and (pend.color is None or o.color == pend.color)
        and (shape is not None or pend.color is not None or o.shape is not None)
    )
