"""The results screen's five tabs, one widget each: the screen (screens/results.py) holds the run,
the chosen instance and the key bindings, and hands each tab what it draws."""

from toysup_tui.widgets.results.geometry import GeometryTab
from toysup_tui.widgets.results.instance import InstanceTab
from toysup_tui.widgets.results.loss import LossTab
from toysup_tui.widgets.results.metrics import MetricsTab
from toysup_tui.widgets.results.table import TableTab

__all__ = ["GeometryTab", "InstanceTab", "LossTab", "MetricsTab", "TableTab"]
