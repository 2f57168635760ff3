"""kino: an open, self-hostable implementation of the Sora system.

Importing kino does nothing but define names; heavy libraries load where they are used.
"""

__version__ = "0.1.0"
