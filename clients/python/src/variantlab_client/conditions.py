"""GrowthBook's targeting-condition language, evaluated in pure Python (docs/api.md §2).

A condition is a MongoDB-style JSON object over user attributes, for example
``{"country": {"$in": ["US", "CA"]}, "app.version": {"$vgte": "2.1.0"}}``. Results follow
GrowthBook's reference SDK, which is written in JavaScript: that is why this module carries
JavaScript's loose comparison, string conversion and ``JSON.stringify`` rules. Conditions
written against one GrowthBook SDK must target the same users here, quirks included (a missing
attribute reads as ``null``, so ``{"age": {"$lt": 10}}`` holds for a user without an age).

Standard library only: this runs on the assignment hot path and in the admin's validation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import TypeGuard

__all__ = [
    "compile_condition",
    "evaluate_condition",
    "padded_version_string",
    "validate_condition",
]

_LOGICAL = frozenset({"$and", "$or", "$nor", "$not"})
_LIST_OPERATORS = frozenset({"$in", "$nin", "$ini", "$nini", "$all", "$alli"})
_ORDER_OPERATORS = frozenset({"$lt", "$lte", "$gt", "$gte"})
_VERSION_OPERATORS = frozenset({"$veq", "$vne", "$vgt", "$vgte", "$vlt", "$vlte"})
_VALUE_OPERATORS = (
    frozenset({"$eq", "$ne", "$exists", "$type", "$regex", "$regexi", "$size", "$elemMatch"})
    | {"$not"}
    | _LIST_OPERATORS
    | _ORDER_OPERATORS
    | _VERSION_OPERATORS
)
_SAVED_GROUP_OPERATORS = frozenset({"$inGroup", "$notInGroup"})
_TYPE_NAMES = frozenset({"string", "number", "boolean", "object", "array", "null", "undefined"})

# JavaScript's WhiteSpace and LineTerminator code points, trimmed by Number("...").
_JS_WHITESPACE = "\t\n\v\f\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"  # noqa: E501
_JS_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_JS_RADIX = re.compile(r"0(?:[xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")
_NUMERIC_PART = re.compile(r"[0-9]+")
_VERSION_STRIP = re.compile(r"^v|\+.*\Z", re.DOTALL)
_VERSION_SPLIT = re.compile(r"[-.]")


# --- JavaScript value semantics ---------------------------------------------------------------


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_array(value: object) -> TypeGuard[list[object] | tuple[object, ...]]:
    return isinstance(value, list | tuple)


def _is_object(value: object) -> TypeGuard[Mapping[str, object]]:
    return isinstance(value, Mapping)


def js_number_to_string(value: float) -> str:
    """``String(value)`` for a JavaScript number: shortest round-trip digits, JS exponents."""
    if isinstance(value, int):
        if abs(value) < 10**21:
            return str(value)
        value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    mantissa, _, exp = repr(abs(value)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    # `point` is where the decimal point falls after the first significant digit's position.
    point = len(whole) + (int(exp) if exp else 0) - (len(whole + frac) - len(digits))
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= point <= 21:
        return sign + digits + "0" * (point - k)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    e = point - 1
    e_text = f"e+{e}" if e >= 0 else f"e-{-e}"
    if k == 1:
        return sign + digits + e_text
    return sign + digits[0] + "." + digits[1:] + e_text


def _js_to_string(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if _is_number(value):
        return js_number_to_string(value)
    if _is_array(value):
        return ",".join("" if item is None else _js_to_string(item) for item in value)
    return "[object Object]"


def _string_to_number(text: str) -> float:
    text = text.strip(_JS_WHITESPACE)
    if not text:
        return 0.0
    if _JS_DECIMAL.fullmatch(text):
        return float(text.replace("Infinity", "inf"))
    if _JS_RADIX.fullmatch(text):
        return float(int(text, 0))
    return math.nan


def _js_to_number(value: object) -> float:
    if _is_number(value):
        return float(value)
    if value is None or value is False:
        return 0.0
    if value is True:
        return 1.0
    if isinstance(value, str):
        return _string_to_number(value)
    if _is_array(value):
        return _string_to_number(_js_to_string(value))
    return math.nan


def _js_truthy(value: object) -> bool:
    if value is None or value is False:
        return False
    if _is_number(value):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return value != ""
    return True  # arrays and objects are truthy in JavaScript, even when empty


def _utf16_compare(a: str, b: str) -> int:
    # JavaScript orders strings by UTF-16 code units; code points differ only around astral chars.
    if not (a.isascii() and b.isascii()):
        a_units, b_units = a.encode("utf-16-be"), b.encode("utf-16-be")
        return (a_units > b_units) - (a_units < b_units)
    return (a > b) - (a < b)


def _js_compare(a: object, b: object) -> int | None:
    """Abstract relational comparison: -1/0/1, or None when either side is NaN."""
    if _is_array(a) or _is_object(a):
        a = _js_to_string(a)
    if _is_array(b) or _is_object(b):
        b = _js_to_string(b)
    if isinstance(a, str) and isinstance(b, str):
        return _utf16_compare(a, b)
    x, y = _js_to_number(a), _js_to_number(b)
    if math.isnan(x) or math.isnan(y):
        return None
    return (x > y) - (x < y)


def _js_strict_equal(a: object, b: object) -> bool:
    """``a === b`` (``SameValueZero`` where NaN meets NaN is irrelevant for JSON data)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if a is None or b is None:
        return a is b
    return a is b  # arrays and objects compare by reference


def _js_key_order(obj: Mapping[str, object]) -> list[str]:
    # JSON.stringify lists integer-like keys first, ascending, then the rest in insertion order.
    keys = list(obj)
    index_keys = [k for k in keys if isinstance(k, str) and k.isdigit() and str(int(k)) == k]
    if not index_keys:
        return keys
    rest = [k for k in keys if k not in set(index_keys)]
    return sorted(index_keys, key=int) + rest


def _js_stringify(value: object) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if _is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            return "null"
        return js_number_to_string(value)
    if isinstance(value, str):
        return _json_quote(value)
    if _is_array(value):
        return "[" + ",".join(_js_stringify(item) for item in value) + "]"
    if _is_object(value):
        parts = (_json_quote(str(k)) + ":" + _js_stringify(value[k]) for k in _js_key_order(value))
        return "{" + ",".join(parts) + "}"
    return _json_quote(str(value))


def _json_quote(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# --- Attribute lookup and versions -------------------------------------------------------------


def _get_path(attributes: object, path: str) -> object:
    """Follow a dotted path; a missing step reads as None (JavaScript's null)."""
    current = attributes
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return None
            current = current[part]
        elif _is_array(current) and part.isdigit() and str(int(part)) == part:
            index = int(part)
            if index >= len(current):
                return None
            current = current[index]
        else:
            return None
    return current


def _js_type(value: object) -> str:
    if value is None:
        return "null"
    if _is_array(value):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    if _is_object(value):
        return "object"
    return "unknown"


def padded_version_string(value: object) -> str:
    """A string that orders like the version it encodes (GrowthBook's ``paddedVersionString``).

    ``v1.2.3+build`` → ``"    1-    2-    3-~"``: drop a leading ``v`` and any build suffix, split
    on ``-`` and ``.``, left-pad numeric parts to 5 so they compare as numbers, and append ``~``
    (greater than any letter) to a bare ``x.y.z`` so a release sorts after its pre-releases.
    """
    if _is_number(value):
        value = js_number_to_string(value)
    if not isinstance(value, str) or not value:
        value = "0"
    parts = _VERSION_SPLIT.split(_VERSION_STRIP.sub("", value))
    if len(parts) == 3:
        parts.append("~")
    return "-".join(p.rjust(5) if _NUMERIC_PART.fullmatch(p) else p for p in parts)


@lru_cache(maxsize=1024)
def _compile_regex(pattern: str, insensitive: bool) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern, re.IGNORECASE if insensitive else 0)
    except (re.error, RecursionError, OverflowError):
        return None


# --- Evaluation ---------------------------------------------------------------------------------


def evaluate_condition(
    condition: Mapping[str, object] | None, attributes: Mapping[str, object]
) -> bool:
    """True when ``attributes`` satisfy ``condition``; an empty condition is always true."""
    if not condition:
        return True
    if not isinstance(condition, Mapping):
        return False  # fail closed: validate_condition reports this to whoever saved it
    return _eval_condition(attributes, condition)


def _eval_condition(attributes: object, condition: Mapping[str, object]) -> bool:
    for key, value in condition.items():
        if key == "$or":
            if not _eval_or(attributes, value):
                return False
        elif key == "$nor":
            if _eval_or(attributes, value):
                return False
        elif key == "$and":
            if not _eval_and(attributes, value):
                return False
        elif key == "$not":
            if _eval_sub_condition(attributes, value):
                return False
        elif not _eval_condition_value(value, _get_path(attributes, key)):
            return False
    return True


def _eval_sub_condition(attributes: object, condition: object) -> bool:
    return isinstance(condition, Mapping) and _eval_condition(attributes, condition)


def _eval_or(attributes: object, conditions: object) -> bool:
    if not _is_array(conditions) or not conditions:
        return True
    return any(_eval_sub_condition(attributes, c) for c in conditions)


def _eval_and(attributes: object, conditions: object) -> bool:
    if not _is_array(conditions):
        return True
    return all(_eval_sub_condition(attributes, c) for c in conditions)


def _is_operator_object(value: object) -> TypeGuard[Mapping[str, object]]:
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(k, str) and k.startswith("$") for k in value)
    )


def _eval_condition_value(expected: object, actual: object) -> bool:
    if isinstance(expected, str):
        return _js_to_string(actual) == expected
    if isinstance(expected, bool):
        return actual is not None and _js_truthy(actual) is expected
    if _is_number(expected):
        return bool(_js_to_number(actual) == expected)
    if expected is None:
        return actual is None
    if not _is_operator_object(expected):
        return _js_stringify(actual) == _js_stringify(expected)
    return all(_eval_operator(op, actual, operand) for op, operand in expected.items())


def _is_in(actual: object, expected: Sequence[object], insensitive: bool) -> bool:
    if insensitive:
        expected = [e.lower() if isinstance(e, str) else e for e in expected]
    candidates = actual if _is_array(actual) else (actual,)
    for candidate in candidates:
        if insensitive and isinstance(candidate, str):
            candidate = candidate.lower()
        if any(_js_strict_equal(candidate, e) for e in expected):
            return True
    return False


def _is_in_all(actual: object, expected: object, insensitive: bool) -> bool:
    if not _is_array(actual) or not _is_array(expected):
        return False
    for wanted in expected:
        if insensitive and isinstance(wanted, str):
            folded = wanted.lower()
            found = any(isinstance(a, str) and a.lower() == folded for a in actual)
        else:
            found = any(_eval_condition_value(wanted, a) for a in actual)
        if not found:
            return False
    return True


def _elem_match(actual: object, expected: object) -> bool:
    if not _is_array(actual):
        return False
    if _is_operator_object(expected):
        return any(_js_truthy(a) and _eval_condition_value(expected, a) for a in actual)
    if not isinstance(expected, Mapping):
        return False
    # GrowthBook skips falsy elements (0, "", null, false) here; kept for identical results.
    return any(_js_truthy(a) and _eval_condition(a, expected) for a in actual)


def _eval_operator(operator: str, actual: object, expected: object) -> bool:
    if operator in _ORDER_OPERATORS:
        order = _js_compare(actual, expected)
        if order is None:
            return False
        if operator == "$lt":
            return order < 0
        if operator == "$lte":
            return order <= 0
        if operator == "$gt":
            return order > 0
        return order >= 0
    if operator in _VERSION_OPERATORS:
        order = _utf16_compare(padded_version_string(actual), padded_version_string(expected))
        return {
            "$veq": order == 0,
            "$vne": order != 0,
            "$vgt": order > 0,
            "$vgte": order >= 0,
            "$vlt": order < 0,
            "$vlte": order <= 0,
        }[operator]
    if operator == "$eq":
        return _js_strict_equal(actual, expected)
    if operator == "$ne":
        return not _js_strict_equal(actual, expected)
    if operator in ("$in", "$ini"):
        return _is_array(expected) and _is_in(actual, expected, operator == "$ini")
    if operator in ("$nin", "$nini"):
        return _is_array(expected) and not _is_in(actual, expected, operator == "$nini")
    if operator in ("$all", "$alli"):
        return _is_in_all(actual, expected, operator == "$alli")
    if operator == "$exists":
        return (actual is not None) if _js_truthy(expected) else (actual is None)
    if operator == "$not":
        return not _eval_condition_value(expected, actual)
    if operator == "$size":
        return _is_array(actual) and _eval_condition_value(expected, len(actual))
    if operator == "$elemMatch":
        return _elem_match(actual, expected)
    if operator in ("$regex", "$regexi"):
        regex = _compile_regex(_js_to_string(expected), operator == "$regexi")
        return regex is not None and regex.search(_js_to_string(actual)) is not None
    if operator == "$type":
        return bool(_js_type(actual) == expected)
    # Saved groups are out of scope, so no unit is in any group: $notInGroup always holds,
    # while $inGroup and unknown operators never match, as in GrowthBook.
    return operator == "$notInGroup"


# --- Compilation --------------------------------------------------------------------------------

Predicate = Callable[[Mapping[str, object]], bool]
_StringTest = Callable[[str], bool]


def compile_condition(condition: Mapping[str, object] | None) -> Predicate | None:
    """``evaluate_condition`` with the work that depends only on the condition done once.

    None means "always true". Each top-level attribute becomes its own test; the common shapes
    (a string, ``$eq``/``$ne`` a string, ``$in``/``$nin`` a list, ``$vgt``...) get a shortcut
    taken only when the attribute value is a string, where it provably equals the general rule
    (strict equality of strings; a non-string in the list never equals a string). Any other
    value or shape goes through the general evaluator, so results never differ from it.
    """
    if not condition:
        return None
    if not isinstance(condition, Mapping):
        return lambda attributes: False
    tests = [_compile_entry(key, value) for key, value in condition.items()]
    if len(tests) == 1:
        return tests[0]
    return lambda attributes: all(test(attributes) for test in tests)


def _compile_entry(key: str, expected: object) -> Predicate:
    def general(attributes: Mapping[str, object]) -> bool:
        return _eval_condition(attributes, {key: expected})

    fast = None if key.startswith("$") or "." in key else _string_test(expected)
    if fast is None:
        return general

    def entry(attributes: Mapping[str, object]) -> bool:
        value = attributes.get(key) if type(attributes) is dict else None
        if type(value) is str:
            return fast(value)
        return general(attributes)

    return entry


def _string_test(expected: object) -> _StringTest | None:
    """An exact test for a string attribute value, or None when there is no shortcut."""
    if isinstance(expected, str):
        return expected.__eq__
    if not _is_operator_object(expected) or len(expected) != 1:
        return None
    ((operator, operand),) = expected.items()
    if operator in ("$eq", "$ne") and isinstance(operand, str):
        return operand.__eq__ if operator == "$eq" else operand.__ne__
    if operator in ("$in", "$nin") and _is_array(operand):
        strings = frozenset(e for e in operand if isinstance(e, str))
        return strings.__contains__ if operator == "$in" else lambda v: v not in strings
    if operator in _VERSION_OPERATORS and isinstance(operand, str | int | float):
        padded = padded_version_string(operand)
        compare = _VERSION_ORDER[operator]
        return lambda v: compare(_utf16_compare(padded_version_string(v), padded))
    return None


_VERSION_ORDER: dict[str, Callable[[int], bool]] = {
    "$veq": lambda order: order == 0,
    "$vne": lambda order: order != 0,
    "$vgt": lambda order: order > 0,
    "$vgte": lambda order: order >= 0,
    "$vlt": lambda order: order < 0,
    "$vlte": lambda order: order <= 0,
}


# --- Validation ---------------------------------------------------------------------------------


def validate_condition(condition: object) -> list[str]:
    """Human-readable problems with a condition; an empty list means it is valid.

    Catches what GrowthBook would silently evaluate as "never matches": unknown operators,
    operands of the wrong type (``$in`` without a list), regexes that do not compile, and
    saved-group operators, which Variantlab does not support.
    """
    if condition is None:
        return ["condition must be a JSON object, got null"]
    problems: list[str] = []
    _validate_condition(condition, "condition", problems)
    return problems


def _type_name(value: object) -> str:
    name = _js_type(value)
    return name if name != "unknown" else type(value).__name__


def _validate_condition(condition: object, where: str, problems: list[str]) -> None:
    if not isinstance(condition, Mapping):
        problems.append(f"{where} must be a JSON object, got {_type_name(condition)}")
        return
    for key, value in condition.items():
        if not isinstance(key, str):
            problems.append(f"{where}: keys must be strings, got {key!r}")
        elif key in ("$and", "$or", "$nor"):
            if not isinstance(value, list):
                problems.append(f"{where}: {key} needs a list of conditions")
                continue
            for i, sub in enumerate(value):
                _validate_condition(sub, f"{where}.{key}[{i}]", problems)
        elif key == "$not":
            _validate_condition(value, f"{where}.$not", problems)
        elif key in _VALUE_OPERATORS or key in _SAVED_GROUP_OPERATORS:
            problems.append(
                f"{where}: {key} must be applied to an attribute, "
                f'e.g. {{"country": {{"{key}": ...}}}}'
            )
        else:
            _validate_value(value, key, problems)


def _validate_value(value: object, attribute: str, problems: list[str]) -> None:
    if not isinstance(value, Mapping):
        return  # a literal: compared for equality
    dollar = [k for k in value if isinstance(k, str) and k.startswith("$")]
    if not dollar:
        return  # a literal object: compared with JSON equality
    if len(dollar) != len(value):
        problems.append(f"{attribute}: mixes operators ({', '.join(dollar)}) with plain keys")
        return
    for operator, operand in value.items():
        _validate_operator(operator, operand, attribute, problems)


def _validate_operator(
    operator: str, operand: object, attribute: str, problems: list[str]
) -> None:
    where = f"{attribute}: {operator}"
    got = _type_name(operand)
    if operator in _SAVED_GROUP_OPERATORS:
        problems.append(f"{where}: saved groups are not supported")
    elif operator not in _VALUE_OPERATORS:
        hint = " (logical operators go at the top level)" if operator in _LOGICAL else ""
        problems.append(f"{attribute}: unknown operator {operator}{hint}")
    elif operator in _LIST_OPERATORS:
        if not isinstance(operand, list):
            problems.append(f"{where} needs a list, got {got}")
    elif operator in _ORDER_OPERATORS:
        if not (isinstance(operand, str) or _is_number(operand)):
            problems.append(f"{where} needs a number or a string, got {got}")
    elif operator in _VERSION_OPERATORS:
        if not isinstance(operand, str) or not operand:
            problems.append(f"{where} needs a version string such as 1.2.3, got {got}")
    elif operator in ("$eq", "$ne"):
        if isinstance(operand, list | Mapping):
            problems.append(
                f"{where} compares single values; put the {got} directly as the attribute's value"
            )
    elif operator == "$exists":
        if not isinstance(operand, bool):
            problems.append(f"{where} needs true or false, got {got}")
    elif operator == "$type":
        if operand not in _TYPE_NAMES:
            names = ", ".join(sorted(_TYPE_NAMES))
            problems.append(f"{where} needs one of {names}, got {operand!r}")
    elif operator in ("$regex", "$regexi"):
        if not isinstance(operand, str):
            problems.append(f"{where} needs a string pattern, got {got}")
        elif _compile_regex(operand, operator == "$regexi") is None:
            problems.append(f"{where}: invalid regular expression {operand!r}")
    elif operator == "$size":
        if isinstance(operand, bool) or not (
            isinstance(operand, int) or _is_operator_object(operand)
        ):
            problems.append(f"{where} needs a whole number or an operator object, got {got}")
        elif isinstance(operand, Mapping):
            _validate_value(operand, f"{attribute}.$size", problems)
    elif operator == "$elemMatch":
        if not isinstance(operand, Mapping) or not operand:
            problems.append(f"{where} needs a non-empty object, got {got}")
        elif _is_operator_object(operand):
            _validate_value(operand, f"{attribute}[]", problems)
        else:
            _validate_condition(operand, f"{attribute}[]", problems)
    elif operator == "$not":
        _validate_value(operand, f"{attribute}.$not", problems)
