"""Reading what cgDDI released: its file names (names), where they come from (source), the index,
holdout and trainer CSVs (index), the whole import (run) and a toolkit version made from it (version)."""
