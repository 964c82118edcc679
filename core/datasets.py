"""The ImageFolder layout over relative paths: which folder holds the classes, each image's class, allowed names."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Archive and OS droppings that are never part of a dataset.
IGNORED_DIRS = frozenset({"__MACOSX", "@eaDir"})
VAL_FOLDERS = ("val", "validation")  # either names the given validation folder beside train/
MAX_CLASS_NAME = 64  # a class name is stored as a label (images.top1_label is 64 characters)


@dataclass(frozen=True)
class FolderLayout:
    """A labelled tree: every path is POSIX and relative to `root`, the folder whose subfolders are the classes."""

    root: str  # "" for the top; "photos" when one lone wrapper folder holds the classes
    classes: list[str]  # every class folder, an empty one too, sorted
    files: list[tuple[str, str]]  # (path, class) of each image at any depth below its class folder, sorted
    ignored: list[str]  # files outside any class folder, or not images

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.classes, 0)
        for _, label in self.files:
            counts[label] += 1
        return counts


def visible(part: str) -> bool:
    return bool(part) and not part.startswith(".") and part not in IGNORED_DIRS


def path_parts(path: str) -> tuple[str, ...] | None:
    """The path's components, or None when any of them is hidden (like os.walk skipping hidden folders)."""
    parts = tuple(p for p in path.replace("\\", "/").split("/") if p not in ("", "."))
    return parts if parts and all(visible(p) for p in parts) else None


def _children(prefix: tuple[str, ...], files: set[tuple], dirs: set[tuple]) -> tuple[set[str], set[str]]:
    """(sub-folder names, file names) directly inside `prefix`."""
    depth = len(prefix)
    sub = {d[depth] for d in dirs if len(d) > depth and d[:depth] == prefix}
    names = {f[depth] for f in files if len(f) == depth + 1 and f[:depth] == prefix}
    return sub, names


def _root(files: set[tuple], dirs: set[tuple]) -> tuple[str, ...]:
    """Descend through lone wrapper folders: an archive of photos/cat, photos/dog has its classes one level down."""
    root: tuple[str, ...] = ()
    while True:
        sub, names = _children(root, files, dirs)
        if len(sub) == 1 and not names:
            inner, _ = _children((*root, *sub), files, dirs)
            if len(inner) >= 2:
                root = (*root, *sub)
                continue
        return root


def image_folder_layout(
    files: Iterable[str], is_image: Callable[[str], bool], dirs: Iterable[str] = (), *, descend: bool = True
) -> FolderLayout:
    """The classes and labelled images of a tree given as relative file paths (and folders, empty ones too);
    descend=False keeps the top as the root (no lone wrapper folder is looked into)."""
    file_parts = {p for p in map(path_parts, files) if p}
    dir_parts = {p for p in map(path_parts, dirs) if p}
    dir_parts |= {f[:i] for f in file_parts for i in range(1, len(f))}
    root = _root(file_parts, dir_parts) if descend else ()
    classes, _ = _children(root, file_parts, dir_parts)
    labelled, ignored = [], []
    for parts in sorted(file_parts):
        if parts[: len(root)] != root:
            continue
        rel = parts[len(root) :]
        path = "/".join(rel)
        if len(rel) > 1 and is_image(rel[-1]):
            labelled.append((path, rel[0]))
        else:
            ignored.append(path)
    return FolderLayout("/".join(root), sorted(classes), labelled, ignored)


@dataclass(frozen=True)
class GivenSplit:
    """A tree that brings its own validation set: train/ and val/ (or validation/), each an ImageFolder."""

    train: FolderLayout  # root is the train folder's path from the top of the tree
    val: FolderLayout
    val_folder: str  # "val" or "validation", as the tree names it


def _part(files: list[str], dirs: list[str], prefix: tuple[str, ...], is_image: Callable[[str], bool]) -> FolderLayout:
    """The ImageFolder inside the folder `prefix` (no wrapper descended), its paths relative to that folder."""

    def below(paths: list[str]) -> list[str]:
        found = (p for p in map(path_parts, paths) if p and p[: len(prefix)] == prefix and len(p) > len(prefix))
        return ["/".join(p[len(prefix) :]) for p in found]

    inner = image_folder_layout(below(files), is_image, below(dirs), descend=False)
    return FolderLayout("/".join(prefix), inner.classes, inner.files, inner.ignored)


def given_split(files: Iterable[str], is_image: Callable[[str], bool], dirs: Iterable[str] = ()) -> GivenSplit | None:
    """The train/ and val/ ImageFolders when the tree's top (below lone wrappers) is exactly `train` and `val`
    or `validation`, and train/ holds class folders; None for a plain ImageFolder (classes named so included)."""
    files, dirs = list(files), list(dirs)
    outer = image_folder_layout(files, is_image, dirs)
    val_folder = next((name for name in VAL_FOLDERS if set(outer.classes) == {"train", name}), None)
    if val_folder is None:
        return None
    root = tuple(p for p in outer.root.split("/") if p)
    train = _part(files, dirs, (*root, "train"), is_image)
    if not train.classes:  # images straight inside train/: two classes that happen to be called so
        return None
    return GivenSplit(train, _part(files, dirs, (*root, val_folder), is_image), val_folder)


def class_name_problem(name: str) -> str | None:
    """Why `name` cannot be a class (a folder name, or a label in a JSON body), or None."""
    if not name.strip():
        return "is empty"
    if len(name) > MAX_CLASS_NAME:
        return f"is longer than {MAX_CLASS_NAME} characters"
    if "/" in name or "\\" in name or not visible(name):
        return "cannot be a folder name (no '/', '\\', leading '.', __MACOSX)"
    if any(ord(c) < 32 for c in name):
        return "contains control characters"
    return None


def check_classes(counts: dict[str, int], what: str = "the training set") -> None:
    """What training needs of its classes (name -> images): at least two, each with an image, each a
    usable name; ValueError naming the problem."""
    if len(counts) < 2:
        found = f"only {next(iter(counts))!r}" if counts else "none"
        raise ValueError(f"training needs at least 2 classes (one folder per class) in {what}, found {found}")
    for name in counts:
        if problem := class_name_problem(name):
            raise ValueError(f"class {name!r} {problem}")
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise ValueError(f"class folder(s) without an image in {what}: {', '.join(map(repr, empty))}")


def check_given_split(train: dict[str, int], val: dict[str, int], val_folder: str = "val") -> None:
    """What a given validation folder needs (class -> images in each): the training set's checks for train/,
    then the same classes in val/, each with an image; ValueError naming the class."""
    check_classes(train, what="train/")
    missing = [name for name in train if name not in val]
    if missing:
        raise ValueError(
            f"class(es) missing from {val_folder}/: {', '.join(map(repr, missing))}; "
            f"{val_folder}/ needs one folder per class of train/"
        )
    extra = [name for name in val if name not in train]
    if extra:
        raise ValueError(f"class(es) in {val_folder}/ but not in train/: {', '.join(map(repr, extra))}")
    empty = [name for name in train if val[name] == 0]
    if empty:
        raise ValueError(f"class folder(s) without an image in {val_folder}/: {', '.join(map(repr, empty))}")
