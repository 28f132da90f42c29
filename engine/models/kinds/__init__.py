"""What each model kind declares, without torch: its parameters, result columns, constraints and memory estimate.

Listings (``toysup params``, ``presets``, ``runs``), spec validation, the run format and the
TUI's form read these alone, so they open without loading torch. Each kind names the class
that trains it (``implementation``, in ``engine/models/<kind>.py``), which subclasses it and is
imported only when something trains or computes (``engine.models.get_model``).
"""
