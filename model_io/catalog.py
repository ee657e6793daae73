"""The GGUF files Gemma Desk knows how to fetch: Gemma 3n E2B/E4B and, as a second family, Gemma 4 E2B/E4B.

Every size, sha256 and revision below is third-party information (app catalogs and scripts found in
public repositories, or ``/work/shared/research/gemma3n-facts.md`` §4), never checked against the
hub by us, so every entry has ``verified=False``.  That is safe because :mod:`model_io.download`
always verifies the bytes against the sha256 the hub reports at download time; the values here only
drive sizes in listings and an early warning when the hub disagrees.  ``None`` means unknown — a
value is only filled in when a source names it, and sources are cited in ``source``.

:func:`parse_source` turns what a user types (a catalog name, ``OWNER/REPO/FILE.gguf`` or a hub
URL) into the :class:`FileSource` the downloader takes.

Gating: Google's own Gemma 3n repositories are gated (accept the licence on the hub, then use a
token); whether a community mirror is gated is not known until the hub answers, so ``gated`` is
``None`` there and the downloader explains a 401/403 when it happens.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from model_io.errors import InputError

Family = Literal["gemma-3n", "gemma-4"]
Variant = Literal["E2B", "E4B"]
Role = Literal["text", "mmproj"]

#: llama.cpp's ``general.architecture`` for each family's text model.
FAMILY_ARCHITECTURES: dict[Family, str] = {"gemma-3n": "gemma3n", "gemma-4": "gemma4"}

GEMMA_TERMS = "Gemma Terms of Use"
APACHE = "Apache-2.0 (per third-party sources)"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_URL_SPEC = re.compile(r"^(?P<repo>[^/]+/[^/]+)/(?:resolve|blob)/(?P<rev>[^/]+)/(?P<path>.+)$")


@dataclass(frozen=True)
class CatalogEntry:
    """One downloadable file. ``name`` is what users type; ``local_name`` is unique in the models folder."""

    name: str
    family: Family
    variant: Variant
    role: Role
    repo: str
    filename: str
    quant: str
    size: int | None  # bytes, if a source states it
    sha256: str | None  # lower-case hex, if a source states it
    revision: str | None  # commit the size/sha256 belong to; None means the branch "main"
    verified: bool  # size and sha256 checked against the hub's LFS metadata by us
    gated: bool | None  # None: unknown until the hub answers
    license: str
    source: str  # where the facts come from
    local_name: str = ""  # defaults to the file name
    mmproj: str | None = None  # catalog name of the matching projector, for text entries

    def __post_init__(self) -> None:
        if not self.local_name:
            object.__setattr__(self, "local_name", self.filename.rsplit("/", 1)[-1])

    @property
    def needs_token(self) -> bool:
        """True when the hub is known to refuse this file without an accepted licence and a token."""
        return self.gated is True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(
    name: str,
    family: Family,
    variant: Variant,
    repo: str,
    filename: str,
    quant: str,
    *,
    source: str,
    size: int | None = None,
    sha256: str | None = None,
    revision: str | None = None,
    gated: bool | None = None,
    local_name: str = "",
    mmproj: str | None = None,
) -> CatalogEntry:
    license_ = GEMMA_TERMS if family == "gemma-3n" else APACHE
    return CatalogEntry(
        name, family, variant, "text", repo, filename, quant, size, sha256, revision, False, gated,
        license_, source, local_name, mmproj,
    )  # fmt: skip


def _mmproj(
    name: str,
    variant: Variant,
    repo: str,
    filename: str,
    quant: str,
    *,
    source: str,
    size: int | None = None,
    sha256: str | None = None,
    revision: str | None = None,
    local_name: str = "",
) -> CatalogEntry:
    return CatalogEntry(
        name, "gemma-4", variant, "mmproj", repo, filename, quant, size, sha256, revision, False, None,
        APACHE, source, local_name,
    )  # fmt: skip


_FACTS = "gemma3n-facts.md §4.1"
_FACTS_NAMING = "gemma3n-facts.md §4.2 (unsloth quant list); file name seen in public app configs"

GEMMA_3N: tuple[CatalogEntry, ...] = (
    _text(
        "gemma-3n-e2b-q4_k_m-unsloth", "gemma-3n", "E2B", "unsloth/gemma-3n-E2B-it-GGUF",
        "gemma-3n-E2B-it-Q4_K_M.gguf", "Q4_K_M", size=3_026_881_888,
        sha256="189d42b4303cb1078ea8d00963f437cd6d884069b7ba2ba80b38cd09585dc415",
        revision="d7bd20d510eff26f3f95260c50f032fee8931a35",
        source=f"{_FACTS}: size from LlamaBarn + 3 catalogs, sha256 from an app pin, revision from a catalog",
    ),
    _text(
        "gemma-3n-e4b-q4_k_m-unsloth", "gemma-3n", "E4B", "unsloth/gemma-3n-E4B-it-GGUF",
        "gemma-3n-E4B-it-Q4_K_M.gguf", "Q4_K_M", size=4_539_054_208,
        revision="90fa8b0e431faeae50c305828bc260d6f71720e1",
        source=f"{_FACTS}: size from LlamaBarn Catalog.swift @eefe245; sha256 unknown",
    ),
    _text(
        "gemma-3n-e2b-ud-q4_k_xl-unsloth", "gemma-3n", "E2B", "unsloth/gemma-3n-E2B-it-GGUF",
        "gemma-3n-E2B-it-UD-Q4_K_XL.gguf", "UD-Q4_K_XL", source=f"{_FACTS_NAMING}; size unknown",
    ),
    _text(
        "gemma-3n-e4b-ud-q4_k_xl-unsloth", "gemma-3n", "E4B", "unsloth/gemma-3n-E4B-it-GGUF",
        "gemma-3n-E4B-it-UD-Q4_K_XL.gguf", "UD-Q4_K_XL", source=f"{_FACTS_NAMING}; size unknown",
    ),
    _text(
        "gemma-3n-e2b-q8_0-ggml-org", "gemma-3n", "E2B", "ggml-org/gemma-3n-E2B-it-GGUF",
        "gemma-3n-E2B-it-Q8_0.gguf", "Q8_0", size=4_788_112_064,
        sha256="038a47c482e7af3009c462b56a7592e1ade3c7862540717aa1d9dee1760c337b",
        revision="989cffaba23976934324f5e3abfabe31b30eb73b",
        source=f"{_FACTS}: LlamaBarn + model-jars LaunchModelCatalogTest.java",
    ),
    _text(
        "gemma-3n-e4b-q8_0-ggml-org", "gemma-3n", "E4B", "ggml-org/gemma-3n-E4B-it-GGUF",
        "gemma-3n-E4B-it-Q8_0.gguf", "Q8_0", size=7_353_292_256,
        source=f"{_FACTS}: size from LlamaBarn; sha256 unknown",
    ),
    _text(
        "gemma-3n-e2b-q4_k_m-bartowski", "gemma-3n", "E2B", "bartowski/google_gemma-3n-E2B-it-GGUF",
        "google_gemma-3n-E2B-it-Q4_K_M.gguf", "Q4_K_M",
        source="gemma3n-facts.md §4.2 (naming); URL in public app configs; size unknown (labels disagree)",
    ),
    _text(
        "gemma-3n-e4b-q4_k_m-bartowski", "gemma-3n", "E4B", "bartowski/google_gemma-3n-E4B-it-GGUF",
        "google_gemma-3n-E4B-it-Q4_K_M.gguf", "Q4_K_M",
        source="gemma3n-facts.md §4.2 (naming); URL in public build scripts; size unknown",
    ),
)  # fmt: skip

_APPS = "public app catalogs/scripts (code search)"

GEMMA_4: tuple[CatalogEntry, ...] = (
    _text(
        "gemma-4-e2b-q4_k_m-unsloth", "gemma-4", "E2B", "unsloth/gemma-4-E2B-it-GGUF",
        "gemma-4-E2B-it-Q4_K_M.gguf", "Q4_K_M",
        sha256="9378bc471710229ef165709b62e34bfb62231420ddaf6d729e727305b5b8672d",
        mmproj="gemma-4-e2b-mmproj-f16-unsloth",
        source=f"{_APPS}: one app pin of the file on main; size unknown",
    ),
    _mmproj(
        "gemma-4-e2b-mmproj-f16-unsloth", "E2B", "unsloth/gemma-4-E2B-it-GGUF", "mmproj-F16.gguf", "F16",
        size=985_654_080, sha256="140be8d7849741f88c50757d529b84373ee8e27052cc2236855b537f4a8215fa",
        local_name="gemma-4-E2B-it-mmproj-F16.gguf",
        source=f"{_APPS}: size from one app, sha256 from another (main)",
    ),
    _text(
        "gemma-4-e4b-q4_k_m-unsloth", "gemma-4", "E4B", "unsloth/gemma-4-E4B-it-GGUF",
        "gemma-4-E4B-it-Q4_K_M.gguf", "Q4_K_M", mmproj="gemma-4-e4b-mmproj-f16-unsloth",
        source=f"{_APPS}: two app pins of main disagree on the sha256 (re-uploaded), so none is kept",
    ),
    _mmproj(
        "gemma-4-e4b-mmproj-f16-unsloth", "E4B", "unsloth/gemma-4-E4B-it-GGUF", "mmproj-F16.gguf", "F16",
        sha256="ddf46c21d7078e95338cfc22306b19b276a29a5ad089023449dd54d4b6170a51",
        local_name="gemma-4-E4B-it-mmproj-F16.gguf",
        source=f"{_APPS}: two independent pins of main agree on the sha256; size unknown",
    ),
    _text(
        "gemma-4-e2b-q4_0-ggml-org", "gemma-4", "E2B", "ggml-org/gemma-4-E2B-it-GGUF",
        "gemma-4-E2B-it-Q4_0.gguf", "Q4_0",
        sha256="8e30dff3ac4c8434c49a7036fa15564bdbb6044e42bf04550bf1a096ad7e6a52",
        mmproj="gemma-4-e2b-mmproj-q8_0-ggml-org", source=f"{_APPS}: one pin of main; size unknown",
    ),
    _mmproj(
        "gemma-4-e2b-mmproj-q8_0-ggml-org", "E2B", "ggml-org/gemma-4-E2B-it-GGUF",
        "mmproj-gemma-4-E2B-it-Q8_0.gguf", "Q8_0", size=557_367_776,
        sha256="8a82e0fd831bb7cb5c8898b86393eb14042986b950a60e1034bf21d061aac8a8",
        revision="b3a016208376b12ba27234f397bf29cf0538434e",
        source=f"{_APPS}: pinned manifest (pre re-upload revision); main has another sha256",
    ),
    _text(
        "gemma-4-e4b-q4_0-ggml-org", "gemma-4", "E4B", "ggml-org/gemma-4-E4B-it-GGUF",
        "gemma-4-E4B-it-Q4_0.gguf", "Q4_0", size=4_590_807_392,
        sha256="a555b900214b477d8880e7832e0b8925e139b0159640036b09fe472b6f2097f2",
        revision="b8093469224f83f5c38f691eb906c380e9e63114", mmproj="gemma-4-e4b-mmproj-q8_0-ggml-org",
        source=f"{_APPS}: pinned revision, size and sha256 from one app",
    ),
    _mmproj(
        "gemma-4-e4b-mmproj-q8_0-ggml-org", "E4B", "ggml-org/gemma-4-E4B-it-GGUF",
        "mmproj-gemma-4-E4B-it-Q8_0.gguf", "Q8_0", size=559_874_816,
        sha256="197f49a93027f9843772bd24a6a9e0be2a32a788de5a3def330e9c585d86edd1",
        revision="b8093469224f83f5c38f691eb906c380e9e63114",
        source=f"{_APPS}: same app as the Q4_0 pin (another revision is 559,874,528 bytes)",
    ),
    _text(
        "gemma-4-e4b-q4_k_m-ggml-org", "gemma-4", "E4B", "ggml-org/gemma-4-E4B-it-GGUF",
        "gemma-4-E4B-it-Q4_K_M.gguf", "Q4_K_M", mmproj="gemma-4-e4b-mmproj-q8_0-ggml-org",
        local_name="ggml-org_gemma-4-E4B-it-Q4_K_M.gguf",
        source=f"{_APPS}: URL in several scripts; size and sha256 unknown",
    ),
    _text(
        "gemma-4-e2b-q4_0-qat-google", "gemma-4", "E2B", "google/gemma-4-E2B-it-qat-q4_0-gguf",
        "gemma-4-E2B_q4_0-it.gguf", "Q4_0 (QAT)", size=3_349_514_112,
        sha256="3646b4c147cd235a44d91df1546d3b7d8e29b547dbe4e1f80856419aa455e6fd",
        revision="69536a21d70340464240401ba38223d805f6a709", local_name="gemma-4-E2B-it-qat-q4_0.gguf",
        mmproj="gemma-4-e2b-mmproj-q8_0-ggml-org",
        source=f"{_APPS}: pinned manifest pairing it with the ggml-org projector; later revisions differ",
    ),
    _text(
        "gemma-4-e4b-q4_0-qat-google", "gemma-4", "E4B", "google/gemma-4-E4B-it-qat-q4_0-gguf",
        "gemma-4-E4B_q4_0-it.gguf", "Q4_0 (QAT)", size=5_154_939_136,
        sha256="e8b6a059ba86947a44ace84d6e5679795bc41862c25c30513142588f0e9dba1d",
        revision="bb3b92e6f031fa438b409f898dd9f14f499a0cb0", local_name="gemma-4-E4B-it-qat-q4_0.gguf",
        mmproj="gemma-4-e4b-mmproj-q8_0-ggml-org",
        source=f"{_APPS}: two independent notes agree on revision, size and sha256",
    ),
    _text(
        "gemma-4-e2b-q4_k_m-bartowski", "gemma-4", "E2B", "bartowski/google_gemma-4-E2B-it-GGUF",
        "google_gemma-4-E2B-it-Q4_K_M.gguf", "Q4_K_M",
        sha256="923c4c86177d2ee173a7f5b4fa3d0ac65f5962ab15e6d6a5bc250aec4fd7bf7e",
        mmproj="gemma-4-e2b-mmproj-bf16-bartowski", source=f"{_APPS}: one script pin of main; size unknown",
    ),
    _mmproj(
        "gemma-4-e2b-mmproj-bf16-bartowski", "E2B", "bartowski/google_gemma-4-E2B-it-GGUF",
        "mmproj-google_gemma-4-E2B-it-bf16.gguf", "BF16", source=f"{_APPS}: URL in one app; size unknown",
    ),
    _text(
        "gemma-4-e4b-q4_k_m-bartowski", "gemma-4", "E4B", "bartowski/google_gemma-4-E4B-it-GGUF",
        "google_gemma-4-E4B-it-Q4_K_M.gguf", "Q4_K_M",
        source=f"{_APPS}: repo named in several configs; projector file name unknown, so none paired",
    ),
)  # fmt: skip

CATALOG: tuple[CatalogEntry, ...] = GEMMA_3N + GEMMA_4


def catalog_entries(*, family: Family | None = None, role: Role | None = None) -> tuple[CatalogEntry, ...]:
    return tuple(
        entry
        for entry in CATALOG
        if (family is None or entry.family == family) and (role is None or entry.role == role)
    )


def find_entry(name: str) -> CatalogEntry:
    """The entry called ``name`` (case-insensitive), or the only one whose name starts with it."""
    wanted = name.strip().lower()
    exact = [entry for entry in CATALOG if entry.name == wanted]
    if exact:
        return exact[0]
    matches = [entry for entry in CATALOG if entry.name.startswith(wanted)] if wanted else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(entry.name for entry in matches)
        raise InputError(f"{name!r} matches several catalog entries ({names}); give the full name")
    raise InputError(
        f"{name!r} is not in the catalog (see 'gemma-desk models list'); "
        "to fetch any other file give OWNER/REPO/FILE.gguf"
    )


def mmproj_for(entry: CatalogEntry) -> CatalogEntry | None:
    """The projector the catalog pairs with a text entry, if any."""
    return find_entry(entry.mmproj) if entry.mmproj else None


def check_catalog(entries: tuple[CatalogEntry, ...] = CATALOG) -> list[str]:
    """Problems in the catalog data (empty when consistent); the tests keep this list empty."""
    problems: list[str] = []
    for field in ("name", "local_name"):
        values = [getattr(entry, field) for entry in entries]
        problems += [f"duplicate {field} {value}" for value in sorted(set(values)) if values.count(value) > 1]
    by_name = {entry.name: entry for entry in entries}
    for entry in entries:
        problems += [f"{entry.name}: {problem}" for problem in _entry_problems(entry, by_name)]
    return problems


def _entry_problems(entry: CatalogEntry, by_name: dict[str, CatalogEntry]) -> list[str]:
    problems = []
    if entry.sha256 is not None and not _SHA256.fullmatch(entry.sha256):
        problems.append("sha256 is not 64 lower-case hex digits")
    if entry.revision is not None and not _COMMIT.fullmatch(entry.revision):
        problems.append("revision is not a 40-digit commit hash")
    if entry.size is not None and entry.size <= 0:
        problems.append("size must be positive")
    if not entry.local_name.endswith(".gguf") or entry.repo.count("/") != 1:
        problems.append("needs OWNER/REPO and a .gguf file")
    if entry.verified and (entry.sha256 is None or entry.size is None):
        problems.append("verified entries need size and sha256")
    if entry.mmproj is not None:
        projector = by_name.get(entry.mmproj)
        if projector is None or projector.role != "mmproj" or entry.role != "text":
            problems.append(f"mmproj {entry.mmproj} is not a projector entry")
        elif (projector.family, projector.variant) != (entry.family, entry.variant):
            problems.append(f"mmproj {entry.mmproj} is for another model")
    return problems


@dataclass(frozen=True)
class FileSource:
    """What to fetch: a file in a hub repo, optionally pinned, with the catalog's expectations."""

    repo: str
    filename: str
    revision: str | None = None
    local_name: str = ""
    expected_sha256: str | None = None
    sha256_trusted: bool = False  # True only for verified catalog values: a mismatch is then refused

    def __post_init__(self) -> None:
        if not self.local_name:
            object.__setattr__(self, "local_name", self.filename.rsplit("/", 1)[-1])

    @classmethod
    def from_entry(cls, entry: CatalogEntry, *, revision: str | None = None) -> FileSource:
        pinned = revision is None or revision == entry.revision
        return cls(
            entry.repo,
            entry.filename,
            revision or entry.revision,
            entry.local_name,
            entry.sha256 if pinned else None,
            entry.verified and pinned,
        )

    @property
    def label(self) -> str:
        return f"{self.repo}/{self.filename}" + (f"@{self.revision[:12]}" if self.revision else "")


def parse_source(spec: str, *, revision: str | None = None) -> FileSource:
    """A catalog name, ``OWNER/REPO/PATH.gguf`` or a hub ``…/resolve|blob/REV/PATH`` URL."""
    text = spec.strip()
    if "/" not in text:
        return FileSource.from_entry(find_entry(text), revision=revision)
    path = unquote(urlsplit(text).path if "://" in text else text).strip("/")
    match = _URL_SPEC.match(path)
    if match:
        repo, filename, revision = match["repo"], match["path"], revision or match["rev"]
    else:
        parts = path.split("/")
        repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    if not filename or repo.count("/") != 1 or not filename.lower().endswith(".gguf"):
        raise InputError(f"{spec!r} is neither a catalog name nor OWNER/REPO/FILE.gguf")
    return FileSource(repo, filename, revision)
