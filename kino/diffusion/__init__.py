"""kino.diffusion: the rectified-flow path (flow.py) and the ODE samplers with guidance (samplers.py)."""
