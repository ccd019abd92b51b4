"""`BatchedSubprocVecEnv`: an SB3 VecEnv whose worker processes each step several envs per message.

SB3's ``SubprocVecEnv`` runs one env per process, so every env step costs one pipe round trip (send the
action, wake the worker, pickle the result back). Our envs step in 50-100 µs, less than that round
trip on a small VM (``bench envs`` reports it as ``ipc_reference``), so 2 workers on 2 cores spend
most of their time waiting on the main process. Here each worker holds a ``DummyVecEnv`` of
``n_envs / n_workers`` envs and steps them all per message, so the round trip is paid once per
worker per step of the whole batch. Auto-reset, ``terminal_observation``, ``TimeLimit.truncated``,
``reset_infos``, seeds and reset options behave exactly as in ``DummyVecEnv`` (which does the work in
each worker), so a run is the same with either class.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import (
    CloudpickleWrapper,
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)


class _WorkerError:
    """What a worker sends back instead of a result when a command raised: the formatted traceback."""

    def __init__(self, text: str) -> None:
        self.text = text


def _worker(remote: Any, parent_remote: Any, fns: CloudpickleWrapper) -> None:
    """One worker process: a DummyVecEnv of its share of the envs, driven by (command, data) messages;
    indices in messages are local to the worker. An exception is sent back (the main process raises it)
    and the worker keeps serving, so ``close`` still works."""
    parent_remote.close()
    try:
        from stable_baselines3.common.vec_env import DummyVecEnv

        venv = DummyVecEnv(fns.var)
    except Exception:  # e.g. a bad env option: report it to the constructor's first receive
        remote.send(_WorkerError(traceback.format_exc()))
        remote.close()
        return
    while True:
        try:
            cmd, data = remote.recv()
        except (EOFError, KeyboardInterrupt):
            break
        try:
            if not _serve(venv, remote, cmd, data):
                break
        except Exception:
            remote.send(_WorkerError(traceback.format_exc()))


def _serve(venv: Any, remote: Any, cmd: str, data: Any) -> bool:
    """Carry out one command on the worker's DummyVecEnv and send its result; False after ``close``."""
    if cmd == "step":
        venv.step_async(data)
        obs, rewards, dones, infos = venv.step_wait()
        remote.send((obs, rewards, dones, infos, list(venv.reset_infos)))
    elif cmd == "reset":
        venv._seeds, venv._options = list(data[0]), list(data[1])
        obs = venv.reset()
        remote.send((obs, list(venv.reset_infos)))
    elif cmd == "get_spaces":
        remote.send((venv.observation_space, venv.action_space))
    elif cmd == "get_images":
        remote.send(venv.get_images())
    elif cmd == "get_attr":
        remote.send(venv.get_attr(data[0], data[1]))
    elif cmd == "set_attr":
        remote.send(venv.set_attr(data[0], data[1], data[2]))
    elif cmd == "env_method":
        remote.send(venv.env_method(data[0], *data[1], indices=data[3], **data[2]))
    elif cmd == "env_is_wrapped":
        remote.send(venv.env_is_wrapped(data[0], data[1]))
    elif cmd == "close":
        venv.close()
        remote.close()
        return False
    else:
        raise NotImplementedError(f"unknown worker command {cmd!r}")
    return True


def _recv_all(remotes: Sequence[Any]) -> list[Any]:
    """Every worker's reply (all are read, so the protocol stays in step); RuntimeError with the first
    failed worker's traceback if a command raised."""
    replies = [remote.recv() for remote in remotes]
    for reply in replies:
        if isinstance(reply, _WorkerError):
            raise RuntimeError(f"an env worker process failed:\n{reply.text}")
    return replies


def _concat(parts: Sequence[Any]) -> Any:
    """Stack the workers' observation batches (arrays, or dicts / tuples of arrays) in env order."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in first}
    if isinstance(first, tuple):
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(first)))
    return np.concatenate(parts)


class BatchedSubprocVecEnv(VecEnv):
    """``n_envs`` envs in ``n_workers`` processes, each stepping its share as one batch (see the module
    docstring). ``slices[w]`` are the envs of worker w (contiguous, balanced shares); ``processes``
    lists the workers, so ``learn.ppo.pin_workers`` works on it as on SubprocVecEnv."""

    def __init__(self, env_fns: list[Callable[[], gym.Env]], n_workers: int = 2,
                 start_method: str | None = None) -> None:
        n_envs = len(env_fns)
        if n_envs < 1:
            raise ValueError("need at least one env")
        if not 1 <= int(n_workers) <= n_envs:
            raise ValueError(f"n_workers must be in [1, n_envs={n_envs}], got {n_workers}")
        self.n_workers = int(n_workers)
        bounds = np.linspace(0, n_envs, self.n_workers + 1).round().astype(int)
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        if start_method is None:
            start_method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        ctx = mp.get_context(start_method)
        self.remotes, self.processes = [], []
        for sl in self.slices:
            remote, work_remote = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(work_remote, remote, CloudpickleWrapper(env_fns[sl])),
                               daemon=True)
            proc.start()
            work_remote.close()
            self.remotes.append(remote)
            self.processes.append(proc)
        self.waiting = False
        self.closed = False
        for remote in self.remotes:  # every worker reports whether its envs could be built
            remote.send(("get_spaces", None))
        try:
            (observation_space, action_space), *_ = _recv_all(self.remotes)
        except (RuntimeError, EOFError):
            self._terminate()
            raise
        super().__init__(n_envs, observation_space, action_space)

    # ---- stepping ----------------------------------------------------------------------------------

    def step_async(self, actions: np.ndarray) -> None:
        for remote, sl in zip(self.remotes, self.slices, strict=True):
            remote.send(("step", actions[sl]))
        self.waiting = True

    def step_wait(self) -> VecEnvStepReturn:
        self.waiting = False  # _recv_all reads every reply, also when it raises
        results = _recv_all(self.remotes)
        obs, rewards, dones, infos, reset_infos = zip(*results, strict=True)
        self.reset_infos = [r for part in reset_infos for r in part]
        return (_concat(obs), np.concatenate(rewards), np.concatenate(dones),
                [i for part in infos for i in part])

    def reset(self) -> VecEnvObs:
        for remote, sl in zip(self.remotes, self.slices, strict=True):
            remote.send(("reset", (self._seeds[sl], self._options[sl])))
        results = _recv_all(self.remotes)
        obs, reset_infos = zip(*results, strict=True)
        self.reset_infos = [r for part in reset_infos for r in part]
        self._reset_seeds()
        self._reset_options()
        return _concat(obs)

    def _terminate(self) -> None:
        """Stop every worker process at once (after a failed start)."""
        for proc in self.processes:
            proc.terminate()
            proc.join()
        self.closed = True

    def close(self) -> None:
        if self.closed:
            return
        if self.waiting:  # drain the pending step replies
            for remote in self.remotes:
                remote.recv()
        for remote in self.remotes:
            remote.send(("close", None))
        for proc in self.processes:
            proc.join()
        self.closed = True

    # ---- per-env access (global indices, routed to the worker holding each env) --------------------

    def _route(self, indices: VecEnvIndices) -> list[tuple[int, list[int]]]:
        """[(worker, local indices)] for the global ``indices``, in worker order."""
        wanted = list(self._get_indices(indices))
        out = []
        for w, sl in enumerate(self.slices):
            local = [i - sl.start for i in wanted if sl.start <= i < sl.stop]
            if local:
                out.append((w, local))
        return out

    def _ask(self, cmd: str, indices: VecEnvIndices, make: Callable[[list[int]], tuple]) -> list[Any]:
        routes = self._route(indices)
        for w, local in routes:
            self.remotes[w].send((cmd, make(local)))
        replies = _recv_all([self.remotes[w] for w, _ in routes])
        return [x for reply in replies for x in reply]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._ask("get_attr", indices, lambda local: (attr_name, local))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for w, local in self._route(indices):
            self.remotes[w].send(("set_attr", (attr_name, value, local)))
            _recv_all([self.remotes[w]])

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        return self._ask("env_method", indices,
                         lambda local: (method_name, method_args, method_kwargs, local))

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return self._ask("env_is_wrapped", indices, lambda local: (wrapper_class, local))

    def get_images(self) -> Sequence[np.ndarray | None]:
        for remote in self.remotes:
            remote.send(("get_images", None))
        return [img for reply in _recv_all(self.remotes) for img in reply]
