"""`kino eval`: how well a model follows prompts, measured by the world's analyzer (docs/eval.md)."""
