"""Quickstart: a tiny byte-level T5 on synthetic problems, minutes on 2 CPU cores.

    python -m data_gen.build --dataset=synthetic --synthetic_count=2000 --out=workdir/quickstart/data
    python -m eotd_jax.train --config=configs/quickstart.py --workdir=workdir/quickstart/train

The quickstart is `configs/default.py` as it is; every field is explained there.
"""

from ml_collections import ConfigDict

from configs import default


def get_config() -> ConfigDict:
    return default.get_config()
