"""DreamBench (``google/dreambooth``): subjects, their reference images and the 25 prompts each.

Layout (the repository's ``dataset/`` folder, given as the location)::

    dataset/
      prompts_and_classes.txt      class table + object and live-subject prompt lists
      backpack/00.jpg …            one folder per subject, 4–6 images
      dog/00.jpg …

``prompts_and_classes.txt`` holds a ``subject_name,class`` table, then two Python-style lists
(``Object Prompts`` and ``Live Subject Prompts``) of entries written
``'a {0} {1} in the jungle'.format(unique_token, class_token),``. Live subjects (classes ``cat``
and ``dog``) get the live list, all others the object list, as in the DreamBooth paper.

Items: one per (subject, prompt), key ``<subject>-p<NN>`` (NN = prompt index in its list). The
condition is ``{"prompt", "base_prompt", "subject", "class", "token"}``: ``prompt`` with the unique
token ("a sks dog in the jungle"), ``base_prompt`` without it ("a dog in the jungle"). The refs hold
the subject's reference images (absolute paths) and the CLIP-T texts.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffbench.data.base import Item, check_key, inside
from diffbench.data.images import EXTENSIONS
from diffbench.errors import ConfigError, DataError, shown
from diffbench.fsutil import hash_file_into

PROMPTS_FILE = "prompts_and_classes.txt"
LIVE_CLASSES = ("cat", "dog")
PROMPT_SETS = ("auto", "object", "live")
_ENTRY = re.compile(r"""^(?P<q>['"])(?P<t>.*)(?P=q)\s*\.format\(\s*unique_token\s*,\s*"""
                    r"""class_token\s*\)\s*,?$""")
_SECTIONS = {"object prompts": "object", "live subject prompts": "live"}


@dataclass(frozen=True)
class PromptsFile:
    """The parsed ``prompts_and_classes.txt``: subject → class, and the two template lists."""

    classes: dict[str, str]
    templates: dict[str, list[str]]
    sha256: str


def _fail(path: Path, line: int, what: str) -> DataError:
    return DataError(f"{path}:{line}: {what}; the file must follow google/dreambooth's "
                     f"dataset/{PROMPTS_FILE} (a 'subject_name,class' table, then 'Object "
                     "Prompts' and 'Live Subject Prompts' lists of 'a {0} {1} ...'.format("
                     "unique_token, class_token) entries)")


def _parse_template(path: Path, n: int, text: str) -> str:
    match = _ENTRY.match(text)
    if not match:
        raise _fail(path, n, f"cannot read prompt entry {shown(text)}")
    template = match.group("t")
    if "{0}" not in template or "{1}" not in template:
        raise _fail(path, n, f"prompt {shown(template)} lacks the {{0}} (token) or {{1}} (class) slot")
    return template


def parse_prompts_file(path: str | Path) -> PromptsFile:
    """Parse ``prompts_and_classes.txt``, or raise DataError naming the line that is wrong."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        lines = raw.decode("utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: not found; point the dreambooth location at the 'dataset' "
                        "folder of google/dreambooth (it holds this file and one folder per "
                        "subject)") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    classes: dict[str, str] = {}
    templates: dict[str, list[str]] = {}
    state, section = "start", ""
    for n, line in enumerate((raw_line.strip() for raw_line in lines), start=1):
        low = line.lower()
        if state == "list":
            if line == "]":
                state = "between"
            elif line:
                templates[section].append(_parse_template(path, n, line))
        elif low.replace(" ", "") == "subject_name,class":
            state = "classes"
        elif low in _SECTIONS:
            section, state = _SECTIONS[low], "section"
            templates[section] = []
        elif line.replace(" ", "").startswith("prompt_list=["):
            if state != "section":
                raise _fail(path, n, "a prompt list without an 'Object Prompts' or 'Live "
                                     "Subject Prompts' title above it")
            state = "list"
        elif state == "classes" and line and low != "prompts":
            name, sep, cls = line.partition(",")
            if not sep or not name.strip() or not cls.strip():
                raise _fail(path, n, f"class table row {shown(line)} is not 'subject_name,class'")
            if name.strip() in classes:
                raise _fail(path, n, f"subject {shown(name.strip())} appears twice in the table")
            classes[name.strip()] = cls.strip()
        elif state == "classes" and low == "prompts":
            state = "between"
    if state == "list":
        raise _fail(path, len(lines), f"the '{section}' prompt list is not closed with ']'")
    missing = [s for s in ("object", "live") if not templates.get(s)]
    if not classes or missing:
        what = "no 'subject_name,class' table" if not classes else \
            f"no {' or '.join(missing)} prompt list"
        raise _fail(path, 1, what)
    return PromptsFile(classes, templates, hashlib.sha256(raw).hexdigest())


def fill(template: str, token: str, cls: str) -> str:
    """A template with its token and class slots filled, spaces normalised."""
    return " ".join(template.format(token, cls).split())


def _as_list(value: Any, what: str) -> list | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, int):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    raise ConfigError(f"dreambooth: '{what}' must be a list or a comma-separated string")


class DreamBoothDataset:
    """DreamBench (google/dreambooth): one item per (subject, prompt); refs are the subject's images."""

    location_arg = "root"

    def __init__(self, root: str | Path, token: str = "sks", subjects: Any = None,
                 prompt_set: str = "auto", prompts: Any = None, with_class: bool = True,
                 live_classes: Sequence[str] = LIVE_CLASSES):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"dreambooth: {self.root} is not a folder; give the 'dataset' folder "
                            "of google/dreambooth (--data dreambooth=PATH/dataset)")
        if not isinstance(token, str) or not token.strip() or token != token.strip():
            raise ConfigError(f"dreambooth: token {shown(token)} must be a non-empty word such as "
                              "'sks' or '<dog>'")
        if prompt_set not in PROMPT_SETS:
            raise ConfigError(f"dreambooth: prompt_set {shown(prompt_set)} is not one of "
                              f"{', '.join(PROMPT_SETS)}")
        self.token, self.prompt_set, self.with_class = token, prompt_set, bool(with_class)
        self.live_classes = tuple(live_classes)
        self.prompts_file = parse_prompts_file(self.root / PROMPTS_FILE)
        self.subjects = self._pick_subjects(_as_list(subjects, "subjects"))
        self.prompt_indices = self._pick_prompts(_as_list(prompts, "prompts"))
        self._refs = {s: self._reference_paths(s) for s in self.subjects}

    def _pick_subjects(self, wanted: list | None) -> list[str]:
        table = self.prompts_file.classes
        if wanted is None:
            return list(table)
        for name in wanted:
            if name not in table:
                close = difflib.get_close_matches(str(name), list(table), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ConfigError(f"dreambooth: subject {shown(name)} is not in {PROMPTS_FILE}{hint}")
        return [str(s) for s in wanted]

    def _pick_prompts(self, wanted: list | None) -> list[int]:
        n = min(len(t) for t in self.prompts_file.templates.values())
        if wanted is None:
            return list(range(n))
        try:
            indices = [int(i) for i in wanted]
        except (TypeError, ValueError):
            raise ConfigError(f"dreambooth: prompts {shown(wanted)} must be prompt indices "
                              f"(0..{n - 1})") from None
        bad = [i for i in indices if not 0 <= i < n]
        if bad or len(set(indices)) != len(indices):
            raise ConfigError(f"dreambooth: prompts {shown(wanted)}: indices must be distinct and in "
                              f"0..{n - 1}")
        return indices

    def _reference_paths(self, subject: str) -> list[str]:
        folder = inside(self.root, subject, f"dreambooth {PROMPTS_FILE}")
        if not folder.is_dir():
            raise DataError(f"dreambooth: subject '{subject}' is listed in {PROMPTS_FILE} but "
                            f"{folder} is not a folder; restore it or select other subjects "
                            "with the reader's 'subjects' argument")
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and p.suffix.lower() in EXTENSIONS)
        if not files:
            raise DataError(f"dreambooth: subject folder {folder} has no images "
                            f"({', '.join(EXTENSIONS)}); it needs the subject's 4-6 photos")
        return [str(p.resolve()) for p in files]

    def kind(self, subject: str) -> str:
        """'live' or 'object': which prompt list the subject gets."""
        if self.prompt_set != "auto":
            return self.prompt_set
        return "live" if self.prompts_file.classes[subject] in self.live_classes else "object"

    def reference_paths(self, subject: str) -> list[str]:
        """The subject's reference images (absolute paths, sorted by name)."""
        return list(self._refs[subject])

    def items(self) -> list[Item]:
        """One item per (subject, prompt), in subject then prompt order."""
        out = []
        for subject in self.subjects:
            cls = self.prompts_file.classes[subject]
            templates = self.prompts_file.templates[self.kind(subject)]
            for i in self.prompt_indices:
                t = templates[i]
                prompt = fill(t, self.token, cls) if self.with_class else fill(t, self.token, "")
                condition = {"prompt": prompt, "base_prompt": fill(t, "", cls),
                             "subject": subject, "class": cls, "token": self.token}
                refs = {"subject": subject, "images": self.reference_paths(subject),
                        "text": condition["base_prompt"], "context": fill(t, "", "")}
                out.append(Item(check_key(f"{subject}-p{i:02d}", "dreambooth subject"),
                                condition, refs))
        return out

    def reference_images(self) -> None:
        """None: alignment metrics compare with each subject's own images (in the refs)."""
        return None

    def describe(self) -> dict[str, Any]:
        """What the results record says about this dataset."""
        return {"kind": "dreambooth", "path": str(self.root), "subjects": len(self.subjects),
                "prompts_per_subject": len(self.prompt_indices),
                "reference_images": sum(len(v) for v in self._refs.values()),
                "token": self.token, "prompt_set": self.prompt_set,
                "with_class": self.with_class,
                "prompts_file_sha256": self.prompts_file.sha256}

    def content_hash(self) -> str:
        """sha256 over the prompts file and every selected reference image."""
        h = hashlib.sha256(self.prompts_file.sha256.encode())
        for subject in self.subjects:
            for path in self._refs[subject]:
                h.update(f"{subject}/{Path(path).name}\0".encode())
                hash_file_into(h, path)
        return h.hexdigest()
