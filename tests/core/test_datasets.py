"""The ImageFolder layout rule over relative paths, shared by the API's archive check and the worker's scan."""

import re

import pytest

from imagebatch.core.datasets import (
    check_classes,
    check_given_split,
    class_name_problem,
    given_split,
    image_folder_layout,
)


def _is_image(name: str) -> bool:
    return name.endswith((".png", ".jpg"))


def test_classes_are_the_folders_below_lone_wrapper_folders():
    layout = image_folder_layout(
        ["photos/cat/a.jpg", "photos/cat/deep/er/b.png", "photos/dog/c.jpg", "photos/dog/notes.txt"],
        _is_image,
        dirs=["photos/bird/"],
    )
    assert layout.root == "photos"
    assert layout.classes == ["bird", "cat", "dog"]
    assert layout.files == [("cat/a.jpg", "cat"), ("cat/deep/er/b.png", "cat"), ("dog/c.jpg", "dog")]
    assert layout.ignored == ["dog/notes.txt"]
    assert layout.counts() == {"bird": 0, "cat": 2, "dog": 1}


def test_hidden_and_archive_droppings_are_no_part_of_the_set_and_top_files_are_ignored():
    layout = image_folder_layout(
        ["a/x.png", "b/.hidden.png", ".git/c/y.png", "__MACOSX/a/._x.png", "b/y.png", "readme.png"], _is_image
    )
    assert (layout.root, layout.classes) == ("", ["a", "b"])
    assert layout.files == [("a/x.png", "a"), ("b/y.png", "b")]
    assert layout.ignored == ["readme.png"]


def test_a_wrapper_with_one_class_inside_is_itself_the_class():
    layout = image_folder_layout(["only/cat/a.png", "only/cat/b.png"], _is_image)
    assert (layout.root, layout.classes) == ("", ["only"])


@pytest.mark.parametrize(
    "counts, message",
    [
        ({}, "at least 2 classes (one folder per class) in the training set, found none"),
        ({"cat": 3}, "found only 'cat'"),
        ({"cat": 3, "dog": 0}, "class folder(s) without an image in the training set: 'dog'"),
        ({"cat": 3, "x" * 65: 1}, "is longer than 64 characters"),
    ],
)
def test_training_needs_two_classes_each_with_an_image(counts, message):
    with pytest.raises(ValueError) as caught:
        check_classes(counts)
    assert message in str(caught.value)


def test_class_names_must_be_folder_names():
    assert class_name_problem("tabby cat") is None
    assert class_name_problem("a/b") and class_name_problem(".x") and class_name_problem(" ")
    assert class_name_problem("tab\tby")


def test_train_and_val_folders_are_a_given_split_each_an_image_folder():
    files = ["d/train/cat/a.png", "d/train/dog/x/b.png", "d/train/loose.png", "d/validation/cat/c.png", "d/README"]
    split = given_split(files, lambda name: name.endswith(".png"), ["d/validation/dog"])
    assert split is not None and split.val_folder == "validation"
    assert (split.train.root, split.train.classes, split.train.ignored) == ("d/train", ["cat", "dog"], ["loose.png"])
    assert split.train.files == [("cat/a.png", "cat"), ("dog/x/b.png", "dog")]
    assert (split.val.root, split.val.classes) == ("d/validation", ["cat", "dog"])
    assert split.val.files == [("cat/c.png", "cat")]
    # Classes that happen to be called train and val (images straight inside), or a third folder: no split.
    assert given_split(["train/a.png", "val/b.png"], lambda _: True) is None
    assert given_split(["train/a/1.png", "val/a/2.png", "test/a/3.png"], lambda _: True) is None


@pytest.mark.parametrize(
    "train, val, message",
    [
        ({"a": 1, "b": 1}, {"a": 1}, "class(es) missing from val/: 'b'"),
        ({"a": 1, "b": 1}, {"a": 1, "b": 0}, "without an image in val/: 'b'"),
        ({"a": 1, "b": 1}, {"a": 1, "b": 1, "c": 2}, "in val/ but not in train/: 'c'"),
        ({"a": 1, "b": 0}, {"a": 1, "b": 1}, "without an image in train/: 'b'"),
    ],
)
def test_a_given_split_needs_the_same_classes_each_with_an_image(train, val, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_given_split(train, val)
