"""Studies: what loops over training and evaluation to answer a question.

    compare        prompting against fine-tuning on one test split, priced, recommended
    curve          the metric against the number of training examples (one fine-tune per size)
    tune           training settings chosen on the validation split (`train --tune`)
    prompt_search  the prompting arm at its best, chosen on the validation split
    estimate       measured tokens, speed and training time for `tunesmith cost`

Each study is a module with a typed config and one function; the command line (`cli/`) calls
it and prints what it returns. Studies use the layers below (training, evaluation, prompting,
report) and nothing above them.
"""
