"""A fake `sbatch` for the launch tests: runs the batch script at once, as the job, on "nodes" 127.0.0.1, 127.0.0.2...

Options come from the script's #SBATCH lines, then the command line (which wins), as sbatch reads them. The job's
output goes to --output (%x: job name, %j: job id), which must be in an existing directory, as for the real job.
The job id is $FAKE_SLURM_JOB_ID, so that the test controls the coordinator port JAX derives from it.
"""

import os
import re
import subprocess
import sys

args = sys.argv[1:]
script_index = next(i for i, a in enumerate(args) if not a.startswith("-"))
script, script_args = args[script_index], args[script_index + 1:]
with open(script, encoding="utf-8") as file:
    defaults = re.findall(r"^#SBATCH (--[\w-]+)=(\S+)", file.read(), re.MULTILINE)
options = {**dict(defaults), **dict(a.split("=", 1) for a in args[:script_index])}
job_id, name, nodes = os.environ["FAKE_SLURM_JOB_ID"], options["--job-name"], int(options["--nodes"])
output = options.get("--output", "slurm-%j.out").replace("%x", name).replace("%j", job_id)
if not os.path.isdir(os.path.dirname(output) or "."):
    sys.exit(f"fake sbatch: the job cannot open its output file {output}")
node_list = ",".join(f"127.0.0.{n + 1}" for n in range(nodes))
env = {**os.environ, "SLURM_SUBMIT_DIR": os.getcwd(), "SLURM_JOB_ID": job_id, "SLURM_JOB_NAME": name,
       "SLURM_JOB_NUM_NODES": str(nodes), "SLURM_NNODES": str(nodes), "SLURM_JOB_NODELIST": node_list,
       "SLURM_NTASKS_PER_NODE": options["--ntasks-per-node"], "SLURM_GPUS_PER_NODE": options["--gpus-per-node"],
       "SLURM_NTASKS": str(nodes * int(options["--ntasks-per-node"]))}
if "--cpus-per-task" in options:  # sbatch sets it only when asked for CPUs per task
    env["SLURM_CPUS_PER_TASK"] = options["--cpus-per-task"]
with open(output, "w", encoding="utf-8") as out:
    status = subprocess.run(["bash", script, *script_args], env=env, stdout=out, stderr=subprocess.STDOUT).returncode
print(f"Submitted batch job {job_id}")
sys.exit(status)
