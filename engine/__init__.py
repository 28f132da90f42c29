"""toysup's engine: sweep specs, vectorised training of toy models, metrics and the run store.

Nothing here imports a terminal or UI library; front ends are clients of this package.
"""

__version__ = "0.1.0"
