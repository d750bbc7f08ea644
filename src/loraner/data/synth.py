"""Seeded synthetic clinical notes with character spans (labels ID, DATE, LOC, PATIENT, AGE, PHONE).

Notes are admission notes, referrals, discharge summaries and nursing notes, in Norwegian or
English, built from the templates in ``synth_templates.py`` and filled with Faker names, addresses
and cities plus hand-picked Norwegian names and places (so æ, ø and å are common). IDs include
Norwegian 11-digit national IDs with valid mod-11 check digits. Distractor numbers (blood
pressure, doses, ICD codes, lab values, times) are left unlabelled so the task is not "tag every
number". The same seed, counts and locales give the same notes (for one Faker version).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from loraner.data import synth_templates as T
from loraner.data.jsonl import write_span_jsonl
from loraner.errors import ConfigError
from loraner.fnr import fnr_for
from loraner.settings import DataConfig
from loraner.types import Span, SpanExample, Splits

LABELS = ("ID", "DATE", "LOC", "PATIENT", "AGE", "PHONE")
NOTE_KINDS = ("admission", "referral", "discharge", "nursing")
DEFAULT_LOCALES = ("nb_NO", "en_US")
PLACEHOLDER_LABELS = {
    "name": "PATIENT",
    "NAME": "PATIENT",
    "given": "PATIENT",
    "family": "PATIENT",
    "fnr": "ID",
    "pid": "ID",
    "phone": "PHONE",
    "phone2": "PHONE",
    "age": "AGE",
    "birth": "DATE",
    "admitted": "DATE",
    "discharged": "DATE",
    "followup": "DATE",
    "past": "DATE",
    "hospital": "LOC",
    "ref_hospital": "LOC",
    "city": "LOC",
    "address": "LOC",
}
# Faker spells Norwegian Bokmål/Nynorsk as no_NO.
_FAKER_LOCALE = {"nb_NO": "no_NO", "nn_NO": "no_NO", "nb": "no_NO", "no": "no_NO"}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")

# --- formats ----------------------------------------------------------------------------------


def format_date(day: date, style: int, norwegian: bool) -> str:
    """One of several written date formats; ``style`` picks it (modulo the number of styles)."""
    d, m, y = day.day, day.month, day.year
    if norwegian:
        month = T.MONTHS_NB[m - 1]
        styles = [
            f"{d:02d}.{m:02d}.{y}",
            f"{d}. {month} {y}",
            f"{d}.{m}.{y}",
            f"{d:02d}.{m:02d}.{y % 100:02d}",
            f"{y}-{m:02d}-{d:02d}",
            f"{d}. {month[:3]}. {y}",
        ]
    else:
        month = T.MONTHS_EN[m - 1]
        styles = [
            f"{month} {d}, {y}",
            f"{d} {month} {y}",
            f"{m}/{d}/{y}",
            f"{y}-{m:02d}-{d:02d}",
            f"{d:02d}/{m:02d}/{y}",
            f"{month[:3]} {d}, {y}",
            f"{d}-{month[:3]}-{y}",
        ]
    return styles[style % len(styles)]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def phone_number(rng: random.Random, norwegian: bool) -> str:
    if norwegian:
        mobile = str(rng.choice([4, 9])) + _digits(rng, 7)
        landline = str(rng.randint(2, 7)) + _digits(rng, 7)
        options = [
            mobile,
            f"{mobile[:3]} {mobile[3:5]} {mobile[5:]}",
            f"+47 {mobile[:3]} {mobile[3:5]} {mobile[5:]}",
            f"0047{mobile}",
            f"+47{mobile}",
            " ".join(landline[i : i + 2] for i in range(0, 8, 2)),
        ]
    else:
        area, mid, last = str(rng.randint(201, 989)), str(rng.randint(200, 999)), _digits(rng, 4)
        options = [
            f"({area}) {mid}-{last}",
            f"{area}-{mid}-{last}",
            f"{area}.{mid}.{last}",
            f"+1 {area} {mid} {last}",
            f"+1-{area}-{mid}-{last}",
        ]
    return rng.choice(options)


def other_id(rng: random.Random, norwegian: bool) -> str:
    """Record numbers and (for English notes) US social security numbers."""
    if norwegian:
        return rng.choice(
            [_digits(rng, 7), f"PAS-{_digits(rng, 6)}", f"{rng.randint(2010, 2024)}-{_digits(rng, 6)}"]
        )
    ssn = f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
    return rng.choice([_digits(rng, 8), f"A{_digits(rng, 7)}", f"MRN-{_digits(rng, 7)}", ssn])


def _decimal(value: float, norwegian: bool) -> str:
    text = f"{value:.1f}"
    return text.replace(".", ",") if norwegian else text


# --- one note ---------------------------------------------------------------------------------


@dataclass
class _Writer:
    """Accumulates text and the spans of labelled placeholders, so offsets are exact by construction."""

    parts: list[str] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    length: int = 0

    def write(self, text: str, label: str | None = None) -> None:
        if label and text:
            self.spans.append(Span(self.length, self.length + len(text), label))
        self.parts.append(text)
        self.length += len(text)

    def fill(self, template: str, values: Mapping[str, str]) -> None:
        last = 0
        for match in _PLACEHOLDER.finditer(template):
            self.write(template[last : match.start()])
            key = match[1]
            self.write(values[key], PLACEHOLDER_LABELS.get(key))
            last = match.end()
        self.write(template[last:])

    def text(self) -> str:
        return "".join(self.parts)


class NoteGenerator:
    """Draws notes from one ``random.Random`` and one seeded Faker: deterministic per seed."""

    def __init__(self, seed: int | str, locales: Sequence[str] = DEFAULT_LOCALES) -> None:
        from faker import Faker  # a [train] extra; only the generator needs it

        if not locales:
            raise ConfigError("data.synth_locales must name at least one locale")
        self.rng = random.Random(seed)
        self.locales = [_FAKER_LOCALE.get(loc, loc) for loc in locales]
        try:
            self.faker = Faker(sorted(set(self.locales) | {"no_NO", "en_US"}))
        except AttributeError as exc:  # Faker's error for an unknown locale
            raise ConfigError(f"data.synth_locales: {exc}") from None
        self.faker.seed_instance(str(seed))

    def note(self, index: int) -> SpanExample:
        locale = self.rng.choice(self.locales)
        norwegian = locale == "no_NO"
        kind = self.rng.choice(NOTE_KINDS)
        templates = T.NB if norwegian else T.EN
        values = self._values(locale, norwegian)
        writer = _Writer()
        self._compose(writer, templates, kind, values)
        return SpanExample(text=writer.text(), spans=writer.spans, id=f"synth-{index}")

    def _compose(self, writer: _Writer, templates: T.Templates, kind: str, values: dict[str, str]) -> None:
        rng = self.rng
        writer.fill(rng.choice(templates["titles"][kind]), values)
        writer.write("\n\n")
        fields = templates["fields"]
        header = [fields[0]] + [g for g in fields[1:] if rng.random() < 0.5]
        for group in header:
            writer.fill(rng.choice(group), values)
            writer.write("\n")
        writer.write("\n")
        self._body(writer, templates, kind, values)
        closing = rng.choice(templates["closing"])
        if closing:
            writer.write("\n\n")
            writer.fill(closing, values)

    def _body(self, writer: _Writer, templates: T.Templates, kind: str, values: dict[str, str]) -> None:
        rng = self.rng
        groups = [g for g in templates["body"][kind] if rng.random() < 0.8] or templates["body"][kind][:1]
        for clinical in rng.sample(templates["clinical"], rng.randint(1, 3)):
            groups.insert(rng.randint(1, len(groups)), clinical)
        # Sentences run on in paragraphs of one to three, as in dictated notes.
        for i, group in enumerate(groups):
            if i:
                writer.write(" " if rng.random() < 0.5 else "\n")
            writer.fill(rng.choice(group), values)

    def _values(self, locale: str, norwegian: bool) -> dict[str, str]:
        values = self._person(locale, norwegian)
        values.update(self._clinical(norwegian))
        return values

    def _name(self, locale: str, norwegian: bool, male: bool) -> tuple[str, str]:
        rng, fake = self.rng, self.faker[locale]
        # Norwegian notes: often a hand-picked name with æøå; English notes: sometimes a Norwegian patient.
        if rng.random() < (0.4 if norwegian else 0.15):
            given = rng.choice(T.GIVEN_NB_MALE if male else T.GIVEN_NB_FEMALE)
        else:
            given = fake.first_name_male() if male else fake.first_name_female()
        family = rng.choice(T.FAMILY_NB) if rng.random() < (0.4 if norwegian else 0.15) else fake.last_name()
        return given, family

    def _person(self, locale: str, norwegian: bool) -> dict[str, str]:
        rng = self.rng
        male = rng.random() < 0.5
        given, family = self._name(locale, norwegian, male)
        age = rng.randint(18, 97) if rng.random() < 0.9 else rng.randint(1, 17)
        admitted = date(2015, 1, 1) + timedelta(days=rng.randint(0, 3650))
        birth = admitted - timedelta(days=int(age * 365.25) + rng.randint(1, 360))
        style = rng.randrange(7)  # one date style per note, as one author would write

        def day(value: date) -> str:
            return format_date(value, style, norwegian)

        fnr = fnr_for(birth, rng, male=male, d_number=rng.random() < 0.1)
        if not norwegian and rng.random() < 0.5:
            fnr = f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
        elif rng.random() < 0.25:
            fnr = f"{fnr[:6]} {fnr[6:]}"
        city = self._city(locale, norwegian)
        return {
            "name": rng.choice([f"{given} {family}", f"{given} {family}", f"{family}, {given}"]),
            "NAME": f"{given} {family}".upper(),
            "given": given,
            "family": family,
            "title": ("Hr." if male else "Fru")
            if norwegian
            else ("Mr." if male else rng.choice(["Ms.", "Mrs."])),
            "sexnoun": ("mann" if male else "kvinne") if norwegian else ("man" if male else "woman"),
            "Pron": ("Han" if male else "Hun") if norwegian else ("He" if male else "She"),
            "fnr": fnr,
            "pid": other_id(rng, norwegian),
            "phone": phone_number(rng, norwegian),
            "phone2": phone_number(rng, norwegian),
            "age": str(age),
            "birth": day(birth),
            "admitted": day(admitted),
            "discharged": day(admitted + timedelta(days=rng.randint(1, 20))),
            "followup": day(admitted + timedelta(days=rng.randint(30, 120))),
            "past": day(admitted - timedelta(days=rng.randint(30, 2000))),
            "city": city,
            "address": self._address(locale, norwegian, city),
            "hospital": self._hospital(norwegian, city),
            "ref_hospital": self._hospital(norwegian, self._city(locale, norwegian)),
        }

    def _city(self, locale: str, norwegian: bool) -> str:
        if norwegian and self.rng.random() < 0.5:
            return self.rng.choice(T.CITIES_NB)
        return str(self.faker[locale].city())

    def _address(self, locale: str, norwegian: bool, city: str) -> str:
        fake = self.faker[locale]
        if norwegian:
            return f"{fake.street_address()}, {fake.postcode()} {city}"
        return f"{fake.street_address()}, {city}, {fake.state_abbr()} {fake.zipcode()}"

    def _hospital(self, norwegian: bool, city: str) -> str:
        if self.rng.random() < 0.2:
            return f"Sykehuset i {city}" if norwegian else f"{city} General Hospital"
        return self.rng.choice(T.HOSPITALS_NB if norwegian else T.HOSPITALS_EN)

    def _clinical(self, norwegian: bool) -> dict[str, str]:
        """Unlabelled filler, including the distractor numbers."""
        rng = self.rng
        icd, diagnosis_nb, diagnosis_en = rng.choice(T.DIAGNOSES)
        (drug, doses), (drug2, _) = rng.sample(T.DRUGS, 2)
        return {
            "ward": rng.choice(T.WARDS_NB if norwegian else T.WARDS_EN),
            "diagnosis": diagnosis_nb if norwegian else diagnosis_en,
            "icd": icd,
            "drug": drug,
            "dose": rng.choice(doses),
            "drug2": drug2,
            "bp": f"{rng.randint(95, 185)}/{rng.randint(50, 110)}",
            "pulse": str(rng.randint(48, 130)),
            "temp": _decimal(rng.uniform(35.8, 40.2), norwegian),
            "spo2": str(rng.randint(86, 100)),
            "crp": str(rng.randint(1, 350)),
            "hb": _decimal(rng.uniform(8, 17), norwegian),
            "leuk": _decimal(rng.uniform(2, 25), norwegian),
            "creat": str(rng.randint(45, 400)),
            "weight": str(rng.randint(40, 140)),
            "news": str(rng.randint(0, 9)),
            "vas": str(rng.randint(0, 10)),
            "days": str(rng.randint(2, 14)),
            "time": f"{rng.randint(0, 23):02d}:{rng.choice(['00', '15', '30', '45', '05', '50'])}",
        }


# --- splits -----------------------------------------------------------------------------------


def generate_notes(
    count: int, seed: int | str, locales: Sequence[str] = DEFAULT_LOCALES
) -> list[SpanExample]:
    """``count`` notes from ``seed``."""
    if count < 0:
        raise ConfigError(f"synthetic note count must be >= 0, got {count}")
    generator = NoteGenerator(seed, locales)
    return [generator.note(i) for i in range(count)]


def synth_splits(counts: Mapping[str, int], seed: int, locales: Sequence[str] = DEFAULT_LOCALES) -> Splits:
    """One generator per split, seeded by ``seed`` and the split name, so splits differ from each other
    and a split does not change when another split's count does."""
    splits: Splits = {}
    for split, count in counts.items():
        notes = generate_notes(count, f"{seed}:{split}", locales)
        splits[split] = [*notes]
    return splits


def write_synth(
    out_dir: str | Path, counts: Mapping[str, int], seed: int, locales: Sequence[str] = DEFAULT_LOCALES
) -> dict[str, Path]:
    """Write ``<split>.jsonl`` per split (e.g. train/validation/test.jsonl) in the ``jsonl`` format."""
    return _write_splits(Path(out_dir), synth_splits(counts, seed, locales))


def _write_splits(out: Path, splits: Splits) -> dict[str, Path]:
    return {
        split: write_span_jsonl(
            out / f"{split}.jsonl", [ex for ex in examples if isinstance(ex, SpanExample)]
        )
        for split, examples in splits.items()
    }


def read_synth(cfg: DataConfig) -> Splits:
    """The ``synth`` format: generated in memory; also written to ``cfg.path`` (as jsonl) when it is set,
    so ``loraner data inspect`` can look at what was trained on."""
    splits = synth_splits(cfg.synth_counts, cfg.seed, cfg.synth_locales)
    if cfg.path:
        _write_splits(Path(cfg.path), splits)
    return splits


def describe(example: SpanExample) -> list[tuple[str, str]]:
    """(label, text) pairs of an example: handy in tests and when eyeballing the generator."""
    return [(s.label, example.text[s.start : s.end]) for s in example.spans]
