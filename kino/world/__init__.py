"""kino.world"""
