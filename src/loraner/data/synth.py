"""Seeded synthetic clinical notes with character spans (labels ID, DATE, LOC, PATIENT, AGE, PHONE).

Notes are admission notes, referrals, discharge summaries, nursing and outpatient notes, in Norwegian
or English, laid out as headed records, running prose, fact lists or letters. They are built from the
templates in ``synth_templates.py`` (written for this project) and filled with Faker names, streets and
towns, generated place and health-care unit names and hand-picked Norwegian names (so æ, ø and å are
common). Given names and surnames are drawn apart, from some twenty Faker locales and from farm-style
surnames built of own parts (``Fure`` + ``strand``), so a name's parts need not share an origin.
Names appear in every written form (full, given or surname alone, after a title, upper- and
lower-case), for the patient, relatives and staff, and the patient's given name often stands where a
pronoun would (``Ved innkomst hadde Ola feber``); pronouns, relations, roles, diseases named after
people and generic places appear unlabelled beside them. Dates, phone numbers, IDs and ages come in
many spellings; distractor numbers (blood pressure, doses, ICD codes, lab values, clock times,
durations) are left unlabelled. Some notes get hard line breaks, typos or a changed case; these edits
never touch a labelled span. IDs include Norwegian 11-digit national IDs, most with valid mod-11 check
digits. The same seed, counts and locales give the same notes (for one Faker version).

Label conventions (what a span covers; the one place they are written down):

* PATIENT: a person's name: the patient's, a relative's or a health worker's. One span per name as
  written together: ``Kari Nordmann``, ``Kari Marie Nordmann``, ``K. Nordmann``; a given name or
  surname alone is a span too. Parts a comma separates are separate spans (``[Nordmann], [Kari]``): a
  comma is not part of a name (``data.join_spans`` joins only parts separated by spaces). Titles and
  roles stay outside (``Fru [Nordmann]``, ``dr. [Hansen]``, ``datter [Kari]``); pronouns, "pasienten"
  and diseases named after people (``Parkinsons sykdom``) are not PHI.
* LOC: a place a person can be found at: towns, villages and municipalities, street addresses (street,
  number, postcode and town as one span: ``Storgata 5, 0155 Oslo``), and named health-care units:
  hospitals, departments, GP offices, nursing homes, home-care services, one span including the
  parts written together (``Medisinsk avdeling, Sykehuset Innlandet``). Generic references
  (``sengeposten``, ``the ward``) are not PHI.
* DATE: a calendar date or part of one: ``12.03.2019``, ``3. mars 2019``, ``mars 2019``, ``12.03``,
  ``2019-03-12``, a year alone when it dates an event (``operert i 2015``). Clock times and durations
  (``for 3 år siden``) are not PHI.
* AGE: the number only (``[45] år``, ``[45]-årig``, ``aged [45]``).
* PHONE: the whole number with its country code (``+47 912 34 567``, ``004791234567``).
* ID: the whole identifier: fødselsnummer (``010180 12345``), SSNs, record numbers.

Other data sets may tag differently: Nor-DeID tags first and last names as separate spans, which
``data.join_spans: [PATIENT]`` converts to this convention for scoring.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from loraner import defaults
from loraner.data import synth_templates as T
from loraner.data.jsonl import write_span_jsonl
from loraner.errors import ConfigError
from loraner.fnr import fnr_for
from loraner.settings import DataConfig
from loraner.types import Span, SpanExample, Splits

LABELS = ("ID", "DATE", "LOC", "PATIENT", "AGE", "PHONE")
NOTE_KINDS = T.NOTE_KINDS
LAYOUTS = ("record", "narrative", "facts", "letter")
_LAYOUT_WEIGHTS = (0.35, 0.3, 0.2, 0.15)
# Norwegian notes are drawn twice as often as others: the clinical presets are Norwegian.
_LOCALE_WEIGHT = {"no_NO": 2.0}
PLACEHOLDER_LABELS = {
    **dict.fromkeys(
        ("name", "NAME", "given", "family", "rel_name", "rel_given", "doctor", "nurse", "gp", "gp_family"),
        "PATIENT",
    ),
    **dict.fromkeys(("fnr", "pid"), "ID"),
    **dict.fromkeys(("phone", "phone2", "unit_phone"), "PHONE"),
    "age": "AGE",
    **dict.fromkeys(
        (
            "birth",
            "admitted",
            "discharged",
            "followup",
            "past",
            "past2",
            "today",
            "month_year",
            "day_month",
            "year_of_past",
        ),
        "DATE",
    ),
    **dict.fromkeys(
        (
            "city",
            "birthplace",
            "rel_city",
            "address",
            "street",
            "unit",
            "ref_unit",
            "dept",
            "gp_office",
            "home",
        ),
        "LOC",
    ),
}
# Faker spells Norwegian Bokmål/Nynorsk as no_NO.
_FAKER_LOCALE = {"nb_NO": "no_NO", "nn_NO": "no_NO", "nb": "no_NO", "no": "no_NO"}
# Extra Faker locales for the names of patients and staff with roots elsewhere.
_NAME_LOCALES = (
    "sv_SE",
    "da_DK",
    "de_DE",
    "pl_PL",
    "lt_LT",
    "ro_RO",
    "hr_HR",
    "cs_CZ",
    "hu_HU",
    "it_IT",
    "nl_NL",
    "pt_PT",
    "tr_TR",
    "fr_FR",
    "fi_FI",
    "en_GB",
    "es_ES",
    "en_PK",
    "sw",
    "yo_NG",
    "vi_VN",
    "id_ID",
)
# How often a subject or object pronoun is written as the patient's given name instead ("Ved innkomst
# hadde Ola feber", "tilsyn for Ola"): clinicians name the patient anywhere a pronoun could stand.
_NAME_FOR_PRONOUN = {"Pron": 0.3, "pron": 0.3, "obj": 0.3}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
Pieces = list[tuple[str, str | None]]

# --- formats ----------------------------------------------------------------------------------

# Written date formats, one row a style: (Norwegian, English). Fields: d, m, y (numbers), yy (two-digit
# year), month (its name as written in running text), mon (its first three letters), Month (capitalized),
# month_lc (lower case), th (the English ordinal suffix of d).
DATE_FORMATS = (
    ("{d:02d}.{m:02d}.{y}", "{month} {d}, {y}"),
    ("{d}. {month} {y}", "{d} {month} {y}"),
    ("{d}.{m}.{y}", "{m}/{d}/{y}"),
    ("{d:02d}.{m:02d}.{yy:02d}", "{y}-{m:02d}-{d:02d}"),
    ("{y}-{m:02d}-{d:02d}", "{d:02d}/{m:02d}/{y}"),
    ("{d}. {mon}. {y}", "{mon} {d}, {y}"),
    ("{d:02d}. {month} {y}", "{d}-{mon}-{y}"),
    ("{d}.{m}.{yy:02d}", "{m}/{d}/{yy:02d}"),
    ("{d:02d}/{m:02d}/{y}", "{month} {d}{th}, {y}"),
    ("{d}/{m}-{yy:02d}", "{d:02d}.{m:02d}.{y}"),
    ("{d} {month} {y}", "{d} {mon} {y}"),
    ("{d:02d}. {Month} {y}", "{month} {d:02d}, {y}"),
    ("{d}. {month}, {y}", "{d} {month_lc} {y}"),
)
DATE_STYLES = len(DATE_FORMATS)


def format_date(day: date, style: int, norwegian: bool) -> str:
    """One of the written date formats (:data:`DATE_FORMATS`); ``style`` picks it (modulo their number)."""
    month = (T.MONTHS_NB if norwegian else T.MONTHS_EN)[day.month - 1]
    template = DATE_FORMATS[style % DATE_STYLES][0 if norwegian else 1]
    return template.format(
        d=day.day,
        m=day.month,
        y=day.year,
        yy=day.year % 100,
        month=month,
        mon=month[:3],
        Month=month.capitalize(),
        month_lc=month.lower(),
        th=_ordinal(day.day),
    )


def _ordinal(d: int) -> str:
    if d in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def phone_number(rng: random.Random, norwegian: bool) -> str:
    if norwegian:
        mobile = str(rng.choice([4, 9])) + _digits(rng, 7)
        landline = str(rng.randint(2, 7)) + _digits(rng, 7)
        roll = rng.random()
        number = mobile if roll < 0.5 else landline if roll < 0.75 else _digits(rng, 8)
        pairs = " ".join(number[i : i + 2] for i in range(0, 8, 2))
        triple = f"{number[:3]} {number[3:5]} {number[5:]}"
        options = [
            number,
            triple,
            pairs,
            f"+47 {triple}",
            f"+47 {pairs}",
            f"0047{number}",
            f"0047{number}",
            f"0047 {number}",
            f"+47{number}",
            f"+47{number}",
            number,
            f"+47 {number}",
            f"(+47) {number}",
            f"{number[:3]}-{number[3:5]}-{number[5:]}",
        ]
    else:
        area, mid, last = str(rng.randint(201, 989)), str(rng.randint(200, 999)), _digits(rng, 4)
        options = [
            f"({area}) {mid}-{last}",
            f"{area}-{mid}-{last}",
            f"{area}.{mid}.{last}",
            f"+1 {area} {mid} {last}",
            f"+1-{area}-{mid}-{last}",
            f"{area} {mid} {last}",
            f"{area}{mid}{last}",
        ]
    return rng.choice(options)


def other_id(rng: random.Random, norwegian: bool) -> str:
    """Record numbers and (for English notes) US social security numbers."""
    if norwegian:
        return rng.choice(
            [
                _digits(rng, 7),
                f"PAS-{_digits(rng, 6)}",
                f"{rng.randint(2010, 2024)}-{_digits(rng, 6)}",
                f"J{_digits(rng, 8)}",
                _digits(rng, 9),
            ]
        )
    ssn = f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
    return rng.choice([_digits(rng, 8), f"A{_digits(rng, 7)}", f"MRN-{_digits(rng, 7)}", ssn])


def _decimal(value: float, norwegian: bool) -> str:
    text = f"{value:.1f}"
    return text.replace(".", ",") if norwegian else text


# --- one note ---------------------------------------------------------------------------------


@dataclass
class _Writer:
    """Accumulates text and the spans of labelled pieces, so offsets are exact by construction."""

    parts: list[str] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    length: int = 0

    def write(self, text: str, label: str | None = None) -> None:
        if label and text:
            self.spans.append(Span(self.length, self.length + len(text), label))
        self.parts.append(text)
        self.length += len(text)

    def fill(self, template: str, resolve: Callable[[str], Pieces]) -> None:
        last = 0
        for match in _PLACEHOLDER.finditer(template):
            self.write(template[last : match.start()])
            for text, label in resolve(match[1]):
                self.write(text, label)
            last = match.end()
        self.write(template[last:])

    def fill_all(
        self,
        templates: Sequence[str],
        resolve: Callable[[str], Pieces],
        separator: str = " ",
        marker: str = "",
    ) -> None:
        """Templates one after another: ``separator`` between them, ``marker`` before each (a list item)."""
        for i, template in enumerate(templates):
            self.write((separator if i else "") + marker)
            self.fill(template, resolve)

    def text(self) -> str:
        return "".join(self.parts)


@dataclass
class _Person:
    given: str
    family: str
    male: bool
    middle: str = ""


@dataclass
class _Note:
    """Everything one note says about its patient, fixed for the note, plus how it is written."""

    norwegian: bool
    locale: str
    patient: _Person
    relative: _Person
    doctor: _Person
    nurse: _Person
    gp: _Person
    values: dict[str, str]
    date_style: int
    dates: dict[str, date]


class NoteGenerator:
    """Draws notes from one ``random.Random`` and one seeded Faker: deterministic per seed."""

    def __init__(self, seed: int | str, locales: Sequence[str] = defaults.SYNTH_LOCALES.value) -> None:
        from faker import Faker  # a [train] extra; only the generator needs it

        if not locales:
            raise ConfigError("data.synth_locales must name at least one locale")
        self.rng = random.Random(seed)
        self.locales = [_FAKER_LOCALE.get(loc, loc) for loc in locales]
        self.weights = [_LOCALE_WEIGHT.get(loc, 1.0) for loc in self.locales]
        try:
            self.faker = Faker(sorted(set(self.locales) | {"no_NO", "en_US", *_NAME_LOCALES}))
        except AttributeError as exc:  # Faker's error for an unknown locale
            raise ConfigError(f"data.synth_locales: {exc}") from None
        self.faker.seed_instance(str(seed))

    def note(self, index: int) -> SpanExample:
        rng = self.rng
        locale = rng.choices(self.locales, self.weights)[0]
        note = self._note_facts(locale, locale == "no_NO")
        templates = T.NB if note.norwegian else T.EN
        kind = rng.choice(NOTE_KINDS)
        layout = rng.choices(LAYOUTS, _LAYOUT_WEIGHTS)[0]
        writer = _Writer()

        def resolve(key: str) -> Pieces:
            return self._resolve(note, key)

        getattr(self, f"_layout_{layout}")(writer, templates, kind, resolve)
        closing = rng.choice(templates["closing"])
        if closing:
            writer.write("\n\n")
            writer.fill(closing, resolve)
        text = _noisy(writer.text(), writer.spans, rng)
        return SpanExample(text=text, spans=writer.spans, id=f"synth-{index}")

    # --- layouts ---

    def _topics(self, kind: str) -> list[str]:
        topics = [t for t in T.TOPICS[kind] if self.rng.random() < 0.75]
        return topics or [T.TOPICS[kind][0]]

    def _sentences(self, templates: T.Templates, topic: str, most: int = 2) -> list[str]:
        """One to ``most`` templates of ``topic``, now and then with an unlabelled clinical finding among
        them: ordinary words a model must learn to leave alone.

        No Faker lorem sentences: they start with a capitalised unknown word, which taught the model that
        a name opening a sentence ("Vebjørn ble innlagt ...") is an ordinary word. Without them, the
        quickstart model's character-level recall on notes it never saw rose from 0.92 to 0.95."""
        rng = self.rng
        pool = templates["sentences"][topic]
        chosen = rng.sample(pool, min(len(pool), rng.randint(1, most)))
        if rng.random() < 0.3:
            chosen.insert(rng.randint(0, len(chosen)), "{findings}")
        return chosen

    def _title(
        self, writer: _Writer, templates: T.Templates, kind: str, resolve: Callable[[str], Pieces]
    ) -> None:
        writer.fill(self.rng.choice(templates["titles"][kind]), resolve)
        writer.write("\n\n" if self.rng.random() < 0.7 else "\n")

    def _header(self, writer: _Writer, templates: T.Templates, resolve: Callable[[str], Pieces]) -> None:
        fields = templates["fields"]
        for group in [fields[0]] + [g for g in fields[1:] if self.rng.random() < 0.45]:
            writer.fill(self.rng.choice(group), resolve)
            writer.write("\n")
        writer.write("\n")

    def _layout_record(
        self, writer: _Writer, templates: T.Templates, kind: str, resolve: Callable[[str], Pieces]
    ) -> None:
        """Title, header lines, then a heading per topic with one or two sentences (or a bullet list)."""
        rng = self.rng
        self._title(writer, templates, kind, resolve)
        self._header(writer, templates, resolve)
        colon = rng.random() < 0.6
        upper = rng.random() < 0.2
        bullets = rng.random() < 0.25
        for i, topic in enumerate(self._topics(kind)):
            if i:
                writer.write("\n\n" if rng.random() < 0.7 else "\n")
            heading = rng.choice(templates["sections"][topic])
            writer.write(heading.upper() if upper else heading)
            writer.write(": " if colon and not bullets else ":\n" if colon else "\n")
            sentences = self._sentences(templates, topic, 3 if bullets else 2)
            marker = rng.choice(["- ", "* ", "• "])
            if bullets:
                writer.fill_all(sentences, resolve, "\n", marker)
            else:
                writer.fill_all(sentences, resolve)

    def _layout_narrative(
        self, writer: _Writer, templates: T.Templates, kind: str, resolve: Callable[[str], Pieces]
    ) -> None:
        """Running prose: an optional title, then paragraphs of sentences without headings."""
        rng = self.rng
        if rng.random() < 0.6:
            self._title(writer, templates, kind, resolve)
        topics = self._topics(kind)
        if topics[0] != "intro" and "intro" in templates["sentences"] and rng.random() < 0.7:
            topics.insert(0, "intro")
        for i, topic in enumerate(topics):
            if i:
                writer.write(" " if rng.random() < 0.45 else "\n\n" if rng.random() < 0.6 else "\n")
            writer.fill_all(self._sentences(templates, topic), resolve)

    def _layout_facts(
        self, writer: _Writer, templates: T.Templates, kind: str, resolve: Callable[[str], Pieces]
    ) -> None:
        """A title, a short prose opening, a list of facts, then prose."""
        rng = self.rng
        self._title(writer, templates, kind, resolve)
        writer.fill(rng.choice(templates["sentences"]["intro"]), resolve)
        writer.write("\n\n" if rng.random() < 0.5 else "\n")
        marker = rng.choice(["- ", "* ", "• ", ""])
        facts = rng.sample(templates["facts"], rng.randint(3, 7))
        for fact in facts:
            writer.write(marker)
            writer.fill(fact, resolve)
            writer.write("." if rng.random() < 0.4 else "")
            writer.write("\n")
        writer.write("\n")
        for topic in self._topics(kind)[1:3]:
            for sentence in self._sentences(templates, topic, 1):
                writer.fill(sentence, resolve)
                writer.write(" ")

    def _layout_letter(
        self, writer: _Writer, templates: T.Templates, kind: str, resolve: Callable[[str], Pieces]
    ) -> None:
        """Addressee, "regarding" line, then prose paragraphs (referrals and clinic letters)."""
        rng = self.rng
        writer.fill(rng.choice(templates["letter_to"]), resolve)
        writer.write("\n\n")
        writer.fill(rng.choice(templates["regarding"]), resolve)
        writer.write("\n\n")
        self._layout_narrative(writer, templates, kind, resolve)

    # --- values ---

    def _resolve(self, note: _Note, key: str) -> Pieces:
        """The text of one placeholder, as labelled pieces (a title before a name stays unlabelled)."""
        rng, nb = self.rng, note.norwegian
        label = PLACEHOLDER_LABELS.get(key)
        if key == "name":
            return self._name_form(note.patient)
        if key == "NAME":
            p = note.patient
            if rng.random() < 0.5:
                return [(p.family.upper(), label), (", ", None), (p.given.upper(), label)]
            return [(f"{p.given} {p.family}".upper(), label)]
        if key in ("given", "family"):
            text = getattr(note.patient, key)
            return [(text.lower() if rng.random() < 0.03 else text, label)]
        if key == "rel_name":
            return self._name_form(note.relative)
        if key == "rel_given":
            return [(note.relative.given, label)]
        if key == "doctor":
            return self._staff(note.doctor, nb, doctor=True)
        if key == "nurse":
            n = note.nurse
            return [(n.given if rng.random() < 0.5 else f"{n.given} {n.family}", label)]
        if key == "gp":
            return self._staff(note.gp, nb, doctor=True, full=0.8)
        if key == "gp_family":
            return [(note.gp.family, label)]
        if key == "title":
            return [(_title(note.patient.male, nb, rng), None)]
        if key in note.dates:
            style = note.date_style if rng.random() < 0.8 else rng.randrange(DATE_STYLES)
            return [(format_date(note.dates[key], style, nb), label)]
        if key in ("month_year", "day_month", "year_of_past"):
            return [(self._partial_date(note, key), label)]
        if key == "ref_unit" and rng.random() < 0.5:  # another unit than the note's own
            return [(self._unit(nb), label)]
        if key == "dept" and rng.random() < 0.5:
            return [(self._dept(nb), label)]
        if key == "findings":
            return [(self._findings(nb), None)]
        if key in _NAME_FOR_PRONOUN and rng.random() < _NAME_FOR_PRONOUN[key]:
            return [(note.patient.given, "PATIENT")]
        if key in ("pron", "Pron", "obj", "poss", "Poss"):
            return [(_pronoun(key, note.patient.male, nb), None)]
        if key == "relation_cap":
            relation = note.values["relation"]
            return [(relation[0].upper() + relation[1:], None)]
        return [(note.values[key], label)]

    def _name_form(self, person: _Person, label: str = "PATIENT") -> Pieces:
        """A full name as it may be written: mostly ``Given Family``, sometimes with the middle name, the
        surname first (then surname and given name are two spans, as the convention says), an initial,
        or in another case."""
        rng = self.rng
        given, family = person.given, person.family
        roll = rng.random()
        if roll < 0.6:
            text = f"{given} {family}"
        elif roll < 0.74:
            text = f"{given} {person.middle} {family}" if person.middle else f"{given} {family}"
        elif roll < 0.82:
            return [(family, label), (", ", None), (given, label)]
        elif roll < 0.88:
            text = f"{given[0]}. {family}"
        elif roll < 0.94:
            text = f"{given} {family}".upper()
        else:
            text = f"{given} {family}".lower()
        return [(text, label)]

    def _staff(self, person: _Person, nb: bool, doctor: bool, full: float = 0.6) -> Pieces:
        rng = self.rng
        label = "PATIENT"
        roll = rng.random()
        if roll < full:
            return [(f"{person.given} {person.family}", label)]
        if doctor and roll < full + (1 - full) / 2:
            return [
                (rng.choice(["dr. ", "Dr. ", "Dr "] if not nb else ["dr. ", "Dr. ", "dr "]), None),
                (person.family, label),
            ]
        return [(person.family if rng.random() < 0.5 else f"{person.given[0]}. {person.family}", label)]

    def _findings(self, nb: bool) -> str:
        """A sentence of clinical findings from own word lists (no PHI in it)."""
        rng = self.rng
        sides = T.SIDES_NB if nb else T.SIDES_EN
        words = T.FINDINGS_NB if nb else T.FINDINGS_EN
        picked = [w.format(side=rng.choice(sides)) for w in rng.sample(words, rng.randint(1, 4))]
        joined = (
            picked[0]
            if len(picked) == 1
            else ", ".join(picked[:-1]) + (" og " if nb else " and ") + picked[-1]
        )
        frame = rng.choice(T.FINDING_FRAMES_NB if nb else T.FINDING_FRAMES_EN)
        return frame.format(findings=joined, side=rng.choice(sides[:2]))

    def _partial_date(self, note: _Note, key: str) -> str:
        rng = self.rng
        day = note.dates["past"] - timedelta(days=rng.randint(0, 400))
        months = T.MONTHS_NB if note.norwegian else T.MONTHS_EN
        if key == "year_of_past":
            return str(day.year)
        if key == "month_year":
            return rng.choice(
                [
                    f"{months[day.month - 1]} {day.year}",
                    f"{day.month:02d}.{day.year}",
                    f"{day.month}/{day.year}",
                ]
            )
        return (
            rng.choice([f"{day.day}. {months[day.month - 1]}", f"{day.day:02d}.{day.month:02d}"])
            if note.norwegian
            else f"{months[day.month - 1]} {day.day}"
        )

    def _person(self, locale: str, norwegian: bool, male: bool | None = None) -> _Person:
        rng = self.rng
        male = rng.random() < 0.5 if male is None else male
        # Given and family name are drawn apart (married names, second generations), so a foreign
        # given name often has a Norwegian surname and vice versa.
        fake = self._name_faker(locale)
        given = fake.first_name_male() if male else fake.first_name_female()
        if norwegian and rng.random() < 0.25:
            given = rng.choice(T.GIVEN_NB_MALE if male else T.GIVEN_NB_FEMALE)
        family = self._family_name(locale, norwegian)
        middle = ""
        if rng.random() < 0.3:
            middle = fake.first_name_male() if male else fake.first_name_female()
            if rng.random() < 0.3:
                middle = self.faker[locale].last_name()
        return _Person(str(given), str(family), male, str(middle))

    def _family_name(self, locale: str, norwegian: bool) -> str:
        """A surname: Faker's for the note's locale or another, or for Norwegian notes often a farm-style
        name built from own parts (``Fure`` + ``strand``), which Faker's short list lacks."""
        rng = self.rng
        roll = rng.random()
        if norwegian and roll < 0.3:
            return rng.choice(T.FARM_NAME_HEADS) + rng.choice(T.FARM_NAME_TAILS)
        if norwegian and roll < 0.45:
            return rng.choice(T.FAMILY_NB)
        return str(self._name_faker(locale).last_name())

    def _name_faker(self, locale: str) -> Any:
        """The Faker locale a name is drawn from: the note's, or for one name in five one with roots
        elsewhere."""
        rng = self.rng
        return self.faker[rng.choice(_NAME_LOCALES)] if rng.random() < 0.2 else self.faker[locale]

    def _note_facts(self, locale: str, norwegian: bool) -> _Note:
        rng = self.rng
        patient = self._person(locale, norwegian)
        age = rng.randint(18, 97) if rng.random() < 0.9 else rng.randint(1, 17)
        admitted = date(2012, 1, 1) + timedelta(days=rng.randint(0, 4380))
        birth = admitted - timedelta(days=int(age * 365.25) + rng.randint(1, 360))
        dates = {
            "birth": birth,
            "admitted": admitted,
            "discharged": admitted + timedelta(days=rng.randint(1, 20)),
            "followup": admitted + timedelta(days=rng.randint(30, 120)),
            "past": admitted - timedelta(days=rng.randint(30, 2000)),
            "past2": admitted + timedelta(days=rng.randint(0, 5)),
            "today": admitted + timedelta(days=rng.randint(0, 3)),
        }
        fnr = fnr_for(birth, rng, male=patient.male, d_number=rng.random() < 0.1)
        if not norwegian and rng.random() < 0.5:
            fnr = f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
        elif rng.random() < 0.2:
            fnr = _digits(rng, 11)  # records also hold numbers whose check digits do not hold
        if norwegian and rng.random() < 0.3:
            fnr = f"{fnr[:6]} {fnr[6:]}"
        city = self._town(locale, norwegian)
        relations = T.RELATIONS_NB if norwegian else T.RELATIONS_EN
        relative = self._person(locale, norwegian)
        if rng.random() < 0.5:
            relative.family = patient.family
        values = {
            "sexnoun": ("mann" if patient.male else "kvinne")
            if norwegian
            else ("man" if patient.male else "woman"),
            "sexsuffix": "mann" if patient.male else "",
            "relation": rng.choice(relations),
            "fnr": fnr,
            "pid": other_id(rng, norwegian),
            "phone": phone_number(rng, norwegian),
            "phone2": phone_number(rng, norwegian),
            "unit_phone": phone_number(rng, norwegian),
            "age": str(age),
            "city": city,
            "birthplace": self._town(locale, norwegian),
            "rel_city": self._town(locale, norwegian),
            "address": self._address(locale, norwegian, city),
            "street": self._street(locale, norwegian),
            "unit": self._unit(norwegian),
            "ref_unit": self._unit(norwegian),
            "dept": self._dept(norwegian),
            "gp_office": self._place(
                T.GP_OFFICE_PATTERNS_NB if norwegian else T.GP_OFFICE_PATTERNS_EN, locale, norwegian
            ),
            "home": self._place(
                T.NURSING_HOME_PATTERNS_NB if norwegian else T.NURSING_HOME_PATTERNS_EN, locale, norwegian
            ),
            "children": str(rng.randint(1, 5)),
            "years": str(rng.randint(2, 30)),
            "weeks": str(rng.randint(1, 12)),
        }
        values.update(self._clinical(norwegian))
        return _Note(
            norwegian=norwegian,
            locale=locale,
            patient=patient,
            relative=relative,
            doctor=self._person(locale, norwegian),
            nurse=self._person(locale, norwegian),
            gp=self._person(locale, norwegian),
            values=values,
            date_style=rng.randrange(DATE_STYLES),
            dates=dates,
        )

    def _town(self, locale: str, norwegian: bool) -> str:
        rng = self.rng
        if not norwegian:
            return str(self.faker[locale].city())
        # Faker's Norwegian towns are often surnames plus an ending: generated place names instead.
        if rng.random() < 0.4:
            return rng.choice(T.CITIES_NB)
        return rng.choice(T.PLACE_HEADS) + rng.choice(T.PLACE_TAILS)

    def _street(self, locale: str, norwegian: bool) -> str:
        rng = self.rng
        if norwegian and rng.random() < 0.5:
            return rng.choice(T.PLACE_HEADS) + rng.choice(T.STREET_SUFFIXES_NB)
        return str(self.faker[locale].street_name())

    def _address(self, locale: str, norwegian: bool, city: str) -> str:
        rng, fake = self.rng, self.faker[locale]
        number = f"{rng.randint(1, 140)}{rng.choice(['', '', '', 'A', 'B', ' C'])}"
        street = f"{self._street(locale, norwegian)} {number}"
        if norwegian:
            return rng.choice(
                [
                    f"{street}, {fake.postcode()} {city}",
                    f"{street}, {city}",
                    street,
                    f"{street} {fake.postcode()} {city}",
                ]
            )
        return rng.choice(
            [
                f"{fake.street_address()}, {city}, {fake.state_abbr()} {fake.zipcode()}",
                f"{fake.street_address()}, {city}",
            ]
        )

    def _place(self, patterns: Sequence[str], locale: str, norwegian: bool) -> str:
        rng = self.rng
        person = self.faker[locale].last_name() if rng.random() < 0.5 else self.faker[locale].first_name()
        return rng.choice(patterns).format(
            town=self._town(locale, norwegian),
            region=rng.choice(T.REGIONS_NB) if norwegian else str(self.faker[locale].state()),
            person=person,
            street_name=self._street(locale, norwegian),
            speciality=rng.choice(T.SPECIALITIES_NB),
        )

    def _dept(self, norwegian: bool) -> str:
        rng = self.rng
        dept = rng.choice(T.DEPARTMENTS_NB if norwegian else T.DEPARTMENTS_EN)
        return dept.lower() if norwegian and rng.random() < 0.2 else dept

    def _unit(self, norwegian: bool) -> str:
        """A named health-care unit, sometimes with its department or sub-unit, written as one."""
        rng = self.rng
        locale = "no_NO" if norwegian else "en_US"
        if rng.random() < 0.25:
            base = rng.choice(T.HOSPITALS_NB if norwegian else T.HOSPITALS_EN)
        else:
            base = self._place(T.UNIT_PATTERNS_NB if norwegian else T.UNIT_PATTERNS_EN, locale, norwegian)
        roll = rng.random()
        if roll < 0.55:
            return base
        if roll < 0.75:
            return f"{self._dept(norwegian)}, {base}"
        if not norwegian:
            return f"{base}, {self._dept(norwegian)}"
        sub = rng.choice(T.SUBUNITS_NB).format(
            speciality=rng.choice(T.SPECIALITIES_NB),
            n=rng.choice([str(rng.randint(1, 9)), f"{rng.randint(1, 9)}{rng.choice('ABC')}"]),
        )
        if roll < 0.88:
            return f"{base}, {sub}"
        branch = self._place(["DPS {town}", "{town} DPS", "avdeling {town}"], locale, norwegian)
        return f"{base}, {branch}, {sub}"

    def _clinical(self, norwegian: bool) -> dict[str, str]:
        """Unlabelled filler, including the distractor numbers."""
        rng = self.rng
        (icd, diagnosis_nb, diagnosis_en), (_, diagnosis2_nb, diagnosis2_en) = rng.sample(T.DIAGNOSES, 2)
        (drug, doses), (drug2, _) = rng.sample(T.DRUGS, 2)
        return {
            "ward_generic": rng.choice(T.WARD_GENERIC_NB if norwegian else T.WARD_GENERIC_EN),
            "diagnosis": diagnosis_nb if norwegian else diagnosis_en,
            "diagnosis2": diagnosis2_nb if norwegian else diagnosis2_en,
            "eponym": rng.choice(T.EPONYMS_NB if norwegian else T.EPONYMS_EN),
            "icd": icd,
            "icd2": _icd_code(rng),
            "drug": drug,
            "dose": rng.choice(doses),
            "drug2": drug2,
            "bp": f"{rng.randint(95, 185)}/{rng.randint(50, 110)}",
            "pulse": str(rng.randint(48, 130)),
            "temp": _decimal(rng.uniform(35.8, 40.2), norwegian),
            "spo2": str(rng.randint(86, 100)),
            "crp": str(rng.randint(1, 350)),
            "crp2": str(rng.randint(1, 60)),
            "hb": _decimal(rng.uniform(8, 17), norwegian),
            "leuk": _decimal(rng.uniform(2, 25), norwegian),
            "creat": str(rng.randint(45, 400)),
            "weight": str(rng.randint(40, 140)),
            "height": str(rng.randint(150, 200)),
            "news": str(rng.randint(0, 9)),
            "vas": str(rng.randint(0, 10)),
            "days": str(rng.randint(2, 14)),
            "time": f"{rng.randint(0, 23):02d}:{rng.choice(['00', '15', '30', '45', '05', '50'])}",
        }


def _icd_code(rng: random.Random) -> str:
    """A diagnosis code in one of the shapes clinical systems print (letters and digits, not PHI)."""
    letter = rng.choice("ABCDEFGHIJKLMNOPQRSTVZ")
    head = f"{letter}{rng.randint(0, 99):02d}"
    return rng.choice(
        [
            f"{head}.{rng.randint(0, 9)}",
            f"{head}{rng.randint(0, 99):02d}{rng.choice('ABDSX')}",
            f"{head}{rng.randint(0, 9)}{rng.randint(0, 9)}X{rng.choice('ADS')}",
            head,
        ]
    )


def _title(male: bool, norwegian: bool, rng: random.Random) -> str:
    if norwegian:
        return rng.choice(["Hr.", "Herr", "hr."] if male else ["Fru", "fru", "Frk."])
    return rng.choice(["Mr.", "Mr"] if male else ["Ms.", "Mrs.", "Mrs", "Ms"])


_PRONOUNS = {
    True: {
        "Pron": ("Han", "He"),
        "pron": ("han", "he"),
        "obj": ("ham", "him"),
        "poss": ("hans", "his"),
        "Poss": ("Hans", "His"),
    },
    False: {
        "Pron": ("Hun", "She"),
        "pron": ("hun", "she"),
        "obj": ("henne", "her"),
        "poss": ("hennes", "her"),
        "Poss": ("Hennes", "Her"),
    },
}


def _pronoun(key: str, male: bool, norwegian: bool) -> str:
    nb, en = _PRONOUNS[male][key]
    return nb if norwegian else en


def _noisy(text: str, spans: Sequence[Span], rng: random.Random) -> str:
    """Length-preserving edits outside the labelled spans: hard line breaks as in pasted or dictated
    text, typos (two letters swapped), and now and then the whole note in upper or lower case."""
    inside = bytearray(len(text))
    for span in spans:
        inside[span.start : span.end] = b"\x01" * (span.end - span.start)
    chars = list(text)
    if rng.random() < 0.2:  # wrap at a width, never inside a span
        width, column = rng.randint(50, 90), 0
        for i, ch in enumerate(chars):
            column = 0 if ch == "\n" else column + 1
            if ch == " " and column > width and not inside[i]:
                chars[i], column = "\n", 0
    if rng.random() < 0.35:
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(max(1, len(chars) - 1))
            if (
                i + 1 < len(chars)
                and not inside[i]
                and not inside[i + 1]
                and chars[i].isalpha()
                and chars[i + 1].isalpha()
                and chars[i].islower()
                and chars[i + 1].islower()
            ):
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
    roll = rng.random()
    if roll < 0.03:
        chars = [c.upper() if len(c.upper()) == 1 else c for c in chars]
    elif roll < 0.06:
        chars = [c.lower() if len(c.lower()) == 1 else c for c in chars]
    return "".join(chars)


# --- splits -----------------------------------------------------------------------------------


def generate_notes(
    count: int, seed: int | str, locales: Sequence[str] = defaults.SYNTH_LOCALES.value
) -> list[SpanExample]:
    """``count`` notes from ``seed``."""
    if count < 0:
        raise ConfigError(f"synthetic note count must be >= 0, got {count}")
    generator = NoteGenerator(seed, locales)
    return [generator.note(i) for i in range(count)]


def synth_splits(
    counts: Mapping[str, int], seed: int, locales: Sequence[str] = defaults.SYNTH_LOCALES.value
) -> Splits:
    """One generator per split, seeded by ``seed`` and the split name, so splits differ from each other
    and a split does not change when another split's count does."""
    splits: Splits = {}
    for split, count in counts.items():
        notes = generate_notes(count, f"{seed}:{split}", locales)
        splits[split] = [*notes]
    return splits


def write_synth(
    out_dir: str | Path,
    counts: Mapping[str, int],
    seed: int,
    locales: Sequence[str] = defaults.SYNTH_LOCALES.value,
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
