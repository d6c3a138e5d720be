"""Schemas of a run directory's documents: ``config.json`` (:class:`RunConfig`) and each line of
``metrics.jsonl`` (:class:`MetricsRecord`).

What the bounds protect (the readers of ``config.json``, and what they do with it):

* ``load_run`` (attack, analyze, export) passes ``model`` to ``create_model``: every size field is a strict
  integer or a finite float within a bound, so a damaged file cannot ask for 10^12 time steps or a model of
  10^9-wide layers. The bounds here are sanity bounds; the tighter limits of ``evrobust train`` (``T <=
  1024``, ``width <= 16``) and the parameter count on PyTorch's meta device stay in ``load_run``, which
  states them in their own words.
* ``evrobust attack`` / ``analyze`` reopen ``data.store`` (else ``data.name``) and compare ``data``'s shape
  fields between a target and a source run; ``defaults`` compares ``data``, ``model`` and ``train`` between
  runs and rebuilds an ``evrobust train`` command from ``train``; ``report`` and ``export`` print
  ``defense``, ``data.dataset`` and ``model.name``. Each of those sections is an object when present, and
  each field they read has one JSON type (a number is never a string, ``true`` never a number).
* ``identity`` and ``train`` hold the options of ``evrobust train``, whose own validation
  (``pipelines/train/config.py``) decides what a run may use; here they are only typed and kept within
  sanity bounds, so that a reader can neither crash on them nor turn them into something huge.

Every field is optional except ``format`` (a hand-made minimal run still reads) and a metrics record's
``epoch``; unknown fields are allowed, so a document written by a newer evrobust still reads. Bounds that
mirror a limit elsewhere are named so, and ``tests/safeio/test_schema_run.py`` keeps them in step.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, Strict, StrictBool

from evrobust.safeio.schemas.common import Count, Document, Finite, Fraction, Name, Percent

__all__ = [
    "DataInfo",
    "DefenseInfo",
    "MetricsRecord",
    "ModelConfig",
    "RunConfig",
    "RuntimeInfo",
    "TrainOptions",
]

MAX_T = 10_000
"""Time steps / event frames a document may state (``evrobust train`` and stores allow 1,024)."""
MAX_WIDTH = 64.0
"""Channel multiplier a document may state (``evrobust train`` allows 16)."""
MAX_EPOCHS = 1_000_000
"""Epochs a document may state (``evrobust train`` allows 100,000)."""
MAX_CHANNELS = 1 << 16
"""Input channels (2 for event frames, 3 for RGB)."""
MAX_SIDE = 1 << 16
"""Input side in pixels (event stores allow 1,024; an image store's sample holds at most 2^28 values)."""
MAX_CLASSES = 10**9
"""Classes: a sanity bound only. The real guard is ``load_run``'s parameter count on the meta device, which
refuses a head of 10^8 classes before allocating it (``tests/reliability/test_fuzz_readers.py``)."""
MAX_DEPTH = 10_000
"""A WRN's ``depth`` (6n+4; the paper's is 16): bounds the number of blocks built, even on the meta device."""
MAX_WIDEN = 10_000
"""A WRN's ``widen`` factor (the paper's is 4); the parameter count refuses a model too wide to allocate."""
MAX_BATCH = 1 << 20
"""Batch size (``evrobust train`` allows 65,536)."""
MAX_STEPS = 1_000_000
"""PGD iterations of adversarial training (``evrobust train`` allows 10,000)."""
MAX_PATH = 4096
"""A path (PATH_MAX on Linux)."""

StrictFinite = Annotated[Finite, Strict()]
"""A finite JSON number (an integer is accepted; ``true`` and ``"1.5"`` are not)."""
NonNegative = Annotated[float, Field(allow_inf_nan=False, ge=0.0, le=1e300, strict=True)]
"""A finite JSON number >= 0."""
StrictPercent = Annotated[Percent, Strict()]
"""A finite JSON number in [0, 100]."""
StrictFraction = Annotated[Fraction, Strict()]
"""A finite JSON number in [0, 1]."""
Text = Annotated[Name, Strict()]
"""A JSON string of at most 512 characters (a name, a backend, a gradient spec, a date)."""
PathText = Annotated[str, Field(max_length=MAX_PATH, pattern=r"^[^\x00]*$", strict=True)]
"""A path: at most 4,096 characters and no NUL byte (which no file system accepts)."""
TimeSteps = Annotated[int, Field(ge=1, le=MAX_T, strict=True)]
Width = Annotated[float, Field(allow_inf_nan=False, gt=0.0, le=MAX_WIDTH, strict=True)]
Epochs = Annotated[int, Field(ge=0, le=MAX_EPOCHS, strict=True)]
Positive = Annotated[int, Field(ge=1, le=2**63 - 1, strict=True)]
"""An integer >= 1 within int64 (a sample limit above a split's size means the whole split)."""
Channels = Annotated[int, Field(ge=1, le=MAX_CHANNELS, strict=True)]
Classes = Annotated[int, Field(ge=1, le=MAX_CLASSES, strict=True)]
Side = Annotated[int, Field(ge=1, le=MAX_SIDE, strict=True)]
ChannelStats = Annotated[list[StrictFinite], Field(max_length=MAX_CHANNELS)]


class _Section(Document):
    """Strict JSON types throughout: a reader never meets ``"4"`` where it expects 4, nor ``1`` for true.

    A field with a default other than None may be absent but not null: the defaults are those of the code
    that wrote the field (``create_model``, ``TrainConfig``, ``DefenseConfig``) and only say so; the document
    handed to readers is the JSON itself, never filled with them.
    """

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)


class ModelConfig(_Section):
    """``config.json``'s ``model``: the keyword arguments ``load_run`` passes to ``create_model``."""

    name: Text | None = None  # required by create_model, which says so in its own line
    num_classes: Classes | None = None  # likewise
    in_channels: Channels = 3
    T: TimeSteps = 8
    width: Width = 1.0
    neuron_backend: Text = "native"
    input_size: Side = 32
    # create_model also accepts one number for every channel; evrobust writes a list of in_channels values.
    mean: StrictFinite | ChannelStats | None = None
    std: StrictFinite | ChannelStats | None = None
    tau: StrictFinite = 1.0
    theta: StrictFinite = 1.0
    spec: Text = "triangle:1"
    pool: Text = "avg"
    readout: Text = "mean"
    depth: Annotated[int, Field(ge=0, le=MAX_DEPTH, strict=True)] = 16  # WRN builders only
    widen: Annotated[int, Field(ge=0, le=MAX_WIDEN, strict=True)] = 4  # WRN builders only


class DataInfo(_Section):
    """``config.json``'s ``data``: the store a run was trained on and the shape of its samples.

    Nullable: every reader takes a missing value as unknown (``run_test_store`` falls back from ``store`` to
    ``name`` and then to an error line; the others compare or print).
    """

    name: PathText | None = None  # --data as given: a name or a store path
    dataset: Text | None = None
    store: PathText | None = None
    kind: Text | None = None
    num_classes: Classes | None = None
    in_channels: Channels | None = None
    input_size: Side | None = None
    frames: TimeSteps | None = None  # None for an image store
    split_sizes: dict[Text, Count] | None = None
    classes: Annotated[list[Text], Field(max_length=MAX_CLASSES)] | None = None
    train_samples: Count | None = None
    val_samples: Count | None = None


class DefenseInfo(_Section):
    """``config.json``'s ``defense`` (the resolved DefenseConfig), printed by report and export."""

    name: Text = "vanilla"
    lam: StrictFinite = 0.0
    h: StrictFinite = 0.01
    penalty: Text = "l2sq"
    at_method: Text = "pgd"
    at_eps: StrictFinite = 2 / 255
    at_step: StrictFinite = 0.01
    at_steps: Annotated[int, Field(ge=0, le=MAX_STEPS, strict=True)] = 5
    rat_beta: StrictFinite = 5e-4


class TrainOptions(_Section):
    """``config.json``'s ``train`` (every option of ``evrobust train``) and ``identity`` (the options that
    decide what the run computes). Typed and bounded only: ``evrobust train`` validates what it accepts.
    Nullable exactly where ``TrainConfig`` is (None: the paper's default for the data)."""

    data: PathText | None = None  # absent from identity
    model: Text = "vgg11"
    data_dir: PathText | None = None
    width: Width = 1.0
    T: TimeSteps | None = None
    model_options: dict[Text, Any] = Field(default_factory=dict)
    defense: Text = "vanilla"
    lam: StrictFinite | None = None
    sr_penalty: Text = "l2sq"
    h: StrictFinite = 0.01
    at_method: Text | None = None
    at_eps: StrictFinite = 2 / 255
    at_step: StrictFinite = 0.01
    at_steps: Annotated[int, Field(ge=0, le=MAX_STEPS, strict=True)] = 5
    rat_beta: StrictFinite = 5e-4
    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS, strict=True)] = 200
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH, strict=True)] | None = None
    lr: StrictFinite = 0.1
    momentum: StrictFinite = 0.9
    weight_decay: StrictFinite | None = None
    neuron_backend: Text = "native"
    augment: StrictBool | None = None
    limit_train: Positive | None = None
    limit_val: Positive | None = None
    seed: Annotated[int, Field(ge=0, le=2**63 - 2, strict=True)] = 0  # defaults proposes seed + 1
    device: Text = "auto"
    amp: StrictBool = False
    out: PathText | None = None
    resume: StrictBool = False
    workers: Annotated[int, Field(ge=0, le=1 << 16, strict=True)] = 0
    progress: StrictBool | None = None
    stop_after: Annotated[int, Field(ge=1, le=MAX_EPOCHS, strict=True)] | None = None


class RuntimeInfo(_Section):
    """``config.json``'s ``runtime``: how the run was executed (recorded, not read back)."""

    device: Text | None = None
    world_size: Annotated[int, Field(ge=1, le=1 << 16, strict=True)] | None = None
    amp_bf16: StrictBool | None = None
    per_rank_batch: Annotated[int, Field(ge=1, le=MAX_BATCH, strict=True)] | None = None


class RunConfig(_Section):
    """``<run>/config.json``, written by ``evrobust train`` (``pipelines/train/pipeline.py``).

    ``model``, ``data``, ``identity``, ``train`` and ``runtime`` are objects when present (readers index them
    without a None check); ``defense`` may also be null (readers treat it as unknown).
    """

    format: Literal["evrobust-run"]
    format_version: Annotated[int, Field(ge=0, le=1_000, strict=True)] | None = None
    created: Text | None = None
    identity: TrainOptions = Field(default_factory=TrainOptions)
    train: TrainOptions = Field(default_factory=TrainOptions)
    defense: DefenseInfo | None = None
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataInfo = Field(default_factory=DataInfo)
    runtime: RuntimeInfo = Field(default_factory=RuntimeInfo)
    versions: dict[Text, Text | None] | None = None
    git_commit: Text | None = None


class MetricsRecord(_Section):
    """One line of ``<run>/metrics.jsonl``: one finished epoch (``pipelines/train/pipeline.py``).

    Only ``epoch`` is required (the line's identity: resume truncates by it, reproduce counts epochs by it).
    Every number is finite. The values computed from the model may be null: the writer stores a non-finite
    one as null, and their readers (report curves and gradient column, reproduce's summary) take null as
    missing. ``step``, ``lr`` and ``seconds`` are never null (reproduce adds up ``seconds``).
    """

    epoch: Epochs
    step: Count = 0
    lr: NonNegative = 0.0
    loss: StrictFinite | None = None
    ce: StrictFinite | None = None
    reg: StrictFinite | None = None
    train_acc: StrictPercent | None = None
    val_acc: StrictPercent | None = None
    best_val_acc: StrictPercent | None = None
    seconds: NonNegative = 0.0  # absent: reproduce's own default
    val_grad_l1: NonNegative | None = None
    val_grad_l2: NonNegative | None = None
    val_grad_zero_frac: StrictFraction | None = None
