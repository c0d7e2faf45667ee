"""sources.yaml: the user's brands, sources, notifiers, alert rules and model settings.

Loading is strict: unknown keys are refused, `${ENV}` references must resolve, YAML is read with
the safe loader only, and every problem is reported with its YAML path and line at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import regex
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
)

import sources
from alerts.inbox import DEFAULT_TEMPLATES
from alerts.settings import CONSOLE, RULE_NAMES, AlertRule
from listener import secrets
from listener.metrics import DEFAULT_ASPECTS, aspect_matchers
from listener.query import Query, parse_query
from listener.storage.registry import backend_of
from listener.timeutil import Duration
from sentiment import DEFAULT_MODEL
from sentiment.heads import DEFAULT_HEAD
from sentiment.language import DEFAULT_LANGUAGES, valid_code

DEFAULT_REVISION = "f3e34b6c30bf27b6649f72eca85d0bbe79df1e55"
_ENV_REF = regex.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Path_ = tuple[str | int, ...]
# A real sources.yaml for hundreds of sources is well under these.
MAX_CONFIG_CHARS = 5_000_000
MAX_CONFIG_VALUES = 200_000
MAX_ALIASES = 1_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Brand(Strict):
    name: str = Field(min_length=1)
    query: str | None = Field(
        default=None, description="keyword query; defaults to the brand name as a phrase"
    )
    languages: list[str] = Field(default_factory=list, description="ISO 639-1 codes to keep")
    competitors: list[str] = Field(default_factory=list, description="names of other brands")

    @field_validator("query")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_query(value)  # raises QuerySyntaxError (a ValueError) with the column
        return value

    @cached_property
    def matcher(self) -> Query:
        return parse_query(self.query or f'"{self.name}"')


class Notifier(Strict):
    name: str = Field(min_length=1)
    url: SecretStr = Field(description="an Apprise URL; use ${ENV} so the secret stays out of git")
    digest: str | None = Field(
        default=None,
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="HH:MM (UTC): one daily digest instead of an alert each",
    )


class Sentiment(Strict):
    backend: Literal["auto", "transformers", "e5-offline"] = Field(
        default="auto",
        description="auto: the hub model if cached or reachable, else the "
        "offline e5 model; transformers: only `model`",
    )
    model: str = Field(default=DEFAULT_MODEL, description="hub id or local directory")
    head: str = Field(
        default=DEFAULT_HEAD,
        description="the offline e5 model: listener-3 or listener-2 (fine-tuned), or a head "
        "over the frozen encoder (listener-1, mlp-2.0, mlp-1.0, logistic-2.0), or a directory "
        "written by `listener model train` or a file written by `listener model tune-head`",
    )
    revision: str | None = Field(default=DEFAULT_REVISION, description="pinned hub revision")
    batch_size: int | None = Field(
        default=None, ge=1, description="texts per forward pass; default 32 on CPU, 1024 on GPU"
    )
    max_length: int = Field(default=512, ge=8)
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:1 ...")
    offline: bool = Field(default=False, description="never reach the hub; local files only")
    quantize: bool = Field(default=False, description="int8 dynamic quantisation on CPU")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="auto: bfloat16 on CUDA and on CPUs with native bf16, else float32",
    )
    threads: int | None = Field(default=None, ge=1, description="CPU threads; default: all")
    max_tokens: int | None = Field(
        default=None,
        ge=16,
        description="padded tokens per forward pass; default 4096 on CPU, 262144 on GPU",
    )
    long_texts: Literal["truncate", "chunks"] = Field(
        default="truncate",
        description="beyond max_length tokens: keep the start, or average over windows",
    )
    max_chunks: int = Field(default=8, ge=1, description="windows per text with chunks")
    unload_after: Duration | None = Field(
        default=timedelta(minutes=30),
        description="`listener run` drops the model after this long without mentions to "
        "score, and loads it again when some come; null: keep it loaded",
    )
    review_below: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="mark a mention 'needs review' when its top probability is below this; "
        "default: the model's own threshold (chosen on its calibrated dev data), "
        "else 0.5",
    )


class InboxSettings(Strict):
    reply_within: Duration = Field(
        default=timedelta(hours=24), description="response target for negatives"
    )
    thank_within: Duration = Field(
        default=timedelta(hours=72), description="target for thanking happy reviewers"
    )
    max_age: Duration = Field(
        default=timedelta(days=14), description="older mentions never enter the inbox"
    )
    thank_min_score: float = Field(
        default=0.6, ge=0, le=1, description="signed score for 'clearly positive' text"
    )
    templates: dict[Literal["reply", "thank"], dict[str, str]] = Field(
        default_factory=dict, description="per kind and language; {author} {brand} {product}"
    )

    @field_validator("templates")
    @classmethod
    def _known_placeholders(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for kind, by_lang in value.items():
            for lang, text in by_lang.items():
                try:
                    text.format_map({"author": "", "brand": "", "product": ""})
                except (KeyError, ValueError, IndexError) as exc:
                    raise ValueError(
                        f"templates.{kind}.{lang}: unknown placeholder {exc}; "
                        "use {author}, {brand} or {product}"
                    ) from None
        return value

    def all_templates(self) -> dict[str, dict[str, str]]:
        return {
            k: {**DEFAULT_TEMPLATES[k], **self.templates.get(k, {})}  # type: ignore[call-overload]
            for k in DEFAULT_TEMPLATES
        }


class NetworkSettings(Strict):
    allow_private_addresses: bool = Field(
        default=True,
        description="false: refuse loopback/private/link-local fetch targets "
        "(use when sources.yaml comes from someone else)",
    )


class WorkerSettings(Strict):
    lease: Duration = Field(
        default=timedelta(seconds=60),
        description="how long a claim on work lasts unless renewed; a stopped worker's work "
        "is taken over after this",
    )
    fetches: int = Field(default=8, ge=1, le=64, description="sources fetched at once")
    processes: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="worker processes that parse feeds and detect languages in a pass; "
        "null: one per core when 50+ sources are due, 0: never (parse in threads)",
    )

    @field_validator("lease")
    @classmethod
    def _lease_bounds(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=5) <= value <= timedelta(hours=1):
            raise ValueError("lease must be between 5s and 1h")
        return value


class LanguageSettings(Strict):
    detect: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LANGUAGES),
        description="ISO 639-1 codes the detector chooses among",
    )
    accuracy: Literal["low", "high"] = Field(
        default="low", description="high: better on very short texts, ~850 MB more memory"
    )
    min_distance: float = Field(
        default=0.1, ge=0, le=0.99, description="how clearly a language must win; else unknown"
    )

    @field_validator("detect")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        bad = [c for c in value if not valid_code(c)]
        if bad:
            raise ValueError(f"not ISO 639-1 language codes lingua knows: {', '.join(bad)}")
        return [c.lower() for c in value]


def _source_union() -> Any:
    models = tuple(c.config_model for c in sources.COLLECTORS.values())
    if len(models) == 1:
        return models[0]
    return Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007


class Config(Strict):
    database: str = Field(
        default="listener.db",
        description="SQLite file, relative to this file, or a postgresql:// URL",
    )
    brands: list[Brand] = Field(min_length=1)
    sources: list[_source_union()] = Field(default_factory=list)  # type: ignore[valid-type]
    notifiers: list[Notifier] = Field(default_factory=list)
    alerts: list[AlertRule] = Field(default_factory=list)
    sentiment: Sentiment = Field(default_factory=Sentiment)
    language: LanguageSettings = Field(default_factory=LanguageSettings)
    inbox: InboxSettings = Field(default_factory=InboxSettings)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    aspects: dict[str, dict[str, list[str]]] = Field(
        default_factory=lambda: DEFAULT_ASPECTS,
        description="aspect -> language -> keywords (word, word*, phrase); replaces defaults",
    )

    @field_validator("aspects")
    @classmethod
    def _aspect_keywords_parse(
        cls, value: dict[str, dict[str, list[str]]]
    ) -> dict[str, dict[str, list[str]]]:
        aspect_matchers(value)  # raises QuerySyntaxError naming the bad keyword
        return value

    # Set by load_config: where the file was, so relative paths resolve against it.
    base_dir: Path = Field(default=Path("."), exclude=True)
    _unset_notifier_env: list[Problem] = PrivateAttr(default_factory=list)
    _file: str = PrivateAttr(default="sources.yaml")

    def require_sending(self) -> Config:
        """This config, if every notifier's ${ENV} is set; else ConfigError naming each."""
        if self._unset_notifier_env:
            raise ConfigError(self._file, self._unset_notifier_env)
        return self

    def database_path(self) -> Path:
        path = Path(self.database).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def database_url(self) -> str | Path:
        """What open_store opens: a server URL as written, else the SQLite file's path."""
        scheme, _ = backend_of(self.database)
        return self.database if scheme != "sqlite" else self.database_path()

    def brand(self, name: str) -> Brand:
        return next(b for b in self.brands if b.name == name)

    def source(self, name: str) -> Any:
        return next(s for s in self.sources if s.name == name)


@dataclass(frozen=True)
class Problem:
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(top level)'}: {self.message}"


class ConfigError(Exception):
    def __init__(self, file: Path | str, problems: list[Problem]) -> None:
        self.file = str(file)
        self.problems = sorted(problems, key=lambda p: p.line or 0)
        lines = "\n".join(
            f"{self.file}:{p.line}: {p}" if p.line else f"{self.file}: {p}" for p in self.problems
        )
        n = len(problems)
        super().__init__(f"{lines}\n{n} problem{'s' if n != 1 else ''} in {self.file}")


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_map(node: yaml.Node, path: Path_ = (), lines: dict | None = None) -> dict[Path_, int]:
    """YAML path -> 1-based line, from the composed node tree (keys point at the key's line)."""
    lines = {} if lines is None else lines
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            lines[child] = key.start_mark.line + 1
            _line_map(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), lines)
    return lines


def _line_for(lines: dict[Path_, int], path: Path_) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _expand_env(value: Any, path: Path_, missing: list[tuple[Path_, str]]) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, (*path, k), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*path, i), missing) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: regex.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            secrets.register(name, os.environ[name])  # masked wherever it would appear
            return os.environ[name]
        if default is not None:
            return default
        missing.append((path, name))
        return ""

    return _ENV_REF.sub(replace, value)


class _Loader(yaml.SafeLoader):
    """The safe loader (no tags that build Python objects), noting where aliases are used."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_lines: list[int] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.alias_lines.append(self.peek_event().start_mark.line + 1)
        return super().compose_node(parent, index)


def _expanded_size(root: yaml.Node, limit: int) -> int | None:
    """How many values the document holds once aliases are expanded, counted without
    expanding them (each node once); None if it refers to itself."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            size[key] = min(1 + sum(size[id(c)] for c in children), limit + 1)
            continue
        if key in size:
            continue
        if key in on_path:
            return None
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)
    return size[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _read_yaml(text: str, file: str) -> tuple[Any, dict[Path_, int]]:
    if len(text) > MAX_CONFIG_CHARS:
        raise ConfigError(
            file,
            [Problem("", None, f"file is larger than {MAX_CONFIG_CHARS // 1_000_000} MB; refused")],
        )
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(file, [Problem("", 1, "file is empty")])
        # Aliases are shared when loaded but walked as copies by everything after: a few
        # nested ones (a "billion laughs") would expand to billions of values.
        if len(loader.alias_lines) > MAX_ALIASES:
            raise ConfigError(
                file,
                [
                    Problem(
                        "",
                        loader.alias_lines[MAX_ALIASES],
                        (f"more than {MAX_ALIASES} YAML aliases (*name); refused"),
                    )
                ],
            )
        size = _expanded_size(node, MAX_CONFIG_VALUES)
        if size is None or size > MAX_CONFIG_VALUES:
            why = (
                "a YAML alias refers to the node that contains it"
                if size is None
                else f"YAML aliases expand this file past {MAX_CONFIG_VALUES:,} values"
            )
            raise ConfigError(
                file,
                [
                    Problem(
                        "", loader.alias_lines[0] if loader.alias_lines else None, f"{why}; refused"
                    )
                ],
            )
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(file, [Problem("", line, f"not valid YAML: {exc.problem}")]) from None
    except RecursionError:
        raise ConfigError(file, [Problem("", None, "nested too deeply; refused")]) from None
    finally:
        loader.dispose()
    return data, _line_map(node)


def _entries(data: dict[str, Any], section: str) -> list[tuple[int, dict[str, Any]]]:
    items = data.get(section)
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def _names(entries: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, str]]:
    return [(i, e["name"]) for i, e in entries if isinstance(e.get("name"), str)]


def _cross_check(data: dict[str, Any], aspects: Any) -> list[tuple[Path_, str]]:
    """References between sections (brands, competitors, notifiers, rules), read from the raw
    mapping so they are reported together with schema problems, not after those are fixed."""
    found: list[tuple[Path_, str]] = []
    brands, srcs = _entries(data, "brands"), _entries(data, "sources")
    notifiers, rules = _entries(data, "notifiers"), _entries(data, "alerts")
    for section, entries in (("brands", brands), ("sources", srcs), ("notifiers", notifiers)):
        seen: set[str] = set()
        for i, name in _names(entries):
            if name in seen:
                found.append(((section, i, "name"), f"duplicate name {name!r}"))
            seen.add(name)
    brand_names = {name for _, name in _names(brands)}
    for i, brand in brands:
        competitors = brand.get("competitors")
        for j, competitor in enumerate(competitors if isinstance(competitors, list) else []):
            if isinstance(competitor, str) and competitor not in brand_names:
                found.append((("brands", i, "competitors", j), f"no brand named {competitor!r}"))
    for i, source in srcs:
        if isinstance(source.get("brand"), str) and source["brand"] not in brand_names:
            found.append((("sources", i, "brand"), f"no brand named {source['brand']!r}"))
    channels = {CONSOLE, *(name for _, name in _names(notifiers))}
    source_names = {name for _, name in _names(srcs)}
    aspect_names = set(aspects) if isinstance(aspects, dict) else set()
    rule_ids: set[str] = set()
    for i, rule in rules:
        rule_id = rule.get("name") or rule.get("rule")
        if isinstance(rule_id, str):
            if rule_id in rule_ids:
                found.append(
                    (
                        ("alerts", i, "name"),
                        f"two rules named {rule_id!r}: give each a unique `name`",
                    )
                )
            rule_ids.add(rule_id)
        if isinstance(rule.get("brand"), str) and rule["brand"] not in brand_names:
            found.append((("alerts", i, "brand"), f"no brand named {rule['brand']!r}"))
        if isinstance(rule.get("source"), str) and rule["source"] not in source_names:
            found.append((("alerts", i, "source"), f"no source named {rule['source']!r}"))
        if isinstance(rule.get("aspect"), str) and rule["aspect"] not in aspect_names:
            found.append(
                (
                    ("alerts", i, "aspect"),
                    f"no aspect named {rule['aspect']!r} (have: {', '.join(sorted(aspect_names))})",
                )
            )
        notify = rule.get("notify")
        for j, channel in enumerate(notify if isinstance(notify, list) else []):
            if isinstance(channel, str) and channel not in channels:
                found.append(
                    (
                        ("alerts", i, "notify", j),
                        f"no notifier named {channel!r} (have: {', '.join(sorted(channels))})",
                    )
                )
    return found


def parse_config(
    text: str,
    file: str = "sources.yaml",
    base_dir: Path | None = None,
    *,
    need_notifier_env: bool = True,
) -> Config:
    """Parse and check a config; every problem is reported at once, with its line.

    need_notifier_env=False: unset ${ENV} in notifiers is not a problem yet (for commands that
    never send); Config.require_sending() raises it later."""
    data, lines = _read_yaml(text, file)
    if not isinstance(data, dict):
        raise ConfigError(file, [Problem("", 1, "top level must be a mapping of sections")])
    missing: list[tuple[Path_, str]] = []
    data = _expand_env(data, (), missing)
    unset = [
        Problem(format_path(p), _line_for(lines, p), f"environment variable {name} is not set")
        for p, name in missing
    ]
    # Notifier secrets matter only to commands that send: an analyst exporting data does not
    # need the team's Slack hook. They are checked by Config.require_sending().
    deferred = [
        u
        for u, (p, _) in zip(unset, missing, strict=True)
        if p[:1] == ("notifiers",) and not need_notifier_env
    ]
    problems = [u for u in unset if u not in deferred]
    problems += [
        Problem(format_path(p), _line_for(lines, p), msg)
        for p, msg in _cross_check(data, data.get("aspects", DEFAULT_ASPECTS))
    ]
    try:
        config = TypeAdapter(Config).validate_python({**data, "base_dir": base_dir or Path(".")})
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            path = tuple(err["loc"])
            # a discriminated union adds the tag to the path: drop it, it is not a YAML key
            tags = {"sources": set(sources.COLLECTORS), "alerts": set(RULE_NAMES)}
            path = tuple(
                p
                for i, p in enumerate(path)
                if not (i == 2 and isinstance(p, str) and p in tags.get(str(path[0]), ()))
            )
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = f"unknown key {path[-1]!r}"
            elif err["type"] == "union_tag_invalid" and path[0] == "sources":
                path = (*path, "type")
                message = (
                    f"unknown source type {err['ctx']['tag']!r} (have: "
                    f"{', '.join(sources.COLLECTORS)})"
                )
            elif err["type"] == "union_tag_invalid":
                path = (*path, "rule")
                message = f"unknown rule {err['ctx']['tag']!r} (have: {', '.join(RULE_NAMES)})"
            problems.append(Problem(format_path(path), _line_for(lines, path), message))
        raise ConfigError(file, problems) from None
    if problems:
        raise ConfigError(file, problems)
    config._unset_notifier_env = deferred
    config._file = file
    return config


def load_config(path: str | Path, *, need_notifier_env: bool = True) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, [Problem("", None, "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [Problem("", None, f"not UTF-8 text ({exc.reason})")]) from None
    return parse_config(text, str(path), path.resolve().parent, need_notifier_env=need_notifier_env)
