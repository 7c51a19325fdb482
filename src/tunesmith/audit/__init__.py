"""`tunesmith data audit`: the examples of a data set that are probably wrong.

Heavier than `data check` (structural, fast) and advisory: probable label errors by confident
learning on out-of-fold predictions (`labels`), entity spans typed unlike their other occurrences
(`entities`), near-duplicates within and across files (`duplicates`), and outliers in length,
script and language (`outliers`). `audit_file` runs them all (`report`).
"""
