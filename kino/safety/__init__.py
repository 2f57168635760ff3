"""kino.safety"""
