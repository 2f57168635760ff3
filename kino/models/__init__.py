"""kino.models"""
