"""`tunesmith curve`: how the fine-tuned metric grows with the number of training examples, and
how many examples a target needs.

`subsets` draws nested, stratified, seeded training subsets; `fit` fits the learning curve,
inverts it, and backtests the extrapolation; `run` trains and evaluates one fine-tune per size
and writes curve.json and curve.png.
"""
