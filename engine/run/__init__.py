"""The run folder, as untrusted input and atomic output: its layout and safe file access (layout.py), run.json as
a typed record (record.py), the run's Status (status.py), config.toml read back (config.py), reading, checking,
writing and recovering one folder (reader, integrity, writer, recovery; all on folder.Run), listing runs
(catalogue.py) and exporting tables (export.py). Import from the modules: this file imports nothing, so a
module that needs only the Status does not load the rest."""
