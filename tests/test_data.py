"""Reading a user's text (rnnreg.data): folders and patterns give regular files only, each once,
whatever links or pipes lie among them — nothing hangs, nothing leaks across splits."""

import os

import pytest

from rnnreg import CharCorpus
from rnnreg.data import _expand_paths

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX file kinds")


def _documents(folder, n=5):
    folder.mkdir(exist_ok=True)
    for k in range(n):
        (folder / f"doc{k}.txt").write_text(f"document {k}: " + "the cat sat. " * 20)
    return folder


def test_a_named_pipe_in_a_folder_is_skipped_not_read(tmp_path):
    folder = _documents(tmp_path / "t", 3)
    os.mkfifo(folder / "a.txt")  # reading it would block for ever
    files = _expand_paths([str(folder)])
    assert sorted(os.path.basename(f) for f in files) == ["doc0.txt", "doc1.txt", "doc2.txt"]
    corpus = CharCorpus.from_files([str(folder)], seed=0)
    assert sum(len(corpus.starts[s]) for s in ("train", "val", "test")) == 3


def test_a_named_pipe_given_by_name_is_refused_naming_it(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")
    with pytest.raises(ValueError, match="pipe.txt: not a regular file"):
        _expand_paths([str(tmp_path / "pipe.txt")])


def test_a_link_loop_reads_every_document_once(tmp_path):
    folder = _documents(tmp_path / "t")
    os.symlink(".", folder / "self")
    files = _expand_paths([str(folder)])
    assert len(files) == 5
    corpus = CharCorpus.from_files([str(folder)], seed=0)
    counts = {s: len(corpus.starts[s]) for s in ("train", "val", "test")}
    assert sum(counts.values()) == 5, counts  # no copy of a document in two splits


def test_two_link_loops_end_at_once(tmp_path):
    folder = _documents(tmp_path / "t")
    os.symlink(".", folder / "a")
    os.symlink(".", folder / "b")
    assert len(_expand_paths([str(folder)])) == 5
    assert len(_expand_paths([str(folder / "**" / "*.txt")])) == 5


def test_a_file_named_twice_or_through_a_link_is_read_once(tmp_path):
    folder = _documents(tmp_path / "t", 3)
    os.symlink(folder / "doc0.txt", folder / "alias.txt")
    files = _expand_paths([str(folder), str(folder / "doc1.txt"), str(folder / "*.txt")])
    assert len(files) == 3


def test_a_recursive_pattern_matches_the_top_folder_too(tmp_path):
    folder = _documents(tmp_path / "t", 2)
    sub = _documents(folder / "sub", 2)
    (sub / "notes.md").write_text("not text")
    files = _expand_paths([str(folder / "**" / "*.txt")])
    assert len(files) == 4


def test_a_hard_link_to_a_document_is_read_once(tmp_path):
    folder = _documents(tmp_path / "t", 3)
    os.link(folder / "doc0.txt", folder / "copy.txt")  # the same inode under another name
    assert len(_expand_paths([str(folder)])) == 3
    corpus = CharCorpus.from_files([str(folder)], seed=0)
    assert sum(len(corpus.starts[s]) for s in ("train", "val", "test")) == 3


def test_empty_files_are_named_as_such(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (folder / name).write_text("")
    with pytest.raises(ValueError, match=r"no text to train on: a.txt, b.txt, c.txt are empty"):
        CharCorpus.from_files([str(folder)])


def test_empty_files_among_documents_are_left_out_and_said(tmp_path):
    folder = _documents(tmp_path / "t", 4)
    (folder / "empty.txt").write_text("")
    corpus = CharCorpus.from_files([str(folder)], seed=0)
    assert sum(len(corpus.starts[s]) for s in ("train", "val", "test")) == 4
    assert "1 empty files left out" in corpus.split


def test_the_data_line_of_thousands_of_files_stays_a_line(tmp_path):
    from rnnreg.runs import load_data

    folder = tmp_path / "many"
    folder.mkdir()
    for k in range(2000):
        (folder / f"document-with-a-long-name-{k:05d}.txt").write_text(f"text {k}\n")
    description, _, corpus = load_data({"data": [str(folder)], "seed": 0})
    assert len(description) < 500, description
    assert "and 197 more" in description  # 200 held out for validation: 3 named


def test_a_held_out_split_far_below_its_share_is_warned_of(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    for k in range(14):  # 13 long documents and one short: by seed, the short one is held out
        (folder / f"doc{k:02d}.txt").write_text(("a long document. " * 400) if k != 6 else "short.\n" * 200)
    with pytest.warns(
        UserWarning, match=r"the (test|validation) split is 1 of 14 files but 1,400 characters"
    ):
        corpus = next(
            c
            for seed in range(50)
            if min((c := CharCorpus.from_files([str(folder)], seed=seed)).val.size, c.test.size) == 1400
        )
    assert corpus.train.size > 50 * 1400
