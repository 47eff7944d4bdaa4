from experiments.validation import VariantSpec, frozen_variant_errors, variant_set_errors


def spec(key: str, weight: float, control: bool = False) -> VariantSpec:
    return VariantSpec(key, weight, control)


def test_variant_set_errors__valid_set__no_problem() -> None:
    assert variant_set_errors([spec("a", 0.3, True), spec("b", 0.7)]) == []


def test_variant_set_errors__weights_off__names_the_sum() -> None:
    problems = variant_set_errors([spec("a", 0.5, True), spec("b", 0.4)])
    assert problems == ["Variant weights must sum to 1 (they sum to 0.9)."]


def test_variant_set_errors__no_or_two_controls__refused() -> None:
    assert "Exactly one variant must be the control (found 0)." in variant_set_errors(
        [spec("a", 0.5), spec("b", 0.5)]
    )
    assert "Exactly one variant must be the control (found 2)." in variant_set_errors(
        [spec("a", 0.5, True), spec("b", 0.5, True)]
    )


def test_variant_set_errors__duplicate_keys__named() -> None:
    problems = variant_set_errors([spec("a", 0.5, True), spec("a", 0.5)])
    assert "Variant keys must be unique; repeated: a." in problems


def test_variant_set_errors__single_variant__refused() -> None:
    assert "An experiment needs at least two variants." in variant_set_errors([spec("a", 1, True)])


def test_frozen_variant_errors__weight_changed__refused() -> None:
    current = [spec("a", 0.5, True), spec("b", 0.5)]
    problems = frozen_variant_errors(current, [spec("a", 0.6, True), spec("b", 0.4)])
    assert len(problems) == 1 and "changed: a, b" in problems[0]


def test_frozen_variant_errors__variant_added__refused() -> None:
    current = [spec("a", 0.5, True), spec("b", 0.5)]
    problems = frozen_variant_errors(current, [*current, spec("c", 0.0)])
    assert problems and "added or removed" in problems[0]


def test_frozen_variant_errors__same_weights__accepted() -> None:
    current = [spec("a", 0.5, True), spec("b", 0.5)]
    assert frozen_variant_errors(current, list(current)) == []
