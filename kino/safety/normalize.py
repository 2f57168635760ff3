"""The one form of a prompt that both the safety policy and the text encoder see.

Invisible characters got refused prompts past the policy: in "mic\u00adkey mouse" the soft hyphen
split the word for the term lists, while the encoder's tokenizer deleted it, so the model was
conditioned on exactly the tokens of the refused "mickey mouse". So every prompt is normalized once,
the same way, before the policy judges it (`enforce_prompt`, `check_prompts`, the learned layer)
and before the text encoder tokenizes it (`kino.models.text.TextEncoder.encode`):

- Unicode format characters (general category Cf: soft hyphen U+00AD, zero-width space U+200B,
  zero-width (non-)joiners U+200C/U+200D, word joiner U+2060, BOM U+FEFF, bidi controls
  U+200E/U+200F/U+202A-U+202E/U+2066-U+2069, invisible operators U+2061-U+2064, tag characters
  U+E0001-U+E007F, ...) are removed;
- the text is normalized with NFKC (full-width and styled letters fold to plain ones);
- Cf characters are removed once more (none should come out of NFKC; this keeps the function
  idempotent whatever Unicode version says).

A prompt that is empty (or only white space) after that is refused with one line: an invisible
prompt is not a prompt. Line breaks and other white space are kept; the policy's own matcher and
the tokenizer treat them as spaces.
"""

from __future__ import annotations

import unicodedata

from kino.errors import InputError


def _drop_format(text: str) -> str:
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def normalize_prompt(text: str) -> str:
    """`text` with format characters (Cf) removed and NFKC applied; InputError if nothing is left."""
    out = strip_invisible(text)
    if not out.strip():
        shown = "an empty prompt" if not text.strip() else f"{text!r} holds only invisible characters"
        raise InputError(f'{shown}; describe the video, e.g. "a red circle moves left"')
    return out


def strip_invisible(text: str) -> str:
    """`normalize_prompt` without the emptiness check (for texts that may be empty, e.g. a negative prompt)."""
    if text.isascii():  # the common case: ASCII holds no format characters and NFKC leaves it alone
        return text
    return _drop_format(unicodedata.normalize("NFKC", _drop_format(text)))
