"""De-identification operators: one small pydantic model each, Presidio-style.

*Validate* happens twice: the fields when the config is parsed (pydantic, ``extra="forbid"``), and the
runtime prerequisites (a secret in the environment) in :meth:`Operator.check` before any text is touched.
*Operate* maps one span's original text to its replacement; it may return ``None`` ("cannot do this one"),
and the engine then applies :meth:`Operator.fallback`.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from loraner.deid import surrogates as sg
from loraner.errors import ConfigError


@dataclass
class OperatorContext:
    """What an operator may know besides the span text: its type and the document's shared memory."""

    entity_type: str
    state: sg.SurrogateState


def _check_template(template: str, allowed: set[str]) -> str:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"template {template!r} is not a valid format string ({exc})") from exc
    unknown = fields - allowed
    if unknown:
        raise ValueError(
            f"template {template!r} uses unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    return template


class Operator(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    operator: str
    #: True when :meth:`operate` reads ``ctx.state.secret``.
    needs_secret: ClassVar[bool] = False

    def check(self, *, secret: bytes | None, secret_env: str, where: str) -> None:
        """Raise :class:`ConfigError` when a runtime prerequisite is missing (default: none)."""

    def operate(self, text: str, ctx: OperatorContext) -> str | None:
        raise NotImplementedError

    def fallback(self) -> Operator:
        return ReplaceOperator()


class ReplaceOperator(Operator):
    """``[PATIENT]``-style tag; ``template`` may use ``{type}``."""

    operator: Literal["replace"] = "replace"
    template: str = "[{type}]"

    @field_validator("template")
    @classmethod
    def _template(cls, v: str) -> str:
        return _check_template(v, {"type"})

    def operate(self, text: str, ctx: OperatorContext) -> str:
        return self.template.format(type=ctx.entity_type)


class MaskOperator(Operator):
    """Same length, every character replaced by ``char`` except the last ``keep_last`` ones.

    A span no longer than ``keep_last`` is masked completely: showing all of it would not be masking.
    """

    operator: Literal["mask"] = "mask"
    char: str = Field("*", min_length=1, max_length=1)
    keep_last: int = Field(0, ge=0)

    def operate(self, text: str, ctx: OperatorContext) -> str:
        if self.keep_last == 0 or len(text) <= self.keep_last:
            return self.char * len(text)
        return self.char * (len(text) - self.keep_last) + text[-self.keep_last :]


class RedactOperator(Operator):
    """Removes the span."""

    operator: Literal["redact"] = "redact"

    def operate(self, text: str, ctx: OperatorContext) -> str:
        return ""


class KeepOperator(Operator):
    """Leaves the span as it is (e.g. for types that are not PHI in this setting)."""

    operator: Literal["keep"] = "keep"

    def operate(self, text: str, ctx: OperatorContext) -> str:
        return text


class HashOperator(Operator):
    """Keyed HMAC-SHA256 of the normalised span (hex, first ``length`` chars), under the secret from the
    environment variable named by the config's ``secret_env``. There is deliberately no unkeyed mode: a
    plain hash of a name or ID is reversed by hashing candidate values."""

    operator: Literal["hash"] = "hash"
    length: int = Field(16, ge=8, le=64)
    template: str = "{hash}"
    needs_secret: ClassVar[bool] = True

    @field_validator("template")
    @classmethod
    def _template(cls, v: str) -> str:
        return _check_template(v, {"type", "hash"})

    def check(self, *, secret: bytes | None, secret_env: str, where: str) -> None:
        if not secret:
            raise ConfigError(
                f"{where}: the hash operator needs a secret, but environment variable {secret_env} is not "
                "set (or empty); it never falls back to an unkeyed hash"
            )

    def operate(self, text: str, ctx: OperatorContext) -> str:
        assert ctx.state.secret, "check() guarantees a secret"
        mac = hmac.new(ctx.state.secret, b"hash\x1f" + sg.normalise(text).encode("utf-8"), hashlib.sha256)
        return self.template.format(type=ctx.entity_type, hash=mac.hexdigest()[: self.length])


Kind = Literal["auto", "name", "location", "phone", "id", "age", "date", "email"]

# ``kind: auto`` picks the surrogate generator from the entity type name.
AUTO_KINDS: dict[str, str] = {
    **dict.fromkeys(
        ("PATIENT", "PERSON", "PER", "NAME", "DOCTOR", "STAFF", "HCW", "RELATIVE", "FAMILY", "USERNAME"),
        "name",
    ),
    **dict.fromkeys(
        ("LOC", "LOCATION", "ADDRESS", "CITY", "STREET", "HOSPITAL", "GPE", "FACILITY", "ZIP"), "location"
    ),
    **dict.fromkeys(("PHONE", "PHONE_NUMBER", "TELEPHONE", "FAX", "MOBILE"), "phone"),
    **dict.fromkeys(("ID", "IDNUM", "SSN", "FNR", "MRN", "MEDICALRECORD", "NATIONAL_ID", "ACCOUNT"), "id"),
    "AGE": "age",
    **dict.fromkeys(("DATE", "DATETIME", "BIRTHDATE", "DOB"), "date"),
    **dict.fromkeys(("EMAIL", "E_MAIL"), "email"),
}


class PseudonymizeOperator(Operator):
    """Realistic surrogates (Faker), consistent within a document and, in keyed mode, across documents.

    Spans it cannot rewrite faithfully (an unparseable date, an age without digits, a type with no
    generator) fall back to ``replace`` with ``fallback_template``.
    """

    operator: Literal["pseudonymize"] = "pseudonymize"
    locale: Literal["nb_NO", "en_US"] = "nb_NO"
    kind: Kind = "auto"
    min_shift_days: int = Field(1, ge=1, description="smallest |date offset| in days")
    max_shift_days: int = Field(365, ge=1, description="largest |date offset| in days")
    day_first: bool | None = Field(None, description="numeric dates: None = from locale (en_US: month first)")
    age_jitter: int = Field(3, ge=1, description="largest change of an age, in years")
    fallback_template: str = "[{type}]"

    @field_validator("fallback_template")
    @classmethod
    def _template(cls, v: str) -> str:
        return _check_template(v, {"type"})

    @model_validator(mode="after")
    def _shift_range(self) -> PseudonymizeOperator:
        if self.min_shift_days > self.max_shift_days:
            raise ValueError(
                f"min_shift_days ({self.min_shift_days}) exceeds max_shift_days ({self.max_shift_days})"
            )
        return self

    def fallback(self) -> Operator:
        return ReplaceOperator(template=self.fallback_template)

    def kind_for(self, entity_type: str) -> str | None:
        return AUTO_KINDS.get(entity_type.upper()) if self.kind == "auto" else self.kind

    def operate(self, text: str, ctx: OperatorContext) -> str | None:
        core = text.strip()
        if not core:
            return None
        made = self._surrogate(core, ctx)
        if made is None:
            return None
        # Whitespace the span happened to include stays, so the text around it reads the same.
        lead = text[: len(text) - len(text.lstrip())]
        trail = text[len(text.rstrip()) :]
        return lead + sg.like_case(core, made) + trail

    def _surrogate(self, core: str, ctx: OperatorContext) -> str | None:
        kind = self.kind_for(ctx.entity_type)
        state, loc = ctx.state, self.locale
        if kind == "name":
            return sg.name_surrogate(core, state, loc)
        if kind == "date":
            return sg.date_surrogate(
                core, state, locale=loc, min_days=self.min_shift_days, max_days=self.max_shift_days,
                day_first=self.day_first,
            )  # fmt: skip
        if kind == "phone":
            return sg.phone_surrogate(core, state)
        if kind == "id":
            return sg.id_surrogate(core, state)
        if kind == "age":
            return sg.age_surrogate(core, state, self.age_jitter)
        if kind == "location":
            return state.surrogate(kind, core, lambda rng: sg.location_surrogate(core, rng, loc))
        if kind == "email":
            return state.surrogate(kind, core, lambda rng: sg.email_surrogate(rng, loc))
        return None


OperatorConfig = Annotated[
    ReplaceOperator | MaskOperator | RedactOperator | HashOperator | PseudonymizeOperator | KeepOperator,
    Field(discriminator="operator"),
]
OPERATOR_NAMES = ("replace", "mask", "redact", "hash", "pseudonymize", "keep")
