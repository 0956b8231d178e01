"""eotd_jax: the single source of dependencies. `pip install -e .[dev]` for tests and benchmarks."""

from setuptools import find_packages, setup

setup(
    name="eotd_jax",
    version="0.1.0",
    description="Equation-of-Thought / Ensemble-Thoughts distillation of math reasoning into small T5 students, in JAX",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",  # jax >= 0.8 needs 3.11; the TPU launch installs 3.12 with uv (the VM images ship 3.10)
    packages=find_packages(include=["eotd_jax", "eotd_jax.*", "data_gen", "data_gen.*"]),
    package_data={"eotd_jax.thoughts": ["data/*.jsonl"], "eotd_jax.benchmarks": ["data/*.txt"],
                  "data_gen.prompts": ["*.txt"]},
    install_requires=[
        "absl-py>=2.0,<3",
        "datasets>=3.0,<6",
        "etils[epath]>=1.9,<2",  # eotd_jax.paths: one path layer for local and gs:// files (Orbax uses it too)
        "flax>=0.12,<0.13",
        "gcsfs>=2024.6,<2027",  # epath's gs:// backend (fsspec), used instead of TensorFlow's gfile
        "jax>=0.8,<0.11",
        "landlock>=1.0.0.dev5,<2",  # the sandbox's filesystem layer (Linux >= 5.13; reported when absent)
        "numpy>=1.26,<3",
        "matplotlib>=3.8,<4",  # the eval binary's results.png
        "ml_collections>=0.1.1,<2",
        "openai>=1.40,<4",
        "optax>=0.2.3,<0.3",
        "pyseccomp>=0.1.2,<0.2",  # the sandbox's system-call filter (needs libseccomp2, Debian's libseccomp2)
        "orbax-checkpoint>=0.11,<0.13",
        "safetensors>=0.4,<1",
        "sympy>=1.12,<2",
        "tensorflow-cpu>=2.16,<3",  # TFRecord I/O and tf.data only; JAX owns the accelerators
        "tensorboard>=2.16,<3",  # tf.summary needs it to write event files
        "tensorflow-datasets>=4.9,<5",
        "tokenizers>=0.20,<1",  # the quickstart BPE (eotd_jax/train_tokenizer.py)
        "tqdm>=4.66,<5",
        "transformers>=4.45,<6",  # tokenizers (AutoTokenizer) and, in tests, the PyTorch reference T5
    ],
    extras_require={
        # JAX's own accelerator extras, inside the jax range above. libtpu: train on Cloud TPU VMs, and compile for
        # TPU slices from any Linux host (python -m eotd_jax.aot). CUDA 12: train on GPUs; its plugin alone
        # (jax-cuda12-plugin) also lets eotd_jax.aot compile for h100-N without a GPU.
        "tpu": ["jax[tpu]>=0.8,<0.11"],
        "cuda12": ["jax[cuda12]>=0.8,<0.11"],
        # Importing pytorch_model.bin checkpoints (CodeT5 ships no safetensors); the CPU build is enough:
        # pip install -e '.[hf]' --extra-index-url https://download.pytorch.org/whl/cpu
        "hf": ["torch>=2.4,<3"],
        "dev": [
            "gcp-storage-emulator>=2024.8,<2027",  # the GCS emulator the gs:// tests start on 127.0.0.1
            "pytest>=8,<10",
            "torch==2.13.0",  # the reference for parity tests and benchmarks; the CPU build on this project's CI
            "pytest-timeout>=2.3,<3",
            "ruff>=0.6,<1",
            "jax[tpu]>=0.8,<0.11",  # libtpu: tests/test_aot.py compiles for a TPU slice on the CPU host
        ],
    },
)
