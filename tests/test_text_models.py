"""A model out: vocabulary that travels, logits, generation, model files, `rnnreg sample`."""
import numpy as np
import pytest

import rnnreg
from rnnreg import CharCorpus, RegularizedLSTM, Vocabulary, load_model, save_model
from rnnreg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rnnreg.cli import main
from rnnreg.data import UNKNOWN
from rnnreg.training import TrainConfig, fit

TEXT = "the cat sat on the mat. the dog sat on the log. " * 20 + "zq"


def _corpus(min_count=1):
    return CharCorpus(TEXT, "the rat sat. ~", "a cat on a mat.", name="toy", min_count=min_count)


def test_vocabulary_round_trip_and_unknown_symbol():
    corpus = _corpus()
    vocab = corpus.vocabulary
    assert vocab.chars[0] == UNKNOWN and len(vocab) == corpus.vocab_size
    ids = vocab.encode("the cat~")
    assert ids[-1] == 0                                      # "~" was never in training
    assert vocab.decode(ids) == "the cat\ufffd"
    assert Vocabulary(vocab.to_list()) == vocab
    rare = _corpus(min_count=2)                              # "z" and "q" seen once: unknown
    assert "z" not in rare.vocabulary.index and (rare.train == 0).sum() == 2
    for bad in ([], ["a", UNKNOWN], [UNKNOWN, "a", "a"], [UNKNOWN, "ab"], [UNKNOWN, 3]):
        with pytest.raises(ValueError):
            Vocabulary(bad)


def _trained_model(tmp_path=None, epochs=3):
    corpus = _corpus()
    model = RegularizedLSTM(corpus.vocab_size, 24, seed=0)
    model.vocabulary = corpus.vocabulary
    path = None if tmp_path is None else str(tmp_path / "ck.npz")
    fit(model, corpus.train, corpus.val, TrainConfig(epochs=epochs, lr=2e-2, progress=False,
                                                     checkpoint_path=path), log=None)
    return model, corpus, path


def test_logits_carry_state_like_one_long_sequence():
    model, corpus, _ = _trained_model()
    ids = corpus.train[:30]
    whole, state = model.logits(ids)
    first, s1 = model.logits(ids[:12])
    rest, s2 = model.logits(ids[12:], s1)
    np.testing.assert_allclose(np.concatenate([first, rest]), whole, rtol=1e-12, atol=1e-12)
    for a, b in zip(s2, state):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    batch, _ = model.logits(np.stack([ids, ids]))
    assert batch.shape == (2, 30, corpus.vocab_size)


def test_generation_is_reproducible_and_respects_top_k():
    model, corpus, _ = _trained_model()
    a = model.generate("the ", 60, temperature=0.8, rng=3)
    b = model.generate("the ", 60, temperature=0.8, rng=3)
    c = model.generate("the ", 60, temperature=0.8, rng=4)
    assert a == b and a != c and len(a) <= 60
    greedy = model.generate(corpus.vocabulary.encode("the "), 20, top_k=1, rng=0)
    again = model.generate(corpus.vocabulary.encode("the "), 20, top_k=1, rng=99)
    np.testing.assert_array_equal(greedy, again)             # top_k=1 is deterministic
    with pytest.raises(ValueError, match="vocabulary"):
        RegularizedLSTM(5, 4, seed=0).generate("abc", 3)
    with pytest.raises(ValueError, match="temperature"):
        model.generate("the ", 3, temperature=0)


def test_model_files_and_checkpoints_carry_the_vocabulary(tmp_path):
    model, corpus, ckpt = _trained_model(tmp_path)
    path = str(tmp_path / "model.npz")
    save_model(model, path)
    for source in (path, ckpt):
        loaded = load_model(source)
        assert loaded.vocabulary == corpus.vocabulary
    loaded = load_model(path)
    for name, value in model.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)
    assert loaded.generate("the ", 30, rng=5) == model.generate("the ", 30, rng=5)
    assert "optimizer" not in load_checkpoint(path)
    payload = load_checkpoint(path)
    payload["vocabulary"] = payload["vocabulary"][:-1]       # one symbol short of the model
    save_checkpoint(path, payload)
    with pytest.raises(CheckpointError, match="vocabulary"):
        load_model(path)


def test_sample_command_prints_the_same_text_for_the_same_seed(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--train-size", "4000", "--eval-size", "1000", "--hidden", "16",
                 "--epochs", "1", "--no-progress", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    ckpt = str(out / "train.checkpoint.npz")
    texts = []
    for seed in (7, 7, 8):
        assert main(["sample", ckpt, "--prime", "The ", "--length", "40", "--seed", str(seed),
                     "--temperature", "0.9", "--top-k", "10"]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] != texts[2] and texts[0].startswith("The ")
    assert main(["train", "--data", "synthetic", "--train-size", "40", "--hidden", "8",
                 "--epochs", "1", "--no-progress", "--quiet", "--out", str(tmp_path / "s")]) == 0
    assert main(["sample", str(tmp_path / "s" / "train.checkpoint.npz")]) == 2
    assert "no vocabulary" in capsys.readouterr().err


def _write_books(folder, count=6):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "log", "and"]
    for k in range(count):
        lines = [" ".join(rng.choice(words, 8)) + "." for _ in range(60)]
        (folder / f"book{k:02d}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_a_folder_of_text_files_is_split_by_document_fixed_by_the_seed(tmp_path):
    folder = _write_books(tmp_path / "books")
    (folder / "notes.md").write_text("not a .txt file")
    a = CharCorpus.from_files(folder, seed=0)
    b = CharCorpus.from_files(str(folder), seed=0)
    c = CharCorpus.from_files(folder, seed=5)
    np.testing.assert_array_equal(a.val, b.val)
    assert "by document (seed 0): 4 files train, 1 validation" in a.split
    assert a.split != c.split or not np.array_equal(a.val, c.val)
    total = sum(len(p.read_text()) for p in folder.glob("*.txt"))
    assert a.train.size + a.val.size + a.test.size == total + 2 * (6 - 3)   # "\n\n" joins
    glob_corpus = CharCorpus.from_files(str(folder / "book0[0-2].txt"))
    assert glob_corpus.split.startswith("by document")
    single = CharCorpus.from_files(folder / "book00.txt")
    assert single.split.startswith("by line") and single.val.size > 0 and single.test.size > 0


def test_text_that_is_not_utf8_or_not_there_is_refused_naming_the_file(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait\n".encode("latin-1") * 3)
    with pytest.raises(ValueError, match=r"latin1.txt: not UTF-8 text \(byte 3 is 0xe9\)"):
        CharCorpus.from_files(bad)
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        CharCorpus.from_files(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no text files"):
        CharCorpus.from_files(tmp_path / "empty")


def test_train_and_sample_on_your_own_text_from_the_command_line(tmp_path, capsys):
    folder = _write_books(tmp_path / "books")
    out = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--hidden", "16", "--epochs", "2",
                 "--no-progress", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "split by document (seed 0)" in printed
    assert main(["sample", str(out / "train.checkpoint.npz"), "--prime", "the ", "--length",
                 "30", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("the ") and set(text.strip()) <= set("thecasonmdgrul. \n")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe oops")
    assert main(["train", "--data", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "bad.txt: not UTF-8" in capsys.readouterr().err


def test_fit_takes_a_corpus():
    corpus = CharCorpus.from_text(TEXT * 2 + "\n".join(["the mat sat"] * 30), name="toy")
    model = RegularizedLSTM(corpus.vocab_size, 12, seed=0)
    history = fit(model, corpus, config=TrainConfig(epochs=2, progress=False), log=None)
    assert model.vocabulary == corpus.vocabulary
    assert history["test_loss"] is not None and len(history["val_loss"]) == 2
