"""Read-only objects moved to `miniorch.core.readonly` (the store shares them too);
this name keeps working for the code that imports it from here."""

from miniorch.core.readonly import FrozenDict, FrozenList, freeze, thaw

__all__ = ["FrozenDict", "FrozenList", "freeze", "thaw"]
