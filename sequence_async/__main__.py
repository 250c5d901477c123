"""
``python -m sequence_async``: the ``sequence-async`` command line.
"""

from .cli import entry


entry()
