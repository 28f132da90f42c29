"""Rich tables and plotext charts drawn from engine.analysis's numbers, shared by ``toysup report``,
the run summaries and the TUI's screens. Colours, titles, captions and markers live here.

- :mod:`~toysup_tui.render.charts`: terminal charts (the only module that touches plotext).
- :mod:`~toysup_tui.render.legend`: the series key under a chart, styled as the chart's series.
- :mod:`~toysup_tui.render.tables`: runs, summary, orientation and feature-recovery tables.
- :mod:`~toysup_tui.render.heatmap`: matrices (W^T W, W) as coloured tables.
- :mod:`~toysup_tui.render.phase`: the phase grid as a coloured table.
"""
