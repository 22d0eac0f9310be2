"""The registry is the one place data types are declared."""

import pytest

from hs_sync import descriptions, dictionary, registry
from hs_sync.descriptions import Doc


def test_every_type_has_a_unique_name_and_a_schema():
    names = [dt.name for dt in registry.DATA_TYPES]
    assert len(names) == len(set(names))
    for dt in registry.DATA_TYPES:
        schema = dt.arrow_schema
        assert schema.field("_key") is not None
        assert len({f.name for f in schema}) == len(schema)


def test_every_built_in_type_meets_the_rules_an_added_one_must():
    for dt in registry.DATA_TYPES:
        registry.validate(dt)
        assert dt.parent is None or dt.parent in registry.BY_NAME


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


def _samples(**changes) -> registry.DataType:
    values = dict(
        name="samples",
        path="samples",
        mode=registry.Mode.TIME,
        api_scope=None,
        doc="Samples of a lab's own sensor",
        columns=(
            registry.col("roomId", registry.STR),
            registry.col("timestamp", registry.TS),
            registry.col("level", registry.FLOAT, doc=Doc("Sensor level", "dB")),
        ),
    )
    return registry.DataType(**{**values, **changes})


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"name": "events"}, ValueError, "taken"),
        ({"name": "sync_quality"}, ValueError, "taken"),  # a view's name
        ({"name": "media_files"}, ValueError, "taken"),  # hs-sync's own table
        ({"name": "Heart-Rate"}, ValueError, "lower-case"),
        ({"key": ("id",)}, ValueError, "key fields"),
        ({"cursor": "startTime"}, ValueError, "cursor"),
        ({"doc": None}, ValueError, "description of its table"),
        (
            {
                "columns": (
                    registry.col("timestamp", registry.TS),
                    registry.col("vol", registry.INT),
                )
            },
            KeyError,
            "samples.vol",
        ),
    ],
)
def test_register_refuses_a_type_every_layer_could_not_read(changes, error, match):
    before = registry.DATA_TYPES
    with pytest.raises(error, match=match):
        registry.register(_samples(**changes))
    with pytest.raises(ValueError, match="taken"):  # the same name twice in one call
        registry.register(_samples(), _samples(path="other"))
    assert registry.DATA_TYPES is before and "samples" not in registry.BY_NAME


def test_extended_adds_a_type_for_the_block_and_restores_the_registry_after_an_error():
    samples = _samples()
    before = registry.DATA_TYPES
    with pytest.raises(RuntimeError), registry.extended(samples):
        assert registry.DATA_TYPES == (*before, samples)
        assert registry.get("samples") is samples and samples in registry.DEFAULT_TYPES
        assert dictionary.describe("samples", "level") == Doc("Sensor level", "dB")
        assert dictionary.describe("samples", "roomId") == descriptions.COLUMNS["roomId"]
        assert dictionary.table_description("samples") == "Samples of a lab's own sensor"
        raise RuntimeError
    assert registry.DATA_TYPES is before and "samples" not in registry.BY_NAME
    assert dictionary.describe("samples", "level") is None
    assert registry.DEFAULT_TYPES == tuple(dt for dt in before if dt.default)
