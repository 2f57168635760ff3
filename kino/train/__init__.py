"""kino.train"""
