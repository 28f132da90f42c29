"""A run folder with every job on it: :class:`Run` reads (engine/run/reader.py), checks (integrity.py), writes
(writer.py) and recovers (recovery.py) one run folder. Listing and finding runs is engine/run/catalogue.py,
exporting tables engine/run/export.py."""

from __future__ import annotations

from toysup.engine.run.recovery import RunRecovery


class Run(RunRecovery):
    """A run folder, for writing (``Run.create``) or reading (``Run.open``, ``Run(path)``)."""
