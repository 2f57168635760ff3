"""kino.data"""
