from tunesmith.evaluation.parsing import parse_entities, parse_label


def test_parse_label():
    labels = ["billing", "outage", "Billing-Ops"]
    assert parse_label(" billing.", labels) == "billing"
    assert parse_label('"outage"', labels) == "outage"
    assert parse_label("billing-ops", labels) == "Billing-Ops"
    assert parse_label("I think it is billing", labels) is None


def test_parse_entities_lenient_but_honest():
    assert parse_entities('[{"text": "Paris", "type": "location"}]') == [("Paris", "location")]
    assert parse_entities("Sure! ```json\n[{'text': 'Bob', 'type': 'person'}]\n```") == [
        ("Bob", "person")]
    assert parse_entities('[{"text": "x"}, {"text": "y", "type": "t"}, 3]') == [("y", "t")]
    assert parse_entities("[]") == []
    assert parse_entities("no entities here") is None
    assert parse_entities('[{"text": "Paris", "type": "loc"') is None  # cut off
