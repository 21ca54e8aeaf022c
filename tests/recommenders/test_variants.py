"""Registering variants: versions, parameter validation with field errors, immutability, hybrids."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from recommenders.models import ImmutableVariant, Variant
from recommenders.services.variants import VariantError, VariantSpec, find_variant, register_variant
from tests.recommenders.factories import retail_sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(tmp_path: Path):  # type: ignore[no-untyped-def]
    return retail_sample(tmp_path, rows=300)


def test_registering_a_name_again_adds_a_version(dataset) -> None:  # type: ignore[no-untyped-def]
    first = register_variant(VariantSpec("ease-retail", "ease", dataset.name, {"l2": 100.0}))
    second = register_variant(VariantSpec("ease-retail", "ease", dataset.name, {"l2": 300}))

    assert (first.version, second.version) == (1, 2)
    assert second.params == {"l2": 300}
    assert find_variant("ease-retail") == second
    assert find_variant("ease-retail@1") == first
    assert list(Variant.objects.latest_versions()) == [second]


@pytest.mark.parametrize(
    ("algorithm", "params", "field", "message"),
    [
        ("nope", {}, "algorithm", "Unknown algorithm 'nope'; known: "),
        ("ease", {"lambda": 3}, "params.lambda", "unknown parameter for ease"),
        ("ease", {"l2": "big"}, "params.l2", "expected a number"),
        ("als", {"factors": 0}, "params.factors", ""),
        ("ease", {"session_seconds": -60.0}, "params.session_seconds", "must be 0 (plain co-occurrence)"),
        ("hybrid", {"components": []}, "params.components", "non-empty list"),
    ],
    ids=["unknown-algorithm", "unknown-parameter", "wrong-type", "out-of-range", "negative-session", "empty-hybrid"],
)
def test_bad_registrations_get_field_errors_and_store_nothing(dataset, algorithm, params, field, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(VariantError) as error:
        register_variant(VariantSpec("bad", algorithm, dataset.name, params))
    assert field in error.value.errors
    assert message in error.value.errors[field]
    assert Variant.objects.count() == 0


def test_unknown_data_set_and_bad_name_are_reported_together() -> None:
    with pytest.raises(VariantError) as error:
        register_variant(VariantSpec("no spaces please", "ease", "missing", {}))
    assert set(error.value.errors) == {"name", "dataset"}
    assert "no data set named 'missing'" in error.value.errors["dataset"]


def test_a_trained_version_is_immutable(dataset) -> None:  # type: ignore[no-untyped-def]
    variant = register_variant(VariantSpec("pop", "popularity", dataset.name, {}))
    variant.params = {"half_life_days": 7.0}
    variant.save()  # a draft may change
    Variant.objects.filter(pk=variant.pk).update(status=Variant.Status.TRAINED)
    variant.refresh_from_db()

    variant.params = {"half_life_days": 1.0}
    with pytest.raises(ImmutableVariant, match="register a new version"):
        variant.save()
    variant.refresh_from_db()
    assert variant.params == {"half_life_days": 7.0}


def test_hybrid_components_may_name_registered_variants(dataset) -> None:  # type: ignore[no-untyped-def]
    register_variant(VariantSpec("ease-small", "ease", dataset.name, {"l2": 50.0}))
    hybrid = register_variant(
        VariantSpec(
            "blend",
            "hybrid",
            dataset.name,
            {"components": [{"variant": "ease-small@1", "weight": 0.7}, {"algorithm": "popularity", "weight": 0.3}]},
        )
    )
    assert hybrid.params["components"][0] == {"algorithm": "ease", "params": {"l2": 50.0}, "weight": 0.7}

    with pytest.raises(VariantError) as error:
        register_variant(VariantSpec("blend", "hybrid", dataset.name, {"components": [{"variant": "ghost"}]}))
    assert error.value.errors == {"params.components[0].variant": "no variant 'ghost'"}


TWO_VARIANTS = """variants:
  - {{name: pop, algorithm: popularity, dataset: {dataset}}}
  - {{name: knn, algorithm: item_knn, dataset: {dataset}, params: {{{knn_param}: 10}}}}
"""


def test_register_variant_command_reads_yaml_and_refuses_bad_files_whole(dataset, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "variants.yaml"
    good.write_text(TWO_VARIANTS.format(dataset=dataset.name, knn_param="neighbours"))
    out = io.StringIO()
    call_command("register_variant", str(good), stdout=out)
    assert "Registered pop@1 (popularity on retail-sample)." in out.getvalue()
    assert Variant.objects.count() == 2

    bad = tmp_path / "bad.yaml"
    bad.write_text(TWO_VARIANTS.format(dataset=dataset.name, knn_param="neighbors"))
    with pytest.raises(CommandError, match=r"bad\.yaml, variant 2: nothing was registered. params\.neighbors: unknown"):
        call_command("register_variant", str(bad), stdout=io.StringIO())
    assert Variant.objects.count() == 2  # the first entry of the bad file was rolled back too

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(CommandError, match=r"broken\.yaml: not valid YAML"):
        call_command("register_variant", str(broken))
