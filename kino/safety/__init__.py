"""kino.safety: the prompt classifier, frame review, the invisible watermark and C2PA content credentials.

The two calls the rest of kino makes:
    enforce_prompt(text, config)                        # before and after prompt enhancement
    normalize_prompt(text)                              # the form the policy and the text encoder see
    publish(frames, path, fps, GenerationInfo(...), config)   # instead of kino.io.write_video
"""

from kino.safety.normalize import normalize_prompt
from kino.safety.policy import Category, FrameReviewConfig, SafetyConfig, SafetyPolicy, load_policy_file
from kino.safety.prompts import Decision, Verdict, check_prompt, enforce_prompt
from kino.safety.publish import GenerationInfo, PublishReport, publish

__all__ = [
    "Category",
    "Decision",
    "FrameReviewConfig",
    "GenerationInfo",
    "PublishReport",
    "SafetyConfig",
    "SafetyPolicy",
    "Verdict",
    "check_prompt",
    "enforce_prompt",
    "load_policy_file",
    "normalize_prompt",
    "publish",
]
