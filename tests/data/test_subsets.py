from collections import Counter

from tunesmith.data.classification import make_example
from tunesmith.data.subsets import auto_sizes, nested_order


def test_prefixes_are_nested_and_stratified():
    examples = [make_example(f"text {i}", "rare" if i % 10 == 0 else "common", i + 1)
                for i in range(200)]
    order = nested_order(examples, "classification", seed=3)
    assert sorted(order) == list(range(200))
    for n in (20, 50, 100):
        counts = Counter(examples[i].label for i in order[:n])
        assert abs(counts["rare"] - n / 10) <= 1
    assert nested_order(examples, "classification", seed=3) == order
    assert nested_order(examples, "classification", seed=4) != order


def test_auto_sizes_halve_down_to_fifty():
    assert auto_sizes(2000) == [62, 125, 250, 500, 1000, 2000]
    assert auto_sizes(400) == [50, 100, 200, 400]
    assert auto_sizes(40) == [10, 20, 40]
