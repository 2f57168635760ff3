"""kino.serve"""
