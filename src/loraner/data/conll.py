"""Column files: CoNLL-style (``token ... tag`` per line) and the Few-NERD original txt files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from loraner.data.paths import split_files
from loraner.data.schemes import detect_scheme, to_iob2
from loraner.errors import ConfigError, DataError
from loraner.settings import DataConfig
from loraner.types import Splits, WordExample

DOCSTART = "-DOCSTART-"
TagMap = Callable[[str], str]


@dataclass
class _Sentence:
    tokens: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # 1-based line of each token, for errors


def read_column_file(
    path: str | Path,
    *,
    token_column: int = 0,
    tag_column: int = -1,
    scheme: str = "auto",
    tag_map: TagMap | None = None,
) -> list[WordExample]:
    """Read one column file into IOB2 word examples.

    Blank lines separate sentences and ``-DOCSTART-`` lines are skipped (they also end a
    sentence). ``tag_map`` rewrites raw tags before scheme conversion (Few-NERD coarse types).
    With ``scheme="auto"`` the scheme is detected once from the whole file: a single sentence
    rarely shows enough tags to tell IOB1 from IOB2.
    """
    source = str(path)
    sentences = list(_sentences(Path(path), token_column, tag_column, tag_map))
    if not sentences:
        raise DataError(
            "no sentences (the file is empty or has only blank and -DOCSTART- lines)", source=source
        )
    if scheme == "auto":
        scheme = detect_scheme((s.tags for s in sentences), source=source, lines=(s.lines for s in sentences))
    return [
        WordExample(tokens=s.tokens, tags=to_iob2(s.tags, scheme, source=source, line=s.lines), id=str(i))
        for i, s in enumerate(sentences)
    ]


def _sentences(path: Path, token_column: int, tag_column: int, tag_map: TagMap | None) -> Iterator[_Sentence]:
    source = str(path)
    try:
        handle = path.open("rb")  # lines end at "\n"; each is decoded as UTF-8 (errors name the line)
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror}", source=source) from exc
    current = _Sentence()
    width: tuple[int, int] | None = None  # (columns, line) of the first token line
    with handle:
        for number, raw_bytes in enumerate(handle, start=1):
            raw = _decode(raw_bytes, source, number)
            columns = raw.split()
            if not columns or columns[0] == DOCSTART:
                if current.tokens:
                    yield current
                current = _Sentence()
                continue
            try:
                # One column would make the token its own tag (token 0 = tag -1): refuse it.
                if len(columns) < 2:
                    raise IndexError
                token, tag = columns[token_column], columns[tag_column]
            except IndexError:
                raise DataError(
                    f"line has {len(columns)} column(s); token column {token_column} and tag column "
                    f"{tag_column} are needed",
                    source=source,
                    line=number,
                ) from None
            if width is None:
                width = (len(columns), number)
            elif len(columns) != width[0]:
                raise DataError(
                    f"line has {len(columns)} columns but line {width[1]} has {width[0]}: every token line "
                    "needs the same columns (a token with a space in it, or a missing tag?)",
                    source=source,
                    line=number,
                )
            current.tokens.append(token)
            current.tags.append(tag_map(tag) if tag_map else tag)
            current.lines.append(number)
    if current.tokens:
        yield current


def _decode(raw: bytes, source: str, line: int) -> str:
    try:
        return raw.decode("utf-8-sig" if line == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        hint = ""
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in raw:
            hint = " (it looks like UTF-16: convert it, e.g. iconv -f UTF-16 -t UTF-8)"
        raise DataError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start} of the line){hint}", source=source, line=line
        ) from None


def column_index(value: int | str, what: str) -> int:
    """Column files index columns by number; presets may spell it as a string ("3")."""
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"data.{what} must be a column number for column files, got {value!r}") from None


def read_conll(cfg: DataConfig) -> Splits:
    """The ``conll`` format: one column file per split under ``cfg.path``."""
    token_column = column_index(cfg.token_column, "token_column")
    tag_column = column_index(cfg.tag_column, "tag_column")
    return {
        split: list(
            read_column_file(path, token_column=token_column, tag_column=tag_column, scheme=cfg.scheme)
        )
        for split, path in split_files(cfg, (".txt", ".conll")).items()
    }


def coarse_type(label: str) -> str:
    """Few-NERD coarse type of an IO label: ``person-actor`` -> ``person`` (``O`` stays ``O``)."""
    return label if label == "O" else label.split("-", 1)[0]


def read_fewnerd_file(path: str | Path, tag_type: str = "fine") -> list[WordExample]:
    """A Few-NERD original txt file (``word<TAB>label``, IO labels) as IOB2 examples.

    Coarse mapping happens before IO->IOB2 conversion, as in the hub's coarse column: two adjacent
    words with different fine types of one coarse type form a single coarse entity.
    """
    tag_map = coarse_type if tag_type == "coarse" else None
    return read_column_file(path, token_column=0, tag_column=-1, scheme="IO", tag_map=tag_map)


def read_fewnerd_txt(cfg: DataConfig) -> Splits:
    """The ``fewnerd-txt`` format: Few-NERD's ``train.txt``/``dev.txt``/``test.txt``."""
    return {
        split: list(read_fewnerd_file(path, cfg.tag_type))
        for split, path in split_files(cfg, (".txt",)).items()
    }
