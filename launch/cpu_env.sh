# shellcheck shell=bash
# Sourced by the launch scripts that train and evaluate on the CPU (quickstart.sh, mini_grid.sh).
# XLA:CPU allocates a step's temporaries anew each step, and glibc maps allocations that large fresh from the
# kernel, so every step faults them in 4 KiB at a time (t5-small's step: 335,000 faults and 1.0 s in the kernel).
# Transparent huge pages for malloc's mappings (glibc 2.35 or newer; an older glibc, or a kernel with THP off,
# ignores it) cut those faults more than 200-fold and the step by 10 to 20% (docs/benchmarks.md, "One training
# step against Hugging Face PyTorch"). A GLIBC_TUNABLES already set is kept.
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}
