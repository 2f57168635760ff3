"""kino's procedural world: scene specs, the renderer, captions, the split sampler, and the analyzer.

- `kino.world.spec`: the vocabulary (Background, Shape, Color, Size, Motion, Camera, EventKind),
  PALETTE, BACKGROUND_STOPS, SceneSpec and PromptSpec, the contrast rule;
- `kino.world.render`: `render(spec, seed)`, `iter_render`, `trajectory` (the ground truth drawn);
- `kino.world.motion`: where every object and the camera are at any time (what render draws);
- `kino.world.caption`: captions at three levels and the synonym tables;
- `kino.world.sampler`: `sample_spec(rng, split)` and the compositional train/heldout split;
- `kino.world.parse`, `analyze`, `score`: prompts to specs, frames to analyses, and their match.

docs/world.md describes the world for users. Nothing is imported here, so importing is free.
"""
