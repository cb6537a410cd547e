"""Declared job parameters: the one description of a param that the form, the API and the task share."""

import math
from dataclasses import dataclass

# At most this many unknown param names are named in an error, each cut to NAME_CHARS: a client
# sending thousands of them gets a short answer, not an echo of its own body.
REPORTED_UNKNOWN = 10
NAME_CHARS = 64


class ParamsInvalid(ValueError):
    """Bad params; ``errors`` maps each offending field to a message a person can act on."""

    def __init__(self, errors):
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


def _plain(number):
    """A bound as a person writes it: 100000000, not 1e+08; 0.5 stays 0.5."""
    return str(int(number)) if float(number).is_integer() else repr(float(number))


@dataclass(frozen=True)
class Param:
    """One named, typed, bounded parameter of a job kind."""

    name: str
    type: type  # int or float
    minimum: float
    maximum: float
    default: float | None = None
    required: bool = True
    help: str = ""

    def describe(self):
        """This param as ``GET /api/kinds`` shows it: what forms and clients build inputs from."""
        return {"name": self.name, "type": self.type.__name__, "min": self.minimum,
                "max": self.maximum, "default": self.default, "required": self.required,
                "help": self.help}

    def clean(self, value):
        """Return the value as this param's type, or raise ValueError saying what is wrong."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number, not {type(value).__name__}")
        out_of_range = ValueError(f"must be between {_plain(self.minimum)} and {_plain(self.maximum)}")
        if self.type is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("must be a whole number")
            value = int(value)
        else:
            try:
                value = float(value)
            except OverflowError:  # an integer too large for a float is beyond every bound
                raise out_of_range from None
            if not math.isfinite(value):
                raise ValueError("must be a finite number")
        if not self.minimum <= value <= self.maximum:
            raise out_of_range
        return value


def clean_params(params, declared):
    """Validate a params mapping against the declared params; unknown names are errors too."""
    if not isinstance(params, dict):
        raise ParamsInvalid({"params": "must be an object"})
    errors, clean = {}, {}
    unknown = [str(name) for name in params if name not in declared]
    for name in unknown[:REPORTED_UNKNOWN]:
        errors[name[:NAME_CHARS]] = "is not a parameter of this kind"
    if len(unknown) > REPORTED_UNKNOWN:
        errors["params"] = f"{len(unknown) - REPORTED_UNKNOWN} more names are not parameters of this kind"
    for name, param in declared.items():
        value = params.get(name)
        if value is None:
            if param.default is not None:
                clean[name] = param.default
            elif param.required:
                errors[name] = "is required"
            continue
        try:
            clean[name] = param.clean(value)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise ParamsInvalid(errors)
    return clean
