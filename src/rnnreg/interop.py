"""Take a model to PyTorch and back.

:func:`to_torch` turns a :class:`~rnnreg.RegularizedLSTM` (or :class:`~rnnreg.RegularizedGRU`)
into a ``torch.nn.Module`` built from the standard layers — ``nn.Embedding`` (or one-hot inputs),
``nn.LSTM`` (``nn.GRU``), ``nn.Linear`` — whose ``forward(tokens, state=None)`` returns
``(logits, state)`` equal to ``model.logits`` (to rounding: 1e-10 in float64). :func:`from_torch`
takes such a module back, or any module a user built from one ``nn.LSTM`` or ``nn.GRU`` and one
``nn.Linear`` (and optionally one ``nn.Embedding``).

The GRU's conventions are PyTorch's (gate order r, z, n; the reset gate after the recurrent
product); its two biases become ``b`` (``bias_ih`` plus the r and z blocks of ``bias_hh``) and
``bn`` (the n block of ``bias_hh``). The LSTM's differ in two places, both handled here:

* gate order: rnnreg's 4H axis is (i, f, o, g) (:data:`rnnreg.GATE_ORDER`); PyTorch's is
  (i, f, g, o);
* biases: PyTorch adds two (``bias_ih`` and ``bias_hh``); rnnreg has their sum. Exporting puts
  the sum in ``bias_ih`` and zeros in ``bias_hh``.

Layer-normalized LSTMs, weight-drop and zoneout (which changes evaluation too: the state is
``z·previous + (1 − z)·new``) have no ``nn.LSTM`` equivalent and raise ``ValueError`` naming
them. Dropout exports as ``nn.Dropout`` layers with the same rates (active in
``module.train()``, drawn by PyTorch, so not the same masks). Tied weights export tied: the
head's weight *is* the embedding's parameter. What acts only in training and only through the
loss or the masks — embedding dropout, AR, TAR — is not part of a module: the exported module
computes what the model computes in evaluation. torch is optional: ``pip install torch``.
"""

import numpy as np

from ._conventions import GATE_ORDER

__all__ = ["to_torch", "from_torch"]

# rnnreg block k holds gate GATE_ORDER[k]; PyTorch's blocks are (i, f, g, o).
TORCH_GATE_ORDER = ("i", "f", "g", "o")
_TO_TORCH = [GATE_ORDER.index(g) for g in TORCH_GATE_ORDER]  # torch block j <- ours _TO_TORCH[j]
_FROM_TORCH = [TORCH_GATE_ORDER.index(g) for g in GATE_ORDER]  # our block k <- torch's


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise ImportError("PyTorch interop needs torch: pip install torch") from exc
    return torch


def _reorder(blocks, order, H):
    """Rows (4H, ...) or entries (4H,) regrouped by gate block in ``order``."""
    return np.concatenate([blocks[k * H : (k + 1) * H] for k in order])


def _module_class():
    torch = _torch()
    nn = torch.nn
    _RECURRENT = {"lstm": nn.LSTM, "gru": nn.GRU}

    class RNNRegLM(nn.Module):  # type: ignore[name-defined]
        """An rnnreg language model in PyTorch layers: tokens (N, T) int64 -> logits (N, T, V).

        ``embedding`` is an ``nn.Embedding`` or None (one-hot inputs of ``vocab_size``);
        ``lstm`` an ``nn.LSTM(batch_first=True)``; ``head`` an ``nn.Linear``. The dropout layers
        reproduce rnnreg's non-recurrent dropout (inputs when embedded, between layers, output)."""

        def __init__(
            self,
            vocab_size,
            hidden_size,
            output_size,
            num_layers=1,
            embedding_size=None,
            dropout=0.0,
            dtype=torch.float64,
            *,
            input_dropout=None,
            between_dropout=None,
            output_dropout=None,
            cell="lstm",
        ):
            super().__init__()
            self.vocab_size = vocab_size
            self.embedding = (
                None if embedding_size is None else nn.Embedding(vocab_size, embedding_size, dtype=dtype)
            )
            rate = lambda given: dropout if given is None else given  # AWD-LSTM's own rates
            self.input_dropout = nn.Dropout(rate(input_dropout))
            recurrent = _RECURRENT[cell](
                vocab_size if embedding_size is None else embedding_size,
                hidden_size,
                num_layers=num_layers,
                batch_first=True,
                dropout=rate(between_dropout) if num_layers > 1 else 0.0,
                dtype=dtype,
            )
            setattr(self, cell, recurrent)  # module.lstm or module.gru
            self.output_dropout = nn.Dropout(rate(output_dropout))
            self.head = nn.Linear(hidden_size, output_size, dtype=dtype)

        @property
        def rnn(self):
            """The recurrent layers (``self.lstm`` or ``self.gru``)."""
            return self.lstm if hasattr(self, "lstm") else self.gru

        def forward(self, tokens, state=None):
            dtype = self.head.weight.dtype
            if self.embedding is None:
                x = nn.functional.one_hot(tokens, self.vocab_size).to(dtype)
            else:
                x = self.input_dropout(self.embedding(tokens))
            out, state = self.rnn(x, state)
            return self.head(self.output_dropout(out)), state

    return RNNRegLM


def _sequence_module_class():
    torch = _torch()
    nn = torch.nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    _RECURRENT = {"lstm": nn.LSTM, "gru": nn.GRU}

    class RNNRegSequenceModel(nn.Module):  # type: ignore[name-defined]
        """An rnnreg model of real-valued sequences in PyTorch layers: ``forward(x (N, T, D),
        lengths=None)`` -> (N, outputs) for classify (logits) and regress, (N, T, outputs)
        for forecast. Variable lengths run as packed sequences; the standardization the model
        keeps is two buffers applied first."""

        def __init__(
            self,
            input_size,
            hidden_size,
            output_size,
            num_layers,
            task,
            pooling,
            dtype,
            dropouts,
            cell="lstm",
        ):
            super().__init__()
            self.task, self.pooling = task, pooling
            input_dropout, between_dropout, output_dropout = dropouts
            self.input_dropout = nn.Dropout(input_dropout)
            recurrent = _RECURRENT[cell](
                input_size,
                hidden_size,
                num_layers=num_layers,
                batch_first=True,
                dropout=between_dropout if num_layers > 1 else 0.0,
                dtype=dtype,
            )
            setattr(self, cell, recurrent)
            self.output_dropout = nn.Dropout(output_dropout)
            self.head = nn.Linear(hidden_size, output_size, dtype=dtype)
            self.register_buffer("input_mean", torch.zeros(input_size, dtype=dtype))
            self.register_buffer("input_scale", torch.ones(input_size, dtype=dtype))

        @property
        def rnn(self):
            return self.lstm if hasattr(self, "lstm") else self.gru

        def forward(self, x, lengths=None):
            x = self.input_dropout((x - self.input_mean) / self.input_scale)
            N, T = x.shape[:2]
            if lengths is None:
                lengths = torch.full((N,), T, dtype=torch.int64)
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, h_n = self.rnn(packed)
            if isinstance(h_n, tuple):  # the LSTM's (h, c)
                h_n = h_n[0]
            seq, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
            if self.task == "forecast":
                return self.head(self.output_dropout(seq))
            if self.pooling == "last":
                return self.head(self.output_dropout(h_n[-1]))
            valid = (torch.arange(T)[None, :] < lengths[:, None]).to(seq.dtype).unsqueeze(-1)
            pooled = (seq * valid).sum(1) / valid.sum(1)
            return self.head(self.output_dropout(pooled))

    return RNNRegSequenceModel


def to_torch(model):
    """A ``torch.nn.Module`` computing what ``model`` computes (needs torch).

    Parameters
    ----------
    model : RegularizedLSTM
        Without layer norm, weight-drop or DropConnect (``nn.LSTM`` has none of them).

    Returns
    -------
    torch.nn.Module
        ``nn.Embedding`` (or one-hot inputs), ``nn.LSTM``, ``nn.Linear`` in the model's dtype;
        ``forward(tokens (N, T) int64, state=None)`` returns ``(logits (N, T, V), (h, c))``, equal
        to ``model.logits`` to rounding. It carries ``module.vocabulary``.

    Raises
    ------
    ValueError
        For an LN-LSTM, weight-drop, DropConnect or zoneout model.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from rnnreg import RegularizedLSTM, to_torch
    >>> model = RegularizedLSTM(10, 8, seed=0)
    >>> module = to_torch(model)
    >>> tokens = np.array([[1, 2, 3]])
    >>> logits, (h, c) = module(torch.from_numpy(tokens))
    >>> float(np.abs(logits.detach().numpy() - model.logits(tokens)[0]).max()) < 1e-10
    True
    """
    torch = _torch()
    if model.use_layer_norm:
        raise ValueError(
            "an LN-LSTM has no nn.LSTM equivalent: layer-normalized models cannot "
            "be exported to standard PyTorch layers"
        )
    for name, what in (("weight_keep_prob", "weight-drop"), ("input_weight_keep_prob", "DropConnect on Wx")):
        if getattr(model, name) < 1.0:
            raise ValueError(
                f"{what} ({name} < 1) has no nn.LSTM equivalent; build the model with {name}=1 to export it"
            )
    zoned = [name for name in ("zoneout_hidden", "zoneout_cell") if getattr(model, name) > 0]
    if zoned:
        raise ValueError(
            f"zoneout ({', '.join(zoned)} > 0) has no nn.LSTM equivalent: it "
            "changes the recurrence in evaluation too (z·previous + (1 − z)·new)"
        )
    dtype = torch.float64 if model.dtype == np.float64 else torch.float32
    H, L = model.hidden_size, model.num_layers
    config = model.model_config
    if config.task != "next-token":
        module = _sequence_module_class()(
            config.input_size,
            H,
            config.output_size,
            L,
            config.task,
            config.pooling,
            dtype,
            (1.0 - config.input_keep, 1.0 - config.between_keep, 1.0 - config.output_keep),
            config.cell,
        )
        _copy_lstm_and_head(module, model, torch)
        if model.standardizer is not None:
            with torch.no_grad():
                module.input_mean.copy_(torch.from_numpy(model.standardizer.mean))
                module.input_scale.copy_(torch.from_numpy(model.standardizer.scale))
        module.eval()
        return module
    module = _module_class()(
        model.vocab_size,
        H,
        model.output_size,
        L,
        model.embedding_size,
        1.0 - config.dropout_keep_prob,
        dtype,
        input_dropout=1.0 - config.input_keep,
        between_dropout=1.0 - config.between_keep,
        output_dropout=1.0 - config.output_keep,
        cell=config.cell,
    )
    p = {name: np.asarray(a, np.float64) for name, a in model.params.items()}
    with torch.no_grad():
        if module.embedding is not None:
            module.embedding.weight.copy_(torch.from_numpy(p["embedding"]))
    _copy_lstm_and_head(module, model, torch)
    module.eval()
    module.rnnreg_vocabulary = model.vocabulary  # travels along (None for token-id models)
    return module


def _copy_lstm_and_head(module, model, torch):
    """The model's recurrent layers into ``module.lstm`` (PyTorch's gate order, one bias) or
    ``module.gru`` (the same gate order; ``bias_hh`` holds the candidate's ``bn``), and its output
    projection into ``module.head`` (tied: the embedding's own parameter)."""
    H, L = model.hidden_size, model.num_layers
    gru = model.model_config.cell == "gru"
    order = list(range(3)) if gru else _TO_TORCH
    p = {name: np.asarray(a, np.float64) for name, a in model.params.items()}
    with torch.no_grad():
        for layer in range(L):
            W = p[f"W{layer}"]
            D = W.shape[0] - H
            rnn = module.rnn
            getattr(rnn, f"weight_ih_l{layer}").copy_(torch.from_numpy(_reorder(W[:D].T, order, H)))
            getattr(rnn, f"weight_hh_l{layer}").copy_(torch.from_numpy(_reorder(W[D:].T, order, H)))
            getattr(rnn, f"bias_ih_l{layer}").copy_(torch.from_numpy(_reorder(p[f"b{layer}"], order, H)))
            getattr(rnn, f"bias_hh_l{layer}").zero_()
            if gru:
                getattr(rnn, f"bias_hh_l{layer}")[2 * H :] = torch.from_numpy(p[f"bn{layer}"])
        if model.tie_weights:  # one parameter, as in the model
            module.head.weight = module.embedding.weight
        else:
            module.head.weight.copy_(torch.from_numpy(p["Why"].T))
        module.head.bias.copy_(torch.from_numpy(p["by"]))


def _find(module, kind):
    found = [m for m in module.modules() if isinstance(m, kind)]
    return found


def from_torch(module, vocabulary=None, seed=None, *, task=None, pooling="last"):
    """A :class:`~rnnreg.RegularizedLSTM` with the weights of a PyTorch module.

    Parameters
    ----------
    module : torch.nn.Module
        One made by :func:`to_torch`, or any module holding exactly one ``nn.LSTM``
        (unidirectional, no projection), one ``nn.Linear`` on its output and at most one
        ``nn.Embedding`` (without one, inputs are taken as one-hot over ``lstm.input_size``
        symbols). The two PyTorch biases are summed; the gate blocks reordered.
    vocabulary : Vocabulary, optional
        For the model (default: the one to_torch attached, if any).

    The dropout the module declares comes along: its recurrent module's ``dropout`` (between
    layers) and the ``input_dropout`` / ``output_dropout`` layers :func:`to_torch` makes, as keep
    probabilities. What no module holds (recurrent masks, zoneout, AR/TAR) is not read.
    seed : int or Generator, optional
        For the model's dropout masks.
    task : {"classify", "regress", "forecast"}, optional
        A module of real-valued sequences (its nn.LSTM reads ``input_size`` features; no
        embedding): what its head gives — one output per sequence from the last step
        (``pooling``), or one per step. A module made by :func:`to_torch` from such a model
        says so itself, and brings its input standardization.
    pooling : {"last", "mean"}
        With ``task`` classify or regress.

    Returns
    -------
    RegularizedLSTM

    Examples
    --------
    >>> import torch
    >>> from rnnreg import from_torch
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.embed = torch.nn.Embedding(12, 6)
    ...         self.lstm = torch.nn.LSTM(6, 8, batch_first=True, dtype=torch.float64)
    ...         self.head = torch.nn.Linear(8, 12, dtype=torch.float64)
    >>> model = from_torch(Net().double())
    >>> model.vocab_size, model.hidden_size, model.embedding_size
    (12, 8, 6)
    """
    torch = _torch()
    from .model import build_model

    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise TypeError(f"from_torch takes a torch.nn.Module, got {type(module).__name__}")
    _refuse_what_is_not_mapped(module, nn)
    lstms, heads, embeddings = (_find(module, k) for k in ((nn.LSTM, nn.GRU), nn.Linear, nn.Embedding))
    if len(lstms) != 1 or len(heads) != 1 or len(embeddings) > 1:
        raise ValueError(
            f"from_torch needs one nn.LSTM or nn.GRU, one nn.Linear and at most one "
            f"nn.Embedding; the module has {len(lstms)}, {len(heads)}, "
            f"{len(embeddings)}"
        )
    lstm, head = lstms[0], heads[0]
    cell = "gru" if isinstance(lstm, nn.GRU) else "lstm"
    embedding = embeddings[0] if embeddings else None
    if lstm.bidirectional or getattr(lstm, "proj_size", 0):
        raise ValueError(f"a bidirectional or projected nn.{type(lstm).__name__} has no rnnreg equivalent")
    H, L = lstm.hidden_size, lstm.num_layers
    if head.in_features != H:
        raise ValueError(f"the nn.Linear reads {head.in_features} features, the {cell.upper()} gives {H}")
    if embedding is not None and embedding.embedding_dim != lstm.input_size:
        raise ValueError("the nn.Embedding's size does not match the LSTM's input size")
    if embedding is not None and embedding.max_norm is not None:
        raise ValueError(
            f"nn.Embedding(max_norm={embedding.max_norm}) renormalizes the rows it "
            "looks up: rnnreg's embedding has no equivalent"
        )
    if not lstm.batch_first:
        raise ValueError(
            "an nn.LSTM with batch_first=False reads (T, N, ...) inputs; rnnreg "
            "maps batch-first modules (batch_first=True)"
        )
    dtype = lstm.weight_ih_l0.dtype
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"weights must be float32 or float64, got {dtype}")
    vocab_size = embedding.num_embeddings if embedding is not None else lstm.input_size
    tied = embedding is not None and head.weight is embedding.weight
    task = getattr(module, "task", None) if task is None and hasattr(module, "input_mean") else task
    pooling = getattr(module, "pooling", pooling)
    dropout = _dropout_rates(module, lstm, nn)
    if task is not None and task != "next-token":
        if embedding is not None:
            raise ValueError(
                f"task {task!r} reads real-valued vectors: the module's nn.Embedding has no place"
            )
        model = build_model(
            cell=cell,
            input_size=lstm.input_size,
            hidden_size=H,
            output_size=head.out_features,
            task=task,
            pooling=pooling,
            num_layers=L,
            seed=seed,
            dtype=np.float64 if dtype == torch.float64 else np.float32,
            **dropout,
        )
    else:
        model = build_model(
            cell=cell,
            vocab_size=vocab_size,
            hidden_size=H,
            output_size=head.out_features,
            num_layers=L,
            embedding_size=None if embedding is None else lstm.input_size,
            seed=seed,
            dtype=np.float64 if dtype == torch.float64 else np.float32,
            tie_weights=tied,
            **dropout,
        )
    as_np = lambda t: t.detach().cpu().to(torch.float64).numpy()
    state = {}
    if embedding is not None:
        state["embedding"] = as_np(embedding.weight)
    order = list(range(3)) if cell == "gru" else _FROM_TORCH
    for layer in range(L):
        w_ih = as_np(getattr(lstm, f"weight_ih_l{layer}"))
        w_hh = as_np(getattr(lstm, f"weight_hh_l{layer}"))
        bias = np.zeros(len(order) * H)
        if lstm.bias:
            b_hh = as_np(getattr(lstm, f"bias_hh_l{layer}")).copy()  # as_np may share the memory
            if cell == "gru":  # the candidate's recurrent bias stays apart: the reset gate scales it
                state[f"bn{layer}"] = b_hh[2 * H :].copy()
                b_hh[2 * H :] = 0.0
            bias = as_np(getattr(lstm, f"bias_ih_l{layer}")) + b_hh
        elif cell == "gru":
            state[f"bn{layer}"] = np.zeros(H)
        state[f"W{layer}"] = np.concatenate((_reorder(w_ih, order, H).T, _reorder(w_hh, order, H).T))
        state[f"b{layer}"] = _reorder(bias, order, H)
    if not tied:
        state["Why"] = as_np(head.weight).T
    state["by"] = as_np(head.bias) if head.bias is not None else np.zeros(head.out_features)
    model.load_state_dict(state)
    if not model.model_config.tokens:
        mean, scale = getattr(module, "input_mean", None), getattr(module, "input_scale", None)
        if mean is not None and scale is not None:
            from .sequences import Standardizer

            mean, scale = as_np(mean), as_np(scale)
            if not (np.all(mean == 0) and np.all(scale == 1)):
                model.standardizer = Standardizer(mean, scale)
        _check_sequences_on_a_probe(module, model, torch)
        return model
    model.vocabulary = vocabulary if vocabulary is not None else getattr(module, "rnnreg_vocabulary", None)
    _check_on_a_probe(module, model, torch)
    return model


def _check_sequences_on_a_probe(module, model, torch):
    """A sequence model must compute what the module computes on a probe of two sequences of
    different lengths (a module without a forward of its own: checked by its structure)."""
    if type(module).forward is torch.nn.Module.forward:
        return
    x = np.random.default_rng(0).standard_normal((2, 5, model.input_size)).astype(model.dtype)
    lengths = np.array([5, 3])
    x[1, 3:] = 0
    _, expected, _ = model.forward_batch(x, lengths=lengths)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.from_numpy(x), torch.from_numpy(lengths))
    except Exception as exc:
        raise ValueError(
            "from_torch could not check the converted model: the module's forward did not take "
            f"(x (N, T, features), lengths) ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        module.train(was_training)
    got = np.asarray(
        (out[0] if isinstance(out, (tuple, list)) else out).detach().cpu().to(torch.float64).numpy()
    )
    if model.model_config.task == "forecast":
        got, expected = got[0], expected[0]  # the full-length row (padding's outputs differ)
    tolerance = 1e-8 if model.dtype == np.float64 else 1e-4
    if got.shape != expected.shape or not np.allclose(got, expected, atol=tolerance, rtol=tolerance):
        raise ValueError(
            "from_torch: the converted model does not compute what the module computes on a probe"
        )


# Modules from_torch maps (or that compute nothing in evaluation), and containers of them.
_MAPPED = ("LSTM", "GRU", "Linear", "Embedding", "Dropout", "Identity")
_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


def _dropout_rates(module, rnn, nn):
    """The keep probabilities of the dropout the module declares where rnnreg's would act: the
    recurrent module's own ``dropout`` (between layers) and the ``input_dropout`` and
    ``output_dropout`` layers to_torch makes — one ``dropout_keep_prob`` when they agree, else
    each rate. Recurrent masks, zoneout and penalties are not in a module and cannot be read."""
    rates = {}
    for setting, layer in (("input_keep_prob", "input_dropout"), ("output_keep_prob", "output_dropout")):
        found = getattr(module, layer, None)
        if isinstance(found, nn.Dropout):
            rates[setting] = float(found.p)
    if rnn.num_layers > 1:
        rates["between_keep_prob"] = float(rnn.dropout)
    if not any(rates.values()):
        return {}
    if len(set(rates.values())) == 1:
        return {"dropout_keep_prob": 1.0 - next(iter(rates.values()))}
    return {setting: 1.0 - p for setting, p in rates.items() if p > 0}


def _refuse_what_is_not_mapped(module, nn):
    """Refuse, by name, any torch module inside ``module`` that from_torch cannot map (a layer
    norm between the LSTM and the head, an activation, ...): dropping it silently would give
    another model."""
    mapped = (
        nn.LSTM,
        nn.GRU,
        nn.Linear,
        nn.Embedding,
        nn.Dropout,
        nn.Identity,
        nn.Sequential,
        nn.ModuleList,
        nn.ModuleDict,
    )
    for name, child in module.named_modules():
        if isinstance(child, mapped):
            continue
        user_made = type(child).__module__.split(".")[0] != "torch"
        if user_made and (child is module or next(child.parameters(recurse=False), None) is None):
            continue  # a user's container of layers: what its forward does is checked on a probe
        raise ValueError(
            f"from_torch maps {', '.join(_MAPPED)} layers (in containers); the "
            f"module holds {type(child).__name__} at {name or 'its top'!r}, which "
            "it cannot map"
        )


def _check_on_a_probe(module, model, torch):
    """The converted model must compute what the module computes: logits on a probe input,
    compared before the model is returned (a module without a forward of its own is a plain
    container of the mapped layers, checked by its structure alone)."""
    if type(module).forward is torch.nn.Module.forward:
        return
    tokens = np.random.default_rng(0).integers(0, model.vocab_size, (2, 5))
    expected, _ = model.logits(tokens)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.from_numpy(tokens))
    except Exception as exc:  # a forward that takes other inputs than token ids
        raise ValueError(
            f"from_torch could not check the converted model: the module's "
            f"forward did not take token ids (N, T) ({type(exc).__name__}: "
            f"{exc})"
        ) from exc
    finally:
        module.train(was_training)
    logits = out[0] if isinstance(out, (tuple, list)) else out
    logits = np.asarray(logits.detach().cpu().to(torch.float64).numpy())
    if logits.shape != expected.shape:
        raise ValueError(
            f"from_torch: the module's forward gives logits of shape "
            f"{logits.shape}, the converted model {expected.shape}: the module does "
            "something the converter does not map"
        )
    tolerance = 1e-9 if model.dtype == np.float64 else 1e-4
    worst = float(np.abs(logits - expected).max())
    if not worst <= tolerance * max(1.0, float(np.abs(expected).max())):
        raise ValueError(
            f"from_torch: the converted model's logits differ from the module's by "
            f"up to {worst:.3g} on a probe input: the module's forward does "
            "something the converter does not map"
        )
