"""Kubernetes resource quantities, read, compared, summed and printed as the API server does.

Every CPU, memory and storage figure in the kit arrives as text ("250m", "1.5Gi", "1e3")
and ends up summed against node allocatable and written back into manifests and reports.
Floats drift, and a home-made parser disagrees with the cluster on the edge cases
("3.001n", "0.1mi", "1.5Gi"), so this module follows apimachinery's ``resource.Quantity``
(pkg/api/resource/quantity.go): exact values rounded away from zero to nano precision, the
same accepted spellings, and the same canonical text.

Deliberate differences from the Go code, all on text no manifest should contain:

- text without a single digit ("m", ".", "+", "Ki") is rejected; Go's scanner reads it as 0;
- text longer than 1000 characters and exponents beyond +-1000 are rejected (Go accepts any
  int64 exponent, and Python cannot print numbers of more than 4300 digits);
- a BinarySI value of 1024Ei or more prints with the ``Ei`` suffix; Go drops the suffix and
  prints a wrong number.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType

from eafix_capacity.errors import QuantityError

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"
FORMATS = (DECIMAL_SI, BINARY_SI, DECIMAL_EXPONENT)

_NANO = 10**9
# ParseQuantity silently caps a BinarySI magnitude at the largest int64.
_MAX_BINARY_NANOS = (2**63 - 1) * _NANO
_MAX_TEXT = 1000
_MAX_EXPONENT = 1000

_DECIMAL_SUFFIXES: Mapping[str, int] = MappingProxyType(
    {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
)
_DECIMAL_SUFFIX_BY_EXPONENT: Mapping[int, str] = MappingProxyType(
    {e: s for s, e in _DECIMAL_SUFFIXES.items()}
)
_BINARY_SUFFIXES: Mapping[str, int] = MappingProxyType(
    {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
)
_BINARY_SUFFIX_BY_POWER = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")

_SHAPE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(.*)", re.DOTALL)
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)")
_WHITESPACE = re.compile(r"\s")

_VALID = (
    "a quantity is an optional sign, digits with at most one '.', then one suffix: "
    "n u m k M G T P E, Ki Mi Gi Ti Pi Ei, or e/E and an integer exponent, "
    "with no spaces (e.g. 250m, 0.5, 1.5Gi, 1e3)"
)


def _div_away(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded away from zero (denominator > 0)."""
    q, r = divmod(abs(numerator), denominator)
    q += r != 0
    return -q if numerator < 0 else q


@dataclass(frozen=True, eq=False)
class Quantity:
    """An exact Kubernetes quantity: its value and the format it prints in.

    Equality, ordering and hashing use the value only, so ``parse("1Gi") ==
    parse("1073741824")``. Construction rounds ``value`` away from zero to a multiple of
    1e-9, as parsing does.
    """

    value: Fraction
    format: str = DECIMAL_SI

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise QuantityError(
                "unknown quantity format", value=self.format, valid=f"one of {', '.join(FORMATS)}"
            )
        if isinstance(self.value, bool) or not isinstance(self.value, (int, Fraction)):
            raise TypeError(f"Quantity value must be an int or a Fraction, not {self.value!r}")
        scaled = Fraction(self.value) * _NANO
        nanos = _div_away(scaled.numerator, scaled.denominator)
        object.__setattr__(self, "value", Fraction(nanos, _NANO))

    @property
    def _nanos(self) -> int:
        return (self.value * _NANO).numerator

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __lt__(self, other: Quantity) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.value < other.value

    def __le__(self, other: Quantity) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.value <= other.value

    def __gt__(self, other: Quantity) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.value > other.value

    def __ge__(self, other: Quantity) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.value >= other.value

    # arithmetic: like k8s Add/Sub, the result keeps the left format unless the left is zero
    def __add__(self, other: Quantity) -> Quantity:
        if not isinstance(other, Quantity):
            return NotImplemented
        fmt = other.format if self.value == 0 else self.format
        return Quantity(self.value + other.value, fmt)

    def __radd__(self, other: object) -> Quantity:
        # Only the literal 0 that sum() starts from.
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self
        return NotImplemented

    def __sub__(self, other: Quantity) -> Quantity:
        if not isinstance(other, Quantity):
            return NotImplemented
        fmt = other.format if self.value == 0 else self.format
        return Quantity(self.value - other.value, fmt)

    def __neg__(self) -> Quantity:
        return Quantity(-self.value, self.format)

    def __bool__(self) -> bool:
        return self.value != 0

    def milli_value(self) -> int:
        """The value in thousandths, rounded away from zero (k8s ``MilliValue``)."""
        return _div_away(self._nanos, 10**6)

    def int_value(self) -> int:
        """The value rounded away from zero to an integer (k8s ``Value``)."""
        return _div_away(self._nanos, _NANO)

    def __str__(self) -> str:
        """The canonical text, as k8s ``String()`` prints a quantity it computed."""
        nanos = self._nanos
        if nanos == 0:
            return "0"
        fmt = self.format
        if fmt == BINARY_SI:
            if abs(nanos) < 1024 * _NANO or nanos % _NANO:
                fmt = DECIMAL_SI
            else:
                return _binary_text(nanos // _NANO)
        mantissa, exponent = nanos, -9
        while mantissa % 10 == 0:
            mantissa //= 10
            exponent += 1
        while exponent % 3:
            mantissa *= 10
            exponent -= 1
        suffix = _DECIMAL_SUFFIX_BY_EXPONENT.get(exponent) if fmt == DECIMAL_SI else None
        if suffix is None:
            # DecimalExponent, or DecimalSI beyond "E", which k8s also prints as e<exp>.
            suffix = f"e{exponent}" if exponent else ""
        return f"{mantissa}{suffix}"


def _binary_text(n: int) -> str:
    magnitude, power = abs(n), 0
    while power < 6 and magnitude % 1024 == 0:
        magnitude //= 1024
        power += 1
    sign = "-" if n < 0 else ""
    return f"{sign}{magnitude}{_BINARY_SUFFIX_BY_POWER[power]}"


@dataclass(frozen=True)
class _Parts:
    """The pieces of quantity text, as apimachinery's scanner splits them."""

    negative: bool
    whole: str  # digits before '.', possibly empty
    fraction: str  # digits after '.', possibly empty
    format: str
    base: int  # 10 or 2
    exponent: int  # power of base the suffix stands for


def _fail(problem: str, text: str) -> QuantityError:
    return QuantityError(problem, value=text, valid=_VALID)


def _scan(text: object) -> tuple[str, _Parts]:
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise QuantityError(
            f"quantity must be text or a number, not {type(text).__name__}",
            value=text,
            valid=_VALID,
        )
    if not isinstance(text, str):
        # A JSON/YAML number is a valid quantity; repr gives the shortest exact spelling.
        text = repr(text)
    if text == "":
        raise _fail("empty quantity", text)
    if len(text) > _MAX_TEXT:
        raise _fail(f"quantity longer than {_MAX_TEXT} characters", text)
    if _WHITESPACE.search(text):
        raise _fail("whitespace in quantity", text)
    match = _SHAPE.fullmatch(text)
    assert match is not None  # the pattern accepts any string
    sign, whole, fraction, suffix = match.groups()
    fraction = fraction or ""
    if not whole and not fraction:
        problem = "quantity does not start with a number" if suffix else "no digits in quantity"
        raise _fail(problem, text)
    if suffix in _DECIMAL_SUFFIXES:
        fmt, base, exponent = DECIMAL_SI, 10, _DECIMAL_SUFFIXES[suffix]
    elif suffix in _BINARY_SUFFIXES:
        fmt, base, exponent = BINARY_SI, 2, _BINARY_SUFFIXES[suffix]
    else:
        exp_match = _EXPONENT.fullmatch(suffix)
        if exp_match is None:
            raise _fail(f"unknown suffix {suffix!r} in quantity", text)
        exponent = int(exp_match.group(1))
        if abs(exponent) > _MAX_EXPONENT:
            raise _fail(f"exponent beyond +-{_MAX_EXPONENT} in quantity", text)
        fmt, base = DECIMAL_EXPONENT, 10
    return text, _Parts(sign == "-", whole, fraction, fmt, base, exponent)


def _nanos(parts: _Parts) -> int:
    """The magnitude in nano units, rounded away from zero."""
    digits = parts.whole + parts.fraction
    n = int(digits)
    if parts.base == 2:
        return _div_away(n * 2**parts.exponent * _NANO, 10 ** len(parts.fraction))
    shift = parts.exponent - len(parts.fraction) + 9
    if shift >= 0:
        return n * 10**shift
    if n == 0:
        return 0
    if -shift >= len(digits):
        return 1  # below one nano; 10**-shift may be huge, so skip computing it
    return _div_away(n, 10**-shift)


def _from_parts(parts: _Parts) -> Quantity:
    nanos = _nanos(parts)
    fmt = parts.format
    if fmt == BINARY_SI:
        nanos = min(nanos, _MAX_BINARY_NANOS)
        if 0 < nanos < _NANO:
            fmt = DECIMAL_SI
    return Quantity(Fraction(-nanos if parts.negative else nanos, _NANO), fmt)


def parse(text: str | int | float) -> Quantity:
    """Read Kubernetes quantity text such as "250m", "1.5Gi" or "1e3".

    An int or float (an unquoted YAML/JSON number) is read from its ``repr``.
    Raises QuantityError naming the text and what would be valid.
    """
    _, parts = _scan(text)
    return _from_parts(parts)


def api_string(text: str | int | float) -> str:
    """The text an API server hands back for a quantity that was sent as ``text``.

    ParseQuantity keeps the caller's own text when its int64 fast path reads it exactly and
    the text looks canonical, even for spellings such as "+1", "01" or "1.500" that
    ``str(parse(text))`` would print as "1", "1" and "1500m". Otherwise the canonical form.
    """
    text, parts = _scan(text)
    if text == "0":
        return text
    whole = parts.whole.lstrip("0") or "0"
    if parts.format == BINARY_SI:
        precision = 15 - len(whole) - parts.exponent * 3 // 10 - 1
        if not parts.fraction and precision >= 0 and int(whole) & 0x07:
            return text
    else:
        shifted = whole + parts.fraction
        scale = parts.exponent - len(parts.fraction)
        if (
            len(shifted) <= 18
            and scale >= -9
            and scale % 3 == 0
            and not shifted.endswith("000")
            and shifted[0] != "0"
        ):
            return text
    return str(_from_parts(parts))


def from_milli(m: int) -> Quantity:
    """A DecimalSI quantity of ``m`` thousandths: 1500 -> "1500m", 2000 -> "2"."""
    if isinstance(m, bool) or not isinstance(m, int):
        raise TypeError(f"from_milli takes an int, not {m!r}")
    return Quantity(Fraction(m, 1000), DECIMAL_SI)


def from_bytes(n: int, *, binary: bool = True) -> Quantity:
    """A quantity of ``n`` bytes: BinarySI ("256Mi") by default, else DecimalSI ("256M").

    As in k8s, a BinarySI value that is not a multiple of 1024 prints as a bare number
    ("1000000"), and a value under 1024 prints as DecimalSI.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"from_bytes takes an int, not {n!r}")
    return Quantity(Fraction(n), BINARY_SI if binary else DECIMAL_SI)


def cpu_millis(text: str) -> int:
    """CPU text as millicores, rounded up: "250m" -> 250, "0.5" -> 500, "100n" -> 1."""
    return parse(text).milli_value()


def memory_bytes(text: str) -> int:
    """Memory or storage text as bytes, rounded up: "1Gi" -> 1073741824, "1.5k" -> 1500."""
    return parse(text).int_value()


def memory_typo(text: str | int | float) -> str | None:
    """Why a memory quantity is almost certainly a typo, or None when it is not.

    Kubernetes accepts ``256m`` for memory (256 millibytes, rounded up to one byte), but
    nobody means that: it is a typo for ``256Mi``. The same goes for any value with a
    fraction of a byte (``n``, ``u``, ``m`` suffixes, ``0.5``, ``1e-3``). Raises
    QuantityError when ``text`` is not a quantity at all.
    """
    q = parse(text)
    raw = str(text)
    milli = raw.endswith(("m", "u", "n"))
    if q.value.denominator == 1 and not milli:
        return None
    if milli:
        return (f"memory {raw!r} has a milli (or smaller) suffix: {float(q.value):g} bytes; "
                f"did you mean {raw[:-1]}Mi?")
    return f"memory {raw!r} is a fraction of a byte; memory is a whole number of bytes, e.g. 256Mi or 1Gi"


# --- what an API server does with quantity text it decodes -----------------------------------------
# The messages of apimachinery's ParseQuantity errors (pkg/api/resource/quantity.go).
SERVER_FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
SERVER_SUFFIX_ERROR = "unable to parse quantity's suffix"
_SCAN_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_ASCII_DIGITS = frozenset("0123456789")


def _go_suffix(text: str) -> str:
    """The suffix part of ``text`` as apimachinery's parseQuantityString splits it; raises ValueError
    (the format error) where that scanner fails."""
    pos, end = 0, len(text)
    if pos < end and text[0] in "+-":
        pos += 1
    while pos < end and text[pos] == "0":
        pos += 1
    while pos < end and text[pos] in _ASCII_DIGITS:
        pos += 1
    if pos < end and text[pos] == ".":
        pos += 1
        while pos < end and text[pos] in _ASCII_DIGITS:
            pos += 1
    start = pos
    while pos < end and text[pos] in _SCAN_SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _ASCII_DIGITS:
        pos += 1
    if pos < end:
        raise ValueError(SERVER_FORMAT_ERROR)
    return text[start:]


def _go_suffix_known(suffix: str) -> bool:
    if suffix in _DECIMAL_SUFFIXES or suffix in _BINARY_SUFFIXES:
        return True
    return len(suffix) > 1 and suffix[0] in "eE" and bool(re.fullmatch(r"[+-]?[0-9]+", suffix[1:]))


def _server_input(value: str | int | float) -> str:
    # Quantity.UnmarshalJSON trims the text of a JSON string; a JSON number arrives as its digits.
    return value.strip() if isinstance(value, str) else repr(value)


def server_error(value: str | int | float) -> str | None:
    """The error an API server's ParseQuantity gives for ``value`` (a JSON string or number), or None.

    ``"2 cores"`` -> the ``quantities must match the regular expression ...`` message; ``"1K"`` ->
    ``unable to parse quantity's suffix``. Text such as ``"m"`` that the server reads as zero is no error.
    """
    text = _server_input(value)
    if text == "":
        return SERVER_FORMAT_ERROR
    try:
        suffix = _go_suffix(text)
    except ValueError as e:
        return str(e)
    return None if _go_suffix_known(suffix) else SERVER_SUFFIX_ERROR


def server_text(value: str | int | float) -> str:
    """The text an API server stores for a quantity ``value`` that ``server_error`` accepts:
    ``0.5`` -> ``500m``, ``1000m`` -> ``1``, ``1024Mi`` -> ``1Gi``, ``1.5Gi`` -> ``1536Mi``, ``250m`` kept."""
    text = _server_input(value)
    if not any(ch in _ASCII_DIGITS for ch in text):
        return "0"  # the server's scanner reads "m", "." or "+" as zero
    try:
        return api_string(text)
    except QuantityError:
        return text  # beyond this module's limits (over 1000 characters, huge exponents): kept as sent
