"""The registry is the one place data types are declared."""

from hs_sync import registry


def test_every_type_has_a_unique_name_and_a_schema():
    names = [dt.name for dt in registry.DATA_TYPES]
    assert len(names) == len(set(names))
    for dt in registry.DATA_TYPES:
        schema = dt.arrow_schema
        assert schema.field("_key") is not None
        assert len({f.name for f in schema}) == len(schema)


def test_key_of_uses_declared_fields_or_a_stable_hash():
    events = registry.get("events")
    assert events.key_of({"id": "ev_1", "x": 1}) == "ev_1"
    ratings = registry.get("ratings_continuous")
    a = ratings.key_of({"timestamp": "t", "value": 0.5})
    b = ratings.key_of({"value": 0.5, "timestamp": "t"})
    assert a == b and a.startswith("h:")
    assert a != ratings.key_of({"timestamp": "t", "value": 0.6})


def test_unknown_type_names_the_known_ones():
    try:
        registry.get("nope")
    except KeyError as exc:
        assert "events" in str(exc)
    else:
        raise AssertionError("expected KeyError")
