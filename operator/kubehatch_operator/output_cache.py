"""Step outputs the operator read, kept within a byte budget, most recently used last.

A step's output never changes once written, so what conditions and forEach read is kept:
a forEach step works its items out from its parents' outputs on every pass that may
launch one, and must not read them from the API server each time.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

BUDGET_BYTES = 32 * 1024 * 1024

Key = tuple[str, str]
"""(namespace, ConfigMap)."""


class OutputCache:
    def __init__(self, budget: int = BUDGET_BYTES) -> None:
        self.budget = budget
        self.used = 0
        self._entries: OrderedDict[Key, tuple[Any, int]] = OrderedDict()

    def get(self, key: Key) -> tuple[bool, Any]:
        """(True, the output) when kept, else (False, None)."""
        found = self._entries.get(key)
        if found is None:
            return False, None
        self._entries.move_to_end(key)
        return True, found[0]

    def put(self, key: Key, value: Any) -> None:
        size = len(json.dumps(value, separators=(",", ":")))
        if size > self.budget // 4:
            return  # one output never pushes most others out
        old = self._entries.pop(key, None)
        if old is not None:
            self.used -= old[1]
        self._entries[key] = (value, size)
        self.used += size
        while self.used > self.budget:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.used -= dropped

    def __len__(self) -> int:
        return len(self._entries)
