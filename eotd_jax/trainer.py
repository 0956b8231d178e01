"""The training loop behind `python -m eotd_jax.train` (the binary is `train.py`).

One `jax.sharding.Mesh` (data, fsdp, tensor); parameters and optimizer state
sharded by the logical rules of `eotd_jax.model.sharding`; a pure, jitted
train step with explicit shardings and donated state. Restarting with the same
`--workdir` resumes from the latest checkpoint, data position included.
SIGTERM to any process (TPU preemption, SLURM time limit) stops every process
after the same training step or eval batch (`eotd_jax.preemption`); they save
that step once and exit 0.
Every `eval.every_steps` the student answers held-out questions with the ETD
strategy (the eval binary's code); that accuracy picks the kept-best checkpoints.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx
from ml_collections import ConfigDict
from tqdm import tqdm

from eotd_jax import checkpoints, divergence, paths
from eotd_jax.benchmarks import Problem, load_problems
from eotd_jax.evaluation import DecodeSettings, accuracy, answer_questions
from eotd_jax.input.pipeline import make_batches
from eotd_jax.input.student_input import StudentInput
from eotd_jax.model.config import T5Config, get_config
from eotd_jax.model.hf_io import import_hf
from eotd_jax.model.sharding import batch_sharding, data_parallel_size, make_mesh, param_shardings
from eotd_jax.model.t5 import T5, shift_right
from eotd_jax.optim import learning_rate_schedule, make_optimizer
from eotd_jax.preemption import Preempted, Preemption
from eotd_jax.summaries import ScalarWriter
from eotd_jax.thoughts import THOUGHTS
from eotd_jax.thoughts.sandbox import SandboxPool
from eotd_jax.tokenizer import load_tokenizer
from eotd_jax.validation import ConfigError


@dataclasses.dataclass
class Run:
    """Everything the loop needs, built and checked before any compile."""

    config: ConfigDict
    batch_size: int  # global packed rows per step (see global_batch_size)
    model_config: T5Config
    graphdef: nnx.GraphDef
    mesh: jax.sharding.Mesh
    param_shardings: dict
    batches: object
    tokenizer: object
    initial_params: object  # a callable giving sharded params (fresh init) or the imported HF params
    eval_problems: dict[str, list[Problem]]  # empty when periodic eval is off


def pretrained_dir(config: ConfigDict) -> str:
    """The HF directory to start from; "" for random weights (`init_from_hf` empty, or `none` said on purpose)."""
    return "" if config.init_from_hf == "none" else config.init_from_hf


def check_requirements(config: ConfigDict) -> None:
    """Refuses a run its config says would be wasted: an accelerator-scale run on the CPU, a paper
    student from random weights."""
    if config.require_accelerator and jax.default_backend() == "cpu":
        raise ConfigError("config.require_accelerator: this config needs TPUs or GPUs, but JAX found only the CPU "
                          "(pip install -e '.[tpu]' or '.[cuda12]'; --config.require_accelerator=false to run anyway)")
    if config.require_init_from_hf and not config.init_from_hf:
        raise ConfigError("config.init_from_hf: this config fine-tunes a pretrained student; pass "
                          "--config.init_from_hf=<local Hugging Face directory>, or =none for random weights")


def model_and_params(config: ConfigDict):
    """(model config, graphdef, abstract state, params source) from a named config or an HF directory."""
    overrides = dict(config.model_overrides)
    if pretrained_dir(config):
        model_config, model = import_hf(pretrained_dir(config), **overrides)
        graphdef, state = nnx.split(model)
        return model_config, graphdef, state, nnx.to_pure_dict(state)
    try:
        model_config = get_config(config.model, **overrides)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"config.model: {error}") from None
    graphdef, state = nnx.split(nnx.eval_shape(lambda: T5(model_config, nnx.Rngs(0))))
    return model_config, graphdef, state, None


def data_sources(config: ConfigDict) -> list[dict]:
    """`config.data.sources` (a weighted mixture), or the single `config.data.dir` with `config.data.thoughts`."""
    if config.data.sources:
        return [dict(source) for source in config.data.sources]
    return [{"dir": config.data.dir, "weight": 1.0, "thoughts": config.data.thoughts}]


def eval_thoughts(config: ConfigDict) -> list[str]:
    """The thoughts the periodic eval decodes: `eval.thoughts`, else every thought the student is trained on."""
    spec = config.eval.thoughts or ",".join(source["thoughts"] for source in data_sources(config))
    return [t for t in THOUGHTS if t in spec.split(",")]


def load_eval_problems(config: ConfigDict) -> dict[str, list[Problem]]:
    """The held-out problems of the periodic eval ({} when it is off), after checking its settings."""
    every = config.eval.every_steps
    if config.checkpoint.keep_best and (not every or every % config.checkpoint.every_steps):
        raise ConfigError("config.checkpoint.keep_best needs eval accuracy at checkpoints: set config.eval.every_steps "
                          f"to a multiple of config.checkpoint.every_steps ({config.checkpoint.every_steps})")
    if not every:
        return {}
    try:
        return {name: load_problems(name, config.eval.data_dir, config.eval.limit)
                for name in config.eval.datasets.split(",")}
    except (OSError, ValueError) as error:
        raise ConfigError(f"config.eval.datasets: {error}") from None


def global_batch_size(config: ConfigDict, mesh: jax.sharding.Mesh) -> int:
    """`train.per_device_batch_size` x the data-parallel devices when set, else `train.batch_size`."""
    if config.train.per_device_batch_size > 0:
        return config.train.per_device_batch_size * data_parallel_size(mesh)
    return config.train.batch_size


def prepare(config: ConfigDict) -> Run:
    """Checks the config against the devices and the data, and builds the run; compiles nothing."""
    check_requirements(config)
    try:
        mesh = make_mesh(tuple(config.mesh.shape))
    except ValueError as error:
        raise ConfigError(f"config.mesh.shape: {error}") from None
    data_parallel = data_parallel_size(mesh)
    batch_size = global_batch_size(config, mesh)
    if batch_size % data_parallel:
        raise ConfigError(f"config.train.batch_size {batch_size} is not divisible by the "
                          f"{data_parallel} data-parallel devices (mesh data x fsdp); set "
                          "config.train.per_device_batch_size instead")
    if batch_size % jax.process_count():
        raise ConfigError(f"config.train.batch_size {batch_size} is not divisible by "
                          f"{jax.process_count()} processes")
    if config.train.grad_accum_steps < 1 or config.train.steps % config.train.grad_accum_steps:
        raise ConfigError(f"config.train.grad_accum_steps {config.train.grad_accum_steps} does not divide "
                          f"config.train.steps {config.train.steps}")
    sources = data_sources(config)
    for source in sources:
        if not paths.path(source["dir"]).is_dir():
            raise ConfigError(f"config.data: data dir {source['dir']} does not exist "
                              "(build it with python -m data_gen.build)")
    eval_problems = load_eval_problems(config)
    model_config, graphdef, state, hf_params = model_and_params(config)
    tokenizer = load_tokenizer(config.tokenizer or pretrained_dir(config) or "byte")
    try:
        student_input = StudentInput.from_config(config)
    except ValueError as error:
        raise ConfigError(f"config.input: {error}") from None
    if tokenizer.vocab_size > model_config.vocab_size:
        raise ConfigError(f"tokenizer has {tokenizer.vocab_size} ids but the model's vocabulary is "
                          f"{model_config.vocab_size}")
    batches = make_batches(sources, tokenizer, batch_size,
                           config.data.source_length, config.data.target_length, config.train.seed,
                           jax.process_index(), jax.process_count(), student_input)
    if batches.batches_per_epoch() == 0:
        raise ConfigError(f"the data fills fewer than one batch of {batch_size} rows")
    shardings = param_shardings(state, mesh)
    if hf_params is None:
        seed = config.train.seed

        def initial_params():
            init = jax.jit(lambda: nnx.to_pure_dict(nnx.split(T5(model_config, nnx.Rngs(seed)))[1]),
                           out_shardings=shardings)
            return init()
    else:
        def initial_params():
            return jax.device_put(hf_params, shardings)
    return Run(config, batch_size, model_config, graphdef, mesh, shardings, batches, tokenizer, initial_params,
               eval_problems)


def loss_and_metrics(params, graphdef, batch, key, start_token_id: int):
    """Mean cross-entropy over real target tokens, and token accuracy."""
    model = nnx.merge(graphdef, params)
    decoder_inputs = shift_right(batch["targets"], start_token_id, batch["target_segments"])
    logits = model(batch["inputs"], batch["input_segments"], decoder_inputs, batch["target_segments"], key=key)
    real = (batch["target_segments"] > 0).astype(jnp.float32)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    tokens = jnp.maximum(real.sum(), 1.0)
    loss = (losses * real).sum() / tokens
    accuracy = ((jnp.argmax(logits, -1) == batch["targets"]) * real).sum() / tokens
    return loss, {"loss": loss, "token_accuracy": accuracy, "tokens": real.sum()}


def train_step(state: dict, batch: dict, *, graphdef, optimizer, start_token_id: int, seed: int):
    """One optimizer (micro-)step; pure: (state, batch) -> (state, metrics)."""
    key = jax.random.fold_in(jax.random.key(seed), state["step"])
    grad_fn = jax.value_and_grad(loss_and_metrics, has_aux=True)
    (_, metrics), grads = grad_fn(state["params"], graphdef, batch, key, start_token_id)
    updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics["grad_norm"] = optax.global_norm(grads)
    return {"params": params, "opt_state": opt_state, "step": state["step"] + 1}, metrics


def evaluate_student(run: Run, params, pool: SandboxPool, before_batch=None) -> dict[str, float]:
    """ETD (and per-thought) answer accuracy on the held-out problems; "accuracy" is the mean ETD accuracy.

    `before_batch` runs before each decode batch (the trainer's preemption check, which raises to stop).
    """
    model = nnx.merge(run.graphdef, params)
    thoughts = eval_thoughts(run.config)
    strategies = [*thoughts, "etd"]
    settings = DecodeSettings(max_source_length=run.config.data.source_length,
                              max_new_tokens=run.config.eval.max_new_tokens, batch_size=run.config.eval.batch_size)
    metrics = {}
    for name, problems in run.eval_problems.items():
        records = answer_questions(model, run.tokenizer, problems, thoughts, strategies, pool, settings,
                                   StudentInput.from_config(run.config), before_batch)
        metrics.update({f"eval/{name}/{s}_accuracy": accuracy(records, s) for s in strategies})
    metrics["accuracy"] = float(np.mean([metrics[f"eval/{name}/etd_accuracy"] for name in run.eval_problems]))
    return metrics


def count_params(params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def peak_flops_per_device(config: ConfigDict) -> float:
    """Peak dense bf16 FLOP/s of one device, for the MFU estimate (0 when unknown)."""
    if config.train.peak_flops_per_device:
        return config.train.peak_flops_per_device
    kind = jax.devices()[0].device_kind.lower()
    table = {"h100": 989e12, "h200": 989e12, "a100": 312e12, "v5p": 459e12, "v5 lite": 197e12, "v4": 275e12}
    return next((flops for name, flops in table.items() if name in kind), 0.0)


def use_compilation_cache(config: ConfigDict, workdir: str) -> None:
    """JAX's persistent compilation cache at `compilation_cache_dir` ({workdir} replaced); empty: left as is."""
    directory = config.compilation_cache_dir.replace("{workdir}", workdir)
    if directory:
        jax.config.update("jax_compilation_cache_dir", directory)


@dataclasses.dataclass
class TrainStep:
    """The jitted train step and the layout of the state it carries; the trainer and `eotd_jax.aot` share it."""

    fn: object  # jax.jit of train_step: (state, batch) -> (state, metrics), the state donated
    optimizer: optax.GradientTransformation
    state_shapes: dict  # {params, opt_state, step} as jax.ShapeDtypeStruct
    state_shardings: dict
    batch_sharding: jax.sharding.NamedSharding


def make_train_step(config: ConfigDict, model_config: T5Config, graphdef: nnx.GraphDef, params_shape,
                    shardings: dict, mesh: jax.sharding.Mesh) -> TrainStep:
    """The train step for params shaped `params_shape` placed by `shardings` on `mesh`; compiles nothing."""
    optimizer = make_optimizer(config.train)
    shapes = checkpoints.state_shapes(params_shape, optimizer)
    # The optimizer state follows the parameters' shardings where shapes match (moments); the rest is replicated.
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    by_shape = {}
    for leaf, sharding in zip(jax.tree.leaves(params_shape), jax.tree.leaves(shardings), strict=True):
        by_shape.setdefault(leaf.shape, sharding)
    opt_shardings = jax.tree.map(lambda x: by_shape.get(x.shape, replicated) if x.ndim else replicated,
                                 shapes["opt_state"])
    state_shardings = {"params": shardings, "opt_state": opt_shardings, "step": replicated}
    batch_spec = batch_sharding(mesh)
    step = functools.partial(train_step, graphdef=graphdef, optimizer=optimizer,
                             start_token_id=model_config.decoder_start_token_id, seed=config.train.seed)

    # The model's activation constraints (sharding.constrain) read this mesh. Decoding runs without one on
    # purpose: a token's activations are tiny, and XLA rightly gathers them rather than every layer's weights.
    def train_step_on_mesh(state, batch):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return step(state, batch)

    # libtpu 0.0.42's compiler has crashed (a segmentation fault in the cost model of its dot-dot fusion) on remat
    # steps with dropout: codet5-small for v4-8 from 2 or from 8 rows a chip, as small changes to the program moved
    # it. Without that fusion every shape tried compiles (docs/benchmarks.md, issue 12).
    tpu_remat = model_config.remat and mesh.devices.flat[0].platform == "tpu"
    step_fn = jax.jit(train_step_on_mesh, in_shardings=(state_shardings, batch_spec),
                      out_shardings=(state_shardings, replicated), donate_argnums=0,
                      compiler_options={"xla_tpu_dot_dot_fusion": False} if tpu_remat else None)
    return TrainStep(step_fn, optimizer, shapes, state_shardings, batch_spec)


def train(config: ConfigDict, workdir: str) -> dict:
    """The training loop; returns the last logged metrics."""
    use_compilation_cache(config, workdir)  # before the first compile, which fixes the cache for the process
    run = prepare(config)
    schedule = learning_rate_schedule(config.train)
    jitted = make_train_step(config, run.model_config, run.graphdef, jax.eval_shape(run.initial_params),
                             run.param_shardings, run.mesh)
    optimizer, shapes, state_shardings = jitted.optimizer, jitted.state_shapes, jitted.state_shardings
    step_fn, batch_spec = jitted.fn, jitted.batch_sharding
    params_shape, opt_shardings = shapes["params"], state_shardings["opt_state"]
    replicated = state_shardings["step"]

    manager = checkpoints.make_manager(workdir, config.checkpoint.keep, config.checkpoint.keep_best,
                                       config.checkpoint.asynchronous)
    restored = checkpoints.restore_latest(manager, checkpoints.abstract_like(shapes, state_shardings))
    if restored is not None:
        latest, state, position = restored
        run.batches.position = position
        logging.warning("resumed from step %d (data position %s)", latest, position)
    else:
        params = run.initial_params()
        state = {"params": params, "opt_state": jax.jit(optimizer.init, out_shardings=opt_shardings)(params),
                 "step": jax.device_put(jnp.int32(0), replicated)}
    start = int(state["step"])

    writer = _summary_writer(workdir)
    flops_per_token = 6 * count_params(params_shape)
    peak = peak_flops_per_device(config) * jax.device_count()
    config_dict = json.loads(config.to_json_best_effort())
    last = {}
    pool = SandboxPool(num_workers=config.eval.workers or None) if run.eval_problems else None
    bar = tqdm(total=config.train.steps, initial=start, desc="training", unit="step",
               disable=jax.process_index() != 0 or not config.progress)
    window_start, window_tokens = time.perf_counter(), 0.0
    step = start
    preemption = Preemption()
    try:
        while step < config.train.steps:
            local = next(run.batches)
            batch = {k: jax.make_array_from_process_local_data(batch_spec, v) for k, v in local.items()}
            state, metrics = step_fn(state, batch)
            step += 1
            bar.update(1)
            window_tokens += float(np.sum(local["target_segments"] > 0) + np.sum(local["input_segments"] > 0)) \
                * jax.process_count()
            if step % config.log_every_steps == 0 or step == config.train.steps:
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                divergence.check_finite(step, metrics, manager.latest_step(), config)
                seconds = time.perf_counter() - window_start
                steps_in_window = config.log_every_steps if step % config.log_every_steps == 0 else 1
                updates = max(step // config.train.grad_accum_steps, 1)  # the schedule counts optimizer updates
                metrics.update(learning_rate=float(schedule(updates - 1)), tokens_per_second=window_tokens / seconds,
                               step_seconds=seconds / steps_in_window)
                if peak:
                    metrics["mfu"] = flops_per_token * window_tokens / seconds / peak
                last = {"step": step, **metrics}
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['learning_rate']:.2e}", refresh=False)
                _write_scalars(writer, step, metrics)
                window_start, window_tokens = time.perf_counter(), 0.0
            eval_metrics = None
            try:
                if (not preemption.reached() and run.eval_problems
                        and (step % config.eval.every_steps == 0 or step == config.train.steps)):
                    eval_metrics = evaluate_student(run, state["params"], pool, preemption.check)
                    last.update(eval_metrics)
                    _write_scalars(writer, step, eval_metrics)
                    logging.warning("step %d: held-out ETD accuracy %.4f", step, eval_metrics["accuracy"])
            except Preempted:  # this step's eval is dropped; its checkpoint carries no accuracy
                pass
            if preemption.stopping:
                logging.warning("SIGTERM: saving step %d before exiting", step)
            if preemption.stopping or step % config.checkpoint.every_steps == 0 or step == config.train.steps:
                divergence.check_finite(step, metrics, manager.latest_step(), config)
                checkpoints.save(manager, step, state, dict(run.batches.position), config_dict,
                                 {"accuracy": eval_metrics["accuracy"]} if eval_metrics else None,
                                 force=preemption.stopping)
            if preemption.stopping:
                break
    finally:
        preemption.close()
        bar.close()
        if pool is not None:
            pool.close()
        checkpoints.close(manager)
        if writer is not None:
            writer.close()
    if jax.process_index() == 0:
        (paths.path(workdir) / "config.json").write_text(json.dumps(config_dict, indent=2))
    return last


def _summary_writer(workdir: str) -> ScalarWriter | None:
    if jax.process_index() != 0:
        return None
    return ScalarWriter(os.fspath(paths.path(workdir) / "tensorboard"))


def _write_scalars(writer: ScalarWriter | None, step: int, metrics: dict) -> None:
    if writer is not None:
        writer.write(step, metrics)
