"""The ImageFolder layout rule over relative paths, shared by the API's archive check and the worker's scan."""

import pytest

from imagebatch.core.datasets import check_classes, class_name_problem, image_folder_layout


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
