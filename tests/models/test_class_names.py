"""Class names from what a person has: lines, commas, a JSON list or an {index: name} mapping."""

from __future__ import annotations

import json

import pytest

from models import ModelLoadError
from models.class_names import parse_class_names, read_asset_names


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cat\ndog\n", ["cat", "dog"]),
        ("  cat  \r\n\r\ndog\r\n", ["cat", "dog"]),  # Windows line ends, blank lines, spaces
        ("cat, dog,bird", ["cat", "dog", "bird"]),  # typed on one line
        ("tabby, tabby cat\nEgyptian cat", ["tabby, tabby cat", "Egyptian cat"]),  # commas inside names
        ('["cat", " dog "]', ["cat", "dog"]),
        ('{"1": "dog", "0": "cat"}', ["cat", "dog"]),
        ('{"0": ["n02123045", "tabby"], "1": ["n02124075", "Egyptian cat"]}', ["tabby", "Egyptian cat"]),  # Keras style
        ("", []),
        ("   \n ", []),
    ],
)
def test_parse_class_names(text, expected):
    assert parse_class_names(text) == expected
    assert parse_class_names(text.encode("utf-8")) == expected


def test_utf8_bom_and_non_ascii_names():
    assert parse_class_names("\ufeffchat\nchien\nµ-Zelle\n".encode()) == ["chat", "chien", "µ-Zelle"]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff\xfe\x00bad", "not UTF-8"),
        (b'["cat", "dog"', "look like JSON but do not parse"),
        (b'{"a": "cat"}', "integer keys"),
        (b'{"0": "cat", "2": "dog"}', "without gaps"),
        (b"[1, 2, 3]", "list of strings"),
        (b"x" * 1_000_001, "larger than 1 MB"),
    ],
)
def test_bad_class_name_files_are_clear_errors(data, words):
    with pytest.raises(ModelLoadError, match=words):
        parse_class_names(data)


def test_shipped_class_name_files():
    imagenet = read_asset_names("imagenet_classes.txt")
    assert len(imagenet) == 1000 and len(set(imagenet)) == 1000
    assert imagenet[0] == "tench"
    fashion = read_asset_names("fashion_mnist_classes.txt")
    assert len(fashion) == 10 and fashion[0].lower().startswith("t-shirt") and fashion[9].lower() == "ankle boot"
    assert json.loads(json.dumps(fashion)) == fashion
