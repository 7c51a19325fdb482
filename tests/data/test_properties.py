"""Property tests: whatever the bytes or JSON, the reader and the checks either return or raise
tunesmith's own error type. Anything else escaping is a bug."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunesmith.data import FORMATS, read_dataset
from tunesmith.data.validate import check_dataset, infer_task
from tunesmith.errors import TunesmithError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["messages", "role", "content", "weight", "text", "label",
                                       "tokens", "tags", "prompt", "completion", "instruction",
                                       "output", "x"]) | st.text(max_size=5), children, max_size=5),
    max_leaves=20,
)

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def read_and_check(path, fmt=None):
    try:
        data = read_dataset(path, fmt)
    except TunesmithError:
        return
    check_dataset(data, infer_task(data))


@SETTINGS
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".jsonl", ".csv", ".conll", ".txt"]))
def test_random_bytes(tmp_path, data, suffix):
    path = tmp_path / f"f{suffix}"
    path.write_bytes(data)
    read_and_check(path)


@SETTINGS
@given(rows=st.lists(json_values, min_size=1, max_size=8), fmt=st.sampled_from([None, *FORMATS]))
def test_random_json_rows(tmp_path, rows, fmt):
    path = tmp_path / "f.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    read_and_check(path, fmt)


@SETTINGS
@given(lines=st.lists(st.text(max_size=30), min_size=1, max_size=10),
       fmt=st.sampled_from([None, *FORMATS]))
def test_random_text_lines(tmp_path, lines, fmt):
    path = tmp_path / "f.txt"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    read_and_check(path, fmt)
