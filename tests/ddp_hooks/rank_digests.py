"""A test's view into every rank of a torchrun search, kept out of the package: what each rank holds after supernet
training (a digest of its weights and logits, and the logits) and which architectures it scored itself.

`install(folder)` wraps two methods of the search so that each rank writes, into `folder`:
  rank{r}_of{w}.json         after supernet training (just before the weights' moving average replaces them)
  rank{r}_of{w}_scored.json  after each batch of spos scoring: the architectures this rank scored so far
A test calls install() in its own process; processes it launches (torchrun and its ranks, the console script) get it
from sitecustomize.py beside this file, with this folder on PYTHONPATH and DIGESTS_ENV naming the folder.
"""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

DIGESTS_ENV = "AUTONN_NAS_TEST_RANK_DIGESTS"
HOOKS_DIR = Path(__file__).resolve().parent


def launch_env(folder: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a launched process that writes its ranks' digests into `folder`."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HOOKS_DIR), env.get("PYTHONPATH", "")) if p)
    env[DIGESTS_ENV] = str(folder)
    return env


def state_digest(model: Any, alpha: Any) -> dict[str, str]:
    def digest(tensors: list) -> str:
        h = hashlib.sha256()
        for t in tensors:
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    state = model.state_dict()
    return {"weights": digest([state[k] for k in sorted(state)]), "alpha": digest([alpha]) if alpha is not None else ""}


def _write(folder: Path, dist: Any, suffix: str, content: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"rank{dist.rank}_of{dist.world_size}{suffix}.json").write_text(json.dumps(content))


def install(folder: str | Path) -> Callable[[], None]:
    """Wrap the search's two methods; returns the function that puts them back (a test's own process must call it,
    or later tests would write digests too; a launched process keeps them for its life)."""
    from autonn_nas.search import final, runner

    folder = Path(folder)
    use_ema_weights, score_many = runner.SearchRun._use_ema_weights, final.Evaluator.score_many

    def use_ema_weights_after_a_digest(self: Any) -> None:
        alpha = self.strategy.alpha
        _write(folder, self.dist, "", {**state_digest(self.model, alpha), "world_size": self.dist.world_size,
                                       "alpha_values": alpha.detach().cpu().tolist() if alpha is not None else None})
        use_ema_weights(self)

    def score_many_recorded(self: Any, archs: list) -> list:
        scores = score_many(self, archs)
        _write(folder, self.dist, "_scored", self.scored)
        return scores

    runner.SearchRun._use_ema_weights = use_ema_weights_after_a_digest
    final.Evaluator.score_many = score_many_recorded

    def uninstall() -> None:
        runner.SearchRun._use_ema_weights = use_ema_weights
        final.Evaluator.score_many = score_many

    return uninstall


@contextmanager
def digests_written_to(folder: str | Path) -> Iterator[None]:
    """In the test's own process: the hooks for the duration of the block."""
    uninstall = install(folder)
    try:
        yield
    finally:
        uninstall()
