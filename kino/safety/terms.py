"""Term lists and the matcher that sees through obfuscation.

A prompt is normalized before matching so that the usual ways of hiding a word do not work:
- case and Unicode look-alikes: NFKC, casefold, then a small map of Cyrillic/Greek confusables
  (NFKC folds full-width and styled letters but not `а` (Cyrillic) for `a`);
- leetspeak inside words (`n00d3` -> `nood3` -> `noode`): only in tokens that also hold letters;
- punctuation inside words (`n.u.d.e`, `s*e*x`, `spider-man`) is dropped;
- an asterisk standing for a letter (`f*ck`, `c*nt`, `sh*t`): a word with inner asterisks is also
  matched with each asterisk as any one letter, against the one-word terms (`masked_words`), when it
  keeps at least two real letters and no more asterisks than letters;
- spacing (`n u d e`): a run of three or more one-letter tokens is joined and searched as a substring;
- repeated letters (`nuuuude`): every letter of a term matches one or more copies of itself.

Terms match on word boundaries, with common English endings allowed (`nude` matches `nudes`), and
the words of a multi-word term may be joined or split (`spider man` matches `spiderman`). A line of
a term file is a phrase, or `re:` followed by a regular expression on the normalized text.
Allow-list phrases (`killer whale`, `bloody mary`) are blanked out before matching.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from importlib import resources

# Cyrillic and Greek letters that look like Latin ones and survive NFKC.
CONFUSABLES = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
        "ɡ": "g", "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
        "τ": "t", "υ": "u", "χ": "x", "ѵ": "v", "ӏ": "l", "ß": "ss",
        # small capitals (NFKC leaves them alone)
        "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h", "ɪ": "i",
        "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ǫ": "q", "ʀ": "r",
        "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
    }
)  # fmt: skip
LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
)
INNER_PUNCT = re.compile(r"(?<=[\w@$!])[.\-_*'’`~|+^:](?=[\w@$!])")
ENDINGS = r"(?:s|es|ed|d|ing|er|ers)?"


def _fold(text: str) -> str:
    """NFKC, casefold, look-alike letters mapped to Latin, accents removed."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(CONFUSABLES)
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c))  # "nudé" -> "nude"


def normalize(text: str) -> str:
    """Lower-case, de-obfuscated text: words separated by single spaces, letters and digits only."""
    text = _fold(text)
    # Punctuation inside words goes (repeatedly: "n.u.d.e" has overlapping matches).
    prev = None
    while prev != text:
        prev, text = text, INNER_PUNCT.sub("", text)
    words = []
    for tok in re.split(r"\s+", text):
        tok = tok.rstrip(".,;:!?\"')]}").lstrip("\"'([{")  # sentence punctuation is not leetspeak
        if re.search(r"[a-z]", tok) and re.search(r"[0-9@$!]", tok):
            tok = tok.translate(LEET)
        tok = re.sub(r"[^a-z0-9]+", " ", tok).strip()
        if tok:
            words.extend(tok.split())
    return " ".join(words)


MASK_PUNCT = re.compile(r"(?<=[\w@$!*])[.\-_'’`~|+^:](?=[\w@$!*])")  # INNER_PUNCT without the asterisk


def masked_words(text: str) -> list[str]:
    """Words of the (raw) text in which asterisks stand for letters: 'you f*cking c*nt' -> ['f*cking', 'c*nt'].

    Folded and de-leeted like `normalize`; kept only when a word starts with a letter, holds at least
    two real letters and no more asterisks than letters (so '5*3' and '***' are not words).
    """
    out = []
    for tok in _fold(text).split():
        tok = tok.strip(".,;:!?\"')]}([{")
        prev = None
        while prev != tok:
            prev, tok = tok, MASK_PUNCT.sub("", tok)
        if "*" not in tok.rstrip("*"):
            continue
        if re.search(r"[a-z]", tok) and re.search(r"[0-9@$!]", tok):
            tok = tok.translate(LEET)
        tok = tok.rstrip("*")
        letters, stars = sum(c.isalpha() for c in tok), tok.count("*")
        if re.fullmatch(r"[a-z][a-z*]*", tok) and letters >= 2 and 0 < stars <= letters:
            out.append(tok)
    return out


def spaced_runs(normalized: str) -> list[str]:
    """Runs of three or more one-letter words joined up: 'a n u d e cat' -> ['anude']."""
    out, run = [], []
    for word in normalized.split(" ") + [""]:
        if len(word) == 1:
            run.append(word)
            continue
        if len(run) >= 3:
            out.append("".join(run))
        run = []
    return out


def _term_pattern(term: str) -> str:
    """Regex for one phrase: letters may repeat, words may be joined, endings allowed."""
    if term.startswith("re:"):
        return term[3:].strip()
    words = normalize(term).split(" ")
    parts = ["".join(re.escape(c) + "+" for c in w) for w in words]
    return r"\s?".join(parts) + ENDINGS


@dataclass(frozen=True)
class Matcher:
    """Compiled terms of one category: finds the first term in a normalized text.

    Only the word-boundary pattern is compiled up front; the patterns for spaced-out letters and for
    asterisks are compiled the first time a prompt has such runs or words (most never do, and the
    three compilations were a third of a cold start's policy check).
    """

    terms: tuple[str, ...]
    bounded: re.Pattern  # on word boundaries, for the text

    @cached_property
    def loose(self) -> re.Pattern:
        """Anywhere, for the joined spaced-out runs (plain phrases only)."""
        # Loose matching is for deliberately spaced letters; very short terms would match by accident.
        plain = [_term_pattern(t).replace(r"\s?", "") for t in self.terms if not t.startswith("re:") and len(t) >= 3]
        return re.compile("|".join(plain)) if plain else re.compile(r"(?!x)x")

    @cached_property
    def masked(self) -> re.Pattern:
        """A whole word with asterisks for letters (one-word plain terms only)."""
        # Masked words: each letter of a one-word term is itself (repeated) or one asterisk.
        words = [normalize(t) for t in self.terms if not t.startswith("re:") and len(t) >= 3]
        pats = ["".join(f"(?:{re.escape(c)}+|\\*)" for c in w) + ENDINGS for w in words if w and " " not in w]
        return re.compile("|".join(pats)) if pats else re.compile(r"(?!x)x")

    def find(self, normalized: str, runs: list[str], masked: list[str] = ()) -> str | None:
        """The matched text, or None. `masked`: the prompt's `masked_words`."""
        m = self.bounded.search(normalized)
        if m:
            return m.group(0)
        for run in runs:
            m = self.loose.search(run)
            if m:
                return m.group(0)
        for word in masked:
            m = self.masked.fullmatch(word)
            if m:
                return m.group(0)
        return None


def compile_terms(terms: tuple[str, ...]) -> Matcher:
    """Build a Matcher from phrases and `re:` patterns."""
    pats = [_term_pattern(t) for t in terms]
    bounded = re.compile(r"\b(?:" + "|".join(pats) + r")\b") if pats else re.compile(r"(?!x)x")
    return Matcher(tuple(terms), bounded)


def read_term_file(text: str) -> tuple[str, ...]:
    """Terms from a file's text: one per line; blank lines and `#` comments are skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return tuple(out)


@cache
def shipped_terms(category: str) -> tuple[str, ...]:
    """The curated term list of a category shipped in kino/safety/data/<category>.txt."""
    path = resources.files("kino.safety") / "data" / f"{category}.txt"
    if not path.is_file():
        return ()
    return read_term_file(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=32)
def _allow_pattern(allow: tuple[str, ...]) -> re.Pattern | None:
    # Longest first: a phrase may hold a shorter one ("sex on the beach cocktail" holds "cocktail").
    pats = [_term_pattern(p) for p in sorted(allow, key=len, reverse=True)]
    return re.compile(r"\b(?:" + "|".join(pats) + r")\b") if pats else None


def blank_allowed(normalized: str, allow: tuple[str, ...]) -> str:
    """Replace allow-listed phrases in a normalized text with spaces so terms inside them do not match."""
    pat = _allow_pattern(tuple(allow))
    return normalized if pat is None else pat.sub(lambda m: " " * len(m.group(0)), normalized)
