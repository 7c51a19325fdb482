from tunesmith.audit.entities import find_entity_conflicts
from tunesmith.audit.outliers import find_outliers, language_of, script_of


def test_a_span_typed_unlike_its_other_occurrences_is_flagged():
    spans = [(i, "Paris", "location") for i in range(1, 6)] + [(9, "paris", "person"),
                                                                (10, "Hilton", "person"),
                                                                (11, "Hilton", "corporation")]
    (c,) = find_entity_conflicts(spans)
    assert (c.line, c.type, c.usual_type, c.counts) == (9, "person", "location",
                                                        {"location": 5, "person": 1})


def test_length_script_language_and_empty_outliers():
    base = "the service was quick and the staff were kind to us"
    texts = [(i, " ".join(base.split()[: 8 + i % 4])) for i in range(1, 41)]
    texts += [(41, " ".join([base] * 30)), (42, "Сервис был быстрым и персонал вежливым"),
              (43, "el servicio fue rápido y el personal de la tienda fue amable con los"),
              (44, "")]
    found = {(o.line, o.kind) for o in find_outliers(texts, "input")}
    assert found == {(41, "long"), (42, "script"), (43, "language"), (44, "empty")}
    assert script_of("日本語です") == "CJK" and script_of("123") is None
    assert language_of("this is the best of what they have") == "en"
    assert language_of("short text") is None
