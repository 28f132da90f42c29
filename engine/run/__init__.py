"""The run folder: a typed run.json record, the run's status, and (engine/run/...) the files of a run."""
