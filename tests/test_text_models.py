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
