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
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx
from ml_collections import ConfigDict
from tqdm import tqdm

from eotd_jax import checkpoints, divergence, paths, run_dir
from eotd_jax.benchmarks import BENCHMARKS, Problem, load_problems
from eotd_jax.evaluation import DecodeSettings, accuracy, answer_questions
from eotd_jax.input.pipeline import make_batches
from eotd_jax.input.student_input import StudentInput
from eotd_jax.model import build
from eotd_jax.model.config import T5Config
from eotd_jax.model.sharding import batch_sharding, data_parallel_size, make_mesh, param_shardings
from eotd_jax.model.t5 import shift_right
from eotd_jax.optim import learning_rate_schedule, make_optimizer
from eotd_jax.preemption import Preempted, Preemption
from eotd_jax.step_log import Profile, StepLog, step_flops
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
    files: run_dir.RunFiles  # architecture, tokenizer and student input (the workdir's, or new)
    graphdef: nnx.GraphDef
    params_shape: dict  # jax.ShapeDtypeStruct of every parameter
    mesh: jax.sharding.Mesh
    param_shardings: dict
    batches: object
    initial_params: object  # a callable giving the first params, sharded (fresh init or the imported HF weights)
    eval_problems: dict[str, list[Problem]]  # empty when periodic eval is off


def check_requirements(config: ConfigDict) -> None:
    """Refuses a run its config says would be wasted: an accelerator-scale run on the CPU, a paper
    student from random weights."""
    if config.require_accelerator and jax.default_backend() == "cpu":
        raise ConfigError("config.require_accelerator: this config needs TPUs or GPUs, but JAX found only the CPU "
                          "(pip install -e '.[tpu]' or '.[cuda12]'; --config.require_accelerator=false to run anyway)")
    if config.require_init_from_hf and not config.init_from_hf:
        raise ConfigError("config.init_from_hf: this config fine-tunes a pretrained student; pass "
                          "--config.init_from_hf=<local Hugging Face directory>, or =none for random weights")


def tokenizer_source(config: ConfigDict) -> str:
    """Where a new run takes its tokenizer: `tokenizer`, else the starting HF directory's, else bytes."""
    return config.tokenizer or build.pretrained_dir(config) or "byte"


def _gone(location: str) -> bool:
    return location not in ("", "byte") and not paths.path(location).exists()


def run_files(config: ConfigDict, workdir: str) -> run_dir.RunFiles:
    """The run's architecture, tokenizer and student input: the workdir's own when it has them (a resume, checked
    against the config), else resolved from the config's sources (a new run; the trainer writes them)."""
    student_input = StudentInput.from_config(config)
    if not run_dir.has_run_files(workdir):
        try:
            return run_dir.RunFiles(config, build.resolve(config), load_tokenizer(tokenizer_source(config)),
                                    student_input)
        except FileNotFoundError as error:
            raise ConfigError(f"config.tokenizer: {error}") from None
        except ValueError as error:
            raise ConfigError(str(error)) from None
    saved = run_dir.read(workdir)
    # A start path that no longer exists is no change: the run directory's copy serves.
    if _gone(build.pretrained_dir(config)):
        asked = saved.model_config.replace(**dict(config.model_overrides))
    else:
        try:
            asked = build.resolve(config)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    changed = run_dir.architecture_changes(saved.model_config, asked)
    if changed:
        raise ConfigError(f"{workdir} was started with another model ({', '.join(changed)}); resume with the "
                          "config it was started with, or pass a new --workdir")
    source = tokenizer_source(config)
    if not _gone(source) and (run_dir.tokenizer_fingerprint(load_tokenizer(source))
                              != run_dir.tokenizer_fingerprint(saved.tokenizer)):
        raise ConfigError(f"{workdir} was started with another tokenizer than {source} (its copy is in "
                          f"{workdir}/{run_dir.TOKENIZER}); resume with that one, or pass a new --workdir")
    if student_input != saved.student_input:
        raise ConfigError(f"{workdir} was started with another student input ({saved.student_input.to_dict()}); "
                          "resume with the config's input section unchanged, or pass a new --workdir")
    return run_dir.RunFiles(config, run_dir.compute_settings(saved.model_config, asked), saved.tokenizer,
                            saved.student_input)


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
    benchmarks = [name for name in config.eval.datasets.split(",") if name.split("/")[0] in BENCHMARKS]
    if benchmarks and not config.eval.data_dir:
        raise ConfigError(f"config.eval.data_dir: the eval reads {', '.join(benchmarks)}; stage them with "
                          "`python -m eotd_jax.stage_benchmarks --source=DIR|hub --to=gs://BUCKET/benchmarks` and "
                          "pass --config.eval.data_dir=gs://BUCKET/benchmarks")
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


def prepare(config: ConfigDict, workdir: str) -> Run:
    """Checks the config against the devices, the data and the workdir's run files, and builds the run;
    compiles nothing and reads no weights."""
    check_requirements(config)
    try:
        mesh = make_mesh(tuple(config.mesh.shape), dcn_shape=tuple(config.mesh.dcn_shape))
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
    files = run_files(config, workdir)
    graphdef, state = build.abstract_model(files.model_config)
    if files.tokenizer.vocab_size > files.model_config.vocab_size:
        raise ConfigError(f"tokenizer has {files.tokenizer.vocab_size} ids but the model's vocabulary is "
                          f"{files.model_config.vocab_size}")
    batches = make_batches(sources, files.tokenizer, batch_size,
                           config.data.source_length, config.data.target_length, config.train.seed,
                           jax.process_index(), jax.process_count(), files.student_input)
    if batches.batches_per_epoch() == 0:
        raise ConfigError(f"the data fills fewer than one batch of {batch_size} rows")
    shardings = param_shardings(state, mesh)
    params_shape = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), nnx.to_pure_dict(state))
    return Run(config, batch_size, files, graphdef, params_shape, mesh, shardings, batches,
               build.initial_params(config, files.model_config, shardings), eval_problems)


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
    settings = DecodeSettings.from_config(run.config)
    metrics = {}
    for name, problems in run.eval_problems.items():
        records = answer_questions(model, run.files.tokenizer, problems, thoughts, strategies, pool, settings,
                                   run.files.student_input, before_batch, run.mesh)
        metrics.update({f"eval/{name}/{s}_accuracy": accuracy(records, s) for s in strategies})
    metrics["accuracy"] = float(np.mean([metrics[f"eval/{name}/etd_accuracy"] for name in run.eval_problems]))
    return metrics


def count_params(params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def use_compilation_cache(config: ConfigDict, workdir: str) -> None:
    """JAX's persistent compilation cache at `compilation_cache_dir` ({workdir} replaced); empty: left as is.

    Off for CPU runs of several processes: only process 0 writes the cache, so on a restart process 0 loads its
    executables while the others compile theirs, and XLA:CPU's two builds have disagreed on a collective's size
    (a gloo "size mismatch" abort of both processes)."""
    directory = config.compilation_cache_dir.replace("{workdir}", workdir)
    if directory and jax.process_count() > 1 and jax.default_backend() == "cpu":
        logging.warning("the persistent compilation cache is off for a CPU run of several processes")
    elif directory:
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
    run = prepare(config, workdir)
    if jax.process_index() == 0:  # the run directory: what resuming, eval and export read (eotd_jax.run_dir)
        if run_dir.has_run_files(workdir):
            run_dir.write_config(workdir, config)
        else:
            run_dir.write(workdir, run.files)
    schedule = learning_rate_schedule(config.train)
    jitted = make_train_step(config, run.files.model_config, run.graphdef, run.params_shape,
                             run.param_shardings, run.mesh)
    optimizer, shapes, state_shardings = jitted.optimizer, jitted.state_shapes, jitted.state_shardings
    step_fn, batch_spec = jitted.fn, jitted.batch_sharding
    opt_shardings = state_shardings["opt_state"]
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
    step_log = None  # built at the first step, from the step traced on its arguments
    profile = Profile(config.profile_steps, workdir)
    config_dict = json.loads(config.to_json_best_effort())
    last = {}
    pool = SandboxPool(num_workers=config.eval.workers or None) if run.eval_problems else None
    bar = tqdm(total=config.train.steps, initial=start, desc="training", unit="step",
               disable=jax.process_index() != 0 or not config.progress or not sys.stderr.isatty())
    window_start, window_tokens, window_steps = time.perf_counter(), 0.0, 0
    step = start
    preemption = Preemption()
    try:
        while step < config.train.steps:
            local = next(run.batches)
            batch = {k: jax.make_array_from_process_local_data(batch_spec, v) for k, v in local.items()}
            if step_log is None:
                step_log = StepLog.for_devices(step_flops(step_fn.trace(state, batch)),
                                               config.train.peak_flops_per_device, config.train.steps, jax.devices())
            profile.before_step(step + 1)
            state, metrics = step_fn(state, batch)
            step += 1
            profile.after_step(step, state)
            bar.update(1)
            window_steps += 1
            window_tokens += float(np.sum(local["target_segments"] > 0) + np.sum(local["input_segments"] > 0)) \
                * jax.process_count()
            logged = None
            if step == start + 1 and step != config.train.steps:  # the first step compiled: time the rest
                jax.block_until_ready(metrics)
                window_start, window_tokens, window_steps = time.perf_counter(), 0.0, 0
            elif step % config.log_every_steps == 0 or step == config.train.steps:
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                divergence.check_finite(step, metrics, manager.latest_step(), config)
                seconds = time.perf_counter() - window_start
                updates = max(step // config.train.grad_accum_steps, 1)  # the schedule counts optimizer updates
                metrics.update(learning_rate=float(schedule(updates - 1)), tokens_per_second=window_tokens / seconds,
                               step_seconds=seconds / window_steps)
                if step_log.mfu(metrics["step_seconds"]) is not None:
                    metrics["mfu"] = step_log.mfu(metrics["step_seconds"])
                last = logged = {"step": step, **metrics}
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['learning_rate']:.2e}", refresh=False)
                _write_scalars(writer, step, metrics)
                window_start, window_tokens, window_steps = time.perf_counter(), 0.0, 0
            eval_metrics = None
            evaluating = (not preemption.reached() and run.eval_problems
                          and (step % config.eval.every_steps == 0 or step == config.train.steps))
            saving = step % config.checkpoint.every_steps == 0 or step == config.train.steps
            if evaluating or saving:  # their time stays out of the logged step time
                jax.block_until_ready(state)
                aside = time.perf_counter()
            try:
                if evaluating:
                    eval_metrics = evaluate_student(run, state["params"], pool, preemption.check)
                    last.update(eval_metrics)
                    _write_scalars(writer, step, eval_metrics)
                    logging.warning("step %d: held-out ETD accuracy %.4f", step, eval_metrics["accuracy"])
            except Preempted:  # this step's eval is dropped; its checkpoint carries no accuracy
                pass
            if logged and jax.process_index() == 0:
                logging.warning("%s", step_log.line(step, {**logged, **(eval_metrics or {})}))
            if preemption.stopping:
                logging.warning("SIGTERM: saving step %d before exiting", step)
            if saving or preemption.stopping:
                divergence.check_finite(step, metrics, manager.latest_step(), config)
                checkpoints.save(manager, step, state, dict(run.batches.position), config_dict,
                                 {"accuracy": eval_metrics["accuracy"]} if eval_metrics else None,
                                 force=preemption.stopping)
            if evaluating or saving:
                window_start += time.perf_counter() - aside
            if preemption.stopping:
                break
    finally:
        preemption.close()
        profile.close()
        bar.close()
        if pool is not None:
            pool.close()
        checkpoints.close(manager)
        if writer is not None:
            writer.close()
    return last


def _summary_writer(workdir: str) -> ScalarWriter | None:
    if jax.process_index() != 0:
        return None
    return ScalarWriter(os.fspath(paths.path(workdir) / "tensorboard"))


def _write_scalars(writer: ScalarWriter | None, step: int, metrics: dict) -> None:
    if writer is not None:
        writer.write(step, metrics)
