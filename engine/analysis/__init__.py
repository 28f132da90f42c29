"""What a run's numbers mean: pure data for every front end, with no colours, titles or captions.

- :mod:`~engine.analysis.aggregate`: median and quartiles over seeds, per sweep point.
- :mod:`~engine.analysis.series`: those statistics as series (loss curves, a metric against an axis).
- :mod:`~engine.analysis.columns`: which metrics a summary ranks, charts or abbreviates, read from
  the model's column declarations.
- :mod:`~engine.analysis.selection`: best-of-k and drop-worst seeds, representative instances.
- :mod:`~engine.analysis.geometry`: an instance's embedding, feature vectors, overlaps, features per neuron.
- :mod:`~engine.analysis.orientation`: orientation angles against the no-preference null.
- :mod:`~engine.analysis.phase`: the extra feature's phase and the phase grid.

The report, the TUI and a notebook draw from these; none of them imports a terminal library
(tests/test_contracts.py checks). Submodules are imported by name, not from here, so that
engine.results can use aggregate without importing the rest.
"""
