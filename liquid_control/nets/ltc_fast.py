"""The fused LTC solver: same function as ``LTCCell._ode_reference``, cheaper to train and run.

* Synapses are a list (src, dst) when the wiring is sparse, so the cost is proportional to the number of
  synapses, not N^2; a fully connected wiring uses dense broadcasting instead (no index overhead).
* The ``ode_unfolds`` solver iterations run inside one ``torch.autograd.Function`` whose backward is
  analytic: it keeps only the potentials of each unfold (B x N) and recomputes the synapse
  activations, so autograd never stores B x E tensors and memory does not grow with the unfolds.
* Without gradients (closed-loop control) the same kernel runs with no autograd bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class _Plan:
    """Synapse index lists of one cell (cached per mask version)."""

    dense: bool
    src: Tensor | None
    dst: Tensor | None
    flat: Tensor | None
    units: int


def _plan(mask: Tensor) -> _Plan:
    n_src, n_dst = mask.shape
    nz = mask.reshape(-1).nonzero().squeeze(1)
    if nz.numel() == mask.numel():
        return _Plan(True, None, None, None, n_dst)
    return _Plan(False, torch.div(nz, n_dst, rounding_mode="floor"), nz % n_dst, nz, n_dst)


def _cell_plans(cell) -> tuple[_Plan, _Plan]:
    key = (
        cell.sparsity_mask.data_ptr(),
        cell.sparsity_mask._version,
        cell.sensory_sparsity_mask.data_ptr(),
        cell.sensory_sparsity_mask._version,
        cell.sparsity_mask.device,
    )
    cached = cell._edge_cache.get("plans")
    if cached is None or cached[0] != key:
        cached = (key, (_plan(cell.sparsity_mask), _plan(cell.sensory_sparsity_mask)))
        cell._edge_cache["plans"] = cached
    return cached[1]


def _edge_values(plan: _Plan, *params: Tensor) -> list[Tensor]:
    """Per-synapse values: the dense (S,N) matrices themselves, or their entries at the synapses."""
    if plan.dense:
        return list(params)
    return [p.reshape(-1).index_select(0, plan.flat) for p in params]


# ----- gathers and scatters between neurons (B,N) and synapses (B,E) or (B,S,N) ----------------
def _from_src(plan: _Plan, v: Tensor) -> Tensor:
    return v.unsqueeze(2) if plan.dense else v.index_select(1, plan.src)


def _from_dst(plan: _Plan, g: Tensor) -> Tensor:
    return g.unsqueeze(1) if plan.dense else g.index_select(1, plan.dst)


def _to_dst(plan: _Plan, y: Tensor, weight: Tensor) -> Tensor:
    """sum over synapses into each destination neuron of y * weight."""
    if plan.dense:
        return (y * weight).sum(1)
    return y.new_zeros(y.shape[0], plan.units).index_add_(1, plan.dst, y * weight)


def _to_src(plan: _Plan, y: Tensor, n: int) -> Tensor:
    if plan.dense:
        return y.sum(2)
    return y.new_zeros(y.shape[0], n).index_add_(1, plan.src, y)


def _batch_sum(plan: _Plan, y: Tensor, per_neuron: Tensor | None = None, at: str = "dst") -> Tensor:
    """sum over the batch of y (B,E) [times a per-neuron (B,N) factor at the synapse's src or dst]."""
    if per_neuron is None:
        return y.sum(0)
    if plan.dense:
        return (y * per_neuron.unsqueeze(1 if at == "dst" else 2)).sum(0)
    idx = plan.dst if at == "dst" else plan.src
    return (y * per_neuron.index_select(1, idx)).sum(0)


def sensory_drive(cell, u: Tensor, plan: _Plan) -> tuple[Tensor, Tensor]:
    """The sensory numerator and denominator (B,N), computed once per step (plain autograd)."""
    f = cell._positive
    sigma, mu, w, erev, mask = _edge_values(
        plan,
        cell.sensory_sigma,
        cell.sensory_mu,
        f(cell.sensory_w),
        cell.sensory_erev,
        cell.sensory_sparsity_mask,
    )
    act = torch.sigmoid(sigma * (_from_src(plan, u) - mu))
    wd = w * mask
    return _to_dst(plan, act, wd * erev), _to_dst(plan, act, wd)


def _unfold_forward(plan, v, cm_t, num_s, den_s, g, gvl, sigma, smu, wn, wd, unfolds, eps, keep):
    vs, dens = [], []
    base_num = gvl + num_s
    base_den = cm_t + g + den_s + eps
    for _ in range(unfolds):
        s = torch.sigmoid(torch.addcmul(-smu, _from_src(plan, v), sigma))
        num = torch.addcmul(base_num, cm_t, v) + _to_dst(plan, s, wn)
        den = base_den + _to_dst(plan, s, wd)
        if keep:
            vs.append(v)
            dens.append(den)
        v = num / den
    return v, vs, dens


class _LTCUnfold(torch.autograd.Function):
    """v_{k+1} = (cm_t v_k + gvl + sum s*wn + num_s) / (cm_t + g + sum s*wd + den_s + eps), k < unfolds."""

    @staticmethod
    def forward(ctx, v0, cm_t, num_s, den_s, g, gvl, sigma, mu, wn, wd, plan, unfolds, eps):
        smu = sigma * mu
        v, _, _ = _unfold_forward(
            plan, v0, cm_t, num_s, den_s, g, gvl, sigma, smu, wn, wd, unfolds, eps, False
        )
        ctx.plan, ctx.unfolds, ctx.eps = plan, unfolds, eps
        # only the step's start and end potentials are kept; backward recomputes the unfolds
        ctx.save_for_backward(v0, cm_t, num_s, den_s, g, gvl, sigma, mu, wn, wd, v)
        return v

    @staticmethod
    def backward(ctx, gv):
        plan, unfolds = ctx.plan, ctx.unfolds
        v0, cm_t, num_s, den_s, g, gvl, sigma, mu, wn, wd, v_out = ctx.saved_tensors
        smu = sigma * mu
        _, vs, dens = _unfold_forward(
            plan, v0, cm_t, num_s, den_s, g, gvl, sigma, smu, wn, wd, unfolds, ctx.eps, True
        )
        g_cm = torch.zeros_like(gv)
        g_num_s = torch.zeros_like(gv)
        g_den_s = torch.zeros_like(gv)
        g_sigma = torch.zeros_like(sigma)
        g_mu0 = torch.zeros_like(sigma)  # sum_b gz
        g_wn = torch.zeros_like(wn)
        g_wd = torch.zeros_like(wd)
        n = gv.shape[1]
        v_next = v_out
        for k in reversed(range(unfolds)):
            v, den = vs[k], dens[k]
            gnum = gv / den
            gden = -gnum * v_next
            g_cm += gnum * v + gden
            g_num_s += gnum
            g_den_s += gden
            x = _from_src(plan, v)
            s = torch.sigmoid(torch.addcmul(-smu, x, sigma))
            g_wn += _batch_sum(plan, s, gnum, "dst")
            g_wd += _batch_sum(plan, s, gden, "dst")
            gs = _from_dst(plan, gnum) * wn + _from_dst(plan, gden) * wd
            gz = gs * s * (1.0 - s)
            gz_sum = gz.sum(0)
            g_sigma += _batch_sum(plan, gz, v, "src") - mu * gz_sum
            g_mu0 += gz_sum
            gv = gnum * cm_t + _to_src(plan, gz * sigma, n)
            v_next = v
        g_mu = -sigma * g_mu0
        g_g = g_den_s.sum(0) if g_den_s.dim() > 1 else g_den_s
        g_gvl = g_num_s.sum(0)
        if cm_t.dim() == 1:
            g_cm = g_cm.sum(0)
        return gv, g_cm, g_num_s, g_den_s, g_g, g_gvl, g_sigma, g_mu, g_wn, g_wd, None, None, None


def prepare(cell) -> tuple:
    """Per-call constants of the recurrent solver (computed once per sequence, with autograd)."""
    rec_plan, _ = _cell_plans(cell)
    f = cell._positive
    g = f(cell.gleak)
    gvl = g * cell.vleak
    sigma, mu, w, erev, mask = _edge_values(
        rec_plan, cell.sigma, cell.mu, f(cell.w), cell.erev, cell.sparsity_mask
    )
    wd = w * mask
    wn = wd * erev
    return rec_plan, g, gvl, sigma, mu, wn, wd, cell._ode_unfolds, cell._epsilon


def unfold(prepared: tuple, v: Tensor, cm_t: Tensor, num_s: Tensor, den_s: Tensor) -> Tensor:
    """All solver iterations of one step: custom backward when gradients are needed."""
    plan, g, gvl, sigma, mu, wn, wd, unfolds, eps = prepared
    if torch.is_grad_enabled() and any(
        t.requires_grad for t in (v, cm_t, num_s, den_s, g, gvl, sigma, mu, wn, wd)
    ):
        cm_arg = cm_t if cm_t.dim() == 1 else cm_t.expand(v.shape[0], -1)
        return _LTCUnfold.apply(v, cm_arg, num_s, den_s, g, gvl, sigma, mu, wn, wd, plan, unfolds, eps)
    out, _, _ = _unfold_forward(
        plan, v, cm_t, num_s, den_s, g, gvl, sigma, sigma * mu, wn, wd, unfolds, eps, False
    )
    return out


def ode_step(cell, u: Tensor, v: Tensor, cm_t: Tensor) -> Tensor:
    """One LTC step (all unfolds) with the fused solver; u are the mapped inputs (B,S)."""
    num_s, den_s = sensory_drive(cell, u, _cell_plans(cell)[1])
    return unfold(prepare(cell), v, cm_t, num_s, den_s)


def run_sequence(cell, u: Tensor, h0: Tensor, cm_t: Tensor, keep: Tensor | None) -> Tensor:
    """Potentials after each step (T,B,N): sensory drive for all steps at once, then the steps.

    u (T,B,S) mapped inputs; cm_t (N,) for a constant time step or (T,B,N); keep (T,B) or None.
    """
    steps, batch, width = u.shape
    num_s, den_s = sensory_drive(cell, u.reshape(steps * batch, width), _cell_plans(cell)[1])
    num_s = num_s.reshape(steps, batch, -1)
    den_s = den_s.reshape(steps, batch, -1)
    prepared = prepare(cell)
    v, vs = h0, []
    for t in range(steps):
        if keep is not None:
            v = v * keep[t].unsqueeze(-1)
        v = unfold(prepared, v, cm_t if cm_t.dim() == 1 else cm_t[t], num_s[t], den_s[t])
        vs.append(v)
    return torch.stack(vs)
