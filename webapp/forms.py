"""The submit form: a kind picker plus one fieldset per registered kind, built from its params."""

from flask_wtf import FlaskForm
from wtforms import Form, FloatField, IntegerField, SelectField
from wtforms.validators import InputRequired, Optional, ValidationError

from tasks import KINDS


class SubmitForm(FlaskForm):
    kind = SelectField("Job kind")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind.choices = [(kind.name, kind.title) for kind in KINDS.values()]


class WithinBounds:
    """The param's own check (``Param.clean``) on a form field, and its bounds as the input's
    ``min`` and ``max``. Any whole number a person types is checked, however long: one too large
    for a float is out of range, not an error of the server."""

    def __init__(self, param):
        self.param = param
        self.field_flags = {"min": param.minimum, "max": param.maximum}

    def __call__(self, form, field):
        if field.data is None:
            return
        try:
            self.param.clean(field.data)
        except ValueError as exc:
            message = str(exc)
            raise ValidationError(f"{message[:1].upper()}{message[1:]}.") from None


def _field(param):
    field_class = IntegerField if param.type is int else FloatField
    presence = InputRequired() if param.default is None and param.required else Optional()
    render_kw = {"step": "1" if param.type is int else "any"}
    if param.default is not None:
        render_kw["placeholder"] = f"{param.default:g}"
    label = param.name.replace("_", " ")
    return field_class(label, [presence, WithinBounds(param)],
                       default=param.default, description=param.help, render_kw=render_kw)


def _params_form_class(kind):
    fields = {name: _field(param) for name, param in kind.params.items()}
    return type(f"{kind.name.capitalize()}ParamsForm", (Form,), fields)


def params_forms(formdata=None):
    """One params form per kind, its fields prefixed ``<kind>-`` so all fit in one HTML form."""
    return {name: _params_form_class(kind)(formdata=formdata, prefix=f"{name}-")
            for name, kind in KINDS.items()}
