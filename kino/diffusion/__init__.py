"""kino.diffusion"""
